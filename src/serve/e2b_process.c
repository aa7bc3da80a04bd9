/* envd's process service (process.Process over Connect/JSON) on cocoon execs: Start
 * and Connect stream a command's events, List, SendInput, StreamInput, SendSignal,
 * CloseStdin and Update act on it by its E2B pid. Each command is an execution of the
 * server's registry (xreg): flow-controlled while a client streams it, keeping the
 * newest output when none does (E2B's processes outlive their stream). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/e2b.h"
#include "serve/http.h"
#include "serve/serve.h"
#include "serve/xreg.h"
#include "util/util.h"

#define ARGS_MAX 4096
#define ENVS_MAX 1024
#define TAG_MAX 128
#define KEEPALIVE_MS 5000
#define HANGUP_CHECK_MS 250   /* how soon a stream notices its client left (E2B's disconnect) */
#define TAKEOVER_WAIT_MS 3000 /* Connect waits this long for a left client's stream to end */

struct proc {
    struct proc *next;
    char sandbox[16];
    unsigned pid;
    char xid[XREG_ID_MAX];
    char tag[TAG_MAX];
    json_t *config; /* {cmd,args,envs,cwd} as given */
};

static pthread_mutex_t procs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct proc *procs;
static unsigned next_pid = 999; /* E2B pids start at 1000 */

static void proc_free(struct proc *p)
{
    json_decref(p->config);
    free(p);
}

/* A process whose execution ended and was read, or that the registry forgot. */
static int proc_finished(const struct proc *p)
{
    struct xentry *e = xreg_get(p->sandbox, p->xid);
    if (!e)
        return 1;
    pthread_mutex_lock(&e->lock);
    int finished = e->done && !e->attached;
    pthread_mutex_unlock(&e->lock);
    xreg_put(e);
    return finished;
}

/* A pid for a new process of sandbox, 0 when it has no room (finished ones are
 * forgotten; one still starting, without its execution yet, is not finished). The
 * entry is found again by its pid: a kill of the sandbox may drop it meanwhile. */
static unsigned proc_add(const char *sandbox, json_t *config, const char *tag)
{
    pthread_mutex_lock(&procs_lock);
    unsigned n = 0;
    for (struct proc **pp = &procs; *pp;) {
        struct proc *p = *pp;
        if (strcmp(p->sandbox, sandbox) == 0 && p->xid[0] && proc_finished(p)) {
            *pp = p->next;
            proc_free(p);
            continue;
        }
        n += strcmp(p->sandbox, sandbox) == 0;
        pp = &p->next;
    }
    struct proc *p = n < E2B_PROCS_MAX ? calloc(1, sizeof(*p)) : NULL;
    unsigned pid = 0;
    if (p) {
        snprintf(p->sandbox, sizeof(p->sandbox), "%s", sandbox);
        snprintf(p->tag, sizeof(p->tag), "%s", tag ? tag : "");
        if (++next_pid < 1000)
            next_pid = 1000; /* after wrapping */
        p->pid = pid = next_pid;
        p->config = json_incref(config);
        p->next = procs;
        procs = p;
    }
    pthread_mutex_unlock(&procs_lock);
    return pid;
}

/* The process pid of sandbox is execution xid now (0), or it was dropped (-1). */
static int proc_set_exec(const char *sandbox, unsigned pid, const char *xid)
{
    int rc = -1;
    pthread_mutex_lock(&procs_lock);
    for (struct proc *p = procs; p; p = p->next)
        if (p->pid == pid && strcmp(p->sandbox, sandbox) == 0) {
            snprintf(p->xid, sizeof(p->xid), "%s", xid);
            rc = 0;
        }
    pthread_mutex_unlock(&procs_lock);
    return rc;
}

static void proc_remove(const char *sandbox, unsigned pid)
{
    pthread_mutex_lock(&procs_lock);
    for (struct proc **pp = &procs; *pp; pp = &(*pp)->next)
        if ((*pp)->pid == pid && strcmp((*pp)->sandbox, sandbox) == 0) {
            struct proc *gone = *pp;
            *pp = gone->next;
            proc_free(gone);
            break;
        }
    pthread_mutex_unlock(&procs_lock);
}

void e2b_procs_forget(const char *sandbox)
{
    pthread_mutex_lock(&procs_lock);
    for (struct proc **pp = &procs; *pp;) {
        struct proc *p = *pp;
        if (strcmp(p->sandbox, sandbox) == 0) {
            *pp = p->next;
            proc_free(p);
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&procs_lock);
}

/* The execution a selector ({"pid":N} or {"tag":"..."}) names (a reference), or NULL
 * after answering not_found. */
static struct xentry *select_exec(struct req *r, json_t *b, unsigned *pid_out)
{
    json_t *sel = json_object_get(b, "process");
    json_t *pid = json_object_get(sel, "pid"), *tag = json_object_get(sel, "tag");
    if (!json_is_integer(pid) && !json_is_string(tag)) {
        e2b_error(r, 400, "invalid_argument", "\"process\" must select a process by \"pid\" or \"tag\"");
        return NULL;
    }
    char xid[XREG_ID_MAX] = "";
    unsigned found = 0;
    pthread_mutex_lock(&procs_lock);
    for (struct proc *p = procs; p; p = p->next)
        if (strcmp(p->sandbox, e2b_sandbox_id(r)) == 0 &&
            (json_is_integer(pid) ? (json_int_t)p->pid == json_integer_value(pid)
                                  : p->tag[0] && strcmp(p->tag, json_string_value(tag)) == 0) &&
            p->xid[0]) {
            snprintf(xid, sizeof(xid), "%s", p->xid);
            found = p->pid;
        }
    pthread_mutex_unlock(&procs_lock);
    struct xentry *e = xid[0] ? xreg_get(e2b_sandbox_id(r), xid) : NULL;
    if (!e) {
        if (json_is_integer(pid))
            e2b_error(r, 404, "not_found", "process with pid %lld not found", (long long)json_integer_value(pid));
        else
            e2b_error(r, 404, "not_found", "process with tag %s not found", json_string_value(tag));
        return NULL;
    }
    if (pid_out)
        *pid_out = found;
    return e;
}

/* ---- the event stream of Start and Connect ---- */

struct pstream {
    struct xentry *e;
    int client_fd; /* to notice the client hanging up while the command is quiet */
    unsigned pid;
    int tty;
    int started; /* the start event went out */
    int finished, ended;
    char *pending;
    size_t pending_len, pending_off;
};

static char *frame_of(const char *json, size_t *len) { return connect_frame_encode(0, json, strlen(json), len); }

static char *data_frame(const struct pstream *s, const struct xchunk *c, size_t *len)
{
    size_t b64 = (c->len + 2) / 3 * 4 + 1;
    char *json = malloc(b64 + 64);
    if (!json)
        return NULL;
    const char *kind = s->tty ? "pty" : c->stream == XREG_STDERR ? "stderr" : "stdout";
    int n = snprintf(json, 64, "{\"event\":{\"data\":{\"%s\":\"", kind);
    int w = util_base64_encode(c->data, c->len, json + n, b64);
    snprintf(json + n + w, 8, "\"}}}");
    char *frame = frame_of(json, len);
    free(json);
    return frame;
}

/* The end event (as Go's ProcessState says it: "exit status 1", "signal: killed") and
 * the end of the stream. */
static char *end_frames(struct pstream *s, size_t *len)
{
    struct xentry *e = s->e;
    pthread_mutex_lock(&e->lock);
    int code = e->status.exit_code, sig = e->status.signal, failed = e->err_code != 0;
    char err_msg[sizeof(e->err_msg)];
    snprintf(err_msg, sizeof(err_msg), "%s", e->err_msg);
    pthread_mutex_unlock(&e->lock);
    char status[96];
    if (failed)
        snprintf(status, sizeof(status), "error");
    else if (sig)
        snprintf(status, sizeof(status), "signal: %s", sig == SIGKILL ? "killed" : strsignal(sig));
    else
        snprintf(status, sizeof(status), "exit status %d", code);
    json_t *end = json_pack("{s:i,s:b,s:s}", "exitCode",
                            failed ? -1
                            : sig  ? -1
                                   : code,
                            "exited", !failed && !sig, "status", status);
    if (failed)
        json_object_set_new(end, "error", json_string(err_msg));
    json_t *ev = json_pack("{s:{s:o}}", "event", "end", end);
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (!text)
        return NULL;
    char *both = connect_frames_last(text, strlen(text), len);
    free(text);
    return both;
}

static long pstream_produce(void *ctx, char *buf, size_t cap)
{
    struct pstream *s = ctx;
    while (!s->pending) {
        if (s->finished)
            return 0;
        if (!s->started) {
            char json[64];
            snprintf(json, sizeof(json), "{\"event\":{\"start\":{\"pid\":%u}}}", s->pid);
            s->pending = frame_of(json, &s->pending_len);
            s->started = 1;
        } else {
            struct xchunk *c = NULL;
            int got = 0;
            for (int waited = 0; waited < KEEPALIVE_MS && got == 0; waited += HANGUP_CHECK_MS) {
                got = xreg_take(s->e, &c, HANGUP_CHECK_MS);
                if (got == 0 && e2b_client_left(s->client_fd))
                    return -1;
            }
            if (got == 1) {
                s->pending = data_frame(s, c, &s->pending_len);
                free(c);
            } else if (got == 0) {
                s->pending = frame_of("{\"event\":{\"keepalive\":{}}}", &s->pending_len);
            } else {
                s->pending = end_frames(s, &s->pending_len);
                s->finished = s->ended = 1;
            }
        }
        if (!s->pending)
            return -1;
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

/* The client stopped streaming: the process goes on (E2B's disconnect), keeping the
 * newest output for a later Connect instead of blocking on a full buffer. */
static void pstream_done(void *ctx)
{
    struct pstream *s = ctx;
    pthread_mutex_lock(&s->e->lock);
    s->e->detach = 1;
    pthread_mutex_unlock(&s->e->lock);
    xreg_detach(s->e, 0);
    xreg_put(s->e);
    free(s->pending);
    free(s);
}

/* Streams e's events to the client (e is attached; the stream owns the reference). */
static int stream_events(struct req *r, struct xentry *e, unsigned pid)
{
    struct pstream *s = calloc(1, sizeof(*s));
    if (!s) {
        xreg_detach(e, 0);
        xreg_put(e);
        return e2b_error(r, 503, "resource_exhausted", "out of memory");
    }
    s->e = e;
    s->client_fd = serve_client_fd(r);
    s->pid = pid;
    s->tty = e->tty;
    return serve_stream(r, 200, "application/connect+json", pstream_produce, s, pstream_done);
}

/* ---- Start ---- */

static int strings_of(struct req *r, json_t *arr, size_t max, const char *what, const char **out, size_t *n)
{
    size_t i;
    json_t *v;
    if (arr && !json_is_array(arr))
        return e2b_error(r, 400, "invalid_argument", "\"%s\" must be an array of strings", what);
    if (json_array_size(arr) > max)
        return e2b_error(r, 400, "invalid_argument", "\"%s\" has more than %zu items", what, max);
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return e2b_error(r, 400, "invalid_argument", "\"%s\" must be an array of strings", what);
        out[(*n)++] = json_string_value(v);
    }
    return 0;
}

struct start_args {
    const char **argv;
    char **env;
    char cwd[COCOON_PATH_MAX];
    char command[512];
    int tty, keep_stdin;
    unsigned rows, cols, timeout_ms;
};

static void start_args_free(struct start_args *a)
{
    free(a->argv);
    serve_free_env(a->env);
}

static int parse_start(struct req *r, json_t *b, struct start_args *a)
{
    json_t *proc = json_object_get(b, "process");
    const char *cmd = json_string_value(json_object_get(proc, "cmd"));
    if (!cmd || !cmd[0])
        return e2b_error(r, 400, "invalid_argument", "\"process.cmd\" (the program to run) is required");
    a->argv = calloc(ARGS_MAX + 2, sizeof(char *));
    a->env = e2b_sandbox_env(e2b_sandbox_id(r));
    if (!a->argv || !a->env)
        return e2b_error(r, 503, "resource_exhausted", "out of memory");
    size_t n = 0;
    a->argv[n++] = cmd;
    if (strings_of(r, json_object_get(proc, "args"), ARGS_MAX, "process.args", a->argv, &n) < 0)
        return -1;
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof(a->command) - 1; i++)
        len += (size_t)snprintf(a->command + len, sizeof(a->command) - len, "%s%s", i ? " " : "", a->argv[i]);
    json_t *envs = json_object_get(proc, "envs");
    if (envs && !json_is_object(envs))
        return e2b_error(r, 400, "invalid_argument", "\"process.envs\" must be an object of strings");
    size_t have = 0;
    while (a->env[have])
        have++;
    if (json_object_size(envs) > ENVS_MAX)
        return e2b_error(r, 400, "invalid_argument", "\"process.envs\" has more than %d entries", ENVS_MAX);
    char **grown = realloc(a->env, (have + json_object_size(envs) + 1) * sizeof(char *));
    if (!grown)
        return e2b_error(r, 503, "resource_exhausted", "out of memory");
    a->env = grown;
    a->env[have] = NULL;
    const char *k;
    json_t *v;
    json_object_foreach(envs, k, v)
    {
        if (!json_is_string(v) || !k[0] || strchr(k, '='))
            return e2b_error(r, 400, "invalid_argument", "\"process.envs\" must map names (without '=') to strings");
        size_t sz = strlen(k) + json_string_length(v) + 2;
        a->env[have] = malloc(sz);
        if (!a->env[have])
            return e2b_error(r, 503, "resource_exhausted", "out of memory");
        snprintf(a->env[have++], sz, "%s=%s", k, json_string_value(v));
        a->env[have] = NULL;
    }
    const char *cwd = json_string_value(json_object_get(proc, "cwd"));
    if (e2b_abs_path(r, cwd, a->cwd, sizeof(a->cwd)) < 0)
        return -1;
    json_t *size = json_object_get(json_object_get(b, "pty"), "size");
    if (json_object_get(b, "pty")) {
        a->tty = 1;
        json_int_t cols = json_integer_value(json_object_get(size, "cols"));
        json_int_t rows = json_integer_value(json_object_get(size, "rows"));
        a->cols = cols > 0 && cols <= 65535 ? (unsigned)cols : 80;
        a->rows = rows > 0 && rows <= 65535 ? (unsigned)rows : 24;
    }
    a->keep_stdin = a->tty || json_is_true(json_object_get(b, "stdin"));
    /* The call's deadline (the SDK's timeoutMs) bounds the command, as envd does. */
    const char *deadline = serve_header(r, "Connect-Timeout-Ms");
    unsigned long long ms = deadline ? strtoull(deadline, NULL, 10) : 0;
    a->timeout_ms = ms > 0xffffffffULL ? 0xffffffffu : (unsigned)ms;
    return 0;
}

static int start(struct req *r, json_t *b)
{
    struct start_args a = {0};
    cocoon_runtime *rt = NULL;
    cocoon_box *box = NULL;
    unsigned pid = 0;
    int rc = -1;
    if (parse_start(r, b, &a) < 0 || e2b_open_box(r, &rt, &box) < 0)
        goto out;
    json_t *config = json_deep_copy(json_object_get(b, "process"));
    pid = proc_add(e2b_sandbox_id(r), config, json_string_value(json_object_get(b, "tag")));
    json_decref(config);
    if (!pid) {
        rc = e2b_error(r, 429, "resource_exhausted", "sandbox %s has %d processes: wait for some to end",
                       e2b_sandbox_id(r), E2B_PROCS_MAX);
        goto out;
    }
    struct xentry *e = xreg_new(cocoon_box_id(box), a.command, a.tty, 0);
    if (!e) {
        rc = e2b_error(r, 429, "resource_exhausted", "%d executions are running on this server", XREG_RUNNING_MAX);
        goto out;
    }
    cocoon_exec_options o;
    cocoon_exec_options_init(&o);
    o.argv = a.argv;
    o.env = (const char *const *)a.env;
    o.cwd = a.cwd;
    o.user = e2b_username(r);
    o.tty = a.tty;
    o.rows = a.rows;
    o.cols = a.cols;
    o.timeout_ms = a.timeout_ms;
    o.stdin_fd = COCOON_STDIN_API;
    o.stdout_fd = o.stderr_fd = -1;
    o.on_stdout = xreg_on_stdout;
    o.on_stderr = xreg_on_stderr;
    o.user_data = e;
    cocoon_exec *ex;
    cocoon_error err;
    if (cocoon_exec_start(box, &o, &ex, &err) < 0) {
        serve_box_count_exec(cocoon_box_id(box), 1, 0, 0);
        xreg_abandon(e);
        rc = e2b_cocoon_error(r, &err);
        goto out;
    }
    if (!a.keep_stdin)
        cocoon_exec_close_stdin(ex, NULL);
    if (xreg_launch(e, rt, box, ex) < 0) {
        cocoon_exec_signal(ex, SIGKILL, NULL);
        cocoon_exec_wait(ex, NULL, NULL);
        cocoon_exec_free(ex);
        xreg_abandon(e);
        rc = e2b_error(r, 503, "resource_exhausted", "cannot start a thread for the process");
        goto out;
    }
    rt = NULL;
    box = NULL; /* the execution owns them now */
    serve_count(&serve_counters.execs_started);
    if (proc_set_exec(e2b_sandbox_id(r), pid, e->id) < 0) {
        xreg_signal(e, SIGKILL, NULL); /* the sandbox was killed while it started */
        xreg_put(e);
        start_args_free(&a);
        return e2b_error(r, 502, "unavailable", "sandbox %s was killed", e2b_sandbox_id(r));
    }
    xreg_attach(e);
    start_args_free(&a);
    return stream_events(r, e, pid);
out:
    if (pid)
        proc_remove(e2b_sandbox_id(r), pid);
    if (box || rt)
        serve_close_runtime_box(rt, box);
    start_args_free(&a);
    return rc;
}

static int connect_to(struct req *r, json_t *b)
{
    unsigned pid = 0;
    struct xentry *e = select_exec(r, b, &pid);
    if (!e)
        return -1;
    /* A client that just disconnected may still be streaming it for a moment. */
    int busy = 1;
    for (int waited = 0; busy && waited <= TAKEOVER_WAIT_MS; waited += 50) {
        pthread_mutex_lock(&e->lock);
        busy = e->attached;
        if (!busy) {
            e->attached = 1;
            e->detach = 0; /* a reader again: flow control again */
        }
        pthread_mutex_unlock(&e->lock);
        if (busy)
            usleep(50 * 1000);
    }
    if (busy) {
        xreg_put(e);
        return e2b_error(r, 409, "failed_precondition", "another client streams process %u now (disconnect it first)",
                         pid);
    }
    return stream_events(r, e, pid);
}

/* ---- unary calls ---- */

static int list(struct req *r)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&procs_lock);
    for (struct proc *p = procs; p; p = p->next) {
        if (strcmp(p->sandbox, e2b_sandbox_id(r)) != 0 || !p->xid[0])
            continue;
        struct xentry *e = xreg_get(p->sandbox, p->xid);
        int running = 0;
        if (e) {
            pthread_mutex_lock(&e->lock);
            running = !e->done;
            pthread_mutex_unlock(&e->lock);
            xreg_put(e);
        }
        if (!running)
            continue;
        json_t *info = json_pack("{s:O,s:i}", "config", p->config, "pid", (int)p->pid);
        if (p->tag[0])
            json_object_set_new(info, "tag", json_string(p->tag));
        json_array_append_new(arr, info);
    }
    pthread_mutex_unlock(&procs_lock);
    return serve_json(r, 200, json_pack("{s:o}", "processes", arr));
}

static int op_answer(struct req *r, int rc, const cocoon_error *err)
{
    if (rc == 0)
        return serve_json(r, 200, json_object());
    if (err->code == COCOON_E_STATE)
        return e2b_error(r, 404, "not_found", "the process is not running any more");
    return e2b_cocoon_error(r, err);
}

/* input {"stdin":"<base64>"} or {"pty":"<base64>"} to e. */
static int write_input(struct req *r, struct xentry *e, json_t *input, cocoon_error *err)
{
    const char *b64 = json_string_value(json_object_get(input, "stdin"));
    if (!b64)
        b64 = json_string_value(json_object_get(input, "pty"));
    if (!b64) {
        e2b_error(r, 400, "invalid_argument", "\"input\" must hold \"stdin\" or \"pty\" bytes (base64)");
        return 1;
    }
    size_t cap = strlen(b64) / 4 * 3 + 3, n = 0;
    char *data = malloc(cap);
    if (!data || util_base64_decode(b64, strlen(b64), data, cap, &n) < 0) {
        free(data);
        e2b_error(r, 400, "invalid_argument", "the input is not valid base64");
        return 1;
    }
    int rc = n ? xreg_write(e, data, n, err) : 0;
    free(data);
    return rc;
}

static int send_input(struct req *r, json_t *b)
{
    struct xentry *e = select_exec(r, b, NULL);
    if (!e)
        return -1;
    cocoon_error err = {0};
    int rc = write_input(r, e, json_object_get(b, "input"), &err);
    xreg_put(e);
    return rc > 0 ? -1 : op_answer(r, rc, &err);
}

/* Client streaming: connect-web sends the whole request (half duplex) as envelopes:
 * a start naming the process, then data and keepalives. */
static int stream_input(struct req *r)
{
    size_t off = 0;
    struct connect_frame f;
    char msg[256];
    struct xentry *e = NULL;
    int got, rc = 0;
    cocoon_error err = {0};
    while (rc == 0 && (got = connect_frame_next(r->body ? r->body : "", r->body_len, &off, &f, msg, sizeof(msg))) > 0) {
        if (f.flags & CONNECT_FLAG_END)
            break;
        json_t *m = connect_request_message((const char *)f.data, f.len, 0, msg, sizeof(msg));
        if (!m) {
            rc = 1;
            e2b_error(r, 400, "invalid_argument", "%s", msg);
            break;
        }
        json_t *start_ev = json_object_get(m, "start"), *data = json_object_get(m, "data");
        if (start_ev && !e) {
            e = select_exec(r, start_ev, NULL);
            if (!e)
                rc = 1;
        } else if (data) {
            if (!e) {
                rc = 1;
                e2b_error(r, 400, "invalid_argument", "StreamInput sends data before its start event");
            } else {
                rc = write_input(r, e, json_object_get(data, "input"), &err);
            }
        }
        json_decref(m);
    }
    if (got < 0 && rc == 0) {
        rc = 1;
        e2b_error(r, 400, "invalid_argument", "%s", msg);
    }
    if (e)
        xreg_put(e);
    if (rc > 0)
        return -1;
    if (rc < 0)
        return op_answer(r, rc, &err);
    size_t n = 0;
    char *both = connect_frames_last("{}", 2, &n);
    if (!both)
        return e2b_error(r, 503, "resource_exhausted", "out of memory");
    rc = serve_text(r, 200, "application/connect+json", both, n);
    free(both);
    return rc;
}

static int signal_number(json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) == 9 ? SIGKILL : json_integer_value(v) == 15 ? SIGTERM : 0;
    const char *s = json_string_value(v);
    if (s && strcmp(s, "SIGNAL_SIGKILL") == 0)
        return SIGKILL;
    if (s && strcmp(s, "SIGNAL_SIGTERM") == 0)
        return SIGTERM;
    return 0;
}

static int send_signal(struct req *r, json_t *b)
{
    int sig = signal_number(json_object_get(b, "signal"));
    if (!sig)
        return e2b_error(r, 400, "invalid_argument", "\"signal\" must be SIGNAL_SIGKILL or SIGNAL_SIGTERM");
    struct xentry *e = select_exec(r, b, NULL);
    if (!e)
        return -1;
    if (sig == SIGKILL) {
        pthread_mutex_lock(&e->lock);
        e->killed = !e->done;
        pthread_mutex_unlock(&e->lock);
    }
    cocoon_error err = {0};
    int rc = op_answer(r, xreg_signal(e, sig, &err), &err);
    xreg_put(e);
    return rc;
}

static int close_stdin(struct req *r, json_t *b)
{
    struct xentry *e = select_exec(r, b, NULL);
    if (!e)
        return -1;
    cocoon_error err = {0};
    int rc = op_answer(r, xreg_close_stdin(e, &err), &err);
    xreg_put(e);
    return rc;
}

static int update(struct req *r, json_t *b)
{
    json_t *size = json_object_get(json_object_get(b, "pty"), "size");
    json_int_t cols = json_integer_value(json_object_get(size, "cols"));
    json_int_t rows = json_integer_value(json_object_get(size, "rows"));
    if (cols < 1 || cols > 65535 || rows < 1 || rows > 65535)
        return e2b_error(r, 400, "invalid_argument", "\"pty.size\" needs cols and rows from 1 to 65535");
    struct xentry *e = select_exec(r, b, NULL);
    if (!e)
        return -1;
    cocoon_error err = {0};
    int rc = e->tty ? op_answer(r, xreg_resize(e, (unsigned)rows, (unsigned)cols, &err), &err)
                    : e2b_error(r, 412, "failed_precondition", "the process has no terminal (start it with pty)");
    xreg_put(e);
    return rc;
}

int e2b_handle_process(struct req *r, const char *method)
{
    int streaming = strcmp(method, "Start") == 0 || strcmp(method, "Connect") == 0;
    if (strcmp(method, "StreamInput") == 0) {
        e2b_set_style(r, E2B_STYLE_STREAM);
        return stream_input(r);
    }
    e2b_set_style(r, streaming ? E2B_STYLE_STREAM : E2B_STYLE_UNARY);
    json_t *b = e2b_body(r);
    if (!b)
        return -1;
    int rc;
    if (strcmp(method, "Start") == 0)
        rc = start(r, b);
    else if (strcmp(method, "Connect") == 0)
        rc = connect_to(r, b);
    else if (strcmp(method, "List") == 0)
        rc = list(r);
    else if (strcmp(method, "SendInput") == 0)
        rc = send_input(r, b);
    else if (strcmp(method, "SendSignal") == 0)
        rc = send_signal(r, b);
    else if (strcmp(method, "CloseStdin") == 0)
        rc = close_stdin(r, b);
    else if (strcmp(method, "Update") == 0)
        rc = update(r, b);
    else
        rc = e2b_error(r, 404, "unimplemented", "process.Process has no method %s", method);
    json_decref(b);
    return rc;
}
