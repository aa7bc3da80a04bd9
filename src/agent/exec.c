/* The exec table: one entry per running command stream. It moves bytes between the
 * command's pipes (or pty) and the host under the protocol's credit windows, fires
 * timeouts, and sends EXIT only once the process is reaped and its output drained. */
#include "agent/agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* After a timeout kill, output held open by an escaped grandchild is abandoned. */
#define KILL_GRACE_NS (2 * NS_PER_SEC)
#define MAX_TIMEOUT_MS (10ull * 365 * 24 * 3600 * 1000)
#define MAX_CREDIT (1ull << 40)

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

struct exec *exec_find(struct agent *a, uint32_t stream)
{
    for (struct exec *e = a->execs; e; e = e->next)
        if (e->stream == stream)
            return e;
    return NULL;
}

static void send_exit(struct agent *a, uint32_t stream, int32_t code, uint32_t sig, uint32_t timed_out)
{
    struct proto_exit x = {.code = code, .signal = sig, .timed_out = timed_out};
    session_send(a, proto_encode_exit(&agent_w, stream, &x));
}

void exec_refuse(struct agent *a, uint32_t stream, int code, const char *msg)
{
    session_send_error(a, stream, (uint32_t)code, msg);
    send_exit(a, stream, code == ENOENT ? 127 : 126, 0, 0);
}

int exec_may_start(struct agent *a, uint32_t stream, const char *too_many)
{
    if (exec_find(a, stream)) {
        char msg[64];
        snprintf(msg, sizeof(msg), "stream %u is already in use", stream);
        session_send_error(a, stream, EBUSY, msg);
        return 0;
    }
    if (a->nexecs >= AGENT_MAX_EXECS) {
        exec_refuse(a, stream, EAGAIN, too_many);
        return 0;
    }
    return 1;
}

void exec_start(struct agent *a, uint32_t stream, const uint8_t *p, size_t n, uint64_t received)
{
    char msg[600];
    snprintf(msg, sizeof(msg), "too many running commands (limit %d)", AGENT_MAX_EXECS);
    if (!exec_may_start(a, stream, msg))
        return;
    struct proto_exec m;
    int rc = proto_decode_exec(p, n, &m);
    if (rc != PROTO_OK) {
        snprintf(msg, sizeof(msg), "malformed EXEC: %s", proto_strerror(rc));
        exec_refuse(a, stream, EINVAL, msg);
        return;
    }
    clock_follow_host(m.realtime_ns, CLOCK_TOLERANCE_NS);
    struct exec *e = calloc(1, sizeof(*e));
    if (!e) {
        proto_exec_free(&m);
        exec_refuse(a, stream, ENOMEM, "out of memory");
        return;
    }
    trace_begin(&e->trace, received, m.argv[0]);
    trace_mark(&e->trace, TRACE_DECODED);
    struct spawn_result r;
    spawn_exec(&m, &r, &e->trace); /* the child starts in a cgroup of its own (cgroup.c) */
    if (r.err_code) {
        free(e);
        proto_exec_free(&m);
        exec_refuse(a, stream, r.err_code, r.message);
        cgroup_release(&r.cg);
        return;
    }
    a->no_children = 0;
    e->stream = stream;
    e->pid = r.pid;
    e->cg = r.cg;
    e->tty = (int)m.tty;
    e->in_fd = r.in_fd;
    e->out_fd = r.out_fd;
    e->err_fd = r.err_fd;
    e->out_hold = r.out_hold;
    e->err_hold = r.err_hold;
    e->out_credit = m.window;
    e->in_cap = PROTO_DEFAULT_WINDOW;
    if (m.timeout_ms) {
        uint64_t ms = m.timeout_ms < MAX_TIMEOUT_MS ? m.timeout_ms : MAX_TIMEOUT_MS;
        e->deadline = clock_ns(CLOCK_MONOTONIC) + ms * NS_PER_MS;
    }
    proto_exec_free(&m);
    e->next = a->execs;
    a->execs = e;
    a->nexecs++;
    struct proto_started s = {.pid = (uint32_t)e->pid, .window = (uint32_t)e->in_cap};
    session_send(a, proto_encode_started(&agent_w, stream, &s));
    trace_mark(&e->trace, TRACE_STARTED);
}

static void exec_free(struct agent *a, struct exec *e)
{
    for (struct exec **pp = &a->execs; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            a->nexecs--;
            break;
        }
    }
    close_fd(&e->in_fd);
    close_fd(&e->out_fd);
    close_fd(&e->err_fd);
    close_fd(&e->out_hold);
    close_fd(&e->err_hold);
    free(e->in_buf);
    cgroup_release(&e->cg);
    trace_mark(&e->trace, TRACE_RELEASED);
    trace_report(e->stream, &e->trace);
    free(e);
}

static void close_stdin(struct exec *e)
{
    if (e->tty && e->in_fd >= 0 && !e->in_discard) {
        /* A pty has no half-close: the terminal's EOF character is the equivalent. */
        char eot = 4;
        ssize_t w = write(e->in_fd, &eot, 1);
        (void)w;
    }
    close_fd(&e->in_fd);
    free(e->in_buf);
    e->in_buf = NULL;
    e->in_len = e->in_head = 0;
}

/* Writes buffered stdin and credits the host with what the command took. */
static void pump_stdin(struct agent *a, struct exec *e)
{
    size_t done = 0;
    while (e->in_len > 0 && e->in_fd >= 0) {
        size_t chunk = e->in_cap - e->in_head;
        if (chunk > e->in_len)
            chunk = e->in_len;
        ssize_t w = write(e->in_fd, e->in_buf + e->in_head, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            /* EPIPE and friends: the command stopped reading. Swallow the rest so the
             * host is never stuck waiting for credit. */
            done += e->in_len;
            e->in_discard = 1;
            close_stdin(e);
            break;
        }
        e->in_head = (e->in_head + (size_t)w) % e->in_cap;
        e->in_len -= (size_t)w;
        done += (size_t)w;
    }
    if (e->in_len == 0 && e->in_eof && e->in_fd >= 0)
        close_stdin(e);
    if (done)
        session_send(a, proto_encode_credit(&agent_w, e->stream, (uint32_t)done));
}

void exec_on_stdin(struct agent *a, struct exec *e, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    if (e->in_fd < 0 || e->in_discard || e->in_eof) {
        session_send(a, proto_encode_credit(&agent_w, e->stream, (uint32_t)n));
        return;
    }
    if (e->in_len + n > e->in_cap) {
        session_send_error(a, e->stream, EPROTO, "STDIN beyond the granted window; command killed");
        e->in_discard = 1;
        close_stdin(e);
        kill(-e->pid, SIGKILL);
        return;
    }
    if (!e->in_buf) {
        e->in_buf = malloc(e->in_cap);
        if (!e->in_buf) {
            session_send_error(a, e->stream, ENOMEM, "out of memory for stdin; input discarded");
            e->in_discard = 1;
            close_stdin(e);
            session_send(a, proto_encode_credit(&agent_w, e->stream, (uint32_t)n));
            return;
        }
    }
    size_t tail = (e->in_head + e->in_len) % e->in_cap;
    size_t first = e->in_cap - tail < n ? e->in_cap - tail : n;
    memcpy(e->in_buf + tail, p, first);
    memcpy(e->in_buf, p + first, n - first);
    e->in_len += n;
    pump_stdin(a, e);
}

void exec_on_stdin_eof(struct agent *a, struct exec *e)
{
    e->in_eof = 1;
    if (e->in_len == 0 && e->in_fd >= 0)
        close_stdin(e);
}

void exec_on_credit(struct exec *e, uint32_t bytes)
{
    e->out_credit += bytes;
    if (e->out_credit > MAX_CREDIT)
        e->out_credit = MAX_CREDIT;
}

void exec_on_signal(struct exec *e, uint32_t sig)
{
    if (sig >= 1 && sig < (uint32_t)NSIG)
        kill(-e->pid, (int)sig);
}

void exec_on_resize(struct exec *e, uint32_t rows, uint32_t cols)
{
    if (!e->tty || e->out_fd < 0)
        return;
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(e->out_fd, TIOCSWINSZ, &ws);
}

/* One read of at most the credit, straight into the frame buffer. 1 when it read data. */
static int pump_output(struct agent *a, struct exec *e, int *fd, uint16_t type)
{
    if (a->muted)
        return 0; /* a snapshot is being taken: FROZEN was the last frame */
    if (e->orphan) {
        static uint8_t sink[16384];
        ssize_t n = read(*fd, sink, sizeof(sink));
        if (n > 0)
            return 1;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            close_fd(fd);
        return 0;
    }
    size_t max = e->out_credit < PROTO_MAX_PAYLOAD ? (size_t)e->out_credit : PROTO_MAX_PAYLOAD;
    if (max == 0 || proto_conn_pending(&a->conn) >= AGENT_OUT_HIGH)
        return 0;
    proto_writer_begin(&agent_w, e->stream, type);
    ssize_t n = read(*fd, agent_w.buf + agent_w.len, max);
    if (n > 0) {
        agent_w.len += (size_t)n;
        e->out_credit -= (uint64_t)n;
        session_send(a, proto_writer_finish(&agent_w));
        return 1;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        /* EOF, or EIO from a pty master once every slave fd is closed. */
        close_fd(fd);
        if (e->tty)
            close_fd(&e->in_fd);
        if (e->out_fd < 0 && e->err_fd < 0)
            trace_mark(&e->trace, TRACE_DRAINED);
    }
    return 0;
}

/* Frames of what a command left in its pipes, read at once when it is reaped: often
 * all of it and the end, so its EXIT leaves in this round. The poll loop takes the
 * rest (more than this, or pipes a process it started still holds). */
#define DRAIN_AT_EXIT 4

void exec_on_reaped(struct agent *a, pid_t pid, int status)
{
    for (struct exec *e = a->execs; e; e = e->next) {
        if (e->pid == pid && !e->exited) {
            e->exited = 1;
            e->status = status;
            trace_mark(&e->trace, TRACE_REAPED);
            close_fd(&e->out_hold);
            close_fd(&e->err_hold);
            for (int i = 0; i < DRAIN_AT_EXIT && e->out_fd >= 0 && pump_output(a, e, &e->out_fd, PROTO_STDOUT); i++)
                ;
            for (int i = 0; i < DRAIN_AT_EXIT && e->err_fd >= 0 && pump_output(a, e, &e->err_fd, PROTO_STDERR); i++)
                ;
            return;
        }
    }
}

static int exec_done(const struct exec *e) { return e->exited && e->out_fd < 0 && e->err_fd < 0; }

static void finish(struct agent *a, struct exec *e)
{
    int32_t code = 0;
    uint32_t sig = 0;
    if (WIFEXITED(e->status)) {
        code = WEXITSTATUS(e->status);
    } else if (WIFSIGNALED(e->status)) {
        sig = (uint32_t)WTERMSIG(e->status); /* CODE stays 0: docs/protocol.md, EXIT */
    }
    if (!e->orphan)
        send_exit(a, e->stream, code, sig, (uint32_t)e->timed_out);
    trace_mark(&e->trace, TRACE_EXIT);
    exec_free(a, e);
}

static uint64_t earliest(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

uint64_t exec_tick(struct agent *a, uint64_t now)
{
    uint64_t next = 0;
    if (a->muted)
        return 0; /* no EXIT may leave now; THAW or RESTORED ends it within seconds */
    struct exec *e = a->execs;
    while (e) {
        struct exec *following = e->next;
        if (e->deadline && !e->timed_out && !exec_done(e)) {
            if (now >= e->deadline) {
                kill(-e->pid, SIGKILL);
                e->timed_out = 1;
                e->killed_at = now;
            } else {
                next = earliest(next, e->deadline);
            }
        }
        if (e->timed_out && e->exited && !exec_done(e)) {
            if (now >= e->killed_at + KILL_GRACE_NS) {
                close_fd(&e->out_fd);
                close_fd(&e->err_fd);
            } else {
                next = earliest(next, e->killed_at + KILL_GRACE_NS);
            }
        }
        if (exec_done(e))
            finish(a, e);
        e = following;
    }
    return next;
}

size_t exec_poll_add(struct agent *a, struct pollfd *fds, struct poll_slot *slots, size_t cap)
{
    size_t n = 0;
    int out_ok = proto_conn_pending(&a->conn) < AGENT_OUT_HIGH;
    if (a->muted)
        return 0;
    for (struct exec *e = a->execs; e && n + 3 <= cap; e = e->next) {
        if (e->orphan) { /* drained whatever the credit */
            if (e->out_fd >= 0) {
                fds[n] = (struct pollfd){.fd = e->out_fd, .events = POLLIN};
                slots[n++] = (struct poll_slot){e, 1};
            }
            if (e->err_fd >= 0) {
                fds[n] = (struct pollfd){.fd = e->err_fd, .events = POLLIN};
                slots[n++] = (struct poll_slot){e, 2};
            }
            continue;
        }
        /* Only fds we want events from: a hung-up pipe we cannot read (no credit)
         * would otherwise report POLLHUP forever and spin the loop. */
        if (e->in_fd >= 0 && e->in_len > 0) {
            fds[n] = (struct pollfd){.fd = e->in_fd, .events = POLLOUT};
            slots[n++] = (struct poll_slot){e, 0};
        }
        if (out_ok && e->out_credit > 0) {
            if (e->out_fd >= 0) {
                fds[n] = (struct pollfd){.fd = e->out_fd, .events = POLLIN};
                slots[n++] = (struct poll_slot){e, 1};
            }
            if (e->err_fd >= 0) {
                fds[n] = (struct pollfd){.fd = e->err_fd, .events = POLLIN};
                slots[n++] = (struct poll_slot){e, 2};
            }
        }
    }
    return n;
}

void exec_poll_handle(struct agent *a, struct pollfd *fds, struct poll_slot *slots, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct exec *e = slots[i].e;
        if (!fds[i].revents)
            continue;
        /* Frames handled earlier in this round may have closed this fd (and a new
         * exec may even have reused its number): act only if it is still ours. */
        if (slots[i].which == 0 && e->in_fd == fds[i].fd)
            pump_stdin(a, e);
        else if (slots[i].which == 1 && e->out_fd == fds[i].fd)
            pump_output(a, e, &e->out_fd, PROTO_STDOUT);
        else if (slots[i].which == 2 && e->err_fd == fds[i].fd)
            pump_output(a, e, &e->err_fd, PROTO_STDERR);
    }
}

size_t exec_forget_all(struct agent *a)
{
    size_t n = 0;
    for (struct exec *e = a->execs; e; e = e->next)
        if (!e->orphan) {
            e->orphan = 1;
            e->stream = 0; /* stream 0 is never an exec's: the new host's ids never meet it */
            e->deadline = 0;
            n++;
        }
    return n;
}

struct exec *exec_adopt(struct agent *a, uint32_t stream, pid_t pid, int in_fd, int out_fd, int err_fd, uint32_t window,
                        const struct cmd_cgroup *cg)
{
    struct exec *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    a->no_children = 0;
    e->stream = stream;
    e->pid = pid;
    e->in_fd = in_fd;
    e->out_fd = out_fd;
    e->err_fd = err_fd;
    e->out_hold = e->err_hold = -1;
    e->cg = *cg;
    e->out_credit = window;
    e->in_cap = PROTO_DEFAULT_WINDOW;
    e->next = a->execs;
    a->execs = e;
    a->nexecs++;
    struct proto_started s = {.pid = (uint32_t)pid, .window = (uint32_t)e->in_cap};
    session_send(a, proto_encode_started(&agent_w, stream, &s));
    return e;
}
