/* Split virtqueue device side: the only code that interprets descriptor rings. Every
 * value read from the rings is copied once into a local before it is checked and used,
 * so a guest rewriting the ring concurrently cannot race a check. */
#include "kvm/dev/virtq.h"

#include <string.h>

static int broken(struct virtq *q, const char *why)
{
    q->broken = 1;
    q->why = why;
    return -1;
}

int virtq__enable(struct virtq *q, const struct guest_mem *m)
{
    uint64_t n = q->size;
    q->gen++;
    q->num = 0;
    q->desc = q->avail = q->used = NULL;
    if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
        return broken(q, "queue size is not a power of two within QueueNumMax");
    if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
        return broken(q, "misaligned ring address");
    q->desc = guest_mem__ptr(m, q->desc_gpa, 16 * n);
    q->avail = guest_mem__ptr(m, q->avail_gpa, 6 + 2 * n);
    q->used = guest_mem__ptr(m, q->used_gpa, 6 + 8 * n);
    if (!q->desc || !q->avail || !q->used) {
        q->desc = q->avail = q->used = NULL;
        return broken(q, "ring outside guest memory");
    }
    q->num = (uint16_t)n;
    q->last_avail = q->used_idx = 0;
    q->broken = 0;
    q->why = NULL;
    q->ready = 1;
    return 0;
}

void virtq__disable(struct virtq *q)
{
    q->ready = 0;
    q->num = 0;
    q->desc = q->avail = q->used = NULL;
    q->gen++;
}

void virtq__reset(struct virtq *q)
{
    uint32_t gen = q->gen + 1;
    memset(q, 0, sizeof(*q));
    q->gen = gen;
}

static uint16_t avail_idx(const struct virtq *q)
{
    return __atomic_load_n((const uint16_t *)(q->avail + 2), __ATOMIC_ACQUIRE);
}

int virtq__has_avail(const struct virtq *q)
{
    return q->ready && !q->broken && q->num && avail_idx(q) != q->last_avail;
}

static void read_desc(const uint8_t *table, uint32_t i, struct virtq_desc *d)
{
    memcpy(d, table + 16 * (size_t)i, sizeof(*d));
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* the copy is the only read */
}

static int add_seg(struct virtq *q, const struct guest_mem *m, struct virtq_chain *c, const struct virtq_desc *d)
{
    if (d->len == 0)
        return 0;
    if ((uint32_t)c->nr + c->nw >= VIRTQ_MAX_SEGS)
        return broken(q, "descriptor chain too long");
    uint8_t *p = guest_mem__ptr(m, d->addr, d->len);
    if (!p)
        return broken(q, "buffer outside guest memory");
    if (d->flags & VIRTQ_DESC_F_WRITE) {
        c->seg[c->nr + c->nw++] = (struct virtq_seg){p, d->len};
        c->wlen += d->len;
    } else {
        if (c->nw)
            return broken(q, "readable buffer after a writable one");
        c->seg[c->nr++] = (struct virtq_seg){p, d->len};
        c->rlen += d->len;
    }
    return 0;
}

int virtq__pop(struct virtq *q, const struct guest_mem *m, struct virtq_chain *c)
{
    if (q->broken)
        return -1;
    if (!q->ready || !q->num)
        return 0;
    uint16_t idx = avail_idx(q);
    uint16_t pending = (uint16_t)(idx - q->last_avail);
    if (pending == 0)
        return 0;
    if (pending > q->num)
        return broken(q, "available index moved by more than the queue size");
    uint16_t head =
        __atomic_load_n((const uint16_t *)(q->avail + 4 + 2 * (size_t)(q->last_avail % q->num)), __ATOMIC_RELAXED);
    if (head >= q->num)
        return broken(q, "head descriptor index out of range");

    c->gen = q->gen;
    c->head = head;
    c->nr = c->nw = 0;
    c->rlen = c->wlen = 0;
    const uint8_t *table = q->desc;
    uint32_t tsize = q->num, i = head, visited = 0;
    int indirect = 0;
    for (;;) {
        if (++visited > tsize)
            return broken(q, indirect ? "loop in an indirect table" : "descriptor loop");
        struct virtq_desc d;
        read_desc(table, i, &d);
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            if (!q->indirect_ok || indirect)
                return broken(q, "indirect descriptor not allowed here");
            if (d.flags & VIRTQ_DESC_F_NEXT)
                return broken(q, "indirect descriptor with NEXT set");
            if (d.len == 0 || (d.len & 15) || d.len / 16 > VIRTQ_MAX_INDIRECT)
                return broken(q, "bad indirect table length");
            table = guest_mem__ptr(m, d.addr, d.len);
            if (!table)
                return broken(q, "indirect table outside guest memory");
            tsize = d.len / 16;
            i = 0;
            visited = 0;
            indirect = 1;
            continue;
        }
        if (add_seg(q, m, c, &d) < 0)
            return -1;
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            break;
        i = d.next;
        if (i >= tsize)
            return broken(q, "next descriptor index out of range");
    }
    q->last_avail++;
    return 1;
}

void virtq__push(struct virtq *q, const struct virtq_chain *c, uint32_t len)
{
    if (!q->ready || q->broken || !q->num || c->gen != q->gen)
        return;
    uint8_t *e = q->used + 4 + 8 * (size_t)(q->used_idx % q->num);
    uint32_t id = c->head;
    __atomic_store_n((uint32_t *)e, id, __ATOMIC_RELAXED);
    __atomic_store_n((uint32_t *)(e + 4), len, __ATOMIC_RELAXED);
    q->used_idx++;
    __atomic_store_n((uint16_t *)(q->used + 2), q->used_idx, __ATOMIC_RELEASE);
}

static size_t copy(const struct virtq_chain *c, int writable, uint64_t off, uint8_t *buf, size_t len, int to_guest)
{
    uint32_t first = writable ? c->nr : 0, n = writable ? c->nw : c->nr;
    size_t done = 0;
    for (uint32_t k = first; k < first + n && done < len; k++) {
        const struct virtq_seg *s = &c->seg[k];
        if (off >= s->len) {
            off -= s->len;
            continue;
        }
        size_t take = s->len - off;
        if (take > len - done)
            take = len - done;
        if (to_guest)
            memcpy(s->p + off, buf + done, take);
        else
            memcpy(buf + done, s->p + off, take);
        done += take;
        off = 0;
    }
    return done;
}

size_t virtq_chain__read(const struct virtq_chain *c, uint64_t off, void *buf, size_t len)
{
    return copy(c, 0, off, buf, len, 0);
}

size_t virtq_chain__write(const struct virtq_chain *c, uint64_t off, const void *buf, size_t len)
{
    return copy(c, 1, off, (uint8_t *)(uintptr_t)buf, len, 1);
}
