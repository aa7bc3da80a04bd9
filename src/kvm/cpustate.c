/* The KVM half of a full snapshot: each vCPU's registers, special registers, FPU or
 * XSAVE area, XCRs, MSRs, LAPIC, pending events, MP state and debug registers, and the
 * VM's PIC/IOAPIC, PIT and kvmclock. Saved from a paused VM into the state stream;
 * set on a new VM after its vCPUs are created and before they first run. Guest-visible
 * values are the guest's own business (KVM refuses what it cannot run); sizes and
 * counts are checked here. */
#include "kvm/cpustate.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define TAG_VM SNAP_TAG('K', 'V', 'M', 'S')
#define TAG_CPU SNAP_TAG('V', 'C', 'P', 'U')
#define MSR_TSC_DEADLINE 0x6e0u
#define CPU_MAX_MSRS 512 /* KVM's list is about 150 on a recent kernel */

static int fail(char *err, size_t cap, const char *what, int id)
{
    if (id >= 0)
        snprintf(err, cap, "%s on vCPU %d: %s", what, id, strerror(errno));
    else
        snprintf(err, cap, "%s: %s", what, strerror(errno));
    return -1;
}

/* A raw KVM structure: its size, then its bytes (the same host ABI on both ends; the
 * size check refuses a state from a different layout). */
static void put_blob(struct snap_w *w, const void *p, size_t len)
{
    snap_w__u32(w, (uint32_t)len);
    snap_w__bytes(w, p, len);
}

static int get_blob(struct snap_r *r, void *p, size_t len, const char *what)
{
    uint32_t n = snap_r__u32(r);
    if (r->bad)
        return -1;
    if (n != len)
        return snap_r__fail(r, "saved %s has %u bytes, this host's has %zu", what, n, len);
    return snap_r__bytes(r, p, len);
}

int kvm_cpustate__msr_list(struct kvm_vm *vm, char *err, size_t cap)
{
    struct kvm_msr_list probe = {.nmsrs = 0};
    if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
        return fail(err, cap, "KVM_GET_MSR_INDEX_LIST", -1);
    uint32_t n = probe.nmsrs > CPU_MAX_MSRS ? CPU_MAX_MSRS : probe.nmsrs;
    struct kvm_msr_list *l = calloc(1, sizeof(*l) + (size_t)(probe.nmsrs + 1) * sizeof(uint32_t));
    if (!l) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    l->nmsrs = probe.nmsrs;
    if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
        free(l);
        return fail(err, cap, "KVM_GET_MSR_INDEX_LIST", -1);
    }
    free(vm->msr_idx);
    vm->msr_idx = malloc((size_t)n * sizeof(uint32_t) + 1);
    if (!vm->msr_idx) {
        free(l);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    memcpy(vm->msr_idx, l->indices, (size_t)n * sizeof(uint32_t));
    vm->n_msr_idx = n;
    free(l);
    return 0;
}

/* One MSR at a time: KVM_GET_MSRS stops at the first MSR it cannot read, and which
 * ones a host refuses varies; the ones read are the ones restored. */
static int msr_rw(int fd, uint32_t idx, uint64_t *val, int set)
{
    _Alignas(struct kvm_msr_entry) uint8_t buf[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    memset(buf, 0, sizeof(buf));
    struct kvm_msrs *m = (struct kvm_msrs *)buf;
    m->nmsrs = 1;
    m->entries[0].index = idx;
    m->entries[0].data = set ? *val : 0;
    int n = ioctl(fd, set ? KVM_SET_MSRS : KVM_GET_MSRS, m);
    if (n != 1)
        return -1;
    if (!set)
        *val = m->entries[0].data;
    return 0;
}

static int save_cpu(struct kvm_vm *vm, struct kvm_vcpu *c, struct snap_w *w, char *err, size_t cap)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_mp_state mp;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events ev;
    struct kvm_debugregs dr;
    if (ioctl(c->fd, KVM_GET_REGS, &regs) < 0)
        return fail(err, cap, "KVM_GET_REGS", c->id);
    if (ioctl(c->fd, KVM_GET_SREGS, &sregs) < 0)
        return fail(err, cap, "KVM_GET_SREGS", c->id);
    if (ioctl(c->fd, KVM_GET_MP_STATE, &mp) < 0)
        return fail(err, cap, "KVM_GET_MP_STATE", c->id);
    if (ioctl(c->fd, KVM_GET_LAPIC, &lapic) < 0)
        return fail(err, cap, "KVM_GET_LAPIC", c->id);
    if (ioctl(c->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
        return fail(err, cap, "KVM_GET_VCPU_EVENTS", c->id);
    if (ioctl(c->fd, KVM_GET_DEBUGREGS, &dr) < 0)
        return fail(err, cap, "KVM_GET_DEBUGREGS", c->id);
    size_t mark = snap_w__begin(w, TAG_CPU);
    snap_w__u32(w, (uint32_t)c->id);
    put_blob(w, &regs, sizeof(regs));
    put_blob(w, &sregs, sizeof(sregs));
    if (vm->has_xsave) {
        struct kvm_xsave xs;
        if (ioctl(c->fd, KVM_GET_XSAVE, &xs) < 0)
            return fail(err, cap, "KVM_GET_XSAVE", c->id);
        snap_w__u8(w, 1);
        put_blob(w, &xs, sizeof(xs));
    } else {
        struct kvm_fpu fpu;
        if (ioctl(c->fd, KVM_GET_FPU, &fpu) < 0)
            return fail(err, cap, "KVM_GET_FPU", c->id);
        snap_w__u8(w, 0);
        put_blob(w, &fpu, sizeof(fpu));
    }
    if (vm->has_xcrs) {
        struct kvm_xcrs x;
        if (ioctl(c->fd, KVM_GET_XCRS, &x) < 0)
            return fail(err, cap, "KVM_GET_XCRS", c->id);
        snap_w__u8(w, 1);
        put_blob(w, &x, sizeof(x));
    } else {
        snap_w__u8(w, 0);
    }
    /* MSRs: count, then (index, value) pairs */
    size_t count_at = w->len;
    snap_w__u32(w, 0);
    uint32_t saved = 0;
    for (uint32_t i = 0; i < vm->n_msr_idx; i++) {
        uint64_t v;
        if (msr_rw(c->fd, vm->msr_idx[i], &v, 0) < 0)
            continue;
        snap_w__u32(w, vm->msr_idx[i]);
        snap_w__u64(w, v);
        saved++;
    }
    if (!w->oom)
        for (int b = 0; b < 4; b++)
            w->buf[count_at + (size_t)b] = (uint8_t)(saved >> (8 * b));
    snap_w__u32(w, mp.mp_state);
    put_blob(w, &lapic, sizeof(lapic));
    put_blob(w, &ev, sizeof(ev));
    put_blob(w, &dr, sizeof(dr));
    snap_w__end(w, mark);
    return 0;
}

int kvm_cpustate__save(struct kvm_vm *vm, struct snap_w *w, char *err, size_t cap)
{
    size_t mark = snap_w__begin(w, TAG_VM);
    snap_w__u32(w, (uint32_t)vm->ncpus);
    for (uint32_t chip = 0; chip < 3; chip++) { /* PIC master, PIC slave, IOAPIC */
        struct kvm_irqchip ic = {.chip_id = chip};
        if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &ic) < 0)
            return fail(err, cap, "KVM_GET_IRQCHIP", -1);
        put_blob(w, &ic, sizeof(ic));
    }
    struct kvm_pit_state2 pit;
    if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
        return fail(err, cap, "KVM_GET_PIT2", -1);
    put_blob(w, &pit, sizeof(pit));
    struct kvm_clock_data clock;
    memset(&clock, 0, sizeof(clock));
    if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
        return fail(err, cap, "KVM_GET_CLOCK", -1);
    snap_w__u64(w, clock.clock);
    snap_w__end(w, mark);
    for (int i = 0; i < vm->ncpus; i++)
        if (save_cpu(vm, &vm->vcpus[i], w, err, cap) < 0)
            return -1;
    if (w->oom) {
        snprintf(err, cap, "out of memory for the saved vCPU state");
        return -1;
    }
    return 0;
}

static int set_or_fail(struct snap_r *r, int fd, unsigned long req, void *arg, const char *what, int id)
{
    if (ioctl(fd, req, arg) < 0)
        return snap_r__fail(r, "%s on vCPU %d: %s", what, id, strerror(errno));
    return 0;
}

static int load_cpu(struct kvm_vm *vm, struct snap_r *r)
{
    uint32_t id = snap_r__u32(r);
    if (r->bad)
        return -1;
    if (id >= (uint32_t)vm->ncpus)
        return snap_r__fail(r, "saved state for vCPU %u, the box has %d", id, vm->ncpus);
    struct kvm_vcpu *c = &vm->vcpus[id];
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_xsave xs;
    struct kvm_fpu fpu;
    struct kvm_xcrs xcrs;
    if (get_blob(r, &regs, sizeof(regs), "registers") < 0 ||
        get_blob(r, &sregs, sizeof(sregs), "special registers") < 0)
        return -1;
    uint8_t has_xsave = snap_r__u8(r);
    if (has_xsave ? get_blob(r, &xs, sizeof(xs), "XSAVE area") : get_blob(r, &fpu, sizeof(fpu), "FPU state"))
        return -1;
    uint8_t has_xcrs = snap_r__u8(r);
    if (has_xcrs && get_blob(r, &xcrs, sizeof(xcrs), "XCRs") < 0)
        return -1;
    if (has_xsave && !vm->has_xsave)
        return snap_r__fail(r, "the state has an XSAVE area and this host's KVM has no KVM_CAP_XSAVE");
    if (has_xcrs && !vm->has_xcrs)
        return snap_r__fail(r, "the state has XCRs and this host's KVM has no KVM_CAP_XCRS");
    /* QEMU's order: registers, FPU/XSAVE, XCRs, special registers, MSRs (after EFER is
     * in place), MP state, LAPIC, the TSC deadline (it needs the LAPIC), events. */
    if (set_or_fail(r, c->fd, KVM_SET_REGS, &regs, "KVM_SET_REGS", c->id) < 0 ||
        (has_xsave ? set_or_fail(r, c->fd, KVM_SET_XSAVE, &xs, "KVM_SET_XSAVE", c->id)
                   : set_or_fail(r, c->fd, KVM_SET_FPU, &fpu, "KVM_SET_FPU", c->id)) < 0 ||
        (has_xcrs && set_or_fail(r, c->fd, KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS", c->id) < 0) ||
        set_or_fail(r, c->fd, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS", c->id) < 0)
        return -1;
    uint32_t nmsr = snap_r__u32(r);
    if (!r->bad && nmsr > CPU_MAX_MSRS)
        return snap_r__fail(r, "saved state has %u MSRs for vCPU %u (at most %d)", nmsr, id, CPU_MAX_MSRS);
    int have_deadline = 0, refused = 0;
    uint64_t deadline = 0;
    for (uint32_t i = 0; i < nmsr && !r->bad; i++) {
        uint32_t idx = snap_r__u32(r);
        uint64_t v = snap_r__u64(r);
        if (r->bad)
            break;
        if (idx == MSR_TSC_DEADLINE) {
            have_deadline = 1;
            deadline = v;
            continue;
        }
        if (msr_rw(c->fd, idx, &v, 1) < 0)
            refused++;
    }
    if (r->bad)
        return -1;
    struct kvm_mp_state mp = {.mp_state = snap_r__u32(r)};
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events ev;
    struct kvm_debugregs dr;
    if (get_blob(r, &lapic, sizeof(lapic), "LAPIC") < 0 || get_blob(r, &ev, sizeof(ev), "vCPU events") < 0 ||
        get_blob(r, &dr, sizeof(dr), "debug registers") < 0)
        return -1;
    if (set_or_fail(r, c->fd, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE", c->id) < 0 ||
        set_or_fail(r, c->fd, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC", c->id) < 0)
        return -1;
    if (have_deadline && msr_rw(c->fd, MSR_TSC_DEADLINE, &deadline, 1) < 0)
        refused++;
    /* the events' flags say which optional parts are valid; a saved NMI/SMI state is
     * applied only when KVM gave it */
    if (set_or_fail(r, c->fd, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS", c->id) < 0 ||
        set_or_fail(r, c->fd, KVM_SET_DEBUGREGS, &dr, "KVM_SET_DEBUGREGS", c->id) < 0)
        return -1;
    vm->msrs_refused += (uint32_t)refused;
    return 0;
}

int kvm_cpustate__load(struct kvm_vm *vm, struct snap_r *all, char *err, size_t cap)
{
    struct snap_r r;
    if (snap_r__section(all, TAG_VM, &r) < 0) {
        snprintf(err, cap, "the saved state has no VM section");
        return -1;
    }
    uint32_t ncpus = snap_r__u32(&r);
    if (!r.bad && ncpus != (uint32_t)vm->ncpus) {
        snprintf(err, cap, "the saved state has %u vCPUs, the box has %d", ncpus, vm->ncpus);
        return -1;
    }
    struct kvm_irqchip ic[3];
    struct kvm_pit_state2 pit;
    for (uint32_t chip = 0; chip < 3; chip++) {
        if (get_blob(&r, &ic[chip], sizeof(ic[chip]), "interrupt controller") < 0)
            break;
        if (ic[chip].chip_id != chip)
            snap_r__fail(&r, "interrupt controller %u saved as %u", chip, ic[chip].chip_id);
    }
    get_blob(&r, &pit, sizeof(pit), "PIT");
    uint64_t clock = snap_r__u64(&r);
    if (r.bad) {
        snprintf(err, cap, "%s", r.why);
        return -1;
    }
    /* every vCPU exactly once */
    struct snap_r walk, sub;
    snap_r__init(&walk, all->p, all->len);
    uint32_t tag;
    int rc, seen = 0;
    while ((rc = snap_r__next(&walk, &tag, &sub)) == 1) {
        if (tag != TAG_CPU)
            continue;
        if (load_cpu(vm, &sub) < 0) {
            snprintf(err, cap, "%s", sub.why);
            return -1;
        }
        seen++;
    }
    if (rc < 0 || seen != vm->ncpus) {
        snprintf(err, cap, "%s", rc < 0 ? walk.why : "the saved state does not hold every vCPU exactly once");
        return -1;
    }
    for (uint32_t chip = 0; chip < 3; chip++)
        if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &ic[chip]) < 0)
            return fail(err, cap, "KVM_SET_IRQCHIP", -1);
    if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
        return fail(err, cap, "KVM_SET_PIT2", -1);
    /* kvmclock goes on from the saved value: the guest sees no time pass while it was
     * saved; the agent steps its wall clock when told it was restored */
    struct kvm_clock_data cd;
    memset(&cd, 0, sizeof(cd));
    cd.clock = clock;
    if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &cd) < 0)
        return fail(err, cap, "KVM_SET_CLOCK", -1);
    return 0;
}
