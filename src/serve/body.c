/* Request bodies and per-request libcocoon handles: a JSON body checked field by field
 * (type, range, unknown keys) with a 400 that names the field, and the runtime and box a
 * handler works on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

json_t *serve_body_object(struct req *r)
{
    if (!r->body || r->body_len == 0)
        return json_object();
    if (memchr(r->body, '\0', r->body_len)) {
        serve_error(r, 400, "invalid_argument", "the request body is not JSON (it holds a NUL byte)");
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        serve_error(r, 400, "invalid_argument", "the request body is not valid JSON: %s (line %d, column %d)",
                    jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        serve_error(r, 400, "invalid_argument", "the request body must be a JSON object");
        return NULL;
    }
    return v;
}

int serve_only_keys(struct req *r, json_t *obj, const char *const *keys)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        int known = 0;
        for (size_t i = 0; keys[i] && !known; i++)
            known = strcmp(keys[i], key) == 0;
        if (!known) {
            serve_error(r, 400, "invalid_argument", "unknown field \"%.200s\"", key);
            return -1;
        }
    }
    return 0;
}

int serve_get_string(struct req *r, json_t *obj, const char *key, size_t max, const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        serve_error(r, 400, "invalid_argument", "field \"%s\" must be a string", key);
        return -1;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) {
        serve_error(r, 400, "invalid_argument", "field \"%s\" holds a NUL character", key);
        return -1;
    }
    if (json_string_length(v) > max) {
        serve_error(r, 400, "invalid_argument", "field \"%s\" is longer than %zu bytes", key, max);
        return -1;
    }
    *out = s;
    return 0;
}

/* A whole number that a cast to long long keeps: one out of its range (1e300) may not
 * be cast at all. */
static int real_is_whole(double x) { return x > -9.2e18 && x < 9.2e18 && x == (double)(long long)x; }

int serve_get_uint(struct req *r, json_t *obj, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v) && real_is_whole(json_real_value(v)))
        d = json_real_value(v);
    else {
        serve_error(r, 400, "invalid_argument", "field \"%s\" must be an integer", key);
        return -1;
    }
    if (d < (double)min || d > (double)max) {
        serve_error(r, 400, "invalid_argument", "field \"%s\" must be between %llu and %llu", key,
                    (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = json_is_integer(v) ? (uint64_t)json_integer_value(v) : (uint64_t)d;
    return 0;
}

int serve_get_seconds(struct req *r, json_t *obj, const char *key, double max_s, double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > max_s)
        return serve_error(r, 400, "invalid_argument", "field \"%s\" must be a number of seconds from 0 to %.0f", key,
                           max_s);
    *out = json_number_value(v);
    return 0;
}

int serve_get_bool(struct req *r, json_t *obj, const char *key, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        serve_error(r, 400, "invalid_argument", "field \"%s\" must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

int serve_get_strings(struct req *r, json_t *obj, const char *key, size_t max_items, const char ***out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        serve_error(r, 400, "invalid_argument", "field \"%s\" must be an array of strings", key);
        return -1;
    }
    size_t n = json_array_size(v);
    if (n > max_items) {
        serve_error(r, 400, "invalid_argument", "field \"%s\" has more than %zu items", key, max_items);
        return -1;
    }
    const char **list = calloc(n + 1, sizeof(*list));
    if (!list) {
        serve_error(r, 503, "resource_exhausted", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(v, i);
        if (!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item)) {
            free(list);
            serve_error(r, 400, "invalid_argument", "field \"%s\" item %zu must be a string without NUL characters",
                        key, i);
            return -1;
        }
        list[i] = json_string_value(item);
    }
    *out = list;
    return 0;
}

void serve_free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

int serve_get_env(struct req *r, json_t *obj, const char *key, char ***out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        serve_error(r, 400, "invalid_argument", "field \"%s\" must be an object of string values", key);
        return -1;
    }
    size_t n = json_object_size(v);
    if (n > 4096) {
        serve_error(r, 400, "invalid_argument", "field \"%s\" has more than 4096 variables", key);
        return -1;
    }
    char **env = calloc(n + 1, sizeof(*env));
    if (!env) {
        serve_error(r, 503, "resource_exhausted", "out of memory");
        return -1;
    }
    size_t i = 0;
    const char *name;
    json_t *value;
    json_object_foreach(v, name, value)
    {
        const char *bad = NULL;
        if (!name[0] || strchr(name, '='))
            bad = "a variable name must be non-empty and hold no '='";
        else if (!json_is_string(value) || strlen(json_string_value(value)) != json_string_length(value))
            bad = "a value must be a string without NUL characters";
        if (bad || asprintf(&env[i], "%s=%s", name, bad ? "" : json_string_value(value)) < 0) {
            env[i] = NULL;
            serve_free_env(env);
            serve_error(r, 400, "invalid_argument", "field \"%s\", variable \"%.100s\": %s", key, name,
                        bad ? bad : "out of memory");
            return -1;
        }
        i++;
    }
    *out = env;
    return 0;
}

int serve_runtime_open(cocoon_runtime **rt, cocoon_error *err)
{
    cocoon_runtime_options o;
    cocoon_runtime_options_init(&o);
    o.home = serve_cfg.home;
    return cocoon_runtime_open(&o, rt, err);
}

int serve_runtime(struct req *r, cocoon_runtime **rt)
{
    cocoon_error err;
    if (serve_runtime_open(rt, &err) < 0) {
        serve_error(r, 500, "internal", "cannot open cocoon's state: %s", err.message);
        return -1;
    }
    return 0;
}

int serve_open_box(struct req *r, cocoon_runtime *rt, cocoon_box **box)
{
    cocoon_error err;
    if (cocoon_box_open(rt, r->route.box, box, &err) < 0) {
        if (err.code == COCOON_E_NOT_FOUND || err.code == COCOON_E_INVALID)
            serve_error(r, 404, "not_found", "no box has the id or name \"%s\"", r->route.box);
        else
            serve_cocoon_error(r, &err);
        return -1;
    }
    return 0;
}

int serve_open_runtime_box(struct req *r, cocoon_runtime **rt, cocoon_box **box)
{
    if (serve_runtime(r, rt) < 0)
        return -1;
    if (serve_open_box(r, *rt, box) < 0) {
        cocoon_runtime_close(*rt);
        return -1;
    }
    return 0;
}

void serve_close_runtime_box(cocoon_runtime *rt, cocoon_box *box)
{
    cocoon_box_close(box);
    cocoon_runtime_close(rt);
}
