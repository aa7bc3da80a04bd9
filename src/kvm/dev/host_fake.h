/* A device host without KVM (kvm/dev/host.h), for unit tests and fuzzers: guest memory
 * is a plain allocation, address ranges are recorded so a test calls them as a vCPU
 * exit would, interrupts are counted, watched fds are recorded so a test runs their
 * callbacks as the I/O thread would, and no fast path (ioeventfd, irqfd) is offered. */
#ifndef COCOON_KVM_DEV_HOST_FAKE_H
#define COCOON_KVM_DEV_HOST_FAKE_H

#include <stdint.h>

#include "kvm/dev/host.h"

#define HOST_FAKE_RANGES 16
#define HOST_FAKE_WATCHES 16
#define HOST_FAKE_GSIS 32

struct host_fake_range {
    uint64_t base, len;
    dev_access_fn fn;
    void *dev;
    int pio;
};

struct host_fake_watch {
    int fd;
    uint32_t events;
    struct dev_io_entry *e;
};

struct host_fake {
    struct dev_host host; /* first: what devices are given */
    struct guest_mem mem;
    struct host_fake_range ranges[HOST_FAKE_RANGES];
    int nranges;
    struct host_fake_watch watches[HOST_FAKE_WATCHES];
    int nwatches;
    int level[HOST_FAKE_GSIS];
    uint64_t edges, resets; /* rising interrupt edges, reset requests */
};

/* mem_bytes of guest RAM at guest physical 0 (exactly that much: ASan sees a device
 * that reaches past it). -1 when out of memory. */
int host_fake_init(struct host_fake *f, uint64_t mem_bytes);
/* Frees guest RAM; the devices plugged in are the caller's to close first. */
void host_fake_free(struct host_fake *f);
/* An access as a vCPU exit makes it (data: len bytes). -1 when nothing is mapped there. */
int host_fake_access(struct host_fake *f, int pio, uint64_t addr, void *data, uint32_t len, int is_write);
/* Runs the callbacks of watched fds whose events are ready now (one poll, no wait), as
 * the I/O thread would. Returns how many ran. */
int host_fake_poll(struct host_fake *f);

#endif
