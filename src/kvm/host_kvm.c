/* The KVM machine as a device host (kvm/dev/host.h): address ranges on the VM's buses,
 * interrupt lines and irqfds on the VM fd, ioeventfds, and the I/O thread's epoll set. */
#include <linux/kvm.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include "kvm/vm.h"

static struct kvm_vm *vm_of(struct dev_host *h) { return (struct kvm_vm *)((char *)h - offsetof(struct kvm_vm, host)); }

static int map_mmio(struct dev_host *h, uint64_t base, uint64_t len, dev_access_fn fn, void *dev)
{
    return bus__register(&vm_of(h)->mmio, base, len, fn, dev);
}

static int map_pio(struct dev_host *h, uint64_t base, uint64_t len, dev_access_fn fn, void *dev)
{
    return bus__register(&vm_of(h)->pio, base, len, fn, dev);
}

static void irq_line(struct dev_host *h, int gsi, int level) { kvm_vm__irq_line(vm_of(h), gsi, level); }

static int irqfd(struct dev_host *h, int gsi, int fd, int assign)
{
    struct kvm_vm *vm = vm_of(h);
    struct kvm_irqfd io = {.fd = (uint32_t)fd, .gsi = (uint32_t)gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};
    if (vm->vm_fd < 0)
        return -1;
    return ioctl(vm->vm_fd, KVM_IRQFD, &io) < 0 ? -1 : 0;
}

static int ioeventfd(struct dev_host *h, uint64_t addr, uint32_t len, uint64_t datamatch, int fd, int assign)
{
    struct kvm_vm *vm = vm_of(h);
    struct kvm_ioeventfd io = {.datamatch = datamatch,
                               .addr = addr,
                               .len = len,
                               .fd = fd,
                               .flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN)};
    if (vm->vm_fd < 0)
        return -1;
    return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -1 : 0;
}

static int watch(struct dev_host *h, int fd, uint32_t events, struct dev_io_entry *e)
{
    return kvm_io__watch(vm_of(h), fd, events, e);
}

static int rewatch(struct dev_host *h, int fd, uint32_t events, struct dev_io_entry *e)
{
    return kvm_io__rewatch(vm_of(h), fd, events, e);
}

static void unwatch(struct dev_host *h, int fd)
{
    struct kvm_vm *vm = vm_of(h);
    if (vm->io_epfd >= 0)
        epoll_ctl(vm->io_epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void reset(struct dev_host *h, const char *why) { kvm_vm__request_stop(vm_of(h), VM_STOP_RESET, why); }

static const struct dev_host_ops kvm_host_ops = {
    .map_mmio = map_mmio,
    .map_pio = map_pio,
    .irq_line = irq_line,
    .irqfd = irqfd,
    .ioeventfd = ioeventfd,
    .watch = watch,
    .rewatch = rewatch,
    .unwatch = unwatch,
    .reset = reset,
};

void kvm_vm__init_host(struct kvm_vm *vm)
{
    vm->host.ops = &kvm_host_ops;
    vm->host.mem = &vm->mem;
}
