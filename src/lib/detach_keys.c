/* Parsing and matching of detach key sequences (detach_keys.h). A mismatch after a
 * partial match lets the first held byte go and feeds the rest again, so a sequence
 * whose keys repeat ("a,a,b" in "aaab") is still found. */
#include "lib/detach_keys.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* One key: "x" or "ctrl-x"; -1 when it is neither. */
static int parse_key(const char *s, size_t n, uint8_t *out)
{
    if (n == 1 && s[0] >= 0x20 && s[0] < 0x7f) {
        *out = (uint8_t)s[0];
        return 0;
    }
    if (n != 6 || strncasecmp(s, "ctrl-", 5) != 0)
        return -1;
    char c = s[5];
    if (isalpha((unsigned char)c)) {
        *out = (uint8_t)(tolower((unsigned char)c) - 'a' + 1);
        return 0;
    }
    const char *specials = "@[\\]^_"; /* 0, 27..31 */
    const char *at = strchr(specials, c);
    if (!at || !c)
        return -1;
    *out = at == specials ? 0 : (uint8_t)(27 + (at - specials) - 1);
    return 0;
}

int detach_keys_parse(const char *spec, struct detach_keys *k, char *err, size_t cap)
{
    memset(k, 0, sizeof(*k));
    if (!spec || !spec[0])
        return 0;
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (k->len == DETACH_KEYS_MAX) {
            snprintf(err, cap, "detach keys \"%s\": at most %d keys", spec, DETACH_KEYS_MAX);
            return -1;
        }
        if (parse_key(p, n, &k->seq[k->len]) < 0) {
            snprintf(err, cap,
                     "detach keys \"%s\": \"%.*s\" is not a key (a character, or ctrl- and a letter or one of "
                     "@[\\]^_, keys separated by commas: \"ctrl-p,ctrl-q\")",
                     spec, (int)(n > 32 ? 32 : n), p);
            memset(k, 0, sizeof(*k));
            return -1;
        }
        k->len++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int step(struct detach_keys *k, uint8_t b, uint8_t *out, size_t *out_len, int depth)
{
    for (;;) {
        if (b == k->seq[k->matched]) {
            if (++k->matched == k->len) {
                k->matched = 0;
                return 1;
            }
            return 0;
        }
        if (k->matched == 0) {
            out[(*out_len)++] = b;
            return 0;
        }
        /* The held bytes are seq[0..matched): the first goes out, the rest are tried again. */
        size_t held = k->matched;
        k->matched = 0;
        out[(*out_len)++] = k->seq[0];
        for (size_t i = 1; i < held && depth < DETACH_KEYS_MAX; i++)
            if (step(k, k->seq[i], out, out_len, depth + 1))
                return 1; /* cannot happen: fewer than len bytes; kept for safety */
    }
}

int detach_keys_feed(struct detach_keys *k, const uint8_t *in, size_t n, uint8_t *out, size_t *out_len)
{
    if (!k->len) {
        memcpy(out + *out_len, in, n);
        *out_len += n;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (step(k, in[i], out, out_len, 0))
            return 1;
    return 0;
}

void detach_keys_flush(struct detach_keys *k, uint8_t *out, size_t *out_len)
{
    memcpy(out + *out_len, k->seq, k->matched);
    *out_len += k->matched;
    k->matched = 0;
}
