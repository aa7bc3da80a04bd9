/* qcow2 images, part one: creating a fresh image and opening one. Opening checks
 * every header field against the spec and the file size before anything is used,
 * then opens the backing chain read-only. Reads/writes live in qcow2_io.c. */
#include "disk/qcow2_int.h"
#include "util/fd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int q2_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int q2_pread(int fd, void *buf, size_t len, uint64_t off)
{
    ssize_t n = util_pread_full(fd, buf, len, off);
    if (n < 0)
        return -errno;
    memset((uint8_t *)buf + n, 0, len - (size_t)n); /* past EOF: the rest reads as zeros */
    return 0;
}

int q2_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    ssize_t n = util_pwrite_full(fd, buf, len, off);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

static uint64_t div_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

/* Size of a regular file or block device open on fd. */
static int fd_size(int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
        return 0;
    }
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(fd, 0, SEEK_END);
        if (end < 0)
            return -errno;
        *size = (uint64_t)end;
        return 0;
    }
    return -EINVAL; /* fifos, ttys, directories: never an image */
}

/* Opens a file that must be a regular file or block device; O_NONBLOCK so a fifo
 * named by a hostile backing-file field cannot hang us before fstat refuses it. */
static int open_image_file(const char *path, int writable, uint64_t *size, char *err, size_t errlen)
{
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return q2_fail(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
    int rc = fd_size(fd, size);
    if (rc < 0) {
        close(fd);
        if (rc == -EINVAL)
            return q2_fail(err, errlen, rc, "%s: not a regular file or block device", path);
        return q2_fail(err, errlen, rc, "%s: cannot get its size: %s", path, strerror(-rc));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

/* ---- create ---- */

struct layout {
    uint64_t cs, l1_entries, l1_clusters, rt_clusters, rb_count, total;
};

/* Header, refcount table, refcount blocks, L1 table: grows the refcount structures
 * until they cover every metadata cluster, themselves included. */
static int plan_layout(uint64_t size, uint32_t cb, struct layout *L, char *err, size_t errlen)
{
    L->cs = 1ull << cb;
    uint64_t l2_cover = L->cs * (L->cs / 8);
    L->l1_entries = div_up(size, l2_cover);
    if (L->l1_entries * 8 > QCOW2_MAX_L1_BYTES)
        return q2_fail(err, errlen, -EINVAL,
                       "virtual size %" PRIu64 " needs a %" PRIu64 "-byte L1 table (limit %u); use bigger clusters",
                       size, L->l1_entries * 8, QCOW2_MAX_L1_BYTES);
    L->l1_clusters = L->l1_entries ? div_up(L->l1_entries * 8, L->cs) : 1;
    uint64_t rb_entries = L->cs * 8 / 16;
    L->rt_clusters = 1;
    L->rb_count = 1;
    for (;;) {
        L->total = 1 + L->rt_clusters + L->rb_count + L->l1_clusters;
        uint64_t rb = div_up(L->total, rb_entries);
        uint64_t rt = div_up(rb * 8, L->cs);
        if (rb <= L->rb_count && rt <= L->rt_clusters)
            break;
        L->rb_count = rb > L->rb_count ? rb : L->rb_count;
        L->rt_clusters = rt > L->rt_clusters ? rt : L->rt_clusters;
    }
    if (L->rt_clusters * L->cs > QCOW2_MAX_RT_BYTES)
        return q2_fail(err, errlen, -EINVAL, "refcount table would exceed %u bytes", QCOW2_MAX_RT_BYTES);
    return 0;
}

/* Reads the first bytes of a file to tell qcow2 from raw, and its virtual size. fmt
 * holds at least 8 bytes. */
static int probe_backing(const char *path, char fmt[8], uint64_t *vsize, char *err, size_t errlen)
{
    uint64_t fsize;
    int fd = open_image_file(path, 0, &fsize, err, errlen);
    if (fd < 0)
        return fd;
    uint8_t h[32];
    int rc = q2_pread(fd, h, sizeof(h), 0);
    close(fd);
    if (rc < 0)
        return q2_fail(err, errlen, rc, "%s: cannot read: %s", path, strerror(-rc));
    if (fsize >= sizeof(h) && q2_be32(h) == QCOW2_MAGIC) {
        snprintf(fmt, 8, "qcow2");
        *vsize = q2_be64(h + 24);
    } else {
        snprintf(fmt, 8, "raw");
        *vsize = fsize;
    }
    return 0;
}

static int write_new_image(int fd, const struct layout *L, uint64_t size, uint32_t cb, const char *backing,
                           const char *bfmt)
{
    uint64_t cs = L->cs;
    uint8_t *c = calloc(1, cs);
    if (!c)
        return -ENOMEM;
    uint64_t rt_off = cs, rb_off = cs * (1 + L->rt_clusters);
    uint64_t l1_off = rb_off + cs * L->rb_count;

    /* Header cluster: fixed header, backing-format extension, end mark, name. */
    q2_put32(c + 0, QCOW2_MAGIC);
    q2_put32(c + 4, 3);
    q2_put32(c + 20, cb);
    q2_put64(c + 24, size);
    q2_put32(c + 36, (uint32_t)L->l1_entries);
    q2_put64(c + 40, l1_off);
    q2_put64(c + 48, rt_off);
    q2_put32(c + 56, (uint32_t)L->rt_clusters);
    q2_put32(c + 96, 4);    /* refcount_order: 16-bit refcounts */
    q2_put32(c + 100, 112); /* header_length, incl. compression_type + padding */
    size_t p = 112;
    if (backing) {
        size_t fl = strlen(bfmt);
        q2_put32(c + p, QCOW2_EXT_BACKING_FMT);
        q2_put32(c + p + 4, (uint32_t)fl);
        memcpy(c + p + 8, bfmt, fl);
        p += 8 + ((fl + 7) & ~(size_t)7);
    }
    p += 8; /* end of extensions (zeros) */
    if (backing) {
        size_t bl = strlen(backing);
        q2_put64(c + 8, p);
        q2_put32(c + 16, (uint32_t)bl);
        memcpy(c + p, backing, bl);
    }
    int rc = q2_pwrite(fd, c, cs, 0);

    /* Refcount table: one entry per refcount block. */
    for (uint64_t t = 0; rc == 0 && t < L->rt_clusters; t++) {
        memset(c, 0, cs);
        for (uint64_t i = 0; i < cs / 8; i++) {
            uint64_t b = t * (cs / 8) + i;
            if (b < L->rb_count)
                q2_put64(c + i * 8, rb_off + b * cs);
        }
        rc = q2_pwrite(fd, c, cs, rt_off + t * cs);
    }
    /* Refcount blocks: 1 for every metadata cluster. */
    uint64_t per = cs / 2;
    for (uint64_t b = 0; rc == 0 && b < L->rb_count; b++) {
        memset(c, 0, cs);
        for (uint64_t i = 0; i < per && b * per + i < L->total; i++) {
            c[i * 2] = 0;
            c[i * 2 + 1] = 1;
        }
        rc = q2_pwrite(fd, c, cs, rb_off + b * cs);
    }
    free(c);
    /* The L1 table is all zeros: a sparse extension is enough. */
    if (rc == 0 && ftruncate(fd, (off_t)(L->total * cs)) < 0)
        rc = -errno;
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    return rc;
}

int qcow2_create(const char *path, uint64_t virtual_size, const char *backing, const char *backing_fmt,
                 int cluster_bits, char *err, size_t errlen)
{
    uint32_t cb = cluster_bits ? (uint32_t)cluster_bits : 16;
    if (cluster_bits < 0 || cb < 9 || cb > 21)
        return q2_fail(err, errlen, -EINVAL, "cluster_bits %d out of range (9..21)", cluster_bits);
    char *abs = NULL;
    char fmt[8] = "";
    if (backing) {
        abs = realpath(backing, NULL);
        if (!abs)
            return q2_fail(err, errlen, -errno, "backing file %s: %s", backing, strerror(errno));
        uint64_t bsize;
        int rc = probe_backing(abs, fmt, &bsize, err, errlen);
        if (rc < 0) {
            free(abs);
            return rc;
        }
        if (backing_fmt && strcmp(backing_fmt, "raw") && strcmp(backing_fmt, "qcow2")) {
            free(abs);
            return q2_fail(err, errlen, -ENOTSUP, "backing format \"%s\" not supported (raw or qcow2)", backing_fmt);
        }
        if (backing_fmt && !strcmp(backing_fmt, "qcow2") && strcmp(fmt, "qcow2")) {
            free(abs);
            return q2_fail(err, errlen, -EINVAL, "backing file %s is not a qcow2 image", backing);
        }
        if (backing_fmt)
            snprintf(fmt, sizeof(fmt), "%s", backing_fmt);
        if (!virtual_size)
            virtual_size = bsize;
        /* header + extension + name must fit in the first cluster */
        if (strlen(abs) > 1023 || 112 + 16 + 8 + strlen(abs) > (1ull << cb)) {
            free(abs);
            return q2_fail(err, errlen, -ENAMETOOLONG, "backing path %s too long for the image header", backing);
        }
    }
    if (virtual_size > (1ull << 62)) {
        free(abs);
        return q2_fail(err, errlen, -EINVAL, "virtual size %" PRIu64 " too large", virtual_size);
    }
    virtual_size = (virtual_size + 511) & ~511ull;
    struct layout L = {0};
    int rc = plan_layout(virtual_size, cb, &L, err, errlen);
    if (rc < 0) {
        free(abs);
        return rc;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        free(abs);
        return q2_fail(err, errlen, rc, "%s: cannot create: %s", path, strerror(-rc));
    }
    rc = write_new_image(fd, &L, virtual_size, cb, abs, fmt);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    free(abs);
    if (rc < 0) {
        unlink(path);
        return q2_fail(err, errlen, rc, "%s: cannot write the new image: %s", path, strerror(-rc));
    }
    return 0;
}

/* ---- open ---- */

static int open_layer(const char *path, int fd, int writable, int depth, struct qcow2 *below, struct qcow2 **out,
                      char *err, size_t errlen);
static int open_chain(const char *path, int writable, int depth, struct qcow2 **out, char *err, size_t errlen);

#define BAD(...) q2_fail(err, errlen, -EUCLEAN, __VA_ARGS__)

/* Fixed header fields: everything is checked before anything is trusted. */
static int parse_header(struct qcow2 *q, const uint8_t *h, uint32_t *hdr_len, char *err, size_t errlen)
{
    const char *P = q->path;
    if (q->file_size < QCOW2_HDR_V2 || q2_be32(h) != QCOW2_MAGIC)
        return BAD("%s: not a qcow2 image (bad magic or shorter than a header)", P);
    q->version = q2_be32(h + 4);
    if (q->version != 2 && q->version != 3)
        return q2_fail(err, errlen, -ENOTSUP, "%s: qcow2 version %u not supported (2 or 3)", P, q->version);
    q->cluster_bits = q2_be32(h + 20);
    if (q->cluster_bits < 9 || q->cluster_bits > 21)
        return BAD("%s: cluster_bits %u out of range (9..21)", P, q->cluster_bits);
    q->cs = 1ull << q->cluster_bits;
    q->l2_entries = q->cs / 8;
    q->size = q2_be64(h + 24);
    if (q2_be32(h + 32) != 0)
        return q2_fail(err, errlen, -ENOTSUP, "%s: encrypted images are not supported (crypt_method %u)", P,
                       q2_be32(h + 32));
    q->l1_size = q2_be32(h + 36);
    q->l1_off = q2_be64(h + 40);
    q->rt_off = q2_be64(h + 48);
    q->rt_clusters = q2_be32(h + 56);
    q->nb_snapshots = q2_be32(h + 60);
    uint64_t snap_off = q2_be64(h + 64);
    q->refcount_order = 4;
    *hdr_len = QCOW2_HDR_V2;
    if (q->version == 3) {
        if (q->file_size < QCOW2_HDR_V3)
            return BAD("%s: file too short for a version 3 header", P);
        q->incompat = q2_be64(h + 72);
        q->autoclear = q2_be64(h + 88);
        q->refcount_order = q2_be32(h + 96);
        *hdr_len = q2_be32(h + 100);
        if (*hdr_len < QCOW2_HDR_V3 || *hdr_len % 8 || *hdr_len > q->cs)
            return BAD("%s: header_length %u invalid (>= 104, multiple of 8, within a cluster)", P, *hdr_len);
        if (q->refcount_order > 6)
            return BAD("%s: refcount_order %u exceeds 6", P, q->refcount_order);
    }
    uint64_t known = QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | QCOW2_INCOMPAT_COMPRESSION;
    if (q->incompat & ~known) {
        uint64_t bad = q->incompat & ~known;
        const char *what = bad & QCOW2_INCOMPAT_DATA_FILE ? " (external data file)"
                           : bad & QCOW2_INCOMPAT_EXTL2   ? " (extended L2 entries)"
                                                          : "";
        return q2_fail(err, errlen, -ENOTSUP, "%s: unsupported incompatible feature bits 0x%" PRIx64 "%s", P, bad,
                       what);
    }
    if (q->writable && (q->incompat & QCOW2_INCOMPAT_DIRTY))
        return q2_fail(err, errlen, -EUCLEAN,
                       "%s: marked dirty (lazy refcounts not written back); repair with `qemu-img check -r all %s`", P,
                       P);
    if (q->writable && (q->incompat & QCOW2_INCOMPAT_CORRUPT))
        return q2_fail(err, errlen, -EUCLEAN,
                       "%s: marked corrupt by QEMU; repair with `qemu-img check -r all %s` before writing", P, P);
    if (q->writable && q->nb_snapshots)
        return q2_fail(err, errlen, -ENOTSUP, "%s: has %u internal snapshots; cannot write to such images", P,
                       q->nb_snapshots);

    /* Size and L1 table. */
    if (q->size > (1ull << 62))
        return BAD("%s: virtual size %" PRIu64 " is absurd", P, q->size);
    uint64_t need_l1 = div_up(q->size, q->cs * q->l2_entries);
    if ((uint64_t)q->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return BAD("%s: L1 table of %u entries exceeds %u bytes", P, q->l1_size, QCOW2_MAX_L1_BYTES);
    if (q->l1_size < need_l1)
        return BAD("%s: L1 table of %u entries too small for virtual size %" PRIu64 " (needs %" PRIu64 ")", P,
                   q->l1_size, q->size, need_l1);
    if (q->l1_size && (q->l1_off % q->cs || q->l1_off == 0 || q->l1_off > q->file_size ||
                       q->l1_size * 8ull > q->file_size - q->l1_off))
        return BAD("%s: L1 table offset 0x%" PRIx64 " (%u entries) unaligned or beyond the end of the file "
                   "(%" PRIu64 " bytes)",
                   P, q->l1_off, q->l1_size, q->file_size);

    /* Refcount table. */
    if (q->rt_clusters == 0 || (uint64_t)q->rt_clusters * q->cs > QCOW2_MAX_RT_BYTES)
        return BAD("%s: refcount table of %u clusters out of range", P, q->rt_clusters);
    uint64_t rt_bytes = (uint64_t)q->rt_clusters * q->cs;
    if (q->rt_off % q->cs || q->rt_off == 0 || q->rt_off > q->file_size || rt_bytes > q->file_size - q->rt_off)
        return BAD("%s: refcount table offset 0x%" PRIx64 " unaligned or beyond the end of the file", P, q->rt_off);
    if (q->l1_size && q->l1_off < q->rt_off + rt_bytes && q->rt_off < q->l1_off + q->l1_size * 8ull)
        return BAD("%s: L1 table and refcount table overlap", P);
    q->rt_entries = rt_bytes / 8;
    q->rb_entries = q->cs * 8 >> q->refcount_order;
    if (q->nb_snapshots && (snap_off % q->cs || snap_off == 0 || snap_off >= q->file_size))
        return BAD("%s: snapshot table offset 0x%" PRIx64 " invalid", P, snap_off);
    return 0;
}

/* Header extensions after the fixed header, and the backing file name. */
static int parse_extensions(struct qcow2 *q, const uint8_t *h, uint32_t hdr_len, char *bfmt, char *bname, char *err,
                            size_t errlen)
{
    const char *P = q->path;
    uint64_t lim = q->cs < q->file_size ? q->cs : q->file_size;
    uint64_t boff = q2_be64(h + 8);
    uint32_t blen = q2_be32(h + 16);
    if (boff) {
        if (blen == 0 || blen > 1023 || boff < hdr_len || boff >= lim || blen > lim - boff)
            return BAD("%s: backing file name (offset %" PRIu64 ", %u bytes) outside the header cluster", P, boff,
                       blen);
        if (memchr(h + boff, 0, blen))
            return BAD("%s: backing file name contains a NUL byte", P);
        memcpy(bname, h + boff, blen);
        bname[blen] = 0;
        lim = boff; /* extensions end before the name */
    }
    if (q->version < 3)
        return 0;
    uint64_t p = hdr_len;
    while (p + 8 <= lim) {
        uint32_t type = q2_be32(h + p), len = q2_be32(h + p + 4);
        if (type == QCOW2_EXT_END)
            break;
        if (len > lim - p - 8)
            return BAD("%s: header extension 0x%08x of %u bytes runs past the header cluster", P, type, len);
        if (type == QCOW2_EXT_BACKING_FMT) {
            if (len == 0 || len > 15)
                return BAD("%s: backing format extension of %u bytes", P, len);
            memcpy(bfmt, h + p + 8, len);
            bfmt[len] = 0;
        } else if (type == QCOW2_EXT_BITMAPS) {
            q->has_bitmaps = 1;
        }
        p += 8 + (((uint64_t)len + 7) & ~7ull);
    }
    return 0;
}

/* "dir of image" + "/" + name when name is relative. */
static char *resolve_backing(const char *image, const char *name)
{
    if (name[0] == '/')
        return strdup(name);
    const char *slash = strrchr(image, '/');
    size_t dl = slash ? (size_t)(slash - image) + 1 : 0;
    char *s = malloc(dl + strlen(name) + 1);
    if (!s)
        return NULL;
    memcpy(s, image, dl);
    memcpy(s + dl, name, strlen(name) + 1);
    return s;
}

static int open_backing(struct qcow2 *q, const char *bname, const char *bfmt, char *err, size_t errlen)
{
    if (q->depth >= QCOW2_MAX_CHAIN)
        return q2_fail(err, errlen, -ELOOP, "%s: backing chain deeper than %d images (a loop?)", q->path,
                       QCOW2_MAX_CHAIN);
    char *bp = resolve_backing(q->path, bname);
    if (!bp)
        return -ENOMEM;
    char fmt[16];
    int rc = 0;
    if (bfmt[0]) {
        snprintf(fmt, sizeof(fmt), "%s", bfmt);
    } else {
        uint64_t ignored;
        char pf[8];
        rc = probe_backing(bp, pf, &ignored, err, errlen);
        snprintf(fmt, sizeof(fmt), "%s", pf);
    }
    if (rc == 0 && !strcmp(fmt, "qcow2")) {
        rc = open_chain(bp, 0, q->depth + 1, &q->bq, err, errlen);
        if (rc == 0) {
            q->bkind = QB_QCOW2;
            q->bsize = q->bq->size;
        }
    } else if (rc == 0 && !strcmp(fmt, "raw")) {
        int fd = open_image_file(bp, 0, &q->bsize, err, errlen);
        if (fd < 0) {
            rc = fd;
        } else {
            q->bfd = fd;
            q->bkind = QB_RAW;
        }
    } else if (rc == 0) {
        rc = q2_fail(err, errlen, -ENOTSUP, "%s: backing format \"%s\" not supported (raw or qcow2)", q->path, fmt);
    }
    if (rc == 0)
        q->bpath = bp;
    else
        free(bp);
    return rc;
}

static void free_q(struct qcow2 *q)
{
    if (!q)
        return;
    if (q->bq)
        qcow2_close(q->bq, NULL, 0);
    if (q->bfd >= 0)
        close(q->bfd);
    if (q->fd >= 0)
        close(q->fd);
    q2_cache_free(&q->l2c);
    q2_cache_free(&q->rbc);
    free(q->l1);
    free(q->rt);
    free(q->scratch);
    free(q->bpath);
    free(q->path);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static int load_tables(struct qcow2 *q, char *err, size_t errlen)
{
    q->l1 = calloc(q->l1_size ? q->l1_size : 1, 8);
    q->rt = calloc(q->rt_entries, 8);
    q->scratch = malloc(q->cs);
    if (!q->l1 || !q->rt || !q->scratch)
        return q2_fail(err, errlen, -ENOMEM, "%s: out of memory for its tables", q->path);
    int rc = q2_pread(q->fd, q->l1, (size_t)q->l1_size * 8, q->l1_off);
    if (rc == 0)
        rc = q2_pread(q->fd, q->rt, q->rt_entries * 8, q->rt_off);
    if (rc < 0)
        return q2_fail(err, errlen, rc, "%s: cannot read its tables: %s", q->path, strerror(-rc));
    for (uint64_t i = 0; i < q->l1_size; i++)
        q->l1[i] = q2_be64((uint8_t *)&q->l1[i]);
    for (uint64_t i = 0; i < q->rt_entries; i++)
        q->rt[i] = q2_be64((uint8_t *)&q->rt[i]);
    q->l1_dirty_lo = q->rt_dirty_lo = UINT64_MAX;
    /* Keep the caches near 4 MiB whatever the cluster size. */
    unsigned n = (unsigned)((4u << 20) / q->cs);
    n = n < 8 ? 8 : n > 64 ? 64 : n;
    if (q2_cache_init(&q->l2c, n, q->cs) < 0 || q2_cache_init(&q->rbc, 4, q->cs) < 0)
        return q2_fail(err, errlen, -ENOMEM, "%s: out of memory for its caches", q->path);
    return 0;
}

/* Before our first write, clear autoclear bits we do not maintain (bitmaps). */
static int clear_autoclear(struct qcow2 *q, char *err, size_t errlen)
{
    if (!q->writable || q->version < 3 || !q->autoclear)
        return 0;
    uint8_t z[8] = {0};
    int rc = q2_pwrite(q->fd, z, 8, 88);
    if (rc == 0 && fdatasync(q->fd) < 0)
        rc = -errno;
    if (rc < 0)
        return q2_fail(err, errlen, rc, "%s: cannot update the header: %s", q->path, strerror(-rc));
    q->autoclear = 0;
    return 0;
}

/* One image and what lies below it: its backing file opened by name, or `below` (an
 * open chain the new image goes on top of; its header must name a backing file). fd >= 0
 * is the image already open (owned from here on); else path is opened. */
static int open_layer(const char *path, int fd, int writable, int depth, struct qcow2 *below, struct qcow2 **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    struct qcow2 *q = calloc(1, sizeof(*q));
    if (!q) {
        if (fd >= 0)
            close(fd);
        return q2_fail(err, errlen, -ENOMEM, "out of memory");
    }
    pthread_mutex_init(&q->lock, NULL);
    q->fd = q->bfd = -1;
    q->writable = writable;
    q->depth = depth;
    q->path = strdup(path);
    uint8_t *h = NULL;
    int rc = -ENOMEM;
    if (fd >= 0) {
        q->fd = fd;
        if ((rc = fd_size(fd, &q->file_size)) < 0) {
            q2_fail(err, errlen, rc, "%s: not a regular file or block device", path);
            goto fail;
        }
        rc = -ENOMEM;
    }
    if (!q->path)
        goto fail;
    if (q->fd < 0)
        q->fd = open_image_file(path, writable, &q->file_size, err, errlen);
    if (q->fd < 0) {
        rc = q->fd;
        goto fail;
    }
    uint8_t fixed[QCOW2_HDR_V3];
    rc = q2_pread(q->fd, fixed, sizeof(fixed), 0);
    if (rc < 0) {
        q2_fail(err, errlen, rc, "%s: cannot read the header: %s", path, strerror(-rc));
        goto fail;
    }
    uint32_t hdr_len = 0;
    if ((rc = parse_header(q, fixed, &hdr_len, err, errlen)) < 0)
        goto fail;
    h = malloc(q->cs);
    if (!h)
        goto fail;
    if ((rc = q2_pread(q->fd, h, q->cs, 0)) < 0) {
        q2_fail(err, errlen, rc, "%s: cannot read the header: %s", path, strerror(-rc));
        goto fail;
    }
    char bfmt[16] = "", bname[1024] = "";
    if ((rc = parse_extensions(q, h, hdr_len, bfmt, bname, err, errlen)) < 0)
        goto fail;
    if ((rc = load_tables(q, err, errlen)) < 0)
        goto fail;
    q->end = (q->file_size + q->cs - 1) & ~(q->cs - 1);
    if (below && !bname[0]) {
        rc = q2_fail(err, errlen, -EINVAL, "%s: has no backing file, so it cannot go on top of %s", path, below->path);
        goto fail;
    }
    if (below && (!(q->bpath = resolve_backing(path, bname)) || (bfmt[0] && strcmp(bfmt, "qcow2")))) {
        rc = q->bpath ? q2_fail(err, errlen, -EINVAL, "%s: its backing format is %s, not qcow2", path, bfmt) : -ENOMEM;
        goto fail;
    }
    if (!below && bname[0] && (rc = open_backing(q, bname, bfmt, err, errlen)) < 0)
        goto fail;
    if ((rc = clear_autoclear(q, err, errlen)) < 0)
        goto fail;
    free(h);
    *out = q;
    return 0;
fail:
    if (rc == -ENOMEM)
        q2_fail(err, errlen, rc, "%s: out of memory", path);
    free(h);
    if (q->fd >= 0)
        q->writable = 0; /* nothing to write back */
    free_q(q);
    return rc;
}

static int open_chain(const char *path, int writable, int depth, struct qcow2 **out, char *err, size_t errlen)
{
    return open_layer(path, -1, writable, depth, NULL, out, err, errlen);
}

struct qcow2 *qcow2_open(const char *path, int writable, char *err, size_t errlen)
{
    struct qcow2 *q;
    open_chain(path, writable, 0, &q, err, errlen);
    return q;
}

struct qcow2 *qcow2_open_over(int fd, const char *name, struct qcow2 *below, char *err, size_t errlen)
{
    if (qcow2_chain_depth(below) + 1 > QCOW2_MAX_CHAIN) {
        close(fd);
        q2_fail(err, errlen, -ELOOP, "%s: the backing chain would be deeper than %d images", name, QCOW2_MAX_CHAIN);
        return NULL;
    }
    /* the image below stops taking writes: everything it holds goes to its file first */
    if (below->writable) {
        pthread_mutex_lock(&below->lock);
        int rc = q2_writeback(below, err, errlen);
        pthread_mutex_unlock(&below->lock);
        if (rc < 0) {
            close(fd);
            return NULL;
        }
    }
    struct qcow2 *q;
    if (open_layer(name, fd, 1, 0, below, &q, err, errlen) < 0)
        return NULL;
    if (q->size != below->size) {
        q2_fail(err, errlen, -EINVAL, "%s: its size (%" PRIu64 " bytes) is not that of the image below (%" PRIu64 ")",
                name, q->size, below->size);
        q->writable = 0;
        free_q(q);
        return NULL;
    }
    below->writable = 0;
    q->bq = below;
    q->bkind = QB_QCOW2;
    q->bsize = below->size;
    return q;
}

int qcow2_close(struct qcow2 *q, char *err, size_t errlen)
{
    if (!q)
        return 0;
    int rc = 0;
    if (q->writable) {
        pthread_mutex_lock(&q->lock);
        rc = q2_writeback(q, err, errlen);
        pthread_mutex_unlock(&q->lock);
    }
    free_q(q);
    return rc;
}

uint64_t qcow2_virtual_size(const struct qcow2 *q) { return q->size; }

uint32_t qcow2_cluster_size(const struct qcow2 *q) { return (uint32_t)q->cs; }

int qcow2_chain_paths(const struct qcow2 *q, const char **paths, int max)
{
    int n = 0;
    for (const struct qcow2 *c = q; c && c->bpath && n < max; c = c->bq)
        paths[n++] = c->bpath;
    return n;
}

int qcow2_chain_depth(const struct qcow2 *q)
{
    int d = 0;
    for (; q && q->bkind != QB_NONE; q = q->bq)
        d++;
    return d;
}
