/* qcow2 images, part three: a consistency check in the spirit of `qemu-img check`.
 * Counts the references to every host cluster (header, tables, L2 tables, data)
 * and compares them with the refcounts on disk, so tests can prove that our own
 * writes keep the image clean without needing QEMU. */
#include "disk/qcow2_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct walk {
    struct qcow2 *q;
    uint32_t *refs;
    uint64_t n;
    struct qcow2_check_result *res;
    char *err;
    size_t errlen;
};

/* A problem was found: count it, and keep the first message. */
static void note(struct walk *w, const char *msg)
{
    if (w->res->corruptions++ == 0 && w->err && msg)
        q2_fail(w->err, w->errlen, 0, "%s", msg);
}

static void ref_range(struct walk *w, uint64_t off, uint64_t len)
{
    if (!len)
        return;
    uint64_t first = off >> w->q->cluster_bits, last = (off + len - 1) >> w->q->cluster_bits;
    for (uint64_t c = first; c <= last; c++) {
        if (c >= w->n) {
            char m[160];
            snprintf(m, sizeof(m), "%s: reference to cluster 0x%" PRIx64 " past the end of the file", w->q->path,
                     c << w->q->cluster_bits);
            note(w, m);
            return;
        }
        w->refs[c]++;
    }
}

static void walk_l2(struct walk *w, uint64_t l1i, uint64_t l2off)
{
    struct qcow2 *q = w->q;
    const uint8_t *t;
    char m[512];
    if (q2_l2_table(q, l2off, &t, m, sizeof(m)) < 0) {
        note(w, m);
        return;
    }
    uint8_t *tab = malloc(q->cs); /* the cache slot may move while we walk */
    if (!tab) {
        note(w, "out of memory");
        return;
    }
    memcpy(tab, t, q->cs);
    for (uint64_t i = 0; i < q->l2_entries; i++) {
        uint64_t e = q2_be64(tab + i * 8), guest = ((l1i * q->l2_entries) + i) << q->cluster_bits, host;
        int zero;
        w->res->mapped += e != 0;
        if (e & QCOW2_OFLAG_COMPRESSED) {
            unsigned x = 62 - (q->cluster_bits - 8);
            uint64_t hoff = e & ((1ull << x) - 1);
            uint64_t secs = ((e >> x) & ((1ull << (62 - x)) - 1)) + 1;
            ref_range(w, hoff & ~511ull, secs * 512);
            w->res->allocated++;
            continue;
        }
        if (q2_l2_entry(q, e, guest, &host, &zero, m, sizeof(m)) < 0) {
            note(w, m);
            continue;
        }
        if (host) {
            ref_range(w, host, q->cs);
            if (!zero)
                w->res->allocated++;
        }
    }
    free(tab);
}

int qcow2_check(struct qcow2 *q, struct qcow2_check_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof(*res));
    if (err && errlen)
        err[0] = 0;
    pthread_mutex_lock(&q->lock);
    int rc = q2_writeback(q, err, errlen);
    struct walk w = {q, NULL, 0, res, err, errlen};
    uint64_t fend = q->file_size > q->end ? q->file_size : q->end;
    w.n = (fend + q->cs - 1) >> q->cluster_bits;
    if (rc == 0 && !(w.refs = calloc(w.n ? w.n : 1, sizeof(uint32_t))))
        rc = q2_fail(err, errlen, -ENOMEM, "%s: out of memory for the check", q->path);
    if (rc < 0) {
        pthread_mutex_unlock(&q->lock);
        return rc;
    }
    res->skipped = q->nb_snapshots || q->has_bitmaps;
    res->total_clusters = (q->size + q->cs - 1) >> q->cluster_bits;
    ref_range(&w, 0, q->cs);
    ref_range(&w, q->l1_off, (uint64_t)q->l1_size * 8);
    ref_range(&w, q->rt_off, q->rt_entries * 8);
    char m[512];
    for (uint64_t i = 0; i < q->rt_entries; i++) {
        uint64_t e = q->rt[i], off = e & ~QCOW2_RT_RESERVED;
        if (!e)
            continue;
        if ((e & QCOW2_RT_RESERVED) || off % q->cs) {
            snprintf(m, sizeof(m), "%s: refcount table entry %" PRIu64 " is invalid (0x%" PRIx64 ")", q->path, i, e);
            note(&w, m);
            continue;
        }
        ref_range(&w, off, q->cs);
    }
    for (uint64_t i = 0; i < q->l1_size; i++) {
        uint64_t l2off;
        if (q2_l1_entry(q, i, &l2off, m, sizeof(m)) < 0) {
            note(&w, m);
            continue;
        }
        if (!l2off)
            continue;
        ref_range(&w, l2off, q->cs);
        walk_l2(&w, i, l2off);
    }
    for (uint64_t c = 0; c < w.n; c++) {
        uint64_t have;
        if (q2_refcount_get(q, c << q->cluster_bits, &have, m, sizeof(m)) < 0) {
            note(&w, m);
            continue;
        }
        if (have < w.refs[c]) {
            snprintf(m, sizeof(m), "%s: cluster 0x%" PRIx64 " has refcount %" PRIu64 " but %u references", q->path,
                     c << q->cluster_bits, have, w.refs[c]);
            note(&w, m);
        } else if (have > w.refs[c] && !res->skipped) {
            if (res->leaks++ == 0 && res->corruptions == 0 && err && errlen)
                snprintf(err, errlen, "%s: cluster 0x%" PRIx64 " leaked (refcount %" PRIu64 ", %u references)", q->path,
                         c << q->cluster_bits, have, w.refs[c]);
        }
        if (w.refs[c] || have)
            res->image_end = (c + 1) << q->cluster_bits;
    }
    free(w.refs);
    pthread_mutex_unlock(&q->lock);
    return 0;
}
