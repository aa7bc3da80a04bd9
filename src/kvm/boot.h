/* Loading a guest into memory and choosing the vCPU's start state. Guest physical
 * layout used by every boot mode:
 *   0x0000_0500  GDT (kvm_regs.c)            0x0000_6000  hvm_start_info
 *   0x0000_6040  module list (initrd)        0x0000_6100  memory map (e820 entries)
 *   0x0000_9000  identity page tables, 64-bit mode only (to 0xefff)
 *   0x0002_0000  kernel command line (up to 64 KiB)
 *   0x0009_fc00 - 0x0010_0000  reserved (where firmware tables live on a PC)
 *   0x0010_0000  kernel segments (ELF p_paddr, at or above 1 MiB)
 *   top of RAM below 3 GiB: initrd, page aligned
 *   0xc000_0000 - 0x1_0000_0000  MMIO hole (virtio-mmio at 0xd000_0000, TSS at 0xfffb_d000)
 *   0x1_0000_0000  the rest of RAM when there is more than 3 GiB
 * The e820 map handed to the guest: [0, 0x9fc00) RAM, [0x9fc00, 1 MiB) reserved,
 * [1 MiB, low end) RAM, [4 GiB, 4 GiB + rest) RAM. */
#ifndef COCOON_KVM_BOOT_H
#define COCOON_KVM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "kvm/vm.h"

#define BOOT_START_INFO_GPA 0x6000ull
#define BOOT_MODLIST_GPA 0x6040ull
#define BOOT_MEMMAP_GPA 0x6100ull
#define BOOT_CMDLINE_GPA 0x20000ull
#define BOOT_CMDLINE_MAX 0x10000ull
#define BOOT_EBDA_START 0x9fc00ull
#define BOOT_HIGH_START 0x100000ull

#define BOOT_ZERO_PAGE_GPA 0x7000ull

/* PVH boot of an ELF vmlinux carrying XEN_ELFNOTE_PHYS32_ENTRY: loads its segments,
 * the initrd (NULL: none) and the command line, writes hvm_start_info and sets
 * vm->boot. A file that is not an ELF but a bzImage (boot sector 0xaa55, "HdrS")
 * takes the bzImage 64-bit entry instead (kvm_boot__bzimage). -1 with a message in err. */
int kvm_boot__pvh(struct kvm_vm *vm, const char *kernel, const char *initrd, const char *cmdline, char *err,
                  size_t errcap);

/* bzImage fallback (Documentation/arch/x86/boot.rst): boot protocol >= 2.12 with
 * XLF_KERNEL_64 and LOADED_HIGH; the protected-mode kernel is loaded at code32_start
 * (1 MiB when lower) and entered in 64-bit mode at code32_start + 0x200 with RSI =
 * the zero page (BOOT_ZERO_PAGE_GPA: setup header copied from the file, e820 map,
 * command line, initrd). Every header field is checked against the file and guest
 * RAM; -1 with a "kernel is not a usable bzImage: ..." message otherwise. */
int kvm_boot__is_bzimage(const uint8_t *img, size_t len);
/* Loads a bzImage held in memory (img, len: the caller's) through the 64-bit boot
 * protocol entry, with an optional initrd and the command line. -1 with err set. */
int kvm_boot__bzimage(struct kvm_vm *vm, const uint8_t *img, size_t len, const char *initrd, const char *cmdline,
                      char *err, size_t errcap);

/* Shared by the loaders: maps a whole regular file read-only; copies an initrd page
 * aligned to the top of low RAM, above kend. */
int kvm_boot__map_file(const char *path, const uint8_t **img, size_t *len, char *err, size_t errcap);
/* The same, keeping the file open: returns its fd (the caller closes it) or -1. */
int kvm_boot__map_file_fd(const char *path, const uint8_t **img, size_t *len, char *err, size_t errcap);
/* Copies the initrd file above the kernel's end (kend) and below the MMIO hole; its
 * guest address and size in *paddr and *psize. -1 with err set. */
int kvm_boot__load_initrd(struct kvm_vm *vm, const char *path, uint64_t kend, uint64_t *paddr, uint64_t *size,
                          char *err, size_t errcap);

/* Writes the MP table (floating pointer + configuration table at BOOT_EBDA_START)
 * describing ncpus CPUs (APIC ids 0..n-1), the I/O APIC and ISA IRQ routing, so a
 * kernel without ACPI starts every vCPU (kvm_mptable.c). */
int kvm_boot__mptable(struct kvm_vm *vm, int ncpus, char *err, size_t errcap);

/* Parses an ELF image already in memory: fills the PVH entry (0 when the note is
 * absent). Exposed for tests; -1 with err for a malformed file. */
int kvm_boot__elf_pvh_entry(const uint8_t *img, size_t len, uint32_t *entry, char *err, size_t errcap);

/* Micro-guests: a flat binary copied to guest address `gpa` and entered at it, in
 * real mode (CS = gpa >> 4, IP = 0; gpa must be 16-byte aligned and below 1 MiB) or in
 * 64-bit long mode (identity-mapped first 4 GiB, RSP = gpa). */
int kvm_boot__flat(struct kvm_vm *vm, const char *path, uint64_t gpa, enum kvm_boot_mode mode, char *err,
                   size_t errcap);

#endif
