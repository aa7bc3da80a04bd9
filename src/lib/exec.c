/* Commands in a running box: EXEC streams multiplexed over the box handle's control
 * connection. One thread at a time (the holder of the pump token) reads the connection
 * and routes each frame into its exec's queue; each exec's output is delivered by the
 * thread waiting for that exec, outside any lock, and only then credited back. So a
 * slow reader of one exec never stops the socket for the others, memory stays bounded
 * by one window per exec, and stdin is sent only as far as the guest granted credit. */
#include "lib/internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

#define STDIN_CHUNK (60u * 1024u)
#define PUMP_POLL_MS 500
/* How long past its timeout, or past a SIGKILL, a command's EXIT is waited for: the
 * agent kills on time, so only a guest that ignores both (not cocoon-agent, or a
 * stuck one) runs into this, and the caller gets an error instead of a hang. */
#define LIB_EXEC_GIVE_UP_MS 10000u

void cocoon_exec_options_init(cocoon_exec_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
    opts->stdin_fd = COCOON_STDIN_NONE;
    opts->stdout_fd = -1;
    opts->stderr_fd = -1;
}

int cocoon_exit_status_code(const cocoon_exit_status *status)
{
    if (!status)
        return -1;
    return status->signal ? 128 + status->signal : status->exit_code;
}

/* ---- sending (all under box->lock) ---- */

/* The pump polls for POLLOUT only when it saw unsent data when it went to sleep:
 * wake it when a frame could not be written at once. */
static void wake_pump_locked(cocoon_box *box)
{
    if (box->wake_open) {
        uint64_t one = 1;
        ssize_t w = write(box->wake_fd, &one, sizeof(one));
        (void)w;
    }
}

/* Frames are built in a 64 KiB writer: heap, not stack, so threads with small stacks
 * (language runtimes) can call us. */
static int send_built_locked(cocoon_box *box, struct proto_writer *w, size_t len, cocoon_error *err)
{
    int rc = lib_ctl_send_locked(box, w->buf, len, err);
    if (rc == 0 && !box->conn.corked && proto_conn_pending(&box->conn))
        wake_pump_locked(box);
    free(w);
    return rc;
}

static int send_data_locked(cocoon_box *box, uint32_t stream, uint16_t type, const void *data, size_t n,
                            cocoon_error *err)
{
    struct proto_writer *w = malloc(sizeof(*w));
    if (!w)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    return send_built_locked(box, w, proto_encode_data(w, stream, type, data, n), err);
}

static int send_u32_locked(cocoon_box *box, uint32_t stream, uint16_t type, uint32_t v, cocoon_error *err)
{
    struct proto_writer *w = malloc(sizeof(*w));
    if (!w)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    size_t len = type == PROTO_CREDIT ? proto_encode_credit(w, stream, v) : proto_encode_signal(w, stream, v);
    return send_built_locked(box, w, len, err);
}

/* ---- delivering output (on the thread that waits for the exec, without the lock) ---- */

static int write_full(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {fd, POLLOUT, 0};
            poll(&pf, 1, -1);
            continue;
        }
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void deliver(cocoon_exec *ex, uint16_t type, const char *data, size_t len)
{
    int out = type == PROTO_STDOUT;
    int fd = out ? ex->opts.stdout_fd : ex->opts.stderr_fd;
    int *broken = out ? &ex->out_broken : &ex->err_broken;
    if (fd >= 0) {
        if (!*broken && write_full(fd, data, len) < 0) {
            /* Like a local pipeline: the reader went away, so the writer gets SIGPIPE;
             * further output is dropped (and still credited so nothing stalls). */
            *broken = 1;
            if (errno == EPIPE && ex->box) {
                pthread_mutex_lock(&ex->box->lock);
                if (!ex->finished)
                    send_u32_locked(ex->box, ex->stream, PROTO_SIGNAL, SIGPIPE, NULL);
                pthread_mutex_unlock(&ex->box->lock);
            }
        }
    } else {
        cocoon_output_fn fn = out ? ex->opts.on_stdout : ex->opts.on_stderr;
        if (fn)
            fn(ex->opts.user_data, data, len);
    }
}

/* Delivers everything queued for ex on this thread, then credits it. Called and
 * returns with box->lock held; drops it while delivering. 1 if it delivered. */
static int drain_locked(cocoon_box *box, cocoon_exec *ex)
{
    if (!ex->queue || ex->delivering)
        return 0;
    struct lib_chunk *c = ex->queue;
    ex->queue = ex->queue_tail = NULL;
    ex->queued = 0;
    ex->delivering = 1;
    pthread_mutex_unlock(&box->lock);
    uint64_t bytes = 0;
    while (c) {
        struct lib_chunk *next = c->next;
        deliver(ex, c->type, c->data, c->len);
        bytes += c->len;
        free(c);
        c = next;
    }
    pthread_mutex_lock(&box->lock);
    ex->delivering = 0;
    if (bytes && !ex->finished && box->conn_ready && !box->conn_eof)
        send_u32_locked(box, ex->stream, PROTO_CREDIT, (uint32_t)bytes, NULL);
    pthread_cond_broadcast(&box->cond);
    return 1;
}

static int enqueue_locked(cocoon_exec *ex, uint16_t type, const uint8_t *data, size_t len)
{
    /* The guest may not send more than the window before we credit: more is a bug. */
    if (ex->queued + len > PROTO_DEFAULT_WINDOW + PROTO_MAX_PAYLOAD)
        return -1;
    struct lib_chunk *c = malloc(sizeof(*c) + len);
    if (!c)
        return -1;
    c->next = NULL;
    c->type = type;
    c->len = len;
    memcpy(c->data, data, len);
    if (ex->queue_tail)
        ex->queue_tail->next = c;
    else
        ex->queue = c;
    ex->queue_tail = c;
    ex->queued += len;
    return 0;
}

/* ---- the pump: reads the connection and routes frames ---- */

static cocoon_exec *find_exec_locked(cocoon_box *box, uint32_t stream)
{
    cocoon_exec *ex = box->execs;
    while (ex && ex->stream != stream)
        ex = ex->next;
    return ex;
}

static void set_error_message(cocoon_exec *ex, const struct proto_error_msg *m)
{
    if (!strncmp(m->message, "exec ", 5))
        snprintf(ex->err_msg, sizeof(ex->err_msg), "%s", m->message);
    else
        snprintf(ex->err_msg, sizeof(ex->err_msg), "exec \"%s\": %s", ex->argv0, m->message);
}

static int handle_frame(cocoon_box *box, const struct proto_header *h, const uint8_t *p, cocoon_error *err)
{
    if (h->stream == PROTO_STREAM_SESSION)
        return 0; /* PONG and monitor notices: nothing waits for them here */
    struct proto_started started;
    struct proto_exit ex_m;
    struct proto_error_msg *em = NULL;
    uint32_t bytes = 0;
    int bad = 0;
    switch (h->type) {
    case PROTO_STARTED: bad = proto_decode_started(p, h->len, &started) != PROTO_OK; break;
    case PROTO_CREDIT: bad = proto_decode_u32_field(p, h->len, PT_BYTES, &bytes) != PROTO_OK; break;
    case PROTO_EXIT: bad = proto_decode_exit(p, h->len, &ex_m) != PROTO_OK; break;
    case PROTO_ERROR:
        em = malloc(sizeof(*em));
        if (em && proto_decode_error(p, h->len, em) != PROTO_OK)
            snprintf(em->message, sizeof(em->message), "malformed ERROR message");
        break;
    default: break;
    }
    int rc = 0;
    pthread_mutex_lock(&box->lock);
    cocoon_exec *ex = find_exec_locked(box, h->stream);
    if (!ex || ex->finished) {
        /* Output of an exec the caller already freed: credit it so the guest drains. */
        if ((h->type == PROTO_STDOUT || h->type == PROTO_STDERR) && h->len)
            send_u32_locked(box, h->stream, PROTO_CREDIT, h->len, NULL);
        goto out;
    }
    if (bad) {
        rc = lib_err(err, COCOON_E_PROTOCOL, "box %s: malformed %s on exec stream %u", box->id,
                     h->type == PROTO_STARTED  ? "STARTED"
                     : h->type == PROTO_CREDIT ? "CREDIT"
                                               : "EXIT",
                     h->stream);
        goto out;
    }
    switch (h->type) {
    case PROTO_STARTED:
        ex->started = 1;
        ex->pid = started.pid;
        ex->stdin_credit += started.window;
        break;
    case PROTO_CREDIT: ex->stdin_credit += bytes; break;
    case PROTO_STDOUT:
    case PROTO_STDERR:
        if (enqueue_locked(ex, h->type, p, h->len) < 0)
            rc = lib_err(err, COCOON_E_PROTOCOL, "box %s: exec stream %u sent more output than its window", box->id,
                         ex->stream);
        break;
    case PROTO_ERROR:
        if (em)
            set_error_message(ex, em);
        else
            snprintf(ex->err_msg, sizeof(ex->err_msg), "exec \"%s\": error (out of memory reading it)", ex->argv0);
        /* Before STARTED an ERROR ends the stream (the command never ran); after it,
         * it is a notice and EXIT still follows, unless it is EPROTO: the monitor
         * ended the stream because the guest broke the protocol (docs/protocol.md). */
        if (!ex->started) {
            ex->err_code = COCOON_E_EXEC;
            ex->finished = 1;
        } else if (em && em->code == EPROTO) {
            ex->err_code = COCOON_E_PROTOCOL;
            ex->finished = 1;
        }
        break;
    case PROTO_EXIT:
        ex->status.exit_code = ex_m.code;
        ex->status.signal = (int)ex_m.signal;
        ex->status.timed_out = ex_m.timed_out != 0;
        ex->finished = 1;
        break;
    default: break;
    }
    pthread_cond_broadcast(&box->cond);
out:
    pthread_mutex_unlock(&box->lock);
    free(em);
    return rc;
}

static void set_eof(cocoon_box *box)
{
    pthread_mutex_lock(&box->lock);
    box->conn_eof = 1;
    pthread_cond_broadcast(&box->cond);
    pthread_mutex_unlock(&box->lock);
}

/* Reads the caller's stdin fd up to the granted credit and forwards it. The pump holds
 * a reference (pump_refs) so ex is not freed meanwhile. */
static void pump_stdin(cocoon_box *box, cocoon_exec *ex)
{
    pthread_mutex_lock(&box->lock);
    size_t room = ex->stdin_credit < STDIN_CHUNK ? (size_t)ex->stdin_credit : STDIN_CHUNK;
    int fd = ex->opts.stdin_fd;
    pthread_mutex_unlock(&box->lock);
    if (room == 0)
        return;
    char *buf = malloc(room);
    if (!buf)
        return;
    ssize_t n;
    do
        n = read(fd, buf, room);
    while (n < 0 && errno == EINTR);
    pthread_mutex_lock(&box->lock);
    if (!ex->stdin_eof_sent && !ex->finished) {
        if (n > 0) {
            ex->stdin_credit -= (uint64_t)n;
            send_data_locked(box, ex->stream, PROTO_STDIN, buf, (size_t)n, NULL);
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            ex->stdin_eof_sent = 1;
            send_data_locked(box, ex->stream, PROTO_STDIN_EOF, NULL, 0, NULL);
        }
    }
    pthread_mutex_unlock(&box->lock);
    free(buf);
}

/* One round: handle buffered frames, then wait (up to timeout_ms) for the socket, the
 * wake fd or the stdin fd of any exec that may send. 0 to go on, -1 on error. The
 * caller holds the pump token, not the lock. */
static int route_buffered(cocoon_box *box, cocoon_error *err)
{
    struct proto_header h;
    const uint8_t *payload;
    int rc, n = 0;
    while ((rc = proto_conn_next(&box->conn, &h, &payload)) == PROTO_OK) {
        n++;
        if (handle_frame(box, &h, payload, err) < 0) {
            set_eof(box); /* the stream can no longer be trusted */
            return -1;
        }
    }
    if (rc != PROTO_NEED_MORE) {
        set_eof(box);
        return lib_err(err, COCOON_E_PROTOCOL, "box %s: bad frame from the monitor: %s", box->id, proto_strerror(rc));
    }
    return n;
}

static int pump_once(cocoon_box *box, int timeout_ms, cocoon_error *err)
{
    int routed = route_buffered(box, err);
    if (routed != 0)
        return routed < 0 ? -1 : 0; /* let the callers look at what arrived first */

    pthread_mutex_lock(&box->lock);
    if (box->conn_eof) {
        pthread_mutex_unlock(&box->lock);
        return 0;
    }
    size_t cap = 2;
    for (cocoon_exec *e = box->execs; e; e = e->next)
        cap++;
    struct pollfd *pf = calloc(cap, sizeof(*pf));
    cocoon_exec **who = calloc(cap, sizeof(*who));
    if (!pf || !who) {
        pthread_mutex_unlock(&box->lock);
        free(pf);
        free(who);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    pf[0] = (struct pollfd){box->ctl_fd, (short)(POLLIN | (proto_conn_pending(&box->conn) ? POLLOUT : 0)), 0};
    pf[1] = (struct pollfd){box->wake_open ? box->wake_fd : -1, POLLIN, 0};
    size_t n = 2;
    for (cocoon_exec *e = box->execs; e; e = e->next) {
        if (e->opts.stdin_fd >= 0 && e->started && !e->stdin_eof_sent && !e->finished && e->stdin_credit > 0) {
            pf[n] = (struct pollfd){e->opts.stdin_fd, POLLIN, 0};
            who[n++] = e;
            e->pump_refs++;
        }
    }
    pthread_mutex_unlock(&box->lock);

    int ready = poll(pf, n, timeout_ms);
    int ret = 0;
    if (ready < 0 && errno != EINTR)
        ret = lib_err(err, COCOON_E_IO, "poll: %s", strerror(errno));
    if (ready > 0) {
        if (pf[0].revents & POLLOUT) {
            pthread_mutex_lock(&box->lock);
            int frc = proto_conn_flush(&box->conn);
            pthread_mutex_unlock(&box->lock);
            if (frc < 0)
                set_eof(box);
        }
        if (pf[1].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(box->wake_fd, &v, sizeof(v));
            (void)r;
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            long r = proto_conn_read(&box->conn);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                set_eof(box);
        }
        for (size_t i = 2; i < n; i++) {
            if (pf[i].revents & POLLNVAL) {
                pthread_mutex_lock(&box->lock);
                if (!who[i]->stdin_eof_sent && !who[i]->finished) {
                    who[i]->stdin_eof_sent = 1;
                    send_data_locked(box, who[i]->stream, PROTO_STDIN_EOF, NULL, 0, NULL);
                }
                pthread_mutex_unlock(&box->lock);
            } else if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                pump_stdin(box, who[i]);
            }
        }
    }
    pthread_mutex_lock(&box->lock);
    for (size_t i = 2; i < n; i++)
        who[i]->pump_refs--;
    if (n > 2)
        pthread_cond_broadcast(&box->cond);
    pthread_mutex_unlock(&box->lock);
    free(pf);
    free(who);
    if (ret == 0 && route_buffered(box, err) < 0)
        ret = -1;
    return ret;
}

/* The guest never ended the command after its timeout or SIGKILL: stop waiting. */
static void give_up_locked(cocoon_box *box, cocoon_exec *ex)
{
    if (box->conn_ready && !box->conn_eof)
        send_u32_locked(box, ex->stream, PROTO_SIGNAL, SIGKILL, NULL);
    ex->finished = 1;
    ex->err_code = COCOON_E_PROTOCOL;
    char after[96];
    if (ex->give_up_after_kill)
        snprintf(after, sizeof(after), "SIGKILL");
    else
        snprintf(after, sizeof(after), "its timeout of %llu ms", (unsigned long long)ex->opts.timeout_ms);
    snprintf(ex->err_msg, sizeof(ex->err_msg),
             "exec \"%s\": the box did not report the command's end %u s after %s (the guest ignores it or is "
             "stuck): cocoon stopped waiting and sent SIGKILL; the command may still run in the box",
             ex->argv0, LIB_EXEC_GIVE_UP_MS / 1000, after);
}

static void token_release_locked(cocoon_box *box)
{
    box->pumping = 0;
    pthread_cond_broadcast(&box->cond);
}

static int eof_error(cocoon_box *box, cocoon_error *err)
{
    char tail[1024], why[512];
    lib_console_tail(box, tail, sizeof(tail));
    lib_stop_reason(box, why, sizeof(why));
    return lib_err(err, COCOON_E_VMM, "the box stopped while the command was running (%s)%s%s",
                   why[0] ? why : "monitor exited", tail[0] ? "; console: " : "", tail);
}

/* ---- public API ---- */

static int check_str(const char *s, size_t max, const char *what, cocoon_error *err)
{
    if (s && strlen(s) >= max)
        return lib_err(err, COCOON_E_INVALID, "%s is too long (at most %zu bytes)", what, max - 1);
    return 0;
}

int lib_exec_validate(const cocoon_exec_options *o, size_t *argc, size_t *envc, cocoon_error *err)
{
    if (!o->argv || !o->argv[0] || !o->argv[0][0])
        return lib_err(err, COCOON_E_INVALID, "no command given (argv is empty)");
    for (*argc = 0; o->argv[*argc]; (*argc)++)
        if (*argc >= PROTO_MAX_LIST || check_str(o->argv[*argc], PROTO_MAX_STRING, "a command argument", err))
            return *argc >= PROTO_MAX_LIST
                       ? lib_err(err, COCOON_E_INVALID, "too many arguments (at most %u)", PROTO_MAX_LIST)
                       : -1;
    *envc = 0;
    for (; o->env && o->env[*envc]; (*envc)++) {
        if (*envc >= PROTO_MAX_LIST)
            return lib_err(err, COCOON_E_INVALID, "too many environment entries (at most %u)", PROTO_MAX_LIST);
        if (check_str(o->env[*envc], PROTO_MAX_STRING, "an environment entry", err) < 0)
            return -1;
        const char *eq = strchr(o->env[*envc], '=');
        if (!eq || eq == o->env[*envc])
            return lib_err(err, COCOON_E_INVALID, "environment entry \"%s\" is not KEY=VALUE", o->env[*envc]);
    }
    if (check_str(o->cwd, PROTO_MAX_STRING, "the working directory", err) < 0 ||
        check_str(o->user, 256, "the user", err) < 0)
        return -1;
    if (o->rows > 65535 || o->cols > 65535)
        return lib_err(err, COCOON_E_INVALID, "terminal size %ux%u is too large (at most 65535)", o->rows, o->cols);
    return 0;
}

int lib_stream_start(cocoon_box *box, const cocoon_exec_options *opts, lib_open_fn encode, void *arg, cocoon_exec **out,
                     cocoon_error *err)
{
    *out = NULL;
    if (opts->stdin_fd < 0 && opts->stdin_fd != COCOON_STDIN_NONE && opts->stdin_fd != COCOON_STDIN_API)
        return lib_err(err, COCOON_E_INVALID, "stdin_fd must be an fd, COCOON_STDIN_NONE or COCOON_STDIN_API");
    if (!box->conn_ready && lib_ctl_connect(box, err) < 0)
        return -1;
    cocoon_exec *ex = calloc(1, sizeof(*ex));
    struct proto_writer *w = malloc(sizeof(*w));
    if (!ex || !w) {
        free(ex);
        free(w);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    ex->opts = *opts;
    ex->opts.argv = ex->opts.env = NULL; /* the caller's arrays are not ours to keep */
    ex->opts.cwd = ex->opts.user = NULL;
    ex->box = box;
    snprintf(ex->argv0, sizeof(ex->argv0), "%s", opts->argv && opts->argv[0] ? opts->argv[0] : "?");

    pthread_mutex_lock(&box->lock);
    if (!box->wake_open) {
        box->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        box->wake_open = box->wake_fd >= 0;
    }
    ex->stream = box->next_stream++;
    if (box->next_stream == 0)
        box->next_stream = 1;
    size_t len = encode(w, ex->stream, arg);
    /* The opening frame and its STDIN_EOF leave in one write: the monitor relays them
     * together and the guest wakes once for both. */
    proto_conn_cork(&box->conn);
    int rc = len ? send_built_locked(box, w, len, err)
                 : (free(w), lib_err(err, COCOON_E_INVALID, "command line and environment exceed %u KiB",
                                     PROTO_MAX_PAYLOAD / 1024));
    if (rc == 0 && opts->stdin_fd == COCOON_STDIN_NONE) {
        ex->stdin_eof_sent = 1;
        rc = send_data_locked(box, ex->stream, PROTO_STDIN_EOF, NULL, 0, err);
    }
    if (proto_conn_uncork(&box->conn) < 0 && rc == 0)
        rc = lib_err(err, COCOON_E_VMM, "box %s: cannot send to the monitor: %s", box->id, strerror(errno));
    if (proto_conn_pending(&box->conn))
        wake_pump_locked(box);
    if (rc == 0) {
        ex->next = box->execs;
        box->execs = ex;
    }
    pthread_mutex_unlock(&box->lock);
    if (rc < 0) {
        free(ex);
        return -1;
    }
    *out = ex;
    return 0;
}

static size_t encode_exec(struct proto_writer *w, uint32_t stream, void *arg)
{
    return proto_encode_exec(w, stream, arg);
}

int cocoon_exec_start(cocoon_box *box, const cocoon_exec_options *caller, cocoon_exec **out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !caller || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_exec_start: NULL argument");
    *out = NULL;
    cocoon_exec_options copy;
    if (LIB_OPTIONS(cocoon_exec_options, copy, caller, err) < 0)
        return -1;
    const cocoon_exec_options *opts = &copy;
    size_t argc = 0, envc = 0;
    if (lib_exec_validate(opts, &argc, &envc, err) < 0)
        return -1;
    struct proto_exec *m = calloc(1, sizeof(*m));
    if (!m)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    m->argv = (char **)opts->argv;
    m->argc = argc;
    m->env = (char **)opts->env;
    m->envc = envc;
    snprintf(m->cwd, sizeof(m->cwd), "%s", opts->cwd ? opts->cwd : "");
    snprintf(m->user, sizeof(m->user), "%s", opts->user ? opts->user : "");
    m->tty = opts->tty != 0;
    m->rows = opts->rows ? opts->rows : 24;
    m->cols = opts->cols ? opts->cols : 80;
    m->timeout_ms = opts->timeout_ms;
    m->window = PROTO_DEFAULT_WINDOW;
    /* The guest resyncs its clock from this when it drifted (host suspend, restore). */
    m->realtime_ns = util_now_ns(CLOCK_REALTIME);
    int rc = lib_stream_start(box, opts, encode_exec, m, out, err);
    free(m);
    if (rc == 0 && opts->timeout_ms) {
        pthread_mutex_lock(&box->lock);
        (*out)->give_up_ns =
            util_now_ns(CLOCK_MONOTONIC) + (opts->timeout_ms + LIB_EXEC_GIVE_UP_MS) * (uint64_t)1000000u;
        pthread_mutex_unlock(&box->lock);
    }
    return rc;
}

/* Waits for a broadcast on box->cond, at most PUMP_POLL_MS: the waiter then checks again
 * whether its command ended or the box's connection closed. A wait with no bound hung a
 * waiter whose box another thread stopped and closed (its wake-up was missed): the
 * library must not hang on a lost signal. */
static void wait_a_while_locked(cocoon_box *box)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)PUMP_POLL_MS * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&box->cond, &box->lock, &ts);
}

int cocoon_exec_wait(cocoon_exec *ex, cocoon_exit_status *status, cocoon_error *err)
{
    lib_err_clear(err);
    if (!ex)
        return lib_err(err, COCOON_E_INVALID, "cocoon_exec_wait: NULL exec");
    cocoon_box *box = ex->box;
    if (!box)
        return lib_err(err, COCOON_E_STATE, "the box handle of this exec was closed");
    int rc = 0;
    pthread_mutex_lock(&box->lock);
    ex->waiting++;
    for (;;) {
        if (drain_locked(box, ex))
            continue;
        if (ex->delivering) { /* cocoon_exec_write on another thread delivers our output */
            wait_a_while_locked(box);
            continue;
        }
        if (ex->finished)
            break;
        if (box->conn_eof || !box->conn_ready) {
            rc = -2;
            break;
        }
        if (ex->give_up_ns && util_now_ns(CLOCK_MONOTONIC) >= ex->give_up_ns) {
            give_up_locked(box, ex);
            break;
        }
        if (box->pumping || box->pump_wanted) { /* another thread reads the socket and routes our frames */
            wait_a_while_locked(box);
            continue;
        }
        box->pumping = 1;
        pthread_mutex_unlock(&box->lock);
        int prc = pump_once(box, PUMP_POLL_MS, err);
        pthread_mutex_lock(&box->lock);
        token_release_locked(box);
        if (prc < 0) {
            rc = -1;
            break;
        }
    }
    ex->waiting--;
    pthread_mutex_unlock(&box->lock);
    if (rc == -2)
        return eof_error(box, err);
    if (rc < 0)
        return -1;
    if (ex->err_code)
        return lib_err(err, ex->err_code, "%s", ex->err_msg);
    if (status)
        *status = ex->status;
    return 0;
}

int cocoon_exec_write(cocoon_exec *ex, const void *data, size_t len, cocoon_error *err)
{
    lib_err_clear(err);
    if (!ex || (!data && len))
        return lib_err(err, COCOON_E_INVALID, "cocoon_exec_write: NULL argument");
    cocoon_box *box = ex->box;
    if (!box)
        return lib_err(err, COCOON_E_STATE, "the box handle of this exec was closed");
    if (ex->opts.stdin_fd != COCOON_STDIN_API)
        return lib_err(err, COCOON_E_INVALID, "this exec was not started with stdin_fd = COCOON_STDIN_API");
    const char *p = data;
    int rc = 0;
    pthread_mutex_lock(&box->lock);
    while (len > 0 && rc == 0) {
        while (!ex->finished && !box->conn_eof && !ex->stdin_eof_sent && (!ex->started || ex->stdin_credit == 0)) {
            /* Nobody waits for this exec: deliver its output here, or a command that
             * writes before it reads (cat) would block on its window and never
             * credit our stdin. */
            if (!ex->waiting && drain_locked(box, ex))
                continue;
            if (box->pumping || box->pump_wanted) {
                pthread_cond_wait(&box->cond, &box->lock);
                continue;
            }
            /* Nobody reads the connection: do it ourselves so CREDIT can arrive. */
            box->pumping = 1;
            pthread_mutex_unlock(&box->lock);
            int prc = pump_once(box, 200, err);
            pthread_mutex_lock(&box->lock);
            token_release_locked(box);
            if (prc < 0) {
                pthread_mutex_unlock(&box->lock);
                return -1;
            }
        }
        if (ex->stdin_eof_sent)
            rc = lib_err(err, COCOON_E_STATE, "stdin of this command was already closed");
        else if (ex->finished)
            rc = lib_err(err, COCOON_E_STATE, "the command has already exited");
        else if (box->conn_eof)
            rc = lib_err(err, COCOON_E_VMM, "box %s: the monitor is gone", box->id);
        if (rc < 0)
            break;
        size_t n = len;
        if (n > ex->stdin_credit)
            n = (size_t)ex->stdin_credit;
        if (n > STDIN_CHUNK)
            n = STDIN_CHUNK;
        ex->stdin_credit -= n;
        rc = send_data_locked(box, ex->stream, PROTO_STDIN, p, n, err);
        p += n;
        len -= n;
    }
    pthread_mutex_unlock(&box->lock);
    return rc;
}

int cocoon_exec_close_stdin(cocoon_exec *ex, cocoon_error *err)
{
    lib_err_clear(err);
    if (!ex || !ex->box)
        return lib_err(err, COCOON_E_STATE, "the box handle of this exec was closed");
    cocoon_box *box = ex->box;
    int rc = 0;
    pthread_mutex_lock(&box->lock);
    if (!ex->stdin_eof_sent && !ex->finished) {
        ex->stdin_eof_sent = 1;
        rc = send_data_locked(box, ex->stream, PROTO_STDIN_EOF, NULL, 0, err);
        wake_pump_locked(box); /* the pump may be polling our stdin fd */
    }
    pthread_cond_broadcast(&box->cond);
    pthread_mutex_unlock(&box->lock);
    return rc;
}

int cocoon_exec_signal(cocoon_exec *ex, int signo, cocoon_error *err)
{
    lib_err_clear(err);
    if (!ex || !ex->box)
        return lib_err(err, COCOON_E_STATE, "the box handle of this exec was closed");
    if (signo <= 0 || signo >= 65)
        return lib_err(err, COCOON_E_INVALID, "invalid signal number %d", signo);
    cocoon_box *box = ex->box;
    int rc = 0;
    pthread_mutex_lock(&box->lock);
    if (!ex->finished)
        rc = send_u32_locked(box, ex->stream, PROTO_SIGNAL, (uint32_t)signo, err);
    uint64_t give_up = util_now_ns(CLOCK_MONOTONIC) + LIB_EXEC_GIVE_UP_MS * (uint64_t)1000000u;
    if (rc == 0 && signo == SIGKILL && !ex->finished && (!ex->give_up_ns || give_up < ex->give_up_ns)) {
        ex->give_up_ns = give_up;
        ex->give_up_after_kill = 1;
    }
    pthread_mutex_unlock(&box->lock);
    return rc;
}

int cocoon_exec_resize(cocoon_exec *ex, unsigned rows, unsigned cols, cocoon_error *err)
{
    lib_err_clear(err);
    if (!ex || !ex->box)
        return lib_err(err, COCOON_E_STATE, "the box handle of this exec was closed");
    if (rows == 0 || cols == 0 || rows > 65535 || cols > 65535)
        return lib_err(err, COCOON_E_INVALID, "invalid terminal size %ux%u (1..65535 each)", rows, cols);
    cocoon_box *box = ex->box;
    int rc = 0;
    pthread_mutex_lock(&box->lock);
    if (!ex->opts.tty) {
        rc = lib_err(err, COCOON_E_STATE, "this exec has no terminal (start it with tty set)");
    } else if (!ex->finished) {
        struct proto_writer *w = malloc(sizeof(*w));
        rc = w ? send_built_locked(box, w, proto_encode_resize(w, ex->stream, rows, cols), err)
               : lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    pthread_mutex_unlock(&box->lock);
    return rc;
}

int cocoon_exec_id(cocoon_exec *ex)
{
    if (!ex || !ex->box)
        return ex ? (int)ex->pid : 0;
    pthread_mutex_lock(&ex->box->lock);
    int id = (int)ex->pid;
    pthread_mutex_unlock(&ex->box->lock);
    return id;
}

void cocoon_exec_free(cocoon_exec *ex)
{
    if (!ex)
        return;
    cocoon_box *box = ex->box;
    if (box) {
        pthread_mutex_lock(&box->lock);
        if (!ex->finished && box->conn_ready && !box->conn_eof)
            send_u32_locked(box, ex->stream, PROTO_SIGNAL, SIGKILL, NULL);
        cocoon_exec **pp = &box->execs;
        while (*pp && *pp != ex)
            pp = &(*pp)->next;
        if (*pp)
            *pp = ex->next;
        /* The pump may be polling our stdin fd right now: let it finish with us. */
        while (ex->pump_refs > 0) {
            wake_pump_locked(box);
            pthread_cond_wait(&box->cond, &box->lock);
        }
        pthread_mutex_unlock(&box->lock);
    }
    struct lib_chunk *c = ex->queue;
    while (c) {
        struct lib_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(ex);
}

void lib_exec_detach_all(cocoon_box *box)
{
    pthread_mutex_lock(&box->lock);
    for (cocoon_exec *ex = box->execs; ex; ex = ex->next)
        ex->box = NULL;
    box->execs = NULL;
    if (box->wake_open) {
        close(box->wake_fd);
        box->wake_open = 0;
        box->wake_fd = -1;
    }
    pthread_mutex_unlock(&box->lock);
}

int cocoon_box_run(cocoon_box *box, const cocoon_exec_options *opts, cocoon_exit_status *status, cocoon_error *err)
{
    cocoon_exec *ex;
    if (cocoon_exec_start(box, opts, &ex, err) < 0)
        return -1;
    int rc = cocoon_exec_wait(ex, status, err);
    cocoon_exec_free(ex);
    return rc;
}
