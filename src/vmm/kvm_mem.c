/* Guest RAM: allocation around the MMIO hole and bounds-checked translation of guest
 * physical ranges to host pointers (the only door from a guest address to our memory). */
#include "vmm/kvm_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

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

static int map_region(struct guest_region *r, uint64_t gpa, uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    madvise(p, size, MADV_MERGEABLE);
    r->gpa = gpa;
    r->size = size;
    r->hva = p;
    return 0;
}

int guest_mem__alloc(struct guest_mem *m, uint64_t bytes)
{
    memset(m, 0, sizeof(*m));
    if (bytes < (1u << 20) || (bytes & 0xfff))
        return -EINVAL;
    uint64_t low = bytes < GUEST_MMIO_HOLE_START ? bytes : GUEST_MMIO_HOLE_START;
    int rc = map_region(&m->r[0], 0, low);
    if (rc < 0)
        return rc;
    m->n = 1;
    if (bytes > low) {
        rc = map_region(&m->r[1], GUEST_MMIO_HOLE_END, bytes - low);
        if (rc < 0) {
            guest_mem__free(m);
            return rc;
        }
        m->n = 2;
    }
    return 0;
}

void guest_mem__free(struct guest_mem *m)
{
    for (int i = 0; i < m->n; i++)
        munmap(m->r[i].hva, m->r[i].size);
    m->n = 0;
}

