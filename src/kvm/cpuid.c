/* The CPUID template every vCPU sees: KVM_GET_SUPPORTED_CPUID, filtered so the guest
 * gets a stable, documented view (see the table below), never raw host facts that
 * break on migration or identify the host. */
#include "kvm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* The template, leaf by leaf:
 *   0x1        EBX[31:24] = APIC id (= vCPU index), EBX[23:16] = vCPU count,
 *              EDX.HTT when more than one vCPU, ECX.HYPERVISOR set, ECX.TSC_DEADLINE
 *              set when KVM emulates the TSC deadline timer (KVM_CAP_TSC_DEADLINE_TIMER:
 *              KVM_GET_SUPPORTED_CPUID leaves it out, and without it the guest spends
 *              ~100 ms of boot calibrating the LAPIC timer); with hide_xsave:
 *              ECX.XSAVE/OSXSAVE/AVX/F16C/FMA cleared.
 *   0x6        zeroed: no thermal/power management.
 *   0x7.0      with hide_xsave: AVX2 and AVX-512 bits cleared.
 *   0xa        zeroed: no architectural PMU (no perf MSRs to emulate).
 *   0x4        (Intel caches) EAX[31:26] = vCPUs - 1 cores per package, EAX[25:14] = 0
 *              threads per L1/L2, vCPUs - 1 for the L3: the box's topology, not the host's.
 *   0xb, 0x1f  EDX = x2APIC id of the vCPU; one thread per core.
 *   0xd        removed with hide_xsave.
 *   0x40000000 "KVMKVMKVM\0\0\0", EAX = 0x40000001 (max hypervisor leaf).
 *   0x80000002-4  brand string "cocoon virtual CPU": the host model is not leaked.
 *   0x80000008 ECX = vCPUs - 1 (AMD NC: cores per package), APIC id size 0 (legacy).
 *   0x8000001d (AMD caches) EAX[25:14] as for 0x4.
 *   0x8000001e (AMD topology) EAX = APIC id, EBX = core id = vCPU index (one thread per
 *              core), ECX = node 0 of 1, EDX = 0.
 * Everything else is what KVM reports as supported. */
#define MAX_ENTRIES 256

static void set_brand(struct kvm_cpuid_entry2 *e)
{
    static const char brand[48] = "cocoon virtual CPU";
    uint32_t part = e->function - 0x80000002u;
    uint32_t w[4];
    memcpy(w, brand + part * 16, 16);
    e->eax = w[0];
    e->ebx = w[1];
    e->ecx = w[2];
    e->edx = w[3];
}

/* Cache leaves (0x4, 0x8000001d): how many logical CPUs share this cache, by level. */
static uint32_t cache_sharing(uint32_t eax, int ncpus)
{
    uint32_t level = (eax >> 5) & 7;
    eax &= ~(0xfffu << 14);
    if (level >= 3)
        eax |= (uint32_t)(ncpus - 1) << 14;
    return eax;
}

static void filter(struct kvm_cpuid_entry2 *e, int id, int ncpus, int hide_xsave, int tsc_deadline)
{
    switch (e->function) {
    case 0x4:
        if (e->eax & 0x1f) /* a cache is described */
            e->eax = (cache_sharing(e->eax, ncpus) & ~(0x3fu << 26)) | ((uint32_t)(ncpus - 1) << 26);
        break;
    case 0x80000008: e->ecx = (uint32_t)(ncpus - 1) & 0xff; break;
    case 0x8000001d:
        if (e->eax & 0x1f)
            e->eax = cache_sharing(e->eax, ncpus);
        break;
    case 0x8000001e:
        e->eax = (uint32_t)id;
        e->ebx = (uint32_t)id & 0xff;
        e->ecx = 0;
        e->edx = 0;
        break;
    case 0x1:
        e->ebx = (e->ebx & 0x0000ffffu) | ((uint32_t)id << 24) | ((uint32_t)(ncpus & 0xff) << 16);
        e->ecx |= 1u << 31; /* hypervisor */
        if (tsc_deadline)
            e->ecx |= 1u << 24;
        if (ncpus > 1)
            e->edx |= 1u << 28;
        if (hide_xsave)
            e->ecx &= ~((1u << 26) | (1u << 27) | (1u << 28) | (1u << 29) | (1u << 12));
        break;
    case 0x6:
    case 0xa: e->eax = e->ebx = e->ecx = e->edx = 0; break;
    case 0x7:
        if (hide_xsave && e->index == 0)
            e->ebx &= ~((1u << 5) | (1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
                        (1u << 30) | (1u << 31));
        break;
    case 0xb:
    case 0x1f: e->edx = (uint32_t)id; break;
    case 0x40000000:
        e->eax = 0x40000001;
        memcpy(&e->ebx, "KVMK", 4);
        memcpy(&e->ecx, "VMKV", 4);
        memcpy(&e->edx, "M\0\0\0", 4);
        break;
    case 0x80000002:
    case 0x80000003:
    case 0x80000004: set_brand(e); break;
    default: break;
    }
}

int kvm_cpuid__apply(struct kvm_vm *vm, struct kvm_vcpu *c, char *err, size_t errcap)
{
    size_t sz = sizeof(struct kvm_cpuid2) + MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cp = calloc(1, sz);
    if (!cp) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    cp->nent = MAX_ENTRIES;
    if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cp) < 0) {
        snprintf(err, errcap, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
        free(cp);
        return -1;
    }
    uint32_t out = 0;
    int have_sig = 0;
    int tsc_deadline = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    for (uint32_t i = 0; i < cp->nent && i < MAX_ENTRIES; i++) {
        struct kvm_cpuid_entry2 e = cp->entries[i];
        if (vm->hide_xsave && e.function == 0xd)
            continue;
        have_sig |= e.function == 0x40000000;
        filter(&e, c->id, vm->ncpus, vm->hide_xsave, tsc_deadline);
        cp->entries[out++] = e;
    }
    if (!have_sig && out < MAX_ENTRIES) {
        struct kvm_cpuid_entry2 e = {.function = 0x40000000};
        filter(&e, c->id, vm->ncpus, vm->hide_xsave, tsc_deadline);
        cp->entries[out++] = e;
    }
    cp->nent = out;
    int rc = ioctl(c->fd, KVM_SET_CPUID2, cp);
    if (rc < 0)
        snprintf(err, errcap, "KVM_SET_CPUID2 on vCPU %d: %s", c->id, strerror(errno));
    free(cp);
    return rc < 0 ? -1 : 0;
}
