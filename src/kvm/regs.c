/* Initial vCPU state: the boot vCPU's segments/control registers for real mode, the
 * PVH 32-bit protected-mode entry, or 64-bit long mode (flat GDT, identity page
 * tables for the first 4 GiB), plus boot MSRs, FPU defaults and LAPIC LINT0/1 on all. */
#include "kvm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* Fixed low-memory layout used by every boot mode (documented in kvm_boot.h). */
#define GDT_GPA 0x500
#define PML4_GPA 0x9000
#define PDPT_GPA 0xa000
#define PD_GPA 0xb000 /* four pages: 0xb000-0xefff */

#define SEL_CODE32 0x08
#define SEL_DATA 0x10
#define SEL_TSS 0x18
#define SEL_CODE64 0x20

static const uint64_t gdt[] = {
    0,
    0x00cf9b000000ffffull, /* 0x08: flat 32-bit code, execute/read, accessed */
    0x00cf93000000ffffull, /* 0x10: flat data, read/write, accessed */
    0x00008b0000000067ull, /* 0x18: 32-bit TSS, busy, base 0, limit 0x67 */
    0x00af9b000000ffffull, /* 0x20: 64-bit code */
};

static struct kvm_segment seg_from(uint16_t sel, uint64_t desc)
{
    struct kvm_segment s = {
        .base = ((desc >> 16) & 0xffffff) | (((desc >> 56) & 0xff) << 24),
        .limit = (uint32_t)((desc & 0xffff) | (((desc >> 48) & 0xf) << 16)),
        .selector = sel,
        .type = (desc >> 40) & 0xf,
        .present = (desc >> 47) & 1,
        .dpl = (desc >> 45) & 3,
        .db = (desc >> 54) & 1,
        .s = (desc >> 44) & 1,
        .l = (desc >> 53) & 1,
        .g = (desc >> 55) & 1,
    };
    if (s.g)
        s.limit = (s.limit << 12) | 0xfff;
    return s;
}

static int write_tables(struct kvm_vm *vm, int paging)
{
    uint8_t *g = guest_mem__ptr(&vm->mem, GDT_GPA, sizeof(gdt));
    if (!g)
        return -1;
    memcpy(g, gdt, sizeof(gdt));
    if (!paging)
        return 0;
    uint64_t *pml4 = guest_mem__ptr(&vm->mem, PML4_GPA, 4096);
    uint64_t *pdpt = guest_mem__ptr(&vm->mem, PDPT_GPA, 4096);
    uint64_t *pd = guest_mem__ptr(&vm->mem, PD_GPA, 4 * 4096);
    if (!pml4 || !pdpt || !pd)
        return -1;
    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    pml4[0] = PDPT_GPA | 0x3;
    for (uint64_t i = 0; i < 4; i++)
        pdpt[i] = (PD_GPA + i * 4096) | 0x3;
    for (uint64_t i = 0; i < 4 * 512; i++)
        pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB page */
    return 0;
}

static int setup_sregs(struct kvm_vm *vm, struct kvm_vcpu *c, char *err, size_t errcap)
{
    struct kvm_sregs s;
    if (ioctl(c->fd, KVM_GET_SREGS, &s) < 0) {
        snprintf(err, errcap, "KVM_GET_SREGS: %s", strerror(errno));
        return -1;
    }
    const struct kvm_boot_state *b = &vm->boot;
    if (b->mode == BOOT_REAL) {
        s.cs.selector = b->real_cs;
        s.cs.base = (uint64_t)b->real_cs << 4;
        s.ds = s.es = s.ss = s.fs = s.gs = s.cs;
        s.ds.type = s.es.type = s.ss.type = s.fs.type = s.gs.type = 3;
    } else {
        if (write_tables(vm, b->mode == BOOT_LONG64) < 0) {
            snprintf(err, errcap, "guest memory too small for the boot tables");
            return -1;
        }
        struct kvm_segment data = seg_from(SEL_DATA, gdt[SEL_DATA / 8]);
        s.cs = b->mode == BOOT_LONG64 ? seg_from(SEL_CODE64, gdt[SEL_CODE64 / 8]) : seg_from(SEL_CODE32, gdt[1]);
        s.ds = s.es = s.fs = s.gs = s.ss = data;
        s.tr = seg_from(SEL_TSS, gdt[SEL_TSS / 8]);
        s.gdt.base = GDT_GPA;
        s.gdt.limit = sizeof(gdt) - 1;
        s.idt.base = 0;
        s.idt.limit = 0;
        s.cr0 = 0x11; /* PE | ET */
        s.cr4 = 0;
        s.efer = 0;
        if (b->mode == BOOT_LONG64) {
            s.cr3 = PML4_GPA;
            s.cr4 = 0x20;                  /* PAE */
            s.cr0 = 0x80010033;            /* PG | WP | NE | ET | MP | PE */
            s.efer = (1 << 8) | (1 << 10); /* LME | LMA */
        }
    }
    if (ioctl(c->fd, KVM_SET_SREGS, &s) < 0) {
        snprintf(err, errcap, "KVM_SET_SREGS: %s", strerror(errno));
        return -1;
    }
    struct kvm_regs r;
    memset(&r, 0, sizeof(r));
    r.rflags = 2;
    r.rip = b->entry;
    r.rsp = b->rsp;
    r.rbx = b->rbx;
    r.rsi = b->rsi;
    if (ioctl(c->fd, KVM_SET_REGS, &r) < 0) {
        snprintf(err, errcap, "KVM_SET_REGS: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* MSRs a 64-bit Linux expects to start from known values (as on real firmware). */
static const uint32_t boot_msr_idx[] = {0x174,      0x175,      0x176, 0xc0000081, 0xc0000082, 0xc0000083,
                                        0xc0000084, 0xc0000102, 0x10,  0x1a0,      0x2ff};
static uint64_t boot_msr_val(uint32_t idx)
{
    switch (idx) {
    case 0x1a0: return 1;              /* IA32_MISC_ENABLE: fast strings */
    case 0x2ff: return (1u << 11) | 6; /* MTRR default type: enabled, write-back */
    default: return 0;
    }
}

static int setup_msrs(struct kvm_vcpu *c)
{
    enum { N = sizeof(boot_msr_idx) / sizeof(boot_msr_idx[0]) };
    /* struct kvm_msrs ends in a flexible array: the entries follow it in one buffer */
    _Alignas(struct kvm_msr_entry) uint8_t buf[sizeof(struct kvm_msrs) + N * sizeof(struct kvm_msr_entry)];
    struct kvm_msrs *m = (struct kvm_msrs *)buf;
    memset(buf, 0, sizeof(buf));
    for (int i = 0; i < N; i++) {
        m->entries[i].index = boot_msr_idx[i];
        m->entries[i].data = boot_msr_val(boot_msr_idx[i]);
    }
    m->nmsrs = N;
    /* Returns how many were set: a host that refuses one (e.g. MTRRs) still boots. */
    int n = ioctl(c->fd, KVM_SET_MSRS, m);
    return n < 0 ? -1 : n;
}

static int setup_lapic(struct kvm_vcpu *c)
{
    struct kvm_lapic_state l;
    if (ioctl(c->fd, KVM_GET_LAPIC, &l) < 0)
        return -1;
    uint32_t lint0, lint1;
    memcpy(&lint0, l.regs + 0x350, 4);
    memcpy(&lint1, l.regs + 0x360, 4);
    lint0 = (lint0 & ~0x700u) | (7u << 8); /* ExtINT: the PIC */
    lint1 = (lint1 & ~0x700u) | (4u << 8); /* NMI */
    memcpy(l.regs + 0x350, &lint0, 4);
    memcpy(l.regs + 0x360, &lint1, 4);
    return ioctl(c->fd, KVM_SET_LAPIC, &l);
}

int kvm_regs__setup(struct kvm_vm *vm, struct kvm_vcpu *c, char *err, size_t errcap)
{
    if (setup_lapic(c) < 0) {
        snprintf(err, errcap, "LAPIC setup of vCPU %d: %s", c->id, strerror(errno));
        return -1;
    }
    if (setup_msrs(c) < 0) {
        snprintf(err, errcap, "KVM_SET_MSRS on vCPU %d: %s", c->id, strerror(errno));
        return -1;
    }
    struct kvm_fpu fpu;
    memset(&fpu, 0, sizeof(fpu));
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    if (ioctl(c->fd, KVM_SET_FPU, &fpu) < 0) {
        snprintf(err, errcap, "KVM_SET_FPU on vCPU %d: %s", c->id, strerror(errno));
        return -1;
    }
    if (c->id != 0 || vm->restoring)
        return 0; /* application processors wait for INIT/SIPI; a restored vCPU gets its saved state */
    return setup_sregs(vm, c, err, errcap);
}
