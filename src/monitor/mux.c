/* Relays frames between control clients and the agent (docs/internals.md, "Control
 * socket"). Each client exec stream is mapped to a fresh agent stream id; the maps
 * are the only way a frame finds its peer, so a client can never touch another
 * client's exec and an id from the guest is never used as an index. */
#include "monitor/mux.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "proto/conn.h"
#include "util/log.h"
#include "util/util.h"
#include "monitor/attach.h"
#include "monitor/detached.h"
#include "monitor/health.h"
#include "monitor/livesnap.h"
#include "monitor/mainproc.h"
#include "monitor/monitor.h"

/* What a client frame handler returns: the frame was handled, the client is gone
 * (dropped while an answer was sent), or it broke the protocol and must be dropped. */
enum { FRAME_OK = 0, FRAME_CLIENT_GONE = -1, FRAME_MALFORMED = -2 };

struct client {
    struct watch w;
    int fd;
    struct proto_conn conn;
    uint64_t serial; /* never reused: pending agent pings refer to clients by serial */
    int nroutes;
    uint32_t events; /* what epoll watches now */
    struct client *next_dead;
};

/* One running exec: the agent's stream id and, unless orphaned, its client's. */
struct route {
    uint32_t agent_id;
    uint32_t client_id;
    struct client *c; /* NULL when the client has gone: output is drained and dropped */
    int started;
    int own;         /* the monitor's own exec (mainproc.c): no client ever */
    uint16_t kind;   /* the opening type: EXEC, FILE_PUT, FILE_GET, FILE_OP, STATS */
    uint32_t pid;    /* from STARTED: the exec's process group in the guest */
    char cmd[256];   /* argv joined by spaces, clipped: what `cocoon kill --list` shows */
    uint32_t window; /* the stream's output window, added to its client's queue limit */
    uint64_t credit; /* output the agent may still send: the window plus the client's credits */
};

#define PING_FIFO 256

struct mux {
    struct vmm *v;
    struct client *clients[MUX_MAX_CLIENTS];
    int nclients;
    uint64_t next_serial;
    struct route *routes;
    int nroutes, routes_cap;
    uint32_t next_agent_id;
    uint64_t pings[PING_FIFO]; /* clients waiting for the agent's PONG, oldest first */
    int ping_head, ping_count;
    struct client *dead; /* closed, freed by mux_reap after the epoll batch */
    struct proto_writer w;
    /* Out of descriptors (listen_backoff): */
    int spare_fd;            /* kept open, so that waiting clients can still be told no */
    int retry_fd;            /* timerfd: when it fires the listener is watched again */
    struct watch w_retry;    /* kind W_LISTEN: mux_on_listen sees it while paused */
    int paused, retry_added; /* the listener is out of the epoll set; w_retry is in it */
    int starved_logged;      /* one vmm.log line per episode */
};

struct mux *mux_new(struct vmm *v)
{
    struct mux *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->v = v;
    m->next_agent_id = 1;
    m->next_serial = 1;
    m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    m->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    m->w_retry.kind = W_LISTEN;
    return m;
}

/* ---- routes ---- */

static int route_by_agent(struct mux *m, uint32_t agent_id)
{
    for (int i = 0; i < m->nroutes; i++)
        if (m->routes[i].agent_id == agent_id)
            return i;
    return -1;
}

static int route_by_client(struct mux *m, const struct client *c, uint32_t client_id)
{
    for (int i = 0; i < m->nroutes; i++)
        if (m->routes[i].c == c && m->routes[i].client_id == client_id)
            return i;
    return -1;
}

static void route_remove(struct mux *m, int i)
{
    if (m->routes[i].c) {
        m->routes[i].c->nroutes--;
        m->routes[i].c->conn.out_limit -= m->routes[i].window;
    }
    m->routes[i] = m->routes[--m->nroutes];
}

static uint32_t alloc_agent_id(struct mux *m)
{
    for (;;) {
        uint32_t id = m->next_agent_id++;
        if (id != 0 && route_by_agent(m, id) < 0)
            return id;
    }
}

/* ---- sending ---- */

static void client_drop(struct mux *m, struct client *c, const char *why);

static void client_update_events(struct mux *m, struct client *c)
{
    uint32_t ev = (m->v->agent_backlogged ? 0 : EPOLLIN) | (proto_conn_pending(&c->conn) ? EPOLLOUT : 0);
    if (ev != c->events && vmm_rewatch(m->v, c->fd, ev, &c->w) == 0)
        c->events = ev;
}

/* Queues a frame to a client; a client that lets 4 MiB pile up is dropped. */
static int client_send(struct mux *m, struct client *c, size_t len)
{
    if (len == 0 || proto_conn_send(&c->conn, m->w.buf, len) < 0) {
        client_drop(m, c, errno == ENOBUFS ? "it does not read its output (queue full)" : "write failed");
        return -1;
    }
    client_update_events(m, c);
    return 0;
}

static int client_error(struct mux *m, struct client *c, uint32_t stream, int code, const char *msg)
{
    return client_send(m, c, proto_encode_error(&m->w, stream, (uint32_t)code, msg));
}

static void agent_send_w(struct mux *m, size_t len)
{
    if (len)
        vmm_send_agent(m->v, m->w.buf, len);
}

/* ---- clients ---- */

static void client_free(struct mux *m, struct client *c)
{
    attach_client_gone(m->v, c->serial);
    vmm_unwatch(m->v, c->fd);
    close(c->fd);
    proto_conn_free(&c->conn);
    for (int i = 0; i < m->nclients; i++) {
        if (m->clients[i] == c) {
            m->clients[i] = m->clients[--m->nclients];
            break;
        }
    }
    c->w.dead = 1;
    c->next_dead = m->dead;
    m->dead = c;
}

void mux_reap(struct mux *m)
{
    while (m->dead) {
        struct client *c = m->dead;
        m->dead = c->next_dead;
        free(c);
    }
}

/* The client's running execs are killed; their output is drained and dropped. */
static void client_drop(struct mux *m, struct client *c, const char *why)
{
    int orphaned = 0;
    for (int i = 0; i < m->nroutes; i++) {
        struct route *r = &m->routes[i];
        if (r->c != c)
            continue;
        r->c = NULL;
        orphaned++;
        if (m->v->state == ST_RUNNING || m->v->state == ST_STOPPING)
            agent_send_w(m, proto_encode_signal(&m->w, r->agent_id, SIGKILL));
    }
    vmm_log("client %llu disconnected (%s)%s", (unsigned long long)c->serial, why,
            orphaned ? ", its running execs were sent SIGKILL" : "");
    client_free(m, c);
}

#define LISTEN_BACKOFF_MS 200

/* Closes the spare descriptor to accept each waiting client on it, tell it why it
 * cannot be served and close it again: a client gets an error, never a hang. */
static void refuse_waiting(struct mux *m, int err)
{
    if (m->spare_fd < 0)
        return;
    close(m->spare_fd);
    char msg[256];
    snprintf(msg, sizeof(msg),
             "cocoon-vmm is out of file descriptors (%s): it cannot take another control connection now; try "
             "again once the box has closed some of its network connections",
             strerror(err));
    size_t len = proto_encode_error(&m->w, 0, (uint32_t)err, msg);
    for (int i = 0; i < MUX_MAX_CLIENTS; i++) {
        int fd = accept4(m->v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        ssize_t w = send(fd, m->w.buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w;
        close(fd);
    }
    m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* accept failed for want of descriptors (or kernel memory): the waiting clients are
 * refused, and the listener leaves the epoll set for LISTEN_BACKOFF_MS. Level-
 * triggered, it would otherwise wake the loop, and write vmm.log, on every pass until
 * a descriptor frees up. Logged once until a client is accepted again. */
static void listen_backoff(struct mux *m, int err)
{
    struct vmm *v = m->v;
    if (!m->starved_logged)
        vmm_log("accept on ctl.sock: %s: control clients are refused for now, retrying every %d ms (logged once)",
                strerror(err), LISTEN_BACKOFF_MS);
    m->starved_logged = 1;
    refuse_waiting(m, err);
    struct itimerspec its = {.it_value.tv_nsec = LISTEN_BACKOFF_MS * 1000000L};
    if (m->retry_fd < 0 || timerfd_settime(m->retry_fd, 0, &its, NULL) < 0)
        return; /* no timer: keep watching (refuse_waiting still answers each client) */
    if (!m->retry_added && vmm_watch(v, m->retry_fd, EPOLLIN, &m->w_retry) < 0)
        return;
    m->retry_added = 1;
    vmm_unwatch(v, v->listen_fd);
    m->paused = 1;
}

/* The backoff is over: the listener is watched again (unless the box is stopping and
 * closed it). */
static void listen_resume(struct mux *m)
{
    uint64_t ticks;
    if (read(m->retry_fd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks))
        return;
    m->paused = 0;
    if (m->v->listen_fd >= 0 && m->v->state == ST_RUNNING)
        vmm_watch(m->v, m->v->listen_fd, EPOLLIN, &m->v->w_listen);
}

void mux_on_listen(struct mux *m)
{
    if (m->paused) {
        listen_resume(m); /* only the retry timer is watched meanwhile */
        return;
    }
    if (m->v->listen_fd < 0)
        return;
    for (;;) {
        int fd = accept4(m->v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                listen_backoff(m, errno);
            return;
        }
        m->starved_logged = 0;
        if (m->spare_fd < 0)
            m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (m->nclients >= MUX_MAX_CLIENTS) {
            vmm_log("refusing a control client: %d already connected", MUX_MAX_CLIENTS);
            close(fd);
            continue;
        }
        struct client *c = calloc(1, sizeof(*c));
        if (!c || proto_conn_init(&c->conn, fd, MUX_CLIENT_OUT_LIMIT) < 0) {
            free(c);
            close(fd);
            vmm_log("refusing a control client: out of memory");
            continue;
        }
        c->w.kind = W_CLIENT;
        c->fd = fd;
        c->serial = m->next_serial++;
        c->events = m->v->agent_backlogged ? 0 : EPOLLIN;
        if (vmm_watch(m->v, fd, c->events, &c->w) < 0) {
            proto_conn_free(&c->conn);
            free(c);
            close(fd);
            continue;
        }
        m->clients[m->nclients++] = c;
        struct vmm *v = m->v;
        struct proto_vmm_hello hello = {
            .version = v->version, .boot_ns = v->ready.boot_ns, .init_ns = v->ready.init_ns, .ready_ms = v->ready_ms};
        snprintf(hello.backend, sizeof(hello.backend), "%s", box_backend_name(v->cfg.backend));
        snprintf(hello.accel, sizeof(hello.accel), "%s", v->plan.accel);
        snprintf(hello.box_id, sizeof(hello.box_id), "%s", v->cfg.id);
        snprintf(hello.kernel, sizeof(hello.kernel), "%s", v->hello.kernel);
        client_send(m, c, proto_encode_vmm_hello(&m->w, &hello));
    }
}

/* PING on stream 0: ours to answer, or the agent's when the payload starts with 'A'. */
static int client_ping(struct mux *m, struct client *c, const uint8_t *p, uint32_t n)
{
    if (n == 0 || p[0] != 'A')
        return client_send(m, c, proto_encode_data(&m->w, 0, PROTO_PONG, p, n));
    if (m->v->state != ST_RUNNING)
        return client_error(m, c, 0, ESHUTDOWN, "the box is stopping: the agent does not answer pings");
    if (m->ping_count == PING_FIFO)
        return client_error(m, c, 0, EAGAIN, "too many agent pings in flight");
    m->pings[(m->ping_head + m->ping_count++) % PING_FIFO] = c->serial;
    agent_send_w(m, proto_encode_data(&m->w, 0, PROTO_PING, p, n));
    return 0;
}

/* Answers VMM_LIST_EXECS (target -1) and VMM_SIGNAL_EXEC (pid, or 0 for all): the
 * monitor sees every client's execs, so `cocoon kill` reaches commands other
 * processes started, without running anything in the guest. */
static int client_execs(struct mux *m, struct client *c, long target, uint32_t signo)
{
    size_t cap = PROTO_MAX_PAYLOAD / (sizeof(((struct proto_exec_entry *)0)->cmd) + 16);
    struct proto_exec_entry *e = calloc(cap, sizeof(*e));
    if (!e)
        return client_error(m, c, 0, ENOMEM, "out of memory");
    size_t n = 0;
    for (int i = 0; i < m->nroutes && n < cap; i++) {
        struct route *r = &m->routes[i];
        if (r->kind != PROTO_EXEC || !r->started || !r->pid)
            continue;
        if (target > 0 && r->pid != (uint32_t)target)
            continue;
        if (target >= 0)
            agent_send_w(m, proto_encode_signal(&m->w, r->agent_id, signo));
        e[n].pid = r->pid;
        memcpy(e[n].cmd, r->cmd, sizeof(e[n].cmd));
        n++;
    }
    int rc = client_send(m, c, proto_encode_vmm_execs(&m->w, e, n));
    free(e);
    return rc;
}

static int client_exec_detached(struct mux *m, struct client *c, const uint8_t *p, uint32_t n);

static int client_session_frame(struct mux *m, struct client *c, const struct proto_header *h, const uint8_t *p)
{
    uint32_t mode, timeout_ms, pid, signo;
    switch (h->type) {
    case PROTO_VMM_LIST_EXECS: return client_execs(m, c, -1, 0);
    case PROTO_VMM_SIGNAL_EXEC:
        if (proto_decode_signal_exec(p, h->len, &pid, &signo) != PROTO_OK)
            return client_error(m, c, 0, EINVAL, "malformed VMM_SIGNAL_EXEC"), FRAME_MALFORMED;
        return client_execs(m, c, pid, signo);
    case PROTO_PING: return client_ping(m, c, p, h->len);
    case PROTO_VMM_EXEC_DETACHED: return client_exec_detached(m, c, p, h->len);
    case PROTO_SHUTDOWN:
        if (proto_decode_shutdown(p, h->len, &mode, &timeout_ms) != PROTO_OK)
            return client_error(m, c, 0, EINVAL, "malformed SHUTDOWN"), FRAME_MALFORMED;
        if (mode != 0)
            return client_error(m, c, 0, EOPNOTSUPP, "reboot is not supported: stop the box and start it again");
        vmm_log("client %llu asked for a shutdown (timeout %u ms)", (unsigned long long)c->serial, timeout_ms);
        vmm_event(m->v, EV_SHUTDOWN, "SHUTDOWN from a control client", timeout_ms ? timeout_ms : 10000);
        return 0;
    case PROTO_VMM_SNAPSHOT: {
        struct proto_snapshot req;
        char why[512];
        int code;
        if (proto_decode_vmm_snapshot(p, h->len, &req) != PROTO_OK)
            return client_error(m, c, 0, EINVAL, "malformed VMM_SNAPSHOT"), FRAME_MALFORMED;
        if (livesnap_request(m->v, c->serial, &req, &code, why, sizeof(why)) < 0)
            return client_error(m, c, 0, code, why);
        return 0;
    }
    case PROTO_PONG: return 0;
    case PROTO_ERROR: vmm_log("client %llu sent an ERROR on stream 0", (unsigned long long)c->serial); return 0;
    default: {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s is not allowed from a control client", proto_type_name(h->type));
        return client_error(m, c, 0, EPERM, msg);
    }
    }
}

/* Validates a stream-opening message before it reaches the agent. */
static int open_check(const struct proto_header *h, const uint8_t *p, char *cmd, size_t cap, uint32_t *window)
{
    cmd[0] = 0;
    *window = PROTO_DEFAULT_WINDOW;
    if (h->type == PROTO_STATS)
        return proto_decode_stats(p, h->len);
    if (h->type == PROTO_FILE_PUT || h->type == PROTO_FILE_GET || h->type == PROTO_FILE_OP) {
        union {
            struct proto_file file;
            struct proto_file_op op;
        } *f = malloc(sizeof(*f));
        if (!f)
            return PROTO_E_NOMEM;
        int op = h->type == PROTO_FILE_OP;
        int rc = op ? proto_decode_file_op(p, h->len, &f->op) : proto_decode_file(p, h->len, &f->file);
        if (rc == PROTO_OK)
            *window = op ? f->op.window : f->file.window;
        free(f);
        return rc;
    }
    struct proto_exec ex;
    int rc = proto_decode_exec(p, h->len, &ex);
    if (rc != PROTO_OK)
        return rc;
    *window = ex.window;
    util_join_words(cmd, cap, ex.argv, ex.argc);
    proto_exec_free(&ex);
    return rc;
}

static int client_exec(struct mux *m, struct client *c, const struct proto_header *h, const uint8_t *p)
{
    char msg[128];
    if (route_by_client(m, c, h->stream) >= 0 || attach_is(m->v, c->serial, h->stream)) {
        snprintf(msg, sizeof(msg), "stream %u already has a running exec", h->stream);
        return client_error(m, c, h->stream, EBUSY, msg);
    }
    if (m->v->state != ST_RUNNING)
        return client_error(m, c, h->stream, ESHUTDOWN, "the box is stopping");
    /* EXEC, FILE_PUT, FILE_GET, FILE_OP and STATS open a stream the same way. */
    char cmd[sizeof(((struct route *)0)->cmd)];
    uint32_t window = 0;
    int rc = open_check(h, p, cmd, sizeof(cmd), &window);
    if (rc == PROTO_OK && window > MUX_MAX_WINDOW)
        rc = PROTO_E_FIELD;
    if (rc != PROTO_OK) {
        snprintf(msg, sizeof(msg), "malformed %s: %s", proto_type_name(h->type), proto_strerror(rc));
        client_error(m, c, h->stream, EINVAL, msg);
        return FRAME_MALFORMED;
    }
    if (c->nroutes >= MUX_MAX_ROUTES_PER_CLIENT || m->nroutes >= MUX_MAX_ROUTES)
        return client_error(m, c, h->stream, EAGAIN, "too many running execs");
    if (m->nroutes == m->routes_cap) {
        int cap = m->routes_cap ? m->routes_cap * 2 : 64;
        struct route *grown = realloc(m->routes, (size_t)cap * sizeof(*grown));
        if (!grown)
            return client_error(m, c, h->stream, ENOMEM, "out of memory");
        m->routes = grown;
        m->routes_cap = cap;
    }
    struct route *r = &m->routes[m->nroutes++];
    memset(r, 0, sizeof(*r));
    r->agent_id = alloc_agent_id(m);
    r->client_id = h->stream;
    r->c = c;
    r->kind = h->type;
    memcpy(r->cmd, cmd, sizeof(r->cmd));
    /* Credits bound what a stream can have in flight toward the client: its queue may
     * hold every open stream's window before a client that ignores credits is dropped. */
    r->window = window;
    r->credit = window;
    c->conn.out_limit += window;
    c->nroutes++;
    agent_send_w(m, proto_encode_data(&m->w, r->agent_id, h->type, p, h->len));
    return 0;
}

/* VMM_ATTACH: the client's stream carries the main process's output (attach.c). */
static int client_attach(struct mux *m, struct client *c, const struct proto_header *h, const uint8_t *p)
{
    char msg[256];
    if (route_by_client(m, c, h->stream) >= 0 || attach_is(m->v, c->serial, h->stream)) {
        snprintf(msg, sizeof(msg), "stream %u is already in use", h->stream);
        return client_error(m, c, h->stream, EBUSY, msg);
    }
    struct proto_attach a;
    int rc = proto_decode_attach(p, h->len, &a);
    if (rc != PROTO_OK) {
        snprintf(msg, sizeof(msg), "malformed VMM_ATTACH: %s", proto_strerror(rc));
        client_error(m, c, h->stream, EINVAL, msg);
        return FRAME_MALFORMED;
    }
    if (m->v->state != ST_RUNNING)
        return client_error(m, c, h->stream, ESHUTDOWN, "the box is stopping");
    int code = 0;
    if (attach_open(m->v, c->serial, h->stream, &a, &code, msg, sizeof(msg)) < 0)
        return client_error(m, c, h->stream, code, msg);
    return 0;
}

/* Later frames of a client's exec: checked, then relayed under the agent's id. */
static int client_stream_frame(struct mux *m, struct client *c, const struct proto_header *h, const uint8_t *p)
{
    char msg[128];
    uint32_t a, b;
    int rc = PROTO_OK;
    switch (h->type) {
    case PROTO_EXEC:
    case PROTO_FILE_PUT:
    case PROTO_FILE_GET:
    case PROTO_FILE_OP:
    case PROTO_STATS: return client_exec(m, c, h, p);
    case PROTO_VMM_ATTACH: return client_attach(m, c, h, p);
    case PROTO_STDIN: break;
    case PROTO_STDIN_EOF: rc = h->len == 0 ? PROTO_OK : PROTO_E_FIELD; break;
    case PROTO_SIGNAL:
        rc = proto_decode_u32_field(p, h->len, PT_SIGNAL, &a);
        if (rc == PROTO_OK && (a == 0 || a > 64))
            rc = PROTO_E_FIELD;
        break;
    case PROTO_RESIZE: rc = proto_decode_resize(p, h->len, &a, &b); break;
    case PROTO_CREDIT: rc = proto_decode_u32_field(p, h->len, PT_BYTES, &a); break;
    default:
        snprintf(msg, sizeof(msg), "%s is not allowed from a control client", proto_type_name(h->type));
        return client_error(m, c, h->stream, EPERM, msg);
    }
    if (rc != PROTO_OK) {
        snprintf(msg, sizeof(msg), "malformed %s: %s", proto_type_name(h->type), proto_strerror(rc));
        client_error(m, c, h->stream, EINVAL, msg);
        return FRAME_MALFORMED;
    }
    if (attach_on_client_frame(m->v, c->serial, h, p))
        return 0;
    int i = route_by_client(m, c, h->stream);
    if (i < 0 && h->type == PROTO_CREDIT)
        return 0; /* credit for output read just before EXIT: the race is normal */
    if (i >= 0 && h->type == PROTO_CREDIT)
        m->routes[i].credit += a;
    if (i < 0) {
        snprintf(msg, sizeof(msg), "no running exec on stream %u", h->stream);
        return client_error(m, c, h->stream, ESRCH, msg);
    }
    agent_send_w(m, proto_encode_data(&m->w, m->routes[i].agent_id, h->type, p, h->len));
    return 0;
}

/* Handles the frames already buffered for c. -1 when c is gone. */
static int client_process_frames(struct mux *m, struct client *c)
{
    struct proto_header h;
    const uint8_t *p;
    for (;;) {
        if (m->v->agent_backlogged)
            return 0;
        int rc = proto_conn_next(&c->conn, &h, &p);
        if (rc == PROTO_NEED_MORE)
            return 0;
        if (rc != PROTO_OK) {
            char why[128];
            snprintf(why, sizeof(why), "malformed frame: %s", proto_strerror(rc));
            client_drop(m, c, why);
            return -1;
        }
        rc = h.stream == 0 ? client_session_frame(m, c, &h, p) : client_stream_frame(m, c, &h, p);
        if (rc == FRAME_CLIENT_GONE)
            return -1;
        if (rc == FRAME_MALFORMED) {
            client_drop(m, c, "malformed message");
            return -1;
        }
        if (m->v->state == ST_DONE)
            return 0;
    }
}

/* What a client sent in one go reaches the agent in one write. */
static int client_process(struct mux *m, struct client *c)
{
    vmm_cork_agent(m->v);
    int rc = client_process_frames(m, c);
    vmm_uncork_agent(m->v);
    return rc;
}

void mux_on_client(struct mux *m, struct client *c, uint32_t events)
{
    if (events & EPOLLOUT) {
        if (proto_conn_flush(&c->conn) < 0) {
            client_drop(m, c, "write failed");
            return;
        }
        client_update_events(m, c);
        attach_on_drained(m->v, c->serial);
        if (c->w.dead) /* dropped while told about skipped output */
            return;
    }
    if (m->v->agent_backlogged) {
        /* Not reading now; a hung-up client would report EPOLLHUP forever, so it goes. */
        if (events & (EPOLLHUP | EPOLLERR))
            client_drop(m, c, "hung up");
        return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    long n = proto_conn_read(&c->conn);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        const char *why = n == 0 ? "hung up" : strerror(errno);
        /* A client may send SHUTDOWN and hang up at once: act on what it sent first. */
        if (client_process(m, c) == 0)
            client_drop(m, c, why);
        return;
    }
    client_process(m, c);
}

void mux_set_backlogged(struct mux *m, int backlogged)
{
    m->v->agent_backlogged = backlogged;
    /* Walk backwards: processing may drop the client at i (it is swapped with the last). */
    for (int i = m->nclients - 1; i >= 0; i--) {
        if (i >= m->nclients)
            continue;
        struct client *c = m->clients[i];
        client_update_events(m, c);
        if (!backlogged && client_process(m, c) < 0)
            continue;
    }
}

/* ---- agent side ---- */

/* A frame whose header was fine but whose payload does not decode is dropped and
 * logged (docs/protocol.md); the byte stream is still in sync. Header errors are
 * fatal for the box (see loop.c). */
static void agent_malformed(struct mux *m, const struct proto_header *h, int rc)
{
    vmm_log_guest("dropping a malformed %s from the agent on stream %u (%s)", proto_type_name(h->type), h->stream,
                  proto_strerror(rc));
}

static void agent_session_frame(struct mux *m, const struct proto_header *h, const uint8_t *p)
{
    struct proto_error_msg em;
    int rc;
    switch (h->type) {
    case PROTO_PONG:
        if (m->ping_count == 0) {
            vmm_log_guest("the agent sent a PONG nobody asked for");
            return;
        }
        uint64_t serial = m->pings[m->ping_head];
        m->ping_head = (m->ping_head + 1) % PING_FIFO;
        m->ping_count--;
        for (int i = 0; i < m->nclients; i++)
            if (m->clients[i]->serial == serial) {
                client_send(m, m->clients[i], proto_encode_data(&m->w, 0, PROTO_PONG, p, h->len));
                break;
            }
        return;
    case PROTO_PING: agent_send_w(m, proto_encode_data(&m->w, 0, PROTO_PONG, p, h->len)); return;
    case PROTO_FROZEN: {
        struct proto_frozen f;
        if ((rc = proto_decode_frozen(p, h->len, &f)) != PROTO_OK) {
            agent_malformed(m, h, rc);
            return;
        }
        livesnap_on_frozen(m->v, &f);
        return;
    }
    case PROTO_ERROR:
        if ((rc = proto_decode_error(p, h->len, &em)) != PROTO_OK) {
            agent_malformed(m, h, rc);
            return;
        }
        vmm_log_guest("the agent reported an error: %s (code %u)", em.message, em.code);
        return;
    default: vmm_log_guest("ignoring an unexpected %s from the agent", proto_type_name(h->type)); return;
    }
}

/* Checks what the agent may send on an exec stream. 0 ok, else a PROTO_E_* status. */
static int agent_stream_check(const struct proto_header *h, const uint8_t *p)
{
    struct proto_started st;
    struct proto_exit ex;
    struct proto_error_msg em;
    uint32_t bytes;
    switch (h->type) {
    case PROTO_STARTED: return proto_decode_started(p, h->len, &st);
    case PROTO_STDOUT:
    case PROTO_STDERR: return PROTO_OK;
    case PROTO_CREDIT: return proto_decode_u32_field(p, h->len, PT_BYTES, &bytes);
    case PROTO_ERROR: return proto_decode_error(p, h->len, &em);
    case PROTO_EXIT: return proto_decode_exit(p, h->len, &ex);
    case PROTO_STATS_REPLY: {
        struct proto_stats sr;
        return proto_decode_stats_reply(p, h->len, &sr);
    }
    default: return PROTO_E_STREAM;
    }
}

/* The agent sent output past the window its client granted: it ignores flow control
 * (cocoon-agent never does). Passing it on would make the client's queue absorb the
 * flood and the client be dropped as if it did not read. Instead the command is killed,
 * its route ends, and the client gets an ERROR EPROTO, which ends the stream for it. */
static void agent_ignored_credit(struct mux *m, int i, const struct proto_header *h)
{
    struct route *r = &m->routes[i];
    struct client *c = r->c;
    uint32_t client_id = r->client_id;
    vmm_log_guest("the agent ignores flow control on stream %u (%u bytes of output with %llu allowed): the command "
                  "is killed and its client told",
                  h->stream, h->len, (unsigned long long)r->credit);
    agent_send_w(m, proto_encode_signal(&m->w, r->agent_id, SIGKILL));
    route_remove(m, i);
    client_error(m, c, client_id, EPROTO,
                 "the guest sent more output than its flow-control window allows (it ignores flow control): the "
                 "command was killed and its further output dropped");
}

/* A frame of the monitor's own exec: output is credited back at once (mainproc.c
 * writes it to a bounded log, it never piles up here). */
static void own_frame(struct mux *m, int i, const struct proto_header *h, const uint8_t *p)
{
    struct route *r = &m->routes[i];
    uint32_t agent_id = r->agent_id;
    if (h->type == PROTO_STARTED) {
        struct proto_started st;
        r->started = 1;
        if (proto_decode_started(p, h->len, &st) == PROTO_OK)
            r->pid = st.pid;
    }
    if ((h->type == PROTO_STDOUT || h->type == PROTO_STDERR) && h->len > 0)
        agent_send_w(m, proto_encode_credit(&m->w, agent_id, h->len));
    int last = h->type == PROTO_EXIT || (h->type == PROTO_ERROR && !r->started);
    if (last)
        route_remove(m, i);
    if (!mainproc_on_frame(m->v, agent_id, h, p) && !health_on_frame(m->v, agent_id, h, p))
        detached_on_frame(m->v, agent_id, h, p);
}

void mux_send_to(struct mux *m, uint64_t serial, const void *frame, size_t len)
{
    for (int i = 0; i < m->nclients; i++)
        if (m->clients[i]->serial == serial) {
            struct client *c = m->clients[i];
            if (len == 0 || proto_conn_send(&c->conn, frame, len) < 0)
                client_drop(m, c, "it does not read its answers (queue full)");
            else
                client_update_events(m, c);
            return;
        }
}

/* VMM_EXEC_DETACHED: the monitor runs the command itself; the client is answered once
 * it started (detached.c). */
static int client_exec_detached(struct mux *m, struct client *c, const uint8_t *p, uint32_t n)
{
    if (m->v->state != ST_RUNNING)
        return client_error(m, c, 0, ESHUTDOWN, "the box is stopping");
    struct proto_exec ex;
    int rc = proto_decode_exec(p, n, &ex);
    if (rc != PROTO_OK) {
        char msg[128];
        snprintf(msg, sizeof(msg), "malformed VMM_EXEC_DETACHED: %s", proto_strerror(rc));
        client_error(m, c, 0, EINVAL, msg);
        return FRAME_MALFORMED;
    }
    int code = 0;
    char msg[160];
    rc = detached_start(m->v, c->serial, &ex, &code, msg, sizeof(msg));
    proto_exec_free(&ex);
    return rc < 0 ? client_error(m, c, 0, code, msg) : 0;
}

int mux_send_bounded(struct mux *m, uint64_t serial, const void *frame, size_t len, size_t limit)
{
    for (int i = 0; i < m->nclients; i++)
        if (m->clients[i]->serial == serial) {
            if (proto_conn_pending(&m->clients[i]->conn) > limit)
                return 0;
            mux_send_to(m, serial, frame, len);
            return 1;
        }
    return -1;
}

static uint32_t open_own(struct mux *m, const struct proto_exec *ex, int close_stdin);

uint32_t mux_open_own(struct mux *m, const struct proto_exec *ex) { return open_own(m, ex, 1); }
uint32_t mux_open_own_stdin(struct mux *m, const struct proto_exec *ex) { return open_own(m, ex, 0); }

static uint32_t open_own(struct mux *m, const struct proto_exec *ex, int close_stdin)
{
    if (m->nroutes >= MUX_MAX_ROUTES)
        return 0;
    if (m->nroutes == m->routes_cap) {
        int cap = m->routes_cap ? m->routes_cap * 2 : 64;
        struct route *grown = realloc(m->routes, (size_t)cap * sizeof(*grown));
        if (!grown)
            return 0;
        m->routes = grown;
        m->routes_cap = cap;
    }
    uint32_t id = alloc_agent_id(m);
    size_t len = proto_encode_exec(&m->w, id, ex);
    if (len == 0)
        return 0;
    struct route *r = &m->routes[m->nroutes++];
    memset(r, 0, sizeof(*r));
    r->agent_id = id;
    r->own = 1;
    r->kind = PROTO_EXEC;
    r->window = ex->window;
    r->credit = ex->window;
    util_join_words(r->cmd, sizeof(r->cmd), ex->argv, ex->argc);
    vmm_cork_agent(m->v);
    agent_send_w(m, len);
    if (close_stdin)
        agent_send_w(m, proto_encode_data(&m->w, id, PROTO_STDIN_EOF, NULL, 0));
    vmm_uncork_agent(m->v);
    return id;
}

void mux_signal_own(struct mux *m, uint32_t agent_id, int sig)
{
    for (int i = 0; i < m->nroutes; i++)
        if (m->routes[i].own && m->routes[i].agent_id == agent_id) {
            agent_send_w(m, proto_encode_signal(&m->w, agent_id, (uint32_t)sig));
            return;
        }
}

void mux_on_agent_frame(struct mux *m, const struct proto_header *h, const uint8_t *p)
{
    if (h->stream == 0) {
        agent_session_frame(m, h, p);
        return;
    }
    int rc = agent_stream_check(h, p);
    if (rc != PROTO_OK) {
        agent_malformed(m, h, rc);
        return;
    }
    int i = route_by_agent(m, h->stream);
    if (i < 0) {
        /* An EXIT after an exec ERROR lands here; anything else is a confused guest. */
        if (h->type != PROTO_EXIT)
            vmm_log_guest("dropping %s from the agent on stream %u: no such exec", proto_type_name(h->type), h->stream);
        return;
    }
    struct route *r = &m->routes[i];
    if (r->own) {
        own_frame(m, i, h, p);
        return;
    }
    struct client *c = r->c;
    uint32_t client_id = r->client_id;
    /* EXIT ends the stream; so does an ERROR before STARTED (the exec never ran). */
    int last = h->type == PROTO_EXIT || h->type == PROTO_STATS_REPLY || (h->type == PROTO_ERROR && !r->started);
    if (h->type == PROTO_STARTED) {
        struct proto_started st;
        r->started = 1;
        if (proto_decode_started(p, h->len, &st) == PROTO_OK)
            r->pid = st.pid;
    }
    if (!c && (h->type == PROTO_STDOUT || h->type == PROTO_STDERR) && h->len > 0)
        agent_send_w(m, proto_encode_credit(&m->w, h->stream, h->len));
    if (c && (h->type == PROTO_STDOUT || h->type == PROTO_STDERR)) {
        if (h->len > r->credit) {
            agent_ignored_credit(m, i, h);
            return;
        }
        r->credit -= h->len;
    }
    if (last)
        route_remove(m, i);
    if (c)
        client_send(m, c, proto_encode_data(&m->w, client_id, h->type, p, h->len));
}

void mux_kill_all(struct mux *m)
{
    for (int i = 0; i < m->nroutes; i++)
        agent_send_w(m, proto_encode_signal(&m->w, m->routes[i].agent_id, SIGKILL));
}

void mux_free(struct mux *m)
{
    if (!m)
        return;
    while (m->nclients > 0)
        client_free(m, m->clients[m->nclients - 1]);
    mux_reap(m);
    if (m->spare_fd >= 0)
        close(m->spare_fd);
    if (m->retry_fd >= 0)
        close(m->retry_fd);
    free(m->routes);
    free(m);
}
