/* Commands in a running box: EXEC streams multiplexed over the box handle's control
 * connection. Output is written to the caller's fds or callbacks and only then
 * credited back, so memory stays bounded by the windows and output streams as it is
 * produced; stdin is sent only as far as the guest granted credit. */
#include "lib/internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

#define STDIN_CHUNK (60u * 1024u)

void cocoon_exec_options_init(cocoon_exec_options *opts)
{
    memset(opts, 0, sizeof(*opts));
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

/* Builds and queues one frame. The writer is 64 KiB: heap, not stack, so threads with
 * small stacks (language runtimes) can call us. */
typedef size_t (*encode_fn)(struct proto_writer *w, void *arg);

static int send_data_locked(cocoon_box *box, uint32_t stream, uint16_t type, const void *data, size_t n,
                            cocoon_error *err)
{
    struct proto_writer *w = malloc(sizeof(*w));
    if (!w)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    size_t len = proto_encode_data(w, stream, type, data, n);
    int rc = lib_ctl_send_locked(box, w->buf, len, err);
    free(w);
    return rc;
}

static int send_u32_locked(cocoon_box *box, uint32_t stream, uint16_t type, uint32_t v, cocoon_error *err)
{
    struct proto_writer *w = malloc(sizeof(*w));
    if (!w)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    size_t len = type == PROTO_CREDIT ? proto_encode_credit(w, stream, v) : proto_encode_signal(w, stream, v);
    int rc = lib_ctl_send_locked(box, w->buf, len, err);
    free(w);
    return rc;
}

static int send_u32(cocoon_box *box, uint32_t stream, uint16_t type, uint32_t v, cocoon_error *err)
{
    pthread_mutex_lock(&box->lock);
    int rc = send_u32_locked(box, stream, type, v, err);
    pthread_mutex_unlock(&box->lock);
    return rc;
}

/* ---- delivering output ---- */

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
            if (errno == EPIPE && ex->box && !ex->finished)
                send_u32(ex->box, ex->stream, PROTO_SIGNAL, SIGPIPE, NULL);
        }
    } else {
        cocoon_output_fn fn = out ? ex->opts.on_stdout : ex->opts.on_stderr;
        if (fn)
            fn(ex->opts.user_data, data, len);
    }
    ex->credit_owed += (uint32_t)len;
}

static int enqueue(cocoon_exec *ex, uint16_t type, const uint8_t *data, size_t len)
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

static void drain_queue(cocoon_exec *ex)
{
    struct lib_chunk *c;
    while ((c = ex->queue)) {
        ex->queue = c->next;
        if (!ex->queue)
            ex->queue_tail = NULL;
        ex->queued -= c->len;
        deliver(ex, c->type, c->data, c->len);
        free(c);
    }
}

static void send_credit(cocoon_exec *ex)
{
    if (ex->credit_owed && ex->box && !ex->finished)
        send_u32(ex->box, ex->stream, PROTO_CREDIT, ex->credit_owed, NULL);
    ex->credit_owed = 0;
}

/* ---- the pump ---- */

static cocoon_exec *find_exec(cocoon_box *box, uint32_t stream)
{
    pthread_mutex_lock(&box->lock);
    cocoon_exec *ex = box->execs;
    while (ex && ex->stream != stream)
        ex = ex->next;
    pthread_mutex_unlock(&box->lock);
    return ex;
}

static void finish(cocoon_exec *ex)
{
    cocoon_box *box = ex->box;
    pthread_mutex_lock(&box->lock);
    ex->finished = 1;
    pthread_cond_broadcast(&box->cond);
    pthread_mutex_unlock(&box->lock);
}

static int handle_frame(cocoon_box *box, cocoon_exec *waiting, const struct proto_header *h, const uint8_t *p,
                        cocoon_error *err)
{
    if (h->stream == PROTO_STREAM_SESSION)
        return 0; /* PONG and monitor notices: nothing waits for them here */
    cocoon_exec *ex = find_exec(box, h->stream);
    if (!ex || ex->finished) {
        /* Output of an exec the caller already freed: credit it so the guest drains. */
        if (h->type == PROTO_STDOUT || h->type == PROTO_STDERR)
            send_u32(box, h->stream, PROTO_CREDIT, h->len, NULL);
        return 0;
    }
    switch (h->type) {
    case PROTO_STARTED: {
        struct proto_started m;
        if (proto_decode_started(p, h->len, &m) != PROTO_OK)
            return lib_err(err, COCOON_E_PROTOCOL, "box %s: malformed STARTED", box->id);
        pthread_mutex_lock(&box->lock);
        ex->started = 1;
        ex->stdin_credit += m.window;
        pthread_cond_broadcast(&box->cond);
        pthread_mutex_unlock(&box->lock);
        return 0;
    }
    case PROTO_CREDIT: {
        uint32_t bytes;
        if (proto_decode_u32_field(p, h->len, PT_BYTES, &bytes) != PROTO_OK)
            return lib_err(err, COCOON_E_PROTOCOL, "box %s: malformed CREDIT", box->id);
        pthread_mutex_lock(&box->lock);
        ex->stdin_credit += bytes;
        pthread_cond_broadcast(&box->cond);
        pthread_mutex_unlock(&box->lock);
        return 0;
    }
    case PROTO_STDOUT:
    case PROTO_STDERR:
        if (ex == waiting && !ex->queue) {
            deliver(ex, h->type, (const char *)p, h->len);
            return 0;
        }
        if (enqueue(ex, h->type, p, h->len) < 0)
            return lib_err(err, COCOON_E_PROTOCOL, "box %s: exec stream %u sent more output than its window", box->id,
                           ex->stream);
        return 0;
    case PROTO_ERROR: {
        struct proto_error_msg m;
        if (proto_decode_error(p, h->len, &m) != PROTO_OK)
            snprintf(m.message, sizeof(m.message), "malformed ERROR message");
        if (!strncmp(m.message, "exec ", 5))
            snprintf(ex->err_msg, sizeof(ex->err_msg), "%s", m.message);
        else
            snprintf(ex->err_msg, sizeof(ex->err_msg), "exec \"%s\": %s", ex->argv0, m.message);
        /* Before STARTED an ERROR ends the stream (the command never ran); after it,
         * it is a notice and EXIT still follows. */
        if (!ex->started) {
            ex->err_code = COCOON_E_EXEC;
            finish(ex);
        }
        return 0;
    }
    case PROTO_EXIT: {
        struct proto_exit m;
        if (proto_decode_exit(p, h->len, &m) != PROTO_OK)
            return lib_err(err, COCOON_E_PROTOCOL, "box %s: malformed EXIT", box->id);
        ex->status.exit_code = m.code;
        ex->status.signal = (int)m.signal;
        ex->status.timed_out = m.timed_out != 0;
        finish(ex);
        return 0;
    }
    default: return 0;
    }
}

/* Reads the caller's stdin fd up to the granted credit and forwards it. */
static void pump_stdin(cocoon_exec *ex)
{
    cocoon_box *box = ex->box;
    pthread_mutex_lock(&box->lock);
    size_t room = ex->stdin_credit < STDIN_CHUNK ? (size_t)ex->stdin_credit : STDIN_CHUNK;
    pthread_mutex_unlock(&box->lock);
    if (room == 0)
        return;
    char *buf = malloc(room);
    if (!buf)
        return;
    ssize_t n;
    do
        n = read(ex->opts.stdin_fd, buf, room);
    while (n < 0 && errno == EINTR);
    pthread_mutex_lock(&box->lock);
    if (n > 0) {
        ex->stdin_credit -= (uint64_t)n;
        send_data_locked(box, ex->stream, PROTO_STDIN, buf, (size_t)n, NULL);
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        ex->stdin_eof_sent = 1;
        send_data_locked(box, ex->stream, PROTO_STDIN_EOF, NULL, 0, NULL);
    }
    pthread_mutex_unlock(&box->lock);
    free(buf);
}

/* One round: handle buffered frames, then wait (up to timeout_ms) for the socket or
 * for the waited exec's stdin. Returns 1 when `ex` is finished and fully delivered,
 * 0 to go on, -1 on error. The caller holds the pump token. */
static int pump_once(cocoon_box *box, cocoon_exec *ex, int timeout_ms, cocoon_error *err)
{
    struct proto_header h;
    const uint8_t *payload;
    int rc;
    while ((rc = proto_conn_next(&box->conn, &h, &payload)) == PROTO_OK)
        if (handle_frame(box, ex, &h, payload, err) < 0)
            return -1;
    if (rc != PROTO_NEED_MORE) {
        box->conn_eof = 1;
        return lib_err(err, COCOON_E_PROTOCOL, "box %s: bad frame from the monitor: %s", box->id, proto_strerror(rc));
    }
    if (ex) {
        drain_queue(ex);
        send_credit(ex);
        if (ex->finished)
            return 1;
    }
    if (box->conn_eof) {
        char tail[1024];
        lib_console_tail(box, tail, sizeof(tail));
        return lib_err(err, COCOON_E_VMM, "the box stopped while the command was running (monitor exited)%s%s",
                       tail[0] ? "; console: " : "", tail);
    }

    pthread_mutex_lock(&box->lock);
    short ev = POLLIN | (proto_conn_pending(&box->conn) ? POLLOUT : 0);
    int want_stdin = ex && ex->opts.stdin_fd >= 0 && ex->started && !ex->stdin_eof_sent && ex->stdin_credit > 0;
    pthread_mutex_unlock(&box->lock);
    struct pollfd pf[2] = {{box->ctl_fd, ev, 0}, {want_stdin ? ex->opts.stdin_fd : -1, POLLIN, 0}};
    int n = poll(pf, 2, timeout_ms);
    if (n < 0 && errno != EINTR)
        return lib_err(err, COCOON_E_IO, "poll: %s", strerror(errno));
    if (n <= 0)
        return 0;
    if (pf[0].revents & POLLOUT) {
        pthread_mutex_lock(&box->lock);
        int frc = proto_conn_flush(&box->conn);
        pthread_mutex_unlock(&box->lock);
        if (frc < 0)
            box->conn_eof = 1;
    }
    if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        long r = proto_conn_read(&box->conn);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            box->conn_eof = 1;
    }
    if (want_stdin && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)))
        pump_stdin(ex);
    if (want_stdin && (pf[1].revents & POLLNVAL)) {
        pthread_mutex_lock(&box->lock);
        ex->stdin_eof_sent = 1;
        send_data_locked(box, ex->stream, PROTO_STDIN_EOF, NULL, 0, NULL);
        pthread_mutex_unlock(&box->lock);
    }
    return 0;
}

static void token_acquire_locked(cocoon_box *box)
{
    while (box->pumping)
        pthread_cond_wait(&box->cond, &box->lock);
    box->pumping = 1;
}

static void token_release_locked(cocoon_box *box)
{
    box->pumping = 0;
    pthread_cond_broadcast(&box->cond);
}

/* ---- public API ---- */

static int check_str(const char *s, size_t max, const char *what, cocoon_error *err)
{
    if (s && strlen(s) >= max)
        return lib_err(err, COCOON_E_INVALID, "%s is too long (at most %zu bytes)", what, max - 1);
    return 0;
}

static int validate(const cocoon_exec_options *o, size_t *argc, size_t *envc, cocoon_error *err)
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
    if (o->stdin_fd < 0 && o->stdin_fd != COCOON_STDIN_NONE && o->stdin_fd != COCOON_STDIN_API)
        return lib_err(err, COCOON_E_INVALID, "stdin_fd must be an fd, COCOON_STDIN_NONE or COCOON_STDIN_API");
    return 0;
}

int cocoon_exec_start(cocoon_box *box, const cocoon_exec_options *opts, cocoon_exec **out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !opts || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_exec_start: NULL argument");
    *out = NULL;
    size_t argc = 0, envc = 0;
    if (validate(opts, &argc, &envc, err) < 0)
        return -1;
    if (!box->conn_ready && lib_ctl_connect(box, err) < 0)
        return -1;
    cocoon_exec *ex = calloc(1, sizeof(*ex));
    struct proto_exec *m = calloc(1, sizeof(*m));
    struct proto_writer *w = malloc(sizeof(*w));
    if (!ex || !m || !w) {
        free(ex);
        free(m);
        free(w);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    ex->opts = *opts;
    ex->opts.argv = ex->opts.env = NULL; /* the caller's arrays are not ours to keep */
    ex->opts.cwd = ex->opts.user = NULL;
    ex->box = box;
    snprintf(ex->argv0, sizeof(ex->argv0), "%s", opts->argv[0]);

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

    pthread_mutex_lock(&box->lock);
    ex->stream = box->next_stream++;
    size_t len = proto_encode_exec(w, ex->stream, m);
    int rc =
        len ? lib_ctl_send_locked(box, w->buf, len, err)
            : lib_err(err, COCOON_E_INVALID, "command line and environment exceed %u KiB", PROTO_MAX_PAYLOAD / 1024);
    if (rc == 0 && opts->stdin_fd == COCOON_STDIN_NONE) {
        ex->stdin_eof_sent = 1;
        rc = send_data_locked(box, ex->stream, PROTO_STDIN_EOF, NULL, 0, err);
    }
    if (rc == 0) {
        ex->next = box->execs;
        box->execs = ex;
    }
    pthread_mutex_unlock(&box->lock);
    free(m);
    free(w);
    if (rc < 0) {
        free(ex);
        return -1;
    }
    *out = ex;
    return 0;
}

int cocoon_exec_wait(cocoon_exec *ex, cocoon_exit_status *status, cocoon_error *err)
{
    lib_err_clear(err);
    if (!ex)
        return lib_err(err, COCOON_E_INVALID, "cocoon_exec_wait: NULL exec");
    cocoon_box *box = ex->box;
    if (!box)
        return lib_err(err, COCOON_E_STATE, "the box handle of this exec was closed");
    for (;;) {
        pthread_mutex_lock(&box->lock);
        token_acquire_locked(box);
        pthread_mutex_unlock(&box->lock);
        int rc = pump_once(box, ex, 500, err);
        pthread_mutex_lock(&box->lock);
        token_release_locked(box);
        pthread_mutex_unlock(&box->lock);
        if (rc < 0)
            return -1;
        if (rc == 1)
            break;
    }
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
            if (box->pumping) {
                pthread_cond_wait(&box->cond, &box->lock);
                continue;
            }
            /* Nobody reads the connection: do it ourselves so CREDIT can arrive. */
            box->pumping = 1;
            pthread_mutex_unlock(&box->lock);
            int prc = pump_once(box, NULL, 200, err);
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
    pthread_mutex_unlock(&box->lock);
    return rc;
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
