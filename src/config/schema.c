/* The config file's schema (docs/config.md): the tree from yaml_tree.c checked key by
 * key, every value's type and range, and turned into the normalized JSON. Every refusal
 * names FILE:LINE:COL of the node at fault; an unknown key gets the nearest known one
 * as a hint. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <limits.h>

#include "boxcfg/config.h"
#include "boxcfg/healthspec.h"
#include "boxcfg/mainspec.h"
#include "config/config.h"
#include "config/subst.h"
#include "net/policy.h"
#include "util/util.h"

struct ctx {
    const char *file;
    char *err;
    size_t errlen;
    size_t budget; /* bytes substitutions may still add */
    const char *base_dir;
};

static int fail(struct ctx *c, const struct cfg_node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct ctx *c, const struct cfg_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg_vfail(c->err, c->errlen, c->file, n->line, n->col, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *kind_name(const struct cfg_node *n)
{
    return n->kind == CFG_MAP ? "a mapping" : n->kind == CFG_SEQ ? "a list" : "a single value";
}

static int is_null(const struct cfg_node *n)
{
    return n->kind == CFG_SCALAR && n->plain &&
           (!n->len || !strcmp(n->text, "~") || !strcmp(n->text, "null") || !strcmp(n->text, "Null") ||
            !strcmp(n->text, "NULL"));
}

/* ---- "did you mean": the closest known key within a couple of edits ---- */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32)
        return 99;
    size_t row[33];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int unknown_key(struct ctx *c, const struct cfg_node *key, const char *where, const char *const *known)
{
    const char *best = NULL;
    size_t best_d = 99;
    for (size_t i = 0; known[i]; i++) {
        size_t d = edit_distance(key->text, known[i]);
        size_t allowed = strlen(known[i]) <= 4 ? 1 : 2;
        if (d <= allowed && d < best_d) {
            best = known[i];
            best_d = d;
        }
    }
    if (best)
        return fail(c, key, "unknown key \"%.100s\" %s (did you mean \"%s\"?)", key->text, where, best);
    char list[512] = "";
    for (size_t i = 0; known[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", known[i]);
    return fail(c, key, "unknown key \"%.100s\" %s (known keys: %s)", key->text, where, list);
}

/* ---- values ---- */

/* A scalar's text after ${NAME} substitution (malloc'd), or NULL after fail(). */
static char *text_of(struct ctx *c, const struct cfg_node *n, const char *what, size_t *len_out)
{
    if (n->kind != CFG_SCALAR) {
        fail(c, n, "%s: expected a single value, got %s", what, kind_name(n));
        return NULL;
    }
    if (is_null(n)) {
        fail(c, n, "%s has no value (give one, or leave the key out)", what);
        return NULL;
    }
    char why[512];
    size_t len;
    char *s = config_subst(n->text, n->len, &len, &c->budget, why, sizeof(why));
    if (!s) {
        fail(c, n, "%s: %s", what, why);
        return NULL;
    }
    if (memchr(s, 0, len)) {
        fail(c, n, "%s: holds a NUL character", what);
        free(s);
        return NULL;
    }
    if (len_out)
        *len_out = len;
    return s;
}

static json_t *string_value(struct ctx *c, const struct cfg_node *n, const char *what)
{
    char *s = text_of(c, n, what, NULL);
    if (!s)
        return NULL;
    json_t *j = json_string(s);
    if (!j)
        fail(c, n, "%s: not valid UTF-8", what);
    free(s);
    return j;
}

/* Numbers and booleans are plain scalars: a quoted "2" is text, and said so. */
static char *plain_text_of(struct ctx *c, const struct cfg_node *n, const char *what, const char *expected)
{
    char *s = text_of(c, n, what, NULL);
    if (s && !n->plain) {
        fail(c, n, "%s: expected %s, got the quoted text \"%.100s\" (write it without quotes)", what, expected, s);
        free(s);
        return NULL;
    }
    return s;
}

static int uint_value(struct ctx *c, const struct cfg_node *n, const char *what, unsigned min, unsigned max,
                      unsigned *out)
{
    char expected[96];
    snprintf(expected, sizeof(expected), "a whole number from %u to %u", min, max);
    char *s = plain_text_of(c, n, what, expected);
    if (!s)
        return -1;
    unsigned long long v = 0;
    int ok = *s != 0 && strlen(s) <= 12;
    for (const char *p = s; ok && *p; p++)
        ok = *p >= '0' && *p <= '9';
    if (ok)
        v = strtoull(s, NULL, 10);
    int rc = ok && v >= min && v <= max ? 0 : fail(c, n, "%s: expected %s, got \"%.100s\"", what, expected, s);
    free(s);
    if (rc == 0)
        *out = (unsigned)v;
    return rc;
}

static int bool_value(struct ctx *c, const struct cfg_node *n, const char *what, int *out)
{
    char *s = plain_text_of(c, n, what, "true or false");
    if (!s)
        return -1;
    int rc = 0;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = 0;
    else
        rc = fail(c, n, "%s: expected true or false, got \"%.100s\"", what, s);
    free(s);
    return rc;
}

/* memory: K/M/G/T (binary) or a bare number of MiB, a whole number of MiB in range. */
static int memory_value(struct ctx *c, const struct cfg_node *n, unsigned *mib)
{
    char *s = text_of(c, n, "memory", NULL);
    if (!s)
        return -1;
    double bytes = 0;
    int unit = util_parse_scaled(s, 2, &bytes);
    double m = bytes / (1024.0 * 1024);
    int rc = 0;
    if (unit < 1)
        rc = fail(c, n, "memory: \"%.100s\" is not a size: use 512M, 2G or a number of MiB", s);
    else if (m != (double)(unsigned long long)m)
        rc = fail(c, n, "memory: \"%.100s\" is not a whole number of MiB", s);
    else if (m < BOX_MEMORY_MIB_MIN || m > BOX_MEMORY_MIB_MAX)
        rc = fail(c, n, "memory: %.100s is out of range: at least %u MiB, at most 1T", s, BOX_MEMORY_MIB_MIN);
    else
        *mib = (unsigned)m;
    free(s);
    return rc;
}

/* disk: K/M/G/T (binary) or a bare number of bytes, as --disk takes it. */
static int disk_value(struct ctx *c, const struct cfg_node *n, uint64_t *bytes_out)
{
    char *s = text_of(c, n, "disk", NULL);
    if (!s)
        return -1;
    double bytes = 0;
    int rc = 0;
    if (util_parse_scaled(s, 0, &bytes) < 0)
        rc = fail(c, n, "disk: \"%.100s\" is not a size: use 4G, 512M or a number of bytes", s);
    else if (!(bytes >= 1) || bytes > (double)BOX_DISK_BYTES_MAX)
        rc = fail(c, n, "disk: %.100s is out of range: at most 64T", s);
    else
        *bytes_out = (uint64_t)bytes;
    free(s);
    return rc;
}

/* ---- env: a mapping {K: V} or a list ["K=V"] ---- */
static int env_add(struct ctx *c, json_t *env, const struct cfg_node *at, const char *key, const char *value)
{
    if (!*key || strchr(key, '='))
        return fail(c, at, "env: \"%.100s\" is not a variable name (not empty, no '=')", key);
    if (json_object_get(env, key))
        return fail(c, at, "env: %.100s is given twice", key);
    if (json_object_size(env) >= CONFIG_ENV_MAX)
        return fail(c, at, "env: more than %u variables", CONFIG_ENV_MAX);
    json_t *v = json_string(value);
    if (!v || json_object_set_new(env, key, v) < 0)
        return fail(c, at, "env: %.100s is not valid UTF-8", key);
    return 0;
}

static json_t *env_value(struct ctx *c, const struct cfg_node *n)
{
    if (n->kind == CFG_SCALAR)
        return fail(c, n, "env: expected a mapping (KEY: value) or a list of \"KEY=value\", got %s",
                    is_null(n) ? "no value" : kind_name(n)),
               NULL;
    json_t *env = json_object();
    int rc = 0;
    if (n->kind == CFG_MAP) {
        for (size_t i = 0; i + 1 < n->n && rc == 0; i += 2) {
            char *value = n->items[i + 1]->kind == CFG_SCALAR && !is_null(n->items[i + 1])
                              ? text_of(c, n->items[i + 1], "env value", NULL)
                              : NULL;
            if (!value && n->items[i + 1]->kind == CFG_SCALAR && is_null(n->items[i + 1]))
                rc = fail(c, n->items[i + 1], "env: %.100s has no value (write %.100s: \"\" for an empty one)",
                          n->items[i]->text, n->items[i]->text);
            else if (!value && n->items[i + 1]->kind != CFG_SCALAR)
                rc = fail(c, n->items[i + 1], "env: %.100s: expected a single value, got %s", n->items[i]->text,
                          kind_name(n->items[i + 1]));
            else if (!value)
                rc = -1;
            else
                rc = env_add(c, env, n->items[i], n->items[i]->text, value);
            free(value);
        }
    } else {
        for (size_t i = 0; i < n->n && rc == 0; i++) {
            char *kv = text_of(c, n->items[i], "env entry", NULL);
            char *eq = kv ? strchr(kv, '=') : NULL;
            if (!kv)
                rc = -1;
            else if (!eq)
                rc = fail(c, n->items[i], "env: \"%.100s\" is not KEY=value", kv);
            else {
                *eq = 0;
                rc = env_add(c, env, n->items[i], kv, eq + 1);
            }
            free(kv);
        }
    }
    if (rc < 0) {
        json_decref(env);
        return NULL;
    }
    return env;
}

/* ---- network ---- */
static int rules_add(struct ctx *c, const struct cfg_node *list, const char *verb, const char *key,
                     struct box_config *scratch, json_t *rules)
{
    if (list->kind != CFG_SEQ)
        return fail(c, list, "network.%s: expected a list of rules like [\"api.example.com\"], got %s", key,
                    is_null(list) ? "no value" : kind_name(list));
    for (size_t i = 0; i < list->n; i++) {
        char what[64];
        snprintf(what, sizeof(what), "network.%s entry", key);
        char *s = text_of(c, list->items[i], what, NULL);
        if (!s)
            return -1;
        char rule[600], why[512];
        snprintf(rule, sizeof(rule), "%s %.500s", verb, s);
        free(s);
        if (box_config_add_rule(scratch, rule, why, sizeof(why)) < 0)
            return fail(c, list->items[i], "network.%s: %s", key, why);
        json_t *js = json_string(rule);
        if (!js)
            return fail(c, list->items[i], "network.%s: not valid UTF-8", key);
        json_array_append_new(rules, js);
    }
    return 0;
}

/* A list of published ports ("8080:80", "127.0.0.1:8080:80/udp"), checked as the CLI's
 * -p checks them, appended to out. what names the key in messages. */
static int ports_add(struct ctx *c, const struct cfg_node *value, const char *what, struct box_config *scratch,
                     json_t *out)
{
    if (value->kind != CFG_SEQ)
        return fail(c, value, "%s: expected a list like [\"8080:80\"], got %s", what,
                    is_null(value) ? "no value" : kind_name(value));
    for (size_t p = 0; p < value->n; p++) {
        char why[512];
        int rc = 0;
        char *s = text_of(c, value->items[p], "a ports entry", NULL);
        if (!s)
            return -1;
        if (box_config_add_port(scratch, s, why, sizeof(why)) < 0)
            rc = fail(c, value->items[p], "%s: %s", what, why);
        else if (json_array_append_new(out, json_string(s)) < 0)
            rc = fail(c, value->items[p], "%s: not valid UTF-8", what);
        free(s);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static json_t *network_value(struct ctx *c, const struct cfg_node *n)
{
    static const char *const known[] = {"mode", "allow", "deny", "block", "ports", NULL};
    if (n->kind != CFG_MAP)
        return fail(c, n, "network: expected a mapping (mode, allow, deny, ports), got %s",
                    is_null(n) ? "no value" : kind_name(n)),
               NULL;
    struct box_config *scratch = calloc(1, sizeof(*scratch));
    json_t *net = json_pack("{s:n, s:[], s:[]}", "mode", "rules", "ports");
    json_t *deny = json_array();
    const struct cfg_node *deny_key = NULL, *mode_node = NULL;
    enum net_mode mode = NET_MODE_PUBLIC;
    int rc = scratch && net && deny ? 0 : fail(c, n, "out of memory");
    if (scratch)
        box_config_defaults(scratch);
    for (size_t i = 0; i + 1 < n->n && rc == 0; i += 2) {
        const struct cfg_node *key = n->items[i], *value = n->items[i + 1];
        const char *k = key->text;
        if (!strcmp(k, "mode")) {
            json_t *m = string_value(c, value, "network.mode");
            if (!m)
                rc = -1;
            else if (box_net_mode_parse(json_string_value(m), &mode) < 0)
                rc = fail(c, value, "network.mode: \"%.100s\" is not a mode: use %s", json_string_value(m),
                          box_net_mode_choices());
            else
                json_object_set(net, "mode", m);
            json_decref(m);
            mode_node = value;
        } else if (!strcmp(k, "allow")) {
            rc = rules_add(c, value, "allow", k, scratch, json_object_get(net, "rules"));
        } else if (!strcmp(k, "deny") || !strcmp(k, "block")) {
            if (deny_key)
                rc = fail(c, key, "network: deny and block are the same list: use one");
            deny_key = key;
            if (rc == 0)
                rc = rules_add(c, value, "deny", k, scratch, deny);
        } else if (!strcmp(k, "ports")) {
            rc = ports_add(c, value, "network.ports", scratch, json_object_get(net, "ports"));
        } else {
            rc = unknown_key(c, key, "in network", known);
        }
    }
    if (rc == 0)
        json_array_extend(json_object_get(net, "rules"), deny); /* allow first, then deny: first match wins */
    if (rc == 0 && mode == NET_MODE_NONE &&
        (json_array_size(json_object_get(net, "rules")) || json_array_size(json_object_get(net, "ports"))))
        rc = fail(c, mode_node, "network: mode none has no network: rules and ports need mode public or open");
    free(scratch);
    json_decref(deny);
    if (rc < 0) {
        json_decref(net);
        return NULL;
    }
    return net;
}

/* ---- a command: "shell text" (run by /bin/sh -c) | [argv...] ---- */
static json_t *command_value(struct ctx *c, const struct cfg_node *value, const char *what)
{
    json_t *argv = json_array();
    int rc = argv ? 0 : fail(c, value, "out of memory");
    if (rc < 0)
        return NULL;
    if (value->kind == CFG_SEQ) {
        if (!value->n)
            rc = fail(c, value, "%s: an empty list (give the program and its arguments)", what);
        if (value->n > CONFIG_ARGV_MAX)
            rc = fail(c, value, "%s: more than %u words", what, CONFIG_ARGV_MAX);
        for (size_t w = 0; w < value->n && rc == 0; w++) {
            json_t *word = string_value(c, value->items[w], what);
            rc = word ? json_array_append_new(argv, word) : -1;
        }
    } else if (value->kind == CFG_SCALAR) {
        json_t *text = string_value(c, value, what);
        if (!text)
            rc = -1;
        else if (!json_string_length(text))
            rc = fail(c, value, "%s: an empty command", what);
        else {
            json_array_append_new(argv, json_string("/bin/sh"));
            json_array_append_new(argv, json_string("-c"));
            json_array_append(argv, text);
        }
        json_decref(text);
    } else {
        rc = fail(c, value, "%s: expected a command (text, run by /bin/sh -c) or a list (an argv), got %s", what,
                  kind_name(value));
    }
    if (rc < 0) {
        json_decref(argv);
        return NULL;
    }
    return argv;
}

/* ---- healthcheck: {test|cmd, interval, timeout, retries, start_period, on_failure} ---- */
static json_t *healthcheck_value(struct ctx *c, const struct cfg_node *n)
{
    static const char *const known[] = {"test",    "cmd",          "interval",   "timeout",
                                        "retries", "start_period", "on_failure", NULL};
    if (n->kind != CFG_MAP)
        return fail(c, n, "healthcheck: expected a mapping (test, interval, timeout, retries, start_period), got %s",
                    is_null(n) ? "no value" : kind_name(n)),
               NULL;
    struct health_spec s = {.interval_ms = HEALTH_INTERVAL_DEFAULT_MS,
                            .timeout_ms = HEALTH_TIMEOUT_DEFAULT_MS,
                            .retries = HEALTH_RETRIES_DEFAULT};
    json_t *argv = NULL, *on_failure = NULL;
    int rc = 0;
    for (size_t i = 0; i + 1 < n->n && rc == 0; i += 2) {
        const struct cfg_node *key = n->items[i], *value = n->items[i + 1];
        const char *k = key->text;
        char what[64], why[256];
        snprintf(what, sizeof(what), "healthcheck.%s", k);
        if (!strcmp(k, "test") || !strcmp(k, "cmd")) {
            if (argv)
                rc = fail(c, key, "healthcheck: test and cmd are the same command: give one");
            else
                rc = (argv = command_value(c, value, what)) ? 0 : -1;
        } else if (!strcmp(k, "retries")) {
            rc = uint_value(c, value, what, 1, HEALTH_RETRIES_MAX, &s.retries);
        } else if (!strcmp(k, "on_failure")) {
            enum health_on_failure f;
            json_decref(on_failure);
            on_failure = string_value(c, value, what);
            rc = !on_failure ? -1
                 : health_on_failure_parse(json_string_value(on_failure), &f, why, sizeof(why)) < 0
                     ? fail(c, value, "%s: %s", what, why)
                     : 0;
        } else if (!strcmp(k, "interval") || !strcmp(k, "timeout") || !strcmp(k, "start_period")) {
            char *text = text_of(c, value, what, NULL);
            uint32_t ms = 0;
            uint32_t *field = !strcmp(k, "interval")  ? &s.interval_ms
                              : !strcmp(k, "timeout") ? &s.timeout_ms
                                                      : &s.start_period_ms;
            if (!text)
                rc = -1;
            else if (health_duration_parse(text, what, &ms, why, sizeof(why)) < 0)
                rc = fail(c, value, "%s", why);
            else if (field != &s.start_period_ms && ms < HEALTH_DURATION_MIN_MS)
                rc = fail(c, value, "%s: at least 1s", what);
            free(text);
            *field = ms;
        } else {
            rc = unknown_key(c, key, "in healthcheck", known);
        }
    }
    if (rc == 0 && !argv)
        rc = fail(c, n, "healthcheck: give the check's command as test (text, run by /bin/sh -c, or a list)");
    json_t *hc = NULL;
    if (rc == 0)
        hc = json_pack("{s:O, s:I, s:I, s:I, s:I, s:s}", "argv", argv, "interval_ms", (json_int_t)s.interval_ms,
                       "timeout_ms", (json_int_t)s.timeout_ms, "start_period_ms", (json_int_t)s.start_period_ms,
                       "retries", (json_int_t)s.retries, "on_failure",
                       on_failure ? json_string_value(on_failure) : "none");
    if (rc == 0 && !hc)
        fail(c, n, "out of memory");
    json_decref(argv);
    json_decref(on_failure);
    return hc;
}

/* ---- scripts: NAME: "shell text" | [argv...] ---- */
static json_t *scripts_value(struct ctx *c, const struct cfg_node *n)
{
    if (n->kind != CFG_MAP)
        return fail(c, n, "scripts: expected a mapping (NAME: command), got %s",
                    is_null(n) ? "no value" : kind_name(n)),
               NULL;
    if (n->n / 2 > CONFIG_SCRIPTS_MAX)
        return fail(c, n, "scripts: more than %u scripts", CONFIG_SCRIPTS_MAX), NULL;
    json_t *scripts = json_object();
    int rc = 0;
    for (size_t i = 0; i + 1 < n->n && rc == 0; i += 2) {
        const struct cfg_node *key = n->items[i], *value = n->items[i + 1];
        if (!box_name_valid(key->text)) {
            rc = fail(c, key, "script name \"%.100s\": use up to %u letters, digits, '.', '_' or '-'", key->text,
                      BOX_NAME_MAX);
            break;
        }
        char what[128];
        snprintf(what, sizeof(what), "script %s", key->text);
        json_t *argv = command_value(c, value, what);
        rc = argv ? 0 : -1;
        if (rc == 0)
            json_object_set_new(scripts, key->text, argv);
    }
    if (rc < 0) {
        json_decref(scripts);
        return NULL;
    }
    return scripts;
}

/* ---- secrets: [NAME...] (hosts from the box's allow rules) or {NAME: HOST | [HOSTS]} ---- */
static int secret_host(struct ctx *c, const struct cfg_node *h, json_t *hosts)
{
    if (h->kind != CFG_SCALAR || !net_domain_valid(h->text) || !strcmp(h->text, "*"))
        return fail(c, h, "secrets: a host is a host name or *.DOMAIN");
    if (json_array_size(hosts) >= NET_SECRET_HOSTS)
        return fail(c, h, "secrets: at most %d hosts per secret", NET_SECRET_HOSTS);
    json_array_append_new(hosts, json_string(h->text));
    return 0;
}

static json_t *secrets_value(struct ctx *c, const struct cfg_node *n)
{
    if (n->kind == CFG_SCALAR)
        return fail(c, n, "secrets: expected a list of names or a mapping NAME: hosts, got %s",
                    is_null(n) ? "no value" : kind_name(n)),
               NULL;
    int map = n->kind == CFG_MAP;
    size_t count = map ? n->n / 2 : n->n;
    if (count > NET_MAX_SECRETS)
        return fail(c, n, "secrets: at most %d", NET_MAX_SECRETS), NULL;
    json_t *out = json_array();
    for (size_t i = 0; out && i < count; i++) {
        const struct cfg_node *name = map ? n->items[2 * i] : n->items[i], *v = map ? n->items[2 * i + 1] : NULL;
        if (name->kind != CFG_SCALAR || !net_secret_name_valid(name->text)) {
            fail(c, name, "secrets: \"%.64s\" must be an environment variable name", name->text);
            json_decref(out);
            return NULL;
        }
        /* NAME: {hosts: HOSTS, in: [headers, query, body]} names where else the value may go */
        const struct cfg_node *in = NULL;
        int rc = 0;
        if (v && v->kind == CFG_MAP) {
            const struct cfg_node *m = v;
            v = NULL;
            for (size_t k = 0; k + 1 < m->n && rc == 0; k += 2) {
                if (!strcmp(m->items[k]->text, "hosts"))
                    v = m->items[k + 1];
                else if (!strcmp(m->items[k]->text, "in"))
                    in = m->items[k + 1];
                else
                    rc = fail(c, m->items[k], "secrets: %s: unknown key \"%.40s\" (hosts, in)", name->text,
                              m->items[k]->text);
            }
        }
        json_t *hosts = v && !is_null(v) ? json_array() : json_null();
        if (rc == 0 && v && v->kind == CFG_SCALAR && !is_null(v))
            rc = secret_host(c, v, hosts);
        else if (rc == 0 && v && v->kind == CFG_SEQ)
            for (size_t k = 0; k < v->n && rc == 0; k++)
                rc = secret_host(c, v->items[k], hosts);
        else if (rc == 0 && v && v->kind == CFG_MAP)
            rc = fail(c, v, "secrets: %s: expected a host or a list of hosts", name->text);
        json_t *where = json_array();
        for (size_t k = 0; in && rc == 0 && k < (in->kind == CFG_SEQ ? in->n : 1); k++) {
            const struct cfg_node *w = in->kind == CFG_SEQ ? in->items[k] : in;
            unsigned bit;
            if (w->kind != CFG_SCALAR || net_secret_in_word(w->text, strlen(w->text), &bit) < 0)
                rc = fail(c, w, "secrets: %s: in: expected headers, query or body", name->text);
            else
                json_array_append_new(where, json_string(w->text));
        }
        if (rc < 0) {
            json_decref(where);
            json_decref(hosts);
            json_decref(out);
            return NULL;
        }
        json_t *entry = json_pack("{s:s, s:o}", "name", name->text, "hosts", hosts);
        if (entry && json_array_size(where))
            json_object_set_new(entry, "in", where);
        else
            json_decref(where);
        json_array_append_new(out, entry);
    }
    return out;
}

/* ---- one box ---- */
static const char *const box_keys[] = {"image",   "rootfs",           "cpus",    "memory",      "disk",
                                       "env",     "workdir",          "user",    "ephemeral",   "network",
                                       "scripts", "command",          "restart", "healthcheck", "ports",
                                       "secrets", "secret_violation", NULL};

static json_t *new_box(const char *name)
{
    return json_pack("{s:s, s:n, s:n, s:i, s:i, s:I, s:n, s:n, s:n, s:b, s:n, s:n, s:n, s:n, s:n}", "name", name,
                     "image", "rootfs", "cpus", 0, "memory_mib", 0, "disk_bytes", (json_int_t)0, "env", "workdir",
                     "user", "ephemeral", 0, "network", "scripts", "command", "restart", "healthcheck");
}

static int box_field(struct ctx *c, json_t *box, const struct cfg_node *key, const struct cfg_node *value)
{
    const char *k = key->text;
    json_t *v = NULL;
    if (!strcmp(k, "image") || !strcmp(k, "rootfs") || !strcmp(k, "user")) {
        v = string_value(c, value, k);
        if (v && !json_string_length(v)) {
            json_decref(v);
            return fail(c, value, "%s: empty", k);
        }
        if (v && !strcmp(k, "rootfs") && json_string_value(v)[0] != '/' && c->base_dir) {
            char path[PATH_MAX + 8];
            if ((size_t)snprintf(path, sizeof(path), "%s/%s", c->base_dir, json_string_value(v)) >= sizeof(path)) {
                json_decref(v);
                return fail(c, value, "rootfs: the path is too long");
            }
            json_decref(v);
            v = json_string(path);
        }
    } else if (!strcmp(k, "workdir")) {
        v = string_value(c, value, k);
        if (v && json_string_value(v)[0] != '/') {
            fail(c, value, "workdir: \"%.100s\" must be an absolute path in the box", json_string_value(v));
            json_decref(v);
            return -1;
        }
    } else if (!strcmp(k, "cpus")) {
        unsigned cpus = 0;
        if (uint_value(c, value, k, BOX_CPUS_MIN, BOX_CPUS_MAX, &cpus) == 0)
            v = json_integer(cpus);
    } else if (!strcmp(k, "memory")) {
        unsigned mib = 0;
        if (memory_value(c, value, &mib) == 0)
            v = json_integer(mib);
        k = "memory_mib";
    } else if (!strcmp(k, "disk")) {
        uint64_t bytes = 0;
        if (disk_value(c, value, &bytes) == 0)
            v = json_integer((json_int_t)bytes);
        k = "disk_bytes";
    } else if (!strcmp(k, "ephemeral")) {
        int b = 0;
        if (bool_value(c, value, k, &b) == 0)
            v = json_boolean(b);
    } else if (!strcmp(k, "env")) {
        v = env_value(c, value);
    } else if (!strcmp(k, "network")) {
        v = network_value(c, value);
    } else if (!strcmp(k, "scripts")) {
        v = scripts_value(c, value);
    } else if (!strcmp(k, "command")) {
        v = command_value(c, value, "command");
    } else if (!strcmp(k, "healthcheck")) {
        v = healthcheck_value(c, value);
    } else if (!strcmp(k, "restart")) {
        v = string_value(c, value, k);
        enum main_restart r;
        unsigned n;
        char why[256];
        if (v && main_restart_parse(json_string_value(v), &r, &n, why, sizeof(why)) < 0) {
            json_decref(v);
            return fail(c, value, "%s", why);
        }
    } else if (!strcmp(k, "secrets")) {
        v = secrets_value(c, value);
    } else if (!strcmp(k, "secret_violation")) {
        v = string_value(c, value, k);
        int action;
        char why[160];
        if (v && net_secret_violation_parse(json_string_value(v), &action, why, sizeof(why)) < 0) {
            json_decref(v);
            return fail(c, value, "secret_violation: %s", why);
        }
    } else if (!strcmp(k, "volumes")) {
        return fail(c, key, "%s are not supported yet (cocoon does not have them; remove the key)", k);
    } else {
        return unknown_key(c, key, "in a box", box_keys);
    }
    if (!v)
        return -1;
    json_object_set_new(box, k, v);
    return 0;
}

/* A box's own "ports:" (compose's place for them) joins network.ports; the whole list is
 * checked again so both places together stay within the box's limit. */
static int box_ports(struct ctx *c, json_t *box, const struct cfg_node *value)
{
    json_t *net = json_object_get(box, "network");
    if (json_is_null(net) || !net) {
        net = json_pack("{s:n, s:[], s:[]}", "mode", "rules", "ports");
        if (!net || json_object_set_new(box, "network", net) < 0)
            return fail(c, value, "out of memory");
    }
    const char *mode = json_string_value(json_object_get(net, "mode"));
    if (mode && !strcmp(mode, "none"))
        return fail(c, value, "ports: the box has network mode none: published ports need mode public or open");
    struct box_config *scratch = calloc(1, sizeof(*scratch));
    if (!scratch)
        return fail(c, value, "out of memory");
    box_config_defaults(scratch);
    json_t *list = json_object_get(net, "ports");
    int rc = 0;
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        char why[512];
        if (box_config_add_port(scratch, json_string_value(p), why, sizeof(why)) < 0) {
            rc = fail(c, value, "ports: %s", why);
            break;
        }
    }
    if (rc == 0)
        rc = ports_add(c, value, "ports", scratch, list);
    free(scratch);
    return rc;
}

static json_t *box_value(struct ctx *c, const struct cfg_node *name, const struct cfg_node *n)
{
    if (!box_name_valid(name->text))
        return fail(c, name,
                    "box name \"%.100s\": use up to %u letters, digits, '.', '_' or '-', not starting with '.' or '-'",
                    name->text, BOX_NAME_MAX),
               NULL;
    json_t *box = new_box(name->text);
    if (!box)
        return fail(c, name, "out of memory"), NULL;
    int rc = 0;
    if (n->kind == CFG_MAP) {
        const struct cfg_node *image = NULL, *rootfs = NULL, *restart = NULL, *ports = NULL;
        for (size_t i = 0; i + 1 < n->n && rc == 0; i += 2) {
            if (!strcmp(n->items[i]->text, "ports"))
                ports = n->items[i + 1]; /* merged into network once network (in any order) is read */
            else
                rc = box_field(c, box, n->items[i], n->items[i + 1]);
            if (!strcmp(n->items[i]->text, "image"))
                image = n->items[i];
            if (!strcmp(n->items[i]->text, "rootfs"))
                rootfs = n->items[i];
            if (!strcmp(n->items[i]->text, "restart"))
                restart = n->items[i];
        }
        if (rc == 0 && image && rootfs)
            rc = fail(c, image->line > rootfs->line ? image : rootfs, "box %s: give either image or rootfs, not both",
                      name->text);
        if (rc == 0 && ports)
            rc = box_ports(c, box, ports);
        if (rc == 0 && restart && json_is_null(json_object_get(box, "command")))
            rc = fail(c, restart, "box %s: restart needs a command (the box's main process)", name->text);
    } else if (!is_null(n)) { /* "name:" alone: a box with every default */
        rc = fail(c, n, "box %.100s: expected a mapping of its settings, got %s", name->text, kind_name(n));
    }
    char digest[80];
    if (rc == 0 && config_box_digest(box, digest) < 0)
        rc = fail(c, name, "out of memory");
    if (rc < 0) {
        json_decref(box);
        return NULL;
    }
    json_object_set_new(box, "digest", json_string(digest));
    return box;
}

json_t *cfg_normalize(const struct cfg_node *root, const char *file, const char *abs_path, const char *base_dir,
                      char *err, size_t errlen)
{
    static const char *const top_keys[] = {"boxes", "sandboxes", NULL};
    struct ctx c = {.file = file, .err = err, .errlen = errlen, .budget = CONFIG_EXPANDED_MAX, .base_dir = base_dir};
    if (!root || is_null(root)) {
        snprintf(err, errlen, "%s: the file is empty: describe boxes under \"boxes:\" (see docs/config.md)", file);
        return NULL;
    }
    if (root->kind != CFG_MAP)
        return fail(&c, root, "expected a mapping with \"boxes:\", got %s", kind_name(root)), NULL;
    const struct cfg_node *boxes = NULL, *boxes_key = NULL;
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        const struct cfg_node *key = root->items[i];
        if (strcmp(key->text, "boxes") && strcmp(key->text, "sandboxes"))
            return unknown_key(&c, key, "at the top", top_keys), NULL;
        if (boxes)
            return fail(&c, key, "boxes and sandboxes are the same list (first at line %u): use one", boxes_key->line),
                   NULL;
        boxes = root->items[i + 1];
        boxes_key = key;
    }
    if (!boxes)
        return fail(&c, root, "no \"boxes:\" in the file"), NULL;
    if (boxes->kind != CFG_MAP || !boxes->n)
        return fail(&c, boxes, "%s: expected a mapping of box names to their settings, got %s", boxes_key->text,
                    boxes->kind == CFG_MAP ? "an empty one"
                    : is_null(boxes)       ? "no value"
                                           : kind_name(boxes)),
               NULL;
    if (boxes->n / 2 > CONFIG_BOXES_MAX)
        return fail(&c, boxes, "more than %u boxes in one file", CONFIG_BOXES_MAX), NULL;
    json_t *list = json_array();
    for (size_t i = 0; i + 1 < boxes->n; i += 2) {
        json_t *box = box_value(&c, boxes->items[i], boxes->items[i + 1]);
        if (!box) {
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, box);
    }
    return json_pack("{s:s, s:o}", "file", abs_path, "boxes", list);
}
