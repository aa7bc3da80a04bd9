/* PVH direct boot (xen/include/public/arch-x86/hvm/start_info.h, the Linux x86 boot
 * protocol's PVH entry): the ELF vmlinux is parsed with every header checked against
 * the file and guest RAM, then hvm_start_info, the memory map, the command line and
 * the initrd module are placed as documented in kvm_boot.h. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm/boot.h"
#include "util/fd.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578u
#define E820_RAM 1
#define E820_RESERVED 2
#define MAX_PHDRS 64

struct hvm_start_info {
    uint32_t magic, version, flags, nr_modules;
    uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
    uint32_t memmap_entries, reserved;
};
struct hvm_modlist_entry {
    uint64_t paddr, size, cmdline_paddr, reserved;
};
struct hvm_memmap_entry {
    uint64_t addr, size;
    uint32_t type, reserved;
};

static int bad(char *err, size_t errcap, const char *what)
{
    snprintf(err, errcap, "kernel is not a usable PVH ELF: %s", what);
    return -1;
}

static int check_ehdr(const uint8_t *img, size_t len, const Elf64_Ehdr **out, char *err, size_t errcap)
{
    if (len < sizeof(Elf64_Ehdr))
        return bad(err, errcap, "too short for an ELF header");
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64)
        return bad(err, errcap, "neither a 64-bit little-endian x86-64 ELF nor a bzImage");
    if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phnum > MAX_PHDRS)
        return bad(err, errcap, "bad program header table size");
    if (eh->e_phoff > len || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
        return bad(err, errcap, "program headers past the end of the file");
    if (eh->e_phoff % 8)
        return bad(err, errcap, "misaligned program headers");
    *out = eh;
    return 0;
}

static int find_note(const uint8_t *p, uint64_t len, uint32_t *entry)
{
    uint64_t off = 0;
    while (len - off >= 12) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, p + off, 4);
        memcpy(&descsz, p + off + 4, 4);
        memcpy(&type, p + off + 8, 4);
        off += 12;
        uint64_t nsz = ((uint64_t)namesz + 3) & ~3ull, dsz = ((uint64_t)descsz + 3) & ~3ull;
        if (nsz > len - off || dsz > len - off - nsz)
            return -1;
        const uint8_t *name = p + off, *desc = p + off + nsz;
        if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && !memcmp(name, "Xen", 4) && descsz >= 4) {
            memcpy(entry, desc, 4);
            return 1;
        }
        off += nsz + dsz;
    }
    return 0;
}

int kvm_boot__elf_pvh_entry(const uint8_t *img, size_t len, uint32_t *entry, char *err, size_t errcap)
{
    const Elf64_Ehdr *eh;
    *entry = 0;
    if (check_ehdr(img, len, &eh, err, errcap) < 0)
        return -1;
    for (int i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, img + eh->e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
        if (ph.p_type != PT_NOTE)
            continue;
        if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
            return bad(err, errcap, "note segment past the end of the file");
        int r = find_note(img + ph.p_offset, ph.p_filesz, entry);
        if (r < 0)
            return bad(err, errcap, "malformed note");
        if (r > 0)
            return 0;
    }
    return 0;
}

static int read_at(int fd, uint8_t *dst, uint64_t len, uint64_t off)
{
    return util_pread_full(fd, dst, len, off) == (ssize_t)len ? 0 : -1;
}

/* Copies each segment from fd with pread (no page faults on a source mapping), or with
 * vm->map_kernel maps it from the file where its layout allows (guest_mem__map_file).
 * Guest RAM is fresh anonymous memory here (guest_mem__alloc), so each segment's bss
 * is zero already: clearing it would only fault in (and zero) its pages on the host. */
static int load_segments(struct kvm_vm *vm, const uint8_t *img, size_t len, int fd, uint64_t *kend, char *err,
                         size_t errcap)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
    int loaded = 0;
    *kend = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, img + eh->e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
        if (ph.p_type != PT_LOAD)
            continue;
        if (ph.p_filesz > ph.p_memsz || ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
            return bad(err, errcap, "load segment past the end of the file");
        if (ph.p_paddr < BOOT_HIGH_START)
            return bad(err, errcap, "load segment below 1 MiB");
        uint8_t *dst = guest_mem__ptr(&vm->mem, ph.p_paddr, ph.p_memsz);
        if (!dst || ph.p_paddr + ph.p_memsz > GUEST_MMIO_HOLE_START) {
            snprintf(err, errcap, "kernel segment at 0x%llx (+0x%llx) does not fit in guest memory",
                     (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
            return -1;
        }
        if (vm->map_kernel && ph.p_filesz &&
            guest_mem__map_file(&vm->mem, ph.p_paddr, fd, ph.p_offset, ph.p_filesz) == 0)
            vm->mapped_bytes += ph.p_filesz;
        else if (read_at(fd, dst, ph.p_filesz, ph.p_offset) < 0)
            memcpy(dst, img + ph.p_offset, ph.p_filesz);
        if (ph.p_paddr + ph.p_memsz > *kend)
            *kend = ph.p_paddr + ph.p_memsz;
        loaded++;
    }
    return loaded ? 0 : bad(err, errcap, "no loadable segment");
}

int kvm_boot__map_file(const char *path, const uint8_t **img, size_t *len, char *err, size_t errcap)
{
    int fd = kvm_boot__map_file_fd(path, img, len, err, errcap);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int kvm_boot__map_file_fd(const char *path, const uint8_t **img, size_t *len, char *err, size_t errcap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        snprintf(err, errcap, "cannot read %s: %s", path, fd < 0 ? strerror(errno) : "not a non-empty file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errcap, "cannot map %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    *img = p;
    *len = (size_t)st.st_size;
    return fd;
}

static uint64_t low_end(const struct kvm_vm *vm) { return vm->mem.r[0].size; }

/* The initrd is page aligned at the top of low RAM: copied, or with vm->map_kernel
 * mapped from its file like the kernel (the copy where the mapping fails). */
int kvm_boot__load_initrd(struct kvm_vm *vm, const char *path, uint64_t kend, uint64_t *paddr, uint64_t *size,
                          char *err, size_t errcap)
{
    const uint8_t *img;
    size_t len;
    int fd = kvm_boot__map_file_fd(path, &img, &len, err, errcap);
    if (fd < 0)
        return -1;
    uint64_t top = low_end(vm);
    uint64_t at = len < top ? (top - len) & ~0xfffull : 0;
    uint8_t *dst = at >= kend ? guest_mem__ptr(&vm->mem, at, len) : NULL;
    if (!dst) {
        snprintf(err, errcap, "initrd %s (%zu bytes) does not fit in guest memory above the kernel", path, len);
        munmap((void *)img, len);
        close(fd);
        return -1;
    }
    if (vm->map_kernel && guest_mem__map_file(&vm->mem, at, fd, 0, len) == 0)
        vm->mapped_bytes += len;
    else
        memcpy(dst, img, len);
    munmap((void *)img, len);
    close(fd);
    *paddr = at;
    *size = len;
    return 0;
}

static int write_memmap(struct kvm_vm *vm, struct hvm_start_info *si)
{
    struct hvm_memmap_entry map[4];
    uint32_t n = 0;
    map[n++] = (struct hvm_memmap_entry){0, BOOT_EBDA_START, E820_RAM, 0};
    map[n++] = (struct hvm_memmap_entry){BOOT_EBDA_START, BOOT_HIGH_START - BOOT_EBDA_START, E820_RESERVED, 0};
    map[n++] = (struct hvm_memmap_entry){BOOT_HIGH_START, low_end(vm) - BOOT_HIGH_START, E820_RAM, 0};
    if (vm->mem.n > 1)
        map[n++] = (struct hvm_memmap_entry){vm->mem.r[1].gpa, vm->mem.r[1].size, E820_RAM, 0};
    void *dst = guest_mem__ptr(&vm->mem, BOOT_MEMMAP_GPA, sizeof(map[0]) * n);
    if (!dst)
        return -1;
    memcpy(dst, map, sizeof(map[0]) * n);
    si->memmap_paddr = BOOT_MEMMAP_GPA;
    si->memmap_entries = n;
    return 0;
}

int kvm_boot__pvh(struct kvm_vm *vm, const char *kernel, const char *initrd, const char *cmdline, char *err,
                  size_t errcap)
{
    const uint8_t *img;
    size_t len;
    uint32_t entry;
    uint64_t kend = 0;
    if (low_end(vm) < 16 * 1024 * 1024) {
        snprintf(err, errcap, "at least 16 MiB of guest memory are needed to boot Linux");
        return -1;
    }
    int fd = kvm_boot__map_file_fd(kernel, &img, &len, err, errcap);
    if (fd < 0)
        return -1;
    if (kvm_boot__is_bzimage(img, len)) {
        /* no PVH ELF: the bzImage 64-bit entry (kvm_boot_bzimage.c) */
        close(fd);
        int r = kvm_boot__bzimage(vm, img, len, initrd, cmdline, err, errcap);
        munmap((void *)img, len);
        return r;
    }
    int rc = kvm_boot__elf_pvh_entry(img, len, &entry, err, errcap);
    if (rc == 0 && entry == 0)
        rc = bad(err, errcap, "no XEN_ELFNOTE_PHYS32_ENTRY note (build with CONFIG_PVH)");
    if (rc == 0)
        rc = load_segments(vm, img, len, fd, &kend, err, errcap);
    munmap((void *)img, len);
    close(fd);
    if (rc < 0)
        return -1;

    struct hvm_start_info si = {.magic = HVM_START_MAGIC, .version = 1};
    size_t clen = strlen(cmdline) + 1;
    char *cl = clen <= BOOT_CMDLINE_MAX ? guest_mem__ptr(&vm->mem, BOOT_CMDLINE_GPA, clen) : NULL;
    if (!cl) {
        snprintf(err, errcap, "kernel command line too long (%zu bytes)", clen);
        return -1;
    }
    memcpy(cl, cmdline, clen);
    si.cmdline_paddr = BOOT_CMDLINE_GPA;
    if (initrd && *initrd) {
        struct hvm_modlist_entry mod = {0};
        if (kvm_boot__load_initrd(vm, initrd, kend, &mod.paddr, &mod.size, err, errcap) < 0)
            return -1;
        void *m = guest_mem__ptr(&vm->mem, BOOT_MODLIST_GPA, sizeof(mod));
        memcpy(m, &mod, sizeof(mod));
        si.nr_modules = 1;
        si.modlist_paddr = BOOT_MODLIST_GPA;
    }
    void *dst = guest_mem__ptr(&vm->mem, BOOT_START_INFO_GPA, sizeof(si));
    if (!dst || write_memmap(vm, &si) < 0) {
        snprintf(err, errcap, "guest memory too small for the boot tables");
        return -1;
    }
    memcpy(dst, &si, sizeof(si));
    vm->boot = (struct kvm_boot_state){.mode = BOOT_PVH32, .entry = entry, .rbx = BOOT_START_INFO_GPA};
    return 0;
}

int kvm_boot__flat(struct kvm_vm *vm, const char *path, uint64_t gpa, enum kvm_boot_mode mode, char *err, size_t errcap)
{
    const uint8_t *img;
    size_t len;
    if (mode == BOOT_REAL && ((gpa & 15) || gpa >= BOOT_EBDA_START)) {
        snprintf(err, errcap, "a real-mode guest must load 16-byte aligned below 0x9fc00");
        return -1;
    }
    if (kvm_boot__map_file(path, &img, &len, err, errcap) < 0)
        return -1;
    uint8_t *dst = guest_mem__ptr(&vm->mem, gpa, len);
    if (!dst || (mode == BOOT_REAL && gpa + len > BOOT_EBDA_START)) {
        snprintf(err, errcap, "%s (%zu bytes) does not fit at 0x%llx", path, len, (unsigned long long)gpa);
        munmap((void *)img, len);
        return -1;
    }
    memcpy(dst, img, len);
    munmap((void *)img, len);
    if (mode == BOOT_REAL)
        vm->boot =
            (struct kvm_boot_state){.mode = BOOT_REAL, .real_cs = (uint16_t)(gpa >> 4), .entry = 0, .rsp = 0xfff0};
    else
        vm->boot = (struct kvm_boot_state){.mode = mode, .entry = gpa, .rsp = gpa};
    return 0;
}
