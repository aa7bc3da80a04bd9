/* Split virtqueues (virtio 1.x, section 2.7) seen from the device: layout checks when
 * the driver enables a queue, popping descriptor chains with every index, address and
 * length validated (loops, chain length and indirect tables bounded), and pushing used
 * entries. A malformed ring marks the queue broken; nothing outside guest RAM is read. */
#ifndef COCOON_VMM_DEV_VIRTQ_H
#define COCOON_VMM_DEV_VIRTQ_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/kvm_mem.h"

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
    uint16_t size; /* QueueNum: power of two, 1..VIRTQ_MAX_SIZE */
    int ready;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    int indirect_ok; /* VIRTIO_F_INDIRECT_DESC negotiated */
    /* set by virtq__enable */
    uint8_t *desc, *avail, *used;
    uint16_t last_avail, used_idx;
    int broken;
    const char *why; /* why it broke, for the log */
};

struct virtq_seg {
    uint8_t *p;
    uint32_t len;
};

/* One popped request: readable buffers seg[0..nr), then writable seg[nr..nr+nw). */
struct virtq_chain {
    uint16_t head;
    uint16_t nr, nw;
    uint64_t rlen, wlen;
    struct virtq_seg seg[VIRTQ_MAX_SEGS];
};

/* Validates size/alignment/placement of the three rings and maps them. -1 (and
 * q->why) when the driver's layout is unusable; the queue then stays disabled. */
int virtq__enable(struct virtq *q, const struct guest_mem *m);
void virtq__reset(struct virtq *q);
/* 1: a chain was popped into c; 0: nothing available; -1: the ring is malformed
 * (q->broken set, q->why says why; the queue is not used again until reset). */
int virtq__pop(struct virtq *q, const struct guest_mem *m, struct virtq_chain *c);
/* Returns the chain to the driver with `len` bytes written. */
void virtq__push(struct virtq *q, uint16_t head, uint32_t len);
/* Whether the driver has made buffers available that were not popped yet. */
int virtq__has_avail(const struct virtq *q);

/* Copy helpers over a chain's readable / writable bytes, starting at byte `off`.
 * Return the number of bytes copied (short at the end of the buffers). */
size_t virtq_chain__read(const struct virtq_chain *c, uint64_t off, void *buf, size_t len);
size_t virtq_chain__write(const struct virtq_chain *c, uint64_t off, const void *buf, size_t len);

#endif
