/* The virtio-mmio transport, version 2 (virtio 1.x, section 4.2): the register file,
 * feature negotiation, queue setup and notification, and the interrupt line. Device
 * models (rng, blk, console) plug in through struct virtio_dev_ops. */
#ifndef COCOON_KVM_DEV_VIRTIO_MMIO_H
#define COCOON_KVM_DEV_VIRTIO_MMIO_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/dev/host.h"
#include "kvm/dev/virtq.h"

#define VIRTIO_MMIO_BASE 0xd0000000ull /* first device; the next ones follow */
#define VIRTIO_MMIO_SIZE 0x1000ull
#define VIRTIO_MMIO_IRQ_BASE 5 /* GSI of the first device (4 is COM1) */
#define VIRTIO_MAX_QUEUES 8

#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_VERSION_1 (1ull << 32)

#define VIRTIO_STATUS_ACK 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

struct virtio_mmio;

/* Callbacks run with the transport's lock held. */
struct virtio_dev_ops {
    const char *name;
    uint32_t device_id;
    uint32_t num_queues;
    uint64_t features; /* device bits; VERSION_1 and INDIRECT_DESC are added */
    uint32_t config_len;
    void (*config_rw)(struct virtio_mmio *t, uint32_t off, uint8_t *data, uint32_t len, int is_write);
    void (*notify)(struct virtio_mmio *t, uint32_t queue);
    void (*reset)(struct virtio_mmio *t);
    void (*driver_ok)(struct virtio_mmio *t);
    /* The driver turned queue q off (QueueReady=0): drop any chain held from it. */
    void (*queue_off)(struct virtio_mmio *t, uint32_t q);
};

/* One queue's notification eventfd (KVM_IOEVENTFD on QueueNotify with the queue index
 * as datamatch): the guest's write completes in the kernel, the I/O thread runs the
 * device's notify. */
struct virtio_notify_fd {
    struct dev_io_entry io;
    struct virtio_mmio *t;
    uint32_t queue;
    int fd;
};

struct virtio_mmio {
    struct dev_host *host;
    const struct virtio_dev_ops *ops;
    void *dev;
    uint64_t base;
    int irq;
    pthread_mutex_t lock;
    uint32_t status, dev_feat_sel, drv_feat_sel, queue_sel, int_status, config_gen;
    uint64_t drv_features;
    struct virtq q[VIRTIO_MAX_QUEUES];
    uint64_t notifies, broken_events; /* counters, for tests and the log */
    struct virtio_notify_fd nfd[VIRTIO_MAX_QUEUES];
    int n_nfd;           /* queues 0..n_nfd-1 notify through an ioeventfd */
    int irqfd_on, irqfd; /* the interrupt goes through KVM_IRQFD (an edge per write) */
};

/* Maps the register file at base on host's MMIO bus for a device with ops (dev is
 * its private state). -1 when the range is taken or ops has too many queues. */
int virtio_mmio__init(struct virtio_mmio *t, struct dev_host *host, uint64_t base, int irq,
                      const struct virtio_dev_ops *ops, void *dev);
/* Lock held: used buffers were pushed; raise the interrupt. */
void virtio_mmio__signal_used(struct virtio_mmio *t);
/* Lock held: hands every chain the driver made available on queue qi to serve, which
 * returns how many bytes it wrote into the chain; gives each back as used, then
 * raises the interrupt once if there was any. */
void virtio_mmio__serve(struct virtio_mmio *t, uint32_t qi,
                        uint32_t (*serve)(struct virtio_mmio *t, struct virtq_chain *c));
/* Lock held: after using queue q, turn a malformed ring into DEVICE_NEEDS_RESET and a
 * configuration interrupt. Returns 1 when the queue is broken. */
int virtio_mmio__check_broken(struct virtio_mmio *t, uint32_t q);
/* The driver set DRIVER_OK and the device does not need a reset. Lock held. */
int virtio_mmio__driver_ok(const struct virtio_mmio *t);
/* Registers an ioeventfd for every queue's notification (the I/O thread then runs
 * notify). Returns how many queues got one: 0 when the host refuses (no
 * KVM_CAP_IOEVENTFD), and notifications keep arriving as MMIO exits. */
int virtio_mmio__use_ioeventfd(struct virtio_mmio *t);
/* Routes the device's interrupt through an irqfd (on its GSI): one eventfd write per
 * edge instead of two line changes. 0 when the host refuses (the line stays in use),
 * 1 otherwise. */
int virtio_mmio__use_irqfd(struct virtio_mmio *t);
/* Closes the eventfds; after the I/O thread stopped. */
void virtio_mmio__close(struct virtio_mmio *t);
/* Saved state (kvm/snap.h). Lock held: appends the registers and every queue. A queue
 * whose bit is set in rewind holds the chain the device popped from it last and has not
 * given back: its last_avail is saved one lower, so the restored device pops that chain
 * again from the driver's avail ring (host pointers are never saved). */
struct snap_w;
struct snap_r;
void virtio_mmio__save_held(struct virtio_mmio *t, struct snap_w *w, uint32_t rewind);
/* Lock held: reads what save_held wrote into a transport freshly initialised (as at a
 * cold boot) over the restored guest memory; every value is checked, ready queues are
 * enabled again (their layout checked against guest memory). -1 with r's reason set;
 * the device is then unusable (destroy the machine). */
int virtio_mmio__load_held(struct virtio_mmio *t, struct snap_r *r);
/* Lock held, after load_held and the device's own state: serves what the driver left
 * available (a notification may have been lost with the old process's ioeventfd) and
 * raises the interrupt again when one is pending. */
void virtio_mmio__resume_held(struct virtio_mmio *t);
/* The same with the lock taken, for a device without state of its own. -1 when the
 * writer ran out of room; -1 with err set when the state is refused. */
int virtio_mmio__save(struct virtio_mmio *t, struct snap_w *w);
int virtio_mmio__load(struct virtio_mmio *t, struct snap_r *r, char *err, size_t errcap);

/* Appends " virtio_mmio.device=4K@0x...:irq" for this device to a command line. */
int virtio_mmio__cmdline(const struct virtio_mmio *t, char *cmdline, size_t cap);

#endif
