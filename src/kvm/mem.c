/* Guest RAM: allocation around the MMIO hole and bounds-checked translation of guest
 * physical ranges to host pointers (the only door from a guest address to our memory). */
#include "kvm/mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>

void *guest_mem__ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
    for (int i = 0; i < m->n; i++) {
        const struct guest_region *r = &m->r[i];
        if (gpa < r->gpa)
            continue;
        uint64_t off = gpa - r->gpa;
        if (off > r->size || len > r->size - off)
            continue;
        return r->hva + off;
    }
    return NULL;
}

/* Guest RAM is backed by transparent huge pages where the host allows them, as QEMU
 * does: 2 MiB host pages let nested paging map the guest with 2 MiB entries (fewer TLB
 * misses for the workload) and fault in 512 times fewer pages. Boot to READY did not
 * change with them in the nested lane (medians 1141 vs 1121 ms without), and memory
 * grows by up to a huge page per touched region (+7% at boot there), so they can be
 * turned off (hugepages = 0). THP needs a 2 MiB aligned mapping, so the region is
 * carved out of a slightly larger reservation. */
#define HUGE_ALIGN (2ull << 20)

static int map_region(struct guest_region *r, uint64_t gpa, uint64_t size, int hugepages)
{
    size_t span = size + HUGE_ALIGN;
    uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    uint8_t *start = (uint8_t *)(((uintptr_t)p + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
    if (start > p)
        munmap(p, (size_t)(start - p));
    size_t tail = (size_t)((p + span) - (start + size));
    if (tail)
        munmap(start + size, tail);
    if (hugepages)
        madvise(start, size, MADV_HUGEPAGE);
    madvise(start, size, MADV_MERGEABLE);
    r->gpa = gpa;
    r->size = size;
    r->hva = start;
    return 0;
}

int guest_mem__alloc(struct guest_mem *m, uint64_t bytes, int hugepages)
{
    memset(m, 0, sizeof(*m));
    if (bytes < (1u << 20) || (bytes & 0xfff))
        return -EINVAL;
    uint64_t low = bytes < GUEST_MMIO_HOLE_START ? bytes : GUEST_MMIO_HOLE_START;
    int rc = map_region(&m->r[0], 0, low, hugepages);
    if (rc < 0)
        return rc;
    m->n = 1;
    if (bytes > low) {
        rc = map_region(&m->r[1], GUEST_MMIO_HOLE_END, bytes - low, hugepages);
        if (rc < 0) {
            guest_mem__free(m);
            return rc;
        }
        m->n = 2;
    }
    return 0;
}

int guest_mem__map_file(struct guest_mem *m, uint64_t gpa, int fd, uint64_t off, uint64_t len)
{
    const uint64_t page = 4096;
    if ((gpa & (page - 1)) != (off & (page - 1)) || len == 0)
        return -EINVAL;
    uint64_t head = gpa & (page - 1);
    if (len > UINT64_MAX - head - page)
        return -ERANGE;
    uint64_t span = (head + len + page - 1) & ~(page - 1);
    uint8_t *dst = guest_mem__ptr(m, gpa - head, span);
    if (!dst)
        return -ERANGE;
    if (mmap(dst, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, (off_t)(off - head)) == MAP_FAILED) {
        int e = errno;
        /* MAP_FIXED may have dropped the anonymous pages already: put RAM back */
        if (mmap(dst, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) ==
            MAP_FAILED)
            return -ENOMEM;
        return -e;
    }
    /* the file bytes around the range in its first and last page are not part of it */
    memset(dst, 0, head);
    memset(dst + head + len, 0, span - head - len);
    return 0;
}

void guest_mem__free(struct guest_mem *m)
{
    for (int i = 0; i < m->n; i++)
        munmap(m->r[i].hva, m->r[i].size);
    m->n = 0;
}
