/* The monitor's single event loop: one epoll set over signals (signalfd), one timer
 * (boot deadline, then stop deadline), the agent channel, the VMM child's output and
 * console, the network link, the lifeline and the control socket. Nothing blocks and
 * nothing polls on a timeout. What an event means for the box is lifecycle.c's call. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monitor/console_log.h"
#include "monitor/health.h"
#include "monitor/livesnap.h"
#include "monitor/monitor.h"
#include "monitor/mux.h"
#include "monitor/net_glue.h"
#include "util/log.h"

/* Clients stop being read above HIGH bytes queued to the agent, resume below LOW. */
#define AGENT_QUEUE_HIGH (1024u * 1024)
#define HELD_MAX (16u * 1024 * 1024) /* frames held during a memory capture (vmm_hold_agent) */
#define AGENT_QUEUE_LOW (256u * 1024)

int vmm_watch(struct vmm *v, int fd, uint32_t events, struct watch *w)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        vmm_log("epoll add fd %d: %s", fd, strerror(errno));
        return -1;
    }
    return 0;
}

int vmm_rewatch(struct vmm *v, int fd, uint32_t events, struct watch *w)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(v->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void vmm_unwatch(struct vmm *v, int fd) { epoll_ctl(v->epfd, EPOLL_CTL_DEL, fd, NULL); }

void vmm_arm_timer(struct vmm *v, uint64_t ms)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(ms / 1000);
    its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
    timerfd_settime(v->timerfd, 0, &its, NULL);
}

static void agent_update_events(struct vmm *v)
{
    if (v->agent_fd < 0)
        return;
    vmm_rewatch(v, v->agent_fd, EPOLLIN | (proto_conn_pending(&v->agent) ? EPOLLOUT : 0), &v->w_agent);
}

void vmm_send_agent(struct vmm *v, const void *frame, size_t len)
{
    if (v->agent_fd < 0 || v->state == ST_DONE)
        return; /* the child is going away: nothing more reaches the guest */
    if (v->agent_hold && len) {
        uint8_t *grown = v->held_len + len <= HELD_MAX ? realloc(v->held, v->held_len + len) : NULL;
        if (!grown) {
            vmm_fatal(v, "too many frames for the guest held during a snapshot");
            return;
        }
        v->held = grown;
        memcpy(v->held + v->held_len, frame, len);
        v->held_len += len;
        if (!v->agent_backlogged && v->mux)
            mux_set_backlogged(v->mux, 1); /* clients wait until the capture is over */
        return;
    }
    if (len == 0 || proto_conn_send(&v->agent, frame, len) < 0) {
        int queue_full = len && errno == ENOBUFS;
        vmm_fatal(v,
                  queue_full ? "the guest does not read its channel (queue full)"
                             : "cannot write to the agent channel: %s",
                  strerror(errno));
        return;
    }
    agent_update_events(v);
    if (!v->agent_backlogged && proto_conn_pending(&v->agent) > AGENT_QUEUE_HIGH && v->mux)
        mux_set_backlogged(v->mux, 1);
}

void vmm_cork_agent(struct vmm *v) { proto_conn_cork(&v->agent); }

void vmm_hold_agent(struct vmm *v, int hold)
{
    if (hold) {
        v->agent_hold = 1;
        return;
    }
    v->agent_hold = 0;
    uint8_t *held = v->held;
    size_t len = v->held_len;
    v->held = NULL;
    v->held_len = 0;
    if (len)
        vmm_send_agent(v, held, len);
    free(held);
}

void vmm_uncork_agent(struct vmm *v)
{
    if (!v->agent.corked)
        return;
    if (v->agent_fd < 0 || v->state == ST_DONE) {
        v->agent.corked = 0; /* nothing more reaches the guest */
        return;
    }
    if (proto_conn_uncork(&v->agent) < 0) {
        vmm_fatal(v, "cannot write to the agent channel: %s", strerror(errno));
        return;
    }
    agent_update_events(v);
}

static void agent_closed(struct vmm *v)
{
    vmm_unwatch(v, v->agent_fd);
    close(v->agent_fd);
    v->agent_fd = -1;
    /* The child closed the channel: it is exiting. SIGCHLD finishes the story. */
}

static void on_agent(struct vmm *v, uint32_t events)
{
    if (events & EPOLLOUT) {
        if (proto_conn_flush(&v->agent) < 0) {
            vmm_fatal(v, "cannot write to the agent channel: %s", strerror(errno));
            return;
        }
        agent_update_events(v);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    long n = proto_conn_read(&v->agent);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        vmm_log("reading the agent channel: %s", strerror(errno));
        agent_closed(v);
        return;
    }
    struct proto_header h;
    const uint8_t *p;
    while (v->agent_fd >= 0 && v->state != ST_DONE) {
        int rc = proto_conn_next(&v->agent, &h, &p);
        if (rc == PROTO_NEED_MORE)
            break;
        if (rc != PROTO_OK) {
            vmm_fatal(v, "the guest agent sent a malformed frame: %s", proto_strerror(rc));
            agent_closed(v); /* the byte stream is unusable from here on */
            return;
        }
        if (v->state == ST_BOOTING)
            handshake_on_agent_frame(v, &h, p);
        else
            mux_on_agent_frame(v->mux, &h, p);
    }
    if (n == 0 && v->agent_fd >= 0)
        agent_closed(v);
}

/* The child's stdout/stderr: relayed line by line into vmm.log, last lines kept. */
static void child_line(struct vmm *v, const char *line)
{
    if (!*line)
        return;
    vmm_log("%s: %s", v->backend->name, line);
    size_t have = strlen(v->child_tail), add = strlen(line);
    if (have + add + 3 >= sizeof(v->child_tail)) {
        have = 0; /* keep the newest line rather than the oldest */
        v->child_tail[0] = 0;
    }
    snprintf(v->child_tail + have, sizeof(v->child_tail) - have, "%s%s", have ? " | " : "", line);
}

void vmm_drain_child_output(struct vmm *v)
{
    char buf[4096];
    while (v->child_out_fd >= 0) {
        ssize_t n = read(v->child_out_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                if (v->child_line_len) {
                    v->child_line[v->child_line_len] = 0;
                    child_line(v, v->child_line);
                    v->child_line_len = 0;
                }
                vmm_unwatch(v, v->child_out_fd);
                close(v->child_out_fd);
                v->child_out_fd = -1;
            }
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            char ch = buf[i];
            if (ch == '\n' || v->child_line_len == sizeof(v->child_line) - 1) {
                v->child_line[v->child_line_len] = 0;
                child_line(v, v->child_line);
                v->child_line_len = 0;
                if (ch == '\n')
                    continue;
            }
            if (ch != '\r')
                v->child_line[v->child_line_len++] = (ch >= 0x20 && ch < 0x7f) || ch == '\t' ? ch : '?';
        }
    }
}

static void on_child(struct vmm *v)
{
    int status;
    pid_t r;
    while ((r = waitpid(-1, &status, WNOHANG)) > 0) {
        if (r != v->child_pid || v->child_exited)
            continue;
        v->child_exited = 1;
        v->child_status = status;
        vmm_drain_child_output(v);
        if (v->console)
            console_log_flush(v);
        vmm_event(v, EV_CHILD_EXIT, NULL, 0);
    }
}

static void on_signal(struct vmm *v)
{
    struct signalfd_siginfo si;
    while (read(v->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            on_child(v);
            continue;
        }
        char why[96];
        v->signals_seen++;
        snprintf(why, sizeof(why), "cocoon-vmm was stopped by signal %u (%s)", si.ssi_signo,
                 strsignal((int)si.ssi_signo));
        vmm_log("received signal %u (%s)", si.ssi_signo, strsignal((int)si.ssi_signo));
        vmm_event(v, EV_SIGNAL, why, 0);
    }
}

static void on_timer(struct vmm *v)
{
    uint64_t ticks;
    if (read(v->timerfd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks))
        vmm_event(v, EV_TIMER, NULL, 0);
}

static void on_lifeline(struct vmm *v)
{
    char buf[256];
    ssize_t n = read(v->lifeline_fd, buf, sizeof(buf));
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return;
    vmm_log("the lifeline closed: the process that started this box is gone");
    vmm_unwatch(v, v->lifeline_fd);
    close(v->lifeline_fd);
    v->lifeline_fd = -1;
    v->lifeline_gone = 1;
    vmm_event(v, EV_LIFELINE, "the caller went away", 0);
}

int vmm_run(struct vmm *v)
{
    struct epoll_event evs[32];
    while (v->state != ST_DONE) {
        int n = epoll_wait(v->epfd, evs, 32, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            vmm_log("epoll_wait: %s", strerror(errno));
            return -1;
        }
        for (int i = 0; i < n && v->state != ST_DONE; i++) {
            struct watch *w = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            switch (w->kind) {
            case W_SIGNAL: on_signal(v); break;
            case W_TIMER: on_timer(v); break;
            case W_AGENT:
                if (v->agent_fd >= 0)
                    on_agent(v, e);
                break;
            case W_CHILD_OUT: vmm_drain_child_output(v); break;
            case W_CONSOLE: console_log_drain(v); break;
            case W_NET_LINK: net_glue_on_link(v, e); break;
            case W_NET_STACK: net_glue_on_stack(v); break;
            case W_HEALTH: health_on_timer(v); break;
            case W_LIVESNAP: livesnap_on_timer(v); break;
            case W_LIFELINE:
                if (v->lifeline_fd >= 0)
                    on_lifeline(v);
                break;
            case W_LISTEN: mux_on_listen(v->mux); break; /* the listener, or its retry timer */
            case W_CLIENT:
                if (!w->dead)
                    mux_on_client(v->mux, (struct client *)w, e);
                break;
            }
        }
        if (v->agent_backlogged && proto_conn_pending(&v->agent) < AGENT_QUEUE_LOW)
            mux_set_backlogged(v->mux, 0);
        mux_reap(v->mux);
    }
    return 0;
}
