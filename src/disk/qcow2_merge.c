/* Merging the top of a qcow2 chain into one new image (`cocoon snapshot compact`):
 * the guest view of a top image and the images under it, written cluster by cluster
 * into a fresh image over the file below them. Only what the merged layers map is
 * copied: data clusters with their data, and zero clusters (or data that is all zeros)
 * as zero-flagged clusters where the base may hold data (not over a hole of a raw
 * base), so the result stays sparse and reads exactly as the chain did. */
#include "disk/qcow2_int.h"
#include "util/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum cstate { C_UNMAPPED, C_ZERO, C_DATA };

/* What layer q says about the guest cluster at off: unmapped (look below), zero, or
 * data at *host. */
static int cluster_state(struct qcow2 *q, uint64_t off, enum cstate *st, uint64_t *host, char *err, size_t errlen)
{
    *st = C_UNMAPPED;
    *host = 0;
    if (off >= q->size) { /* a smaller layer reads as zeros past its end (and hides what is below) */
        *st = C_ZERO;
        return 0;
    }
    uint64_t c = off >> q->cluster_bits, l1i = c / q->l2_entries, l2off;
    if (l1i >= q->l1_size)
        return 0;
    int rc = q2_l1_entry(q, l1i, &l2off, err, errlen);
    if (rc < 0 || !l2off)
        return rc;
    const uint8_t *tab;
    if ((rc = q2_l2_table(q, l2off, &tab, err, errlen)) < 0)
        return rc;
    int zero;
    if ((rc = q2_l2_entry(q, q2_be64(tab + (c % q->l2_entries) * 8), off, host, &zero, err, errlen)) < 0)
        return rc;
    *st = zero ? C_ZERO : *host ? C_DATA : C_UNMAPPED;
    return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* 1 when the base below the merged layers certainly reads as zeros in [off, off+n): a
 * hole of a raw base, or past its end. A qcow2 base is not looked into (0). */
static int base_is_hole(const struct qcow2 *last, uint64_t off, uint64_t n)
{
    if (last->bkind == QB_NONE || off >= last->bsize)
        return 1;
    if (last->bkind != QB_RAW)
        return 0;
    off_t data = lseek(last->bfd, (off_t)off, SEEK_DATA);
    return data < 0 ? errno == ENXIO : (uint64_t)data >= off + n;
}

/* The merged layers top, top->bq, ... (levels below top) into their array; the file
 * below the last one is the new image's base. */
static int gather(struct qcow2 *top, int levels, struct qcow2 **layers, char *err, size_t errlen)
{
    if (levels < 0 || levels >= QCOW2_MAX_CHAIN)
        return q2_fail(err, errlen, -EINVAL, "%s: cannot merge %d images below it", top->path, levels);
    struct qcow2 *q = top;
    for (int i = 0; i <= levels; i++) {
        if (!q)
            return q2_fail(err, errlen, -EINVAL, "%s: its chain has fewer than %d qcow2 images below it", top->path,
                           levels);
        if (q->cluster_bits != top->cluster_bits)
            return q2_fail(err, errlen, -ENOTSUP,
                           "%s has %" PRIu64 "-byte clusters, %s %" PRIu64 "-byte ones: images of one cluster size "
                           "only can be merged",
                           q->path, q->cs, top->path, top->cs);
        layers[i] = q;
        q = q->bkind == QB_QCOW2 ? q->bq : NULL;
    }
    return 0;
}

int qcow2_merge(struct qcow2 *top, int levels, const char *out, struct qcow2_merge_result *res, char *err,
                size_t errlen)
{
    struct qcow2 *layers[QCOW2_MAX_CHAIN];
    memset(res, 0, sizeof(*res));
    int rc = gather(top, levels, layers, err, errlen);
    if (rc < 0)
        return rc;
    struct qcow2 *last = layers[levels];
    const char *base = last->bkind != QB_NONE ? last->bpath : NULL;
    const char *base_fmt = last->bkind == QB_RAW ? "raw" : "qcow2"; /* never probed: a raw base is guest data */
    if ((rc = qcow2_create(out, top->size, base, base ? base_fmt : NULL, (int)top->cluster_bits, err, errlen)) < 0)
        return rc;
    struct qcow2 *dst = qcow2_open(out, 1, err, errlen);
    uint8_t *buf = malloc(top->cs);
    if (!dst || !buf) {
        free(buf);
        if (dst)
            qcow2_close(dst, NULL, 0);
        return dst ? q2_fail(err, errlen, -ENOMEM, "out of memory") : -EIO;
    }
    res->layers = (unsigned)levels + 1;
    for (uint64_t off = 0; rc == 0 && off < top->size; off += top->cs) {
        size_t n = top->size - off < top->cs ? (size_t)(top->size - off) : (size_t)top->cs;
        enum cstate st = C_UNMAPPED;
        uint64_t host = 0;
        int i;
        for (i = 0; i <= levels && st == C_UNMAPPED; i++) {
            pthread_mutex_lock(&layers[i]->lock);
            rc = cluster_state(layers[i], off, &st, &host, err, errlen);
            if (rc == 0 && st == C_DATA && (rc = q2_pread(layers[i]->fd, buf, n, host)) < 0)
                rc = q2_fail(err, errlen, rc, "%s: read failed: %s", layers[i]->path, strerror(-rc));
            pthread_mutex_unlock(&layers[i]->lock);
        }
        if (rc < 0 || st == C_UNMAPPED) /* the base shows through, as before */
            continue;
        if (st == C_DATA && !all_zero(buf, n)) {
            if ((rc = qcow2_write(dst, off, buf, n, err, errlen)) == 0)
                res->data_clusters++;
            util_test_point("QCOW2_MERGE");
        } else if (!base_is_hole(last, off, n)) { /* zeros that hide the base's data */
            if ((rc = qcow2_discard(dst, off, n, err, errlen)) == 0)
                res->zero_clusters++;
        }
    }
    free(buf);
    char why[256];
    int crc = qcow2_close(dst, why, sizeof(why)); /* flushes: data, refcounts, L2, L1, fdatasync */
    if (rc == 0 && crc < 0)
        rc = q2_fail(err, errlen, crc, "%s", why);
    return rc;
}
