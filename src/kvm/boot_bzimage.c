/* bzImage 64-bit entry (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol"), the
 * fallback for a kernel without a PVH note: the setup header is checked against the
 * file and guest RAM, the protected-mode kernel is copied to code32_start, and the
 * zero page (struct boot_params) gets the header, the e820 map, the command line and
 * the initrd. The vCPU starts in long mode (kvm_regs.c: flat GDT, identity-mapped
 * 4 GiB) at code32_start + 0x200 with RSI = zero page. */
#include <stdio.h>
#include <string.h>

#include "kvm/boot.h"

/* struct boot_params / setup_header offsets */
#define BP_E820_ENTRIES 0x1e8
#define BP_SETUP_SECTS 0x1f1
#define BP_BOOT_FLAG 0x1fe
#define BP_JUMP 0x200
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_CODE32_START 0x214
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_INITRD_ADDR_MAX 0x22c
#define BP_XLOADFLAGS 0x236
#define BP_CMDLINE_SIZE 0x238
#define BP_INIT_SIZE 0x260
#define BP_E820_TABLE 0x2d0
#define BP_SIZE 4096
#define HDR_END_MIN 0x264 /* through init_size: protocol 2.10+ */

#define LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x01
#define MIN_PROTOCOL 0x020c
#define ENTRY_64_OFFSET 0x200
#define BOOT_STACK_TOP 0x9000ull /* 0x8000-0x8fff, below the page tables */

static uint16_t rd16(const uint8_t *p, size_t off)
{
    uint16_t v;
    memcpy(&v, p + off, 2);
    return v;
}
static uint32_t rd32(const uint8_t *p, size_t off)
{
    uint32_t v;
    memcpy(&v, p + off, 4);
    return v;
}
static void wr32(uint8_t *p, size_t off, uint32_t v) { memcpy(p + off, &v, 4); }

static int bad(char *err, size_t errcap, const char *what)
{
    snprintf(err, errcap, "kernel is not a usable bzImage: %s", what);
    return -1;
}

int kvm_boot__is_bzimage(const uint8_t *img, size_t len)
{
    return len >= BP_HEADER + 4 && rd16(img, BP_BOOT_FLAG) == 0xaa55 && !memcmp(img + BP_HEADER, "HdrS", 4);
}

static void e820_put(uint8_t *zp, unsigned i, uint64_t addr, uint64_t size, uint32_t type)
{
    uint8_t *e = zp + BP_E820_TABLE + 20 * i;
    memcpy(e, &addr, 8);
    memcpy(e + 8, &size, 8);
    memcpy(e + 16, &type, 4);
}

int kvm_boot__bzimage(struct kvm_vm *vm, const uint8_t *img, size_t len, const char *initrd, const char *cmdline,
                      char *err, size_t errcap)
{
    char msg[160];
    if (!kvm_boot__is_bzimage(img, len))
        return bad(err, errcap, "no boot sector signature or \"HdrS\" setup header");
    uint16_t version = rd16(img, BP_VERSION);
    if (version < MIN_PROTOCOL) {
        snprintf(msg, sizeof(msg), "boot protocol %u.%02u is older than 2.12 (no 64-bit entry)", version >> 8,
                 version & 0xff);
        return bad(err, errcap, msg);
    }
    size_t hdr_end = BP_HEADER + (size_t)img[BP_JUMP + 1]; /* the jump's target ends the header */
    if (hdr_end < HDR_END_MIN || hdr_end > BP_SIZE || hdr_end > len)
        return bad(err, errcap, "setup header length out of range");
    unsigned sects = img[BP_SETUP_SECTS] ? img[BP_SETUP_SECTS] : 4;
    size_t koff = ((size_t)sects + 1) * 512;
    if (koff < hdr_end || koff >= len)
        return bad(err, errcap, "setup_sects places the kernel past the end of the file");
    if (!(img[BP_LOADFLAGS] & LOADED_HIGH))
        return bad(err, errcap, "not a high-loaded (bz) kernel: LOADED_HIGH is clear");
    if (!(rd16(img, BP_XLOADFLAGS) & XLF_KERNEL_64))
        return bad(err, errcap, "XLF_KERNEL_64 is clear: the kernel has no 64-bit entry");
    uint64_t load = rd32(img, BP_CODE32_START);
    if (load < BOOT_HIGH_START)
        load = BOOT_HIGH_START;
    uint64_t klen = len - koff, init_size = rd32(img, BP_INIT_SIZE);
    uint64_t span = init_size > klen ? init_size : klen;
    uint64_t low = vm->mem.r[0].size;
    if (klen <= ENTRY_64_OFFSET)
        return bad(err, errcap, "protected-mode kernel too short for the 64-bit entry");
    if (load > low || span > low - load || load + span > GUEST_MMIO_HOLE_START) {
        snprintf(err, errcap, "bzImage kernel at 0x%llx (+0x%llx incl. init_size) does not fit in guest memory",
                 (unsigned long long)load, (unsigned long long)span);
        return -1;
    }
    uint8_t *dst = guest_mem__ptr(&vm->mem, load, klen);
    uint8_t *zp = guest_mem__ptr(&vm->mem, BOOT_ZERO_PAGE_GPA, BP_SIZE);
    if (!dst || !zp)
        return bad(err, errcap, "guest memory too small");
    memcpy(dst, img + koff, klen);

    memset(zp, 0, BP_SIZE);
    memcpy(zp + BP_SETUP_SECTS, img + BP_SETUP_SECTS, hdr_end - BP_SETUP_SECTS);
    zp[BP_TYPE_OF_LOADER] = 0xff; /* undefined boot loader */
    wr32(zp, BP_CODE32_START, (uint32_t)load);

    size_t clen = strlen(cmdline) + 1;
    uint32_t cmax = rd32(img, BP_CMDLINE_SIZE);
    char *cl = clen <= BOOT_CMDLINE_MAX ? guest_mem__ptr(&vm->mem, BOOT_CMDLINE_GPA, clen) : NULL;
    if (!cl || (cmax && clen - 1 > cmax)) {
        snprintf(err, errcap, "kernel command line too long (%zu bytes, the bzImage takes %u)", clen - 1, cmax);
        return -1;
    }
    memcpy(cl, cmdline, clen);
    wr32(zp, BP_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_GPA);

    if (initrd && *initrd) {
        uint64_t at, size;
        if (kvm_boot__load_initrd(vm, initrd, load + span, &at, &size, err, errcap) < 0)
            return -1;
        uint32_t max = rd32(img, BP_INITRD_ADDR_MAX);
        if (max && at + size - 1 > max) {
            snprintf(err, errcap, "initrd at 0x%llx (+0x%llx) is above the bzImage's initrd_addr_max 0x%x",
                     (unsigned long long)at, (unsigned long long)size, max);
            return -1;
        }
        wr32(zp, BP_RAMDISK_IMAGE, (uint32_t)at);
        wr32(zp, BP_RAMDISK_SIZE, (uint32_t)size);
    }

    unsigned n = 0;
    e820_put(zp, n++, 0, BOOT_EBDA_START, 1);
    e820_put(zp, n++, BOOT_EBDA_START, BOOT_HIGH_START - BOOT_EBDA_START, 2);
    e820_put(zp, n++, BOOT_HIGH_START, low - BOOT_HIGH_START, 1);
    if (vm->mem.n > 1)
        e820_put(zp, n++, vm->mem.r[1].gpa, vm->mem.r[1].size, 1);
    zp[BP_E820_ENTRIES] = (uint8_t)n;

    vm->boot = (struct kvm_boot_state){
        .mode = BOOT_LONG64, .entry = load + ENTRY_64_OFFSET, .rsp = BOOT_STACK_TOP, .rsi = BOOT_ZERO_PAGE_GPA};
    return 0;
}
