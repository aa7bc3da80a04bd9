/* The test virtio driver (vdrv.h). Plain and strict: it does what the spec tells a
 * driver to do, so that tests and fuzzers start from a working device and then break it
 * on purpose. */
#include "vdrv.h"

#include <string.h>

uint32_t vdrv_read(struct vdrv *d, uint32_t off)
{
    uint32_t v = 0;
    host_fake_access(d->f, 0, d->base + off, &v, 4, 0);
    return v;
}

void vdrv_write(struct vdrv *d, uint32_t off, uint32_t v) { host_fake_access(d->f, 0, d->base + off, &v, 4, 1); }

void *vdrv_mem(struct vdrv *d, uint64_t gpa, uint64_t len) { return guest_mem__ptr(&d->f->mem, gpa, len); }

static void setup_queue(struct vdrv *d, int i, uint16_t qsize, uint64_t gpa)
{
    struct vdrv_queue *q = &d->q[i];
    *q = (struct vdrv_queue){.desc = gpa, .avail = gpa + 0x4000, .used = gpa + 0x8000, .size = qsize};
    vdrv_write(d, VR_QUEUE_SEL, (uint32_t)i);
    vdrv_write(d, VR_QUEUE_NUM, qsize);
    vdrv_write(d, VR_QUEUE_DESC_LO, (uint32_t)q->desc);
    vdrv_write(d, VR_QUEUE_DESC_HI, (uint32_t)(q->desc >> 32));
    vdrv_write(d, VR_QUEUE_DRIVER_LO, (uint32_t)q->avail);
    vdrv_write(d, VR_QUEUE_DRIVER_HI, (uint32_t)(q->avail >> 32));
    vdrv_write(d, VR_QUEUE_DEVICE_LO, (uint32_t)q->used);
    vdrv_write(d, VR_QUEUE_DEVICE_HI, (uint32_t)(q->used >> 32));
    vdrv_write(d, VR_QUEUE_READY, 1);
}

int vdrv_init(struct vdrv *d, struct host_fake *f, uint64_t base, int nq, uint16_t qsize, uint64_t ring_gpa)
{
    memset(d, 0, sizeof(*d));
    d->f = f;
    d->base = base;
    d->nq = nq > VDRV_MAX_QUEUES ? VDRV_MAX_QUEUES : nq;
    if (vdrv_read(d, VR_MAGIC) != 0x74726976u)
        return -1;
    vdrv_write(d, VR_STATUS, 0);
    vdrv_write(d, VR_STATUS, 1 | 2);
    uint32_t feat[2];
    for (uint32_t s = 0; s < 2; s++) {
        vdrv_write(d, VR_DEV_FEATURES_SEL, s);
        feat[s] = vdrv_read(d, VR_DEV_FEATURES);
        vdrv_write(d, VR_DRV_FEATURES_SEL, s);
        vdrv_write(d, VR_DRV_FEATURES, feat[s]);
    }
    vdrv_write(d, VR_STATUS, 1 | 2 | 8);
    if (!(vdrv_read(d, VR_STATUS) & 8))
        return -1;
    for (int i = 0; i < d->nq; i++)
        setup_queue(d, i, qsize, ring_gpa + (uint64_t)i * 0x10000);
    vdrv_write(d, VR_STATUS, 1 | 2 | 8 | 4);
    return 0;
}

int vdrv_add(struct vdrv *d, int qi, const struct vdrv_buf *bufs, int n)
{
    struct vdrv_queue *q = &d->q[qi];
    uint8_t *desc = vdrv_mem(d, q->desc, 16u * q->size);
    uint8_t *avail = vdrv_mem(d, q->avail, 4u + 2u * q->size);
    if (!desc || !avail || n <= 0)
        return -1;
    uint16_t head = q->next_desc % q->size, idx = head;
    for (int i = 0; i < n; i++) {
        uint16_t next = (uint16_t)((idx + 1) % q->size);
        uint16_t flags = (uint16_t)((bufs[i].writable ? VDRV_DESC_WRITE : 0) | (i + 1 < n ? VDRV_DESC_NEXT : 0));
        uint8_t *e = desc + 16u * idx;
        memcpy(e, &bufs[i].addr, 8);
        memcpy(e + 8, &bufs[i].len, 4);
        memcpy(e + 12, &flags, 2);
        memcpy(e + 14, &next, 2);
        idx = next;
    }
    q->next_desc = idx;
    memcpy(avail + 4 + 2u * (q->avail_idx % q->size), &head, 2);
    q->avail_idx++;
    memcpy(avail + 2, &q->avail_idx, 2);
    return head;
}

void vdrv_notify(struct vdrv *d, int q) { vdrv_write(d, VR_QUEUE_NOTIFY, (uint32_t)q); }

int vdrv_used(struct vdrv *d, int qi, uint32_t *id, uint32_t *len)
{
    struct vdrv_queue *q = &d->q[qi];
    uint8_t *used = vdrv_mem(d, q->used, 4u + 8u * q->size);
    if (!used)
        return 0;
    uint16_t idx;
    memcpy(&idx, used + 2, 2);
    if (idx == q->used_seen)
        return 0;
    uint8_t *e = used + 4 + 8u * (q->used_seen % q->size);
    memcpy(id, e, 4);
    memcpy(len, e + 4, 4);
    q->used_seen++;
    return 1;
}
