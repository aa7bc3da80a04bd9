/* A kvm-backend full snapshot as one file (snapfile.c): a header, the saved-state
 * stream (vCPUs, VM, devices) and guest RAM at an aligned offset, written sparse (pages
 * of zeros are holes). A restore maps the RAM part privately: pages load on demand
 * from the page cache, and every box started from the same file shares them until it
 * writes. This is the kvm backend's memory.state (the qemu backend's is a QEMU
 * migration stream). */
#ifndef COCOON_KVM_SNAPFILE_H
#define COCOON_KVM_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "kvm/snap.h"

#define SNAPFILE_MAGIC "COCOON-KVMSTATE"
#define SNAPFILE_VERSION 1u
#define SNAPFILE_HEADER_BYTES 4096u
#define SNAPFILE_RAM_ALIGN (2u << 20)

struct kvm_machine;

struct snapfile_info {
    uint32_t ncpus;
    uint64_t mem_bytes;
    uint64_t state_off, state_len, ram_off;
    uint64_t ram_written; /* bytes of RAM that were not zero (save only) */
};

/* Saves the paused machine into fd (truncated first): the state, then RAM. Runs on the
 * I/O thread with every vCPU paused. -1 with err set (the file is then incomplete: the
 * caller throws it away). */
int kvm_snapfile__save(struct kvm_machine *m, int fd, struct snapfile_info *info, char *err, size_t cap);
/* Guest RAM into fd at ram_off: region by region at their offsets in the flat RAM
 * image, runs of non-zero pages written, zero pages left as holes (a restored machine's
 * untouched holes are not even read: snapfile.c). -1 with err set. */
struct kvm_vm;
int kvm_snapfile__write_ram(struct kvm_vm *vm, int fd, uint64_t ram_off, uint64_t *written, char *err, size_t cap);
/* Reads and checks the header and the state stream of fd: *state gets a malloc'd copy
 * (free it), for a box of ncpus vCPUs and mem_bytes of RAM. -1 with err set when the file
 * is not such a snapshot, is cut short, or was made for another shape of box. */
int kvm_snapfile__open(int fd, uint32_t ncpus, uint64_t mem_bytes, struct snapfile_info *info, uint8_t **state,
                       char *err, size_t cap);
/* Puts the state back on a machine created with vm.restoring set (RAM already mapped
 * from the file by kvm_snapfile__map_ram): vCPUs, VM, devices. */
int kvm_snapfile__restore(struct kvm_machine *m, const uint8_t *state, size_t len, char *err, size_t cap);
/* Maps the file's RAM over the machine's guest memory, privately. */
int kvm_snapfile__map_ram(struct kvm_machine *m, int fd, const struct snapfile_info *info, char *err, size_t cap);

#endif
