/* The box's lifecycle in one place: a table of what each event does in each state,
 * and the one way the child is killed. Every stop path (a client's SHUTDOWN, SIGTERM, a
 * lost lifeline, a misbehaving guest, the child dying on its own) goes through here. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "monitor/health.h"
#include "monitor/mainproc.h"
#include "monitor/mux.h"
#include "monitor/monitor.h"
#include "util/log.h"
#include "util/util.h"

/* Grace after the guest's own timeout before the child is killed. */
#define STOP_GRACE_MS 1000
/* How long a SIGKILLed child may take to be reaped before we give up on it. */
#define KILL_WAIT_MS 5000
#define SIGTERM_GUEST_MS 4000
#define LIFELINE_GUEST_MS 2000
#define MAIN_EXIT_GUEST_MS 10000

const char *vmm_state_name(enum vmm_state s)
{
    static const char *names[ST_COUNT] = {"booting", "running", "stopping", "done"};
    return s < ST_COUNT ? names[s] : "?";
}

void child_kill(struct vmm *v)
{
    if (v->child_pid <= 0 || v->child_exited)
        return;
    kill(-v->child_pid, SIGKILL);
    kill(v->child_pid, SIGKILL);
}

void child_kill_and_reap(struct vmm *v, int ms)
{
    if (v->child_pid <= 0 || v->child_exited)
        return;
    child_kill(v);
    for (int waited = 0; waited <= ms; waited += 10) {
        int status;
        pid_t r = waitpid(v->child_pid, &status, WNOHANG);
        if (r == v->child_pid || (r < 0 && errno == ECHILD)) {
            v->child_exited = 1;
            v->child_status = status;
            return;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    vmm_log("%s (pid %d) did not die after SIGKILL", v->backend->child, (int)v->child_pid);
}

/* New clients are turned away as soon as a stop begins. */
static void close_listener(struct vmm *v)
{
    if (v->listen_fd < 0)
        return;
    vmm_unwatch(v, v->listen_fd);
    close(v->listen_fd);
    v->listen_fd = -1;
    unlinkat(v->dirfd, "ctl.sock", 0);
}

/* Asynchronous: the child's exit (SIGCHLD) or the deadline comes back as an event. */
static void kill_child_async(struct vmm *v)
{
    if (v->child_exited || v->killed)
        return;
    v->killed = 1;
    child_kill(v);
    vmm_arm_timer(v, KILL_WAIT_MS);
}

/* ---- actions ---- */

typedef void (*action_fn)(struct vmm *v, const char *detail, uint32_t timeout_ms);
static void stop_begin(struct vmm *v, const char *why, uint32_t timeout_ms, int kill_execs);

static void became_ready(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)detail, (void)timeout_ms;
    v->state = ST_RUNNING;
    vmm_arm_timer(v, 0);
    if (vmm_watch(v, v->listen_fd, EPOLLIN, &v->w_listen) < 0)
        handshake_fail(v, "cannot watch ctl.sock: %s", strerror(errno));
    else {
        mainproc_start(v);
        health_start(v);
    }
}

/* The main process's back-off is over (the timer is free while the box runs). */
static void main_restart_due(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)detail, (void)timeout_ms;
    mainproc_start(v);
}

/* The main process ended for good: the box stops as if asked to, its other execs with it. */
static void stop_on_main_exit(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)timeout_ms;
    stop_begin(v, detail, MAIN_EXIT_GUEST_MS, 1);
}

/* A secret went where it may not (--secret-violation block-and-stop-box): the network is
 * already cut (net_stack_stop_wanted); the box stops with its execs, the guest given a
 * short while to power off. */
static void stop_on_violation(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)timeout_ms;
    stop_begin(v, detail, LIFELINE_GUEST_MS, 1);
}

static void boot_child_exit(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)detail, (void)timeout_ms;
    handshake_child_exited(v);
}

static void boot_deadline(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)detail, (void)timeout_ms;
    handshake_timed_out(v);
}

static void boot_abort(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)timeout_ms;
    handshake_fail(v, "%s before the guest was ready", detail);
}

/* A graceful stop: the guest is asked to power off within timeout_ms. */
static void stop_begin(struct vmm *v, const char *why, uint32_t timeout_ms, int kill_execs)
{
    vmm_log("stopping the box: %s (guest gets %u ms)", why, timeout_ms);
    v->state = ST_STOPPING;
    v->stop_requested = 1;
    close_listener(v);
    if (kill_execs)
        mux_kill_all(v->mux);
    struct proto_writer *w = &v->agent_w;
    vmm_send_agent(v, w->buf, proto_encode_shutdown(w, 0, timeout_ms));
    util_test_point("MONITOR_STOPPING");
    if (v->state == ST_STOPPING && !v->killed)
        vmm_arm_timer(v, (uint64_t)timeout_ms + STOP_GRACE_MS);
}

static void stop_on_signal(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)timeout_ms;
    stop_begin(v, detail, SIGTERM_GUEST_MS, 1);
}

static void stop_on_lifeline(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)timeout_ms;
    stop_begin(v, detail, LIFELINE_GUEST_MS, 1);
}

static void stop_on_request(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    stop_begin(v, detail, timeout_ms, 0);
}

/* The guest broke the protocol (or the channel failed): stop hard, exit 1. */
static void stop_hard(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)timeout_ms;
    if (v->killed)
        return;
    vmm_log("stopping the box: %s", detail);
    v->stop_requested = 1; /* by us: the child's death that follows is expected */
    v->state = ST_STOPPING;
    close_listener(v);
    kill_child_async(v);
}

static void second_signal(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)detail, (void)timeout_ms;
    if (v->signals_seen > 1)
        kill_child_async(v);
}

static void stop_deadline(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)detail, (void)timeout_ms;
    v->failed = 1;
    if (!v->killed) {
        vmm_log("%s did not exit in time after SHUTDOWN: killing it", v->backend->child);
        kill_child_async(v);
        return;
    }
    vmm_log("%s (pid %d) survived SIGKILL for %d ms: giving up on it", v->backend->child, (int)v->child_pid,
            KILL_WAIT_MS);
    v->state = ST_DONE;
}

static void child_gone(struct vmm *v, const char *detail, uint32_t timeout_ms)
{
    (void)detail, (void)timeout_ms;
    int st = v->child_status;
    char how[160];
    describe_child_exit(v, how, sizeof(how));
    vmm_log("%s", how);
    if (!v->stop_requested) {
        char console[1500], path[PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/console.log", v->box_dir);
        util_tail_lines(path, 8, " | ", console, sizeof(console));
        vmm_log("the guest stopped without being asked (poweroff inside the box, kernel panic or %s killed); "
                "console: %s",
                v->backend->child, console[0] ? console : "(empty)");
        v->failed = 1;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        v->failed = 1;
    }
    v->state = ST_DONE;
}

static void ignore(struct vmm *v, const char *detail, uint32_t timeout_ms) { (void)v, (void)detail, (void)timeout_ms; }

/* What each event does in each state; a missing entry means the event changes nothing
 * there (a lost lifeline while stopping, a shutdown request while booting: clients are
 * only accepted once the box runs). */
static const action_fn table[ST_COUNT][EV_COUNT] = {
    [ST_BOOTING] =
        {
            [EV_READY] = became_ready,
            [EV_CHILD_EXIT] = boot_child_exit,
            [EV_TIMER] = boot_deadline,
            [EV_SIGNAL] = boot_abort,
            [EV_LIFELINE] = boot_abort,
            [EV_FATAL] = boot_abort,
            [EV_SECRET_VIOLATION] = boot_abort,
        },
    [ST_RUNNING] =
        {
            [EV_CHILD_EXIT] = child_gone,
            [EV_SIGNAL] = stop_on_signal,
            [EV_LIFELINE] = stop_on_lifeline,
            [EV_SHUTDOWN] = stop_on_request,
            [EV_FATAL] = stop_hard,
            [EV_TIMER] = main_restart_due,
            [EV_MAIN_EXIT] = stop_on_main_exit,
            [EV_UNHEALTHY] = stop_on_main_exit,
            [EV_SECRET_VIOLATION] = stop_on_violation,
        },
    [ST_STOPPING] =
        {
            [EV_CHILD_EXIT] = child_gone,
            [EV_TIMER] = stop_deadline,
            [EV_SIGNAL] = second_signal,
            [EV_FATAL] = stop_hard,
        },
};

void vmm_event(struct vmm *v, enum vmm_event ev, const char *detail, uint32_t timeout_ms)
{
    if (v->state >= ST_COUNT || ev >= EV_COUNT)
        return;
    action_fn f = table[v->state][ev];
    (f ? f : ignore)(v, detail ? detail : "", timeout_ms);
}

void vmm_fatal(struct vmm *v, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    v->failed = 1;
    vmm_event(v, EV_FATAL, msg, 0);
}
