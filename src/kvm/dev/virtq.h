/* Split virtqueues (virtio 1.x, section 2.7) seen from the device: layout checks when
 * the driver enables a queue, popping descriptor chains with every index, address and
 * length validated (loops, chain length and indirect tables bounded), and pushing used
 * entries. A malformed ring marks the queue broken; nothing outside guest RAM is read. */
#ifndef COCOON_KVM_DEV_VIRTQ_H
#define COCOON_KVM_DEV_VIRTQ_H

#include <stddef.h>
#include <stdint.h>

#include "kvm/mem.h"

#define VIRTQ_MAX_SIZE 256     /* QueueNumMax offered to the driver */
#define VIRTQ_MAX_SEGS 128     /* buffers in one chain, direct and indirect together */
#define VIRTQ_MAX_INDIRECT 256 /* entries in one indirect table */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq {
    uint16_t size; /* the QueueNum register: the driver may write it while the queue is off */
    int ready;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    int indirect_ok; /* VIRTIO_F_INDIRECT_DESC negotiated */
    /* set by virtq__enable: only these are used to walk the rings */
    uint16_t num; /* the size checked at enable (power of two, 1..VIRTQ_MAX_SIZE) */
    uint8_t *desc, *avail, *used;
    uint16_t last_avail, used_idx;
    int broken;
    const char *why; /* why it broke, for the log */
    /* Bumped whenever the queue is enabled, disabled or reset: a chain popped before
     * is stale and never pushed into the rings the driver set up since. */
    uint32_t gen;
};

struct virtq_seg {
    uint8_t *p;
    uint32_t len;
};

/* One popped request: readable buffers seg[0..nr), then writable seg[nr..nr+nw). */
struct virtq_chain {
    uint32_t gen; /* the queue's generation when popped */
    uint16_t head;
    uint16_t nr, nw;
    uint64_t rlen, wlen;
    struct virtq_seg seg[VIRTQ_MAX_SEGS];
};

/* Validates size/alignment/placement of the three rings and maps them. -1 (and
 * q->why) when the driver's layout is unusable; the queue then stays disabled. */
int virtq__enable(struct virtq *q, const struct guest_mem *m);
/* QueueReady=0: the queue stops; its registers keep their values, held chains go stale. */
void virtq__disable(struct virtq *q);
/* Device reset: everything back to zero, held chains stale. */
void virtq__reset(struct virtq *q);
/* 1: a chain was popped into c; 0: nothing available; -1: the ring is malformed
 * (q->broken set, q->why says why; the queue is not used again until reset). */
int virtq__pop(struct virtq *q, const struct guest_mem *m, struct virtq_chain *c);
/* Returns the chain to the driver with `len` bytes written. Does nothing when the queue
 * is not ready, is broken, or the chain was popped before it was last enabled or reset. */
void virtq__push(struct virtq *q, const struct virtq_chain *c, uint32_t len);
/* Whether the driver has made buffers available that were not popped yet. */
int virtq__has_avail(const struct virtq *q);

/* Copy helpers over a chain's readable / writable bytes, starting at byte `off`.
 * Return the number of bytes copied (short at the end of the buffers). */
size_t virtq_chain__read(const struct virtq_chain *c, uint64_t off, void *buf, size_t len);
size_t virtq_chain__write(const struct virtq_chain *c, uint64_t off, const void *buf, size_t len);

#endif
