/* The monitor's backends: what runs the guest (QEMU, or our own VMM on /dev/kvm).
 * Both are a child process with the agent channel on fd 3 and the network link on fd
 * 4; a backend only decides the child's command line. Everything around the child
 * (spawn, output, handshake, stop, network) is the monitor's and written once. */
#ifndef COCOON_MONITOR_BACKEND_H
#define COCOON_MONITOR_BACKEND_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "boxcfg/config.h"

/* The agent channel's end inside the child always has this number. */
#define CHILD_AGENT_FD 3
/* The network link inside the child (4-byte big-endian length + Ethernet frame, QEMU's
 * `-netdev stream` framing), when the box has networking. */
#define CHILD_NET_FD 4
/* The guest's serial console: the monitor writes it to console.log, bounded. */
#define CHILD_CONSOLE_FD 5
/* QEMU's QMP socket (qemu backend only): the monitor keeps the other end (qmp.c). */
#define CHILD_QMP_FD 6
/* A fork's saved memory and device state (`-incoming fd:7`, qemu backend only). */
#define CHILD_INCOMING_FD 7
#define CHILD_MAX_ARGS 64
#define KERNEL_CMDLINE_MAX 1024

struct child_plan {
    char bin[PATH_MAX];
    char accel[8]; /* "kvm" or "tcg": what was chosen */
    char accel_reason[320];
    char *argv[CHILD_MAX_ARGS + 1];
    int argc;
};

struct backend {
    const char *name;  /* as in config.json: "qemu" or "kvm" */
    const char *child; /* how messages name the child: "QEMU", "the kvm VMM" */
    /* The guest's reboot=: how its power-off reaches us (a triple fault must stay an
     * error on the kvm backend, so it takes the i8042 path there). */
    char reboot;
    /* Decides the accelerator (plan->accel, accel_reason). -1 with a message. */
    int (*accel)(struct child_plan *p, const struct box_config *cfg, char *err, size_t errcap);
    /* Builds argv for the box; cmdline is the kernel command line. -1 with a message. */
    int (*plan)(struct child_plan *p, const struct box_config *cfg, const char *box_dir, const char *cmdline, char *err,
                size_t errcap);
};

extern const struct backend backend_qemu, backend_kvm;

/* The backend of cfg->backend, with "auto" resolved (kvm where /dev/kvm can run a stock
 * kernel, or COCOON_FORCE_KVM=1). why gets the reason for the log. NULL with a message
 * in err when "kvm" was asked for and cannot run. */
const struct backend *backend_choose(struct box_config *cfg, char *why, size_t whycap, char *err, size_t errcap);

/* The whole plan: accelerator, kernel command line (cmdline.c), argv. */
int child_plan_build(struct child_plan *p, const struct backend *b, const struct box_config *cfg, const char *box_dir,
                     char *err, size_t errcap);
/* Appends one argument (printf format); -1 when argv is full or out of memory. */
int child_plan_add(struct child_plan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees argv (the plan can be built again). */
void child_plan_free(struct child_plan *p);
/* argv joined with spaces, for the log. */
void child_plan_describe(const struct child_plan *p, char *out, size_t cap);

/* The kernel command line for a box (cmdline.c): console, reboot path, root disk, the
 * network the agent configures, and the TCG clock flags. -1 when it does not fit. */
int kernel_cmdline(char *out, size_t cap, const struct backend *b, const struct box_config *cfg, const char *accel);

/* The child's ends of its channels, placed at the fds above. */
struct child_fds {
    int agent, net, console;  /* net -1: no network device */
    int qmp;                  /* -1: none (the kvm backend) */
    int incoming;             /* -1: a cold boot */
    int out;                  /* the child's stdout and stderr */
    int jail;                 /* lock the child in (jail_child) before exec */
    unsigned long long fsize; /* its RLIMIT_FSIZE then */
};

/* Forks and execs the child with cwd = the box directory (dirfd), stdin /dev/null,
 * stdout and stderr on fds->out, its channels at CHILD_*_FD, in its own process group,
 * with PR_SET_PDEATHSIG(SIGKILL) and no other fds. Returns the pid, or -1 with err set. */
pid_t child_spawn(const struct child_plan *p, int dirfd, const struct child_fds *fds, char *err, size_t errcap);

#endif
