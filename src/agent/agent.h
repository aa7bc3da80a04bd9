/* Shared declarations of cocoon-agent, the guest's PID 1: boot helpers, the session
 * with the host over the virtio port, and the exec table. One thread, one poll loop;
 * nothing here blocks except the short fork/exec handshake of a new command. */
#ifndef COCOON_AGENT_H
#define COCOON_AGENT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "proto/conn.h"
#include "proto/proto.h"

#define AGENT_VERSION "0.1.0"
#define AGENT_PORT_NAME "cocoon.agent"
/* Enough for many concurrent tools; each exec holds at most seven fds (three pipes, two
 * held write ends, its cgroup and cgroup.events), within the 4096 the kernel gives PID 1. */
#define AGENT_MAX_EXECS 256
/* Stop reading command output while this much waits for the host, so the
 * connection's queue (hard limit AGENT_OUT_LIMIT) always has room for control frames. */
#define AGENT_OUT_HIGH (1024u * 1024u)
#define AGENT_OUT_LIMIT (8u * 1024u * 1024u)
#define NS_PER_MS 1000000ull
#define NS_PER_SEC 1000000000ull

/* ---- log.c ---- */
uint64_t clock_ns(clockid_t id);
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs "fatal: ...", then reboots: with reboot=t and -no-reboot QEMU exits and the
 * host reports the console tail. */
_Noreturn void agent_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Flushes disks, makes the root read-only and reboots (never returns). */
_Noreturn void agent_reboot(void);

/* ---- trace.c ---- */
/* Per-exec phase stamps (CLOCK_MONOTONIC ns), taken only with cocoon.trace=exec. */
enum trace_phase {
    TRACE_RECEIVED, /* the poll round that read the EXEC began */
    TRACE_DECODED,
    TRACE_USER,     /* user resolved, environment built */
    TRACE_PIPES,    /* pipes or pty made */
    TRACE_FORKED,   /* the fork returned in the agent */
    TRACE_EXECED,   /* the child's execve passed the point of no return */
    TRACE_STARTED,  /* STARTED sent */
    TRACE_REAPED,   /* waitpid saw it end */
    TRACE_DRAINED,  /* its output pipes at EOF */
    TRACE_EXIT,     /* EXIT sent */
    TRACE_RELEASED, /* its cgroup kept for reuse or removed (after EXIT) */
    TRACE_PHASES
};
struct exec_trace {
    uint64_t at[TRACE_PHASES];
    char program[24]; /* the last component of argv[0], cut */
};
#define TRACE_FILE "/run/cocoon-agent-trace"
extern int agent_trace;
/* Starts the trace of an exec: the time its EXEC was read, and what it runs. */
void trace_begin(struct exec_trace *t, uint64_t received, const char *argv0);
void trace_mark(struct exec_trace *t, enum trace_phase p);
/* Appends the exec's phases (µs after its EXEC was read) to TRACE_FILE once it ended. */
void trace_report(uint32_t stream, const struct exec_trace *t);

/* ---- mounts.c ---- */
struct boot_opts {
    char root[256];
    char fstype[32];
};
void boot_parse_cmdline(struct boot_opts *o);
void boot_early_mounts(void);
void boot_switch_root(const struct boot_opts *o);
void boot_late_mounts(void);

/* ---- net.c ---- */
void net_loopback_up(void);

/* ---- port.c ---- */
/* Opens the virtio port named AGENT_PORT_NAME, waiting up to timeout_ms for it. */
int port_open(unsigned timeout_ms);

/* ---- user.c ---- */
#define USER_MAX_GROUPS 64
struct user_cred {
    uid_t uid;
    gid_t gid;
    gid_t groups[USER_MAX_GROUPS];
    int ngroups;
    char home[256];
};
/* Resolves "" (root), "name", "uid", "name:group" or "uid:gid" against the guest's
 * /etc/passwd and /etc/group. 0, or -1 with a message in err. */
int user_resolve(const char *spec, struct user_cred *out, char *err, size_t errlen);

/* ---- clone.c ---- */
/* A child born in cgroup_fd (-1: the agent's own): like fork() (0 in the child), or
 * running fn(arg) on a stack of its own while sharing the agent's memory until it
 * execs or exits, the agent waiting (vfork); -1 with errno, ENOSYS where the vfork kind
 * does not exist (or the kernel has no clone3). */
pid_t clone_fork(int cgroup_fd);
pid_t clone_vfork(int cgroup_fd, int (*fn)(void *), void *arg);

/* ---- cgroup.c ---- */
/* Creates /sys/fs/cgroup/execs with memory and pids limits (after cgroup2 is mounted). */
void cgroup_setup(void);
/* A command's cgroup under execs: its number, open directory and cgroup.events (0 and
 * -1: none). */
struct cmd_cgroup {
    unsigned long id;
    int fd, events_fd;
};
/* Forks like fork(), the child born in a cgroup of its own under execs, which cg
 * receives; the caller owes it a cgroup_release, even when the fork failed. */
pid_t cgroup_fork(struct cmd_cgroup *cg);
/* The same for a child that only runs fn(arg), which must exec or _exit: it shares the
 * agent's memory until then, and the agent waits (vfork), where clone.c can. fn may
 * not change anything of the agent's but through the system calls it makes. */
pid_t cgroup_vfork(struct cmd_cgroup *cg, int (*fn)(void *), void *arg);
/* The command of cg ended (its EXIT is sent): the cgroup serves a later command when
 * nothing runs in it any more, else it is removed (once empty). */
void cgroup_release(struct cmd_cgroup *cg);

/* ---- spawn.c ---- */
struct spawn_result {
    pid_t pid;
    int in_fd, out_fd, err_fd; /* err_fd is -1 for a tty (stderr goes to the pty) */
    int pty_fd;                /* master, -1 without a tty; also out_fd for a tty */
    struct cmd_cgroup cg;      /* its cgroup, for cgroup_release (also after a failure) */
    int out_hold, err_hold;    /* see struct exec; -1 for a tty */
    int err_code;              /* errno of a failed start, 0 when running */
    char message[512];         /* what failed, for the ERROR frame */
};
/* Forks and execs the command; the child reports any failure before exec through a
 * close-on-exec pipe, so a result with err_code == 0 means the program is running. */
void spawn_exec(const struct proto_exec *m, struct spawn_result *r, struct exec_trace *trace);
void spawn_set_base_nofile(unsigned long soft);

/* ---- exec.c ---- */
struct exec {
    struct exec *next;
    uint32_t stream;
    pid_t pid; /* also the process group: the child calls setsid() */
    int tty;
    int in_fd, out_fd, err_fd; /* for a tty: out_fd is the pty master, in_fd a dup of it */
    /* The agent's copies of the write ends of out_fd and err_fd (-1 for a tty or a
     * transfer), closed when the command is reaped: so its exit wakes the agent once
     * (SIGCHLD), not once more for the end of its output just before. */
    int out_hold, err_hold;
    uint64_t out_credit;
    uint8_t *in_buf; /* ring of in_cap bytes, allocated on first STDIN */
    size_t in_cap, in_head, in_len;
    int in_eof;     /* the host sent STDIN_EOF */
    int in_discard; /* the child closed its stdin: swallow further input */
    int exited, status;
    int orphan; /* its host stream is gone (the guest was restored in a fork): output is read and dropped, no EXIT */
    uint64_t deadline; /* CLOCK_MONOTONIC ns, 0 = no timeout */
    int timed_out;
    uint64_t killed_at;
    struct cmd_cgroup cg; /* released after EXIT */
    struct exec_trace trace;
};

struct agent;
/* received: CLOCK_MONOTONIC ns at which the poll round that read the EXEC began. */
void exec_start(struct agent *a, uint32_t stream, const uint8_t *p, size_t n, uint64_t received);
/* Whether a new exec or transfer may start on stream: 1, or 0 after answering the host
 * (the stream is in use, or too_many: too many are running). */
int exec_may_start(struct agent *a, uint32_t stream, const char *too_many);
/* Refuses a stream that never started: ERROR (code, msg), then EXIT 127 for ENOENT, else
 * 126, so the host has one rule for how a stream ends. */
void exec_refuse(struct agent *a, uint32_t stream, int code, const char *msg);
struct exec *exec_find(struct agent *a, uint32_t stream);
void exec_on_stdin(struct agent *a, struct exec *e, const uint8_t *p, size_t n);
void exec_on_stdin_eof(struct agent *a, struct exec *e);
void exec_on_credit(struct exec *e, uint32_t bytes);
void exec_on_signal(struct exec *e, uint32_t sig);
void exec_on_resize(struct exec *e, uint32_t rows, uint32_t cols);
void exec_on_reaped(struct agent *a, pid_t pid, int status);
/* Fires timeouts and finishes execs that are done; returns the nearest deadline
 * (CLOCK_MONOTONIC ns) still pending, or 0. */
uint64_t exec_tick(struct agent *a, uint64_t now);
/* Poll registration: exec_poll_add appends what each exec waits for; after poll,
 * exec_poll_handle acts on the returned events. */
struct poll_slot {
    struct exec *e;
    int which; /* 0 stdin, 1 stdout, 2 stderr */
};
size_t exec_poll_add(struct agent *a, struct pollfd *fds, struct poll_slot *slots, size_t cap);
void exec_poll_handle(struct agent *a, struct pollfd *fds, struct poll_slot *slots, size_t n);

/* Registers a process the agent forked itself (files.c) as an exec stream: its pipes
 * get the same credits, SIGNAL and EXIT as a command's. Sends STARTED; NULL when out
 * of memory (nothing was sent). in_fd/out_fd may be -1. */
struct exec *exec_adopt(struct agent *a, uint32_t stream, pid_t pid, int in_fd, int out_fd, int err_fd, uint32_t window,
                        const struct cmd_cgroup *cg);

/* ---- files.c ---- */
/* FILE_PUT / FILE_GET: forks the transfer child and adopts it as an exec stream. */
/* FILE_PUT, FILE_GET and FILE_OP streams. */
void files_start(struct agent *a, uint32_t stream, uint16_t type, const uint8_t *p, size_t n);
/* Runs run(rootfd, arg) in a forked child adopted as an exec on stream: its stdin (put)
 * or its stdout (!put) is a pipe the exec table moves under credits, its stderr the
 * diagnostics; it exits 0 when run returns. The child gets its own copy of arg. */
typedef void (*files_child_fn)(int rootfd, const void *arg);
void files_spawn(struct agent *a, uint32_t stream, int put, uint32_t window, files_child_fn run, const void *arg);
/* FILE_OP (fsops.c): stat, list, mkdir, remove or move of the proto_file_op at arg,
 * run by files_start like a FILE_GET, its answer written to stdout. */
void fsops_child(int rootfd, const void *arg);
/* The transfer itself (also used by tests on the host): a tar stream from in_fd
 * extracted at path, or path archived to out_fd; resolved inside rootfd. */
void files_put_run(int rootfd, const char *path, uint32_t flags, int in_fd);
void files_get_run(int rootfd, const char *path, uint32_t flags, int out_fd);

/* ---- stats.c ---- */
void stats_reply(struct agent *a, uint32_t stream, const uint8_t *p, size_t n);

/* ---- clock.c ---- */
/* Drift an EXEC corrects: more than a command's own start-up could explain. */
#define CLOCK_TOLERANCE_NS (1000ull * 1000 * 1000)
/* Sets the wall clock to the host's when it is more than tolerance_ns off (0: always). */
void clock_follow_host(uint64_t host_ns, uint64_t tolerance_ns);

/* ---- guestcfg.c ---- */
/* /etc/hosts: adds localhost and hostname lines when missing. */
void guestcfg_apply(const char *hostname);

/* trust.c: BOX_TRUST, the box's TLS interception CA installed into the image's trust
 * bundles, and the variables every command gets (the CA's paths, secret placeholders). */
void trust_apply(struct agent *a, const uint8_t *p, size_t n);
/* The BOX_ENV entries, NULL-terminated (empty before BOX_TRUST). */
char *const *trust_env(void);

/* ---- session.c ---- */
enum agent_phase { PHASE_HANDSHAKE, PHASE_SERVING, PHASE_SHUTDOWN };
struct agent {
    struct proto_conn conn;
    int port_fd;
    uint64_t port_retry_at; /* host absent: do not poll the port before this */
    int sig_fd;
    enum agent_phase phase;
    uint64_t init_ns;
    uint64_t shutdown_deadline;
    int no_children;
    int send_failed_logged;
    struct exec *execs;
    size_t nexecs;
    uint64_t thaw_at; /* the root file system is frozen (freeze.c) until then at most; 0: not frozen */
    int muted;        /* FREEZE with MUTE: nothing is sent until THAW or RESTORED (freeze.c) */
};
/* The one frame builder: the agent is single-threaded and sends each frame at once. */
extern struct proto_writer agent_w;
void session_send(struct agent *a, size_t frame_len);
void session_send_error(struct agent *a, uint32_t stream, uint32_t code, const char *msg);
void session_hello(struct agent *a);
void session_on_readable(struct agent *a, uint64_t now);
void session_reap(struct agent *a);
/* Shutdown progress; returns a deadline to wake up for, or 0. */
uint64_t session_tick(struct agent *a, uint64_t now);

/* ---- freeze.c ---- */
/* FREEZE from the host: sync and freeze the root file system (TIMEOUT_MS > 0), or thaw
 * it (0); answered by FROZEN. */
void freeze_on_request(struct agent *a, const uint8_t *p, size_t n, uint64_t now);
/* Thaws a root file system frozen past its deadline (the host went away); returns the
 * deadline to wake up for, or 0. */
uint64_t freeze_tick(struct agent *a, uint64_t now);
/* Thaws the root file system now (a shutdown must not sync a frozen one), and unmutes. */
void freeze_thaw(struct agent *a);
/* RESTORED: the guest runs again from a memory snapshot, in a new box (a fork). */
void freeze_on_restored(struct agent *a, const uint8_t *p, size_t n);
/* exec.c: every exec stream is forgotten (the host that opened it is another box's):
 * processes run on, their output is read and dropped, no EXIT is sent. */
size_t exec_forget_all(struct agent *a);

/* `cocoon-agent code-relay SOCKET` (relay.c): one code-interpreter run; exit status. */
int agent_code_relay(const char *sock_path);

#endif
