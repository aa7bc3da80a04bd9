/* lib_xfer: one stream over a private control connection to a box's monitor (file
 * transfers, stats, exec lists), so these never share the box handle's exec pump. The
 * guest at the other end may stall on purpose: every wait is bounded by an idle limit
 * (time spent waiting without the guest moving the transfer forward) and an optional
 * deadline for the whole transfer. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

#define XFER_STREAM 1u
#define CLOSE_FLUSH_MS 1000u /* how long a closing transfer waits for the monitor to take its last frames */
/* The monitor's end of the connection is gone: it exits only when the box stops. */
#define MONITOR_GONE "the box stopped during the transfer (monitor closed the connection)"

/* Records the first failure as "box ID: <prefix><detail>". */
static int xfer_fail(struct lib_xfer *x, int code, const char *prefix, const char *detail)
{
    if (!x->failed) {
        x->failed = 1;
        lib_err(x->err, code, "box %s: %s%s", x->box->id, prefix, detail);
    }
    return -1;
}

static void xfer_release(struct lib_xfer *x)
{
    if (x->conn_init)
        proto_conn_free(&x->conn);
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
    x->conn_init = 0;
    free(x->w);
    x->w = NULL;
}

void lib_xfer_set_timeouts(struct lib_xfer *x, unsigned idle_ms, unsigned timeout_ms)
{
    if (idle_ms)
        x->idle_limit_ns = (uint64_t)idle_ms * 1000000u;
    x->deadline_ns = timeout_ms ? util_now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000u : 0;
}

void lib_xfer_progress(struct lib_xfer *x) { x->idle_ns = 0; }

/* Takes over fd (connected to a monitor) and reads its greeting. */
static int xfer_start(cocoon_box *box, struct lib_xfer *x, int fd, cocoon_error *err)
{
    memset(x, 0, sizeof(*x));
    x->box = box;
    x->err = err;
    x->fd = fd;
    x->stream = XFER_STREAM;
    struct lib_copy_limits lim;
    if (lib_copy_limits(NULL, &lim, err) < 0) {
        xfer_release(x);
        return -1;
    }
    lib_xfer_set_timeouts(x, lim.idle_timeout_ms, 0);
    x->w = malloc(sizeof(*x->w));
    if (!x->w || proto_conn_init(&x->conn, x->fd, 0) < 0) {
        xfer_release(x);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    x->conn_init = 1;
    util_set_nonblock(x->fd, 1);
    struct proto_header h;
    const uint8_t *p;
    if (lib_xfer_next(x, &h, &p, 1) < 0) {
        xfer_release(x);
        return -1;
    }
    struct proto_vmm_hello hello;
    if (lib_ctl_hello(box, &h, p, &hello, err) < 0) {
        xfer_release(x);
        return -1;
    }
    return 0;
}

struct lib_xfer *lib_xfer_attach(cocoon_box *box, int fd, cocoon_error *err)
{
    struct lib_xfer *x = malloc(sizeof(*x));
    if (!x) {
        close(fd);
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        return NULL;
    }
    if (xfer_start(box, x, fd, err) < 0) {
        free(x);
        return NULL;
    }
    return x;
}

struct lib_xfer *lib_xfer_open(cocoon_box *box, cocoon_error *err)
{
    int fd = lib_ctl_socket(box, err);
    return fd < 0 ? NULL : lib_xfer_attach(box, fd, err);
}

/* Frames still queued (a cancel, the last data) go out before the connection closes,
 * as long as the monitor takes them within CLOSE_FLUSH_MS. */
static void xfer_flush(struct lib_xfer *x)
{
    uint64_t end = util_now_ns(CLOCK_MONOTONIC) + CLOSE_FLUSH_MS * 1000000ull;
    while (x->conn_init && !x->failed && proto_conn_pending(&x->conn)) {
        uint64_t now = util_now_ns(CLOCK_MONOTONIC);
        if (now >= end)
            return;
        struct pollfd pf = {x->fd, POLLOUT, 0};
        int n = poll(&pf, 1, (int)((end - now) / 1000000u) + 1);
        if (n < 0 && errno != EINTR)
            return;
        if (n > 0 && ((pf.revents & (POLLERR | POLLHUP)) || proto_conn_flush(&x->conn) < 0))
            return;
    }
}

void lib_xfer_close(struct lib_xfer *x)
{
    xfer_flush(x);
    xfer_release(x);
    free(x);
}

int lib_xfer_send(struct lib_xfer *x, size_t len)
{
    if (len == 0)
        return xfer_fail(x, COCOON_E_INVALID, "", "message too large for one frame");
    if (proto_conn_send(&x->conn, x->w->buf, len) < 0)
        return errno == EPIPE || errno == ECONNRESET
                   ? xfer_fail(x, COCOON_E_VMM, "", MONITOR_GONE)
                   : xfer_fail(x, COCOON_E_VMM, "cannot send to the monitor: ", strerror(errno));
    return 0;
}

/* Milliseconds poll may wait before a limit is reached, -1 without limits; 0 with the
 * failure recorded when one is reached already. */
static int wait_budget(struct lib_xfer *x, uint64_t waited_ns)
{
    uint64_t now = util_now_ns(CLOCK_MONOTONIC), left = UINT64_MAX;
    char msg[256];
    if (x->idle_limit_ns) {
        if (x->idle_ns + waited_ns >= x->idle_limit_ns) {
            snprintf(msg, sizeof(msg),
                     "the transfer stalled: the guest sent nothing for %llu s (raise the limit with "
                     "COCOON_CP_IDLE_TIMEOUT=SECONDS or cocoon_copy_options.idle_timeout_ms)",
                     (unsigned long long)(x->idle_limit_ns / 1000000000u));
            xfer_fail(x, COCOON_E_IO, "", msg);
            return 0;
        }
        left = x->idle_limit_ns - x->idle_ns - waited_ns;
    }
    if (x->deadline_ns) {
        if (now >= x->deadline_ns) {
            xfer_fail(x, COCOON_E_IO, "",
                      "the transfer did not finish within its timeout (cocoon_copy_options.timeout_ms)");
            return 0;
        }
        if (x->deadline_ns - now < left)
            left = x->deadline_ns - now;
    }
    if (left == UINT64_MAX)
        return -1;
    uint64_t ms = (left + 999999u) / 1000000u;
    return ms > 3600000u ? 3600000 : (int)ms;
}

static int xfer_next(struct lib_xfer *x, struct proto_header *h, const uint8_t **p, int any_stream, uint64_t t0)
{
    for (;;) {
        if (x->failed)
            return -1;
        int rc = proto_conn_next(&x->conn, h, p);
        if (rc == PROTO_OK) {
            if (any_stream || h->stream == x->stream)
                return 0;
            continue;
        }
        if (rc != PROTO_NEED_MORE)
            return xfer_fail(x, COCOON_E_PROTOCOL, "bad frame from the monitor: ", proto_strerror(rc));
        int budget = wait_budget(x, util_now_ns(CLOCK_MONOTONIC) - t0);
        if (budget == 0)
            return -1;
        struct pollfd pf = {x->fd, (short)(POLLIN | (proto_conn_pending(&x->conn) ? POLLOUT : 0)), 0};
        int n = poll(&pf, 1, budget);
        if (n < 0 && errno != EINTR)
            return xfer_fail(x, COCOON_E_IO, "poll: ", strerror(errno));
        if (n <= 0)
            continue;
        if ((pf.revents & POLLOUT) && proto_conn_flush(&x->conn) < 0)
            return xfer_fail(x, COCOON_E_VMM, "", MONITOR_GONE);
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            long r = proto_conn_read(&x->conn);
            if (r == 0)
                return xfer_fail(x, COCOON_E_VMM, "", MONITOR_GONE);
            if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return xfer_fail(x, COCOON_E_VMM, "reading from the monitor: ", strerror(errno));
        }
    }
}

/* Next frame from the monitor (any stream), waiting for it and flushing our output
 * meanwhile. With any_stream 0, frames for other streams are skipped. The time spent
 * here counts as idle until the caller reports progress. */
int lib_xfer_next(struct lib_xfer *x, struct proto_header *h, const uint8_t **p, int any_stream)
{
    uint64_t t0 = util_now_ns(CLOCK_MONOTONIC);
    int rc = xfer_next(x, h, p, any_stream, t0);
    x->idle_ns += util_now_ns(CLOCK_MONOTONIC) - t0;
    return rc;
}

static int send_credit(struct lib_xfer *x, uint32_t bytes)
{
    if (bytes == 0 || x->done)
        return 0;
    return lib_xfer_send(x, proto_encode_credit(x->w, x->stream, bytes));
}

/* Handles a frame of our stream other than STDOUT. -1 on a protocol error. STDERR and
 * dropped STDOUT are not progress: a guest that only chatters still times out. */
int lib_xfer_handle(struct lib_xfer *x, const struct proto_header *h, const uint8_t *p)
{
    switch (h->type) {
    case PROTO_STARTED: {
        struct proto_started m;
        if (proto_decode_started(p, h->len, &m) != PROTO_OK)
            return xfer_fail(x, COCOON_E_PROTOCOL, "", "malformed STARTED");
        x->started = 1;
        x->credit += m.window;
        lib_xfer_progress(x);
        return 0;
    }
    case PROTO_CREDIT: {
        uint32_t bytes;
        if (proto_decode_u32_field(p, h->len, PT_BYTES, &bytes) != PROTO_OK)
            return xfer_fail(x, COCOON_E_PROTOCOL, "", "malformed CREDIT");
        x->credit += bytes;
        if (bytes)
            lib_xfer_progress(x);
        return 0;
    }
    case PROTO_STDERR: {
        size_t room = sizeof(x->errtext) - 1 - x->errlen;
        size_t k = h->len < room ? h->len : room;
        memcpy(x->errtext + x->errlen, p, k);
        x->errlen += k;
        x->errtext[x->errlen] = 0;
        return send_credit(x, h->len);
    }
    case PROTO_STDOUT: return send_credit(x, h->len); /* nobody reads it here */
    case PROTO_ERROR: {
        struct proto_error_msg m;
        if (proto_decode_error(p, h->len, &m) != PROTO_OK)
            snprintf(m.message, sizeof(m.message), "malformed ERROR message");
        snprintf(x->errmsg, sizeof(x->errmsg), "%s", m.message);
        x->errcode = (int)m.code;
        if (x->started && m.code == EPROTO) { /* the monitor ended the stream: the guest broke the protocol */
            char shown[512];
            return xfer_fail(x, COCOON_E_PROTOCOL, "",
                             util_escape_text(shown, sizeof(shown), m.message, strlen(m.message)));
        }
        if (!x->started)
            x->done = 1;
        lib_xfer_progress(x);
        return 0;
    }
    case PROTO_EXIT: {
        struct proto_exit m;
        if (proto_decode_exit(p, h->len, &m) != PROTO_OK)
            return xfer_fail(x, COCOON_E_PROTOCOL, "", "malformed EXIT");
        x->exited = 1;
        x->exit_code = m.signal ? 128 + (int)m.signal : m.code;
        x->done = 1;
        lib_xfer_progress(x);
        return 0;
    }
    default: return 0;
    }
}

int lib_xfer_credit(struct lib_xfer *x, uint32_t bytes) { return send_credit(x, bytes); }
