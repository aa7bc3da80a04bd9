/* The virtio device models of the kvm backend (each in its own file of src/kvm/dev):
 * entropy, block over qcow2 or raw, and the multiport console that carries the
 * cocoon.agent channel. */
#ifndef COCOON_KVM_DEV_VIRTIO_H
#define COCOON_KVM_DEV_VIRTIO_H

#include <stddef.h>
#include <stdint.h>

#include "kvm/dev/virtio_mmio.h"

/* Saved state (kvm/snap.h) of each device: save with every vCPU paused and no device
 * callback running; load into a device freshly initialised (as at a cold boot) over the
 * restored guest memory, before the vCPUs and the I/O thread start (it may serve what
 * the driver left available and raise the interrupt: restore the irqchip first). -1
 * with err set: a save that cannot be made now (the console mid-frame), or a state
 * refused (the device is then unusable: destroy the machine). */
struct snap_w;
struct snap_r;

/* virtio-rng (device id 4): fills the driver's buffers from getrandom(2). */
struct virtio_rng {
    struct virtio_mmio t;
    uint64_t bytes;
};
/* Places the device at base with interrupt irq. -1 when the address range is taken. */
int virtio_rng__init(struct virtio_rng *r, struct dev_host *host, uint64_t base, int irq);
int virtio_rng__save(struct virtio_rng *r, struct snap_w *w, char *err, size_t errcap);
int virtio_rng__load(struct virtio_rng *r, struct snap_r *sr, char *err, size_t errcap);

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
int virtio_blk__init(struct virtio_blk *b, struct dev_host *host, uint64_t base, int irq, const char *path,
                     const char *format, int read_only, char *err, size_t errcap);
/* Closes the disk (flushing qcow2 metadata); after the I/O thread and vCPUs stopped. */
void virtio_blk__close(struct virtio_blk *b);
/* The disk is not in the state; its size and read-only flag must be the saved ones. */
int virtio_blk__save(struct virtio_blk *b, struct snap_w *w, char *err, size_t errcap);
int virtio_blk__load(struct virtio_blk *b, struct snap_r *r, char *err, size_t errcap);

/* virtio-console (device id 3) with VIRTIO_CONSOLE_F_MULTIPORT: port 1 is named
 * "cocoon.agent" and is connected to a stream socket (one end of a socketpair). */
#define VCON_AGENT_PORT 1
#define VCON_AGENT_NAME "cocoon.agent"
#define VCON_CTRL_PENDING 8
struct virtio_console {
    struct virtio_mmio t;
    int fd; /* host side of the agent channel, non-blocking */
    struct dev_io_entry io;
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
/* fd: the host end of the agent channel (made non-blocking; the device watches it,
 * the caller keeps ownership); -1 for a port that is closed from the start. -1 on error. */
int virtio_console__init(struct virtio_console *c, struct dev_host *host, uint64_t base, int irq, int fd);
/* A held chain is saved as not yet popped (popped again after the restore); a transmit
 * chain partly written fails the save ("mid-frame; try again"). Pending control
 * messages and the guest's port state are kept; the agent socket is the new process's
 * (the guest is told when its state differs from what it was told). */
int virtio_console__save(struct virtio_console *c, struct snap_w *w, char *err, size_t errcap);
int virtio_console__load(struct virtio_console *c, struct snap_r *r, char *err, size_t errcap);

/* virtio-net (device id 1): one receive and one transmit queue, no offloads, no
 * mergeable buffers (the 12-byte virtio 1.x header, num_buffers = 1), MAC and link
 * status in the config space. Ethernet frames go to and come from the monitor's network
 * stack over a link fd ([4-byte big-endian length][frame], as QEMU's -netdev stream):
 * this process holds no host network socket. Backpressure both ways: a full outbound
 * buffer leaves guest frames in the TX ring, a frame with no receive buffer stops the
 * link from being read. */
#define VNET_FRAME_MAX 65550
#define VNET_OUT_CAP (1024u * 1024) /* guest frames waiting to be written to the link */
#define VNET_IN_CAP (256u * 1024)   /* link bytes waiting for receive buffers */
struct virtio_net {
    struct virtio_mmio t;
    int fd; /* the link, non-blocking */
    struct dev_io_entry io;
    uint32_t want; /* epoll events currently requested on fd */
    uint8_t mac[6];
    uint8_t *obuf, *ibuf;
    size_t olen, ooff, ilen;
    int rx_blocked;  /* a frame waits for a receive buffer */
    int link_closed; /* EOF or error on the link */
    uint64_t rx_frames, tx_frames, rx_dropped, tx_dropped;
};
/* fd: the link (CHILD_NET_FD); mac: the device's MAC. -1 with err set. */
int virtio_net__init(struct virtio_net *n, struct dev_host *host, uint64_t base, int irq, int fd, const uint8_t mac[6],
                     char *err, size_t errcap);
/* After the I/O thread stopped (no more callbacks). */
void virtio_net__close(struct virtio_net *n);
/* Frames buffered between the link and the rings are not saved (dropped); the MAC and
 * the link are the new process's. */
int virtio_net__save(struct virtio_net *n, struct snap_w *w, char *err, size_t errcap);
int virtio_net__load(struct virtio_net *n, struct snap_r *r, char *err, size_t errcap);

#endif
