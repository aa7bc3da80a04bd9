/* health.json (the check libcocoon asked for) and health.state.json (what the monitor
 * saw of it): their JSON checked field by field on the way in, durations as text both
 * ways, and a check's output (guest data) cut and cleaned before it is kept. */
#include "boxcfg/healthspec.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxcfg/mainspec.h"

int health_duration_parse(const char *text, const char *what, uint32_t *ms, char *err, size_t cap)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *p = text ? text : "";
    uint64_t total = 0;
    int parts = 0;
    while (*p) {
        /* a number: digits with at most 3 decimals (milliseconds are the finest unit) */
        uint64_t whole = 0, frac = 0, scale = 1;
        int digits = 0;
        while (*p >= '0' && *p <= '9' && whole <= HEALTH_DURATION_MAX_MS) {
            whole = whole * 10 + (uint64_t)(*p++ - '0');
            digits++;
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9' && scale < 1000) {
                frac = frac * 10 + (uint64_t)(*p++ - '0');
                scale *= 10;
                digits++;
            }
        }
        if (!digits)
            goto bad;
        uint64_t unit = 0;
        size_t ulen = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t l = strlen(units[i].suffix);
            if (!strncmp(p, units[i].suffix, l) && l > ulen && !(l == 1 && p[0] == 'm' && p[1] == 's')) {
                unit = units[i].ms;
                ulen = l;
            }
        }
        if (!unit) {
            if (*p || parts)
                goto bad; /* a bare number is seconds, alone only */
            unit = 1000;
        }
        p += ulen;
        total += whole * unit + frac * unit / scale;
        parts++;
        if (total > HEALTH_DURATION_MAX_MS)
            goto bad;
    }
    if (!parts)
        goto bad;
    *ms = (uint32_t)total;
    return 0;
bad:
    snprintf(err, cap, "%s \"%.40s\": expected a duration such as 30s, 1m30s, 500ms or 2h (at most 24h)", what,
             text ? text : "");
    return -1;
}

void health_duration_format(uint32_t ms, char *out, size_t cap)
{
    unsigned h = ms / 3600000u, m = ms / 60000u % 60u, s = ms / 1000u % 60u, rest = ms % 1000u;
    size_t n = 0;
    out[0] = 0;
    if (h)
        n += (size_t)snprintf(out + n, cap > n ? cap - n : 0, "%uh", h);
    if (m && n < cap)
        n += (size_t)snprintf(out + n, cap - n, "%um", m);
    if (n < cap && (s || rest || !n)) {
        if (rest)
            snprintf(out + n, cap - n, "%u.%03us", s, rest);
        else
            snprintf(out + n, cap - n, "%us", s);
    }
}

static const char *const on_failure_names[] = {"none", "restart", "stop"};

int health_on_failure_parse(const char *text, enum health_on_failure *out, char *err, size_t cap)
{
    *out = HEALTH_ON_FAILURE_NONE;
    if (!text || !*text)
        return 0;
    for (int i = 0; i < 3; i++)
        if (!strcmp(text, on_failure_names[i])) {
            *out = (enum health_on_failure)i;
            return 0;
        }
    snprintf(err, cap, "unknown health failure action \"%.40s\": use none, restart or stop", text);
    return -1;
}

const char *health_on_failure_name(enum health_on_failure f) { return (unsigned)f < 3 ? on_failure_names[f] : "none"; }

int health_spec_check(const struct health_spec *s, char *err, size_t cap)
{
    size_t argc = 0;
    while (s->argv && s->argv[argc])
        argc++;
    if (argc == 0 || argc > HEALTH_ARGV_MAX) {
        snprintf(err, cap, "a health check needs a command (of at most %u arguments)", HEALTH_ARGV_MAX);
        return -1;
    }
    if (s->interval_ms < HEALTH_DURATION_MIN_MS || s->interval_ms > HEALTH_DURATION_MAX_MS ||
        s->timeout_ms < HEALTH_DURATION_MIN_MS || s->timeout_ms > HEALTH_DURATION_MAX_MS) {
        snprintf(err, cap, "the health check's interval and timeout must be 1s to 24h");
        return -1;
    }
    if (s->start_period_ms > HEALTH_DURATION_MAX_MS) {
        snprintf(err, cap, "the health check's start period must be at most 24h");
        return -1;
    }
    if (s->retries < 1 || s->retries > HEALTH_RETRIES_MAX) {
        snprintf(err, cap, "the health check's retries must be 1 to %u", HEALTH_RETRIES_MAX);
        return -1;
    }
    if ((unsigned)s->on_failure > HEALTH_ON_FAILURE_STOP) {
        snprintf(err, cap, "unknown health failure action");
        return -1;
    }
    return 0;
}

char *health_spec_json(const struct health_spec *s)
{
    json_t *argv = json_array();
    for (size_t i = 0; argv && s->argv && s->argv[i]; i++)
        if (json_array_append_new(argv, json_string(s->argv[i])) < 0) {
            json_decref(argv);
            return NULL;
        }
    json_t *o = json_pack("{s:o?, s:I, s:I, s:I, s:I, s:s}", "argv", argv, "interval_ms", (json_int_t)s->interval_ms,
                          "timeout_ms", (json_int_t)s->timeout_ms, "start_period_ms", (json_int_t)s->start_period_ms,
                          "retries", (json_int_t)s->retries, "on_failure", health_on_failure_name(s->on_failure));
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    return text;
}

void health_spec_free(struct health_spec *s)
{
    for (size_t i = 0; s->argv && s->argv[i]; i++)
        free(s->argv[i]);
    free(s->argv);
    s->argv = NULL;
}

/* An integer field in lo..hi; absent keeps *out. */
static int int_field(json_t *o, const char *key, long long lo, long long hi, long long *out)
{
    json_t *f = json_object_get(o, key);
    if (!f)
        return 0;
    if (!json_is_integer(f) || json_integer_value(f) < lo || json_integer_value(f) > hi)
        return -1;
    *out = json_integer_value(f);
    return 0;
}

static int argv_field(json_t *a, char ***out)
{
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > HEALTH_ARGV_MAX)
        return -1;
    size_t n = json_array_size(a);
    char **v = calloc(n + 1, sizeof(*v));
    if (!v)
        return -1;
    *out = v;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e) ||
            !(v[i] = strdup(json_string_value(e))))
            return -1; /* the caller frees what was copied */
    }
    return 0;
}

int health_spec_parse(const char *text, size_t len, struct health_spec *s, char *err, size_t cap)
{
    memset(s, 0, sizeof(*s));
    json_error_t jerr;
    json_t *o = len <= HEALTH_SPEC_FILE_MAX ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(o)) {
        snprintf(err, cap, "health.json: %s", !o && len <= HEALTH_SPEC_FILE_MAX ? jerr.text : "not a JSON object");
        json_decref(o);
        return -1;
    }
    long long interval = HEALTH_INTERVAL_DEFAULT_MS, timeout = HEALTH_TIMEOUT_DEFAULT_MS, start = 0,
              retries = HEALTH_RETRIES_DEFAULT;
    json_t *of = json_object_get(o, "on_failure");
    int rc = argv_field(json_object_get(o, "argv"), &s->argv);
    if (rc < 0)
        snprintf(err, cap, "health.json: \"argv\" must be 1 to %u strings without NUL bytes", HEALTH_ARGV_MAX);
    else if (int_field(o, "interval_ms", 0, HEALTH_DURATION_MAX_MS, &interval) < 0 ||
             int_field(o, "timeout_ms", 0, HEALTH_DURATION_MAX_MS, &timeout) < 0 ||
             int_field(o, "start_period_ms", 0, HEALTH_DURATION_MAX_MS, &start) < 0 ||
             int_field(o, "retries", 0, HEALTH_RETRIES_MAX, &retries) < 0 || (of && !json_is_string(of))) {
        snprintf(err, cap, "health.json: a field is out of range or of the wrong type");
        rc = -1;
    } else {
        s->interval_ms = (uint32_t)interval;
        s->timeout_ms = (uint32_t)timeout;
        s->start_period_ms = (uint32_t)start;
        s->retries = (unsigned)retries;
        rc = health_on_failure_parse(of ? json_string_value(of) : NULL, &s->on_failure, err, cap);
        if (rc == 0)
            rc = health_spec_check(s, err, cap);
    }
    json_decref(o);
    if (rc < 0)
        health_spec_free(s);
    return rc;
}

int health_spec_read(int dirfd, struct health_spec *s, char *err, size_t cap)
{
    size_t len;
    memset(s, 0, sizeof(*s));
    char *text = boxfile_read_at(dirfd, "health.json", HEALTH_SPEC_FILE_MAX, &len);
    if (!text) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, cap, "cannot read health.json: %s", strerror(errno));
        return -1;
    }
    int rc = health_spec_parse(text, len, s, err, cap);
    free(text);
    return rc < 0 ? -1 : 1;
}

int health_spec_write(int dirfd, const struct health_spec *s, char *err, size_t cap)
{
    if (health_spec_check(s, err, cap) < 0)
        return -1;
    char *text = health_spec_json(s);
    if (!text) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    int rc = boxfile_write_at(dirfd, "health.json", text, strlen(text));
    free(text);
    if (rc < 0)
        snprintf(err, cap, "cannot write health.json: %s", strerror(errno));
    return rc;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when it is not one
 * (overlong forms, surrogates and code points above U+10FFFF are not). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    if (s[0] > 0xf4 || (s[0] & 0xfe) == 0xc0 || len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) || (s[0] == 0xf0 && s[1] < 0x90) ||
        (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

/* Guest output as text a person and JSON can take: control characters other than
 * newline and tab, and bytes that are not UTF-8, become '?'. out holds n + 1. */
static void clean_output(const char *in, size_t n, char *out)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    while (i < n) {
        if (s[i] >= 0x80) {
            size_t l = utf8_seq(s + i, n - i);
            if (l) {
                memcpy(out + i, s + i, l);
                i += l;
                continue;
            }
            out[i++] = '?';
        } else {
            out[i] = (s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') || s[i] == 0x7f ? '?' : (char)s[i];
            i++;
        }
    }
    out[n] = 0;
}

void health_state_add(struct health_state *st, int exit_code, long long start_ms, long long end_ms, const char *output,
                      size_t n)
{
    if (st->nlog == HEALTH_LOG_KEEP) {
        memmove(st->log, st->log + 1, sizeof(st->log[0]) * (HEALTH_LOG_KEEP - 1));
        st->nlog--;
    }
    struct health_result *r = &st->log[st->nlog++];
    r->exit_code = exit_code;
    r->start_ms = start_ms;
    r->end_ms = end_ms;
    if (n > HEALTH_OUTPUT_MAX) {
        n = HEALTH_OUTPUT_MAX;
        while (n > 0 && ((unsigned char)output[n] & 0xc0) == 0x80 && HEALTH_OUTPUT_MAX - n < 3)
            n--; /* not in the middle of a character */
    }
    clean_output(output ? output : "", output ? n : 0, r->output);
}

int health_state_write(int dirfd, const struct health_state *st)
{
    json_t *log = json_array();
    for (unsigned i = 0; log && i < st->nlog && i < HEALTH_LOG_KEEP; i++) {
        const struct health_result *r = &st->log[i];
        json_t *e = json_pack("{s:i, s:I, s:I, s:s}", "exit_code", r->exit_code, "start_ms", (json_int_t)r->start_ms,
                              "end_ms", (json_int_t)r->end_ms, "output", r->output);
        if (!e || json_array_append_new(log, e) < 0) {
            json_decref(log);
            log = NULL;
        }
    }
    json_t *o =
        log ? json_pack("{s:s, s:i, s:o}", "status", st->status, "failing_streak", (int)st->failing_streak, "log", log)
            : NULL;
    char *text = o ? json_dumps(o, 0) : NULL;
    json_decref(o);
    if (!text) {
        errno = ENOMEM;
        return -1;
    }
    int rc = boxfile_write_at(dirfd, "health.state.json", text, strlen(text));
    free(text);
    return rc;
}

static int text_field(json_t *o, const char *key, char *out, size_t outcap)
{
    json_t *f = json_object_get(o, key);
    if (!json_is_string(f) || json_string_length(f) >= outcap || strlen(json_string_value(f)) != json_string_length(f))
        return -1;
    memcpy(out, json_string_value(f), json_string_length(f) + 1);
    return 0;
}

int health_state_parse(const char *text, size_t len, struct health_state *st, char *err, size_t cap)
{
    memset(st, 0, sizeof(*st));
    json_error_t jerr;
    json_t *o = len <= HEALTH_STATE_FILE_MAX ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    json_t *log = json_object_get(o, "log");
    long long streak = 0;
    int rc = json_is_object(o) && json_is_array(log) && json_array_size(log) <= HEALTH_LOG_KEEP ? 0 : -1;
    if (rc == 0)
        rc = text_field(o, "status", st->status, sizeof(st->status)) |
             int_field(o, "failing_streak", 0, 1 << 30, &streak);
    if (rc == 0 && strcmp(st->status, "starting") && strcmp(st->status, "healthy") && strcmp(st->status, "unhealthy"))
        rc = -1;
    for (size_t i = 0; rc == 0 && i < json_array_size(log); i++) {
        json_t *e = json_array_get(log, i);
        struct health_result *r = &st->log[i];
        long long code = -1;
        rc = json_is_object(e) ? 0 : -1;
        if (rc == 0)
            rc = int_field(e, "exit_code", -1, 255, &code) | int_field(e, "start_ms", 0, 1LL << 50, &r->start_ms) |
                 int_field(e, "end_ms", 0, 1LL << 50, &r->end_ms) |
                 text_field(e, "output", r->output, sizeof(r->output));
        r->exit_code = (int)code;
        st->nlog = (unsigned)i + 1;
    }
    json_decref(o);
    if (rc < 0) {
        memset(st, 0, sizeof(*st));
        snprintf(err, cap, "health.state.json is damaged");
        return -1;
    }
    st->failing_streak = (unsigned)streak;
    return 1;
}

int health_state_read(int dirfd, struct health_state *st, char *err, size_t cap)
{
    size_t len;
    char *text = boxfile_read_at(dirfd, "health.state.json", HEALTH_STATE_FILE_MAX, &len);
    if (!text) {
        memset(st, 0, sizeof(*st));
        if (errno == ENOENT)
            return 0;
        snprintf(err, cap, "cannot read health.state.json: %s", strerror(errno));
        return -1;
    }
    int rc = health_state_parse(text, len, st, err, cap);
    free(text);
    return rc;
}
