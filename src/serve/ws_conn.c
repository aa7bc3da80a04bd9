/* A WebSocket connection over a socket, server side: whole frames written under a lock
 * (one thread sends output while the reader answers pings and closes) with a deadline
 * per frame, and whole messages read with a deadline per call, pings answered on the way. */
#include "serve/ws.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

/* The most pieces one ws_send takes (the attach stream sends a tag byte and a chunk). */
#define WS_SEND_IOV_MAX 8

/* Called with write_lock held, or by the reader before any other thread has the conn. */
static void set_error(struct ws_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct ws_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
}

int ws_conn_init(struct ws_conn *c, int fd, size_t max_message, const void *extra_in, size_t extra_len)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    struct stat st;
    c->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    c->send_timeout_ms = WS_SEND_TIMEOUT_MS_DEFAULT;
    ws_parser_init(&c->parser, max_message);
    c->in_cap = extra_len > WS_READ_CHUNK ? extra_len : WS_READ_CHUNK;
    c->in = malloc(c->in_cap);
    if (!c->in) {
        set_error(c, "out of memory for a WebSocket connection");
        return -1;
    }
    if (extra_len)
        memcpy(c->in, extra_in, extra_len);
    c->in_len = extra_len;
    pthread_mutex_init(&c->write_lock, NULL);
    return 0;
}

void ws_conn_destroy(struct ws_conn *c)
{
    if (!c->in)
        return;
    ws_parser_free(&c->parser);
    free(c->in);
    c->in = NULL;
    pthread_mutex_destroy(&c->write_lock);
}

void ws_conn_error(struct ws_conn *c, char *out, size_t cap)
{
    pthread_mutex_lock(&c->write_lock);
    snprintf(out, cap, "%s", c->error);
    pthread_mutex_unlock(&c->write_lock);
}

unsigned long ws_conn_pongs(const struct ws_conn *c) { return __atomic_load_n(&c->pongs, __ATOMIC_RELAXED); }

/* Milliseconds left until deadline_ns (CLOCK_MONOTONIC), at least 0; -1 without one. */
static int ms_left(uint64_t deadline_ns)
{
    if (!deadline_ns)
        return -1;
    uint64_t now = util_now_ns(CLOCK_MONOTONIC);
    if (now >= deadline_ns)
        return 0;
    uint64_t ms = (deadline_ns - now + 999999) / 1000000;
    return ms > 1000000000 ? 1000000000 : (int)ms;
}

/* 0 stands for no deadline (a monotonic clock never reads 0 in practice; 1 if it did). */
static uint64_t deadline_after(int timeout_ms)
{
    if (timeout_ms < 0)
        return 0;
    uint64_t d = util_now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000;
    return d ? d : 1;
}

/* Writes every byte of v[0..n) (which it consumes), across short writes, EINTR and a
 * full socket, by the deadline. 0, or -1 with the error set (write_lock held). */
static int write_iov(struct ws_conn *c, struct iovec *v, int n)
{
    uint64_t deadline = deadline_after(c->send_timeout_ms);
    while (n > 0) {
        ssize_t w;
        if (c->is_socket) {
            struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)n};
            w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            w = writev(c->fd, v, n);
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
            int r = poll(&pf, 1, ms_left(deadline));
            if (r == 0) {
                set_error(c, "the client did not take a frame within %d ms", c->send_timeout_ms);
                errno = ETIMEDOUT;
                return -1;
            }
            if (r < 0 && errno != EINTR) {
                set_error(c, "waiting to write to the client: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        if (w < 0) {
            set_error(c, "writing to the client: %s", strerror(errno));
            return -1;
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= v->iov_len) {
            done -= v->iov_len;
            v++, n--;
        }
        if (n > 0) {
            v->iov_base = (uint8_t *)v->iov_base + done;
            v->iov_len -= done;
        }
    }
    return 0;
}

int ws_send(struct ws_conn *c, enum ws_opcode op, const struct iovec *iov, int iovcnt)
{
    const char *refused = NULL;
    uint64_t len = 0;
    if (iovcnt < 0 || iovcnt > WS_SEND_IOV_MAX ||
        (op != WS_OP_TEXT && op != WS_OP_BINARY && op != WS_OP_CLOSE && op != WS_OP_PING && op != WS_OP_PONG)) {
        refused = "invalid frame to send (opcode or number of pieces)";
    } else {
        struct ws_utf8 u = {0};
        int utf8_ok = 1;
        for (int i = 0; i < iovcnt; i++) {
            len += iov[i].iov_len;
            if (op == WS_OP_TEXT)
                utf8_ok = utf8_ok && ws_utf8_feed(&u, iov[i].iov_base, iov[i].iov_len);
        }
        if ((op & 0x8) && len > WS_CONTROL_MAX)
            refused = "control frame payload longer than 125 bytes";
        else if (op == WS_OP_TEXT && !(utf8_ok && ws_utf8_complete(&u)))
            refused = "text to send is not valid UTF-8";
    }

    pthread_mutex_lock(&c->write_lock);
    int rc = -1;
    if (refused) {
        set_error(c, "%s", refused);
        errno = EINVAL;
    } else if (c->close_sent && op == WS_OP_CLOSE) {
        rc = 0; /* the closing handshake starts once, whichever thread asks first */
    } else if (c->broken) {
        set_error(c, "the connection is broken (a frame was cut short)");
        errno = EPIPE;
    } else if (c->close_sent && op != WS_OP_PONG) {
        /* RFC 6455 5.5.1: nothing but a pong (to a late ping) follows our close. */
        set_error(c, "the connection is closing: a close frame was sent");
        errno = EPIPE;
    } else {
        uint8_t hdr[WS_HEADER_MAX];
        struct iovec v[1 + WS_SEND_IOV_MAX];
        v[0].iov_base = hdr;
        v[0].iov_len = ws_frame_header(hdr, op, len, NULL);
        int n = 1;
        for (int i = 0; i < iovcnt; i++)
            if (iov[i].iov_len)
                v[n++] = iov[i];
        rc = write_iov(c, v, n);
        if (rc < 0)
            c->broken = 1;
        else if (op == WS_OP_CLOSE)
            c->close_sent = 1;
    }
    pthread_mutex_unlock(&c->write_lock);
    return rc;
}

static int send_one(struct ws_conn *c, enum ws_opcode op, const void *data, size_t len)
{
    struct iovec v = {.iov_base = (void *)data, .iov_len = len};
    return ws_send(c, op, &v, 1);
}

int ws_send_text(struct ws_conn *c, const void *data, size_t len) { return send_one(c, WS_OP_TEXT, data, len); }
int ws_send_binary(struct ws_conn *c, const void *data, size_t len) { return send_one(c, WS_OP_BINARY, data, len); }
int ws_send_ping(struct ws_conn *c, const void *data, size_t len) { return send_one(c, WS_OP_PING, data, len); }

int ws_send_close(struct ws_conn *c, uint16_t code, const char *reason)
{
    uint8_t payload[2 + WS_CLOSE_REASON_MAX];
    size_t len = 0;
    if (code && !ws_close_code_valid(code)) {
        pthread_mutex_lock(&c->write_lock);
        set_error(c, "close code %u may not be sent", code);
        pthread_mutex_unlock(&c->write_lock);
        errno = EINVAL;
        return -1;
    }
    if (code) {
        payload[0] = (uint8_t)(code >> 8), payload[1] = (uint8_t)code;
        size_t rlen = reason ? strnlen(reason, WS_CLOSE_REASON_MAX) : 0;
        /* Cut at a character boundary (and drop what is not UTF-8 at all). */
        while (rlen > 0 && !ws_utf8_valid(reason, rlen))
            rlen--;
        if (rlen)
            memcpy(payload + 2, reason, rlen);
        len = 2 + rlen;
    }
    return send_one(c, WS_OP_CLOSE, payload, len);
}

/* ---- reading ---- */

/* Ends the reading side: later calls return the same result. */
static enum ws_read_result finish(struct ws_conn *c, enum ws_read_result r, uint16_t code)
{
    c->read_done = r;
    c->close_code = code;
    return r;
}

static enum ws_read_result read_error(struct ws_conn *c, uint16_t code, const char *what, const char *detail)
{
    pthread_mutex_lock(&c->write_lock);
    set_error(c, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    pthread_mutex_unlock(&c->write_lock);
    return finish(c, WS_READ_ERROR, code);
}

/* What one parser event means for the reader: a result to return, or -1 to go on. */
static int on_event(struct ws_conn *c, const struct ws_event *ev, struct ws_message *msg)
{
    switch (ev->type) {
    case WS_EV_NONE: return -1;
    case WS_EV_MESSAGE:
        msg->opcode = ev->opcode;
        msg->data = ev->data;
        msg->len = ev->len;
        return WS_READ_MESSAGE;
    case WS_EV_PING: {
        struct iovec v = {.iov_base = (void *)ev->data, .iov_len = ev->len};
        if (ws_send(c, WS_OP_PONG, &v, 1) < 0)
            return finish(c, WS_READ_ERROR, WS_CLOSE_ABNORMAL);
        return -1;
    }
    case WS_EV_PONG: __atomic_add_fetch(&c->pongs, 1, __ATOMIC_RELAXED); return -1;
    case WS_EV_CLOSE: {
        c->close_received = 1;
        /* Echo the code (RFC 6455 5.5.1); a close without one is answered without one. */
        uint16_t echo = ev->close_code == WS_CLOSE_NO_STATUS ? 0 : ev->close_code;
        if (ws_send_close(c, echo, NULL) < 0)
            return finish(c, WS_READ_ERROR, ev->close_code);
        return finish(c, WS_READ_CLOSED, ev->close_code);
    }
    case WS_EV_ERROR:
    default:
        ws_send_close(c, ev->close_code, ev->error); /* best effort: the stream is failed anyway */
        return read_error(c, ev->close_code, ev->error, NULL);
    }
}

enum ws_read_result ws_read_message(struct ws_conn *c, int timeout_ms, struct ws_message *msg)
{
    memset(msg, 0, sizeof(*msg));
    if (c->read_done)
        return c->read_done;
    uint64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        /* Parse everything buffered first (also with nothing buffered: the parser drops
         * the previous message's buffer then). */
        for (;;) {
            struct ws_event ev;
            size_t n = ws_parse(&c->parser, c->in + c->in_off, c->in_len - c->in_off, &ev);
            c->in_off += n;
            int r = on_event(c, &ev, msg);
            if (r >= 0)
                return (enum ws_read_result)r;
            if (c->in_off == c->in_len)
                break;
        }
        c->in_off = c->in_len = 0;

        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pf, 1, ms_left(deadline));
        if (pr == 0)
            return WS_READ_TIMEOUT;
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            return read_error(c, WS_CLOSE_ABNORMAL, "waiting for the client", strerror(errno));
        }
        ssize_t got = c->is_socket ? recv(c->fd, c->in, c->in_cap, MSG_DONTWAIT) : read(c->fd, c->in, c->in_cap);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return read_error(c, WS_CLOSE_ABNORMAL, "reading from the client", strerror(errno));
        }
        if (got == 0)
            return read_error(c, WS_CLOSE_ABNORMAL, "the client went away without a close frame", NULL);
        c->in_len = (size_t)got;
    }
}
