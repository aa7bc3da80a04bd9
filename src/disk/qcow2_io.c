/* qcow2 images, part two: guest reads and writes. Maps guest clusters through the
 * L1/L2 tables (validating every entry read from the file), allocates clusters at the
 * end of the file with copy-on-write from the backing chain, keeps refcounts, and
 * writes cached metadata back in an order that survives a crash at any point:
 * data and refcounts first, then L2 tables, then L1 (at worst a leak, never a
 * dangling reference). */
#include "disk/qcow2_int.h"
#include "util/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BAD(...) q2_fail(err, errlen, -EUCLEAN, __VA_ARGS__)

/* ---- metadata cache ---- */

int q2_cache_init(struct qcache *c, unsigned n, uint64_t cs)
{
    c->slot = calloc(n, sizeof(*c->slot));
    if (!c->slot)
        return -ENOMEM;
    c->n = n;
    for (unsigned i = 0; i < n; i++)
        if (!(c->slot[i].buf = malloc(cs)))
            return -ENOMEM;
    return 0;
}

void q2_cache_free(struct qcache *c)
{
    if (!c->slot)
        return;
    for (unsigned i = 0; i < c->n; i++)
        free(c->slot[i].buf);
    free(c->slot);
    c->slot = NULL;
}

static struct qslot *cache_find(struct qcache *c, uint64_t off)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->slot[i].off == off) {
            c->slot[i].used = ++c->tick;
            return &c->slot[i];
        }
    return NULL;
}

/* A free slot, or the least recently used one (the caller writes it back first). */
static struct qslot *cache_victim(struct qcache *c)
{
    struct qslot *v = &c->slot[0];
    for (unsigned i = 0; i < c->n; i++) {
        if (!c->slot[i].off)
            return &c->slot[i];
        if (c->slot[i].used < v->used)
            v = &c->slot[i];
    }
    return v;
}

static uint64_t logical_end(const struct qcow2 *q) { return q->file_size > q->end ? q->file_size : q->end; }

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) { return a < b + blen && b < a + alen; }

int q2_clear_of_tables(const struct qcow2 *q, uint64_t off, uint64_t len)
{
    return off >= q->cs && !overlaps(off, len, q->l1_off, (uint64_t)q->l1_size * 8) &&
           !overlaps(off, len, q->rt_off, q->rt_entries * 8);
}

/* ---- low-level write-back ---- */

static int sys_fail(struct qcow2 *q, int rc, const char *what, char *err, size_t errlen)
{
    return q2_fail(err, errlen, rc, "%s: %s: %s", q->path, what, strerror(-rc));
}

static int put(struct qcow2 *q, const void *buf, size_t len, uint64_t off, char *err, size_t errlen)
{
    int rc = q2_pwrite(q->fd, buf, len, off);
    if (rc < 0)
        return sys_fail(q, rc, "write failed", err, errlen);
    if (off + len > q->file_size)
        q->file_size = off + len;
    q->unsynced = 1;
    return 0;
}

static int sync_file(struct qcow2 *q, char *err, size_t errlen)
{
    if (fdatasync(q->fd) < 0)
        return sys_fail(q, -errno, "fdatasync failed", err, errlen);
    q->unsynced = 0;
    return 0;
}

/* Writes the host-order table entries [lo, hi) as big-endian at base. */
static int put_table(struct qcow2 *q, const uint64_t *t, uint64_t lo, uint64_t hi, uint64_t base, char *err,
                     size_t errlen)
{
    uint8_t chunk[4096];
    while (lo < hi) {
        uint64_t n = hi - lo < 512 ? hi - lo : 512;
        for (uint64_t i = 0; i < n; i++)
            q2_put64(chunk + i * 8, t[lo + i]);
        int rc = put(q, chunk, n * 8, base + lo * 8, err, errlen);
        if (rc < 0)
            return rc;
        lo += n;
    }
    return 0;
}

/* Step one of every write-back: the file covers all allocated clusters, refcount
 * blocks are written, then the refcount table entries that point to new blocks,
 * and all of it plus guest data is durable. */
static int writeback_refcounts(struct qcow2 *q, char *err, size_t errlen)
{
    if (q->file_size < q->end) {
        if (ftruncate(q->fd, (off_t)q->end) < 0)
            return sys_fail(q, -errno, "cannot extend the file", err, errlen);
        q->file_size = q->end;
        q->unsynced = 1;
    }
    for (unsigned i = 0; i < q->rbc.n; i++) {
        struct qslot *s = &q->rbc.slot[i];
        if (s->off && s->dirty) {
            int rc = put(q, s->buf, q->cs, s->off, err, errlen);
            if (rc < 0)
                return rc;
            s->dirty = 0;
        }
    }
    if (q->rt_dirty_lo < q->rt_dirty_hi) {
        int rc = sync_file(q, err, errlen);
        if (rc == 0)
            rc = put_table(q, q->rt, q->rt_dirty_lo, q->rt_dirty_hi, q->rt_off, err, errlen);
        if (rc < 0)
            return rc;
        q->rt_dirty_lo = UINT64_MAX;
        q->rt_dirty_hi = 0;
    }
    int rc = q->unsynced ? sync_file(q, err, errlen) : 0;
    if (rc == 0)
        util_test_point("QCOW2_REFCOUNTS"); /* refcounts durable, no table points to the new clusters yet */
    return rc;
}

int q2_writeback(struct qcow2 *q, char *err, size_t errlen)
{
    if (!q->writable)
        return 0;
    int rc = writeback_refcounts(q, err, errlen);
    if (rc < 0)
        return rc;
    int l2_written = 0;
    for (unsigned i = 0; i < q->l2c.n; i++) {
        struct qslot *s = &q->l2c.slot[i];
        if (s->off && s->dirty) {
            if ((rc = put(q, s->buf, q->cs, s->off, err, errlen)) < 0)
                return rc;
            s->dirty = 0;
            l2_written = 1;
        }
    }
    if (q->l1_dirty_lo < q->l1_dirty_hi) {
        if (l2_written && (rc = sync_file(q, err, errlen)) < 0)
            return rc;
        util_test_point("QCOW2_L2"); /* new L2 tables written, the L1 entries pointing to them not yet */
        if ((rc = put_table(q, q->l1, q->l1_dirty_lo, q->l1_dirty_hi, q->l1_off, err, errlen)) < 0)
            return rc;
        q->l1_dirty_lo = UINT64_MAX;
        q->l1_dirty_hi = 0;
    }
    return q->unsynced ? sync_file(q, err, errlen) : 0;
}

static void mark(uint64_t *lo, uint64_t *hi, uint64_t i)
{
    if (i < *lo)
        *lo = i;
    if (i + 1 > *hi)
        *hi = i + 1;
}

/* ---- refcounts ---- */

uint64_t q2_rb_get(const uint8_t *b, uint64_t i, unsigned order)
{
    if (order >= 3) {
        unsigned w = 1u << (order - 3);
        uint64_t v = 0;
        for (unsigned k = 0; k < w; k++)
            v = (v << 8) | b[i * w + k];
        return v;
    }
    unsigned bits = 1u << order;
    uint64_t bit = i * bits;
    return (b[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
}

static void rb_set(uint8_t *b, uint64_t i, unsigned order, uint64_t v)
{
    if (order >= 3) {
        unsigned w = 1u << (order - 3);
        for (int k = (int)w - 1; k >= 0; k--, v >>= 8)
            b[i * w + (unsigned)k] = (uint8_t)v;
        return;
    }
    unsigned bits = 1u << order;
    uint64_t bit = i * bits;
    uint8_t m = (uint8_t)(((1u << bits) - 1) << (bit % 8));
    b[bit / 8] = (uint8_t)((b[bit / 8] & ~m) | ((v << (bit % 8)) & m));
}

static int evict_rb(struct qcow2 *q, struct qslot *s, char *err, size_t errlen)
{
    if (s->off && s->dirty) {
        int rc = put(q, s->buf, q->cs, s->off, err, errlen);
        if (rc < 0)
            return rc;
    }
    s->dirty = 0;
    s->off = 0;
    return 0;
}

static int grow_reftable(struct qcow2 *q, uint64_t need_idx, char *err, size_t errlen);
static int claim(struct qcow2 *q, uint64_t host, char *err, size_t errlen);

/* A fresh refcount block for table index idx, placed at the end of the file. */
static int new_block(struct qcow2 *q, uint64_t idx, char *err, size_t errlen)
{
    uint64_t boff;
    for (int tries = 0;; tries++) {
        boff = q->end;
        q->end += q->cs;
        if ((boff >> q->cluster_bits) / q->rb_entries == idx)
            break; /* the new block covers its own cluster */
        int rc = claim(q, boff, err, errlen);
        if (rc < 0)
            return rc;
        if (rc == 1)
            break;
        if (tries > 1024)
            return BAD("%s: refcounts claim every cluster past the end of the file", q->path);
    }
    if (idx >= q->rt_entries) /* claim() above may not grow past idx, but be sure */
        return BAD("%s: refcount table index %" PRIu64 " out of range", q->path, idx);
    struct qslot *s = cache_victim(&q->rbc);
    int rc = evict_rb(q, s, err, errlen);
    if (rc < 0)
        return rc;
    memset(s->buf, 0, q->cs);
    s->off = boff;
    s->dirty = 1;
    s->used = ++q->rbc.tick;
    if ((boff >> q->cluster_bits) / q->rb_entries == idx)
        rb_set(s->buf, (boff >> q->cluster_bits) % q->rb_entries, q->refcount_order, 1);
    q->rt[idx] = boff;
    mark(&q->rt_dirty_lo, &q->rt_dirty_hi, idx);
    return 0;
}

/* The refcount block for table index idx (NULL when absent and !create). */
static int rb_block(struct qcow2 *q, uint64_t idx, int create, struct qslot **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc;
    if (idx >= q->rt_entries) {
        if (!create)
            return 0;
        if ((rc = grow_reftable(q, idx, err, errlen)) < 0)
            return rc;
    }
    if (!q->rt[idx]) {
        if (!create)
            return 0;
        if ((rc = new_block(q, idx, err, errlen)) < 0)
            return rc;
    }
    uint64_t e = q->rt[idx], off = e & ~QCOW2_RT_RESERVED;
    if ((e & QCOW2_RT_RESERVED) || off % q->cs || off + q->cs > logical_end(q) || !q2_clear_of_tables(q, off, q->cs))
        return BAD("%s: refcount table entry %" PRIu64 " (0x%" PRIx64 ") is unaligned, outside the file or "
                   "overlaps other tables; run `qemu-img check -r all %s`",
                   q->path, idx, e, q->path);
    struct qslot *s = cache_find(&q->rbc, off);
    if (!s) {
        s = cache_victim(&q->rbc);
        if ((rc = evict_rb(q, s, err, errlen)) < 0)
            return rc;
        if ((rc = q2_pread(q->fd, s->buf, q->cs, off)) < 0)
            return sys_fail(q, rc, "cannot read a refcount block", err, errlen);
        s->off = off;
        s->used = ++q->rbc.tick;
    }
    *out = s;
    return 0;
}

int q2_refcount_get(struct qcow2 *q, uint64_t host, uint64_t *val, char *err, size_t errlen)
{
    uint64_t c = host >> q->cluster_bits;
    struct qslot *s;
    int rc = rb_block(q, c / q->rb_entries, 0, &s, err, errlen);
    if (rc < 0)
        return rc;
    *val = s ? q2_rb_get(s->buf, c % q->rb_entries, q->refcount_order) : 0;
    return 0;
}

static int refcount_set(struct qcow2 *q, uint64_t host, uint64_t v, char *err, size_t errlen)
{
    uint64_t c = host >> q->cluster_bits;
    struct qslot *s;
    int rc = rb_block(q, c / q->rb_entries, 1, &s, err, errlen);
    if (rc < 0)
        return rc;
    rb_set(s->buf, c % q->rb_entries, q->refcount_order, v);
    s->dirty = 1;
    return 0;
}

/* Sets the refcount of a free cluster to 1: 1 if done, 0 if it was in use. */
static int claim(struct qcow2 *q, uint64_t host, char *err, size_t errlen)
{
    uint64_t c = host >> q->cluster_bits;
    struct qslot *s;
    int rc = rb_block(q, c / q->rb_entries, 1, &s, err, errlen);
    if (rc < 0)
        return rc;
    if (q2_rb_get(s->buf, c % q->rb_entries, q->refcount_order))
        return 0;
    rb_set(s->buf, c % q->rb_entries, q->refcount_order, 1);
    s->dirty = 1;
    return 1;
}

/* One new cluster at the end of the file, its refcount set. */
static int alloc_cluster(struct qcow2 *q, uint64_t *out, char *err, size_t errlen)
{
    for (int tries = 0; tries < 1 << 20; tries++) {
        uint64_t host = q->end;
        if (host + q->cs > (1ull << 56))
            return q2_fail(err, errlen, -ENOSPC, "%s: image file reached the qcow2 limit of 64 PiB", q->path);
        q->end += q->cs;
        int rc = claim(q, host, err, errlen);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            *out = host;
            return 0;
        }
    }
    return BAD("%s: refcounts claim every cluster past the end of the file", q->path);
}

/* Moves the refcount table to a bigger place at the end of the file. The new table
 * and its refcounts are durable before the header points to it, and the old
 * clusters are released only after that (a crash leaks, never corrupts). */
static int grow_reftable(struct qcow2 *q, uint64_t need_idx, char *err, size_t errlen)
{
    uint64_t cs = q->cs, n = q->rt_clusters, entries;
    for (;;) {
        n *= 2;
        entries = n * cs / 8;
        uint64_t covered = entries * q->rb_entries;
        uint64_t wanted = (q->end >> q->cluster_bits) + n + n / q->rb_entries + 4;
        if (n * cs > QCOW2_MAX_RT_BYTES)
            return q2_fail(err, errlen, -EFBIG, "%s: image needs a refcount table over %u bytes; use bigger clusters",
                           q->path, QCOW2_MAX_RT_BYTES);
        if (entries > need_idx && covered > wanted)
            break;
    }
    uint64_t *nrt = calloc(entries, 8);
    if (!nrt)
        return q2_fail(err, errlen, -ENOMEM, "%s: out of memory", q->path);
    memcpy(nrt, q->rt, q->rt_entries * 8);
    uint64_t old_off = q->rt_off, old_n = q->rt_clusters;
    uint64_t new_off = q->end;
    q->end += n * cs;
    free(q->rt);
    q->rt = nrt;
    q->rt_entries = entries;
    q->rt_off = new_off;
    q->rt_clusters = (uint32_t)n;
    int rc;
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = claim(q, new_off + i * cs, err, errlen)) < 0)
            return rc;
        if (rc == 0)
            return BAD("%s: clusters past the end of the file already have refcounts", q->path);
    }
    q->rt_dirty_lo = UINT64_MAX;
    q->rt_dirty_hi = 0;
    if ((rc = writeback_refcounts(q, err, errlen)) < 0)
        return rc;
    if ((rc = put_table(q, q->rt, 0, entries, new_off, err, errlen)) < 0 || (rc = sync_file(q, err, errlen)) < 0)
        return rc;
    uint8_t h[12];
    q2_put64(h, new_off);
    q2_put32(h + 8, (uint32_t)n);
    if ((rc = put(q, h, sizeof(h), 48, err, errlen)) < 0 || (rc = sync_file(q, err, errlen)) < 0)
        return rc;
    for (uint64_t i = 0; i < old_n; i++)
        if ((rc = refcount_set(q, old_off + i * cs, 0, err, errlen)) < 0)
            return rc;
    return 0;
}

/* ---- mapping ---- */

int q2_l1_entry(struct qcow2 *q, uint64_t l1i, uint64_t *l2off, char *err, size_t errlen)
{
    uint64_t e = q->l1[l1i], off = e & QCOW2_OFFSET_MASK;
    *l2off = 0;
    if (e & QCOW2_L1_RESERVED)
        return BAD("%s: L1 entry %" PRIu64 " (0x%" PRIx64 ") has reserved bits set; run `qemu-img check %s`", q->path,
                   l1i, e, q->path);
    if (!off)
        return 0;
    if (off % q->cs || off + q->cs > logical_end(q) || !q2_clear_of_tables(q, off, q->cs))
        return BAD("%s: L1 entry %" PRIu64 " points to 0x%" PRIx64 ", which is unaligned, past the end of the "
                   "file or inside other metadata; run `qemu-img check %s`",
                   q->path, l1i, off, q->path);
    *l2off = off;
    return 0;
}

int q2_l2_entry(struct qcow2 *q, uint64_t e, uint64_t guest, uint64_t *host, int *zero, char *err, size_t errlen)
{
    *host = 0;
    *zero = 0;
    if (e & QCOW2_OFLAG_COMPRESSED)
        return q2_fail(err, errlen, -ENOTSUP,
                       "%s: compressed cluster at guest offset 0x%" PRIx64 " is not supported; decompress with "
                       "`qemu-img convert -O qcow2 %s NEW`",
                       q->path, guest, q->path);
    uint64_t off = e & QCOW2_OFFSET_MASK;
    *zero = (e & QCOW2_OFLAG_ZERO) != 0;
    if ((e & QCOW2_L2_RESERVED) || (*zero && q->version < 3) || (!off && !*zero && (e & QCOW2_OFLAG_COPIED)))
        return BAD("%s: L2 entry for guest offset 0x%" PRIx64 " (0x%" PRIx64 ") has invalid flag bits; run "
                   "`qemu-img check %s`",
                   q->path, guest, e, q->path);
    if (off && (off % q->cs || off >= logical_end(q) || !q2_clear_of_tables(q, off, q->cs)))
        return BAD("%s: L2 entry for guest offset 0x%" PRIx64 " points to 0x%" PRIx64 ", which is unaligned, "
                   "past the end of the file or inside other metadata; run `qemu-img check %s`",
                   q->path, guest, off, q->path);
    *host = off;
    return 0;
}

static int load_l2(struct qcow2 *q, uint64_t l2off, struct qslot **out, char *err, size_t errlen)
{
    struct qslot *s = cache_find(&q->l2c, l2off);
    if (s) {
        *out = s;
        return 0;
    }
    s = cache_victim(&q->l2c);
    int rc;
    if (s->off && s->dirty) { /* its data and refcounts must be durable first */
        if ((rc = writeback_refcounts(q, err, errlen)) < 0 || (rc = put(q, s->buf, q->cs, s->off, err, errlen)) < 0)
            return rc;
        s->dirty = 0;
        util_test_point("QCOW2_L2");
    }
    s->off = 0;
    if ((rc = q2_pread(q->fd, s->buf, q->cs, l2off)) < 0)
        return sys_fail(q, rc, "cannot read an L2 table", err, errlen);
    s->off = l2off;
    s->used = ++q->l2c.tick;
    *out = s;
    return 0;
}

int q2_l2_table(struct qcow2 *q, uint64_t l2off, const uint8_t **tab, char *err, size_t errlen)
{
    struct qslot *s;
    int rc = load_l2(q, l2off, &s, err, errlen);
    *tab = rc == 0 ? s->buf : NULL;
    return rc;
}

/* Before writing in place: the cluster must be ours alone (refcount 1). */
static int exclusive(struct qcow2 *q, uint64_t host, char *err, size_t errlen)
{
    uint64_t rc1;
    int rc = q2_refcount_get(q, host, &rc1, err, errlen);
    if (rc < 0)
        return rc;
    if (rc1 == 1)
        return 0;
    if (rc1 == 0)
        return BAD("%s: cluster 0x%" PRIx64 " is in use but has refcount 0; run `qemu-img check -r all %s`", q->path,
                   host, q->path);
    return q2_fail(err, errlen, -ENOTSUP,
                   "%s: cluster 0x%" PRIx64 " is shared (refcount %" PRIu64
                   "), as with internal snapshots; cannot write to it",
                   q->path, host, rc1);
}

/* The L2 table for l1i, allocated (zeroed, in the cache) when missing. */
static int l2_for_write(struct qcow2 *q, uint64_t l1i, struct qslot **out, char *err, size_t errlen)
{
    uint64_t l2off;
    int rc = q2_l1_entry(q, l1i, &l2off, err, errlen);
    if (rc < 0)
        return rc;
    if (l2off) {
        if (!(q->l1[l1i] & QCOW2_OFLAG_COPIED)) {
            if ((rc = exclusive(q, l2off, err, errlen)) < 0)
                return rc;
            q->l1[l1i] |= QCOW2_OFLAG_COPIED;
            mark(&q->l1_dirty_lo, &q->l1_dirty_hi, l1i);
        }
        return load_l2(q, l2off, out, err, errlen);
    }
    if ((rc = alloc_cluster(q, &l2off, err, errlen)) < 0)
        return rc;
    struct qslot *s = cache_victim(&q->l2c);
    if (s->off && s->dirty) {
        if ((rc = writeback_refcounts(q, err, errlen)) < 0 || (rc = put(q, s->buf, q->cs, s->off, err, errlen)) < 0)
            return rc;
        util_test_point("QCOW2_L2");
    }
    memset(s->buf, 0, q->cs);
    s->off = l2off;
    s->dirty = 1;
    s->used = ++q->l2c.tick;
    q->l1[l1i] = l2off | QCOW2_OFLAG_COPIED;
    mark(&q->l1_dirty_lo, &q->l1_dirty_hi, l1i);
    *out = s;
    return 0;
}

/* ---- reads ---- */

static int backing_read(struct qcow2 *q, uint64_t goff, uint8_t *buf, size_t n, char *err, size_t errlen)
{
    size_t m = 0;
    int rc = 0;
    if (q->bkind != QB_NONE && goff < q->bsize)
        m = q->bsize - goff < n ? (size_t)(q->bsize - goff) : n;
    if (m && q->bkind == QB_RAW) {
        rc = q2_pread(q->bfd, buf, m, goff);
        if (rc < 0)
            rc = q2_fail(err, errlen, rc, "%s: cannot read the backing file: %s", q->path, strerror(-rc));
    } else if (m) {
        pthread_mutex_lock(&q->bq->lock);
        rc = q2_read_locked(q->bq, goff, buf, m, err, errlen);
        pthread_mutex_unlock(&q->bq->lock);
    }
    memset(buf + m, 0, n - m);
    return rc;
}

/* Pending contiguous read: from this file (host offsets) or from the backing chain
 * (guest offsets), into consecutive bytes of the caller's buffer. */
struct run {
    int backing;
    uint64_t src;
    uint8_t *buf;
    size_t len;
};

static int run_flush(struct qcow2 *q, struct run *r, char *err, size_t errlen)
{
    int rc = 0;
    if (!r->len)
        return 0;
    if (r->backing) {
        rc = backing_read(q, r->src, r->buf, r->len, err, errlen);
    } else if ((rc = q2_pread(q->fd, r->buf, r->len, r->src)) < 0) {
        rc = sys_fail(q, rc, "read failed", err, errlen);
    }
    r->len = 0;
    return rc;
}

static int run_add(struct qcow2 *q, struct run *r, int backing, uint64_t src, uint8_t *buf, size_t n, char *err,
                   size_t errlen)
{
    if (r->len && r->backing == backing && r->src + r->len == src && r->buf + r->len == buf) {
        r->len += n;
        return 0;
    }
    int rc = run_flush(q, r, err, errlen);
    r->backing = backing;
    r->src = src;
    r->buf = buf;
    r->len = n;
    return rc;
}

static int check_range(struct qcow2 *q, uint64_t off, uint64_t len, char *err, size_t errlen)
{
    if (off > q->size || len > q->size - off)
        return q2_fail(err, errlen, -EINVAL,
                       "%s: access at 0x%" PRIx64 "+%" PRIu64 " is past the end of the %" PRIu64 "-byte disk", q->path,
                       off, len, q->size);
    return 0;
}

int q2_read_locked(struct qcow2 *q, uint64_t off, void *buf, size_t len, char *err, size_t errlen)
{
    int rc = check_range(q, off, len, err, errlen);
    if (rc < 0)
        return rc;
    uint8_t *p = buf;
    struct run r = {0};
    while (len) {
        uint64_t in = off & (q->cs - 1), c = off >> q->cluster_bits;
        size_t n = q->cs - in < len ? (size_t)(q->cs - in) : len;
        uint64_t l2off, host = 0;
        int zero = 0;
        if ((rc = q2_l1_entry(q, c / q->l2_entries, &l2off, err, errlen)) < 0)
            break;
        if (l2off) {
            struct qslot *s;
            if ((rc = load_l2(q, l2off, &s, err, errlen)) < 0)
                break;
            uint64_t e = q2_be64(s->buf + (c % q->l2_entries) * 8);
            if ((rc = q2_l2_entry(q, e, off, &host, &zero, err, errlen)) < 0)
                break;
        }
        if (zero)
            memset(p, 0, n);
        else if (host)
            rc = run_add(q, &r, 0, host + in, p, n, err, errlen);
        else
            rc = run_add(q, &r, 1, off, p, n, err, errlen);
        if (rc < 0)
            break;
        off += n;
        p += n;
        len -= n;
    }
    int rc2 = run_flush(q, &r, err, errlen);
    return rc < 0 ? rc : rc2;
}

int qcow2_read(struct qcow2 *q, uint64_t offset, void *buf, size_t len, char *err, size_t errlen)
{
    pthread_mutex_lock(&q->lock);
    int rc = q2_read_locked(q, offset, buf, len, err, errlen);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* ---- writes ---- */

struct wrun {
    uint64_t host;
    const uint8_t *buf;
    size_t len;
};

static int wrun_flush(struct qcow2 *q, struct wrun *w, char *err, size_t errlen)
{
    int rc = w->len ? put(q, w->buf, w->len, w->host, err, errlen) : 0;
    w->len = 0;
    return rc;
}

static int wrun_add(struct qcow2 *q, struct wrun *w, uint64_t host, const uint8_t *buf, size_t n, char *err,
                    size_t errlen)
{
    if (w->len && w->host + w->len == host && w->buf + w->len == buf) {
        w->len += n;
        return 0;
    }
    int rc = wrun_flush(q, w, err, errlen);
    w->host = host;
    w->buf = buf;
    w->len = n;
    return rc;
}

/* Writes n bytes at guest offset off (inside one cluster) into a cluster that is
 * unallocated or zero-flagged: allocates it (or reuses a preallocated one) and
 * fills the rest of it from the backing chain or with zeros. */
static int write_new(struct qcow2 *q, struct wrun *w, uint64_t off, const uint8_t *p, size_t n, uint64_t host, int zero,
                     uint64_t *entry, char *err, size_t errlen)
{
    uint64_t in = off & (q->cs - 1), start = off - in;
    int rc, fresh = 0;
    if (host) {
        if ((rc = exclusive(q, host, err, errlen)) < 0)
            return rc;
    } else {
        if ((rc = alloc_cluster(q, &host, err, errlen)) < 0)
            return rc;
        fresh = 1; /* past everything ever written: reads as zeros */
    }
    *entry = host | QCOW2_OFLAG_COPIED;
    int from_backing = !zero && q->bkind != QB_NONE && start < q->bsize;
    if (n == q->cs || (fresh && !from_backing))
        return wrun_add(q, w, host + in, p, n, err, errlen);
    uint64_t vis = q->size - start < q->cs ? q->size - start : q->cs;
    if (from_backing) {
        if ((rc = backing_read(q, start, q->scratch, (size_t)vis, err, errlen)) < 0)
            return rc;
        memset(q->scratch + vis, 0, q->cs - vis);
    } else {
        memset(q->scratch, 0, q->cs);
    }
    memcpy(q->scratch + in, p, n);
    if ((rc = wrun_flush(q, w, err, errlen)) < 0)
        return rc;
    return put(q, q->scratch, q->cs, host, err, errlen);
}

static int write_locked(struct qcow2 *q, uint64_t off, const void *buf, size_t len, char *err, size_t errlen)
{
    if (!q->writable)
        return q2_fail(err, errlen, -EBADF, "%s: opened read-only", q->path);
    int rc = check_range(q, off, len, err, errlen);
    if (rc < 0)
        return rc;
    const uint8_t *p = buf;
    struct wrun w = {0};
    struct qslot *s = NULL;
    uint64_t cur = UINT64_MAX;
    while (len) {
        uint64_t in = off & (q->cs - 1), c = off >> q->cluster_bits, l1i = c / q->l2_entries;
        size_t n = q->cs - in < len ? (size_t)(q->cs - in) : len;
        if (l1i != cur) { /* data lands before a table that could point to it is evicted */
            if ((rc = wrun_flush(q, &w, err, errlen)) < 0 || (rc = l2_for_write(q, l1i, &s, err, errlen)) < 0)
                break;
            cur = l1i;
        }
        uint8_t *slot = s->buf + (c % q->l2_entries) * 8;
        uint64_t e = q2_be64(slot), host;
        int zero;
        if ((rc = q2_l2_entry(q, e, off, &host, &zero, err, errlen)) < 0)
            break;
        if (host && !zero) {
            if (!(e & QCOW2_OFLAG_COPIED)) {
                if ((rc = exclusive(q, host, err, errlen)) < 0)
                    break;
                q2_put64(slot, e | QCOW2_OFLAG_COPIED);
                s->dirty = 1;
            }
            rc = wrun_add(q, &w, host + in, p, n, err, errlen);
        } else {
            uint64_t ne;
            rc = write_new(q, &w, off, p, n, host, zero, &ne, err, errlen);
            if (rc == 0) {
                q2_put64(slot, ne);
                s->dirty = 1;
            }
        }
        if (rc < 0)
            break;
        off += n;
        p += n;
        len -= n;
    }
    int rc2 = wrun_flush(q, &w, err, errlen);
    return rc < 0 ? rc : rc2;
}

int qcow2_write(struct qcow2 *q, uint64_t offset, const void *buf, size_t len, char *err, size_t errlen)
{
    pthread_mutex_lock(&q->lock);
    int rc = write_locked(q, offset, buf, len, err, errlen);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* ---- discard, flush ---- */

/* One whole cluster: zero flag (v3), or written zeros (v2). */
static int discard_cluster(struct qcow2 *q, uint64_t off, const uint8_t *zeros, char *err, size_t errlen)
{
    uint64_t c = off >> q->cluster_bits, l1i = c / q->l2_entries, l2off;
    int rc = q2_l1_entry(q, l1i, &l2off, err, errlen);
    if (rc < 0)
        return rc;
    if (!l2off && (q->bkind == QB_NONE || off >= q->bsize))
        return 0; /* reads as zeros already */
    if (q->version < 3)
        return write_locked(q, off, zeros, q->cs, err, errlen);
    struct qslot *s;
    if ((rc = l2_for_write(q, l1i, &s, err, errlen)) < 0)
        return rc;
    uint8_t *slot = s->buf + (c % q->l2_entries) * 8;
    uint64_t e = q2_be64(slot), host, ne;
    int zero;
    if ((rc = q2_l2_entry(q, e, off, &host, &zero, err, errlen)) < 0)
        return rc;
    if (host) {
        if (!(e & QCOW2_OFLAG_COPIED) && (rc = exclusive(q, host, err, errlen)) < 0)
            return rc;
        ne = host | QCOW2_OFLAG_COPIED | QCOW2_OFLAG_ZERO; /* stays allocated, reads zeros */
    } else if (q->bkind != QB_NONE && off < q->bsize) {
        ne = QCOW2_OFLAG_ZERO;
    } else {
        return 0;
    }
    if (ne != e) {
        q2_put64(slot, ne);
        s->dirty = 1;
    }
    return 0;
}

int qcow2_discard(struct qcow2 *q, uint64_t offset, uint64_t len, char *err, size_t errlen)
{
    pthread_mutex_lock(&q->lock);
    int rc = check_range(q, offset, len, err, errlen);
    uint8_t *zeros = rc == 0 ? calloc(1, q->cs) : NULL;
    if (rc == 0 && !zeros)
        rc = q2_fail(err, errlen, -ENOMEM, "out of memory");
    if (rc == 0 && !q->writable)
        rc = q2_fail(err, errlen, -EBADF, "%s: opened read-only", q->path);
    while (rc == 0 && len) {
        uint64_t in = offset & (q->cs - 1);
        uint64_t n = q->cs - in < len ? q->cs - in : len;
        if (n == q->cs)
            rc = discard_cluster(q, offset, zeros, err, errlen);
        else
            rc = write_locked(q, offset, zeros, (size_t)n, err, errlen);
        offset += n;
        len -= n;
    }
    free(zeros);
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int qcow2_flush(struct qcow2 *q, char *err, size_t errlen)
{
    pthread_mutex_lock(&q->lock);
    int rc = q2_writeback(q, err, errlen);
    pthread_mutex_unlock(&q->lock);
    return rc;
}
