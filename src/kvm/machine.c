/* Assembles and runs a kvm-backend machine: the order matters (I/O thread before the
 * console, devices before the command line, boot state before the vCPUs). */
#include "kvm/machine.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "jail/jail.h"
#include "kvm/snapfile.h"
#include "util/util.h"
#include <stdlib.h>

static uint64_t slot_base(int slot) { return VIRTIO_MMIO_BASE + (uint64_t)slot * VIRTIO_MMIO_SIZE; }

static int add_devices(struct kvm_machine *m, const struct kvm_machine_opts *o, char *err, size_t errcap)
{
    struct kvm_vm *vm = &m->vm;
    if (uart__init(&m->uart, &vm->host, o->console_fd) < 0 || reset__init(&m->rst, &vm->host) < 0) {
        snprintf(err, errcap, "cannot place the legacy devices");
        return -1;
    }
    if (o->rng) {
        if (virtio_rng__init(&m->rng, &vm->host, slot_base(KVM_SLOT_RNG), VIRTIO_MMIO_IRQ_BASE + KVM_SLOT_RNG) < 0) {
            snprintf(err, errcap, "cannot place virtio-rng");
            return -1;
        }
        m->has_rng = 1;
    }
    if (o->disk) {
        if (virtio_blk__init(&m->blk, &vm->host, slot_base(KVM_SLOT_BLK), VIRTIO_MMIO_IRQ_BASE + KVM_SLOT_BLK, o->disk,
                             o->disk_format ? o->disk_format : "raw", o->disk_ro, err, errcap) < 0)
            return -1;
        m->has_blk = 1;
    }
    if (o->agent_fd >= 0) {
        if (virtio_console__init(&m->con, &vm->host, slot_base(KVM_SLOT_CONSOLE),
                                 VIRTIO_MMIO_IRQ_BASE + KVM_SLOT_CONSOLE, o->agent_fd) < 0) {
            snprintf(err, errcap, "cannot place virtio-console");
            return -1;
        }
        m->has_con = 1;
    }
    if (o->net_fd >= 0) {
        m->has_net = 1; /* set first: a half-built device is closed by destroy */
        if (virtio_net__init(&m->net, &vm->host, slot_base(KVM_SLOT_NET), KVM_NET_IRQ, o->net_fd, o->mac, err, errcap) <
            0)
            return -1;
    }
    struct virtio_mmio *ts[] = {m->has_rng ? &m->rng.t : NULL, m->has_blk ? &m->blk.t : NULL,
                                m->has_con ? &m->con.t : NULL, m->has_net ? &m->net.t : NULL};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        if (ts[i] && o->ioeventfd)
            m->ioeventfds += virtio_mmio__use_ioeventfd(ts[i]);
        if (ts[i] && o->irqfd)
            m->irqfds += virtio_mmio__use_irqfd(ts[i]);
    }
    return 0;
}

static int build_cmdline(struct kvm_machine *m, const char *base, char *err, size_t errcap)
{
    snprintf(m->cmdline, sizeof(m->cmdline), "%s", base ? base : "");
    int rc = 0;
    if (m->has_rng)
        rc |= virtio_mmio__cmdline(&m->rng.t, m->cmdline, sizeof(m->cmdline));
    if (m->has_blk)
        rc |= virtio_mmio__cmdline(&m->blk.t, m->cmdline, sizeof(m->cmdline));
    if (m->has_con)
        rc |= virtio_mmio__cmdline(&m->con.t, m->cmdline, sizeof(m->cmdline));
    if (m->has_net)
        rc |= virtio_mmio__cmdline(&m->net.t, m->cmdline, sizeof(m->cmdline));
    if (rc)
        snprintf(err, errcap, "kernel command line too long");
    return rc ? -1 : 0;
}

int kvm_machine__create(struct kvm_machine *m, const struct kvm_machine_opts *o, char *err, size_t errcap)
{
    memset(m, 0, sizeof(*m));
    m->blk.raw_fd = -1;
    m->ctl.fd = m->ctl.pending_fd = -1;
    if (kvm_vm__create(&m->vm, o->mem_bytes, !o->no_hugepages, o->cpus, err, errcap) < 0)
        return -1;
    m->vm.hide_xsave = o->hide_xsave;
    m->vm.map_kernel = o->map_kernel;
    /* a restore: the saved RAM goes in place first (devices check their rings against
     * it), the boot is skipped, and the saved state is set once the vCPUs exist */
    struct snapfile_info info;
    uint8_t *state = NULL;
    uint64_t t0 = util_now_ns(CLOCK_MONOTONIC);
    if (o->restore_fd >= 0) {
        if (o->flat) {
            snprintf(err, errcap, "a micro-guest cannot start from a snapshot");
            return -1;
        }
        if (kvm_snapfile__open(o->restore_fd, (uint32_t)o->cpus, o->mem_bytes, &info, &state, err, errcap) < 0)
            return -1;
        m->vm.restoring = 1;
        if (kvm_snapfile__map_ram(m, o->restore_fd, &info, err, errcap) < 0)
            goto fail;
    }
    if (kvm_io__start(&m->vm, err, errcap) < 0 || add_devices(m, o, err, errcap) < 0 ||
        build_cmdline(m, o->cmdline, err, errcap) < 0)
        goto fail;
    int rc = 0;
    if (!m->vm.restoring) {
        rc = o->flat ? kvm_boot__flat(&m->vm, o->flat, o->flat_gpa, o->flat_mode, err, errcap)
                     : kvm_boot__pvh(&m->vm, o->kernel, o->initrd, m->cmdline, err, errcap);
        if (rc == 0 && !o->flat)
            rc = kvm_boot__mptable(&m->vm, o->cpus, err, errcap);
    }
    if (rc < 0 || kvm_vcpu__create_all(&m->vm, err, errcap) < 0)
        goto fail;
    if (state) {
        if (kvm_snapfile__restore(m, state, info.state_len, err, errcap) < 0)
            goto fail;
        free(state);
        m->restore_ms = (double)(util_now_ns(CLOCK_MONOTONIC) - t0) / 1e6;
    }
    if (o->control_fd >= 0) {
        if (kvm_control__start(&m->ctl, m, o->control_fd, err, errcap) < 0)
            return -1;
        m->has_ctl = 1;
    }
    return 0;
fail:
    free(state);
    return -1;
}

int kvm_machine__start(struct kvm_machine *m, char *err, size_t errcap)
{
    return kvm_vcpu__start_all(&m->vm, err, errcap);
}

enum kvm_stop_reason kvm_machine__wait(struct kvm_machine *m, int timeout_ms)
{
    struct pollfd p = {.fd = m->vm.stop_efd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r == 0)
        kvm_vm__request_stop(&m->vm, VM_STOP_REQUEST, "timeout");
    kvm_vcpu__join_all(&m->vm);
    return kvm_vm__stopped(&m->vm);
}

int kvm_machine__poll_stop(struct kvm_machine *m, int timeout_ms)
{
    struct pollfd p = {.fd = m->vm.stop_efd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) > 0;
}

void kvm_machine__destroy(struct kvm_machine *m)
{
    if (kvm_vm__stopped(&m->vm) == VM_RUNNING)
        kvm_vm__request_stop(&m->vm, VM_STOP_REQUEST, "destroy");
    kvm_vcpu__join_all(&m->vm);
    kvm_io__stop(&m->vm);
    kvm_control__close(&m->ctl);
    if (m->has_rng)
        virtio_mmio__close(&m->rng.t);
    if (m->has_blk)
        virtio_mmio__close(&m->blk.t);
    if (m->has_con)
        virtio_mmio__close(&m->con.t);
    if (m->has_net)
        virtio_mmio__close(&m->net.t);
    if (m->has_net)
        virtio_net__close(&m->net);
    if (m->has_blk)
        virtio_blk__close(&m->blk);
    kvm_vm__destroy(&m->vm);
}

int kvm_machine__lock_down(struct kvm_machine *m, int report_fd, char *err, size_t errcap)
{
    (void)m;
    return jail_seccomp(JAIL_ROLE_KVM, report_fd, 0, err, errcap);
}

struct role_call {
    int report_fd, rc;
    char err[256];
};

static void io_role(void *arg)
{
    struct role_call *c = arg;
    c->rc = jail_seccomp(JAIL_ROLE_KVM_IO, c->report_fd, 0, c->err, sizeof(c->err));
}

int kvm_machine__lock_roles(struct kvm_machine *m, int report_fd, char *err, size_t errcap)
{
    struct role_call c = {.report_fd = report_fd, .rc = -1};
    if (kvm_io__call(&m->vm, io_role, &c) < 0 || c.rc < 0) {
        snprintf(err, errcap, "the I/O thread's filter: %s", c.err[0] ? c.err : "the thread is not running");
        return -1;
    }
    return jail_seccomp(JAIL_ROLE_KVM_IO, report_fd, 0, err, errcap);
}
