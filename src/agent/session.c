/* The conversation with the host over the virtio port: HELLO/CONFIG/READY, frame
 * dispatch to the exec table, PING, SHUTDOWN, and the reaper. Everything from the
 * host is untrusted: frames are validated by the codec, and a bad one costs the
 * host an ERROR and its buffered input, never the agent. */
#include "agent/agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT_RETRY_NS (100 * NS_PER_MS)
#define SHUTDOWN_DEFAULT_MS 3000u
#define SHUTDOWN_MAX_MS 30000u
/* The serial console is slow and PID 1 writes to it synchronously: a host that
 * keeps sending garbage must not be able to stall us through our own logging. */
#define MAX_PROTOCOL_LOGS 20

static void log_protocol(const char *msg, const struct proto_header *h)
{
    static unsigned logged;
    if (logged < MAX_PROTOCOL_LOGS)
        agent_log("%s (type %u, stream %u, len %u)", msg, h->type, h->stream, h->len);
    else if (logged == MAX_PROTOCOL_LOGS)
        agent_log("further protocol errors are not logged");
    logged++;
}

struct proto_writer agent_w;

void session_send(struct agent *a, size_t frame_len)
{
    if (frame_len == 0) {
        agent_log("internal: frame did not fit; dropped");
        return;
    }
    if (proto_conn_send(&a->conn, agent_w.buf, frame_len) != 0 && !a->send_failed_logged) {
        /* Queued bytes stay queued on a write error; only a full queue loses a frame. */
        agent_log("sending to host: %s", strerror(errno));
        a->send_failed_logged = 1;
    }
}

void session_send_error(struct agent *a, uint32_t stream, uint32_t code, const char *msg)
{
    session_send(a, proto_encode_error(&agent_w, stream, code, msg));
}

void session_hello(struct agent *a)
{
    struct proto_hello h;
    memset(&h, 0, sizeof(h));
    h.version_min = PROTO_VERSION_MIN;
    h.version_max = PROTO_VERSION;
    snprintf(h.agent_version, sizeof(h.agent_version), "%s", AGENT_VERSION);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(h.kernel, sizeof(h.kernel), "%s", u.release);
    h.boot_ns = clock_ns(CLOCK_BOOTTIME);
    session_send(a, proto_encode_hello(&agent_w, &h));
}

static void on_config(struct agent *a, const uint8_t *p, size_t n)
{
    struct proto_config c;
    char msg[160];
    int rc = proto_decode_config(p, n, &c);
    if (rc != PROTO_OK) {
        snprintf(msg, sizeof(msg), "malformed CONFIG: %s", proto_strerror(rc));
        session_send_error(a, PROTO_STREAM_SESSION, EINVAL, msg);
        return;
    }
    if (c.version < PROTO_VERSION_MIN || c.version > PROTO_VERSION) {
        snprintf(msg, sizeof(msg), "protocol version %u not supported (agent speaks %d..%d)", c.version,
                 PROTO_VERSION_MIN, PROTO_VERSION);
        session_send_error(a, PROTO_STREAM_SESSION, EPROTONOSUPPORT, msg);
        return;
    }
    if (c.hostname[0] && sethostname(c.hostname, strlen(c.hostname)) != 0)
        agent_log("sethostname %s: %s", c.hostname, strerror(errno));
    guestcfg_apply(c.hostname);
    clock_follow_host(c.realtime_ns, 0);
    if (a->phase == PHASE_HANDSHAKE)
        a->phase = PHASE_SERVING;
    struct proto_ready r = {.boot_ns = clock_ns(CLOCK_BOOTTIME), .init_ns = a->init_ns};
    session_send(a, proto_encode_ready(&agent_w, &r));
    agent_log("ready (%llu ms after boot, agent started at %llu ms)", (unsigned long long)(r.boot_ns / NS_PER_MS),
              (unsigned long long)(a->init_ns / NS_PER_MS));
}

static void start_shutdown(struct agent *a, const uint8_t *p, size_t n, uint64_t now)
{
    uint32_t mode, timeout_ms;
    if (proto_decode_shutdown(p, n, &mode, &timeout_ms) != PROTO_OK) {
        session_send_error(a, PROTO_STREAM_SESSION, EINVAL, "malformed SHUTDOWN");
        return;
    }
    if (a->phase == PHASE_SHUTDOWN)
        return;
    if (timeout_ms == 0)
        timeout_ms = SHUTDOWN_DEFAULT_MS;
    if (timeout_ms > SHUTDOWN_MAX_MS)
        timeout_ms = SHUTDOWN_MAX_MS;
    agent_log("shutdown requested (grace %u ms)", timeout_ms);
    if (a->thaw_at)
        freeze_thaw(a); /* the commands' last writes must not block on a frozen disk */
    a->phase = PHASE_SHUTDOWN;
    a->shutdown_deadline = now + (uint64_t)timeout_ms * NS_PER_MS;
    kill(-1, SIGTERM); /* every process but us */
    session_reap(a);   /* learn at once whether anything was running at all */
}

static void finish_shutdown(struct agent *a)
{
    if (a->thaw_at)
        freeze_thaw(a);
    kill(-1, SIGKILL);
    /* Give queued frames (EXITs of killed commands) a moment to reach the host. */
    for (int i = 0; i < 20 && proto_conn_pending(&a->conn) > 0; i++) {
        struct pollfd pfd = {.fd = a->port_fd, .events = POLLOUT};
        if (poll(&pfd, 1, 25) > 0 && proto_conn_flush(&a->conn) != 0)
            break;
    }
    agent_log("powering off");
    agent_reboot();
}

uint64_t session_tick(struct agent *a, uint64_t now)
{
    uint64_t thaw = freeze_tick(a, now);
    if (a->phase != PHASE_SHUTDOWN)
        return thaw;
    if ((a->no_children && a->nexecs == 0) || now >= a->shutdown_deadline)
        finish_shutdown(a);
    return a->shutdown_deadline;
}

void session_reap(struct agent *a)
{
    struct signalfd_siginfo si[16];
    while (read(a->sig_fd, si, sizeof(si)) > 0)
        ; /* the content does not matter: waitpid below finds every child */
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            exec_on_reaped(a, pid, status);
            continue;
        }
        if (pid < 0 && errno == ECHILD)
            a->no_children = 1;
        break;
    }
}

static void on_exec_frame(struct agent *a, const struct proto_header *h, const uint8_t *p)
{
    struct exec *e = exec_find(a, h->stream);
    if (!e)
        return; /* the stream ended (EXIT is on its way); late frames are normal */
    uint32_t v = 0, w = 0;
    int rc = PROTO_OK;
    switch (h->type) {
    case PROTO_STDIN: exec_on_stdin(a, e, p, h->len); break;
    case PROTO_STDIN_EOF: exec_on_stdin_eof(a, e); break;
    case PROTO_CREDIT:
        if ((rc = proto_decode_u32_field(p, h->len, PT_BYTES, &v)) == PROTO_OK)
            exec_on_credit(e, v);
        break;
    case PROTO_SIGNAL:
        if ((rc = proto_decode_u32_field(p, h->len, PT_SIGNAL, &v)) == PROTO_OK)
            exec_on_signal(e, v);
        break;
    case PROTO_RESIZE:
        if ((rc = proto_decode_resize(p, h->len, &v, &w)) == PROTO_OK)
            exec_on_resize(e, v, w);
        break;
    default: break;
    }
    if (rc != PROTO_OK) {
        char msg[128];
        snprintf(msg, sizeof(msg), "malformed %s: %s", proto_type_name(h->type), proto_strerror(rc));
        session_send_error(a, h->stream, EINVAL, msg);
    }
}

static void on_frame(struct agent *a, const struct proto_header *h, const uint8_t *p, uint64_t now)
{
    char msg[160];
    switch (h->type) {
    case PROTO_PING: session_send(a, proto_encode_data(&agent_w, h->stream, PROTO_PONG, p, h->len)); break;
    case PROTO_PONG: break;
    case PROTO_ERROR: {
        struct proto_error_msg m;
        if (proto_decode_error(p, h->len, &m) == PROTO_OK)
            agent_log("host reports error on stream %u: %s", h->stream, m.message);
        break;
    }
    case PROTO_CONFIG: on_config(a, p, h->len); break;
    case PROTO_BOX_TRUST: trust_apply(a, p, h->len); break;
    case PROTO_SHUTDOWN: start_shutdown(a, p, h->len, now); break;
    case PROTO_EXEC:
        if (a->phase == PHASE_SERVING) {
            exec_start(a, h->stream, p, h->len, now);
        } else {
            const char *why =
                a->phase == PHASE_HANDSHAKE ? "agent not configured yet (send CONFIG first)" : "agent is shutting down";
            session_send_error(a, h->stream, a->phase == PHASE_HANDSHAKE ? EAGAIN : ESHUTDOWN, why);
            struct proto_exit x = {.code = 126};
            session_send(a, proto_encode_exit(&agent_w, h->stream, &x));
        }
        break;
    case PROTO_FILE_PUT:
    case PROTO_FILE_GET:
    case PROTO_FILE_OP:
        if (a->phase == PHASE_SERVING) {
            files_start(a, h->stream, h->type, p, h->len);
        } else {
            session_send_error(a, h->stream, a->phase == PHASE_HANDSHAKE ? EAGAIN : ESHUTDOWN,
                               "agent not serving (configuring or shutting down)");
            struct proto_exit x = {.code = 126};
            session_send(a, proto_encode_exit(&agent_w, h->stream, &x));
        }
        break;
    case PROTO_STATS: stats_reply(a, h->stream, p, h->len); break;
    case PROTO_FREEZE: freeze_on_request(a, p, h->len, now); break;
    case PROTO_RESTORED: freeze_on_restored(a, p, h->len); break;
    case PROTO_STDIN:
    case PROTO_STDIN_EOF:
    case PROTO_CREDIT:
    case PROTO_SIGNAL:
    case PROTO_RESIZE: on_exec_frame(a, h, p); break;
    default:
        snprintf(msg, sizeof(msg), "unexpected %s from the host", proto_type_name(h->type));
        log_protocol(msg, h);
        session_send_error(a, h->stream, EPROTO, msg);
        break;
    }
}

void session_on_readable(struct agent *a, uint64_t now)
{
    long n = proto_conn_read(&a->conn);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        /* No host on the other end (the port reads EOF and polls HUP until one
         * connects). Drop any half frame and look again a little later. */
        a->conn.eof = 0;
        a->conn.in_off = a->conn.in_len = 0;
        a->port_retry_at = now + PORT_RETRY_NS;
        return;
    }
    for (;;) {
        struct proto_header h;
        const uint8_t *p;
        int rc = proto_conn_next(&a->conn, &h, &p);
        if (rc == PROTO_NEED_MORE)
            break;
        if (rc != PROTO_OK) {
            char msg[160];
            snprintf(msg, sizeof(msg), "malformed frame from host: %s; input discarded", proto_strerror(rc));
            log_protocol(msg, &h);
            session_send_error(a, PROTO_STREAM_SESSION, EPROTO, msg);
            a->conn.in_off = a->conn.in_len = 0;
            break;
        }
        on_frame(a, &h, p, now);
    }
}
