/* Text helpers: untrusted text (a guest's diagnostics, names from its archives) made
 * safe to put in a message that ends up on a terminal (no escape sequences, no line
 * breaks that could forge further output, no bidi tricks, a bounded length), and the
 * strict parsing of counts given in the environment. */
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (at most n bytes) and its code point, or 0. */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t v, min;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    } else if ((p[0] & 0xe0) == 0xc0) {
        len = 2, v = p[0] & 0x1f, min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3, v = p[0] & 0x0f, min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4, v = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/* Code points a terminal acts on or that reorder the text around them. */
static int is_unsafe(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == 0x061c || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

char *util_escape_text(char *out, size_t cap, const void *in, size_t len)
{
    if (cap == 0)
        return out;
    const unsigned char *p = in;
    size_t o = 0, i = 0, limit = cap - 1;
    while (i < len) {
        char piece[16];
        size_t plen;
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0) {
            plen = (size_t)snprintf(piece, sizeof(piece), "\\x%02x", p[i]);
            n = 1;
        } else if (cp == '\n' || cp == '\t' || cp == '\r' || cp == '\\') {
            plen = (size_t)snprintf(piece, sizeof(piece), "\\%c",
                                    cp == '\n'   ? 'n'
                                    : cp == '\t' ? 't'
                                    : cp == '\r' ? 'r'
                                                 : '\\');
        } else if (is_unsafe(cp)) {
            plen = (size_t)snprintf(piece, sizeof(piece), cp < 0x80 ? "\\x%02x" : "\\u%04x", (unsigned)cp);
        } else {
            memcpy(piece, p + i, n);
            plen = n;
        }
        int last = i + n == len;
        if (o + plen > limit || (!last && o + plen + 3 > limit)) {
            if (last && o + plen <= limit) {
                memcpy(out + o, piece, plen);
                o += plen;
            } else {
                for (size_t k = 0; k < 3 && o < limit; k++)
                    out[o++] = '.';
            }
            break;
        }
        memcpy(out + o, piece, plen);
        o += plen;
        i += n;
    }
    out[o] = 0;
    return out;
}

int util_parse_count(const char *s, int suffixes, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    int shift = 0;
    if (s[i] && suffixes && !s[i + 1]) {
        static const char units[] = "KMGT";
        const char *u = strchr(units, s[i] & ~0x20);
        if (!u || !*u)
            return -1;
        shift = 10 * (int)(u - units + 1);
        i++;
    }
    if (i == 0 || s[i] || v == 0 || v > (UINT64_MAX >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

void util_join_words(char *out, size_t cap, char *const *argv, size_t n)
{
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && argv[i] && used + 1 < cap; i++) {
        int w = snprintf(out + used, cap - used, "%s%s", i ? " " : "", argv[i]);
        if (w < 0)
            break;
        used += (size_t)w < cap - used ? (size_t)w : cap - used - 1;
    }
}

uint64_t util_env_bytes(const char *name, uint64_t def, uint64_t min)
{
    const char *e = getenv(name);
    char *end;
    unsigned long long v = e && *e ? strtoull(e, &end, 10) : 0;
    if (!v || *end)
        return def;
    return v < min ? min : v;
}
