/* Stopping a running box: ask the guest to power off, give it a deadline, kill QEMU
 * if it misses it. Every stop path (client SHUTDOWN, SIGTERM, lost lifeline, a
 * misbehaving guest, QEMU dying on its own) ends in stop_on_qemu_exit. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/util.h"
#include "vmm/log.h"
#include "vmm/mux.h"
#include "vmm/vmm.h"

/* Grace after the guest's own timeout before QEMU is killed. */
#define STOP_GRACE_MS 1000
/* How long a SIGKILLed QEMU may take to be reaped before we give up on it. */
#define KILL_WAIT_MS 5000

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

void stop_begin(struct vmm *v, const char *why, uint32_t guest_timeout_ms, int kill_execs)
{
    if (v->state != ST_RUNNING)
        return;
    vmm_log("stopping the box: %s (guest gets %u ms)", why, guest_timeout_ms);
    v->state = ST_STOPPING;
    v->stop_requested = 1;
    close_listener(v);
    if (kill_execs)
        mux_kill_all(v->mux);
    struct proto_writer *w = &v->agent_w;
    vmm_send_agent(v, w->buf, proto_encode_shutdown(w, 0, guest_timeout_ms));
    if (v->state == ST_STOPPING && !v->killed)
        vmm_arm_timer(v, (uint64_t)guest_timeout_ms + STOP_GRACE_MS);
}

void stop_kill_qemu(struct vmm *v)
{
    if (v->qemu_exited || v->killed)
        return;
    v->killed = 1;
    kill(-v->qemu_pid, SIGKILL);
    kill(v->qemu_pid, SIGKILL);
    vmm_arm_timer(v, KILL_WAIT_MS);
}

void stop_on_deadline(struct vmm *v)
{
    if (!v->killed) {
        vmm_log("QEMU did not exit in time after SHUTDOWN: killing it");
        v->failed = 1;
        stop_kill_qemu(v);
        return;
    }
    vmm_log("QEMU (pid %d) survived SIGKILL for %d ms: giving up on it", (int)v->qemu_pid, KILL_WAIT_MS);
    v->failed = 1;
    v->state = ST_DONE;
}

/* The guest broke the protocol (or the channel failed): stop hard, exit 1. */
void vmm_fatal(struct vmm *v, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    v->failed = 1;
    if (v->state == ST_BOOTING) {
        boot_fail(v, "%s", msg);
        return;
    }
    if (v->state == ST_DONE || v->killed)
        return;
    vmm_log("stopping the box: %s", msg);
    v->stop_requested = 1; /* by us: QEMU's death that follows is expected */
    if (v->state == ST_RUNNING)
        v->state = ST_STOPPING;
    close_listener(v);
    stop_kill_qemu(v);
}

void stop_on_qemu_exit(struct vmm *v)
{
    int st = v->qemu_status;
    char console[1500], path[PATH_MAX + 16];
    if (WIFEXITED(st))
        vmm_log("QEMU exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        vmm_log("QEMU was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    if (!v->stop_requested) {
        snprintf(path, sizeof(path), "%s/console.log", v->box_dir);
        util_tail_lines(path, 8, " | ", console, sizeof(console));
        vmm_log("the guest stopped without being asked (poweroff inside the box, kernel panic or QEMU killed); "
                "console: %s",
                console[0] ? console : "(empty)");
        v->failed = 1;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        v->failed = 1;
    }
    v->state = ST_DONE;
}
