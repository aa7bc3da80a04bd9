/* A minimal virtio-mmio driver for tests and fuzzers: it speaks to a device plugged into
 * the fake host (kvm/dev/host_fake.h) the way Linux does: status handshake, feature
 * negotiation, split queues placed in guest RAM, chains added and used entries read. */
#ifndef COCOON_TESTS_VDRV_H
#define COCOON_TESTS_VDRV_H

#include <stdint.h>

#include "kvm/dev/host_fake.h"

#define VDRV_MAX_QUEUES 8
#define VDRV_DESC_WRITE 2
#define VDRV_DESC_NEXT 1

struct vdrv_queue {
    uint64_t desc, avail, used;
    uint16_t size, avail_idx, used_seen, next_desc;
};

struct vdrv {
    struct host_fake *f;
    uint64_t base; /* the device's MMIO base */
    int nq;
    struct vdrv_queue q[VDRV_MAX_QUEUES];
};

/* One buffer of a chain: guest address, length, writable by the device or not. */
struct vdrv_buf {
    uint64_t addr;
    uint32_t len;
    int writable;
};

uint32_t vdrv_read(struct vdrv *d, uint32_t off);
void vdrv_write(struct vdrv *d, uint32_t off, uint32_t v);
/* Reset, ACK, DRIVER, all offered features (VERSION_1 required), FEATURES_OK, nq queues
 * of qsize entries laid out from ring_gpa (64 KiB per queue), DRIVER_OK. -1 when the
 * device refuses a step. */
int vdrv_init(struct vdrv *d, struct host_fake *f, uint64_t base, int nq, uint16_t qsize, uint64_t ring_gpa);
/* Puts a chain of n buffers on queue q (descriptors taken in turn) and returns its head. */
int vdrv_add(struct vdrv *d, int q, const struct vdrv_buf *bufs, int n);
void vdrv_notify(struct vdrv *d, int q);
/* The next used entry of queue q: 1 with id/len, 0 when none is new. */
int vdrv_used(struct vdrv *d, int q, uint32_t *id, uint32_t *len);
/* Guest RAM as the test writes and reads it (NULL outside). */
void *vdrv_mem(struct vdrv *d, uint64_t gpa, uint64_t len);

/* The register offsets (virtio 1.x, 4.2.2). */
enum {
    VR_MAGIC = 0x000,
    VR_DEVICE_ID = 0x008,
    VR_DEV_FEATURES = 0x010,
    VR_DEV_FEATURES_SEL = 0x014,
    VR_DRV_FEATURES = 0x020,
    VR_DRV_FEATURES_SEL = 0x024,
    VR_QUEUE_SEL = 0x030,
    VR_QUEUE_NUM_MAX = 0x034,
    VR_QUEUE_NUM = 0x038,
    VR_QUEUE_READY = 0x044,
    VR_QUEUE_NOTIFY = 0x050,
    VR_INT_STATUS = 0x060,
    VR_INT_ACK = 0x064,
    VR_STATUS = 0x070,
    VR_QUEUE_DESC_LO = 0x080,
    VR_QUEUE_DESC_HI = 0x084,
    VR_QUEUE_DRIVER_LO = 0x090,
    VR_QUEUE_DRIVER_HI = 0x094,
    VR_QUEUE_DEVICE_LO = 0x0a0,
    VR_QUEUE_DEVICE_HI = 0x0a4,
    VR_CONFIG = 0x100,
};

#endif
