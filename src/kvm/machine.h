/* A whole kvm-backend machine: VM, vCPUs, COM1, reset ports and the virtio-mmio
 * devices at fixed slots (rng 0xd0000000 irq 5, blk 0xd0001000 irq 6, console
 * 0xd0002000 irq 7, net 0xd0003000 irq 10: line 8 is the CMOS RTC's on a PC, which a
 * kernel may claim unshared), booted as Linux (PVH ELF, or bzImage 64-bit entry) or as
 * a flat micro-guest. */
#ifndef COCOON_KVM_MACHINE_H
#define COCOON_KVM_MACHINE_H

#include "kvm/dev/legacy.h"
#include "kvm/dev/virtio.h"
#include "kvm/boot.h"
#include "kvm/control.h"
#include "kvm/snap.h"
#include "kvm/vm.h"

#define KVM_SLOT_RNG 0
#define KVM_SLOT_BLK 1
#define KVM_SLOT_CONSOLE 2
#define KVM_SLOT_NET 3
#define KVM_NET_IRQ 10

struct kvm_machine_opts {
    uint64_t mem_bytes;
    int cpus;
    int hide_xsave;
    int map_kernel;   /* map the kernel and initrd from their files instead of copying them (vm.h) */
    int no_hugepages; /* guest RAM on small pages only (kvm_mem.c) */
    /* Linux: kernel (ELF vmlinux with a PVH note), optional initrd, base command line */
    const char *kernel, *initrd, *cmdline;
    /* or a micro-guest: flat binary at flat_gpa entered in flat_mode */
    const char *flat;
    uint64_t flat_gpa;
    enum kvm_boot_mode flat_mode;
    int console_fd;                 /* serial output; -1 discards it */
    const char *disk, *disk_format; /* NULL: no virtio-blk */
    int disk_ro;
    int agent_fd; /* -1: no virtio-console */
    int rng;
    int net_fd;     /* the network link; -1: no virtio-net */
    uint8_t mac[6]; /* virtio-net's MAC */
    int ioeventfd;  /* virtio notifications through KVM_IOEVENTFD where KVM has it */
    int irqfd;      /* virtio interrupts through KVM_IRQFD where KVM has it */
    int control_fd; /* the monitor's QMP-subset channel (control.h); -1: none */
    int restore_fd; /* a full snapshot (snapfile.h) to start from instead of booting; -1: boot */
};

struct kvm_machine {
    struct kvm_vm vm;
    struct uart uart;
    struct reset_dev rst;
    struct virtio_rng rng;
    struct virtio_blk blk;
    struct virtio_console con;
    struct virtio_net net;
    int has_rng, has_blk, has_con, has_net;
    int ioeventfds; /* queues whose notifications go through an ioeventfd */
    int irqfds;     /* devices whose interrupt goes through an irqfd */
    char cmdline[4096];
    struct kvm_control ctl;
    int has_ctl;
    double restore_ms; /* a restore's time from the file's header to the state set */
};

/* Builds the machine of o (VM, memory, devices, boot state, vCPUs not yet running).
 * On failure -1 with err set; call kvm_machine__destroy either way. */
int kvm_machine__create(struct kvm_machine *m, const struct kvm_machine_opts *o, char *err, size_t errcap);
/* Starts the vCPUs. */
int kvm_machine__start(struct kvm_machine *m, char *err, size_t errcap);
/* Waits until the VM stops or timeout_ms passes (then stops it; <0 waits forever),
 * joins the vCPUs and returns why it stopped. */
enum kvm_stop_reason kvm_machine__wait(struct kvm_machine *m, int timeout_ms);
/* 1 once the VM has stopped (then call kvm_machine__wait), 0 after timeout_ms. */
int kvm_machine__poll_stop(struct kvm_machine *m, int timeout_ms);
/* Stops what runs, joins the threads, closes every device and the VM. Safe on a
 * machine that failed halfway through kvm_machine__create. */
void kvm_machine__destroy(struct kvm_machine *m);
/* The kvm VMM's system call filters (src/jail): before start, the one every thread
 * shares (devices, KVM's run loop); after start, the I/O and main threads lose KVM_RUN.
 * A forbidden call ends the process with a line on report_fd. -1 with a message. */
int kvm_machine__lock_down(struct kvm_machine *m, int report_fd, char *err, size_t errcap);
int kvm_machine__lock_roles(struct kvm_machine *m, int report_fd, char *err, size_t errcap);

/* The devices' saved state (devstate.c, over kvm/snap.h): one section tagged DEVS with
 * the set of devices and one section per device the machine has. Save with every vCPU
 * paused, on the I/O thread (no device callback runs): -1 with err set when a device
 * cannot be saved now (the agent channel mid-frame: try again), the disk's metadata
 * cannot be written or the writer ran out of room (w then ends in a partial section:
 * discard it). Load from a reader over the stream that holds the DEVS section (it is found
 * among r's top-level sections) into a machine just created with the same devices,
 * whose guest memory holds the restored RAM, after the irqchip state is restored and
 * before the vCPUs start: -1 with err set when the state is
 * malformed or does not fit this machine (another set of devices, another disk size);
 * the machine is then unusable (destroy it). */
#define KVM_SNAP_TAG_DEVS SNAP_TAG('D', 'E', 'V', 'S')
#define KVM_SNAP_TAG_UART SNAP_TAG('u', 'a', 'r', 't')
#define KVM_SNAP_TAG_RESET SNAP_TAG('r', 's', 't', ' ')
#define KVM_SNAP_TAG_RNG SNAP_TAG('v', 'r', 'n', 'g')
#define KVM_SNAP_TAG_BLK SNAP_TAG('v', 'b', 'l', 'k')
#define KVM_SNAP_TAG_CON SNAP_TAG('v', 'c', 'o', 'n')
#define KVM_SNAP_TAG_NET SNAP_TAG('v', 'n', 'e', 't')
int kvm_devstate__save(struct kvm_machine *m, struct snap_w *w, char *err, size_t errcap);
int kvm_devstate__load(struct kvm_machine *m, struct snap_r *r, char *err, size_t errcap);

#endif
