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

/* virtio-net (device id 1): one receive and one transmit queue, no offloads, no
 * mergeable buffers (the 12-byte virtio 1.x header, num_buffers = 1), MAC and link
 * status in the config space. Ethernet frames go to and come from cocoon's network
 * stack (src/net/net.h), which the device owns: the stack runs under the transport
 * lock, on the vCPU thread that notified (guest frames) or on the I/O thread (its fd:
 * host sockets and timers). Frames for the guest wait in a bounded queue when the
 * driver has no receive buffers; above VNET_PENDING_HIGH the stack is told the link is
 * congested, and net_stack_link_ready once the queue drained. */
#define VNET_PENDING_MAX 512
#define VNET_PENDING_HIGH 256
#define VNET_FRAME_MAX 65550
struct net_stack;
struct net_config;
struct vnet_frame {
    uint32_t len;
    uint8_t *data;
};
struct virtio_net {
    struct virtio_mmio t;
    struct net_stack *stack;
    struct kvm_io_entry io;
    uint8_t mac[6];
    struct vnet_frame pending[VNET_PENDING_MAX]; /* ring of frames for the guest */
    uint32_t p_head, p_count;
    int congested;
    uint8_t *txbuf; /* VNET_FRAME_MAX + header: one guest frame being copied out */
    uint64_t rx_frames, tx_frames, rx_dropped, tx_dropped;
};
/* cfg: the box's network ("net" of config.json; its guest_mac is the device's MAC).
 * -1 with err set when the stack cannot be created. */
int virtio_net__init(struct virtio_net *n, struct kvm_vm *vm, uint64_t base, int irq, const struct net_config *cfg,
                     char *err, size_t errcap);
/* After the I/O thread stopped (no more callbacks). */
void virtio_net__close(struct virtio_net *n);
struct net_stats;
/* A consistent copy of the stack's counters, from any thread. */
void virtio_net__stats(struct virtio_net *n, struct net_stats *out);

#endif
