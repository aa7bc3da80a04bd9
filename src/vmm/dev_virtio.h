/* The virtio device models of the kvm backend (each in its own dev_virtio_*.c file):
 * entropy, block over qcow2 or raw, and the multiport console that carries the
 * cocoon.agent channel. */
#ifndef COCOON_VMM_DEV_VIRTIO_H
#define COCOON_VMM_DEV_VIRTIO_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/dev_virtio_mmio.h"

/* virtio-rng (device id 4): fills the driver's buffers from getrandom(2). */
struct virtio_rng {
    struct virtio_mmio t;
    uint64_t bytes;
};
int virtio_rng__init(struct virtio_rng *r, struct kvm_vm *vm, uint64_t base, int irq);

/* virtio-blk (device id 2) over a qcow2 image (src/disk/qcow2.h) or a raw file. */
struct qcow2;
struct virtio_blk {
    struct virtio_mmio t;
    struct qcow2 *qcow;
    int raw_fd;
    int read_only;
    uint64_t capacity_bytes;
    uint64_t reqs, errors;
};
/* format: "qcow2" or "raw". -1 with err set when the image cannot be opened. */
int virtio_blk__init(struct virtio_blk *b, struct kvm_vm *vm, uint64_t base, int irq, const char *path,
                     const char *format, int read_only, char *err, size_t errcap);
void virtio_blk__close(struct virtio_blk *b);

/* virtio-console (device id 3) with VIRTIO_CONSOLE_F_MULTIPORT: port 1 is named
 * "cocoon.agent" and is connected to a stream socket (one end of a socketpair). */
#define VCON_AGENT_PORT 1
#define VCON_AGENT_NAME "cocoon.agent"
#define VCON_CTRL_PENDING 8
struct virtio_console {
    struct virtio_mmio t;
    int fd; /* host side of the agent channel, non-blocking */
    struct kvm_io_entry io;
    int guest_open;  /* the guest opened the port */
    int host_closed; /* EOF or error on fd */
    uint32_t want;   /* epoll events currently requested on fd */
    /* control messages waiting for a buffer on the control receive queue */
    uint8_t ctrl[VCON_CTRL_PENDING][8 + 16];
    uint32_t ctrl_len[VCON_CTRL_PENDING];
    int nctrl;
    /* a popped receive chain waiting for host bytes, a popped transmit chain being
     * written to a full socket */
    int rx_have, tx_have;
    uint64_t tx_off;
    struct virtq_chain rx_chain, tx_chain;
    uint64_t rx_bytes, tx_bytes, ctrl_msgs;
};
int virtio_console__init(struct virtio_console *c, struct kvm_vm *vm, uint64_t base, int irq, int fd);

#endif
