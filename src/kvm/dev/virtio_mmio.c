/* virtio-mmio v2 register file. Registers below 0x100 take 32-bit accesses only;
 * queue registers are writable only while the queue is disabled; rings are checked
 * against guest memory when the driver sets QueueReady. */
#include "kvm/dev/virtio_mmio.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kvm/snap.h"
#include "util/log.h"

enum {
    R_MAGIC = 0x000,
    R_VERSION = 0x004,
    R_DEVICE_ID = 0x008,
    R_VENDOR_ID = 0x00c,
    R_DEV_FEATURES = 0x010,
    R_DEV_FEATURES_SEL = 0x014,
    R_DRV_FEATURES = 0x020,
    R_DRV_FEATURES_SEL = 0x024,
    R_QUEUE_SEL = 0x030,
    R_QUEUE_NUM_MAX = 0x034,
    R_QUEUE_NUM = 0x038,
    R_QUEUE_READY = 0x044,
    R_QUEUE_NOTIFY = 0x050,
    R_INT_STATUS = 0x060,
    R_INT_ACK = 0x064,
    R_STATUS = 0x070,
    R_QUEUE_DESC_LO = 0x080,
    R_QUEUE_DESC_HI = 0x084,
    R_QUEUE_DRIVER_LO = 0x090,
    R_QUEUE_DRIVER_HI = 0x094,
    R_QUEUE_DEVICE_LO = 0x0a0,
    R_QUEUE_DEVICE_HI = 0x0a4,
    R_CONFIG_GEN = 0x0fc,
    R_CONFIG = 0x100,
};
#define MAGIC 0x74726976u  /* "virt" */
#define VENDOR 0x4f434f43u /* "COCO" */

static uint64_t offered(const struct virtio_mmio *t)
{
    return t->ops->features | VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC;
}

/* Lock held: the driver notified queue v (an MMIO exit or an ioeventfd). */
static void queue_notify(struct virtio_mmio *t, uint32_t v)
{
    t->notifies++;
    if (v < t->ops->num_queues && t->q[v].ready && virtio_mmio__driver_ok(t) && t->ops->notify) {
        t->ops->notify(t, v);
        virtio_mmio__check_broken(t, v);
    }
}

/* The line follows InterruptStatus. With an irqfd there is no level to hold: every
 * new interrupt cause is an edge of its own (raise_irq), and an acknowledgement
 * lowers nothing. */
static void set_line(struct virtio_mmio *t)
{
    if (!t->irqfd_on)
        t->host->ops->irq_line(t->host, t->irq, t->int_status != 0);
}

/* An edge for every batch, also on edge-configured pins. */
static void raise_irq(struct virtio_mmio *t)
{
    if (t->irqfd_on) {
        uint64_t one = 1;
        if (write(t->irqfd, &one, sizeof(one)) == sizeof(one))
            return;
    }
    t->host->ops->irq_line(t->host, t->irq, 0);
    t->host->ops->irq_line(t->host, t->irq, 1);
    if (t->irqfd_on)
        t->host->ops->irq_line(t->host, t->irq, 0); /* never leave the ioctl source high next to an irqfd */
}

void virtio_mmio__signal_used(struct virtio_mmio *t)
{
    t->int_status |= 1;
    raise_irq(t);
}

void virtio_mmio__serve(struct virtio_mmio *t, uint32_t qi,
                        uint32_t (*serve)(struct virtio_mmio *t, struct virtq_chain *c))
{
    struct virtq *q = &t->q[qi];
    struct virtq_chain c;
    int used = 0;
    while (virtq__pop(q, t->host->mem, &c) == 1) {
        virtq__push(q, &c, serve(t, &c));
        used = 1;
    }
    if (used)
        virtio_mmio__signal_used(t);
}

int virtio_mmio__check_broken(struct virtio_mmio *t, uint32_t qi)
{
    struct virtq *q = &t->q[qi];
    if (!q->broken || (t->status & VIRTIO_STATUS_NEEDS_RESET))
        return q->broken;
    t->broken_events++;
    vmm_log_guest("%s: queue %u is malformed (%s): device needs reset", t->ops->name, qi, q->why ? q->why : "?");
    t->status |= VIRTIO_STATUS_NEEDS_RESET;
    if (t->status & VIRTIO_STATUS_DRIVER_OK) {
        t->int_status |= 2;
        raise_irq(t);
    }
    return 1;
}

int virtio_mmio__driver_ok(const struct virtio_mmio *t)
{
    return (t->status & VIRTIO_STATUS_DRIVER_OK) && !(t->status & VIRTIO_STATUS_NEEDS_RESET);
}

static void device_reset(struct virtio_mmio *t)
{
    t->status = t->dev_feat_sel = t->drv_feat_sel = t->queue_sel = t->int_status = 0;
    t->drv_features = 0;
    for (int i = 0; i < VIRTIO_MAX_QUEUES; i++)
        virtq__reset(&t->q[i]);
    set_line(t);
    if (t->ops->reset)
        t->ops->reset(t);
}

static struct virtq *cur_queue(struct virtio_mmio *t)
{
    return t->queue_sel < t->ops->num_queues ? &t->q[t->queue_sel] : NULL;
}

static uint32_t reg_read(struct virtio_mmio *t, uint64_t off)
{
    struct virtq *q = cur_queue(t);
    switch (off) {
    case R_MAGIC: return MAGIC;
    case R_VERSION: return 2;
    case R_DEVICE_ID: return t->ops->device_id;
    case R_VENDOR_ID: return VENDOR;
    case R_DEV_FEATURES: return t->dev_feat_sel < 2 ? (uint32_t)(offered(t) >> (32 * t->dev_feat_sel)) : 0;
    case R_QUEUE_NUM_MAX: return q ? VIRTQ_MAX_SIZE : 0;
    case R_QUEUE_READY: return q ? (uint32_t)q->ready : 0;
    case R_INT_STATUS: return t->int_status;
    case R_STATUS: return t->status;
    case R_CONFIG_GEN: return t->config_gen;
    default: return 0;
    }
}

static void set_addr(struct virtq *q, uint64_t off, uint32_t v)
{
    uint64_t *a = off < R_QUEUE_DRIVER_LO ? &q->desc_gpa : off < R_QUEUE_DEVICE_LO ? &q->avail_gpa : &q->used_gpa;
    if (off & 4)
        *a = (*a & 0xffffffffull) | ((uint64_t)v << 32);
    else
        *a = (*a & ~0xffffffffull) | v;
}

static void queue_ready(struct virtio_mmio *t, struct virtq *q, uint32_t v)
{
    if (!v) {
        if (q->ready) {
            virtq__disable(q);
            if (t->ops->queue_off)
                t->ops->queue_off(t, t->queue_sel);
        }
        return;
    }
    if (q->ready)
        return;
    q->indirect_ok = (t->drv_features & VIRTIO_F_INDIRECT_DESC) != 0;
    if (virtq__enable(q, t->host->mem) < 0) {
        t->broken_events++;
        vmm_log_guest("%s: queue %u rejected: %s", t->ops->name, t->queue_sel, q->why);
        q->broken = 0; /* stays disabled: the driver reads QueueReady 0 */
        q->ready = 0;
    }
}

static void write_status(struct virtio_mmio *t, uint32_t v)
{
    if (v == 0) {
        device_reset(t);
        return;
    }
    if ((v & VIRTIO_STATUS_FEATURES_OK) && !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
        if ((t->drv_features & ~offered(t)) || !(t->drv_features & VIRTIO_F_VERSION_1))
            v &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK; /* refused: the driver sees the bit clear */
    }
    int was_ok = t->status & VIRTIO_STATUS_DRIVER_OK;
    t->status = (v & 0xff & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET) | (t->status & VIRTIO_STATUS_NEEDS_RESET);
    if (!was_ok && (t->status & VIRTIO_STATUS_DRIVER_OK) && t->ops->driver_ok)
        t->ops->driver_ok(t);
}

static void reg_write(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
    struct virtq *q = cur_queue(t);
    switch (off) {
    case R_DEV_FEATURES_SEL: t->dev_feat_sel = v; break;
    case R_DRV_FEATURES_SEL: t->drv_feat_sel = v; break;
    case R_DRV_FEATURES:
        if (t->drv_feat_sel < 2 && !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
            uint64_t mask = 0xffffffffull << (32 * t->drv_feat_sel);
            t->drv_features = (t->drv_features & ~mask) | ((uint64_t)v << (32 * t->drv_feat_sel));
        }
        break;
    case R_QUEUE_SEL: t->queue_sel = v; break;
    case R_QUEUE_NUM:
        if (q && !q->ready)
            q->size = v > 0xffff ? 0 : (uint16_t)v; /* checked at QueueReady */
        break;
    case R_QUEUE_READY:
        if (q)
            queue_ready(t, q, v);
        break;
    case R_QUEUE_NOTIFY: queue_notify(t, v); break;
    case R_INT_ACK:
        t->int_status &= ~v;
        set_line(t);
        break;
    case R_STATUS: write_status(t, v); break;
    case R_QUEUE_DESC_LO:
    case R_QUEUE_DESC_HI:
    case R_QUEUE_DRIVER_LO:
    case R_QUEUE_DRIVER_HI:
    case R_QUEUE_DEVICE_LO:
    case R_QUEUE_DEVICE_HI:
        if (q && !q->ready)
            set_addr(q, off, v);
        break;
    default: break;
    }
}

static void mmio_access(void *dev, uint64_t off, uint8_t *data, uint32_t len, int is_write)
{
    struct virtio_mmio *t = dev;
    pthread_mutex_lock(&t->lock);
    if (off >= R_CONFIG) {
        uint64_t c = off - R_CONFIG;
        if (c < t->ops->config_len && len <= t->ops->config_len - c && t->ops->config_rw)
            t->ops->config_rw(t, (uint32_t)c, data, len, is_write);
        else if (!is_write)
            memset(data, 0, len);
    } else if (len == 4 && !(off & 3)) {
        if (is_write) {
            uint32_t v;
            memcpy(&v, data, 4);
            reg_write(t, off, v);
        } else {
            uint32_t v = reg_read(t, off);
            memcpy(data, &v, 4);
        }
    } else if (!is_write) {
        memset(data, 0, len);
    }
    pthread_mutex_unlock(&t->lock);
}

int virtio_mmio__init(struct virtio_mmio *t, struct dev_host *host, uint64_t base, int irq,
                      const struct virtio_dev_ops *ops, void *dev)
{
    memset(t, 0, sizeof(*t));
    if (ops->num_queues > VIRTIO_MAX_QUEUES)
        return -1;
    t->host = host;
    t->ops = ops;
    t->dev = dev;
    t->base = base;
    t->irq = irq;
    pthread_mutex_init(&t->lock, NULL);
    return host->ops->map_mmio(host, base, VIRTIO_MMIO_SIZE, mmio_access, t);
}

static void on_notify_fd(void *ctx, uint32_t events)
{
    struct virtio_notify_fd *n = ctx;
    uint64_t cnt;
    (void)events;
    if (read(n->fd, &cnt, sizeof(cnt)) != sizeof(cnt))
        return; /* spurious wake-up: nothing counted */
    pthread_mutex_lock(&n->t->lock);
    queue_notify(n->t, n->queue);
    pthread_mutex_unlock(&n->t->lock);
}

int virtio_mmio__use_ioeventfd(struct virtio_mmio *t)
{
    struct dev_host *h = t->host;
    if (!h->ops->ioeventfd)
        return 0;
    for (uint32_t q = (uint32_t)t->n_nfd; q < t->ops->num_queues; q++) {
        struct virtio_notify_fd *n = &t->nfd[q];
        *n = (struct virtio_notify_fd){.io = {.fn = on_notify_fd, .ctx = n}, .t = t, .queue = q};
        n->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (n->fd < 0)
            break;
        if (h->ops->watch(h, n->fd, EPOLLIN, &n->io) < 0) {
            close(n->fd);
            break;
        }
        if (h->ops->ioeventfd(h, t->base + R_QUEUE_NOTIFY, 4, q, n->fd, 1) < 0) {
            h->ops->unwatch(h, n->fd);
            close(n->fd);
            break;
        }
        t->n_nfd = (int)q + 1;
    }
    return t->n_nfd;
}

int virtio_mmio__use_irqfd(struct virtio_mmio *t)
{
    struct dev_host *h = t->host;
    if (t->irqfd_on)
        return 1;
    if (!h->ops->irqfd)
        return 0;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return 0;
    if (h->ops->irqfd(h, t->irq, fd, 1) < 0) {
        close(fd);
        return 0;
    }
    h->ops->irq_line(h, t->irq, 0);
    t->irqfd = fd;
    t->irqfd_on = 1;
    return 1;
}

void virtio_mmio__close(struct virtio_mmio *t)
{
    struct dev_host *h = t->host;
    if (t->irqfd_on) {
        h->ops->irqfd(h, t->irq, t->irqfd, 0);
        close(t->irqfd);
        t->irqfd_on = 0;
    }
    for (int q = 0; q < t->n_nfd; q++) {
        h->ops->ioeventfd(h, t->base + R_QUEUE_NOTIFY, 4, (uint64_t)q, t->nfd[q].fd, 0);
        close(t->nfd[q].fd);
    }
    t->n_nfd = 0;
}

int virtio_mmio__cmdline(const struct virtio_mmio *t, char *cmdline, size_t cap)
{
    size_t n = strlen(cmdline);
    int w = snprintf(cmdline + n, cap - n, "%svirtio_mmio.device=4K@0x%" PRIx64 ":%d", n ? " " : "", t->base, t->irq);
    return w < 0 || (size_t)w >= cap - n ? -1 : 0;
}

/* Saved state (snap.h). The transport's part of a device section: registers, then every
 * queue. Host pointers (ring mappings, held chains) are never saved: a ready queue is
 * enabled again against the restored guest memory, which checks its layout as a
 * driver's QueueReady would. */
#define SNAP_VERSION 1
#define STATUS_KNOWN 0xffu /* what write_status can leave in the register */

void virtio_mmio__save_held(struct virtio_mmio *t, struct snap_w *w, uint32_t rewind)
{
    snap_w__u32(w, SNAP_VERSION);
    snap_w__u32(w, t->ops->device_id);
    snap_w__u32(w, t->ops->num_queues);
    snap_w__u32(w, t->status);
    snap_w__u32(w, t->dev_feat_sel);
    snap_w__u32(w, t->drv_feat_sel);
    snap_w__u32(w, t->queue_sel);
    snap_w__u32(w, t->int_status);
    snap_w__u32(w, t->config_gen);
    snap_w__u64(w, t->drv_features);
    for (uint32_t i = 0; i < t->ops->num_queues; i++) {
        const struct virtq *q = &t->q[i];
        /* a held chain is given back to the avail ring: the restored device pops it again */
        uint16_t last = (uint16_t)(q->last_avail - ((rewind >> i) & 1));
        snap_w__u16(w, q->size);
        snap_w__u8(w, (uint8_t)(q->ready != 0));
        snap_w__u8(w, (uint8_t)(q->indirect_ok != 0));
        snap_w__u8(w, (uint8_t)(q->broken != 0));
        snap_w__u16(w, q->num);
        snap_w__u16(w, last);
        snap_w__u16(w, q->used_idx);
        snap_w__u64(w, q->desc_gpa);
        snap_w__u64(w, q->avail_gpa);
        snap_w__u64(w, q->used_gpa);
    }
}

struct saved_queue {
    uint16_t size, num, last_avail, used_idx;
    uint8_t ready, indirect_ok, broken;
    uint64_t desc, avail, used;
};

static int load_queue(struct virtio_mmio *t, uint32_t i, struct snap_r *r)
{
    struct saved_queue s;
    s.size = snap_r__u16(r);
    s.ready = snap_r__u8(r);
    s.indirect_ok = snap_r__u8(r);
    s.broken = snap_r__u8(r);
    s.num = snap_r__u16(r);
    s.last_avail = snap_r__u16(r);
    s.used_idx = snap_r__u16(r);
    s.desc = snap_r__u64(r);
    s.avail = snap_r__u64(r);
    s.used = snap_r__u64(r);
    if (r->bad)
        return -1;
    if (s.ready > 1 || s.indirect_ok > 1 || s.broken > 1)
        return snap_r__fail(r, "%s: queue %u has a flag that is neither 0 nor 1", t->ops->name, i);
    if (s.ready) {
        if (s.size == 0 || s.size > VIRTQ_MAX_SIZE || (s.size & (s.size - 1)) || s.num != s.size)
            return snap_r__fail(r, "%s: queue %u has size %u (num %u): not a power of two within %u", t->ops->name, i,
                                s.size, s.num, VIRTQ_MAX_SIZE);
        if ((uint16_t)(s.last_avail - s.used_idx) > s.num)
            return snap_r__fail(r, "%s: queue %u has %u buffers in flight, more than its size %u", t->ops->name, i,
                                (uint16_t)(s.last_avail - s.used_idx), s.num);
    } else if (s.num != 0) {
        return snap_r__fail(r, "%s: queue %u is off but has a size in use", t->ops->name, i);
    }
    struct virtq *q = &t->q[i];
    virtq__reset(q);
    q->size = s.size;
    q->desc_gpa = s.desc;
    q->avail_gpa = s.avail;
    q->used_gpa = s.used;
    q->indirect_ok = s.indirect_ok;
    if (s.ready && virtq__enable(q, t->host->mem) < 0) {
        const char *why = q->why ? q->why : "?";
        virtq__reset(q);
        return snap_r__fail(r, "%s: queue %u cannot be restored: %s", t->ops->name, i, why);
    }
    if (s.ready && !s.broken) {
        /* the rings are in the restored memory: they must agree with the indexes (else
         * the memory is another snapshot's, and the first pop would break the queue) */
        uint16_t avail;
        memcpy(&avail, q->avail + 2, 2);
        if ((uint16_t)(avail - s.last_avail) > s.num) {
            virtq__reset(q);
            return snap_r__fail(r,
                                "%s: queue %u: the driver's avail index %u is more than %u past the saved %u: "
                                "guest memory does not match the device state",
                                t->ops->name, i, avail, s.num, s.last_avail);
        }
    }
    q->last_avail = s.last_avail;
    q->used_idx = s.used_idx;
    q->broken = s.broken;
    if (s.broken)
        q->why = "malformed before the snapshot";
    return 0;
}

int virtio_mmio__load_held(struct virtio_mmio *t, struct snap_r *r)
{
    uint32_t version = snap_r__u32(r), id = snap_r__u32(r), nq = snap_r__u32(r);
    uint32_t status = snap_r__u32(r), dfs = snap_r__u32(r), drfs = snap_r__u32(r), qsel = snap_r__u32(r);
    uint32_t ints = snap_r__u32(r), gen = snap_r__u32(r);
    uint64_t feat = snap_r__u64(r);
    if (r->bad)
        return -1;
    if (version != SNAP_VERSION)
        return snap_r__fail(r, "%s: saved state version %u, this build reads %u", t->ops->name, version, SNAP_VERSION);
    if (id != t->ops->device_id)
        return snap_r__fail(r, "%s: the saved state is of virtio device %u, this one is %u", t->ops->name, id,
                            t->ops->device_id);
    if (nq != t->ops->num_queues)
        return snap_r__fail(r, "%s: the saved state has %u queues, the device %u", t->ops->name, nq,
                            t->ops->num_queues);
    if (status & ~STATUS_KNOWN)
        return snap_r__fail(r, "%s: device status 0x%x out of range", t->ops->name, status);
    if (ints & ~3u)
        return snap_r__fail(r, "%s: interrupt status 0x%x out of range", t->ops->name, ints);
    if ((status & VIRTIO_STATUS_FEATURES_OK) && ((feat & ~offered(t)) || !(feat & VIRTIO_F_VERSION_1)))
        return snap_r__fail(r,
                            "%s: the driver's features 0x%llx are not all offered by this device (0x%llx): was "
                            "it configured differently?",
                            t->ops->name, (unsigned long long)feat, (unsigned long long)offered(t));
    t->status = status;
    t->dev_feat_sel = dfs;
    t->drv_feat_sel = drfs;
    t->queue_sel = qsel;
    t->int_status = ints;
    t->config_gen = gen;
    t->drv_features = feat;
    for (uint32_t i = 0; i < nq; i++)
        if (load_queue(t, i, r) < 0)
            return -1;
    return 0;
}

void virtio_mmio__resume_held(struct virtio_mmio *t)
{
    /* A notification still in the old process's ioeventfd is lost: serve what the
     * driver left available, as a notification would (a spurious one is harmless). */
    for (uint32_t i = 0; i < t->ops->num_queues; i++)
        if (virtq__has_avail(&t->q[i]))
            queue_notify(t, i);
    /* The new irqchip may not hold the interrupt the driver has not acknowledged yet. */
    if (t->int_status)
        raise_irq(t);
}

int virtio_mmio__save(struct virtio_mmio *t, struct snap_w *w)
{
    pthread_mutex_lock(&t->lock);
    virtio_mmio__save_held(t, w, 0);
    pthread_mutex_unlock(&t->lock);
    return w->oom ? -1 : 0;
}

int virtio_mmio__load(struct virtio_mmio *t, struct snap_r *r, char *err, size_t errcap)
{
    pthread_mutex_lock(&t->lock);
    int rc = virtio_mmio__load_held(t, r);
    if (rc == 0)
        virtio_mmio__resume_held(t);
    pthread_mutex_unlock(&t->lock);
    if (rc < 0)
        snprintf(err, errcap, "%s", r->why);
    return rc;
}
