/* The state of one cocoon-vmm process, shared by its parts: the event loop (loop.c),
 * the lifecycle table (lifecycle.c), the boot handshake (handshake.c), the control-socket
 * relay (mux.c), the network link (net_glue.c) and the console log (console_log.c).
 * One box, one process, one thread. */
#ifndef COCOON_MONITOR_MONITOR_H
#define COCOON_MONITOR_MONITOR_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "boxcfg/config.h"
#include "monitor/backend.h"
#include "monitor/qmp.h"
#include "proto/conn.h"
#include "proto/proto.h"

/* What an epoll event points at: every watched object starts with one of these. */
enum watch_kind {
    W_SIGNAL,
    W_TIMER,
    W_AGENT,
    W_LISTEN,
    W_CLIENT,
    W_LIFELINE,
    W_CHILD_OUT,
    W_CONSOLE,
    W_NET_LINK,
    W_NET_STACK,
    W_HEALTH,
    W_LIVESNAP
};
struct watch {
    enum watch_kind kind;
    int dead; /* closed earlier in this epoll batch: ignore its events */
};

/* The box's life (lifecycle.c holds the table of what each event does in each state). */
enum vmm_state { ST_BOOTING, ST_RUNNING, ST_STOPPING, ST_DONE, ST_COUNT };

struct mux;
struct console_log;
struct mainproc;
struct detached_set;
struct attachers;
struct health;
struct livesnap;

struct vmm {
    struct box_config cfg;
    const struct backend *backend;
    char box_dir[PATH_MAX];
    int dirfd;
    int parent_dirfd; /* boxes/, opened before the jail: to remove an ephemeral box's directory */
    char ctl_path[108];
    int pid_fd; /* vmm.pid, locked for our lifetime */
    int ready_fd, lifeline_fd;
    int secrets_fd; /* NAME=VALUE lines of the box's secrets (read and closed by net_glue_start), or -1 */
    int epfd, sigfd, timerfd, listen_fd;
    struct watch w_signal, w_timer, w_agent, w_listen, w_lifeline, w_child_out;

    struct child_plan plan;
    pid_t child_pid;
    int child_out_fd;      /* read end of the child's stdout/stderr pipe */
    char child_tail[1024]; /* the child's last output line(s), for boot errors */
    char child_line[512];  /* partial line being assembled */
    size_t child_line_len;
    int child_exited, child_status;

    int agent_fd;
    struct proto_conn agent;
    int agent_backlogged; /* clients are not read while the agent's queue is long */

    enum vmm_state state;
    int boot_stage; /* 0: waiting for HELLO, 1: waiting for READY */
    struct proto_hello hello;
    struct proto_ready ready;
    uint32_t version;
    uint64_t t_start, t_spawn;
    uint32_t ready_ms;

    int stop_requested; /* a client, a signal or the lifeline asked for the stop */
    int lifeline_gone;  /* the caller is gone: remove an ephemeral box at exit */
    int killed;         /* the child had to be killed */
    int failed;         /* something went wrong: exit 1 */
    int signals_seen;

    struct mux *mux;
    struct net_glue *net;          /* NULL without networking (net_glue.c) */
    struct console_log *console;   /* the guest's serial console (console_log.c) */
    struct mainproc *main;         /* the box's main process, NULL without one (mainproc.c) */
    struct detached_set *detached; /* detached execs (detached.c) */
    struct attachers *attach;      /* clients attached to the main process (attach.c), NULL before the first */
    struct health *health;         /* the box's health check, NULL without one (health.c) */
    struct proto_writer agent_w;   /* scratch for frames the monitor itself sends */
    struct qmp qmp;                /* QEMU's machine protocol (qemu backend; fd -1 otherwise) */
    struct livesnap *livesnap;     /* live snapshots (livesnap.c), NULL on the kvm backend */
    uint8_t *held;                 /* frames to the agent held back during a memory capture (vmm_hold_agent) */
    size_t held_len;
    int agent_hold;
    int restoring;  /* the child starts from a fork's memory state */
    int restore_fd; /* a fork's memory state to start from (livesnap.c), -1: a cold boot */
};

/* loop.c */
int vmm_watch(struct vmm *v, int fd, uint32_t events, struct watch *w);
int vmm_rewatch(struct vmm *v, int fd, uint32_t events, struct watch *w);
void vmm_unwatch(struct vmm *v, int fd);
void vmm_arm_timer(struct vmm *v, uint64_t ms); /* 0 disarms */
int vmm_run(struct vmm *v);
/* Reads the child's stdout/stderr into vmm.log (line by line, last lines kept for
 * boot errors); closes the pipe at EOF. */
void vmm_drain_child_output(struct vmm *v);
/* Queues a frame to the agent; a failed agent queue is fatal for the box. */
void vmm_send_agent(struct vmm *v, const void *frame, size_t len);
/* Frames sent to the agent between these two leave in one write (one wakeup of QEMU
 * and of the guest for a client's EXEC and STDIN_EOF). */
void vmm_cork_agent(struct vmm *v);
/* While held, frames to the agent are kept aside (the guest's memory is being captured
 * and must not hold half a frame); released in order afterwards. */
void vmm_hold_agent(struct vmm *v, int hold);
void vmm_uncork_agent(struct vmm *v);

/* lifecycle.c: every event that changes the box's life goes through here, and what it
 * does depends only on (state, event). */
enum vmm_event {
    EV_READY,            /* the agent said READY */
    EV_CHILD_EXIT,       /* the VMM child exited (v->child_status) */
    EV_TIMER,            /* the boot or stop deadline passed, or a main process's back-off */
    EV_SIGNAL,           /* SIGTERM, SIGINT or SIGHUP */
    EV_LIFELINE,         /* the process that started the box is gone */
    EV_SHUTDOWN,         /* a control client asked for a stop */
    EV_FATAL,            /* the guest or the channel broke: stop hard */
    EV_MAIN_EXIT,        /* the main process ended and its policy does not restart it */
    EV_UNHEALTHY,        /* the health check failed and --health-on-failure stop says the box stops */
    EV_SECRET_VIOLATION, /* a secret went where it may not and --secret-violation block-and-stop-box */
    EV_COUNT
};
/* detail: why (the log and error messages say it); timeout_ms: the guest's time to
 * power off, for EV_SHUTDOWN. */
void vmm_event(struct vmm *v, enum vmm_event ev, const char *detail, uint32_t timeout_ms);
/* The guest or the channel broke: logs why and stops the box hard (EV_FATAL). */
void vmm_fatal(struct vmm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The one kill sequence: SIGKILL to the child's process group and to the child. */
void child_kill(struct vmm *v);
/* Kills the child and waits for it, at most ms (the box files must be free before the
 * monitor reports a failure or exits). */
void child_kill_and_reap(struct vmm *v, int ms);
const char *vmm_state_name(enum vmm_state s);

/* handshake.c */
void handshake_on_agent_frame(struct vmm *v, const struct proto_header *h, const uint8_t *payload);
/* The boot failed: the reason goes to the ready fd (what libcocoon shows) with the
 * child's last words and the console's tail. */
void handshake_fail(struct vmm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The child died, or the boot deadline passed, before READY: a boot failure that
 * says why (the child's words, the console's tail). */
void handshake_child_exited(struct vmm *v);
void handshake_timed_out(struct vmm *v);
/* Writes the one line libcocoon waits for ("ok MS" or "error MESSAGE") and closes
 * the ready fd; later calls do nothing. */
void vmm_ready_line(struct vmm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "QEMU exited with status 1", "the kvm VMM was killed by signal 9 (Killed)" */
void describe_child_exit(const struct vmm *v, char *out, size_t cap);

#endif
