/* The QEMU backend: which binary, which accelerator, the exact command line from
 * docs/internals.md, and starting QEMU as a child that dies with the monitor. */
#ifndef COCOON_VMM_QEMU_H
#define COCOON_VMM_QEMU_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "vmm/config.h"

/* The agent channel's end inside QEMU always has this number. */
#define QEMU_AGENT_FD 3
/* The network link (-netdev stream) inside QEMU, when the box has networking. */
#define QEMU_NET_FD 4
#define QEMU_MAX_ARGS 64

struct qemu_plan {
    char bin[PATH_MAX];
    char accel[8]; /* "kvm" or "tcg": what was chosen */
    char accel_reason[320];
    char *argv[QEMU_MAX_ARGS + 1];
    int argc;
    int net_fd; /* our socketpair end for QEMU_NET_FD; -1: no network device */
};

/* Finds QEMU, decides the accelerator and builds argv. -1 with a message in err. */
int qemu_plan_build(struct qemu_plan *p, const struct vmm_config *cfg, const char *box_dir, char *err, size_t errcap);
void qemu_plan_free(struct qemu_plan *p);
/* argv joined with spaces, for the log. */
void qemu_plan_describe(const struct qemu_plan *p, char *out, size_t cap);

/* Forks and execs QEMU with cwd = the box directory (dirfd), stdin /dev/null, stdout
 * and stderr on out_fd, agent_fd as QEMU_AGENT_FD, in its own process group, with
 * PR_SET_PDEATHSIG(SIGKILL) and no other fds. Returns the pid, or -1 with err set. */
pid_t qemu_spawn(const struct qemu_plan *p, int dirfd, int agent_fd, int out_fd, char *err, size_t errcap);

#endif
