/* The state of one cocoon-vmm process, shared by its parts: the event loop (loop.c),
 * the boot handshake (boot.c), the control-socket relay (mux.c) and the stop path
 * (stop.c). One box, one process, one thread. */
#ifndef COCOON_VMM_VMM_H
#define COCOON_VMM_VMM_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/conn.h"
#include "proto/proto.h"
#include "vmm/config.h"
#include "vmm/qemu.h"

/* What an epoll event points at: every watched object starts with one of these. */
enum watch_kind { W_SIGNAL, W_TIMER, W_AGENT, W_LISTEN, W_CLIENT, W_LIFELINE, W_QEMU_OUT, W_NET_LINK, W_NET_STACK };
struct watch {
    enum watch_kind kind;
    int dead; /* closed earlier in this epoll batch: ignore its events */
};

enum vmm_state { ST_BOOTING, ST_RUNNING, ST_STOPPING, ST_DONE };

struct mux;

struct vmm {
    struct vmm_config cfg;
    char box_dir[PATH_MAX];
    int dirfd;
    char ctl_path[108];
    int pid_fd; /* vmm.pid, locked for our lifetime */
    int ready_fd, lifeline_fd;
    int epfd, sigfd, timerfd, listen_fd;
    struct watch w_signal, w_timer, w_agent, w_listen, w_lifeline, w_qemu_out;

    struct qemu_plan plan;
    pid_t qemu_pid;
    int qemu_out_fd;      /* read end of QEMU's stdout/stderr pipe */
    char qemu_tail[1024]; /* QEMU's last output line(s), for boot errors */
    char qemu_line[512];  /* partial line being assembled */
    size_t qemu_line_len;
    int qemu_exited, qemu_status;

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
    int killed;         /* QEMU had to be killed */
    int failed;         /* something went wrong: exit 1 */
    int signals_seen;

    struct mux *mux;
    struct net_glue *net;        /* NULL without networking (net_glue.c) */
    struct proto_writer agent_w; /* scratch for frames the monitor itself sends */
};

/* loop.c */
int vmm_watch(struct vmm *v, int fd, uint32_t events, struct watch *w);
int vmm_rewatch(struct vmm *v, int fd, uint32_t events, struct watch *w);
void vmm_unwatch(struct vmm *v, int fd);
void vmm_arm_timer(struct vmm *v, uint64_t ms); /* 0 disarms */
int vmm_run(struct vmm *v);
void vmm_drain_qemu_output(struct vmm *v);
/* Queues a frame to the agent; a failed agent queue is fatal for the box. */
void vmm_send_agent(struct vmm *v, const void *frame, size_t len);

/* boot.c */
void boot_on_agent_frame(struct vmm *v, const struct proto_header *h, const uint8_t *payload);
void boot_fail(struct vmm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void boot_on_qemu_exit(struct vmm *v);
void boot_on_timeout(struct vmm *v);
void vmm_ready_line(struct vmm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* stop.c */
void stop_begin(struct vmm *v, const char *why, uint32_t guest_timeout_ms, int kill_execs);
void stop_on_deadline(struct vmm *v);
void stop_kill_qemu(struct vmm *v);
void stop_on_qemu_exit(struct vmm *v);
void vmm_fatal(struct vmm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
