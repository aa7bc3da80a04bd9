/* The jail of a box's host processes (cocoon-vmm, and the VMM child it starts: QEMU or
 * our kvm VMM). A guest that breaks out of its VM lands in a process that sees only its
 * box directory, holds no capability, cannot gain one, cannot start programs, has its
 * resources bounded, and may call only the system calls its role needs.
 *
 * The steps, in the order the monitor takes them:
 *   jail_enter      new user, mount, IPC, UTS and PID namespaces (where the host allows
 *                   them); an empty root holding only the box directory, the files the
 *                   VMM reads (kernel, initrd, disk chain, its binary and libraries) and
 *                   the devices it needs; a cgroup v2 per box where one is delegated
 *   jail_child      in the forked child before exec: its own empty network namespace,
 *                   then what jail_lock does
 *   jail_lock       capabilities dropped (all sets), no_new_privs, rlimits
 *   jail_seccomp_*  the role's system call filter (seccomp.c)
 * COCOON_JAIL=0 in the monitor's environment turns all of it off (for debugging and for
 * the benchmark that measures what it costs). */
#ifndef COCOON_JAIL_JAIL_H
#define COCOON_JAIL_JAIL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JAIL_MAX_PATHS 32

/* What a jail holds besides the empty root: each path is bound at the same absolute
 * path inside, so command lines and config.json need no rewriting. */
struct jail_bind {
    char path[PATH_MAX];
    int writable;
    int device; /* a device node (/dev/kvm, /dev/null): bound without nodev */
};

struct jail_plan {
    int enabled;
    char box_dir[PATH_MAX];
    char box_id[64];
    struct jail_bind binds[JAIL_MAX_PATHS];
    int nbinds;
    uint64_t mem_bytes;     /* guest RAM, for the cgroup's memory.max */
    uint64_t child_fsize;   /* RLIMIT_FSIZE of the child (the disk grows up to its size) */
    uint64_t monitor_fsize; /* RLIMIT_FSIZE of the monitor (its logs) */
};

/* What jail_enter managed, for vmm.log and `cocoon doctor`. */
struct jail_state {
    int userns, mountns, pidns, ipcns, utsns, pivoted;
    int cgroup; /* the box has a cgroup of its own */
    char cgroup_path[PATH_MAX];
    char why_not[512]; /* what the host did not allow, in words */
};

/* Host-side overhead allowed on top of guest RAM in the box's cgroup: QEMU or the kvm
 * VMM, the monitor, the network stack's budget and the page cache of the box's files. */
#define JAIL_CGROUP_OVERHEAD (384ull << 20)
/* Processes and threads in the box's cgroup: vCPU threads, QEMU's helpers, the monitor. */
#define JAIL_CGROUP_PIDS 128

/* Whether the jail is wanted: on unless COCOON_JAIL=0. */
int jail_wanted(void);
/* Fills the plan from the environment (COCOON_JAIL) and the box. */
void jail_plan_init(struct jail_plan *p, const char *box_dir, const char *box_id, uint64_t mem_bytes);
/* Adds a path to bind (its parents are created inside). -1 when the plan is full or the
 * path is not absolute. */
int jail_plan_add(struct jail_plan *p, const char *path, int writable, int device);
/* The system directories a dynamically linked VMM needs (/usr, /lib, ...: read-only). */
int jail_plan_add_system(struct jail_plan *p);

/* In the monitor, before the child is started. Namespaces the host refuses are left
 * out and said in st->why_not (the box still runs, with the rest of the jail); a
 * failure after a namespace was entered is an error (-1 with a message). */
int jail_enter(const struct jail_plan *p, struct jail_state *st, char *err, size_t cap);
/* No capabilities, no_new_privs, rlimits (fsize: RLIMIT_FSIZE). -1 with a message. */
int jail_lock(uint64_t fsize, char *err, size_t cap);
/* In the forked child, before exec (async-signal-safe calls only): an empty network
 * namespace, then jail_lock's steps. Returns -1 (errno set) on failure. */
int jail_child(uint64_t fsize);

/* The box's cgroup (when one was made: a delegated cgroup v2), removed with the box.
 * Quiet when there is none or it is still in use. */
void jail_cgroup_remove(const char *box_id);

/* ---- seccomp.c ---- */

enum jail_role {
    JAIL_ROLE_MONITOR, /* the monitor's one thread: control socket, agent channel, network */
    JAIL_ROLE_KVM,     /* every thread of the kvm VMM: vCPUs, device I/O */
    JAIL_ROLE_KVM_IO,  /* added on the kvm VMM's I/O and main threads: no KVM_RUN */
};

/* Installs the role's filter on the calling thread (and, for JAIL_ROLE_KVM, on every
 * thread of the process). A forbidden call stops the process with one line on
 * report_fd naming the call. allow_pid/allow_pgid: the only processes the monitor may
 * signal besides itself (its child). -1 with a message. */
int jail_seccomp(enum jail_role role, int report_fd, pid_t allow_pid, char *err, size_t cap);
/* The exit status of a process stopped by its filter. */
#define JAIL_SECCOMP_EXIT 159

/* ---- probe.c: what this host allows, for `cocoon doctor` ---- */
struct jail_probe {
    int userns, mountns, pidns, netns, seccomp, cgroup2;
    char detail[512];
};
/* Fills p by trying each namespace in a throwaway child process (no side effect). */
void jail_probe(struct jail_probe *p);

#endif
