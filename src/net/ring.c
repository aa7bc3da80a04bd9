/* The byte rings of TCP connections (ring.h): the ring operations, growth within the
 * stack's memory budget, and the pool of freed smallest rings. */
#include "net/ring.h"

#include <stdlib.h>
#include <string.h>

#include "net/internal.h"

int ring_init(struct net_stack *s, struct ring *r)
{
    if (r->buf)
        return 0;
    if (s->rings.n) {
        r->buf = s->rings.spare[--s->rings.n];
    } else {
        if (net_ring_charge(s, RING_MIN, 0) < 0)
            return -1;
        r->buf = malloc(RING_MIN);
        if (!r->buf) {
            net_mem_release(s, RING_MIN);
            return -1;
        }
    }
    r->cap = RING_MIN;
    r->head = r->len = 0;
    return 0;
}

void ring_free(struct net_stack *s, struct ring *r)
{
    if (r->buf && r->cap == RING_MIN && s->rings.n < RING_SPARE) {
        s->rings.spare[s->rings.n++] = r->buf;
    } else if (r->buf) {
        free(r->buf);
        net_mem_release(s, r->cap);
    }
    memset(r, 0, sizeof(*r));
}

size_t ring_pool_drain(struct ring_pool *p)
{
    size_t bytes = 0;
    while (p->n) {
        free(p->spare[--p->n]);
        bytes += RING_MIN;
    }
    return bytes;
}

int ring_iov_data(const struct ring *r, struct iovec iov[2])
{
    size_t first = r->cap - r->head < r->len ? r->cap - r->head : r->len;
    iov[0].iov_base = r->buf + r->head;
    iov[0].iov_len = first;
    iov[1].iov_base = r->buf;
    iov[1].iov_len = r->len - first;
    return iov[1].iov_len ? 2 : 1;
}

int ring_iov_space(const struct ring *r, size_t limit, struct iovec iov[2])
{
    size_t room = (limit < r->cap ? limit : r->cap);
    room = room > r->len ? room - r->len : 0;
    size_t tail = (r->head + r->len) % r->cap;
    size_t first = r->cap - tail < room ? r->cap - tail : room;
    iov[0].iov_base = r->buf + tail;
    iov[0].iov_len = first;
    iov[1].iov_base = r->buf;
    iov[1].iov_len = room - first;
    return iov[1].iov_len ? 2 : 1;
}

void ring_fill(struct ring *r, size_t n) { r->len += n; }

void ring_copy_out(const struct ring *r, size_t off, uint8_t *dst, size_t n)
{
    size_t pos = (r->head + off) % r->cap;
    size_t first = r->cap - pos < n ? r->cap - pos : n;
    memcpy(dst, r->buf + pos, first);
    memcpy(dst + first, r->buf, n - first);
}

void ring_append(struct ring *r, const uint8_t *src, size_t n)
{
    size_t tail = (r->head + r->len) % r->cap;
    size_t first = r->cap - tail < n ? r->cap - tail : n;
    memcpy(r->buf + tail, src, first);
    memcpy(r->buf, src + first, n - first);
    r->len += n;
}

void ring_drop(struct ring *r, size_t n)
{
    r->head = (r->head + n) % r->cap;
    r->len -= n;
    if (!r->len)
        r->head = 0;
}

int ring_grow(struct net_stack *s, struct ring *r)
{
    size_t cap = r->cap * 2;
    if (!r->buf || cap > RING_MAX || net_ring_charge(s, cap, 1) < 0)
        return -1;
    uint8_t *nb = malloc(cap);
    if (!nb) {
        net_mem_release(s, cap);
        return -1;
    }
    ring_copy_out(r, 0, nb, r->len);
    free(r->buf);
    net_mem_release(s, r->cap);
    r->buf = nb;
    r->cap = cap;
    r->head = 0;
    return 0;
}
