/* What tells two versions of a box apart: the digest of its normalized spec (what
 * `cocoon up` compares) and, when they differ, the differences in words. The name and
 * the scripts are not part of it: a new script does not recreate a box. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "image/image_int.h"

static const char *const spec_fields[] = {"image",   "rootfs", "cpus",      "memory_mib", "disk_bytes", "env",
                                          "workdir", "user",   "ephemeral", "network",    NULL};
/* Fields added later count only when set, so a box made before them keeps its digest. */
static const char *const spec_fields_if_set[] = {"command", "restart", "healthcheck", NULL};

int config_box_digest(const json_t *box, char out[80])
{
    json_t *spec = json_object();
    for (size_t i = 0; spec_fields[i]; i++) {
        json_t *v = json_object_get(box, spec_fields[i]);
        json_object_set(spec, spec_fields[i], v ? v : json_null());
    }
    for (size_t i = 0; spec_fields_if_set[i]; i++) {
        json_t *v = json_object_get(box, spec_fields_if_set[i]);
        if (v && !json_is_null(v))
            json_object_set(spec, spec_fields_if_set[i], v);
    }
    char *text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(spec);
    if (!text)
        return -1;
    char digest[IMAGE_DIGEST_MAX];
    sha256_digest_of(text, strlen(text), digest);
    free(text);
    snprintf(out, 80, "%s", digest);
    return 0;
}

struct diff {
    char *out;
    size_t cap, len;
};

static void say(struct diff *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct diff *d, const char *fmt, ...)
{
    if (d->len + 1 >= d->cap)
        return;
    if (d->len)
        d->len += (size_t)snprintf(d->out + d->len, d->cap - d->len, ", ");
    if (d->len + 1 >= d->cap) {
        d->len = d->cap - 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->out + d->len, d->cap - d->len, fmt, ap);
    va_end(ap);
    d->len = n < 0 || d->len + (size_t)n >= d->cap ? d->cap - 1 : d->len + (size_t)n;
}

/* A value as people read it: null and 0 are "default". */
static void show(const json_t *v, const char *unit, char *buf, size_t cap)
{
    if (!v || json_is_null(v) || (json_is_integer(v) && json_integer_value(v) == 0))
        snprintf(buf, cap, "default");
    else if (json_is_string(v))
        snprintf(buf, cap, "%.200s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    else
        snprintf(buf, cap, "%lld%s", (long long)json_integer_value(v), unit);
}

static void scalar_change(struct diff *d, const json_t *a, const json_t *b, const char *label, const char *unit)
{
    int a_none = !a || json_is_null(a), b_none = !b || json_is_null(b);
    if ((a_none && b_none) || json_equal((json_t *)a, (json_t *)b))
        return;
    char x[256], y[256];
    show(a, "", x, sizeof(x)); /* "memory 512 -> 1024 MiB": the unit once */
    show(b, unit, y, sizeof(y));
    say(d, "%s %s -> %s", label, x, y);
}

static void env_change(struct diff *d, json_t *a, json_t *b)
{
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v)
    {
        json_t *old = json_object_get(a, key);
        if (!old)
            say(d, "env %.100s added", key);
        else if (!json_equal(old, v))
            say(d, "env %.100s changed", key);
    }
    json_object_foreach(a, key, v)
    {
        if (!json_object_get(b, key))
            say(d, "env %.100s removed", key);
    }
}

/* A missing list (no network) equals an empty one. */
static int lists_equal(json_t *a, json_t *b)
{
    if (!a || !b)
        return json_array_size(a) == 0 && json_array_size(b) == 0;
    return json_equal(a, b);
}

void config_box_diff(const json_t *old_box, const json_t *new_box, char *out, size_t cap)
{
    struct diff d = {.out = out, .cap = cap};
    if (cap)
        out[0] = 0;
    json_t *a = (json_t *)old_box, *b = (json_t *)new_box;
    scalar_change(&d, json_object_get(a, "image"), json_object_get(b, "image"), "image", "");
    scalar_change(&d, json_object_get(a, "rootfs"), json_object_get(b, "rootfs"), "rootfs", "");
    scalar_change(&d, json_object_get(a, "cpus"), json_object_get(b, "cpus"), "cpus", "");
    scalar_change(&d, json_object_get(a, "memory_mib"), json_object_get(b, "memory_mib"), "memory", " MiB");
    scalar_change(&d, json_object_get(a, "disk_bytes"), json_object_get(b, "disk_bytes"), "disk", " bytes");
    env_change(&d, json_object_get(a, "env"), json_object_get(b, "env"));
    scalar_change(&d, json_object_get(a, "workdir"), json_object_get(b, "workdir"), "workdir", "");
    scalar_change(&d, json_object_get(a, "user"), json_object_get(b, "user"), "user", "");
    scalar_change(&d, json_object_get(a, "ephemeral"), json_object_get(b, "ephemeral"), "ephemeral", "");
    json_t *na = json_object_get(a, "network"), *nb = json_object_get(b, "network");
    scalar_change(&d, json_object_get(na, "mode"), json_object_get(nb, "mode"), "network mode", "");
    if (!lists_equal(json_object_get(na, "rules"), json_object_get(nb, "rules")))
        say(&d, "network rules changed");
    if (!lists_equal(json_object_get(na, "ports"), json_object_get(nb, "ports")))
        say(&d, "network ports changed");
    if (!lists_equal(json_object_get(a, "command"), json_object_get(b, "command")))
        say(&d, "command changed");
    scalar_change(&d, json_object_get(a, "restart"), json_object_get(b, "restart"), "restart", "");
    if (!json_equal(json_object_get(a, "healthcheck") ? json_object_get(a, "healthcheck") : json_null(),
                    json_object_get(b, "healthcheck") ? json_object_get(b, "healthcheck") : json_null()))
        say(&d, "healthcheck changed");
}
