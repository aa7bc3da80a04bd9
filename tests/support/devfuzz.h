/* Whole-device fuzzing: a device on the fake host, brought up by the test driver, then
 * driven by the fuzzer's bytes as a sequence of operations: register writes and reads
 * (resets, queue reconfiguration in the middle of traffic), descriptor chains with
 * addresses and lengths of the input's choosing, raw writes over the rings, host-side
 * traffic on the device's fd, notifications and config-space accesses. */
#ifndef COCOON_TESTS_DEVFUZZ_H
#define COCOON_TESTS_DEVFUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "support/vdrv.h"

#define DEVFUZZ_BASE 0xd0000000ull
#define DEVFUZZ_RAM (4u << 20)
#define DEVFUZZ_RINGS 0x100000ull
#define DEVFUZZ_DATA 0x200000ull

struct devfuzz {
    struct host_fake f;
    struct vdrv d;
    int nq;
    int peer; /* the host side of the device's fd; -1 when it has none or it was closed */
};

/* Prepares the fake host (call before plugging the device in). -1 on failure. */
int devfuzz_host(struct devfuzz *z);
/* Brings the device up and runs the operations in data. */
void devfuzz_run(struct devfuzz *z, int nq, const uint8_t *data, size_t size);
void devfuzz_free(struct devfuzz *z);

#endif
