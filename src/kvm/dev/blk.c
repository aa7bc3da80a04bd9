/* virtio-blk: read, write, flush, discard, write-zeroes and get-id over our qcow2
 * library (or a raw file). Each request's sector range is checked against the disk
 * size; a bad request completes with an error status, a malformed ring breaks the queue. */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "kvm/dev/virtio.h"
#include "kvm/snap.h"

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WRITE_ZEROES = 13 };
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };
#define F_SEG_MAX (1ull << 2)
#define F_RO (1ull << 5)
#define F_BLK_SIZE (1ull << 6)
#define F_FLUSH (1ull << 9)
#define F_DISCARD (1ull << 13)
#define F_WRITE_ZEROES (1ull << 14)
#define SECTOR 512ull
#define MAX_RANGE_SECTORS (1u << 22) /* 2 GiB per discard/write-zeroes range */
#define BLK_ID "cocoon-disk"

static int disk_rw(struct virtio_blk *b, int write, uint64_t off, uint8_t *p, size_t len)
{
    if (b->qcow)
        return write ? qcow2_write(b->qcow, off, p, len, NULL, 0) : qcow2_read(b->qcow, off, p, len, NULL, 0);
    while (len) {
        ssize_t n = write ? pwrite(b->raw_fd, p, len, (off_t)off) : pread(b->raw_fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) {
            if (write)
                return -EIO;
            memset(p, 0, len); /* a raw file shorter than its size reads as zeros */
            return 0;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int disk_zero(struct virtio_blk *b, uint64_t off, uint64_t len)
{
    if (b->qcow)
        return qcow2_discard(b->qcow, off, len, NULL, 0);
    if (fallocate(b->raw_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
        return -errno;
    return 0;
}

static int disk_flush(struct virtio_blk *b)
{
    if (b->qcow)
        return qcow2_flush(b->qcow, NULL, 0);
    return fdatasync(b->raw_fd) < 0 ? -errno : 0;
}

static int range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t len)
{
    return sector <= b->capacity_bytes / SECTOR && len <= b->capacity_bytes - sector * SECTOR;
}

/* Data I/O over the chain's segments: readable bytes [16, rlen) for writes, writable
 * bytes [0, wlen - 1) for reads (the last writable byte is the status). */
static int do_rw(struct virtio_blk *b, const struct virtq_chain *c, int write, uint64_t sector, uint32_t *written)
{
    uint64_t len = write ? c->rlen - 16 : c->wlen - 1;
    if ((len % SECTOR) || !range_ok(b, sector, len))
        return S_IOERR;
    if (write && b->read_only)
        return S_IOERR;
    uint64_t off = sector * SECTOR, skip = write ? 16 : 0, left = len;
    uint32_t first = write ? 0 : c->nr, n = write ? c->nr : c->nw;
    for (uint32_t k = first; k < first + n && left; k++) {
        uint64_t sl = c->seg[k].len;
        if (skip >= sl) {
            skip -= sl;
            continue;
        }
        uint64_t take = sl - skip < left ? sl - skip : left;
        if (disk_rw(b, write, off, c->seg[k].p + skip, (size_t)take) < 0)
            return S_IOERR;
        off += take;
        left -= take;
        skip = 0;
    }
    if (!write)
        *written = (uint32_t)len;
    return S_OK;
}

static int do_ranges(struct virtio_blk *b, const struct virtq_chain *c)
{
    if (b->read_only)
        return S_IOERR;
    uint64_t n = (c->rlen - 16) / 16;
    if (n == 0 || (c->rlen - 16) % 16 || n > 1)
        return S_IOERR; /* we announce max_*_seg = 1 */
    uint8_t seg[16];
    if (virtq_chain__read(c, 16, seg, 16) != 16)
        return S_IOERR;
    uint64_t sector;
    uint32_t count, flags;
    memcpy(&sector, seg, 8);
    memcpy(&count, seg + 8, 4);
    memcpy(&flags, seg + 12, 4);
    if (count > MAX_RANGE_SECTORS || !range_ok(b, sector, (uint64_t)count * SECTOR) || (flags & ~1u))
        return S_IOERR;
    return disk_zero(b, sector * SECTOR, (uint64_t)count * SECTOR) < 0 ? S_IOERR : S_OK;
}

static int handle(struct virtio_blk *b, const struct virtq_chain *c, uint32_t *written)
{
    uint8_t hdr[16];
    uint32_t type;
    uint64_t sector;
    if (virtq_chain__read(c, 0, hdr, 16) != 16)
        return S_IOERR;
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    switch (type) {
    case T_IN: return do_rw(b, c, 0, sector, written);
    case T_OUT: return do_rw(b, c, 1, sector, written);
    case T_FLUSH: return disk_flush(b) < 0 ? S_IOERR : S_OK;
    case T_GET_ID: {
        char id[20] = BLK_ID;
        uint64_t n = c->wlen - 1 < sizeof(id) ? c->wlen - 1 : sizeof(id);
        *written = (uint32_t)virtq_chain__write(c, 0, id, (size_t)n);
        return S_OK;
    }
    case T_DISCARD:
    case T_WRITE_ZEROES: return do_ranges(b, c);
    default: return S_UNSUPP;
    }
}

/* One request: its status goes in the last writable byte. Returns the bytes written. */
static uint32_t serve(struct virtio_mmio *t, struct virtq_chain *c)
{
    struct virtio_blk *b = t->dev;
    uint32_t written = 0;
    b->reqs++;
    if (c->wlen < 1) {
        b->errors++; /* nowhere to put a status: return the buffers untouched */
        return 0;
    }
    uint8_t status = c->rlen < 16 ? S_IOERR : (uint8_t)handle(b, c, &written);
    if (status != S_OK)
        b->errors++;
    virtq_chain__write(c, c->wlen - 1, &status, 1);
    return written + 1;
}

static void blk_notify(struct virtio_mmio *t, uint32_t qi)
{
    if (qi == 0)
        virtio_mmio__serve(t, 0, serve);
}

static void blk_config(struct virtio_mmio *t, uint32_t off, uint8_t *data, uint32_t len, int is_write)
{
    struct virtio_blk *b = t->dev;
    uint8_t cfg[60];
    if (is_write)
        return; /* writeback toggling is not offered */
    memset(cfg, 0, sizeof(cfg));
    uint64_t sectors = b->capacity_bytes / SECTOR;
    uint32_t seg_max = VIRTQ_MAX_SEGS - 2, blk = 512, one = 1, maxr = MAX_RANGE_SECTORS;
    memcpy(cfg + 0, &sectors, 8);
    memcpy(cfg + 12, &seg_max, 4);
    memcpy(cfg + 20, &blk, 4);
    memcpy(cfg + 36, &maxr, 4); /* max_discard_sectors */
    memcpy(cfg + 40, &one, 4);  /* max_discard_seg */
    memcpy(cfg + 44, &one, 4);  /* discard_sector_alignment */
    memcpy(cfg + 48, &maxr, 4); /* max_write_zeroes_sectors */
    memcpy(cfg + 52, &one, 4);  /* max_write_zeroes_seg */
    if (off <= sizeof(cfg) && len <= sizeof(cfg) - off)
        memcpy(data, cfg + off, len);
}

static const struct virtio_dev_ops blk_ops_rw = {
    .name = "virtio-blk",
    .device_id = 2,
    .num_queues = 1,
    .features = F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_DISCARD | F_WRITE_ZEROES,
    .config_len = 60,
    .config_rw = blk_config,
    .notify = blk_notify,
};
static const struct virtio_dev_ops blk_ops_ro = {
    .name = "virtio-blk",
    .device_id = 2,
    .num_queues = 1,
    .features = F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_RO,
    .config_len = 60,
    .config_rw = blk_config,
    .notify = blk_notify,
};

int virtio_blk__init(struct virtio_blk *b, struct dev_host *host, uint64_t base, int irq, const char *path,
                     const char *format, int read_only, char *err, size_t errcap)
{
    memset(b, 0, sizeof(*b));
    b->raw_fd = -1;
    b->read_only = read_only;
    if (!strcmp(format, "qcow2")) {
        b->qcow = qcow2_open(path, !read_only, err, errcap);
        if (!b->qcow)
            return -1;
        b->capacity_bytes = qcow2_virtual_size(b->qcow);
    } else if (!strcmp(format, "raw")) {
        b->raw_fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (b->raw_fd < 0) {
            snprintf(err, errcap, "cannot open disk %s: %s", path, strerror(errno));
            return -1;
        }
        off_t end = lseek(b->raw_fd, 0, SEEK_END);
        b->capacity_bytes = end < 0 ? 0 : (uint64_t)end;
    } else {
        snprintf(err, errcap, "unknown disk format \"%s\"", format);
        return -1;
    }
    b->capacity_bytes &= ~(SECTOR - 1);
    if (virtio_mmio__init(&b->t, host, base, irq, read_only ? &blk_ops_ro : &blk_ops_rw, b) < 0) {
        snprintf(err, errcap, "cannot place virtio-blk at 0x%llx", (unsigned long long)base);
        virtio_blk__close(b);
        return -1;
    }
    return 0;
}

void virtio_blk__close(struct virtio_blk *b)
{
    if (b->qcow)
        qcow2_close(b->qcow, NULL, 0);
    if (b->raw_fd >= 0)
        close(b->raw_fd);
    b->qcow = NULL;
    b->raw_fd = -1;
}

/* Saved state: the transport and the disk's shape. Requests are served whole within a
 * notification, so no chain is ever held; the disk itself is not in the state (the
 * restored process opens the box's disk), only checked to be the same size. qcow2
 * metadata held in memory is written first, so the process that opens the image next
 * sees every write the guest was told was done. */
int virtio_blk__save(struct virtio_blk *b, struct snap_w *w, char *err, size_t errcap)
{
    pthread_mutex_lock(&b->t.lock);
    if (b->qcow && qcow2_flush(b->qcow, err, errcap) < 0) {
        pthread_mutex_unlock(&b->t.lock);
        return -1;
    }
    virtio_mmio__save_held(&b->t, w, 0);
    snap_w__u64(w, b->capacity_bytes);
    snap_w__u8(w, (uint8_t)(b->read_only != 0));
    pthread_mutex_unlock(&b->t.lock);
    if (w->oom) {
        snprintf(err, errcap, "virtio-blk: the saved state is out of room");
        return -1;
    }
    return 0;
}

int virtio_blk__load(struct virtio_blk *b, struct snap_r *r, char *err, size_t errcap)
{
    pthread_mutex_lock(&b->t.lock);
    int rc = virtio_mmio__load_held(&b->t, r);
    if (rc == 0) {
        uint64_t cap = snap_r__u64(r);
        uint8_t ro = snap_r__u8(r);
        if (r->bad)
            rc = -1;
        else if (cap != b->capacity_bytes)
            rc = snap_r__fail(r, "virtio-blk: the disk has %llu bytes, the saved state's had %llu",
                              (unsigned long long)b->capacity_bytes, (unsigned long long)cap);
        else if (ro != (b->read_only != 0))
            rc = snap_r__fail(r, "virtio-blk: the disk is %s, the saved state's was %s",
                              b->read_only ? "read-only" : "writable", ro ? "read-only" : "writable");
    }
    if (rc == 0)
        virtio_mmio__resume_held(&b->t);
    pthread_mutex_unlock(&b->t.lock);
    if (rc < 0)
        snprintf(err, errcap, "%s", r->why);
    return rc;
}
