/* The saved-state stream of the kvm backend (snap.h): a writer that grows a buffer up
 * to SNAP_MAX_BYTES and a reader that checks every length against the end. */
#include "kvm/snap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void snap_w__init(struct snap_w *w) { memset(w, 0, sizeof(*w)); }

void snap_w__free(struct snap_w *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

static uint8_t *room(struct snap_w *w, size_t n)
{
    if (w->oom)
        return NULL;
    if (n > SNAP_MAX_BYTES - w->len) {
        w->oom = 1;
        return NULL;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->oom = 1;
            return NULL;
        }
        w->buf = b;
        w->cap = cap;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put(struct snap_w *w, uint64_t v, int n)
{
    uint8_t *p = room(w, (size_t)n);
    if (p)
        put_le(p, v, n);
}

void snap_w__u8(struct snap_w *w, uint8_t v) { put(w, v, 1); }
void snap_w__u16(struct snap_w *w, uint16_t v) { put(w, v, 2); }
void snap_w__u32(struct snap_w *w, uint32_t v) { put(w, v, 4); }
void snap_w__u64(struct snap_w *w, uint64_t v) { put(w, v, 8); }

void snap_w__bytes(struct snap_w *w, const void *p, size_t len)
{
    uint8_t *d = room(w, len);
    if (d && len)
        memcpy(d, p, len);
}

size_t snap_w__begin(struct snap_w *w, uint32_t tag)
{
    snap_w__u32(w, tag);
    size_t mark = w->len;
    snap_w__u32(w, 0);
    return mark;
}

void snap_w__end(struct snap_w *w, size_t mark)
{
    if (w->oom || mark + 4 > w->len)
        return;
    put_le(w->buf + mark, (uint64_t)(w->len - mark - 4), 4);
}

void snap_r__init(struct snap_r *r, const void *p, size_t len)
{
    memset(r, 0, sizeof(*r));
    r->p = p;
    r->len = p ? len : 0;
}

int snap_r__fail(struct snap_r *r, const char *fmt, ...)
{
    if (!r->bad) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->why, sizeof(r->why), fmt, ap);
        va_end(ap);
    }
    r->bad = 1;
    return -1;
}

static uint64_t get(struct snap_r *r, int n)
{
    if (r->bad || (size_t)n > r->len - r->off) {
        snap_r__fail(r, "the saved state ends early (%zu bytes, %d more wanted at %zu)", r->len, n, r->off);
        return 0;
    }
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | r->p[r->off + (size_t)i];
    r->off += (size_t)n;
    return v;
}

uint8_t snap_r__u8(struct snap_r *r) { return (uint8_t)get(r, 1); }
uint16_t snap_r__u16(struct snap_r *r) { return (uint16_t)get(r, 2); }
uint32_t snap_r__u32(struct snap_r *r) { return (uint32_t)get(r, 4); }
uint64_t snap_r__u64(struct snap_r *r) { return get(r, 8); }

int snap_r__bytes(struct snap_r *r, void *out, size_t len)
{
    if (r->bad || len > r->len - r->off)
        return snap_r__fail(r, "the saved state ends early (%zu bytes, %zu more wanted at %zu)", r->len, len, r->off);
    if (len)
        memcpy(out, r->p + r->off, len);
    r->off += len;
    return 0;
}

int snap_r__next(struct snap_r *r, uint32_t *tag, struct snap_r *sub)
{
    if (r->bad)
        return -1;
    if (r->off == r->len)
        return 0;
    uint32_t t = snap_r__u32(r), n = snap_r__u32(r);
    if (r->bad || n > r->len - r->off)
        return snap_r__fail(r, "a section of the saved state runs past its end (%u bytes at %zu of %zu)", n, r->off,
                            r->len);
    *tag = t;
    snap_r__init(sub, r->p + r->off, n);
    r->off += n;
    return 1;
}

int snap_r__section(const struct snap_r *r, uint32_t tag, struct snap_r *sub)
{
    struct snap_r walk;
    snap_r__init(&walk, r->p, r->len);
    uint32_t t;
    int rc;
    while ((rc = snap_r__next(&walk, &t, sub)) == 1)
        if (t == tag)
            return 0;
    return -1;
}
