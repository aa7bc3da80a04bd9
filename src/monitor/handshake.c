/* The boot handshake (HELLO -> CONFIG -> READY) and the one line on the ready fd that
 * tells libcocoon how the start went. A failed boot must say what to do next, so the
 * error carries the VMM child's own complaint and the tail of the guest console. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"
#include "util/log.h"
#include "monitor/monitor.h"
#include "monitor/net_glue.h"

void vmm_ready_line(struct vmm *v, const char *fmt, ...)
{
    char line[4000]; /* below PIPE_BUF: the reader gets the line in one piece */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    if (v->ready_fd < 0)
        return;
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(v->ready_fd, p, (size_t)n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            vmm_log("cannot write to the ready fd: %s", w < 0 ? strerror(errno) : "short write");
            break;
        }
        p += w;
        n -= (int)w;
    }
    close(v->ready_fd);
    v->ready_fd = -1;
}

void handshake_fail(struct vmm *v, const char *fmt, ...)
{
    char msg[3800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    vmm_log("boot failed: %s", msg);
    vmm_ready_line(v, "error %s", msg);
    child_kill_and_reap(v, 5000);
    v->failed = 1;
    v->state = ST_DONE;
}

/* The panic reason scrolls away under the backtrace, so it is looked up on its own. */
static void find_panic(const char *path, char *out, size_t cap)
{
    static const char key[] = "Kernel panic - not syncing: ";
    char buf[65536];
    out[0] = 0;
    ssize_t n = util_read_tail(path, buf, sizeof(buf));
    if (n <= 0)
        return;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == 0)
            buf[i] = ' ';
    char *p = strstr(buf, key);
    if (!p)
        return;
    p += sizeof(key) - 1;
    size_t len = strcspn(p, "\r\n");
    snprintf(out, cap, "kernel panic: %.*s", (int)len, p);
}

static void console_tail(struct vmm *v, char *out, size_t cap)
{
    char path[PATH_MAX + 16], panic[256];
    snprintf(path, sizeof(path), "%s/console.log", v->box_dir);
    find_panic(path, panic, sizeof(panic));
    size_t o = 0;
    if (panic[0])
        o = (size_t)snprintf(out, cap, "%s | ", panic);
    if (o >= cap)
        o = 0;
    util_tail_lines(path, 8, " | ", out + o, cap - o);
    if (!out[o])
        snprintf(out + o, cap - o, "(empty)");
}

void describe_child_exit(const struct vmm *v, char *out, size_t cap)
{
    int status = v->child_status;
    const char *who = v->backend ? v->backend->child : "the VMM";
    if (WIFEXITED(status))
        snprintf(out, cap, "%s exited with status %d", who, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "%s was killed by signal %d (%s)", who, WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "%s stopped (wait status 0x%x)", who, status);
}

void handshake_child_exited(struct vmm *v)
{
    char how[160], console[1500];
    describe_child_exit(v, how, sizeof(how));
    console_tail(v, console, sizeof(console));
    /* The child exits 0 when the guest reboots or panics (panic=-1, -no-reboot); any
     * other status is its own failure and its output says why. */
    int guest_stop = WIFEXITED(v->child_status) && WEXITSTATUS(v->child_status) == 0;
    const char *when = v->boot_stage == 1 ? " after the agent said HELLO but before it was ready"
                       : guest_stop       ? " before the agent answered (kernel panic?)"
                                          : " before the agent answered";
    handshake_fail(v, "guest did not become ready: %s%s%s%s — console: %s", how, when,
                   v->child_tail[0] ? "; it said: " : "", v->child_tail, console);
}

void handshake_timed_out(struct vmm *v)
{
    char console[1500], secs[32];
    console_tail(v, console, sizeof(console));
    if (v->cfg.boot_timeout_ms % 1000 == 0)
        snprintf(secs, sizeof(secs), "%u s", v->cfg.boot_timeout_ms / 1000);
    else
        snprintf(secs, sizeof(secs), "%.1f s", v->cfg.boot_timeout_ms / 1000.0);
    handshake_fail(v, "guest did not become ready within %s%s (console: %s)%s%s", secs,
                   v->boot_stage == 0 ? "" : " (the agent said HELLO but never READY)", console,
                   v->child_tail[0] ? "; the VMM said: " : "", v->child_tail);
}

static void on_hello(struct vmm *v, const struct proto_header *h, const uint8_t *p)
{
    int rc = proto_decode_hello(p, h->len, &v->hello);
    if (rc != PROTO_OK) {
        handshake_fail(v, "guest agent sent a malformed HELLO (%s)", proto_strerror(rc));
        return;
    }
    if (v->hello.version_max < PROTO_VERSION_MIN || v->hello.version_min > PROTO_VERSION) {
        handshake_fail(v, "guest agent speaks protocol versions %u..%u, this cocoon speaks %u..%u",
                       v->hello.version_min, v->hello.version_max, PROTO_VERSION_MIN, PROTO_VERSION);
        return;
    }
    v->version = v->hello.version_max < PROTO_VERSION ? v->hello.version_max : PROTO_VERSION;
    vmm_log("agent HELLO after %llu ms: agent %s, kernel %s, protocol %u..%u",
            (unsigned long long)((util_now_ns(CLOCK_MONOTONIC) - v->t_start) / 1000000), v->hello.agent_version,
            v->hello.kernel, v->hello.version_min, v->hello.version_max);
    struct proto_config cfg = {.version = v->version, .realtime_ns = util_now_ns(CLOCK_REALTIME)};
    snprintf(cfg.hostname, sizeof(cfg.hostname), "%s", v->cfg.hostname);
    struct proto_writer *w = &v->agent_w;
    vmm_send_agent(v, w->buf, proto_encode_config(w, &cfg));
    net_glue_send_trust(v);
    v->boot_stage = 1;
}

static void on_ready(struct vmm *v, const struct proto_header *h, const uint8_t *p)
{
    int rc = proto_decode_ready(p, h->len, &v->ready);
    if (rc != PROTO_OK) {
        handshake_fail(v, "guest agent sent a malformed READY (%s)", proto_strerror(rc));
        return;
    }
    v->ready_ms = (uint32_t)((util_now_ns(CLOCK_MONOTONIC) - v->t_start) / 1000000);
    vmm_event(v, EV_READY, NULL, 0);
    if (v->state != ST_RUNNING)
        return;
    vmm_log("box ready in %u ms (the VMM started after %llu ms; guest boot %llu ms, agent init %llu ms)", v->ready_ms,
            (unsigned long long)((v->t_spawn - v->t_start) / 1000000), (unsigned long long)(v->ready.boot_ns / 1000000),
            (unsigned long long)(v->ready.init_ns / 1000000));
    vmm_ready_line(v, "ok %u", v->ready_ms);
    util_test_point("MONITOR_READY");
}

void handshake_on_agent_frame(struct vmm *v, const struct proto_header *h, const uint8_t *p)
{
    struct proto_error_msg em;
    if (h->type == PROTO_HELLO && v->boot_stage == 0) {
        on_hello(v, h, p);
    } else if (h->type == PROTO_READY && v->boot_stage == 1) {
        on_ready(v, h, p);
    } else if (h->type == PROTO_ERROR && h->stream == 0) {
        if (proto_decode_error(p, h->len, &em) != PROTO_OK)
            handshake_fail(v, "guest agent sent a malformed ERROR while booting");
        else
            handshake_fail(v, "guest agent failed while booting: %s", em.message);
    } else if (h->type == PROTO_PING && h->stream == 0) {
        struct proto_writer *w = &v->agent_w;
        vmm_send_agent(v, w->buf, proto_encode_data(w, 0, PROTO_PONG, p, h->len));
    } else {
        vmm_log_guest("ignoring %s on stream %u from the agent while booting", proto_type_name(h->type), h->stream);
    }
}
