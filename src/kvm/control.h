/* The kvm VMM's control channel (control.c): the part of QMP the monitor uses on the
 * qemu backend (qmp.c), spoken by our own VMM on the same fd, so live snapshots and
 * forks drive both backends the same way: stop, cont, query-status, getfd, migrate to
 * an fd (our snapshot file, snapfile.h), query-migrate, and x-cocoon-disk-overlay (the
 * disk goes on in a new layer). Runs on the I/O thread. */
#ifndef COCOON_KVM_CONTROL_H
#define COCOON_KVM_CONTROL_H

#include <stddef.h>

#include "kvm/dev/host.h"

#define CONTROL_LINE_MAX (16u * 1024)
#define CONTROL_MAX_FDS 4

struct kvm_machine;

struct kvm_control {
    struct kvm_machine *m;
    int fd;
    struct dev_io_entry io;
    char buf[CONTROL_LINE_MAX];
    size_t len;
    int pending_fd;                /* received with the bytes of the command being read */
    int named_fd[CONTROL_MAX_FDS]; /* getfd */
    char fd_name[CONTROL_MAX_FDS][32];
    int paused;
    char migrate_status[16]; /* "none", "completed", "failed" */
    char migrate_error[256];
};

/* Watches fd (the monitor's CHILD_QMP_FD) on the machine's I/O thread and sends the
 * greeting. -1 with err set. */
int kvm_control__start(struct kvm_control *c, struct kvm_machine *m, int fd, char *err, size_t cap);
/* Closes every fd it holds; after the I/O thread stopped. */
void kvm_control__close(struct kvm_control *c);
/* One command line (no newline), answered on c->fd: the channel's parser, for tests
 * and the fuzzer too. */
void kvm_control__command(struct kvm_control *c, const char *line, size_t len);

#endif
