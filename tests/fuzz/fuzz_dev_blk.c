/* Fuzz target: the virtio-blk device whole over a small raw disk in a memfd, driven
 * through its registers and rings by tests/support/devfuzz.c: requests of every type
 * with lying headers, sectors and lengths. Nothing may touch memory outside guest RAM
 * or the disk's bounds. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm/dev/virtio.h"
#include "support/devfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct devfuzz z;
    static struct virtio_blk b;
    char err[256], path[64];
    int fd = memfd_create("fuzz-disk", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 1 << 20) < 0 || devfuzz_host(&z) < 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (virtio_blk__init(&b, &z.f.host, DEVFUZZ_BASE, 6, path, "raw", size && (data[0] & 0x80), err, sizeof(err)) ==
        0) {
        devfuzz_run(&z, 1, data, size);
        virtio_mmio__close(&b.t);
    }
    virtio_blk__close(&b);
    devfuzz_free(&z);
    close(fd);
    return 0;
}
