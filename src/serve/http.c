/* libmicrohttpd glue of `cocoon serve`: one request's life (routing, the bearer token,
 * the body taken whole or streamed, dispatch to its handler, the access log line) and
 * the answers handlers give (JSON, error envelopes, streams). */
#include <errno.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/e2b.h"
#include "serve/http.h"
#include "serve/listen.h"
#include "serve/serve.h"
#include "util/util.h"

struct serve_settings serve_cfg;
struct serve_stats serve_counters;
pthread_mutex_t serve_counters_lock = PTHREAD_MUTEX_INITIALIZER;

static FILE *access_log;

void serve_set_access_log(FILE *f) { access_log = f; }

void serve_count(uint64_t *counter)
{
    pthread_mutex_lock(&serve_counters_lock);
    (*counter)++;
    pthread_mutex_unlock(&serve_counters_lock);
}

void serve_iso_time(long long unix_time, char *out, size_t cap)
{
    time_t t = (time_t)unix_time;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "1970-01-01T00:00:00Z");
}

/* ---- answers ---- */

int serve_queue_response(struct req *r, unsigned status, struct MHD_Response *resp)
{
    if (!resp)
        return -1;
    if (r->answered) {
        MHD_destroy_response(resp);
        return -1;
    }
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        char allow[64];
        route_allow_text(r->route.allowed, allow, sizeof(allow));
        MHD_add_response_header(resp, "Allow", allow);
    }
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"cocoon\"");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        MHD_add_response_header(resp, "Retry-After", "1");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    if (status == 426)
        MHD_add_response_header(resp, "Sec-WebSocket-Version", "13");
    if (r->location[0] && status < 300)
        MHD_add_response_header(resp, "Location", r->location);
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    if (ok != MHD_YES)
        return -1;
    r->answered = 1;
    r->status = status;
    return 0;
}

int serve_text(struct req *r, unsigned status, const char *content_type, const char *data, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (resp && content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    return serve_queue_response(r, status, resp);
}

int serve_json(struct req *r, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        static const char oom[] =
            "{\"error\":{\"message\":\"out of memory\",\"type\":\"InternalError\",\"code\":\"internal\"}}";
        return serve_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json", oom, sizeof(oom) - 1);
    }
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return -1;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return serve_queue_response(r, status, resp);
}

/* The error type of a code (BoxLite's names), else one that fits the status. */
const char *serve_error_type(const char *code, unsigned status)
{
    static const struct {
        const char *code, *type;
    } by_code[] = {{"not_found", "NotFoundError"},
                   {"invalid_state", "InvalidStateError"},
                   {"already_exists", "AlreadyExistsError"},
                   {"invalid_argument", "InvalidArgumentError"},
                   {"unsupported", "UnsupportedError"},
                   {"unauthenticated", "AuthError"},
                   {"permission_denied", "PermissionDeniedError"},
                   {"resource_exhausted", "ResourceExhaustedError"},
                   {"execution_failed", "ExecutionError"},
                   {"image_pull_failed", "ImageError"},
                   {"storage_error", "StorageError"},
                   {"timeout", "TimeoutError"},
                   {"internal", "InternalError"}};
    for (size_t i = 0; i < sizeof(by_code) / sizeof(by_code[0]); i++)
        if (strcmp(code, by_code[i].code) == 0)
            return by_code[i].type;
    switch (status) {
    case 400: return "InvalidArgumentError";
    case 401: return "UnauthorizedError";
    case 403: return "ForbiddenError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowedError";
    case 409: return "ConflictError";
    case 413: return "PayloadTooLargeError";
    case 422: return "UnprocessableEntityError";
    case 429: return "TooManyRequestsError";
    case 501: return "NotImplementedError";
    case 503: return "ServiceUnavailableError";
    case 504: return "TimeoutError";
    default: return status >= 500 ? "InternalError" : "BadRequestError";
    }
}

int serve_error(struct req *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[COCOON_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *body =
        json_pack("{s:{s:s,s:s,s:s}}", "error", "message", msg, "type", serve_error_type(code, status), "code", code);
    if (!body) {
        /* A message quoting the request (a path, a field name cut inside a character) may
         * not be UTF-8, which a JSON string must be: its bytes are escaped then. */
        char shown[COCOON_ERROR_MAX];
        util_escape_text(shown, sizeof(shown), msg, strlen(msg));
        body = json_pack("{s:{s:s,s:s,s:s}}", "error", "message", shown, "type", serve_error_type(code, status), "code",
                         code);
    }
    serve_json(r, status, body);
    return -1; /* the request failed: callers stop at a negative return */
}

int serve_cocoon_error(struct req *r, const cocoon_error *err)
{
    unsigned status = 500;
    const char *code = "internal";
    switch (err->code) {
    case COCOON_E_INVALID:
        status = 400;
        code = "invalid_argument";
        break;
    case COCOON_E_NOT_FOUND:
        status = 404;
        code = "not_found";
        break;
    case COCOON_E_STATE:
        status = 409;
        code = "invalid_state";
        break;
    case COCOON_E_UNSUPPORTED:
        status = 501;
        code = "unsupported";
        break;
    case COCOON_E_EXEC:
        status = 422;
        code = "execution_failed";
        break;
    case COCOON_E_BOOT:
        status = 500;
        code = "boot_failed";
        break;
    case COCOON_E_NOMEM:
        status = 503;
        code = "resource_exhausted";
        break;
    default: break;
    }
    return serve_error(r, status, code, "%s", err->message[0] ? err->message : "failed");
}

int serve_empty(struct req *r, unsigned status)
{
    return serve_queue_response(r, status, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}

struct stream {
    serve_produce_fn fn;
    void *ctx;
    void (*done)(void *ctx);
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    long n = s->fn(s->ctx, buf, max);
    if (n > 0)
        return n;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    if (s->done)
        s->done(s->ctx);
    free(s);
}

int serve_stream(struct req *r, unsigned status, const char *content_type, serve_produce_fn fn, void *ctx,
                 void (*done)(void *ctx))
{
    struct stream *s = calloc(1, sizeof(*s));
    if (!s) {
        if (done)
            done(ctx);
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    }
    s->fn = fn;
    s->ctx = ctx;
    s->done = done;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, s, stream_free);
    if (!resp) {
        stream_free(s);
        return -1;
    }
    if (content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    return serve_queue_response(r, status, resp);
}

static long fd_produce(void *ctx, char *buf, size_t cap)
{
    int fd = (int)(intptr_t)ctx;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -1;
    }
}

static void fd_done(void *ctx) { close((int)(intptr_t)ctx); }

int serve_stream_fd(struct req *r, unsigned status, const char *content_type, int fd)
{
    return serve_stream(r, status, content_type, fd_produce, (void *)(intptr_t)fd, fd_done);
}

const char *serve_query(struct req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *serve_header(struct req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, key);
}

int serve_query_bool(struct req *r, const char *key)
{
    const char *v = serve_query(r, key);
    if (!v || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        return 0;
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || v[0] == '\0')
        return 1;
    return -1;
}

int serve_client_fd(struct req *r)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* ---- one request ---- */

typedef int (*handler_fn)(struct req *r);
static const struct {
    enum route_id id;
    handler_fn fn;
    int (*begin)(struct req *r); /* streams the body instead of buffering it */
    int open;                    /* answered without the token */
} handlers[] = {
    {R_CONFIG, handle_config, NULL, 1},
    {R_ME, handle_me, NULL, 0},
    {R_OPENAPI, handle_openapi, NULL, 1},
    {R_HEALTH, handle_health, NULL, 1},
    {R_METRICS, handle_metrics, NULL, 0},
    {R_BOXES, handle_boxes, NULL, 0},
    {R_BOX, handle_box, NULL, 0},
    {R_BOX_START, handle_box_start, NULL, 0},
    {R_BOX_STOP, handle_box_stop, NULL, 0},
    {R_BOX_EXEC, handle_exec, NULL, 0},
    {R_BOX_RUN, handle_run, NULL, 0},
    {R_BOX_EXECS, handle_execs, NULL, 0},
    {R_EXEC, handle_exec_info, NULL, 0},
    {R_EXEC_SIGNAL, handle_exec_signal, NULL, 0},
    {R_EXEC_RESIZE, handle_exec_resize, NULL, 0},
    {R_EXEC_STDIN, handle_exec_stdin, NULL, 0},
    {R_EXEC_ATTACH, handle_exec_attach, NULL, 0},
    {R_EXEC_OUTPUT, handle_exec_output, NULL, 0},
    {R_FILES, handle_files, begin_files_upload, 0},
    {R_BOX_METRICS, handle_box_metrics, NULL, 0},
    {R_BOX_LOGS, handle_box_logs, NULL, 0},
    {R_NET_LOGS, handle_net_logs, NULL, 0},
    {R_NET_STATS, handle_net_stats, NULL, 0},
    {R_IMAGES, handle_images, NULL, 0},
    {R_IMAGE_PULL, handle_image_pull, NULL, 0},
    {R_IMAGE_LOAD, handle_image_load, begin_image_load, 0},
    {R_IMAGE, handle_image, NULL, 0},
    {R_FS_STAT, handle_fs, NULL, 0},
    {R_FS_LIST, handle_fs, NULL, 0},
    {R_FS_MKDIR, handle_fs, NULL, 0},
    {R_FS_REMOVE, handle_fs, NULL, 0},
    {R_FS_MOVE, handle_fs, NULL, 0},
    {R_SNAPSHOTS, handle_snapshots, NULL, 0},
    {R_SNAPSHOT, handle_snapshots, NULL, 0},
    {R_SNAPSHOT_RESTORE, handle_snapshots, NULL, 0},
    {R_DETACH_NEW, handle_detached_new, NULL, 0},
    {R_DETACH, handle_detached, NULL, 0},
    {R_DETACH_LOGS, handle_detached_logs, NULL, 0},
    {R_MCP, handle_mcp, NULL, 0},
    {R_BOX_WAIT, handle_box_wait, NULL, 0},
    {R_CODE, handle_code, NULL, 0},
    {R_CODE_CONTEXTS, handle_code, NULL, 0},
    {R_CODE_CONTEXT, handle_code, NULL, 0},
    {R_CODE_CONTEXT_RESTART, handle_code, NULL, 0},
    {R_BOX_ATTACH, handle_box_attach, NULL, 0},
    {R_BOX_CLONE, handle_box_clone, NULL, 0},
    {R_BOX_FORK, handle_box_fork, NULL, 0},
    {R_BOX_EXPORT, handle_box_export, NULL, 0},
    {R_BOX_IMPORT, handle_box_import, begin_box_import, 0},
    {R_BOX_COMPACT, handle_snapshots, NULL, 0},
};

static int handler_index(enum route_id id)
{
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
        if (handlers[i].id == id)
            return (int)i;
    return -1;
}

/* "Authorization: Bearer TOKEN" (or "X-API-Key: TOKEN"), compared in constant time. */
static int token_ok(struct req *r)
{
    if (!r->need_token)
        return 1;
    const char *given = NULL;
    const char *auth = serve_header(r, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
        given = auth + 7;
    if (!given)
        given = serve_header(r, "X-API-Key");
    if (!given)
        return 0;
    size_t want = strlen(serve_cfg.token);
    if (strlen(given) != want)
        return 0;
    return CRYPTO_memcmp(given, serve_cfg.token, want) == 0;
}

/* A listener without a token (the unix socket, or TCP on loopback with --no-token) must
 * not be usable from a web page the user visits: a browser sends Origin on cross-site
 * POSTs and WebSocket upgrades, and a DNS-rebinding page reaches 127.0.0.1 under its own
 * host name. With a token neither works (a page cannot add Authorization to these). */
static const char *web_page_refusal(struct req *r)
{
    if (r->need_token)
        return NULL;
    if (serve_header(r, "Origin"))
        return "requests from web pages (with an Origin header) are refused on a listener without a token";
    const char *host = serve_header(r, "Host");
    if (!host || !r->tcp)
        return NULL;
    static const char *const local[] = {"localhost", "127.", "[::1]", NULL};
    for (size_t i = 0; local[i]; i++)
        if (strncmp(host, local[i], strlen(local[i])) == 0)
            return NULL;
    return "a listener without a token answers only Host: localhost or a loopback address";
}

static void req_free(struct req *r)
{
    if (!r)
        return;
    if (r->handler_free)
        r->handler_free(r->handler_state);
    free(r->body);
    free(r);
}

/* A connection that came when --max-connections were open (listen.c marks it). */
static int over_connection_limit(struct req *r)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci && ci->socket_context;
}

/* First call of a request: route, authenticate, and decide how its body is taken. */
static int req_begin(struct req *r)
{
    if (over_connection_limit(r))
        return serve_error(r, 503, "resource_exhausted",
                           "%u connections are open, the server's limit (--max-connections): try again later",
                           serve_cfg.max_connections);
    if (e2b_claims(r)) {
        r->e2b = 1;
        const char *refused = web_page_refusal(r);
        if (refused)
            return serve_error(r, 403, "permission_denied", "%s", refused);
        return e2b_begin(r, token_ok(r));
    }
    if (route_match(r->method, r->url, &r->route) < 0) {
        if (r->route.id == R_NONE)
            return serve_error(r, 404, "not_found", "no such endpoint: %s %s", r->method_text, r->url);
        return serve_error(r, 405, "method_not_allowed", "%s is not allowed on %s", r->method_text, r->url);
    }
    int h = handler_index(r->route.id);
    if (h < 0)
        return serve_error(r, 404, "not_found", "no such endpoint: %s", r->url);
    const char *refused = web_page_refusal(r);
    if (refused)
        return serve_error(r, 403, "permission_denied", "%s", refused);
    if (!handlers[h].open && !token_ok(r))
        return serve_error(r, 401, "unauthenticated",
                           "a valid bearer token is required (Authorization: Bearer TOKEN; the server's token is in "
                           "its --token-file or $COCOON_HOME/serve.token)");
    if (handlers[h].begin && (r->method == M_PUT || r->method == M_POST))
        return handlers[h].begin(r);
    /* A JSON body announced as too big is refused before it is read. */
    const char *length = serve_header(r, "Content-Length");
    if (length && strtoull(length, NULL, 10) > SERVE_JSON_MAX)
        return serve_error(r, 413, "invalid_argument", "the request body is larger than %u bytes", SERVE_JSON_MAX);
    return 0;
}

static void take_body(struct req *r, const char *data, size_t len)
{
    if (r->answered || r->body_failed)
        return;
    if (r->body_fn) {
        if (r->body_fn(r->body_ctx, data, len) < 0)
            r->body_failed = 1;
        return;
    }
    if (r->body_too_big || len > SERVE_JSON_MAX - r->body_len) {
        r->body_too_big = 1;
        return;
    }
    char *grown = realloc(r->body, r->body_len + len + 1);
    if (!grown) {
        r->body_too_big = 1;
        return;
    }
    r->body = grown;
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->conn = conn;
        const struct listener *l = cls;
        r->need_token = l ? l->need_token : 1;
        r->tcp = l ? !l->is_unix : 1;
        r->url = url;
        r->method_text = method;
        r->method = route_method(method);
        r->t0_ns = util_now_ns(CLOCK_MONOTONIC);
        serve_count(&serve_counters.requests);
        req_begin(r);
        /* The idle timeout guards a connection until a request is in (a client sending
         * half a request line holds nothing for long); a request the server accepted
         * may then take as long as its work (a boot, a long run, a stream). */
        if (!r->answered)
            MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
        return MHD_YES;
    }
    if (*upload_data_size) {
        take_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->answered)
        return MHD_YES;
    if (r->e2b)
        e2b_handle(r);
    else if (r->body_too_big)
        serve_error(r, 413, "invalid_argument", "the request body is larger than %u bytes", SERVE_JSON_MAX);
    else
        handlers[handler_index(r->route.id)].fn(r);
    if (!r->answered)
        serve_error(r, 500, "internal", "the server did not answer %s %s", r->method_text, r->url);
    return r->answered ? MHD_YES : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;
    if (!r)
        return;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) /* kept alive: idle again */
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)SERVE_IDLE_TIMEOUT_S);
    if (r->status >= 500)
        serve_count(&serve_counters.errors_5xx);
    else if (r->status >= 400)
        serve_count(&serve_counters.errors_4xx);
    if (access_log) {
        char when[32];
        serve_iso_time(time(NULL), when, sizeof(when));
        double ms = (double)(util_now_ns(CLOCK_MONOTONIC) - r->t0_ns) / 1e6;
        /* The path only: query strings may carry file names a log should not keep. Both
         * are the client's: escaped, so a %0a in a path cannot forge a line. */
        char method[32], path[1024];
        util_escape_text(method, sizeof(method), r->method_text, strlen(r->method_text));
        util_escape_text(path, sizeof(path), r->url, strlen(r->url));
        const char *end = "";
        if (toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT || toe == MHD_REQUEST_TERMINATED_READ_ERROR)
            end = " (client went away)";
        else if (toe == MHD_REQUEST_TERMINATED_WITH_ERROR)
            end = " (failed)";
        else if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
            end = " (timed out)";
        fprintf(access_log, "%s %s %s %u %.1fms%s\n", when, method, path, r->status, ms, end);
        fflush(access_log);
    }
    req_free(r);
    *con_cls = NULL;
}

MHD_AccessHandlerCallback serve_access_handler(void) { return on_request; }
MHD_RequestCompletedCallback serve_completed_handler(void) { return on_completed; }
