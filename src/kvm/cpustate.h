/* The KVM half of a full snapshot (cpustate.c): vCPU and VM state into and out of the
 * saved-state stream (snap.h). */
#ifndef COCOON_KVM_CPUSTATE_H
#define COCOON_KVM_CPUSTATE_H

#include <stddef.h>

#include "kvm/snap.h"
#include "kvm/vm.h"

/* KVM's MSR list into vm->msr_idx (before the system call filter: the list is read from
 * /dev/kvm's fd). -1 with err set. */
int kvm_cpustate__msr_list(struct kvm_vm *vm, char *err, size_t cap);
/* Every vCPU (paused) and the VM's interrupt controllers, PIT and clock. */
int kvm_cpustate__save(struct kvm_vm *vm, struct snap_w *w, char *err, size_t cap);
/* Sets them on vm, whose vCPUs exist and have not run. -1 with err set. */
int kvm_cpustate__load(struct kvm_vm *vm, struct snap_r *all, char *err, size_t cap);

#endif
