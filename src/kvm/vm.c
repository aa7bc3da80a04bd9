/* Creating and tearing down the KVM VM: /dev/kvm checks, in-kernel irqchip and PIT,
 * guest memory slots, interrupt lines, and the stop request every part may raise. */
#include "kvm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "kvm/cpustate.h"
#include "util/fd.h"

#define KVM_TSS_ADDR 0xfffbd000ull /* three pages in the MMIO hole, for Intel real mode */
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ull

static int fail(char *err, size_t errcap, const char *what)
{
    snprintf(err, errcap, "%s: %s", what, strerror(errno));
    return -1;
}

static int set_memory(struct kvm_vm *vm, char *err, size_t errcap)
{
    for (int i = 0; i < vm->mem.n; i++) {
        struct kvm_userspace_memory_region r = {
            .slot = (uint32_t)i,
            .guest_phys_addr = vm->mem.r[i].gpa,
            .memory_size = vm->mem.r[i].size,
            .userspace_addr = (uint64_t)(uintptr_t)vm->mem.r[i].hva,
        };
        if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
            return fail(err, errcap, "KVM_SET_USER_MEMORY_REGION");
    }
    return 0;
}

int kvm_vm__create(struct kvm_vm *vm, uint64_t mem_bytes, int hugepages, int ncpus, char *err, size_t errcap)
{
    memset(vm, 0, sizeof(*vm));
    kvm_vm__init_host(vm);
    vm->kvm_fd = vm->vm_fd = vm->stop_efd = vm->io_epfd = vm->io_wake_efd = vm->io_call_efd = -1;
    vm->snap_src_fd = -1;
    struct sysinfo si;
    vm->host_swap = sysinfo(&si) < 0 || si.totalswap > 0; /* unknown counts as swap */
    for (int i = 0; i < KVM_VM_MAX_CPUS; i++)
        vm->vcpus[i].fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    pthread_cond_init(&vm->cond, NULL);
    if (ncpus < 1 || ncpus > KVM_VM_MAX_CPUS) {
        snprintf(err, errcap, "%d vCPUs requested: 1 to %d are supported", ncpus, KVM_VM_MAX_CPUS);
        return -1;
    }
    vm->ncpus = ncpus;
    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0)
        return fail(err, errcap, "cannot open /dev/kvm");
    int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        snprintf(err, errcap, "/dev/kvm speaks API %d, we need %d", api, KVM_API_VERSION);
        return -1;
    }
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0)
        return fail(err, errcap, "KVM_CREATE_VM");
    vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (vm->run_size < (int)sizeof(struct kvm_run))
        return fail(err, errcap, "KVM_GET_VCPU_MMAP_SIZE");
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
        return fail(err, errcap, "KVM_SET_TSS_ADDR");
    uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
    (void)ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap); /* only some hosts need it */
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return fail(err, errcap, "KVM_CREATE_IRQCHIP");
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        return fail(err, errcap, "KVM_CREATE_PIT2");
    int rc = guest_mem__alloc(&vm->mem, mem_bytes, hugepages);
    if (rc < 0) {
        snprintf(err, errcap, "cannot map %llu bytes of guest memory: %s", (unsigned long long)mem_bytes,
                 strerror(-rc));
        return -1;
    }
    if (set_memory(vm, err, errcap) < 0)
        return -1;
    vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->stop_efd < 0)
        return fail(err, errcap, "eventfd");
    vm->has_xsave = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
    vm->has_xcrs = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
    return kvm_cpustate__msr_list(vm, err, errcap);
}

void kvm_vm__destroy(struct kvm_vm *vm)
{
    kvm_io__stop(vm);
    for (int i = 0; i < KVM_VM_MAX_CPUS; i++) {
        struct kvm_vcpu *c = &vm->vcpus[i];
        if (c->run)
            munmap(c->run, (size_t)vm->run_size);
        if (c->fd >= 0)
            close(c->fd);
        c->run = NULL;
        c->fd = -1;
    }
    guest_mem__free(&vm->mem);
    free(vm->msr_idx);
    vm->msr_idx = NULL;
    util_fd_close(&vm->snap_src_fd);
    util_fd_close(&vm->vm_fd);
    util_fd_close(&vm->kvm_fd);
    util_fd_close(&vm->stop_efd);
}

void kvm_vm__irq_line(struct kvm_vm *vm, int gsi, int level)
{
    struct kvm_irq_level l = {.irq = (uint32_t)gsi, .level = (uint32_t)level};
    ioctl(vm->vm_fd, KVM_IRQ_LINE, &l);
}

void kvm_vm__request_stop(struct kvm_vm *vm, enum kvm_stop_reason why, const char *detail)
{
    pthread_mutex_lock(&vm->lock);
    int first = vm->stop_reason == VM_RUNNING;
    if (first) {
        vm->stop_reason = why;
        snprintf(vm->stop_detail, sizeof(vm->stop_detail), "%s", detail ? detail : "");
    }
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    if (!first)
        return;
    for (int i = 0; i < vm->ncpus; i++) {
        struct kvm_vcpu *c = &vm->vcpus[i];
        if (c->run)
            __atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        if (c->started && !pthread_equal(c->thread, pthread_self()))
            pthread_kill(c->thread, KVM_VM_KICK_SIGNAL);
    }
    uint64_t one = 1;
    if (write(vm->stop_efd, &one, sizeof(one)) < 0) {
        /* the counter cannot overflow with one write per VM */
    }
}

enum kvm_stop_reason kvm_vm__stopped(struct kvm_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    enum kvm_stop_reason r = vm->stop_reason;
    pthread_mutex_unlock(&vm->lock);
    return r;
}

const char *kvm_vm__stop_name(enum kvm_stop_reason r)
{
    switch (r) {
    case VM_RUNNING: return "running";
    case VM_STOP_RESET: return "reset";
    case VM_STOP_TRIPLE: return "triple-fault";
    case VM_STOP_ERROR: return "error";
    case VM_STOP_REQUEST: return "requested";
    }
    return "?";
}
