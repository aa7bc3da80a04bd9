/* Guest physical memory as the VMM sees it: up to two host mappings (below and above
 * the 3-4 GiB MMIO hole) and the one checked way to turn a guest address range into a
 * host pointer. Everything the guest names goes through guest_mem__ptr. */
#ifndef COCOON_KVM_MEM_H
#define COCOON_KVM_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 2
#define GUEST_MMIO_HOLE_START 0xc0000000ull /* 3 GiB: RAM stops here ... */
#define GUEST_MMIO_HOLE_END 0x100000000ull  /* ... and resumes at 4 GiB */

struct guest_region {
    uint64_t gpa, size;
    uint8_t *hva;
};

struct guest_mem {
    int n;
    struct guest_region r[GUEST_MEM_MAX_REGIONS];
};

/* Host pointer for [gpa, gpa+len) when the whole range lies inside one region, else
 * NULL. len 0 is accepted when gpa itself is inside (or at the end of) a region.
 * Overflow-safe for any 64-bit gpa and len. */
void *guest_mem__ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Maps anonymous memory for `bytes` of RAM laid out around the MMIO hole, on
 * transparent huge pages when hugepages is set (see kvm_mem.c). */
int guest_mem__alloc(struct guest_mem *m, uint64_t bytes, int hugepages);
/* Unmaps every region (host pointers into it are dangling afterwards). */
void guest_mem__free(struct guest_mem *m);

/* Maps [off, off+len) of fd privately (copy on write) at gpa, in place of the anonymous
 * RAM there; the rest of the first and last page reads as zero. gpa and off must be
 * congruent modulo the page size (-EINVAL), the range inside one region (-ERANGE).
 * Guest pages then come from the page cache, shared by every box booting the same
 * file, and nothing is copied at start. The file must not be truncated or rewritten in
 * place while the box runs (cocoon's kernels are content-addressed files). On failure
 * the range is anonymous RAM again. */
int guest_mem__map_file(struct guest_mem *m, uint64_t gpa, int fd, uint64_t off, uint64_t len);

#endif
