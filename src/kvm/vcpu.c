/* vCPU threads: one per vCPU, each looping on KVM_RUN and dispatching exits to the
 * port and MMIO buses. Pause/stop use a signal plus kvm_run.immediate_exit, so a vCPU
 * leaves KVM_RUN promptly even if the kick lands just before it enters. */
#include "kvm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

static void on_kick(int sig) { (void)sig; }

int kvm_vcpu__create_all(struct kvm_vm *vm, char *err, size_t errcap)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_kick; /* no SA_RESTART: KVM_RUN returns EINTR */
    sigemptyset(&sa.sa_mask);
    if (sigaction(KVM_VM_KICK_SIGNAL, &sa, NULL) < 0) {
        snprintf(err, errcap, "sigaction: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < vm->ncpus; i++) {
        struct kvm_vcpu *c = &vm->vcpus[i];
        c->vm = vm;
        c->id = i;
        c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
        if (c->fd < 0) {
            snprintf(err, errcap, "KVM_CREATE_VCPU %d: %s", i, strerror(errno));
            return -1;
        }
        void *run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
        if (run == MAP_FAILED) {
            snprintf(err, errcap, "mmap of vCPU %d: %s", i, strerror(errno));
            return -1;
        }
        c->run = run;
        if (kvm_cpuid__apply(vm, c, err, errcap) < 0 || kvm_regs__setup(vm, c, err, errcap) < 0)
            return -1;
    }
    return 0;
}

/* Parks the calling vCPU while a pause is requested. Returns 1 when the VM stops. */
static int park_if_asked(struct kvm_vcpu *c)
{
    struct kvm_vm *vm = c->vm;
    pthread_mutex_lock(&vm->lock);
    if (vm->pause_req && vm->stop_reason == VM_RUNNING) {
        vm->paused++;
        pthread_cond_broadcast(&vm->cond);
        while (vm->pause_req && vm->stop_reason == VM_RUNNING)
            pthread_cond_wait(&vm->cond, &vm->lock);
        vm->paused--;
    }
    int stop = vm->stop_reason != VM_RUNNING;
    if (!stop)
        __atomic_store_n(&c->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&vm->lock);
    return stop;
}

static void handle_io(struct kvm_vcpu *c)
{
    struct kvm_run *r = c->run;
    uint32_t size = r->io.size, count = r->io.count;
    uint64_t off = r->io.data_offset;
    /* KVM fills these; still refuse anything that would leave the run page. */
    if (size == 0 || size > 4 || count == 0 || off > (uint64_t)c->vm->run_size ||
        (uint64_t)size * count > (uint64_t)c->vm->run_size - off)
        return;
    uint8_t *data = (uint8_t *)r + off;
    for (uint32_t i = 0; i < count; i++)
        bus__dispatch(&c->vm->pio, r->io.port, data + (size_t)i * size, size, r->io.direction == KVM_EXIT_IO_OUT);
}

static void handle_exit(struct kvm_vcpu *c)
{
    struct kvm_run *r = c->run;
    char why[160];
    c->exits++;
    switch (r->exit_reason) {
    case KVM_EXIT_IO: handle_io(c); break;
    case KVM_EXIT_MMIO:
        if (r->mmio.len >= 1 && r->mmio.len <= 8)
            bus__dispatch(&c->vm->mmio, r->mmio.phys_addr, r->mmio.data, r->mmio.len, r->mmio.is_write);
        break;
    case KVM_EXIT_INTR: break;
    case KVM_EXIT_SHUTDOWN: kvm_vm__request_stop(c->vm, VM_STOP_TRIPLE, "triple fault (KVM_EXIT_SHUTDOWN)"); break;
    case KVM_EXIT_SYSTEM_EVENT:
        snprintf(why, sizeof(why), "system event %u", r->system_event.type);
        kvm_vm__request_stop(c->vm, r->system_event.type == KVM_SYSTEM_EVENT_CRASH ? VM_STOP_ERROR : VM_STOP_RESET,
                             why);
        break;
    case KVM_EXIT_HLT: kvm_vm__request_stop(c->vm, VM_STOP_ERROR, "vCPU halted with no irqchip"); break;
    case KVM_EXIT_FAIL_ENTRY:
        snprintf(why, sizeof(why), "vCPU %d entry failed: reason 0x%llx", c->id,
                 (unsigned long long)r->fail_entry.hardware_entry_failure_reason);
        kvm_vm__request_stop(c->vm, VM_STOP_ERROR, why);
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        snprintf(why, sizeof(why), "vCPU %d KVM internal error suberror %u", c->id, r->internal.suberror);
        kvm_vm__request_stop(c->vm, VM_STOP_ERROR, why);
        break;
    default:
        snprintf(why, sizeof(why), "vCPU %d unhandled exit %u", c->id, r->exit_reason);
        kvm_vm__request_stop(c->vm, VM_STOP_ERROR, why);
        break;
    }
}

static void *vcpu_thread(void *arg)
{
    struct kvm_vcpu *c = arg;
    char name[16];
    snprintf(name, sizeof(name), "vcpu%d", c->id);
    pthread_setname_np(pthread_self(), name);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, KVM_VM_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    for (;;) {
        if (park_if_asked(c))
            break;
        int rc = ioctl(c->fd, KVM_RUN, 0);
        if (rc < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            char why[128];
            snprintf(why, sizeof(why), "vCPU %d KVM_RUN: %s", c->id, strerror(errno));
            kvm_vm__request_stop(c->vm, VM_STOP_ERROR, why);
            break;
        }
        handle_exit(c);
    }
    pthread_mutex_lock(&c->vm->lock);
    c->vm->running_threads--;
    pthread_cond_broadcast(&c->vm->cond);
    pthread_mutex_unlock(&c->vm->lock);
    return NULL;
}

int kvm_vcpu__start_all(struct kvm_vm *vm, char *err, size_t errcap)
{
    for (int i = 0; i < vm->ncpus; i++) {
        struct kvm_vcpu *c = &vm->vcpus[i];
        pthread_mutex_lock(&vm->lock);
        vm->running_threads++;
        pthread_mutex_unlock(&vm->lock);
        int rc = pthread_create(&c->thread, NULL, vcpu_thread, c);
        if (rc) {
            pthread_mutex_lock(&vm->lock);
            vm->running_threads--;
            pthread_mutex_unlock(&vm->lock);
            snprintf(err, errcap, "cannot start vCPU thread %d: %s", i, strerror(rc));
            kvm_vm__request_stop(vm, VM_STOP_ERROR, err);
            return -1;
        }
        c->started = 1;
    }
    return 0;
}

void kvm_vcpu__pause_all(struct kvm_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->pause_req = 1;
    for (int i = 0; i < vm->ncpus; i++) {
        struct kvm_vcpu *c = &vm->vcpus[i];
        __atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        if (c->started)
            pthread_kill(c->thread, KVM_VM_KICK_SIGNAL);
    }
    while (vm->paused < vm->running_threads && vm->stop_reason == VM_RUNNING)
        pthread_cond_wait(&vm->cond, &vm->lock);
    pthread_mutex_unlock(&vm->lock);
}

void kvm_vcpu__resume_all(struct kvm_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->pause_req = 0;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

void kvm_vcpu__join_all(struct kvm_vm *vm)
{
    for (int i = 0; i < vm->ncpus; i++) {
        struct kvm_vcpu *c = &vm->vcpus[i];
        if (c->started) {
            pthread_join(c->thread, NULL);
            c->started = 0;
        }
    }
}
