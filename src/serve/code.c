/* Code-interpreter routes of `cocoon serve` (docs/openapi.yaml "Code"):
 * POST /v1/boxes/{id}/code {code, language, context, env, timeout_seconds} streams the
 * run's events as NDJSON (cocoon_code_run's shapes, checked by libcocoon) while they are
 * produced; GET/POST .../code/contexts lists and creates contexts, DELETE
 * .../code/contexts/{ctx} removes one, POST .../code/contexts/{ctx}/restart restarts it.
 * A stopped box is started first, as for exec. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fd.h"
#include "serve/serve.h"

#define CODE_MAX (16u * 1024u * 1024u - 1024u)

/* One run on its own thread: its events go into a pipe the response streams from. The
 * request waits for the first event (or the end) to choose its status: a run that could
 * not start answers an error envelope, not a 200 stream. */
struct code_run {
    cocoon_runtime *rt;
    cocoon_box *box;
    json_t *body;
    char **env;
    cocoon_code_options opts;
    const char *code;
    int fd; /* write end */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started, done, refs;
    cocoon_error err;
};

static void run_unref(struct code_run *c)
{
    pthread_mutex_lock(&c->lock);
    int last = --c->refs == 0;
    pthread_mutex_unlock(&c->lock);
    if (!last)
        return;
    serve_close_runtime_box(c->rt, c->box);
    serve_free_env(c->env);
    json_decref(c->body);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

/* 0, or nonzero when the reader (the response) is gone */
static int write_line(int fd, const char *json, size_t len)
{
    return util_write_all(fd, json, len) != 0 || util_write_all(fd, "\n", 1) != 0;
}

static int on_event(const char *json, size_t len, void *ctx)
{
    struct code_run *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->started = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    /* a client that went away closed the read end: the run is interrupted */
    return write_line(c->fd, json, len);
}

static void *run_thread(void *arg)
{
    struct code_run *c = arg;
    int rc = cocoon_code_run(c->box, c->code, &c->opts, &c->err);
    pthread_mutex_lock(&c->lock);
    int streamed = c->started;
    c->done = 1;
    c->err.code = rc < 0 ? c->err.code : COCOON_OK;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (rc < 0 && streamed) {
        /* the stream has begun: the failure ends it as an error event */
        json_t *ev = json_pack("{s:s,s:s,s:s,s:s}", "type", "error", "name", "CocoonError", "value", c->err.message,
                               "traceback", "");
        char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        if (text)
            write_line(c->fd, text, strlen(text));
        free(text);
        json_decref(ev);
    }
    close(c->fd);
    run_unref(c);
    return NULL;
}

static int parse_run(struct req *r, struct code_run *c)
{
    static const char *const keys[] = {"code", "language", "context", "env", "timeout_seconds", NULL};
    double timeout = 0;
    c->body = serve_body_object(r);
    if (!c->body)
        return -1;
    cocoon_code_options_init(&c->opts);
    if (serve_only_keys(r, c->body, keys) < 0 || serve_get_string(r, c->body, "code", CODE_MAX, &c->code) < 0 ||
        serve_get_string(r, c->body, "language", 32, &c->opts.language) < 0 ||
        serve_get_string(r, c->body, "context", 64, &c->opts.context) < 0 ||
        serve_get_env(r, c->body, "env", &c->env) < 0 ||
        serve_get_seconds(r, c->body, "timeout_seconds", 30.0 * 24 * 3600, &timeout) < 0)
        return -1;
    if (!c->code)
        return serve_error(r, 400, "invalid_argument", "code is required");
    c->opts.env = (const char *const *)c->env;
    c->opts.timeout_ms = timeout > 0 ? (uint32_t)(timeout * 1000.0) + (timeout * 1000.0 < 1) : 0;
    return 0;
}

static int handle_code_run(struct req *r)
{
    struct code_run *c = calloc(1, sizeof(*c));
    if (!c)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->refs = 1;
    int fds[2] = {-1, -1};
    if (parse_run(r, c) < 0 || serve_open_running_box(r, &c->rt, &c->box) < 0) {
        run_unref(c);
        return -1;
    }
    if (pipe2(fds, O_CLOEXEC) < 0) {
        run_unref(c);
        return serve_error(r, 503, "resource_exhausted", "no pipe for the stream: %s", strerror(errno));
    }
    c->fd = fds[1];
    c->opts.on_event = on_event;
    c->opts.ctx = c;
    c->refs = 2;
    pthread_t t;
    if (pthread_create(&t, NULL, run_thread, c) != 0) {
        close(fds[0]);
        close(fds[1]);
        c->refs = 1;
        run_unref(c);
        return serve_error(r, 503, "resource_exhausted", "no thread for the run");
    }
    pthread_detach(t);
    pthread_mutex_lock(&c->lock);
    while (!c->started && !c->done)
        pthread_cond_wait(&c->cond, &c->lock);
    int failed = !c->started && c->err.code != COCOON_OK;
    cocoon_error err = c->err;
    pthread_mutex_unlock(&c->lock);
    run_unref(c);
    if (failed) {
        close(fds[0]);
        return serve_cocoon_error(r, &err);
    }
    return serve_stream_fd(r, 200, "application/x-ndjson", fds[0]);
}

static int answer_text_json(struct req *r, unsigned status, char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    return j ? serve_json(r, status, j) : serve_error(r, 500, "internal", "a context answer that is not JSON");
}

static int handle_contexts(struct req *r, cocoon_box *box)
{
    static const char *const keys[] = {"language", "cwd", NULL};
    cocoon_error err;
    char *text = NULL;
    if (r->method != M_POST)
        return cocoon_code_context_list(box, &text, &err) < 0 ? serve_cocoon_error(r, &err)
                                                              : answer_text_json(r, 200, text);
    const char *language = NULL, *cwd = NULL;
    json_t *b = serve_body_object(r);
    if (!b)
        return -1;
    int rc;
    if (serve_only_keys(r, b, keys) < 0 || serve_get_string(r, b, "language", 32, &language) < 0 ||
        serve_get_string(r, b, "cwd", 4096, &cwd) < 0)
        rc = -1;
    else if (cocoon_code_context_create(box, language, cwd, &text, &err) < 0)
        rc = serve_cocoon_error(r, &err);
    else
        rc = answer_text_json(r, 201, text);
    json_decref(b);
    return rc;
}

int handle_code(struct req *r)
{
    if (r->route.id == R_CODE)
        return handle_code_run(r);
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_running_box(r, &rt, &box) < 0)
        return -1;
    cocoon_error err;
    int rc;
    if (r->route.id == R_CODE_CONTEXTS)
        rc = handle_contexts(r, box);
    else if (r->route.id == R_CODE_CONTEXT_RESTART)
        rc = cocoon_code_context_restart(box, r->route.exec, &err) < 0 ? serve_cocoon_error(r, &err)
                                                                       : serve_empty(r, 204);
    else
        rc = cocoon_code_context_remove(box, r->route.exec, &err) < 0 ? serve_cocoon_error(r, &err)
                                                                      : serve_empty(r, 204);
    serve_close_runtime_box(rt, box);
    return rc;
}
