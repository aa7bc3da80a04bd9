/* The hostile agent's end of the channel: a bounded output queue written while the
 * host's frames are read and dispatched (credits, signals, pings, shutdown), so an
 * attack can block on its own writes without deadlocking the host's relay. */
#include "hostile.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

struct hostile H;
static struct proto_writer reply_w; /* frames the dispatcher sends: never H.w */

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void hlog(const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "hostile-agent: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m < sizeof(line) - (size_t)n - 1 ? (size_t)m : sizeof(line) - 2);
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}

uint32_t rnd(void)
{
    static uint64_t s = 0x9e3779b97f4a7c15ull;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return (uint32_t)(s >> 16);
}

void chan_init(int fd)
{
    H.fd = fd;
    H.next_pid = 1000;
    if (proto_conn_init(&H.conn, fd, 16u << 20) != 0) {
        hlog("out of memory");
        reboot(RB_AUTOBOOT);
    }
}

/* ---- streams ---- */

struct hstream *stream_find(uint32_t id)
{
    for (int i = 0; i < HOSTILE_MAX_STREAMS; i++)
        if (H.streams[i].in_use && H.streams[i].id == id)
            return &H.streams[i];
    return NULL;
}

struct hstream *stream_open(uint32_t id, uint32_t window)
{
    for (int i = 0; i < HOSTILE_MAX_STREAMS; i++) {
        if (!H.streams[i].in_use) {
            memset(&H.streams[i], 0, sizeof(H.streams[i]));
            H.streams[i] = (struct hstream){.id = id, .credit = window, .in_use = 1};
            return &H.streams[i];
        }
    }
    return NULL;
}

void stream_close(struct hstream *s) { s->in_use = 0; }

/* ---- input ---- */

static void reply(size_t len)
{
    if (len && proto_conn_send(&H.conn, reply_w.buf, len) != 0 && errno != EAGAIN)
        hlog("queueing a reply: %s", strerror(errno));
}

static void queue_open(const struct proto_header *h, const uint8_t *p)
{
    if (H.nqueued == HOSTILE_MAX_QUEUED) {
        reply(proto_encode_error(&reply_w, h->stream, EAGAIN, "hostile agent busy"));
        struct proto_exit x = {.code = 126};
        reply(proto_encode_exit(&reply_w, h->stream, &x));
        return;
    }
    struct hqueued *q = &H.queued[H.nqueued];
    q->payload = malloc(h->len ? h->len : 1);
    if (!q->payload)
        return;
    memcpy(q->payload, p, h->len);
    q->h = *h;
    H.nqueued++;
}

int chan_next_queued(struct hqueued *out)
{
    if (H.nqueued == 0)
        return 0;
    *out = H.queued[0];
    memmove(&H.queued[0], &H.queued[1], (size_t)(H.nqueued - 1) * sizeof(H.queued[0]));
    H.nqueued--;
    return 1;
}

static void on_config(const uint8_t *p, size_t n)
{
    struct proto_config c;
    if (proto_decode_config(p, n, &c) != PROTO_OK) {
        hlog("malformed CONFIG");
        return;
    }
    struct proto_ready r = {.boot_ns = 1, .init_ns = 1};
    reply(proto_encode_ready(&reply_w, &r));
    H.configured = 1;
    hlog("configured: serving attacks");
}

static void dispatch(const struct proto_header *h, const uint8_t *p)
{
    struct hstream *s = h->stream ? stream_find(h->stream) : NULL;
    uint32_t v;
    switch (h->type) {
    case PROTO_PING: reply(proto_encode_data(&reply_w, h->stream, PROTO_PONG, p, h->len)); break;
    case PROTO_CONFIG: on_config(p, h->len); break;
    case PROTO_SHUTDOWN:
        hlog("shutdown requested: powering off");
        reboot(RB_AUTOBOOT);
        break;
    case PROTO_EXEC:
    case PROTO_FILE_PUT:
    case PROTO_FILE_GET:
    case PROTO_FILE_OP:
    case PROTO_STATS: queue_open(h, p); break;
    case PROTO_CREDIT:
        if (s && proto_decode_u32_field(p, h->len, PT_BYTES, &v) == PROTO_OK)
            s->credit += v;
        break;
    case PROTO_SIGNAL:
        if (s && proto_decode_u32_field(p, h->len, PT_SIGNAL, &v) == PROTO_OK)
            s->signal = v;
        break;
    case PROTO_STDIN_EOF:
        if (s)
            s->stdin_eof = 1;
        break;
    default: break; /* STDIN, RESIZE, ERROR: nothing to do */
    }
}

static void read_input(void)
{
    long n = proto_conn_read(&H.conn);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        /* No host on the other end yet: the port reads EOF until one connects. */
        H.conn.eof = 0;
        H.conn.in_off = H.conn.in_len = 0;
        usleep(50 * 1000);
        return;
    }
    for (;;) {
        struct proto_header h;
        const uint8_t *p;
        int rc = proto_conn_next(&H.conn, &h, &p);
        if (rc == PROTO_NEED_MORE)
            return;
        if (rc != PROTO_OK) {
            hlog("malformed frame from the host: %s", proto_strerror(rc));
            H.conn.in_off = H.conn.in_len = 0;
            return;
        }
        dispatch(&h, p);
    }
}

void chan_pump(int ms)
{
    if (proto_conn_flush(&H.conn) != 0)
        hlog("writing to the host: %s", strerror(errno));
    struct pollfd pf = {.fd = H.fd,
                        .events = (short)((H.deaf ? 0 : POLLIN) | (proto_conn_pending(&H.conn) ? POLLOUT : 0))};
    if (poll(&pf, 1, ms) <= 0)
        return;
    if (pf.revents & POLLOUT)
        proto_conn_flush(&H.conn);
    if (!H.deaf && (pf.revents & (POLLIN | POLLHUP | POLLERR)))
        read_input();
}

static void drain_to(size_t keep)
{
    while (proto_conn_pending(&H.conn) > keep)
        chan_pump(1000);
}

static void queue_bytes(const void *p, size_t n)
{
    while (proto_conn_send(&H.conn, p, n) != 0) {
        if (errno != ENOBUFS) {
            hlog("writing to the host: %s", strerror(errno));
            return;
        }
        drain_to(0);
    }
}

void chan_send_w(size_t len, size_t keep)
{
    if (len == 0) {
        hlog("internal: a frame did not fit");
        return;
    }
    queue_bytes(H.w.buf, len);
    drain_to(keep);
}

void chan_send_raw(const void *p, size_t n)
{
    queue_bytes(p, n);
    drain_to(0);
}

/* ---- output on a stream ---- */

int stream_out(struct hstream *s, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        if (s->signal)
            return -1;
        if (s->credit <= 0) {
            chan_pump(100);
            continue;
        }
        size_t k = n < PROTO_MAX_PAYLOAD ? n : PROTO_MAX_PAYLOAD;
        if ((int64_t)k > s->credit)
            k = (size_t)s->credit;
        chan_send_w(proto_encode_data(&H.w, s->id, PROTO_STDOUT, b, k), 256u << 10);
        s->credit -= (int64_t)k;
        b += k;
        n -= k;
    }
    return 0;
}

int stream_printf(struct hstream *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    return stream_out(s, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void stream_exit(struct hstream *s, int code)
{
    struct proto_exit x = {.code = code & 0xff};
    chan_send_w(proto_encode_exit(&H.w, s->id, &x), 0);
    stream_close(s);
}
