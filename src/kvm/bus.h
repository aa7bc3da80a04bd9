/* A tiny address bus: devices register [base, base+len) ranges for port I/O or MMIO,
 * and vCPU exits are dispatched to the one range that contains the whole access.
 * Ranges are registered before the vCPUs start and never change while they run. */
#ifndef COCOON_KVM_BUS_H
#define COCOON_KVM_BUS_H

#include <stdint.h>

#include "kvm/dev/host.h"

#define BUS_MAX_RANGES 32

struct bus_range {
    uint64_t base, len;
    dev_access_fn fn;
    void *dev;
};

struct bus {
    int n;
    struct bus_range r[BUS_MAX_RANGES];
};

/* -1 when the range is empty, wraps, overlaps another, or the bus is full. */
int bus__register(struct bus *b, uint64_t base, uint64_t len, dev_access_fn fn, void *dev);
/* 0 when a device took the access; -1 for an unassigned address (reads then see 0xff). */
int bus__dispatch(const struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, int is_write);

#endif
