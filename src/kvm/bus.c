/* Port-I/O and MMIO buses: range registration with overlap checks and dispatch of an
 * access to the device owning it. An access that straddles two ranges goes nowhere. */
#include "kvm/bus.h"

#include <string.h>

int bus__register(struct bus *b, uint64_t base, uint64_t len, dev_access_fn fn, void *dev)
{
    if (!len || base + len < base || b->n >= BUS_MAX_RANGES || !fn)
        return -1;
    for (int i = 0; i < b->n; i++)
        if (base < b->r[i].base + b->r[i].len && b->r[i].base < base + len)
            return -1;
    b->r[b->n++] = (struct bus_range){base, len, fn, dev};
    return 0;
}

int bus__dispatch(const struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, int is_write)
{
    for (int i = 0; i < b->n; i++) {
        const struct bus_range *r = &b->r[i];
        if (addr < r->base || addr - r->base >= r->len)
            continue;
        if (len > r->len - (addr - r->base))
            break;
        r->fn(r->dev, addr - r->base, data, len, is_write);
        return 0;
    }
    if (!is_write)
        memset(data, 0xff, len);
    return -1;
}
