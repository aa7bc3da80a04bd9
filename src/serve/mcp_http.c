/* /mcp on `cocoon serve`: the MCP server over Streamable HTTP. A POST carries one
 * JSON-RPC message and gets its answer as application/json (a notification or a
 * client's response: 202), or as text/event-stream when it asks for progress and the
 * client accepts streams; initialize opens a session whose id comes back in
 * Mcp-Session-Id and must come with every later message; DELETE ends a session, and a
 * session idle for COCOON_MCP_SESSION_IDLE seconds (default 1800) ends by itself; ending
 * removes the boxes it created. GET (a server-initiated stream) is 405: the server sends
 * nothing unasked. The token is checked as on every route; an Origin that is not a
 * loopback one is refused (DNS rebinding). */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "mcp/jsonrpc.h"
#include "mcp/mcp.h"
#include "serve/http.h"
#include "serve/serve.h"
#include "util/fd.h"
#include "util/util.h"

#define SESSION_ID_LEN 32
#define IDLE_DEFAULT_S 1800

struct http_session {
    char id[SESSION_ID_LEN + 1];
    struct mcp_session *s;
    unsigned refs;    /* requests using it now */
    int gone;         /* DELETEd or expired: no new requests */
    uint64_t last_ns; /* last request's end */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t released = PTHREAD_COND_INITIALIZER;
static struct http_session sessions[MCP_HTTP_SESSIONS_MAX];
static pthread_once_t reaper_once = PTHREAD_ONCE_INIT;
static int closed; /* the server is stopping: no new sessions */

static void log_line(const char *line) { fprintf(stderr, "cocoon serve: mcp: %s\n", line); }

/* Waits until no request uses slot i (it is marked gone), then ends its session. */
static void end_slot(int i)
{
    pthread_mutex_lock(&lock);
    struct mcp_session *s = sessions[i].s;
    if (!s) {
        pthread_mutex_unlock(&lock);
        return;
    }
    sessions[i].gone = 1;
    pthread_mutex_unlock(&lock);
    mcp_session_interrupt(s);
    pthread_mutex_lock(&lock);
    while (sessions[i].refs)
        pthread_cond_wait(&released, &lock);
    sessions[i].s = NULL;
    pthread_mutex_unlock(&lock);
    mcp_session_end(s, log_line);
    pthread_mutex_lock(&lock);
    memset(&sessions[i], 0, sizeof(sessions[i])); /* the slot is free only now */
    pthread_mutex_unlock(&lock);
}

static unsigned idle_seconds(void)
{
    const char *v = getenv("COCOON_MCP_SESSION_IDLE");
    long n = v ? strtol(v, NULL, 10) : 0;
    return n > 0 && n < 7 * 86400 ? (unsigned)n : IDLE_DEFAULT_S;
}

static void *reaper(void *arg)
{
    (void)arg;
    for (;;) {
        sleep(1);
        uint64_t now = util_now_ns(CLOCK_MONOTONIC), idle = (uint64_t)idle_seconds() * 1000000000u;
        for (int i = 0; i < MCP_HTTP_SESSIONS_MAX; i++) {
            pthread_mutex_lock(&lock);
            int expired = sessions[i].s && !sessions[i].gone && sessions[i].refs == 0 &&
                          now - sessions[i].last_ns > idle && mcp_session_busy(sessions[i].s) == 0;
            if (expired) {
                sessions[i].gone = 1;
                fprintf(stderr, "cocoon serve: mcp: session %.8s... expired after %u s idle\n", sessions[i].id,
                        idle_seconds());
            }
            pthread_mutex_unlock(&lock);
            if (expired)
                end_slot(i);
        }
    }
    return NULL;
}

static void start_reaper(void)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, reaper, NULL) != 0)
        log_line("cannot start the session reaper: idle sessions will not expire");
    pthread_attr_destroy(&attr);
}

/* A new session in a free slot (its id filled), with one reference; -1 when full. */
static int open_session(void)
{
    pthread_once(&reaper_once, start_reaper);
    unsigned char raw[SESSION_ID_LEN / 2];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    struct mcp_session *s = mcp_session_new(serve_cfg.home, "http");
    if (!s)
        return -1;
    pthread_mutex_lock(&lock);
    int slot = -1;
    for (int i = 0; !closed && i < MCP_HTTP_SESSIONS_MAX && slot < 0; i++)
        if (!sessions[i].s && !sessions[i].gone)
            slot = i;
    if (slot >= 0) {
        sessions[slot].s = s;
        sessions[slot].refs = 1;
        for (size_t k = 0; k < sizeof(raw); k++)
            snprintf(sessions[slot].id + 2 * k, 3, "%02x", raw[k]);
    }
    pthread_mutex_unlock(&lock);
    if (slot < 0)
        mcp_session_end(s, NULL);
    return slot;
}

/* The slot of a live session with that id, referenced; -1 when unknown or ended. */
static int find_session(const char *id)
{
    if (!id || strlen(id) != SESSION_ID_LEN)
        return -1;
    pthread_mutex_lock(&lock);
    int slot = -1;
    for (int i = 0; i < MCP_HTTP_SESSIONS_MAX; i++)
        if (sessions[i].s && !sessions[i].gone && strcmp(sessions[i].id, id) == 0) {
            slot = i;
            sessions[i].refs++;
        }
    pthread_mutex_unlock(&lock);
    return slot;
}

static void release(int slot)
{
    pthread_mutex_lock(&lock);
    sessions[slot].refs--;
    sessions[slot].last_ns = util_now_ns(CLOCK_MONOTONIC);
    pthread_cond_broadcast(&released);
    pthread_mutex_unlock(&lock);
}

void mcp_http_shutdown(void)
{
    pthread_mutex_lock(&lock);
    closed = 1;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < MCP_HTTP_SESSIONS_MAX; i++)
        end_slot(i);
}

/* ---- one request ---- */

struct answer {
    char *text; /* the response to the request (the last message that is not a notification) */
    size_t len;
};

static void collect(void *ctx, const char *text, size_t len)
{
    struct answer *a = ctx;
    /* JSON mode: one response; notifications made meanwhile (progress) are dropped. */
    if (jrpc_is_notification(text, len))
        return;
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    free(a->text);
    a->text = copy;
    a->len = len;
}

/* A JSON-RPC error for a message that did not reach a session (HTTP status as the spec says). */
static int rpc_refusal(struct req *r, unsigned status, int code, const char *message)
{
    json_t *body =
        json_pack("{s:s, s:n, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", "error", "code", code, "message", message);
    serve_json(r, status, body);
    return -1; /* answered: the caller stops */
}

static int origin_ok(const char *origin)
{
    if (!origin)
        return 1;
    static const char *const ok[] = {"http://localhost", "https://localhost", "http://127.", "https://127.",
                                     "http://[::1]",     "https://[::1]",     NULL};
    for (size_t i = 0; ok[i]; i++) {
        size_t n = strlen(ok[i]);
        if (strncmp(origin, ok[i], n) == 0) {
            const char *rest = origin + n;
            if (ok[i][n - 1] == '.') /* 127.x.y.z */
                rest += strspn(rest, "0123456789.");
            if (*rest == '\0' || *rest == ':')
                return 1;
        }
    }
    return 0;
}

static int answer_json(struct req *r, int slot, struct answer *a)
{
    struct MHD_Response *resp;
    unsigned status = 200;
    if (a->text) {
        resp = MHD_create_response_from_buffer(a->len, a->text, MHD_RESPMEM_MUST_FREE);
        a->text = NULL;
        if (resp)
            MHD_add_response_header(resp, "Content-Type", "application/json");
    } else {
        status = 202;
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (resp && slot >= 0)
        MHD_add_response_header(resp, "Mcp-Session-Id", sessions[slot].id);
    return serve_queue_response(r, status, resp);
}

/* ---- text/event-stream answers ----
 * A request that asks for progress (params._meta.progressToken) from a client that
 * accepts text/event-stream is answered as a stream: its notifications as they come,
 * then its response. A worker thread handles the message and writes the events into a
 * pipe the response reads; a client that goes away closes the pipe (the call goes on:
 * a disconnection is no cancellation). */

struct stream_job {
    int slot;
    char *body;
    size_t len;
    int fd[2];
    int refs; /* the worker and the response: the last one frees */
};

static pthread_mutex_t stream_lock = PTHREAD_MUTEX_INITIALIZER;

static void stream_unref(struct stream_job *j)
{
    pthread_mutex_lock(&stream_lock);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&stream_lock);
    if (last) {
        free(j->body);
        free(j);
    }
}

static void emit_event(void *ctx, const char *text, size_t len)
{
    struct stream_job *j = ctx;
    if (util_write_all(j->fd[1], "event: message\ndata: ", 21) == 0 && util_write_all(j->fd[1], text, len) == 0)
        util_write_all(j->fd[1], "\n\n", 2);
}

static void *stream_worker(void *p)
{
    struct stream_job *j = p;
    mcp_session_handle(sessions[j->slot].s, j->body, j->len, emit_event, j);
    close(j->fd[1]);
    release(j->slot);
    stream_unref(j);
    return NULL;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream_job *j = cls;
    for (;;) {
        ssize_t n = read(j->fd[0], buf, max);
        if (n > 0)
            return n;
        if (n == 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (errno != EINTR)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void stream_done(void *cls)
{
    struct stream_job *j = cls;
    close(j->fd[0]);
    stream_unref(j);
}

static int wants_stream(struct req *r, const char *body)
{
    const char *accept = serve_header(r, "Accept");
    if (!accept || !strstr(accept, "text/event-stream"))
        return 0;
    json_t *msg = json_loadb(body, r->body_len, 0, NULL);
    json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
    int yes = json_object_get(msg, "id") && json_object_get(meta, "progressToken");
    json_decref(msg);
    return yes;
}

/* Takes over the slot's reference (released by the worker). */
static int answer_stream(struct req *r, int slot, const char *body, size_t len)
{
    struct stream_job *j = calloc(1, sizeof(*j));
    char *copy = j ? malloc(len + 1) : NULL;
    if (!copy || pipe2(j->fd, O_CLOEXEC) < 0) {
        free(copy);
        free(j);
        release(slot);
        return serve_error(r, 503, "resource_exhausted", "cannot make a stream for the answer");
    }
    memcpy(copy, body, len);
    copy[len] = '\0';
    *j = (struct stream_job){.slot = slot, .body = copy, .len = len, .fd = {j->fd[0], j->fd[1]}, .refs = 2};
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, j, stream_done);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int started = resp && pthread_create(&t, &attr, stream_worker, j) == 0;
    pthread_attr_destroy(&attr);
    if (!started) {
        close(j->fd[1]);
        release(slot);
        if (resp)
            MHD_destroy_response(resp); /* runs stream_done */
        else
            stream_done(j);
        stream_unref(j);
        return serve_error(r, 503, "resource_exhausted", "cannot start the answer's worker");
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Mcp-Session-Id", sessions[slot].id);
    return serve_queue_response(r, 200, resp);
}

int handle_mcp(struct req *r)
{
    if (!origin_ok(serve_header(r, "Origin")))
        return serve_error(
            r, 403, "permission_denied",
            "MCP requests from a web page of another origin are refused (Origin must be a loopback one)");
    const char *sid = serve_header(r, "Mcp-Session-Id");
    if (r->method == M_DELETE) {
        int slot = find_session(sid);
        if (slot < 0)
            return serve_error(r, 404, "not_found", "no MCP session with that Mcp-Session-Id (it ended or expired)");
        pthread_mutex_lock(&lock);
        sessions[slot].gone = 1;
        sessions[slot].refs--;
        pthread_mutex_unlock(&lock);
        end_slot(slot);
        return serve_empty(r, 204);
    }
    const char *type = serve_header(r, "Content-Type");
    if (!type || strncasecmp(type, "application/json", 16) != 0)
        return rpc_refusal(r, 415, -32600, "POST /mcp takes Content-Type: application/json");
    const char *accept = serve_header(r, "Accept");
    if (accept && !strstr(accept, "application/json") && !strstr(accept, "*/*"))
        return rpc_refusal(r, 406, -32600,
                           "this server answers POST /mcp with application/json: the Accept header must allow it");
    const char *version = serve_header(r, "MCP-Protocol-Version");
    if (version) {
        int known = 0;
        for (size_t i = 0; mcp_protocol_versions[i]; i++)
            known |= strcmp(version, mcp_protocol_versions[i]) == 0;
        if (!known)
            return rpc_refusal(r, 400, -32600, "unsupported MCP-Protocol-Version");
    }
    const char *body = r->body ? r->body : "";
    int slot;
    if (mcp_message_is_initialize(body, r->body_len)) {
        if (sid)
            return rpc_refusal(r, 400, -32600, "initialize opens a new session: send it without Mcp-Session-Id");
        slot = open_session();
        if (slot < 0)
            return rpc_refusal(r, 503, -32000,
                               "the server has its maximum of MCP sessions open (64): end one "
                               "with DELETE /mcp or wait for one to expire");
    } else {
        if (!sid)
            return rpc_refusal(r, 400, -32600,
                               "Mcp-Session-Id is required (initialize first: its answer carries the id)");
        slot = find_session(sid);
        if (slot < 0)
            return rpc_refusal(r, 404, -32600,
                               "no MCP session with that Mcp-Session-Id (it ended or expired): initialize again");
    }
    if (wants_stream(r, body))
        return answer_stream(r, slot, body, r->body_len);
    struct answer a = {0};
    mcp_session_handle(sessions[slot].s, body, r->body_len, collect, &a);
    int rc = answer_json(r, slot, &a);
    free(a.text);
    release(slot);
    return rc;
}
