/* GET .../executions/{id}/attach: an execution's streams over a WebSocket, as BoxLite
 * clients speak it. Server → client: binary frames 0x01+stdout or 0x02+stderr, a ping
 * after ATTACH_PING_MS without output (clients give up on a silent socket), then text
 * {"type":"exit","exit_code":N} and a close 1000. Client → server: binary frames are
 * stdin; text {"type":"stdin_eof"}, {"type":"resize","cols","rows"},
 * {"type":"signal","sig":N}. A client that leaves before the exit frame kills the
 * execution unless it was started detached. */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/execs.h"
#include "serve/http.h"
#include "serve/serve.h"
#include "serve/ws.h"
#include "serve/ws_attach.h"
#include "serve/xreg.h"

#define ATTACH_PING_MS 3000
#define ATTACH_MESSAGE_MAX (1u << 20) /* one stdin or control message from the client */
#define ATTACH_CLOSE_WAIT_S 5

struct session {
    struct xentry *e;
    int fd;
    struct MHD_UpgradeResponseHandle *urh;
    uint8_t *extra;
    size_t extra_len;
    struct ws_conn ws;
    pthread_mutex_t lock;
    int stop;            /* the reader ended: the writer stops */
    int exit_sent;       /* the writer delivered everything and the exit frame */
    int idle_after_exit; /* seconds the reader waited since for the client to close */
};

static int stopping(struct session *s)
{
    pthread_mutex_lock(&s->lock);
    int stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

static void send_exit(struct session *s)
{
    struct xentry *e = s->e;
    pthread_mutex_lock(&e->lock);
    int code = xreg_exit_code(e);
    char msg[sizeof(e->err_msg)];
    snprintf(msg, sizeof(msg), "%s", e->err_code ? e->err_msg : "");
    const char *status = xreg_status(e);
    pthread_mutex_unlock(&e->lock);
    if (msg[0]) {
        json_t *err = json_pack("{s:s,s:s}", "type", "error", "message", msg);
        char *text = json_dumps(err, JSON_COMPACT);
        json_decref(err);
        if (text)
            ws_send_text(&s->ws, text, strlen(text));
        free(text);
    }
    json_t *exit = json_pack("{s:s,s:i,s:s}", "type", "exit", "exit_code", code, "status", status);
    char *text = json_dumps(exit, JSON_COMPACT);
    json_decref(exit);
    if (text && ws_send_text(&s->ws, text, strlen(text)) == 0 && ws_send_close(&s->ws, WS_CLOSE_NORMAL, NULL) == 0) {
        pthread_mutex_lock(&s->lock);
        s->exit_sent = 1;
        pthread_mutex_unlock(&s->lock);
    }
    free(text);
}

/* Drains the execution's output into frames until it ends or the reader gives up. */
static void *writer(void *arg)
{
    struct session *s = arg;
    while (!stopping(s)) {
        struct xchunk *c = NULL;
        int got = xreg_take(s->e, &c, ATTACH_PING_MS);
        if (got == 1) {
            uint8_t tag = c->stream == XREG_STDERR ? 0x02 : 0x01;
            struct iovec iov[2] = {{&tag, 1}, {c->data, c->len}};
            int rc = ws_send(&s->ws, WS_OP_BINARY, iov, 2);
            free(c);
            if (rc < 0)
                break;
        } else if (got == 0) {
            if (ws_send_ping(&s->ws, NULL, 0) < 0)
                break;
        } else {
            send_exit(s);
            break;
        }
    }
    return NULL;
}

static void control_message(struct session *s, const struct ws_message *m)
{
    struct ws_control c;
    cocoon_error err = {0};
    int rc = ws_control_parse(m->data, m->len, &c, err.message, sizeof(err.message));
    if (rc == 0 && c.type == WS_CONTROL_STDIN_EOF) {
        rc = xreg_close_stdin(s->e, &err);
    } else if (rc == 0 && c.type == WS_CONTROL_RESIZE) {
        rc = xreg_resize(s->e, c.rows, c.cols, &err);
    } else if (rc == 0) {
        if (c.sig == 9) {
            pthread_mutex_lock(&s->e->lock);
            s->e->killed = !s->e->done;
            pthread_mutex_unlock(&s->e->lock);
        }
        rc = xreg_signal(s->e, c.sig, &err);
    }
    if (rc < 0 && err.code != COCOON_E_STATE) {
        json_t *msg = json_pack("{s:s,s:s}", "type", "error", "message", err.message);
        char *text = json_dumps(msg, JSON_COMPACT);
        json_decref(msg);
        if (text)
            ws_send_text(&s->ws, text, strlen(text));
        free(text);
    }
}

static void *session_main(void *arg)
{
    struct session *s = arg;
    pthread_t w;
    int have_writer = 0;
    if (ws_conn_init(&s->ws, s->fd, ATTACH_MESSAGE_MAX, s->extra, s->extra_len) == 0) {
        have_writer = pthread_create(&w, NULL, writer, s) == 0;
        while (have_writer) {
            struct ws_message m;
            enum ws_read_result rr = ws_read_message(&s->ws, 1000, &m);
            if (rr == WS_READ_TIMEOUT) {
                /* After the exit frame and our close, a client gets a few seconds to
                 * answer the close; one that never does does not keep the session. */
                pthread_mutex_lock(&s->lock);
                int done = s->exit_sent && ++s->idle_after_exit >= ATTACH_CLOSE_WAIT_S;
                pthread_mutex_unlock(&s->lock);
                if (done)
                    break;
                continue;
            }
            if (rr != WS_READ_MESSAGE)
                break; /* closed, or gone (BoxLite's client drops the socket after the exit frame) */
            if (m.opcode == WS_OP_BINARY) {
                cocoon_error err;
                if (m.len && xreg_write(s->e, m.data, m.len, &err) < 0 && err.code != COCOON_E_STATE)
                    break;
            } else {
                control_message(s, &m);
            }
        }
        pthread_mutex_lock(&s->lock);
        s->stop = 1;
        pthread_mutex_unlock(&s->lock);
        shutdown(s->fd, SHUT_RDWR); /* a writer blocked on a dead client returns */
        if (have_writer)
            pthread_join(w, NULL);
        ws_conn_destroy(&s->ws);
    }
    xreg_detach(s->e, !s->exit_sent);
    xreg_put(s->e);
    MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
    pthread_mutex_destroy(&s->lock);
    free(s->extra);
    free(s);
    return NULL;
}

static void on_upgrade(void *cls, struct MHD_Connection *connection, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct session *s = cls;
    s->fd = sock;
    s->urh = urh;
    ws_attach_copy_extra(extra_in, extra_in_size, &s->extra, &s->extra_len);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    if (pthread_create(&t, &attr, session_main, s) != 0) {
        xreg_detach(s->e, 1);
        xreg_put(s->e);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        pthread_mutex_destroy(&s->lock);
        free(s->extra);
        free(s);
    }
    pthread_attr_destroy(&attr);
}

int handle_exec_attach(struct req *r)
{
    char accept[WS_ACCEPT_SIZE];
    if (ws_attach_check(r, accept, "GET .../output streams NDJSON without one") < 0)
        return -1;
    struct xentry *e = exec_from_route(r);
    if (!e)
        return -1;
    if (xreg_attach(e) < 0) {
        xreg_put(e);
        return serve_error(r, 409, "invalid_state", "execution %s is already attached to another client", e->id);
    }
    struct session *s = calloc(1, sizeof(*s));
    if (!s) {
        xreg_detach(e, 0);
        xreg_put(e);
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    }
    s->e = e;
    s->fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    if (ws_attach_answer(r, accept, on_upgrade, s) < 0) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        xreg_detach(e, 0);
        xreg_put(e);
        return -1;
    }
    return 0;
}
