/* The kvm backend's child: cocoon-vmm re-executed by the monitor as
 * `cocoon-vmm --kvm-run DIR CMDLINE`, running the box's machine on /dev/kvm with the
 * monitor's channels on the fds of monitor/backend.h (agent, network link, console). */
#ifndef COCOON_KVM_MAIN_H
#define COCOON_KVM_MAIN_H

/* Runs the machine of DIR/config.json with the kernel command line cmdline (the
 * monitor's; the virtio_mmio.device= entries are appended here). Exits 0 when the guest
 * reset or powered off, 1 with a message on stderr otherwise. */
int kvm_run_main(const char *box_dir, const char *cmdline);

#endif
