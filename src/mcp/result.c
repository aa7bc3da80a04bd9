/* How tools answer and read their arguments: CallToolResult objects (structured
 * content mirrored as text, errors with isError and a message an agent can act on),
 * text that may not be UTF-8, and typed readers of arguments already checked against
 * the tool's schema. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"
#include "util/util.h"

static json_t *text_content(json_t *text)
{
    return json_pack("[{s:s, s:o}]", "type", "text", "text", text ? text : json_string(""));
}

json_t *tool_error(const char *fmt, ...)
{
    char msg[COCOON_ERROR_MAX + 512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:o, s:b}", "content", text_content(mcp_text(msg, strlen(msg))), "isError", 1);
}

/* A hint for the agent after the library's message, by the kind of failure. */
static const char *hint_of(int code)
{
    switch (code) {
    case COCOON_E_NOT_FOUND: return " (box_list, snapshot_list and image_list show what exists)";
    case COCOON_E_STATE:
        return " (box_inspect shows the box's status; box_start boots a stopped box, box_stop stops a running one)";
    case COCOON_E_UNSUPPORTED: return " (not possible on this host or with this image)";
    case COCOON_E_BOOT: return " (box_logs shows the guest's console)";
    default: return "";
    }
}

json_t *tool_cocoon_error(const char *doing, const cocoon_error *err)
{
    return tool_error("%s: %s%s", doing, err->message[0] ? err->message : "failed", hint_of(err->code));
}

json_t *tool_ok(json_t *structured)
{
    if (!structured)
        return NULL;
    char *text = json_dumps(structured, JSON_COMPACT);
    json_t *r = json_pack("{s:o, s:o}", "content", text_content(text ? json_string(text) : NULL), "structuredContent",
                          structured);
    free(text);
    return r;
}

json_t *mcp_text(const char *data, size_t len)
{
    if (len == 0)
        return json_string(""); /* data may be NULL then (no output came) */
    json_t *s = json_stringn(data, len);
    if (s)
        return s;
    /* Not UTF-8: each byte that does not start a valid sequence becomes U+FFFD. */
    char *out = malloc(len * 3 + 1);
    if (!out)
        return json_string("");
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)data[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        json_t *probe = n && i + n <= len && c ? json_stringn(data + i, n) : NULL;
        if (probe) {
            json_decref(probe);
            memcpy(out + o, data + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    s = json_stringn(out, o);
    free(out);
    return s ? s : json_string("");
}

const char *arg_str(json_t *args, const char *key, const char *def)
{
    json_t *v = json_object_get(args, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

long long arg_int(json_t *args, const char *key, long long def)
{
    json_t *v = json_object_get(args, key);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

int arg_bool(json_t *args, const char *key, int def)
{
    json_t *v = json_object_get(args, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

const char **arg_strv(json_t *args, const char *key)
{
    json_t *a = json_object_get(args, key);
    if (!json_is_array(a))
        return NULL;
    const char **v = calloc(json_array_size(a) + 1, sizeof(*v));
    if (!v)
        return NULL;
    size_t i;
    json_t *item;
    json_array_foreach(a, i, item) v[i] = json_is_string(item) ? json_string_value(item) : "";
    return v;
}

char **arg_env(json_t *args, const char *key)
{
    json_t *o = json_object_get(args, key);
    if (!json_is_object(o))
        return NULL;
    char **env = calloc(json_object_size(o) + 1, sizeof(*env));
    if (!env)
        return NULL;
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        const char *val = json_is_string(v) ? json_string_value(v) : "";
        size_t cap = strlen(k) + strlen(val) + 2;
        if (!(env[n] = malloc(cap)))
            break;
        snprintf(env[n++], cap, "%s=%s", k, val);
    }
    return env;
}

void mcp_free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

int mcp_open_box(struct mcp_call *c, json_t *args, cocoon_runtime **rt, cocoon_box **box, json_t **fail)
{
    cocoon_error err;
    const char *name = arg_str(args, "box", "");
    *rt = NULL;
    *box = NULL;
    if (mcp_runtime(c->s, rt, &err) < 0) {
        *fail = tool_cocoon_error("cannot open cocoon's state", &err);
        return -1;
    }
    if (cocoon_box_open(*rt, name, box, &err) < 0) {
        *fail = tool_cocoon_error("cannot open the box", &err);
        cocoon_runtime_close(*rt);
        *rt = NULL;
        return -1;
    }
    return 0;
}

void mcp_close_box(cocoon_runtime *rt, cocoon_box *box)
{
    if (box)
        cocoon_box_close(box);
    if (rt)
        cocoon_runtime_close(rt);
}
