/* GET /v1/boxes/{id}/attach: the box's main process over a WebSocket, with the frames of
 * an execution's attach (attach.c): 0x01/0x02 output, then {"type":"exit"} and a close.
 * A cocoon_attach runs in its own thread writing into pipes a second thread turns into
 * frames; a client that leaves only detaches (the main process goes on, docker's way). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/http.h"
#include "serve/serve.h"
#include "serve/ws.h"
#include "serve/ws_attach.h"

#define MAIN_ATTACH_PING_MS 3000
#define MAIN_ATTACH_MESSAGE_MAX (1u << 20) /* one stdin or control message from the client */
#define MAIN_ATTACH_CLOSE_WAIT_S 5
#define MAIN_ATTACH_CHUNK 16384u /* output bytes per binary frame */

struct main_session {
    cocoon_runtime *rt;
    cocoon_box *box;
    cocoon_attach *a;
    int out[2], err[2], in[2]; /* pipes: the attachment writes out/err, reads in */
    int fd;
    struct MHD_UpgradeResponseHandle *urh;
    uint8_t *extra;
    size_t extra_len;
    struct ws_conn ws;
    pthread_mutex_t lock;
    int pump_rc; /* cocoon_attach_wait's return */
    cocoon_attach_result res;
    cocoon_error pump_err;
    int stop;            /* the reader ended: the writer stops */
    int pump_done;       /* the attachment ended: nobody reads stdin any more */
    int writer_done;     /* the writer ended (the client is gone, or all was sent) */
    int exit_sent;       /* the writer delivered everything and the exit frame */
    int idle_after_exit; /* seconds the reader waited since for the client to close */
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void session_free(struct main_session *s)
{
    for (int i = 0; i < 2; i++) {
        close_fd(&s->out[i]);
        close_fd(&s->err[i]);
        close_fd(&s->in[i]);
    }
    if (s->a)
        cocoon_attach_free(s->a);
    serve_close_runtime_box(s->rt, s->box);
    pthread_mutex_destroy(&s->lock);
    free(s->extra);
    free(s);
}

static int session_stopping(struct main_session *s)
{
    pthread_mutex_lock(&s->lock);
    int stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

static void send_json_text(struct main_session *s, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text)
        ws_send_text(&s->ws, text, strlen(text));
    free(text);
}

/* The attachment: copies until the main process ends, the client left or the box stopped. */
static void *pump(void *arg)
{
    struct main_session *s = arg;
    cocoon_attach_result res = {0};
    cocoon_error err = {0};
    int rc = cocoon_attach_wait(s->a, &res, &err);
    pthread_mutex_lock(&s->lock);
    s->pump_rc = rc;
    s->res = res;
    s->pump_err = err;
    s->pump_done = 1;
    pthread_mutex_unlock(&s->lock);
    close_fd(&s->out[1]); /* the writer sees the end of both streams */
    close_fd(&s->err[1]);
    return NULL;
}

/* Turns the pipes into frames, then sends how the attachment ended. */
static void write_frames(struct main_session *s)
{
    struct pollfd pf[2] = {{s->out[0], POLLIN, 0}, {s->err[0], POLLIN, 0}};
    uint8_t buf[1 + MAIN_ATTACH_CHUNK];
    int broken = 0;
    while (!broken && (pf[0].fd >= 0 || pf[1].fd >= 0)) {
        int n = poll(pf, 2, MAIN_ATTACH_PING_MS);
        if (n < 0 && errno != EINTR)
            break;
        if (session_stopping(s))
            return;
        if (n == 0 && ws_send_ping(&s->ws, NULL, 0) < 0)
            break;
        for (int i = 0; i < 2 && n > 0; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = read(pf[i].fd, buf + 1, MAIN_ATTACH_CHUNK);
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (got <= 0) {
                pf[i].fd = -1;
                continue;
            }
            buf[0] = i ? 0x02 : 0x01;
            struct iovec iov = {buf, (size_t)got + 1};
            if (ws_send(&s->ws, WS_OP_BINARY, &iov, 1) < 0) {
                broken = 1;
                break;
            }
        }
    }
    pthread_mutex_lock(&s->lock);
    int rc = s->pump_rc;
    cocoon_attach_result res = s->res;
    cocoon_error err = s->pump_err;
    int stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    if (broken || stop || res.detached)
        return;
    if (rc < 0 || !res.ended) {
        /* The box stopped under us: why, and an exit frame only when the end is known. */
        send_json_text(
            s, json_pack("{s:s,s:s}", "type", "error", "message", rc < 0 ? err.message : "the attachment ended"));
        if (ws_send_close(&s->ws, WS_CLOSE_NORMAL, NULL) == 0) {
            pthread_mutex_lock(&s->lock);
            s->exit_sent = 1;
            pthread_mutex_unlock(&s->lock);
        }
        return;
    }
    json_t *exit = json_pack("{s:s,s:i,s:s}", "type", "exit", "exit_code", res.exit_code, "status", "completed");
    char *text = exit ? json_dumps(exit, JSON_COMPACT) : NULL;
    json_decref(exit);
    if (text && ws_send_text(&s->ws, text, strlen(text)) == 0 && ws_send_close(&s->ws, WS_CLOSE_NORMAL, NULL) == 0) {
        pthread_mutex_lock(&s->lock);
        s->exit_sent = 1;
        pthread_mutex_unlock(&s->lock);
    }
    free(text);
}

static void *writer(void *arg)
{
    struct main_session *s = arg;
    write_frames(s);
    pthread_mutex_lock(&s->lock);
    s->writer_done = 1;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Stdin is still wanted: the client is there and the attachment reads it. */
static int stdin_wanted(struct main_session *s)
{
    pthread_mutex_lock(&s->lock);
    int wanted = !s->stop && !s->pump_done && !s->writer_done;
    pthread_mutex_unlock(&s->lock);
    return wanted;
}

/* Stdin bytes into the pipe the attachment reads; gives up (dropping them) when the
 * attachment stopped reading, so a client typing into an ended session never blocks. */
static void forward_stdin(struct main_session *s, const uint8_t *p, size_t len)
{
    while (len && s->in[1] >= 0 && stdin_wanted(s)) {
        ssize_t n = write(s->in[1], p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            struct pollfd pf = {s->in[1], POLLOUT, 0};
            poll(&pf, 1, 1000);
        } else if (n < 0 && errno != EINTR) {
            return;
        }
    }
}

static void control_message(struct main_session *s, const struct ws_message *m)
{
    struct ws_control c;
    char why[128];
    if (ws_control_parse(m->data, m->len, &c, why, sizeof(why)) < 0)
        send_json_text(s, json_pack("{s:s,s:s}", "type", "error", "message", why));
    else if (c.type == WS_CONTROL_STDIN_EOF)
        close_fd(&s->in[1]); /* only our input ends: the main process's stdin stays open (docker's -i) */
    else if (c.type == WS_CONTROL_RESIZE)
        cocoon_attach_resize(s->a, c.rows, c.cols);
    else
        cocoon_attach_signal(s->a, c.sig);
}

static void *session_main(void *arg)
{
    struct main_session *s = arg;
    pthread_t w, p;
    int have_writer = 0, have_pump = 0;
    if (ws_conn_init(&s->ws, s->fd, MAIN_ATTACH_MESSAGE_MAX, s->extra, s->extra_len) == 0) {
        have_pump = pthread_create(&p, NULL, pump, s) == 0;
        have_writer = have_pump && pthread_create(&w, NULL, writer, s) == 0;
        while (have_writer) {
            struct ws_message m;
            enum ws_read_result rr = ws_read_message(&s->ws, 1000, &m);
            if (rr == WS_READ_TIMEOUT) {
                pthread_mutex_lock(&s->lock);
                int done = s->exit_sent && ++s->idle_after_exit >= MAIN_ATTACH_CLOSE_WAIT_S;
                pthread_mutex_unlock(&s->lock);
                if (done)
                    break;
                continue;
            }
            if (rr != WS_READ_MESSAGE)
                break; /* closed or gone: detach, the main process goes on */
            if (m.opcode == WS_OP_BINARY)
                forward_stdin(s, m.data, m.len);
            else
                control_message(s, &m);
        }
        pthread_mutex_lock(&s->lock);
        s->stop = 1;
        pthread_mutex_unlock(&s->lock);
        if (have_pump)
            cocoon_attach_detach(s->a); /* its end closes the pipes: the writer wakes */
        shutdown(s->fd, SHUT_RDWR);     /* a writer blocked on a dead client returns */
        if (have_writer)
            pthread_join(w, NULL);
        if (have_pump) {
            close_fd(&s->out[0]); /* nobody drains the pipes now: the attachment's writes fail */
            close_fd(&s->err[0]);
            pthread_join(p, NULL);
        }
        ws_conn_destroy(&s->ws);
    }
    MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
    session_free(s);
    return NULL;
}

static void on_upgrade(void *cls, struct MHD_Connection *connection, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)connection;
    (void)con_cls;
    struct main_session *s = cls;
    s->fd = sock;
    s->urh = urh;
    ws_attach_copy_extra(extra_in, extra_in_size, &s->extra, &s->extra_len);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    if (pthread_create(&t, &attr, session_main, s) != 0) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        session_free(s);
    }
    pthread_attr_destroy(&attr);
}

/* Attaches before the upgrade, so refusals (no main process, not running, too many
 * attachers) are ordinary error answers. */
static int start_attachment(struct req *r, struct main_session *s)
{
    if (pipe2(s->out, O_CLOEXEC) < 0 || pipe2(s->err, O_CLOEXEC) < 0 || pipe2(s->in, O_CLOEXEC) < 0 ||
        fcntl(s->in[1], F_SETFL, O_NONBLOCK) < 0)
        return serve_error(r, 503, "resource_exhausted", "cannot make pipes: %s", strerror(errno));
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1; /* it closed what it opened */
    s->rt = rt;
    s->box = box;
    cocoon_attach_options o;
    cocoon_attach_options_init(&o);
    o.stdin_fd = s->in[0];
    o.stdout_fd = s->out[1];
    o.stderr_fd = s->err[1];
    o.detach_keys = ""; /* bytes from a WebSocket client are all input; leaving is closing */
    cocoon_error err;
    if (cocoon_attach_start(s->box, &o, &s->a, &err) == 0)
        return 0;
    if (err.code == COCOON_E_VMM && strstr(err.message, "already attached"))
        return serve_error(r, 429, "resource_exhausted", "%s", err.message);
    return serve_cocoon_error(r, &err);
}

int handle_box_attach(struct req *r)
{
    char accept[WS_ACCEPT_SIZE];
    if (ws_attach_check(r, accept, "GET .../logs?follow=true streams the output without one") < 0)
        return -1;
    struct main_session *s = calloc(1, sizeof(*s));
    if (!s)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    s->fd = -1;
    s->out[0] = s->out[1] = s->err[0] = s->err[1] = s->in[0] = s->in[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    if (start_attachment(r, s) < 0) {
        session_free(s);
        return -1;
    }
    if (ws_attach_answer(r, accept, on_upgrade, s) < 0) {
        session_free(s);
        return -1;
    }
    return 0;
}
