/* The kvm backend seen from the monitor: which backend a box gets, and the child
 * that runs it. The child is cocoon-vmm itself re-executed as `cocoon-vmm --kvm-run
 * DIR`, with the agent channel on fd 3 like QEMU's, so the monitor's process model,
 * boot handshake and stop paths are the same for both backends. */
#ifndef COCOON_VMM_BACKEND_KVM_H
#define COCOON_VMM_BACKEND_KVM_H

#include <stddef.h>

#include "vmm/config.h"
#include "vmm/qemu.h"

/* Turns cfg->backend "auto" into "kvm" or "qemu" and checks that "kvm" can run here
 * (a usable /dev/kvm, or COCOON_FORCE_KVM=1). why gets the reason for the log. -1
 * with a message in err when "kvm" was asked for and cannot run. */
int kvm_run_choose_backend(struct vmm_config *cfg, char *why, size_t whycap, char *err, size_t errcap);

/* The plan for the kvm child: argv = /proc/self/exe --kvm-run BOX_DIR. */
int kvm_run_plan(struct qemu_plan *p, const struct vmm_config *cfg, const char *box_dir, const char *why, char *err,
                 size_t errcap);

/* The child's main: runs the machine of DIR/config.json with the agent on fd 3 and
 * the serial console appended to DIR/console.log. Exits 0 when the guest reset or
 * powered off, 1 with a message on stderr otherwise. */
int kvm_run_main(const char *box_dir);

#endif
