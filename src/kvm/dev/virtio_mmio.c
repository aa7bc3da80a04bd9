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
