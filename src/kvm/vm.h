/* The kvm backend's virtual machine: the KVM fds, guest memory, the port and MMIO
 * buses, the vCPU threads and their pause/resume/stop protocol, the I/O thread, and
 * the interrupt lines devices raise. One struct kvm_vm per box. */
#ifndef COCOON_KVM_VM_H
#define COCOON_KVM_VM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/bus.h"
#include "kvm/dev/host.h"
#include "kvm/mem.h"

#define KVM_VM_MAX_CPUS 32
#define KVM_VM_KICK_SIGNAL SIGUSR1

enum kvm_stop_reason {
    VM_RUNNING = 0,
    VM_STOP_RESET,   /* the guest asked for a reset (i8042, 0xcf9): a clean shutdown */
    VM_STOP_TRIPLE,  /* triple fault / KVM_EXIT_SHUTDOWN */
    VM_STOP_ERROR,   /* internal error, failed entry, unhandled exit */
    VM_STOP_REQUEST, /* the monitor asked */
};

struct kvm_vm;

struct kvm_vcpu {
    struct kvm_vm *vm;
    int id, fd;
    struct kvm_run *run;
    pthread_t thread;
    int started;
    uint64_t exits; /* count of exits handled in user space */
};

/* Boot state a vCPU 0 starts in (set by the boot code, applied by kvm_vcpu__start). */
enum kvm_boot_mode { BOOT_REAL, BOOT_PVH32, BOOT_LONG64 };
struct kvm_boot_state {
    enum kvm_boot_mode mode;
    uint64_t entry, rsp, rbx, rsi; /* rbx: PVH start info; rsi: zero page for 64-bit Linux */
    uint16_t real_cs;              /* real mode: CS selector (base = cs*16), ip = entry */
};

struct kvm_vm {
    int kvm_fd, vm_fd;
    int run_size;
    struct guest_mem mem;
    struct bus pio, mmio;
    struct dev_host host; /* what the devices see of this machine (host_kvm.c) */

    int ncpus;
    struct kvm_vcpu vcpus[KVM_VM_MAX_CPUS];
    int hide_xsave;
    /* Map the kernel's ELF segments and the initrd from their files
     * (guest_mem__map_file) instead of copying them: the VMM starts without touching
     * 15 MB and the page cache is shared by every box, but the guest then reaches those
     * pages through 4 KiB host pages, one EPT fault each, plus a copy-on-write fault for
     * every page it writes (its data, the text its boot patches, the initrd it frees),
     * where copied pages sit in 2 MiB huge pages. Measured in the nested lane, boot to
     * READY is slower mapped (bench/RESULTS.md), so copying is the default. */
    int map_kernel;
    uint64_t mapped_bytes; /* kernel and initrd bytes mapped from their files, not copied */
    /* full snapshots (cpustate.c, snapfile.c) */
    int restoring;           /* started from a saved state: no boot tables, no boot registers */
    int has_xsave, has_xcrs; /* KVM_CAP_XSAVE, KVM_CAP_XCRS */
    uint32_t *msr_idx;       /* KVM's MSR list, read before the system call filter */
    uint32_t n_msr_idx;
    uint32_t msrs_refused; /* saved MSRs the new VM did not take (logged) */
    /* a restored VM's RAM file, kept for a later capture (snapfile.c: pages never touched
     * in the file's holes are zero without reading them, on a host without swap); -1 */
    int snap_src_fd, host_swap;
    uint64_t snap_src_off;
    struct kvm_boot_state boot;

    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;
    int pause_req, paused, running_threads;
    enum kvm_stop_reason stop_reason;
    char stop_detail[160];
    int stop_efd; /* eventfd: becomes readable when the VM stops */

    /* I/O thread (io.c) */
    int io_epfd, io_wake_efd, io_call_efd;
    void (*io_call_fn)(void *); /* kvm_io__call's function, under lock */
    void *io_call_arg;
    pthread_t io_thread;
    int io_started;
};

/* kvm_vm.c */
int kvm_vm__create(struct kvm_vm *vm, uint64_t mem_bytes, int hugepages, int ncpus, char *err, size_t errcap);
/* Closes the vCPU and VM fds and frees guest memory; after the threads ended. */
void kvm_vm__destroy(struct kvm_vm *vm);
/* Sets an interrupt line (GSI) level through KVM_IRQ_LINE. Thread-safe. */
void kvm_vm__irq_line(struct kvm_vm *vm, int gsi, int level);
/* Records why the VM stops (first reason wins) and kicks every vCPU out of KVM_RUN. */
void kvm_vm__request_stop(struct kvm_vm *vm, enum kvm_stop_reason why, const char *detail);
/* Why the VM stopped, VM_RUNNING while it runs; and that reason in words. */
enum kvm_stop_reason kvm_vm__stopped(struct kvm_vm *vm);
const char *kvm_vm__stop_name(enum kvm_stop_reason r);

/* kvm_vcpu.c */
int kvm_vcpu__create_all(struct kvm_vm *vm, char *err, size_t errcap);
/* Starts one thread per vCPU into KVM_RUN (boot state from vm->boot). -1 with err set. */
int kvm_vcpu__start_all(struct kvm_vm *vm, char *err, size_t errcap);
/* Parks every vCPU outside KVM_RUN; returns when all are parked (or the VM stopped). */
void kvm_vcpu__pause_all(struct kvm_vm *vm);
/* Lets parked vCPUs run again. */
void kvm_vcpu__resume_all(struct kvm_vm *vm);
/* Waits for all vCPU threads to end (after a stop request). */
void kvm_vcpu__join_all(struct kvm_vm *vm);

/* kvm_cpuid.c: the CPUID template for vCPU `id`. */
int kvm_cpuid__apply(struct kvm_vm *vm, struct kvm_vcpu *c, char *err, size_t errcap);

/* kvm_regs.c: initial register state of the boot vCPU, boot MSRs, LAPIC LINT pins. */
int kvm_regs__setup(struct kvm_vm *vm, struct kvm_vcpu *c, char *err, size_t errcap);

/* kvm_io.c: one epoll thread for device fds. */
int kvm_io__start(struct kvm_vm *vm, char *err, size_t errcap);
/* events: EPOLLIN/EPOLLOUT; 0 leaves the fd registered but quiet. */
int kvm_io__watch(struct kvm_vm *vm, int fd, uint32_t events, struct dev_io_entry *entry);
/* Changes the events of an fd already watched (0: registered but quiet). */
int kvm_io__rewatch(struct kvm_vm *vm, int fd, uint32_t events, struct dev_io_entry *entry);
/* Runs fn(arg) on the I/O thread and waits for it (a thread-local step such as the I/O
 * role's seccomp filter). -1 when the thread is not running. */
int kvm_io__call(struct kvm_vm *vm, void (*fn)(void *), void *arg);
/* Stops and joins the I/O thread; no callback runs after it returns. */
void kvm_io__stop(struct kvm_vm *vm);

/* host_kvm.c: vm->host, the devices' view of this machine. */
void kvm_vm__init_host(struct kvm_vm *vm);

#endif
