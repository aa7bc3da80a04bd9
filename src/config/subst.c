/* ${NAME} and ${NAME:-default} in a config file's values, from the environment: the one
 * substitution a config file has. $$ is a literal $; any other $ stays as written. An
 * unset variable without a default is an error, never an empty string. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/subst.h"

struct out {
    char *buf;
    size_t len, cap;
};

static int put(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > CONFIG_VALUE_MAX + 1)
        return -1;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *grown = realloc(o->buf, cap);
        if (!grown)
            return -1;
        o->buf = grown;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = 0;
    return 0;
}

static int name_start(int c) { return isalpha(c) || c == '_'; }
static int name_char(int c) { return isalnum(c) || c == '_'; }

char *config_subst(const char *in, size_t len, size_t *out_len, size_t *budget, char *why, size_t whylen)
{
    struct out o = {0};
    if (put(&o, "", 0) < 0)
        goto nomem;
    for (size_t i = 0; i < len;) {
        const char *dollar = memchr(in + i, '$', len - i);
        size_t upto = dollar ? (size_t)(dollar - in) : len;
        if (put(&o, in + i, upto - i) < 0)
            goto too_long;
        i = upto;
        if (i >= len)
            break;
        if (i + 1 < len && in[i + 1] == '$') { /* $$: a literal $ */
            if (put(&o, "$", 1) < 0)
                goto too_long;
            i += 2;
            continue;
        }
        if (i + 1 >= len || in[i + 1] != '{') { /* $NAME, a lone $: as written */
            if (put(&o, "$", 1) < 0)
                goto too_long;
            i++;
            continue;
        }
        size_t start = i + 2, j = start;
        if (j >= len || !name_start((unsigned char)in[j])) {
            snprintf(why, whylen,
                     "\"${\" must be followed by a variable name (letters, digits, '_'; write $$ for a $)");
            goto fail;
        }
        while (j < len && name_char((unsigned char)in[j]))
            j++;
        size_t name_len = j - start;
        const char *def = NULL;
        size_t def_len = 0;
        if (j + 1 < len && in[j] == ':' && in[j + 1] == '-') {
            def = in + j + 2;
            const char *close = memchr(def, '}', len - (j + 2));
            if (!close) {
                snprintf(why, whylen, "\"${%.*s:-\" has no closing \"}\"", (int)(name_len > 100 ? 100 : name_len),
                         in + start);
                goto fail;
            }
            def_len = (size_t)(close - def);
            j = (size_t)(close - in);
        }
        if (j >= len || in[j] != '}') {
            snprintf(why, whylen, "\"${%.*s\" must end with \"}\" (only ${NAME} and ${NAME:-default} are substituted)",
                     (int)(name_len > 100 ? 100 : name_len), in + start);
            goto fail;
        }
        char name[256];
        if (name_len >= sizeof(name)) {
            snprintf(why, whylen, "a variable name longer than %zu characters", sizeof(name) - 1);
            goto fail;
        }
        memcpy(name, in + start, name_len);
        name[name_len] = 0;
        const char *value = getenv(name);
        size_t value_len = value ? strlen(value) : 0;
        if (!value && !def) {
            snprintf(why, whylen, "${%s} is not set in the environment (set it, or write ${%s:-DEFAULT})", name, name);
            goto fail;
        }
        if (!value) {
            value = def;
            value_len = def_len;
        }
        if (value_len > *budget) {
            snprintf(why, whylen, "substitutions add more than %u bytes to the file", CONFIG_EXPANDED_MAX);
            goto fail;
        }
        *budget -= value_len;
        if (put(&o, value, value_len) < 0)
            goto too_long;
        i = j + 1;
    }
    *out_len = o.len;
    return o.buf;
too_long:
    if (!o.buf)
        goto nomem;
    snprintf(why, whylen, "longer than %u bytes after substitution", CONFIG_VALUE_MAX);
    goto fail;
nomem:
    snprintf(why, whylen, "out of memory");
fail:
    free(o.buf);
    return NULL;
}
