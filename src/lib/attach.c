/* cocoon_attach: a private control connection attached to the box's main process
 * (VMM_ATTACH, docs/protocol.md "Attach"). One thread runs cocoon_attach_wait: it copies
 * the main process's output out and stdin in (through the detach key matcher); other
 * threads reach it through a pipe (resize, signal, detach), never touching the socket. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/detach_keys.h"
#include "util/util.h"

#define ATTACH_STREAM 1u
#define ATTACH_ANSWER_MS 30000          /* the monitor answers VMM_ATTACH at once; this is for a wedged one */
#define ATTACH_STDIN_CHUNK 4096u        /* bytes read from stdin_fd at a time */
#define ATTACH_STDIN_QUEUE (256u << 10) /* stdin is not read while this much waits to be sent */
#define ATTACH_SIGNALS_MAX 8            /* signals waiting to be sent */

struct cocoon_attach {
    cocoon_box *box;
    struct lib_xfer *x;
    cocoon_attach_options o;
    struct detach_keys keys;
    struct proto_attached info;
    int wake[2]; /* other threads write a byte here after changing the pending requests */
    pthread_mutex_t lock;
    unsigned rows, cols;
    int resize_pending, detach_pending;
    int signals[ATTACH_SIGNALS_MAX];
    int nsignals;
    int stdin_open; /* stdin_fd is still read */
};

void cocoon_attach_options_init(cocoon_attach_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
    opts->stdin_fd = -1;
    opts->stdout_fd = -1;
    opts->stderr_fd = -1;
    opts->notice_fd = -1;
}

int cocoon_attach_tty(const cocoon_attach *a) { return a && a->info.tty; }
int cocoon_attach_stdin(const cocoon_attach *a) { return a && a->stdin_open; }
int cocoon_attach_pid(const cocoon_attach *a) { return a ? (int)a->info.pid : 0; }

static int gone(cocoon_attach *a, cocoon_error *err)
{
    return lib_err(err, COCOON_E_STATE, "box %s stopped (its monitor closed the connection)", a->box->id);
}

/* Reads what the socket has; -1 with err when it closed or failed. */
static int read_more(cocoon_attach *a, cocoon_error *err)
{
    long n = proto_conn_read(&a->x->conn);
    if (n == 0)
        return gone(a, err);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return lib_err(err, COCOON_E_IO, "box %s: reading the control socket: %s", a->box->id, strerror(errno));
    return 0;
}

static int send_frame(cocoon_attach *a, size_t len, cocoon_error *err)
{
    if (len == 0 || proto_conn_send(&a->x->conn, a->x->w->buf, len) < 0)
        return lib_err(err, COCOON_E_IO, "box %s: cannot send to the monitor: %s", a->box->id, strerror(errno));
    return 0;
}

static int error_frame(cocoon_attach *a, const struct proto_header *h, const uint8_t *p, cocoon_error *err)
{
    struct proto_error_msg e;
    if (proto_decode_error(p, h->len, &e) != PROTO_OK)
        snprintf(e.message, sizeof(e.message), "malformed ERROR");
    int code = e.code == EBUSY ? COCOON_E_VMM : COCOON_E_STATE;
    return lib_err(err, code, "box %s: cannot attach: %s", a->box->name[0] ? a->box->name : a->box->id, e.message);
}

/* The answer to VMM_ATTACH. */
static int await_answer(cocoon_attach *a, cocoon_error *err)
{
    uint64_t end = util_now_ns(CLOCK_MONOTONIC) + ATTACH_ANSWER_MS * 1000000ull;
    for (;;) {
        struct proto_header h;
        const uint8_t *p;
        int rc = proto_conn_next(&a->x->conn, &h, &p);
        if (rc == PROTO_OK) {
            if (h.stream != ATTACH_STREAM)
                continue;
            if (h.type == PROTO_ERROR)
                return error_frame(a, &h, p, err);
            if (h.type != PROTO_VMM_ATTACHED || proto_decode_attached(p, h.len, &a->info) != PROTO_OK)
                return lib_err(err, COCOON_E_PROTOCOL, "box %s: unexpected answer to attach", a->box->id);
            return 0;
        }
        if (rc != PROTO_NEED_MORE)
            return lib_err(err, COCOON_E_PROTOCOL, "box %s: %s", a->box->id, proto_strerror(rc));
        uint64_t now = util_now_ns(CLOCK_MONOTONIC);
        if (now >= end)
            return lib_err(err, COCOON_E_VMM, "box %s: the monitor did not answer the attach", a->box->id);
        struct pollfd pf = {a->x->fd, (short)(POLLIN | (proto_conn_pending(&a->x->conn) ? POLLOUT : 0)), 0};
        if (poll(&pf, 1, (int)((end - now) / 1000000u) + 1) < 0 && errno != EINTR)
            return lib_err(err, COCOON_E_IO, "poll: %s", strerror(errno));
        if ((pf.revents & POLLOUT) && proto_conn_flush(&a->x->conn) < 0)
            return gone(a, err);
        if ((pf.revents & (POLLIN | POLLHUP | POLLERR)) && read_more(a, err) < 0)
            return -1;
    }
}

int cocoon_attach_start(cocoon_box *box, const cocoon_attach_options *opts, cocoon_attach **out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_attach_start: NULL argument");
    *out = NULL;
    cocoon_attach *a = calloc(1, sizeof(*a));
    if (!a)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    a->wake[0] = a->wake[1] = -1;
    cocoon_attach_options_init(&a->o);
    char why[512];
    if (LIB_OPTIONS(cocoon_attach_options, a->o, opts, err) < 0 ||
        (detach_keys_parse(a->o.detach_keys ? a->o.detach_keys : DETACH_KEYS_DEFAULT, &a->keys, why, sizeof(why)) < 0 &&
         lib_err(err, COCOON_E_INVALID, "%s", why) < 0)) {
        free(a);
        return -1;
    }
    if (a->o.rows > 65535 || a->o.cols > 65535) {
        lib_err(err, COCOON_E_INVALID, "terminal size %ux%u: at most 65535", a->o.rows, a->o.cols);
        free(a);
        return -1;
    }
    a->box = box;
    pthread_mutex_init(&a->lock, NULL);
    if (pipe2(a->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        lib_err(err, COCOON_E_IO, "pipe: %s", strerror(errno));
        cocoon_attach_free(a);
        return -1;
    }
    a->x = lib_xfer_open(box, err);
    if (!a->x) {
        cocoon_attach_free(a);
        return -1;
    }
    struct proto_attach req = {
        .flags = a->o.stdin_fd >= 0 ? PROTO_ATTACH_STDIN : 0, .rows = a->o.rows, .cols = a->o.cols};
    if (send_frame(a, proto_encode_attach(a->x->w, ATTACH_STREAM, &req), err) < 0 || await_answer(a, err) < 0) {
        cocoon_attach_free(a);
        return -1;
    }
    a->stdin_open = (a->info.flags & PROTO_ATTACH_STDIN) && a->o.stdin_fd >= 0;
    *out = a;
    return 0;
}

static void poke(cocoon_attach *a)
{
    char b = 1;
    ssize_t w = write(a->wake[1], &b, 1);
    (void)w; /* a full pipe already wakes the loop */
}

void cocoon_attach_resize(cocoon_attach *a, unsigned rows, unsigned cols)
{
    if (!a || !rows || !cols || rows > 65535 || cols > 65535)
        return;
    pthread_mutex_lock(&a->lock);
    a->rows = rows;
    a->cols = cols;
    a->resize_pending = 1;
    pthread_mutex_unlock(&a->lock);
    poke(a);
}

void cocoon_attach_signal(cocoon_attach *a, int signo)
{
    if (!a || signo <= 0 || signo > 64)
        return;
    pthread_mutex_lock(&a->lock);
    if (a->nsignals < ATTACH_SIGNALS_MAX)
        a->signals[a->nsignals++] = signo;
    pthread_mutex_unlock(&a->lock);
    poke(a);
}

void cocoon_attach_detach(cocoon_attach *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->detach_pending = 1;
    pthread_mutex_unlock(&a->lock);
    poke(a);
}

/* What other threads asked for: sent now. 1 when a detach was asked. */
static int take_requests(cocoon_attach *a, cocoon_error *err)
{
    char drain[64];
    while (read(a->wake[0], drain, sizeof(drain)) > 0) {
    }
    pthread_mutex_lock(&a->lock);
    int detach = a->detach_pending, resize = a->resize_pending, n = a->nsignals;
    unsigned rows = a->rows, cols = a->cols;
    int sigs[ATTACH_SIGNALS_MAX];
    memcpy(sigs, a->signals, sizeof(sigs));
    a->resize_pending = 0;
    a->nsignals = 0;
    pthread_mutex_unlock(&a->lock);
    if (resize && a->info.tty && send_frame(a, proto_encode_resize(a->x->w, ATTACH_STREAM, rows, cols), err) < 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (send_frame(a, proto_encode_signal(a->x->w, ATTACH_STREAM, (uint32_t)sigs[i]), err) < 0)
            return -1;
    return detach;
}

static void notice_dropped(cocoon_attach *a, uint64_t bytes, cocoon_attach_result *res)
{
    res->dropped += bytes;
    if (a->o.notice_fd < 0 || !bytes)
        return;
    char line[160];
    int n = snprintf(line, sizeof(line),
                     "\r\n[cocoon: %llu bytes of output skipped here: this terminal did not keep up (main.log has "
                     "them all)]\r\n",
                     (unsigned long long)bytes);
    lib_write_all(a->o.notice_fd, line, (size_t)n);
}

/* Typed input: through the detach matcher to the main process. 1 detach, 0 go on, -1 error. */
static int pump_stdin(cocoon_attach *a, cocoon_error *err)
{
    uint8_t in[ATTACH_STDIN_CHUNK], out[ATTACH_STDIN_CHUNK + DETACH_KEYS_MAX];
    ssize_t n = read(a->o.stdin_fd, in, sizeof(in));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    size_t len = 0;
    int detach = 0;
    if (n <= 0) {
        /* Our input ended: the main process's stdin stays open for others (docker's -i). */
        detach_keys_flush(&a->keys, out, &len);
        a->stdin_open = 0;
    } else {
        detach = detach_keys_feed(&a->keys, in, (size_t)n, out, &len);
    }
    if (len && send_frame(a, proto_encode_data(a->x->w, ATTACH_STREAM, PROTO_STDIN, out, len), err) < 0)
        return -1;
    return detach;
}

/* One frame from the monitor. 1 when the attachment is over (EXIT), 0 go on, -1 error. */
static int on_frame(cocoon_attach *a, const struct proto_header *h, const uint8_t *p, cocoon_attach_result *res,
                    cocoon_error *err)
{
    if (h->stream != ATTACH_STREAM)
        return 0;
    struct proto_attached note;
    struct proto_exit ex;
    switch (h->type) {
    case PROTO_STDOUT:
    case PROTO_STDERR: {
        int fd = h->type == PROTO_STDOUT ? a->o.stdout_fd : a->o.stderr_fd;
        if (fd >= 0)
            lib_write_all(fd, p, h->len);
        return 0;
    }
    case PROTO_VMM_ATTACHED:
        if (proto_decode_attached(p, h->len, &note) == PROTO_OK)
            notice_dropped(a, note.dropped, res);
        return 0;
    case PROTO_EXIT:
        if (proto_decode_exit(p, h->len, &ex) != PROTO_OK)
            return lib_err(err, COCOON_E_PROTOCOL, "box %s: malformed EXIT from the monitor", a->box->id);
        res->ended = 1;
        res->signal = (int)ex.signal;
        res->exit_code = ex.signal ? 128 + (int)ex.signal : ex.code;
        return 1;
    case PROTO_ERROR: return error_frame(a, h, p, err);
    default: return 0;
    }
}

int cocoon_attach_wait(cocoon_attach *a, cocoon_attach_result *res, cocoon_error *err)
{
    lib_err_clear(err);
    if (!a || !res)
        return lib_err(err, COCOON_E_INVALID, "cocoon_attach_wait: NULL argument");
    memset(res, 0, sizeof(*res));
    for (;;) {
        struct proto_header h;
        const uint8_t *p;
        int rc;
        while ((rc = proto_conn_next(&a->x->conn, &h, &p)) == PROTO_OK) {
            int done = on_frame(a, &h, p, res, err);
            if (done)
                return done < 0 ? -1 : 0;
        }
        if (rc != PROTO_NEED_MORE)
            return lib_err(err, COCOON_E_PROTOCOL, "box %s: %s", a->box->id, proto_strerror(rc));
        if (a->x->conn.eof)
            return gone(a, err);
        size_t queued = proto_conn_pending(&a->x->conn);
        struct pollfd pf[3] = {{a->x->fd, (short)(POLLIN | (queued ? POLLOUT : 0)), 0},
                               {a->wake[0], POLLIN, 0},
                               {a->stdin_open && queued < ATTACH_STDIN_QUEUE ? a->o.stdin_fd : -1, POLLIN, 0}};
        if (poll(pf, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return lib_err(err, COCOON_E_IO, "poll: %s", strerror(errno));
        }
        if ((pf[0].revents & POLLOUT) && proto_conn_flush(&a->x->conn) < 0)
            return gone(a, err);
        if ((pf[0].revents & (POLLIN | POLLHUP | POLLERR)) && read_more(a, err) < 0)
            return -1;
        if (pf[1].revents & POLLIN) {
            rc = take_requests(a, err);
            if (rc < 0)
                return -1;
            if (rc > 0) {
                res->detached = 1;
                return 0;
            }
        }
        if (pf[2].revents & (POLLIN | POLLHUP | POLLERR)) {
            rc = pump_stdin(a, err);
            if (rc < 0)
                return -1;
            if (rc > 0) {
                res->detached = 1;
                return 0;
            }
        }
    }
}

void cocoon_attach_free(cocoon_attach *a)
{
    if (!a)
        return;
    if (a->x)
        lib_xfer_close(a->x); /* the monitor forgets this attacher when the connection closes */
    if (a->wake[0] >= 0)
        close(a->wake[0]);
    if (a->wake[1] >= 0)
        close(a->wake[1]);
    if (a->box)
        pthread_mutex_destroy(&a->lock);
    free(a);
}
