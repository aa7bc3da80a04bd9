/* Fuzz target: a kernel file as the kvm VMM loads it (src/kvm/boot_pvh.c): the ELF
 * header, program headers and Xen PVH entry note checked, the load segments copied into
 * 64 MiB of guest RAM. Input bytes are the kernel file; a refusal is fine, a crash, a
 * write outside guest RAM (ASan) or a leak is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm/boot.h"
#include "kvm/vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM (64ull << 20)

static struct kvm_vm vm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    uint32_t entry;
    (void)kvm_boot__elf_pvh_entry(data, size, &entry, err, sizeof(err));

    char path[] = "/tmp/cocoon-fuzz-kernelXXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    ssize_t w = write(fd, data, size);
    close(fd);
    if (w == (ssize_t)size) {
        memset(&vm, 0, sizeof(vm));
        vm.map_kernel = size & 1; /* both ways of loading, chosen by the input */
        if (guest_mem__alloc(&vm.mem, MEM, 1) == 0) {
            (void)kvm_boot__pvh(&vm, path, NULL, "console=ttyS0", err, sizeof(err));
            guest_mem__free(&vm.mem);
        }
    }
    unlink(path);
    return 0;
}
