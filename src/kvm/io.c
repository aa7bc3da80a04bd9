/* The kvm backend's I/O thread: one epoll loop for device host-side fds (the agent
 * socket of virtio-console, ...). Callbacks run on this thread and take their
 * device's lock themselves. */
#include "kvm/vm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static struct dev_io_entry wake_entry; /* marks the wake-up eventfd */

static void *io_thread(void *arg)
{
    struct kvm_vm *vm = arg;
    pthread_setname_np(pthread_self(), "kvm-io");
    struct epoll_event ev[16];
    for (;;) {
        int n = epoll_wait(vm->io_epfd, ev, 16, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            struct dev_io_entry *e = ev[i].data.ptr;
            if (e == &wake_entry)
                return NULL;
            e->fn(e->ctx, ev[i].events);
        }
    }
    return NULL;
}

int kvm_io__start(struct kvm_vm *vm, char *err, size_t errcap)
{
    vm->io_epfd = epoll_create1(EPOLL_CLOEXEC);
    vm->io_wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->io_epfd < 0 || vm->io_wake_efd < 0) {
        snprintf(err, errcap, "I/O thread setup: %s", strerror(errno));
        return -1;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &wake_entry};
    if (epoll_ctl(vm->io_epfd, EPOLL_CTL_ADD, vm->io_wake_efd, &e) < 0) {
        snprintf(err, errcap, "I/O thread setup: %s", strerror(errno));
        return -1;
    }
    int rc = pthread_create(&vm->io_thread, NULL, io_thread, vm);
    if (rc) {
        snprintf(err, errcap, "cannot start the I/O thread: %s", strerror(rc));
        return -1;
    }
    vm->io_started = 1;
    return 0;
}

int kvm_io__watch(struct kvm_vm *vm, int fd, uint32_t events, struct dev_io_entry *entry)
{
    struct epoll_event e = {.events = events, .data.ptr = entry};
    return epoll_ctl(vm->io_epfd, EPOLL_CTL_ADD, fd, &e);
}

int kvm_io__rewatch(struct kvm_vm *vm, int fd, uint32_t events, struct dev_io_entry *entry)
{
    struct epoll_event e = {.events = events, .data.ptr = entry};
    return epoll_ctl(vm->io_epfd, EPOLL_CTL_MOD, fd, &e);
}

void kvm_io__stop(struct kvm_vm *vm)
{
    if (vm->io_started) {
        uint64_t one = 1;
        if (write(vm->io_wake_efd, &one, sizeof(one)) == sizeof(one))
            pthread_join(vm->io_thread, NULL);
        vm->io_started = 0;
    }
    if (vm->io_epfd >= 0)
        close(vm->io_epfd);
    if (vm->io_wake_efd >= 0)
        close(vm->io_wake_efd);
    vm->io_epfd = vm->io_wake_efd = -1;
}
