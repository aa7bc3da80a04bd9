/* The kvm backend's I/O thread: one epoll loop for device host-side fds (the agent
 * socket of virtio-console, ...). Callbacks run on this thread and take their
 * device's lock themselves. */
#include "kvm/vm.h"
#include "util/fd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static struct dev_io_entry wake_entry; /* marks the wake-up eventfd */
static struct dev_io_entry call_entry; /* marks the eventfd of kvm_io__call */

static void run_call(struct kvm_vm *vm)
{
    uint64_t cnt;
    if (read(vm->io_call_efd, &cnt, sizeof(cnt)) != sizeof(cnt))
        return;
    pthread_mutex_lock(&vm->lock);
    void (*fn)(void *) = vm->io_call_fn;
    void *arg = vm->io_call_arg;
    pthread_mutex_unlock(&vm->lock);
    if (fn)
        fn(arg);
    pthread_mutex_lock(&vm->lock);
    vm->io_call_fn = NULL;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

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
            if (e == &call_entry) {
                run_call(vm);
                continue;
            }
            e->fn(e->ctx, ev[i].events);
        }
    }
    return NULL;
}

int kvm_io__start(struct kvm_vm *vm, char *err, size_t errcap)
{
    vm->io_epfd = epoll_create1(EPOLL_CLOEXEC);
    vm->io_wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vm->io_call_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->io_epfd < 0 || vm->io_wake_efd < 0 || vm->io_call_efd < 0) {
        snprintf(err, errcap, "I/O thread setup: %s", strerror(errno));
        return -1;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &wake_entry};
    struct epoll_event c = {.events = EPOLLIN, .data.ptr = &call_entry};
    if (epoll_ctl(vm->io_epfd, EPOLL_CTL_ADD, vm->io_wake_efd, &e) < 0 ||
        epoll_ctl(vm->io_epfd, EPOLL_CTL_ADD, vm->io_call_efd, &c) < 0) {
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
    return util_epoll_set(vm->io_epfd, EPOLL_CTL_ADD, fd, events, entry);
}

int kvm_io__rewatch(struct kvm_vm *vm, int fd, uint32_t events, struct dev_io_entry *entry)
{
    return util_epoll_set(vm->io_epfd, EPOLL_CTL_MOD, fd, events, entry);
}

int kvm_io__call(struct kvm_vm *vm, void (*fn)(void *), void *arg)
{
    uint64_t one = 1;
    if (!vm->io_started)
        return -1;
    pthread_mutex_lock(&vm->lock);
    vm->io_call_fn = fn;
    vm->io_call_arg = arg;
    int rc = write(vm->io_call_efd, &one, sizeof(one)) == sizeof(one) ? 0 : -1;
    while (rc == 0 && vm->io_call_fn)
        pthread_cond_wait(&vm->cond, &vm->lock);
    pthread_mutex_unlock(&vm->lock);
    return rc;
}

void kvm_io__stop(struct kvm_vm *vm)
{
    if (vm->io_started) {
        uint64_t one = 1;
        if (write(vm->io_wake_efd, &one, sizeof(one)) == sizeof(one))
            pthread_join(vm->io_thread, NULL);
        vm->io_started = 0;
    }
    util_fd_close(&vm->io_epfd);
    util_fd_close(&vm->io_wake_efd);
    util_fd_close(&vm->io_call_efd);
}
