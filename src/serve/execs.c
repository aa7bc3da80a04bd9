/* Execution routes of `cocoon serve`: start a command (POST /exec, BoxLite's two-step
 * model: an id now, the output on attach), its status, kill, signal, resize and stdin,
 * the NDJSON output stream for clients without WebSocket, and run-to-completion (POST
 * /run) that answers with the collected output. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/boxdefaults.h"
#include "serve/execs.h"
#include "serve/http.h"
#include "serve/serve.h"
#include "serve/xreg.h"
#include "util/util.h"

#define RUN_OUTPUT_DEFAULT (1u << 20)
#define RUN_OUTPUT_MAX (16u << 20)
#define STDIN_BODY_MAX SERVE_JSON_MAX
#define KEEPALIVE_MS 5000

static const char *const exec_keys[] = {
    "command", "args", "env",    "working_dir", "user",         "timeout_seconds",  "tty",
    "cols",    "rows", "detach", "stdin",       "stdin_base64", "max_output_bytes", "shell",
    NULL};

void exec_request_free(struct exec_request *x)
{
    cocoon_command_free(&x->cmd);
    free(x->stdin_data);
    json_decref(x->body);
    memset(x, 0, sizeof(*x));
}

/* timeout_seconds as milliseconds (a positive fraction of a millisecond counts as 1). */
static int get_seconds(struct req *r, json_t *b, const char *key, unsigned *ms)
{
    double s = -1;
    if (serve_get_seconds(r, b, key, 30.0 * 24 * 3600, &s) < 0)
        return -1;
    if (s >= 0) {
        *ms = (unsigned)(s * 1000.0);
        if (s > 0 && *ms == 0)
            *ms = 1;
    }
    return 0;
}

static int decode_stdin(struct req *r, struct exec_request *x, const char *text, const char *b64)
{
    if (text && b64) {
        serve_error(r, 400, "invalid_argument", "give either \"stdin\" or \"stdin_base64\", not both");
        return -1;
    }
    if (text) {
        x->stdin_len = strlen(text);
        x->stdin_data = malloc(x->stdin_len + 1);
        if (!x->stdin_data) {
            serve_error(r, 503, "resource_exhausted", "out of memory");
            return -1;
        }
        memcpy(x->stdin_data, text, x->stdin_len);
        x->has_stdin = 1;
    } else if (b64) {
        size_t cap = strlen(b64) / 4 * 3 + 3;
        x->stdin_data = malloc(cap);
        if (!x->stdin_data) {
            serve_error(r, 503, "resource_exhausted", "out of memory");
            return -1;
        }
        if (util_base64_decode(b64, strlen(b64), x->stdin_data, cap, &x->stdin_len) < 0) {
            serve_error(r, 400, "invalid_argument", "field \"stdin_base64\" is not valid base64");
            return -1;
        }
        x->has_stdin = 1;
    }
    return 0;
}

int exec_request_parse(struct req *r, cocoon_box *box, struct exec_request *x)
{
    memset(x, 0, sizeof(*x));
    json_t *b = x->body = serve_body_object(r);
    if (!b)
        return -1;
    const char *command = NULL, *cwd = NULL, *user = NULL, *stdin_text = NULL, *stdin_b64 = NULL;
    const char **args = NULL;
    char **env = NULL;
    uint64_t cols = 0, rows = 0, max_out = RUN_OUTPUT_DEFAULT;
    int shell = 0;
    if (serve_only_keys(r, b, exec_keys) < 0 || serve_get_string(r, b, "command", 65536, &command) < 0 ||
        serve_get_strings(r, b, "args", 65536, &args) < 0 || serve_get_string(r, b, "working_dir", 4000, &cwd) < 0 ||
        serve_get_string(r, b, "user", 256, &user) < 0 || get_seconds(r, b, "timeout_seconds", &x->timeout_ms) < 0 ||
        serve_get_bool(r, b, "tty", &x->tty) < 0 || serve_get_uint(r, b, "cols", 1, 65535, &cols) < 0 ||
        serve_get_uint(r, b, "rows", 1, 65535, &rows) < 0 || serve_get_bool(r, b, "detach", &x->detach) < 0 ||
        serve_get_bool(r, b, "shell", &shell) < 0 || serve_get_string(r, b, "stdin", STDIN_BODY_MAX, &stdin_text) < 0 ||
        serve_get_string(r, b, "stdin_base64", STDIN_BODY_MAX, &stdin_b64) < 0 ||
        serve_get_uint(r, b, "max_output_bytes", 0, RUN_OUTPUT_MAX, &max_out) < 0 ||
        serve_get_env(r, b, "env", &env) < 0 || decode_stdin(r, x, stdin_text, stdin_b64) < 0) {
        free(args);
        serve_free_env(env);
        return -1;
    }
    if (!command || !*command) {
        free(args);
        serve_free_env(env);
        serve_error(r, 400, "invalid_argument", "field \"command\" is required (the program to run)");
        return -1;
    }
    x->rows = (unsigned)rows;
    x->cols = (unsigned)cols;
    x->max_output = (size_t)max_out;

    size_t nargs = 0;
    while (args && args[nargs])
        nargs++;
    const char **argv = calloc(nargs + 4, sizeof(*argv));
    if (!argv) {
        free(args);
        serve_free_env(env);
        serve_error(r, 503, "resource_exhausted", "out of memory");
        return -1;
    }
    size_t k = 0;
    if (shell) { /* "shell": true runs command through /bin/sh -c, args as $0, $1... */
        argv[k++] = "/bin/sh";
        argv[k++] = "-c";
    }
    argv[k++] = command;
    for (size_t i = 0; i < nargs; i++)
        argv[k++] = args[i];
    /* What GET shows of the command: cut at a character, controls escaped (JSON wants UTF-8). */
    util_escape_text(x->command, sizeof(x->command), command, strlen(command));

    /* The box's create-time env, working directory and user, then the request's. */
    cocoon_box_info *info = malloc(sizeof(*info));
    struct box_defaults d = {0};
    cocoon_error err;
    if (info && cocoon_box_inspect(box, info, &err) == 0)
        box_defaults_read(info->dir, &d);
    free(info);
    char **merged = box_defaults_env(&d, env);
    cocoon_command_options co;
    cocoon_command_options_init(&co);
    co.argv = argv;
    co.entrypoint = "";
    co.env = (const char *const *)merged;
    co.cwd = cwd ? cwd : d.working_dir;
    co.user = user ? user : d.user;
    int rc = cocoon_box_command(box, &co, &x->cmd, &err);
    box_defaults_free(&d);
    serve_free_env(merged);
    serve_free_env(env);
    free(argv);
    free(args);
    if (rc < 0) {
        serve_cocoon_error(r, &err);
        return -1;
    }
    return 0;
}

void exec_request_options(const struct exec_request *x, cocoon_exec_options *o)
{
    cocoon_exec_options_init(o);
    o->argv = (const char *const *)x->cmd.argv;
    o->env = (const char *const *)x->cmd.env;
    o->cwd = x->cmd.cwd;
    o->user = x->cmd.user;
    o->tty = x->tty;
    o->timeout_ms = x->timeout_ms;
    o->rows = x->rows;
    o->cols = x->cols;
    o->stdout_fd = -1;
    o->stderr_fd = -1;
}

/* Opens the route's box. */
static int open_box(struct req *r, cocoon_runtime **rt, cocoon_box **box)
{
    if (serve_runtime(r, rt) < 0)
        return -1;
    if (serve_open_box(r, *rt, box) < 0) {
        cocoon_runtime_close(*rt);
        return -1;
    }
    return 0;
}

/* Boots the box when it is not running (BoxLite's lazy start): only once the request
 * was read as good, so a bad one changes nothing. */
static int boot_box(struct req *r, cocoon_box *box)
{
    cocoon_error err;
    if (!cocoon_box_is_running(box) && cocoon_box_start_flags(box, COCOON_START_DETACHED, &err) < 0) {
        serve_cocoon_error(r, &err);
        return -1;
    }
    return 0;
}

/* Opens the route's box, booting it when it is not running (BoxLite's lazy start). */
int serve_open_running_box(struct req *r, cocoon_runtime **rt, cocoon_box **box)
{
    if (open_box(r, rt, box) < 0)
        return -1;
    if (boot_box(r, *box) < 0) {
        cocoon_box_close(*box);
        cocoon_runtime_close(*rt);
        return -1;
    }
    return 0;
}

/* ---- POST /exec ---- */

int handle_exec(struct req *r)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    if (open_box(r, &rt, &box) < 0)
        return -1;
    struct exec_request x;
    int rc = -1;
    if (exec_request_parse(r, box, &x) < 0 || boot_box(r, box) < 0)
        goto out;
    struct xentry *e = xreg_new(cocoon_box_id(box), x.command, x.tty, x.detach);
    if (!e) {
        rc = errno == EAGAIN
                 ? serve_error(r, 429, "resource_exhausted",
                               "%d executions are running on this server: wait for some to end", XREG_RUNNING_MAX)
                 : serve_error(r, 503, "resource_exhausted", "cannot register the execution");
        goto out;
    }
    cocoon_exec_options o;
    exec_request_options(&x, &o);
    o.stdin_fd = COCOON_STDIN_API;
    o.on_stdout = xreg_on_stdout;
    o.on_stderr = xreg_on_stderr;
    o.user_data = e;
    cocoon_exec *ex;
    cocoon_error err;
    if (cocoon_exec_start(box, &o, &ex, &err) < 0) {
        serve_box_count_exec(cocoon_box_id(box), 1, 0, 0);
        xreg_abandon(e);
        rc = serve_cocoon_error(r, &err);
        goto out;
    }
    if (x.has_stdin &&
        (cocoon_exec_write(ex, x.stdin_data, x.stdin_len, &err) < 0 || cocoon_exec_close_stdin(ex, &err) < 0)) {
        cocoon_exec_signal(ex, SIGKILL, NULL);
    }
    if (xreg_launch(e, rt, box, ex) < 0) {
        cocoon_exec_signal(ex, SIGKILL, NULL);
        cocoon_exec_wait(ex, NULL, NULL);
        cocoon_exec_free(ex);
        xreg_abandon(e);
        rc = serve_error(r, 503, "resource_exhausted", "cannot start a thread for the execution");
        goto out;
    }
    serve_count(&serve_counters.execs_started);
    rc = serve_json(r, 201, json_pack("{s:s}", "execution_id", e->id));
    xreg_put(e);
    exec_request_free(&x);
    return rc; /* rt and box now belong to the execution */
out:
    exec_request_free(&x);
    serve_close_runtime_box(rt, box);
    return rc;
}

/* ---- status, kill, signal, resize, stdin ---- */

json_t *exec_info_json(struct xentry *e)
{
    pthread_mutex_lock(&e->lock);
    char started[32];
    serve_iso_time(e->started_at, started, sizeof(started));
    uint64_t end = e->done ? e->t1_ns : util_now_ns(CLOCK_MONOTONIC);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:b,s:b,s:I}", "execution_id", e->id, "box_id", e->box_id, "status",
                          xreg_status(e), "started_at", started, "duration_ms",
                          (json_int_t)((end - e->t0_ns) / 1000000u), "command", e->command, "tty", e->tty, "detach",
                          e->detach, "output_dropped_bytes", (json_int_t)e->dropped);
    json_object_set_new(j, "exit_code", e->done ? json_integer(xreg_exit_code(e)) : json_null());
    json_object_set_new(j, "signal", e->done && e->status.signal ? json_integer(e->status.signal) : json_null());
    json_object_set_new(j, "error_message",
                        e->note[0] ? json_string(e->note) : (e->err_code ? json_string(e->err_msg) : json_null()));
    pthread_mutex_unlock(&e->lock);
    return j;
}

/* The route's execution, or a 404 answered. */
struct xentry *exec_from_route(struct req *r)
{
    struct xentry *e = xreg_get(NULL, r->route.exec);
    if (e) {
        /* The box may be named by its name or id in the path. */
        cocoon_runtime *rt;
        cocoon_box *box;
        cocoon_error err;
        int same = strcmp(e->box_id, r->route.box) == 0;
        if (!same && serve_runtime_open(&rt, &err) == 0) {
            if (cocoon_box_open(rt, r->route.box, &box, &err) == 0) {
                same = strcmp(cocoon_box_id(box), e->box_id) == 0;
                cocoon_box_close(box);
            }
            cocoon_runtime_close(rt);
        }
        if (same)
            return e;
        xreg_put(e);
    }
    serve_error(r, 404, "not_found", "box %s has no execution %s", r->route.box, r->route.exec);
    return NULL;
}

int handle_execs(struct req *r)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    size_t n;
    struct xentry **list = xreg_list(cocoon_box_id(box), &n);
    serve_close_runtime_box(rt, box);
    json_t *arr = json_array();
    for (size_t i = 0; list && i < n; i++) {
        json_array_append_new(arr, exec_info_json(list[i]));
        xreg_put(list[i]);
    }
    free(list);
    return serve_json(r, 200, json_pack("{s:o}", "executions", arr));
}

int handle_exec_info(struct req *r)
{
    struct xentry *e = exec_from_route(r);
    if (!e)
        return -1;
    int rc;
    if (r->method == M_DELETE) {
        pthread_mutex_lock(&e->lock);
        int running = !e->done;
        if (running)
            e->killed = 1;
        pthread_mutex_unlock(&e->lock);
        if (running)
            xreg_signal(e, SIGKILL, NULL);
        rc = serve_empty(r, 204);
    } else {
        rc = r->method == M_HEAD ? serve_empty(r, 204) : serve_json(r, 200, exec_info_json(e));
    }
    xreg_put(e);
    return rc;
}

static int exec_op_answer(struct req *r, int rc, const cocoon_error *err)
{
    if (rc == 0)
        return serve_empty(r, 204);
    if (err->code == COCOON_E_STATE)
        return serve_error(r, 409, "invalid_state", "%s", err->message);
    return serve_cocoon_error(r, err);
}

int handle_exec_signal(struct req *r)
{
    json_t *b = serve_body_object(r);
    if (!b)
        return -1;
    static const char *const keys[] = {"signal", "sig", NULL};
    uint64_t sig = 0;
    int rc = -1;
    if (serve_only_keys(r, b, keys) == 0 && serve_get_uint(r, b, "signal", 1, 64, &sig) == 0 &&
        serve_get_uint(r, b, "sig", 1, 64, &sig) == 0) {
        if (!sig) {
            rc = serve_error(r, 400, "invalid_argument", "field \"signal\" (a number from 1 to 64) is required");
        } else {
            struct xentry *e = exec_from_route(r);
            if (e) {
                cocoon_error err;
                if (sig == SIGKILL) {
                    pthread_mutex_lock(&e->lock);
                    e->killed = !e->done;
                    pthread_mutex_unlock(&e->lock);
                }
                rc = exec_op_answer(r, xreg_signal(e, (int)sig, &err), &err);
                xreg_put(e);
            }
        }
    }
    json_decref(b);
    return rc;
}

int handle_exec_resize(struct req *r)
{
    json_t *b = serve_body_object(r);
    if (!b)
        return -1;
    static const char *const keys[] = {"cols", "rows", NULL};
    uint64_t cols = 0, rows = 0;
    int rc = -1;
    if (serve_only_keys(r, b, keys) == 0 && serve_get_uint(r, b, "cols", 1, 65535, &cols) == 0 &&
        serve_get_uint(r, b, "rows", 1, 65535, &rows) == 0) {
        if (!cols || !rows) {
            rc = serve_error(r, 400, "invalid_argument", "fields \"cols\" and \"rows\" (1 to 65535) are required");
        } else {
            struct xentry *e = exec_from_route(r);
            if (e) {
                cocoon_error err;
                if (!e->tty)
                    rc =
                        serve_error(r, 409, "invalid_state", "execution %s has no terminal (start it with tty)", e->id);
                else
                    rc = exec_op_answer(r, xreg_resize(e, (unsigned)rows, (unsigned)cols, &err), &err);
                xreg_put(e);
            }
        }
    }
    json_decref(b);
    return rc;
}

/* The raw body goes to the command's stdin; ?eof=true closes it afterwards. */
int handle_exec_stdin(struct req *r)
{
    int eof = serve_query_bool(r, "eof");
    if (eof < 0)
        return serve_error(r, 400, "invalid_argument", "eof must be true or false");
    struct xentry *e = exec_from_route(r);
    if (!e)
        return -1;
    cocoon_error err = {0};
    int rc = 0;
    if (r->body_len)
        rc = xreg_write(e, r->body, r->body_len, &err);
    if (rc == 0 && eof)
        rc = xreg_close_stdin(e, &err);
    rc = exec_op_answer(r, rc, &err);
    xreg_put(e);
    return rc;
}

/* ---- NDJSON output ---- */

struct ndjson {
    struct xentry *e;
    char *pending; /* a line not yet handed to MHD in full */
    size_t pending_len, pending_off;
    int finished, ended;
};

static char *chunk_line(const struct xchunk *c, size_t *len)
{
    size_t b64 = (c->len + 2) / 3 * 4;
    char *line = malloc(b64 + 64);
    if (!line)
        return NULL;
    int n = snprintf(line, 64, "{\"type\":\"%s\",\"data\":\"", c->stream == XREG_STDERR ? "stderr" : "stdout");
    size_t w = (size_t)util_base64_encode(c->data, c->len, line + n, b64 + 1);
    memcpy(line + n + w, "\"}\n", 3);
    *len = (size_t)n + w + 3;
    return line;
}

static long ndjson_produce(void *ctx, char *buf, size_t cap)
{
    struct ndjson *s = ctx;
    while (!s->pending) {
        if (s->finished)
            return 0;
        struct xchunk *c = NULL;
        int got = xreg_take(s->e, &c, KEEPALIVE_MS);
        if (got == 1) {
            s->pending = chunk_line(c, &s->pending_len);
            free(c);
            if (!s->pending)
                return -1;
        } else if (got == 0) {
            s->pending = strdup("{\"type\":\"keepalive\"}\n");
            s->pending_len = s->pending ? strlen(s->pending) : 0;
        } else {
            json_t *exit = exec_info_json(s->e);
            json_object_set_new(exit, "type", json_string("exit"));
            s->pending = json_dumps(exit, JSON_COMPACT);
            json_decref(exit);
            if (!s->pending)
                return -1;
            s->pending_len = strlen(s->pending);
            char *grown = realloc(s->pending, s->pending_len + 2);
            if (!grown)
                return -1;
            s->pending = grown;
            s->pending[s->pending_len++] = '\n';
            s->finished = 1;
            s->ended = 1;
        }
        s->pending_off = 0;
    }
    size_t n = s->pending_len - s->pending_off;
    if (n > cap)
        n = cap;
    memcpy(buf, s->pending + s->pending_off, n);
    s->pending_off += n;
    if (s->pending_off == s->pending_len) {
        free(s->pending);
        s->pending = NULL;
    }
    return (long)n;
}

static void ndjson_done(void *ctx)
{
    struct ndjson *s = ctx;
    xreg_detach(s->e, !s->ended);
    xreg_put(s->e);
    free(s->pending);
    free(s);
}

int handle_exec_output(struct req *r)
{
    struct xentry *e = exec_from_route(r);
    if (!e)
        return -1;
    if (xreg_attach(e) < 0) {
        xreg_put(e);
        return serve_error(r, 409, "invalid_state", "execution %s is already being streamed to another client",
                           r->route.exec);
    }
    struct ndjson *s = calloc(1, sizeof(*s));
    if (!s) {
        xreg_detach(e, 0);
        xreg_put(e);
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    }
    s->e = e;
    return serve_stream(r, 200, "application/x-ndjson", ndjson_produce, s, ndjson_done);
}

/* ---- POST /run: run to completion ---- */

struct collected {
    char *data;
    size_t len, cap, total;
};

struct run_state {
    struct collected out, err;
};

static void collect(struct collected *c, const char *data, size_t len)
{
    c->total += len;
    size_t room = c->cap - c->len;
    size_t take = len < room ? len : room;
    if (take) {
        memcpy(c->data + c->len, data, take);
        c->len += take;
    }
}

static void run_stdout(void *user, const char *data, size_t len)
{
    collect(&((struct run_state *)user)->out, data, len);
}
static void run_stderr(void *user, const char *data, size_t len)
{
    collect(&((struct run_state *)user)->err, data, len);
}

/* Kills the exec when the client hangs up while it runs. */
struct hangup_watch {
    int client_fd, stop_fd[2];
    cocoon_exec *ex;
    pthread_t thread;
    int gone;
};

static void *watch_hangup(void *arg)
{
    struct hangup_watch *w = arg;
    struct pollfd p[2] = {{.fd = w->client_fd, .events = POLLRDHUP}, {.fd = w->stop_fd[0], .events = POLLIN}};
    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p[1].revents & (POLLIN | POLLHUP)))
            return NULL;
        if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
            w->gone = 1;
            cocoon_exec_signal(w->ex, SIGKILL, NULL);
            return NULL;
        }
        p[0].events = POLLRDHUP; /* POLLIN alone (a pipelined request) is not a hangup */
    }
}

static json_t *collected_json(const struct collected *c, int binary)
{
    if (!binary)
        return json_stringn_nocheck(c->data, c->len);
    size_t cap = (c->len + 2) / 3 * 4 + 1;
    char *b = malloc(cap);
    if (!b)
        return json_null();
    int n = util_base64_encode(c->data, c->len, b, cap);
    json_t *j = n < 0 ? json_null() : json_stringn(b, (size_t)n);
    free(b);
    return j;
}

static int valid_utf8(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

int handle_run(struct req *r)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    if (open_box(r, &rt, &box) < 0)
        return -1;
    struct exec_request x;
    struct run_state st = {0};
    int rc = -1;
    if (exec_request_parse(r, box, &x) < 0 || boot_box(r, box) < 0)
        goto out;
    st.out.cap = st.err.cap = x.max_output;
    st.out.data = malloc(st.out.cap + 1);
    st.err.data = malloc(st.err.cap + 1);
    if (!st.out.data || !st.err.data) {
        rc = serve_error(r, 503, "resource_exhausted", "out of memory for %zu bytes of output", x.max_output);
        goto out;
    }
    cocoon_exec_options o;
    exec_request_options(&x, &o);
    o.stdin_fd = x.has_stdin ? COCOON_STDIN_API : COCOON_STDIN_NONE;
    o.on_stdout = run_stdout;
    o.on_stderr = run_stderr;
    o.user_data = &st;
    cocoon_exec *ex;
    cocoon_error err;
    uint64_t t0 = util_now_ns(CLOCK_MONOTONIC);
    if (cocoon_exec_start(box, &o, &ex, &err) < 0) {
        rc = serve_cocoon_error(r, &err);
        goto out;
    }
    serve_count(&serve_counters.execs_started);
    struct hangup_watch w = {.client_fd = serve_client_fd(r), .ex = ex};
    int watching = w.client_fd >= 0 && pipe(w.stop_fd) == 0;
    if (watching && pthread_create(&w.thread, NULL, watch_hangup, &w) != 0) {
        close(w.stop_fd[0]);
        close(w.stop_fd[1]);
        watching = 0;
    }
    if (x.has_stdin &&
        (cocoon_exec_write(ex, x.stdin_data, x.stdin_len, &err) < 0 || cocoon_exec_close_stdin(ex, &err) < 0))
        cocoon_exec_signal(ex, SIGKILL, NULL);
    cocoon_exit_status status;
    int wrc = cocoon_exec_wait(ex, &status, &err);
    if (watching) {
        close(w.stop_fd[1]);
        pthread_join(w.thread, NULL);
        close(w.stop_fd[0]);
    }
    cocoon_exec_free(ex);
    serve_box_count_exec(cocoon_box_id(box), wrc < 0, x.has_stdin ? x.stdin_len : 0, st.out.total + st.err.total);
    if (wrc < 0 && err.code == COCOON_E_EXEC) {
        memset(&status, 0, sizeof(status));
        status.exit_code = xreg_not_started_code(&err);
        char line[sizeof(err.message) + 16];
        int n = snprintf(line, sizeof(line), "cocoon: %s\n", err.message);
        collect(&st.err, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    } else if (wrc < 0) {
        rc = serve_cocoon_error(r, &err);
        goto out;
    }
    int out_bin = !valid_utf8(st.out.data, st.out.len), err_bin = !valid_utf8(st.err.data, st.err.len);
    json_t *j =
        json_pack("{s:i,s:b,s:I,s:b,s:b,s:I,s:I,s:s}", "exit_code", cocoon_exit_status_code(&status), "timed_out",
                  status.timed_out, "duration_ms", (json_int_t)((util_now_ns(CLOCK_MONOTONIC) - t0) / 1000000u),
                  "stdout_truncated", st.out.total > st.out.len, "stderr_truncated", st.err.total > st.err.len,
                  "stdout_bytes", (json_int_t)st.out.total, "stderr_bytes", (json_int_t)st.err.total, "encoding",
                  (out_bin || err_bin) ? "base64" : "utf-8");
    json_object_set_new(j, "signal", status.signal ? json_integer(status.signal) : json_null());
    json_object_set_new(j, "error_message", wrc < 0 ? json_string(err.message) : json_null());
    json_object_set_new(j, "stdout", collected_json(&st.out, out_bin || err_bin));
    json_object_set_new(j, "stderr", collected_json(&st.err, out_bin || err_bin));
    rc = serve_json(r, 200, j);
out:
    free(st.out.data);
    free(st.err.data);
    exec_request_free(&x);
    serve_close_runtime_box(rt, box);
    return rc;
}
