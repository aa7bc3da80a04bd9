/* The check of what a code-interpreter context sends back: the guest is hostile, so each
 * NDJSON line is parsed with bounds (code_events.h), held to the event shapes cocoon.h
 * documents, and re-encoded before anything reaches a caller. */
#include "lib/code_events.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_base64(const char *s, size_t n)
{
    if (n % 4)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
                 (c == '=' && i >= n - 2);
        if (!ok)
            return 0;
    }
    return 1;
}

static const char *const RESULT_TEXT_KEYS[] = {"text", "html", "markdown", "svg", "latex", "javascript", NULL};

static int in_list(const char *key, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(key, *list) == 0)
            return 1;
    return 0;
}

static int check_result(json_t *o, char *why, size_t cap)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "type") == 0)
            continue;
        if (strcmp(key, "is_main_result") == 0) {
            if (!json_is_boolean(v))
                return fail(why, cap, "result: is_main_result is not a boolean");
        } else if (in_list(key, RESULT_TEXT_KEYS)) {
            if (!json_is_string(v))
                return fail(why, cap, "result: %s is not a string", key);
        } else if (strcmp(key, "png") == 0 || strcmp(key, "jpeg") == 0) {
            if (!json_is_string(v) || !is_base64(json_string_value(v), json_string_length(v)))
                return fail(why, cap, "result: %s is not base64", key);
        } else if (strcmp(key, "json") == 0) {
            if (!json_is_object(v) && !json_is_array(v))
                return fail(why, cap, "result: json is not an object or array");
        } else {
            return fail(why, cap, "result: unknown key \"%.40s\"", key);
        }
    }
    return 0;
}

/* Only the keys given, each a string. */
static int check_strings(json_t *o, const char *type, const char *const *keys, size_t text_max, char *why, size_t cap)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "type") == 0)
            continue;
        if (!in_list(key, keys))
            return fail(why, cap, "%s: unknown key \"%.40s\"", type, key);
        if (!json_is_string(v))
            return fail(why, cap, "%s: %s is not a string", type, key);
        if (text_max && json_string_length(v) > text_max)
            return fail(why, cap, "%s: %s longer than %zu bytes", type, key, text_max);
    }
    for (; *keys; keys++)
        if (!json_object_get(o, *keys))
            return fail(why, cap, "%s: no %s", type, *keys);
    return 0;
}

static int check_end(json_t *o, struct code_event *ev, char *why, size_t cap)
{
    if (json_object_size(o) != 2)
        return fail(why, cap, "number_of_executions: unknown keys");
    json_t *n = json_object_get(o, "execution_count");
    if (!json_is_integer(n) || json_integer_value(n) < 0)
        return fail(why, cap, "number_of_executions: execution_count is not a count");
    ev->execution_count = json_integer_value(n);
    return 0;
}

static int check_object(json_t *o, struct code_event *ev, char *why, size_t cap)
{
    static const char *const TEXT[] = {"text", NULL};
    static const char *const ERROR[] = {"name", "value", "traceback", NULL};
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!type)
        return fail(why, cap, "an event without a string \"type\"");
    if (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0) {
        ev->kind = type[3] == 'o' ? CODE_EV_STDOUT : CODE_EV_STDERR;
        return check_strings(o, type, TEXT, CODE_EVENT_TEXT_MAX, why, cap);
    }
    if (strcmp(type, "result") == 0) {
        ev->kind = CODE_EV_RESULT;
        return check_result(o, why, cap);
    }
    if (strcmp(type, "error") == 0) {
        ev->kind = CODE_EV_ERROR;
        return check_strings(o, type, ERROR, 0, why, cap);
    }
    if (strcmp(type, "number_of_executions") == 0) {
        ev->kind = CODE_EV_END;
        return check_end(o, ev, why, cap);
    }
    return fail(why, cap, "unknown event type \"%.40s\"", type);
}

int code_event_check(const char *line, size_t len, struct code_event *ev, char *why, size_t cap)
{
    memset(ev, 0, sizeof(*ev));
    if (len > CODE_EVENT_LINE_MAX)
        return fail(why, cap, "an event line longer than %u bytes", CODE_EVENT_LINE_MAX);
    json_error_t jerr;
    /* jansson refuses bad UTF-8 and \u0000 in strings; depth is bounded by it (2048) */
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return fail(why, cap, "an event line that is not JSON (%.80s)", jerr.text);
    int rc = json_is_object(o) ? check_object(o, ev, why, cap) : fail(why, cap, "an event that is not a JSON object");
    if (rc == 0) {
        ev->json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!ev->json)
            rc = fail(why, cap, "out of memory");
        else
            ev->len = strlen(ev->json);
    }
    json_decref(o);
    return rc;
}
