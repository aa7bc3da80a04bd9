/* Internals shared by the qcow2 files: the open image, its metadata caches and the
 * helpers between qcow2.c (header, create, open), qcow2_io.c (mapping, allocation,
 * refcounts, flush) and qcow2_check.c. Not part of the API. */
#ifndef COCOON_QCOW2_INT_H
#define COCOON_QCOW2_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>

#include "disk/qcow2.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_HDR_V2 72
#define QCOW2_HDR_V3 104
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURES 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u

#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)

#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull /* bits 9..55 */
#define QCOW2_L1_RESERVED 0x7f000000000001ffull /* bits 0..8, 56..62 */
#define QCOW2_L2_RESERVED 0x3f000000000001feull /* bits 1..8, 56..61 */
#define QCOW2_RT_RESERVED 0x1ffull              /* bits 0..8 */

#define QCOW2_MAX_L1_BYTES (32u << 20) /* QEMU's limits, so QEMU opens what we make */
#define QCOW2_MAX_RT_BYTES (8u << 20)

/* One cached metadata cluster (an L2 table or a refcount block), kept big-endian
 * exactly as on disk. off == 0 marks a free slot (cluster 0 is always the header). */
struct qslot {
    uint64_t off;
    uint64_t used; /* LRU stamp */
    int dirty;
    uint8_t *buf;
};

struct qcache {
    unsigned n;
    uint64_t tick;
    struct qslot *slot;
};

enum qbacking { QB_NONE, QB_RAW, QB_QCOW2 };

struct qcow2 {
    pthread_mutex_t lock;
    char *path;
    int fd;
    int writable;
    int depth; /* images below this one */

    uint32_t version;
    uint32_t cluster_bits;
    uint64_t cs; /* cluster size */
    uint64_t size;
    uint64_t l2_entries;
    uint64_t incompat, autoclear;
    uint32_t nb_snapshots;
    int has_bitmaps;

    uint32_t l1_size;
    uint64_t l1_off;
    uint64_t *l1;                      /* host byte order */
    uint64_t l1_dirty_lo, l1_dirty_hi; /* [lo, hi) */

    uint32_t refcount_order;
    uint64_t rb_entries; /* refcounts per block */
    uint64_t rt_off;
    uint32_t rt_clusters;
    uint64_t rt_entries;
    uint64_t *rt; /* host byte order */
    uint64_t rt_dirty_lo, rt_dirty_hi;

    uint64_t file_size; /* bytes really in the file */
    uint64_t end;       /* next cluster to allocate; >= file_size rounded up */
    int unsynced;       /* writes since the last fdatasync */

    struct qcache l2c, rbc;
    uint8_t *scratch; /* one cluster, for copy-on-write */

    char *bpath; /* the backing file as opened (resolved against this image's directory) */
    enum qbacking bkind;
    int bfd;
    uint64_t bsize;
    struct qcow2 *bq;
};

/* err helpers: format into err (if any) and return rc. */
int q2_fail(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static inline uint64_t q2_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}
static inline uint32_t q2_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void q2_put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}
static inline void q2_put32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Full pread/pwrite; pread past EOF fills zeros. 0 or -errno. */
int q2_pread(int fd, void *buf, size_t len, uint64_t off);
int q2_pwrite(int fd, const void *buf, size_t len, uint64_t off);

/* qcow2_io.c */
int q2_cache_init(struct qcache *c, unsigned n, uint64_t cs);
void q2_cache_free(struct qcache *c);
int q2_read_locked(struct qcow2 *q, uint64_t off, void *buf, size_t len, char *err, size_t errlen);
int q2_writeback(struct qcow2 *q, char *err, size_t errlen);
int q2_refcount_get(struct qcow2 *q, uint64_t host, uint64_t *val, char *err, size_t errlen);
/* Validates an L1 entry; *l2off = 0 when unallocated. */
int q2_l1_entry(struct qcow2 *q, uint64_t l1i, uint64_t *l2off, char *err, size_t errlen);
/* Reads the L2 table at l2off through the cache (read-only use). */
int q2_l2_table(struct qcow2 *q, uint64_t l2off, const uint8_t **tab, char *err, size_t errlen);
/* Validates an L2 entry: *host = data cluster or 0, *zero = reads as zeros. */
int q2_l2_entry(struct qcow2 *q, uint64_t e, uint64_t guest, uint64_t *host, int *zero, char *err, size_t errlen);
/* Is [off, off+len) clear of the header, L1 and refcount tables? */
int q2_clear_of_tables(const struct qcow2 *q, uint64_t off, uint64_t len);
uint64_t q2_rb_get(const uint8_t *b, uint64_t i, unsigned order);

#endif
