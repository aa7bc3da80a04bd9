/* What a device needs from the machine it is plugged into, and nothing more: guest
 * memory, its address ranges, an interrupt line, a thread that watches its host fds,
 * and the fast paths KVM offers (ioeventfd, irqfd). The KVM machine implements it
 * (kvm/host_kvm.c); tests and fuzzers plug devices into a fake one (host_fake.c), so
 * every device can be driven whole, registers and rings, without /dev/kvm. */
#ifndef COCOON_KVM_DEV_HOST_H
#define COCOON_KVM_DEV_HOST_H

#include <stdint.h>

#include "kvm/mem.h"

/* off is relative to the range base; data holds len bytes (1, 2, 4 or 8). */
typedef void (*dev_access_fn)(void *dev, uint64_t off, uint8_t *data, uint32_t len, int is_write);

/* What a watched fd points at: the callback (on the I/O thread) and its context. */
struct dev_io_entry {
    void (*fn)(void *ctx, uint32_t events);
    void *ctx;
};

struct dev_host;
struct dev_host_ops {
    /* Address ranges, before the vCPUs run. -1 when the range is taken or invalid. */
    int (*map_mmio)(struct dev_host *h, uint64_t base, uint64_t len, dev_access_fn fn, void *dev);
    int (*map_pio)(struct dev_host *h, uint64_t base, uint64_t len, dev_access_fn fn, void *dev);
    /* Sets an interrupt line (GSI) level. Thread-safe. */
    void (*irq_line)(struct dev_host *h, int gsi, int level);
    /* Optional fast paths (NULL, or -1: not offered; the device then uses the slow
     * path). assign 0 undoes an earlier assignment. */
    int (*irqfd)(struct dev_host *h, int gsi, int fd, int assign);
    int (*ioeventfd)(struct dev_host *h, uint64_t addr, uint32_t len, uint64_t datamatch, int fd, int assign);
    /* The I/O thread: events are EPOLLIN/EPOLLOUT, 0 keeps the fd registered but quiet. */
    int (*watch)(struct dev_host *h, int fd, uint32_t events, struct dev_io_entry *e);
    int (*rewatch)(struct dev_host *h, int fd, uint32_t events, struct dev_io_entry *e);
    void (*unwatch)(struct dev_host *h, int fd);
    /* The guest asked for a reset (i8042, port 0xcf9): the machine stops cleanly. */
    void (*reset)(struct dev_host *h, const char *why);
};

struct dev_host {
    const struct dev_host_ops *ops;
    const struct guest_mem *mem;
};

#endif
