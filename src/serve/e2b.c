/* The E2B front's request glue: which requests are E2B's (a sandbox header or a control
 * plane path), their authentication (the server's token as X-API-KEY for the control
 * plane, the sandbox's envdAccessToken as X-Access-Token for envd), their dispatch by
 * port and path, and errors in the shape each E2B client reads. */
#include <microhttpd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve/e2b.h"
#include "serve/http.h"
#include "serve/serve.h"
#include "util/util.h"

struct e2b_req {
    enum e2b_style style;
    char sandbox[16];
    unsigned port;
    char user[64];
    int has_user;
    void *upload; /* an upload's state (e2b_fs.c) */
    void (*upload_free)(void *upload);
};

static void ctx_free(void *p)
{
    struct e2b_req *c = p;
    if (c && c->upload_free)
        c->upload_free(c->upload);
    free(c);
}

static struct e2b_req *ctx_of(struct req *r) { return r->handler_state; }

void e2b_set_upload(struct req *r, void *upload, void (*upload_free)(void *upload))
{
    ctx_of(r)->upload = upload;
    ctx_of(r)->upload_free = upload_free;
}

void *e2b_upload(struct req *r) { return ctx_of(r)->upload; }

void e2b_set_style(struct req *r, enum e2b_style style)
{
    if (ctx_of(r))
        ctx_of(r)->style = style;
}

static int starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

int e2b_claims(struct req *r)
{
    if (serve_header(r, "E2b-Sandbox-Id"))
        return 1;
    return starts(r->url, "/sandboxes") || starts(r->url, "/v2/sandboxes");
}

static int answer_text(struct req *r, unsigned status, const char *type, char *text, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return -1;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    return serve_queue_response(r, status, resp);
}

int e2b_error(struct req *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[COCOON_ERROR_MAX], shown[COCOON_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    util_escape_text(shown, sizeof(shown), msg, strlen(msg)); /* a JSON string must be UTF-8 */
    enum e2b_style style = ctx_of(r) ? ctx_of(r)->style : E2B_STYLE_API;
    if (style == E2B_STYLE_TEXT) {
        char *t = strdup(shown);
        if (t)
            answer_text(r, status, "text/plain; charset=utf-8", t, strlen(t));
        return -1;
    }
    json_t *body;
    if (style == E2B_STYLE_API)
        body = json_pack("{s:i,s:s}", "code", (int)status, "message", shown);
    else
        body = json_pack("{s:s,s:s}", "code", code, "message", shown);
    if (style == E2B_STYLE_STREAM) {
        /* A streaming call's error is its end-of-stream message, under HTTP 200. */
        body = json_pack("{s:o}", "error", body);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        size_t n = 0;
        char *frame = text ? connect_frame_encode(CONNECT_FLAG_END, text, strlen(text), &n) : NULL;
        free(text);
        if (frame)
            answer_text(r, 200, "application/connect+json", frame, n);
        return -1;
    }
    serve_json(r, style == E2B_STYLE_UNARY ? connect_http_status(code) : status, body);
    return -1;
}

int e2b_cocoon_error(struct req *r, const cocoon_error *err)
{
    const char *msg = err->message[0] ? err->message : "failed";
    switch (err->code) {
    case COCOON_E_INVALID: return e2b_error(r, 400, "invalid_argument", "%s", msg);
    case COCOON_E_NOT_FOUND: return e2b_error(r, 404, "not_found", "%s", msg);
    case COCOON_E_STATE: return e2b_error(r, 409, "failed_precondition", "%s", msg);
    case COCOON_E_UNSUPPORTED: return e2b_error(r, 501, "unimplemented", "%s", msg);
    case COCOON_E_NOMEM: return e2b_error(r, 503, "resource_exhausted", "%s", msg);
    default: return e2b_error(r, 500, "internal", "%s", msg);
    }
}

const char *e2b_sandbox_id(struct req *r) { return ctx_of(r)->sandbox; }

const char *e2b_username(struct req *r)
{
    struct e2b_req *c = ctx_of(r);
    return c->has_user ? c->user : NULL;
}

int e2b_abs_path(struct req *r, const char *path, char *out, size_t cap)
{
    const char *user = e2b_username(r);
    char home[96];
    if (!user || strcmp(user, "root") == 0)
        snprintf(home, sizeof(home), "/root");
    else
        snprintf(home, sizeof(home), "/home/%s", user);
    int n;
    if (!path || !path[0])
        n = snprintf(out, cap, "%s", home);
    else if (path[0] == '/')
        n = snprintf(out, cap, "%s", path);
    else if (path[0] == '~' && (path[1] == '/' || !path[1]))
        n = snprintf(out, cap, "%s%s", home, path + 1);
    else
        n = snprintf(out, cap, "%s/%s", home, path);
    if (n < 0 || (size_t)n >= cap)
        return e2b_error(r, 400, "invalid_argument", "the path is longer than %zu bytes", cap - 1);
    return 0;
}

int e2b_open_box(struct req *r, cocoon_runtime **rt, cocoon_box **box)
{
    cocoon_error err;
    if (serve_runtime_open(rt, &err) < 0)
        return e2b_cocoon_error(r, &err);
    if (cocoon_box_open(*rt, e2b_sandbox_id(r), box, &err) < 0) {
        cocoon_runtime_close(*rt);
        return e2b_error(r, 502, "unavailable", "sandbox %s is not running any more", e2b_sandbox_id(r));
    }
    if (!cocoon_box_is_running(*box) && cocoon_box_start_flags(*box, COCOON_START_DETACHED, &err) < 0) {
        serve_close_runtime_box(*rt, *box);
        return e2b_cocoon_error(r, &err);
    }
    return 0;
}

/* The user of HTTP Basic "Basic base64(user:)" as the SDK sends it, or ?username=. */
static void take_user(struct req *r, struct e2b_req *c)
{
    const char *q = serve_query(r, "username");
    const char *auth = serve_header(r, "Authorization");
    char decoded[96];
    size_t n = 0;
    if (auth && strncasecmp(auth, "Basic ", 6) == 0 &&
        util_base64_decode(auth + 6, strlen(auth + 6), decoded, sizeof(decoded) - 1, &n) == 0) {
        decoded[n] = '\0';
        char *colon = strchr(decoded, ':');
        if (colon)
            *colon = '\0';
        q = decoded;
    }
    size_t len = q ? strlen(q) : 0;
    if (len > 0 && len < sizeof(c->user) && strspn(q, "abcdefghijklmnopqrstuvwxyz0123456789_-.") == len) {
        memcpy(c->user, q, len + 1);
        c->has_user = 1;
    }
}

static int id_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 16 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n;
}

/* /contexts of the code interpreter: the SDK sends no X-Access-Token on them. */
static int tokenless_path(const struct e2b_req *c, const char *url)
{
    return c->port == E2B_CODE_PORT && starts(url, "/contexts");
}

int e2b_begin(struct req *r, int api_key_ok)
{
    struct e2b_req *c = calloc(1, sizeof(*c));
    if (!c)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    r->handler_state = c;
    r->handler_free = ctx_free;
    const char *sandbox = serve_header(r, "E2b-Sandbox-Id");
    if (!sandbox) {
        c->style = E2B_STYLE_API;
        if (!api_key_ok)
            return e2b_error(r, 401, "unauthenticated",
                             "a valid API key is required: E2B_API_KEY must be the server's token (its --token-file "
                             "or $COCOON_HOME/serve.token)");
    } else {
        const char *port = serve_header(r, "E2b-Sandbox-Port");
        c->port = port ? (unsigned)strtoul(port, NULL, 10) : E2B_ENVD_PORT;
        const char *type = serve_header(r, "Content-Type");
        if (c->port == E2B_CODE_PORT)
            c->style = E2B_STYLE_TEXT;
        else if (starts(r->url, "/process.") || starts(r->url, "/filesystem."))
            c->style = type && starts(type, "application/connect+json") ? E2B_STYLE_STREAM : E2B_STYLE_UNARY;
        else
            c->style = E2B_STYLE_API;
        if (c->port != E2B_ENVD_PORT && c->port != E2B_CODE_PORT)
            return e2b_error(r, 502, "unavailable",
                             "port %u of a sandbox is not served (only envd, 49983, and the "
                             "code interpreter, 49999)",
                             c->port);
        if (!id_ok(sandbox))
            return e2b_error(r, 400, "invalid_argument", "E2b-Sandbox-Id is not a sandbox id");
        snprintf(c->sandbox, sizeof(c->sandbox), "%s", sandbox);
        const char *token = serve_header(r, "X-Access-Token");
        int known = 0;
        int ok = e2b_sandbox_auth(c->sandbox, token ? token : "", &known);
        if (!known)
            return e2b_error(r, 502, "unavailable", "sandbox %s was not found (killed or timed out)", c->sandbox);
        if (!ok && !(token == NULL && tokenless_path(c, r->url)))
            return e2b_error(r, 401, "unauthenticated",
                             "X-Access-Token is not the envdAccessToken this sandbox was created with");
        take_user(r, c);
        if (c->port == E2B_ENVD_PORT && r->method == M_POST && strncmp(r->url, "/files", 6) == 0 &&
            (r->url[6] == '\0' || r->url[6] == '?'))
            return e2b_begin_upload(r);
    }
    const char *length = serve_header(r, "Content-Length");
    if (length && strtoull(length, NULL, 10) > SERVE_JSON_MAX)
        return e2b_error(r, 413, "resource_exhausted", "the request body is larger than %u bytes", SERVE_JSON_MAX);
    return 0;
}

int e2b_handle(struct req *r)
{
    struct e2b_req *c = ctx_of(r);
    if (r->body_too_big)
        return e2b_error(r, 413, "resource_exhausted", "the request body is larger than %u bytes", SERVE_JSON_MAX);
    if (!c->sandbox[0])
        return e2b_handle_api(r);
    if (c->port == E2B_CODE_PORT)
        return e2b_handle_code(r);
    const char *url = r->url;
    if (strcmp(url, "/health") == 0)
        return serve_empty(r, 204);
    if (strcmp(url, "/files") == 0)
        return e2b_handle_files(r);
    if (starts(url, "/process.Process/")) {
        if (r->method != M_POST)
            return e2b_error(r, 405, "unimplemented", "Connect calls are POSTs");
        return e2b_handle_process(r, url + strlen("/process.Process/"));
    }
    if (starts(url, "/filesystem.Filesystem/")) {
        if (r->method != M_POST)
            return e2b_error(r, 405, "unimplemented", "Connect calls are POSTs");
        return e2b_handle_filesystem(r, url + strlen("/filesystem.Filesystem/"));
    }
    return e2b_error(r, 404, "unimplemented", "envd has no endpoint %s %s", r->method_text, url);
}

json_t *e2b_body(struct req *r)
{
    char msg[256];
    enum e2b_style style = ctx_of(r)->style;
    json_t *b =
        connect_request_message(r->body ? r->body : "", r->body_len, style == E2B_STYLE_STREAM, msg, sizeof(msg));
    if (!b)
        e2b_error(r, 400, "invalid_argument", "%s", msg);
    return b;
}

int e2b_client_left(int fd)
{
    if (fd < 0)
        return 0;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}
