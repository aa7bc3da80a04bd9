/* Fuzz target: the head of a kvm-backend snapshot file (header and saved-state stream,
 * src/kvm/snapfile.c) as kvm_snapfile__open reads it before anything reaches KVM. The
 * bytes go into a sparse memory file grown to the size a 1-vCPU, 64 KiB box's snapshot
 * has, so inputs can pass the layout checks and reach the checksum. A crash, a leak, a
 * read past the file or an accepted state that fails the checks is a bug. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm/snapfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint64_t mem = 64 << 10;
    if (size > SNAPFILE_RAM_ALIGN)
        return 0;
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if ((size && write(fd, data, size) != (ssize_t)size) || ftruncate(fd, SNAPFILE_RAM_ALIGN + mem) < 0) {
        close(fd);
        return 0;
    }
    struct snapfile_info info;
    uint8_t *state = NULL;
    char err[256];
    int rc = kvm_snapfile__open(fd, 1, mem, &info, &state, err, sizeof(err));
    if (rc == 0 && (!state || info.state_len == 0 || info.state_len > SNAP_MAX_BYTES ||
                    info.state_off + info.state_len > info.ram_off))
        abort();
    if (rc < 0 && (state || !err[0]))
        abort();
    free(state);
    close(fd);
    return 0;
}
