/* The kvm backend's snapshot file (snapfile.h): header, state stream, sparse RAM. The
 * header carries a keyed hash of the state stream, so a corrupt or truncated state is
 * refused before any of it reaches KVM; RAM is the guest's own (a changed page only
 * changes what the guest sees), and its length is checked against the file. */
#include "kvm/snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm/cpustate.h"
#include "kvm/machine.h"
#include "util/fd.h"
#include "util/util.h"

#define PAGE 4096u
/* not a secret: it turns the hash into a checksum that a random change does not meet */
static const uint8_t hash_key[16] = "cocoon-kvm-state";

static int page_is_zero(const uint8_t *p)
{
    const uint64_t *q = (const uint64_t *)(const void *)p;
    for (unsigned i = 0; i < PAGE / 8; i++)
        if (q[i])
            return 0;
    return 1;
}

/* Whether a page is certainly zero without reading it: a restored VM's page with
 * nothing resident (no copy the guest or a device wrote, no page-cache page) whose place
 * in the file it was restored from is a hole. Reading such a page would fill the hole
 * with a page of zeros in the page cache, mapped by this process alone: a capture of a
 * restored box would cost as much memory as its RAM. mincore cannot tell a page written
 * and then swapped out from one never touched, so this holds only on a host without
 * swap (vm->host_swap, read at start); elsewhere every page is read. */
struct hole_probe {
    int src_fd;
    uint64_t src_off;  /* the region's first byte in the source file */
    uint64_t hole_end; /* [.., hole_end) of the source is known to be a hole */
    uint64_t data_end; /* [.., data_end) of the source is known to hold data */
    uint8_t vec[512];  /* mincore of the pages from vec_off */
    uint64_t vec_off, vec_len;
};

static int untouched_hole(struct hole_probe *h, uint8_t *base, uint64_t size, uint64_t off)
{
    if (h->src_fd < 0)
        return 0;
    uint64_t pos = h->src_off + off;
    if (pos < h->data_end)
        return 0;
    if (pos >= h->hole_end) {
        off_t d = lseek(h->src_fd, (off_t)pos, SEEK_DATA);
        if (d < 0 && errno != ENXIO)
            return 0;
        if (d == (off_t)pos) {
            off_t e = lseek(h->src_fd, d, SEEK_HOLE);
            h->data_end = e > d ? (uint64_t)e : pos + PAGE;
            return 0;
        }
        h->hole_end = d < 0 ? UINT64_MAX : (uint64_t)d;
    }
    if (off < h->vec_off || off >= h->vec_off + h->vec_len) {
        uint64_t n = (size - off) / PAGE < sizeof(h->vec) ? (size - off) / PAGE : sizeof(h->vec);
        if (mincore(base + off, n * PAGE, h->vec) < 0) {
            h->vec_len = 0;
            return 0;
        }
        h->vec_off = off;
        h->vec_len = n * PAGE;
    }
    return !(h->vec[(off - h->vec_off) / PAGE] & 1);
}

int kvm_snapfile__write_ram(struct kvm_vm *vm, int fd, uint64_t ram_off, uint64_t *written, char *err, size_t cap)
{
    uint64_t flat = 0;
    *written = 0;
    for (int i = 0; i < vm->mem.n; i++) {
        const struct guest_region *g = &vm->mem.r[i];
        struct hole_probe hp = {.src_fd = vm->host_swap ? -1 : vm->snap_src_fd, .src_off = vm->snap_src_off + flat};
        uint64_t run = 0, run_len = 0;
        for (uint64_t off = 0; off <= g->size; off += PAGE) {
            int data = off < g->size && !untouched_hole(&hp, g->hva, g->size, off) && !page_is_zero(g->hva + off);
            if (data) {
                if (!run_len)
                    run = off;
                run_len += PAGE;
                if (run_len < (8u << 20))
                    continue;
            }
            if (run_len) {
                if (util_pwrite_all(fd, g->hva + run, run_len, ram_off + flat + run) < 0) {
                    snprintf(err, cap, "cannot write the guest's memory: %s", strerror(errno));
                    return -1;
                }
                *written += run_len;
                run_len = 0;
            }
        }
        flat += g->size;
    }
    return 0;
}

int kvm_snapfile__save(struct kvm_machine *m, int fd, struct snapfile_info *info, char *err, size_t cap)
{
    struct kvm_vm *vm = &m->vm;
    struct snap_w w;
    snap_w__init(&w);
    memset(info, 0, sizeof(*info));
    int rc = -1;
    if (kvm_cpustate__save(vm, &w, err, cap) < 0 || kvm_devstate__save(m, &w, err, cap) < 0)
        goto out;
    if (w.oom) {
        snprintf(err, cap, "the saved state is larger than %u bytes or memory ran out", SNAP_MAX_BYTES);
        goto out;
    }
    uint64_t ram = 0;
    for (int i = 0; i < vm->mem.n; i++)
        ram += vm->mem.r[i].size;
    info->ncpus = (uint32_t)vm->ncpus;
    info->mem_bytes = ram;
    info->state_off = SNAPFILE_HEADER_BYTES;
    info->state_len = w.len;
    info->ram_off = (SNAPFILE_HEADER_BYTES + w.len + SNAPFILE_RAM_ALIGN - 1) & ~(uint64_t)(SNAPFILE_RAM_ALIGN - 1);
    struct snap_w h;
    snap_w__init(&h);
    snap_w__bytes(&h, SNAPFILE_MAGIC, 16);
    snap_w__u32(&h, SNAPFILE_VERSION);
    snap_w__u32(&h, info->ncpus);
    snap_w__u64(&h, info->mem_bytes);
    snap_w__u64(&h, info->state_off);
    snap_w__u64(&h, info->state_len);
    snap_w__u64(&h, util_siphash(hash_key, w.buf, w.len));
    snap_w__u64(&h, info->ram_off);
    uint8_t hdr[SNAPFILE_HEADER_BYTES] = {0};
    if (h.oom || h.len > sizeof(hdr)) {
        snap_w__free(&h);
        snprintf(err, cap, "out of memory");
        goto out;
    }
    memcpy(hdr, h.buf, h.len);
    snap_w__free(&h);
    /* the header last: a file cut short anywhere has no valid magic */
    if (ftruncate(fd, 0) < 0 || util_pwrite_all(fd, w.buf, w.len, info->state_off) < 0) {
        snprintf(err, cap, "cannot write the saved state: %s", strerror(errno));
        goto out;
    }
    if (kvm_snapfile__write_ram(vm, fd, info->ram_off, &info->ram_written, err, cap) < 0)
        goto out;
    if (ftruncate(fd, (off_t)(info->ram_off + ram)) < 0 || fdatasync(fd) < 0 ||
        util_pwrite_all(fd, hdr, sizeof(hdr), 0) < 0 || fdatasync(fd) < 0) {
        snprintf(err, cap, "cannot finish the snapshot file: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    snap_w__free(&w);
    return rc;
}

int kvm_snapfile__open(int fd, uint32_t ncpus, uint64_t mem_bytes, struct snapfile_info *info, uint8_t **state,
                       char *err, size_t cap)
{
    uint8_t hdr[64];
    struct stat st;
    *state = NULL;
    memset(info, 0, sizeof(*info));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, cap, "the memory snapshot is not a regular file");
        return -1;
    }
    if (util_pread_all(fd, hdr, sizeof(hdr), 0) < 0 || memcmp(hdr, SNAPFILE_MAGIC, 16) != 0) {
        snprintf(err, cap,
                 "the memory snapshot is not a kvm-backend state (bad header): it may be cut short, or "
                 "from the qemu backend");
        return -1;
    }
    struct snap_r r;
    snap_r__init(&r, hdr + 16, sizeof(hdr) - 16);
    uint32_t version = snap_r__u32(&r);
    info->ncpus = snap_r__u32(&r);
    info->mem_bytes = snap_r__u64(&r);
    info->state_off = snap_r__u64(&r);
    info->state_len = snap_r__u64(&r);
    uint64_t hash = snap_r__u64(&r);
    info->ram_off = snap_r__u64(&r);
    if (version != SNAPFILE_VERSION) {
        snprintf(err, cap, "the memory snapshot has format version %u, this cocoon reads %u", version,
                 SNAPFILE_VERSION);
        return -1;
    }
    if (info->ncpus != ncpus || info->mem_bytes != mem_bytes) {
        snprintf(err, cap, "the memory snapshot is of a box with %u vCPUs and %llu MiB, this one has %u and %llu MiB",
                 info->ncpus, (unsigned long long)(info->mem_bytes >> 20), ncpus,
                 (unsigned long long)(mem_bytes >> 20));
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (info->state_off != SNAPFILE_HEADER_BYTES || info->state_len == 0 || info->state_len > SNAP_MAX_BYTES ||
        info->ram_off % SNAPFILE_RAM_ALIGN || info->ram_off < info->state_off + info->state_len ||
        info->ram_off > size || size - info->ram_off != mem_bytes) {
        snprintf(err, cap,
                 "the memory snapshot's layout is inconsistent (state %llu bytes, RAM at %llu, file %llu bytes): it "
                 "is damaged or cut short",
                 (unsigned long long)info->state_len, (unsigned long long)info->ram_off, (unsigned long long)size);
        return -1;
    }
    uint8_t *s = malloc(info->state_len);
    if (!s) {
        snprintf(err, cap, "out of memory for the saved state");
        return -1;
    }
    if (util_pread_all(fd, s, info->state_len, info->state_off) < 0 ||
        util_siphash(hash_key, s, info->state_len) != hash) {
        free(s);
        snprintf(err, cap, "the memory snapshot's saved state does not match its checksum: the file is damaged");
        return -1;
    }
    *state = s;
    return 0;
}

int kvm_snapfile__map_ram(struct kvm_machine *m, int fd, const struct snapfile_info *info, char *err, size_t cap)
{
    struct kvm_vm *vm = &m->vm;
    uint64_t flat = 0;
    for (int i = 0; i < vm->mem.n; i++) {
        const struct guest_region *g = &vm->mem.r[i];
        int rc = guest_mem__map_file(&vm->mem, g->gpa, fd, info->ram_off + flat, g->size);
        if (rc < 0) {
            snprintf(err, cap, "cannot map the saved memory: %s", strerror(-rc));
            return -1;
        }
        flat += g->size;
    }
    vm->snap_src_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    vm->snap_src_off = info->ram_off;
    return 0;
}

int kvm_snapfile__restore(struct kvm_machine *m, const uint8_t *state, size_t len, char *err, size_t cap)
{
    struct snap_r r;
    snap_r__init(&r, state, len);
    if (kvm_cpustate__load(&m->vm, &r, err, cap) < 0)
        return -1;
    snap_r__init(&r, state, len);
    return kvm_devstate__load(m, &r, err, cap);
}
