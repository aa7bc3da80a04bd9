/* A box's main process and its detached execs over the API: the create body's
 * command/cmd/entrypoint/restart, the Box object's "main", GET /boxes/{id}/logs (the
 * main process's output, or the console), and /boxes/{id}/detached[/{id}[/logs]] for
 * commands the box's monitor runs without a client. Logs stream from a worker thread
 * through a pipe; a follower that goes away is noticed on its socket, not at the next
 * log line, so it holds no thread after it left. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boxcfg/mainspec.h"
#include "serve/boxdefaults.h"
#include "serve/execs.h"
#include "serve/http.h"
#include "serve/serve.h"
#include "serve/worker.h"
#include "util/fd.h"
#include "util/util.h"

#define TAIL_MAX 1000000000ull
#define DETACHED_ID_MAX (1 << 30)

/* ---- the create body ---- */

void main_request_free(struct main_request *m)
{
    free(m->command);
    free(m->entrypoint);
    memset(m, 0, sizeof(*m));
}

int main_request_parse(struct req *r, json_t *b, struct main_request *m)
{
    const char **cmd = NULL;
    memset(m, 0, sizeof(*m));
    if (serve_get_strings(r, b, "command", MAIN_ARGV_MAX, &m->command) < 0 ||
        serve_get_strings(r, b, "cmd", MAIN_ARGV_MAX, &cmd) < 0 ||
        serve_get_strings(r, b, "entrypoint", MAIN_ARGV_MAX, &m->entrypoint) < 0 ||
        serve_get_string(r, b, "restart", 64, &m->restart) < 0 || serve_get_bool(r, b, "tty", &m->tty) < 0 ||
        serve_get_bool(r, b, "open_stdin", &m->open_stdin) < 0) {
        free(cmd);
        return -1;
    }
    if (m->command && cmd) {
        free(cmd);
        return serve_error(r, 400, "invalid_argument", "give either \"command\" or \"cmd\" (the same thing), not both");
    }
    if (cmd)
        m->command = cmd;
    /* An empty list asks for nothing (BoxLite's clients send "cmd": []). */
    if (m->command && !m->command[0]) {
        free(m->command);
        m->command = NULL;
    }
    if (m->entrypoint && !m->entrypoint[0]) {
        free(m->entrypoint);
        m->entrypoint = NULL;
    }
    enum main_restart policy;
    unsigned retries;
    char why[256];
    if (m->restart && main_restart_parse(m->restart, &policy, &retries, why, sizeof(why)) < 0)
        return serve_error(r, 400, "invalid_argument", "field \"restart\": %s", why);
    if ((m->tty || m->open_stdin) && !m->command && !m->entrypoint)
        return serve_error(r, 400, "invalid_argument",
                           "fields \"tty\" and \"open_stdin\" are for a main process: give \"command\"");
    if (m->restart && policy != MAIN_RESTART_NO && !m->command && !m->entrypoint)
        return serve_error(r, 400, "invalid_argument",
                           "field \"restart\" needs a main process: give \"command\" (and \"entrypoint\")");
    return 0;
}

int main_request_apply(struct req *r, cocoon_box *box, const struct main_request *m)
{
    if (!m->command && !m->entrypoint)
        return 0;
    size_t ne = 0, nc = 0;
    while (m->entrypoint && m->entrypoint[ne])
        ne++;
    while (m->command && m->command[nc])
        nc++;
    const char **argv = calloc(ne + nc + 1, sizeof(*argv));
    cocoon_box_info *info = malloc(sizeof(*info));
    if (!argv || !info) {
        free(argv);
        free(info);
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    }
    /* docker's rule: an entrypoint replaces the image's and runs with command as its
     * arguments; command alone runs after the image's entrypoint. */
    memcpy(argv, m->entrypoint ? m->entrypoint : m->command, (m->entrypoint ? ne : nc) * sizeof(*argv));
    if (m->entrypoint && nc)
        memcpy(argv + ne, m->command, nc * sizeof(*argv));
    struct box_defaults d = {0};
    cocoon_error err;
    int rc = 0;
    if (cocoon_box_inspect(box, info, &err) < 0 || box_defaults_read(info->dir, &d) < 0) {
        rc = serve_error(r, 500, "internal", "box %s: cannot read its settings", cocoon_box_id(box));
        goto out;
    }
    char **env = box_defaults_env(&d, NULL);
    cocoon_command_options co;
    cocoon_command_options_init(&co);
    co.argv = argv;
    co.entrypoint = m->entrypoint ? "" : NULL;
    co.env = (const char *const *)env;
    co.cwd = d.working_dir;
    co.user = d.user;
    cocoon_command cmd;
    if (!env)
        rc = serve_error(r, 503, "resource_exhausted", "out of memory");
    else if (cocoon_box_command(box, &co, &cmd, &err) < 0)
        rc = serve_cocoon_error(r, &err);
    else {
        if (cocoon_box_set_main(box, &cmd, m->restart, &err) < 0 ||
            ((m->tty || m->open_stdin) && cocoon_box_set_main_stdio(box, m->tty, m->open_stdin, &err) < 0))
            rc = serve_cocoon_error(r, &err);
        cocoon_command_free(&cmd);
    }
    serve_free_env(env);
out:
    box_defaults_free(&d);
    free(info);
    free(argv);
    return rc;
}

/* ---- status objects ---- */

static json_t *time_or_null(long long t)
{
    if (t <= 0)
        return json_null();
    char s[32];
    serve_iso_time(t, s, sizeof(s));
    return json_string(s);
}

/* The fields a main process and a detached exec share. */
static json_t *run_json(const cocoon_main_status *m)
{
    json_t *j = json_pack("{s:s}", "state", m->state[0] ? m->state : "created");
    json_object_set_new(j, "pid", m->pid > 0 ? json_integer(m->pid) : json_null());
    json_object_set_new(j, "exit_code", m->exit_code >= 0 ? json_integer(m->exit_code) : json_null());
    json_object_set_new(j, "signal", m->signal ? json_integer(m->signal) : json_null());
    char esc[sizeof(m->error) * 4];
    util_escape_text(esc, sizeof(esc), m->error, strlen(m->error));
    json_object_set_new(j, "error", m->error[0] ? json_string(esc) : json_null());
    json_object_set_new(j, "started_at", time_or_null(m->started_at));
    json_object_set_new(j, "finished_at", time_or_null(m->finished_at));
    return j;
}

json_t *main_status_json(const cocoon_box_info *info)
{
    int dirfd = open(info->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return json_null();
    struct main_spec spec;
    struct main_state st;
    char why[512];
    if (main_spec_read(dirfd, &spec, why, sizeof(why)) <= 0) {
        close(dirfd);
        return json_null();
    }
    cocoon_main_status m;
    cocoon_main_status_init(&m);
    main_restart_format(spec.restart, spec.max_retries, m.restart, sizeof(m.restart));
    char words[1024], esc[4096];
    util_join_words(words, sizeof(words), spec.argv, MAIN_ARGV_MAX);
    main_spec_free(&spec);
    if (main_state_read(dirfd, &st, why, sizeof(why)) > 0) {
        main_state_settle(&st, info->running);
        snprintf(m.state, sizeof(m.state), "%s", st.state);
        snprintf(m.error, sizeof(m.error), "%s", st.error);
        m.pid = st.pid;
        m.exit_code = st.exit_code;
        m.signal = st.signal;
        m.started_at = st.started_at;
        m.finished_at = st.finished_at;
        m.next_restart_ms = st.next_restart_ms;
        m.restarts = st.restarts;
    }
    close(dirfd);
    json_t *j = run_json(&m);
    util_escape_text(esc, sizeof(esc), words, strlen(words));
    json_object_set_new(j, "command", json_string(esc));
    json_object_set_new(j, "restart", json_string(m.restart));
    json_object_set_new(j, "restarts", json_integer(m.restarts));
    json_object_set_new(j, "next_restart_at", time_or_null(m.next_restart_ms > 0 ? m.next_restart_ms / 1000 : 0));
    return j;
}

/* ---- log streams ---- */

enum log_kind { LOG_MAIN, LOG_CONSOLE, LOG_DETACHED };

struct log_job {
    char box[ROUTE_ID_MAX];
    enum log_kind kind;
    int exec_id, follow, ndjson, timestamps;
    int streams; /* 1 stdout, 2 stderr, 3 both */
    long long tail, since_us;
    int fd; /* the worker's pipe (set in the worker) */
};

/* The length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, at most U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                : 0;
    if (!len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) || (p[0] == 0xf0 && p[1] < 0x90) ||
        (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return len;
}

/* text as UTF-8 for JSON: each byte that starts no valid sequence (and NUL) becomes
 * U+FFFD. malloc'd, NULL when out of memory. */
static char *utf8_clean(const char *text, size_t len)
{
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t l = text[i] ? utf8_len((const unsigned char *)text + i, len - i) : 0;
        if (l) {
            memcpy(out + o, text + i, l);
            o += l;
            i += l;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

/* One line as the client asked for it: text (with its time on request) or an NDJSON
 * record {"time","stream","text"}; bytes that are not UTF-8 become U+FFFD there. */
static int put_line(void *arg, int is_stderr, const char *when, const char *text, size_t len)
{
    struct log_job *job = arg;
    if (!(job->streams & (is_stderr ? 2 : 1)))
        return 0;
    if (!job->ndjson) {
        if (job->timestamps && when[0] &&
            (util_write_all(job->fd, when, strlen(when)) < 0 || util_write_all(job->fd, " ", 1) < 0))
            return 1;
        return util_write_all(job->fd, text, len) < 0 || util_write_all(job->fd, "\n", 1) < 0;
    }
    char *clean = utf8_clean(text, len);
    if (!clean)
        return 1;
    json_t *rec = json_pack("{s:s?,s:s,s:s}", "time", when[0] ? when : NULL, "stream", is_stderr ? "stderr" : "stdout",
                            "text", clean);
    free(clean);
    char *s = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    int rc = !s || util_write_all(job->fd, s, strlen(s)) < 0 || util_write_all(job->fd, "\n", 1) < 0;
    free(s);
    return rc;
}

/* Runs in a worker thread: copies the log into the pipe the response reads, until its
 * end, the box's stop (follow) or the reader's leaving (the pipe breaks). */
static void log_copy(void *arg, int fd)
{
    struct log_job *job = arg;
    job->fd = fd;
    cocoon_runtime *rt;
    cocoon_box *box;
    cocoon_error err;
    if (serve_runtime_open(&rt, &err) < 0)
        return;
    if (cocoon_box_open(rt, job->box, &box, &err) == 0) {
        cocoon_logs_options o;
        cocoon_logs_options_init(&o);
        o.follow = job->follow;
        o.tail = job->tail;
        o.since_us = job->since_us;
        o.timestamps = job->timestamps;
        o.on_line = put_line;
        o.user_data = job;
        if (job->kind == LOG_CONSOLE)
            cocoon_box_logs(box, fd, job->follow, &err);
        else if (job->kind == LOG_DETACHED)
            cocoon_box_exec_logs(box, job->exec_id, fd, fd, &o, &err);
        else
            cocoon_box_main_logs(box, fd, fd, &o, &err);
        cocoon_box_close(box);
    }
    cocoon_runtime_close(rt);
}

struct log_stream {
    int pipe_fd, client_fd;
};

/* Waits for log bytes or for the client to go: a follower of a quiet log must not hold
 * this connection's thread (and the worker) after it left. */
static long log_produce(void *ctx, char *buf, size_t cap)
{
    struct log_stream *s = ctx;
    struct pollfd p[2] = {{.fd = s->pipe_fd, .events = POLLIN}, {.fd = s->client_fd, .events = POLLRDHUP}};
    for (;;) {
        int n = poll(p, s->client_fd >= 0 ? 2 : 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (p[0].revents) {
            ssize_t got = read(s->pipe_fd, buf, cap);
            if (got >= 0)
                return got;
            if (errno != EINTR)
                return -1;
            continue;
        }
        if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
            return -1;
    }
}

static void log_done(void *ctx)
{
    struct log_stream *s = ctx;
    close(s->pipe_fd); /* the worker's next write or follow check sees it and ends */
    free(s);
}

/* The query of a logs route into job; 0, or -1 after answering 400. */
static int log_query(struct req *r, struct log_job *job, int *tuned)
{
    int follow = serve_query_bool(r, "follow"), ts = serve_query_bool(r, "timestamps");
    const char *tail = serve_query(r, "tail"), *since = serve_query(r, "since"), *stream = serve_query(r, "stream"),
               *format = serve_query(r, "format");
    if (follow < 0 || ts < 0)
        return serve_error(r, 400, "invalid_argument", "follow and timestamps must be true or false");
    job->follow = follow;
    job->timestamps = ts;
    job->tail = -1;
    job->streams = 3;
    *tuned = ts || tail || since || stream || format;
    if (tail && strcmp(tail, "all") != 0) {
        uint64_t n;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(tail, &end, 10);
        if (tail[0] < '0' || tail[0] > '9' || *end || errno || v > TAIL_MAX)
            return serve_error(r, 400, "invalid_argument", "tail must be a number of lines from 0 to %llu, or all",
                               TAIL_MAX);
        n = v;
        job->tail = (long long)n;
    }
    if (since) {
        cocoon_error err;
        if (cocoon_parse_since(since, &job->since_us, &err) < 0)
            return serve_error(r, 400, "invalid_argument", "%s", err.message);
        if (!job->since_us)
            job->since_us = 1;
    }
    if (stream && strcmp(stream, "all") != 0) {
        if (strcmp(stream, "stdout") == 0)
            job->streams = 1;
        else if (strcmp(stream, "stderr") == 0)
            job->streams = 2;
        else
            return serve_error(r, 400, "invalid_argument", "stream must be stdout, stderr or all");
    }
    if (format && strcmp(format, "ndjson") == 0)
        job->ndjson = 1;
    else if (format && strcmp(format, "text") != 0)
        return serve_error(r, 400, "invalid_argument", "format must be text or ndjson");
    return 0;
}

static int stream_logs(struct req *r, struct log_job *job)
{
    struct log_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        free(job);
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    }
    int ndjson = job->ndjson;
    int fd = worker_pipe(log_copy, job, free);
    if (fd < 0) {
        free(s);
        return serve_error(r, 503, "resource_exhausted", "cannot start the log reader: %s", strerror(errno));
    }
    s->pipe_fd = fd;
    s->client_fd = serve_client_fd(r);
    return serve_stream(r, 200, ndjson ? "application/x-ndjson" : "text/plain; charset=utf-8", log_produce, s,
                        log_done);
}

/* The common part of the logs routes: the query into a job for the route's box (and
 * exec_id > 0: its detached exec), then tune(r, box, job) decides what to stream and
 * may answer instead (-1). */
static int log_route(struct req *r, int exec_id, int (*tune)(struct req *, cocoon_box *, struct log_job *, int))
{
    struct log_job *job = calloc(1, sizeof(*job));
    if (!job)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    int tuned = 0;
    cocoon_runtime *rt;
    cocoon_box *box;
    if (log_query(r, job, &tuned) < 0 || serve_open_runtime_box(r, &rt, &box) < 0) {
        free(job);
        return -1;
    }
    snprintf(job->box, sizeof(job->box), "%s", cocoon_box_id(box));
    job->exec_id = exec_id;
    int rc = tune(r, box, job, tuned);
    serve_close_runtime_box(rt, box);
    if (rc < 0) {
        free(job);
        return -1;
    }
    return stream_logs(r, job);
}

static int tune_main(struct req *r, cocoon_box *box, struct log_job *job, int tuned)
{
    int console = serve_query_bool(r, "console");
    if (console < 0)
        return serve_error(r, 400, "invalid_argument", "console must be true or false");
    cocoon_main_status m;
    cocoon_main_status_init(&m);
    cocoon_error err;
    if (cocoon_box_main_status(box, &m, &err) < 0)
        return serve_cocoon_error(r, &err);
    /* The console is what a box without a main process shows (as `cocoon logs` does). */
    job->kind = console || !m.present ? LOG_CONSOLE : LOG_MAIN;
    if (job->kind == LOG_CONSOLE && tuned) {
        if (console)
            return serve_error(r, 400, "invalid_argument",
                               "tail, since, timestamps, stream and format apply to the main process's output, "
                               "not to the console");
        return serve_error(r, 409, "invalid_state",
                           "box %s has no main process: tail, since, timestamps, stream and format apply to a main "
                           "process's output (create the box with \"command\"; ?console=true is its console)",
                           r->route.box);
    }
    return 0;
}

int handle_box_logs(struct req *r) { return log_route(r, 0, tune_main); }

/* ---- detached execs ---- */

/* The route's detached exec id; -1 after answering 404. */
static int detached_id(struct req *r)
{
    char *end;
    errno = 0;
    long v = strtol(r->route.exec, &end, 10);
    if (r->route.exec[0] < '1' || r->route.exec[0] > '9' || *end || errno || v > DETACHED_ID_MAX)
        return serve_error(r, 404, "not_found", "box %s has no detached exec %s (their ids are numbers)", r->route.box,
                           r->route.exec);
    return (int)v;
}

static json_t *detached_json(cocoon_box *box, int id, const cocoon_main_status *m)
{
    json_t *j = run_json(m);
    json_object_set_new(j, "id", json_integer(id));
    json_object_set_new(j, "box_id", json_string(cocoon_box_id(box)));
    return j;
}

/* Answers 200/201 with the exec's status, or its error. */
static int answer_detached(struct req *r, cocoon_box *box, int id, unsigned status)
{
    cocoon_main_status m;
    cocoon_main_status_init(&m);
    cocoon_error err;
    if (cocoon_box_exec_status(box, id, &m, &err) < 0)
        return serve_cocoon_error(r, &err);
    return serve_json(r, status, detached_json(box, id, &m));
}

int handle_detached_new(struct req *r)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    struct exec_request x;
    int rc = -1;
    cocoon_error err;
    if (exec_request_parse(r, box, &x) < 0)
        goto out;
    static const char *const not_here[] = {"tty", "cols", "rows", "detach", "stdin", "stdin_base64", "max_output_bytes",
                                           NULL};
    for (size_t i = 0; not_here[i]; i++)
        if (json_object_get(x.body, not_here[i])) {
            rc = serve_error(r, 400, "invalid_argument",
                             "field \"%s\" does not apply to a detached exec (no terminal, no stdin; its output is "
                             "kept in the box's logs)",
                             not_here[i]);
            goto out;
        }
    if (!cocoon_box_is_running(box) && cocoon_box_start_flags(box, COCOON_START_DETACHED, &err) < 0) {
        rc = serve_cocoon_error(r, &err);
        goto out;
    }
    cocoon_exec_options o;
    exec_request_options(&x, &o);
    int id = 0;
    if (cocoon_exec_detached(box, &o, &id, &err) < 0) {
        rc = err.code == COCOON_E_EXEC ? serve_error(r, 422, "invalid_argument", "%s", err.message)
                                       : serve_cocoon_error(r, &err);
        goto out;
    }
    serve_count(&serve_counters.execs_started);
    snprintf(r->location, sizeof(r->location), "/v1/boxes/%s/detached/%d", cocoon_box_id(box), id);
    rc = answer_detached(r, box, id, 201);
out:
    exec_request_free(&x);
    serve_close_runtime_box(rt, box);
    return rc;
}

int handle_detached(struct req *r)
{
    int id = detached_id(r);
    if (id < 0)
        return -1;
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    int rc;
    cocoon_error err;
    cocoon_main_status m;
    cocoon_main_status_init(&m);
    if (cocoon_box_exec_status(box, id, &m, &err) < 0) {
        rc = serve_cocoon_error(r, &err);
    } else if (r->method == M_GET) {
        rc = serve_json(r, 200, detached_json(box, id, &m));
    } else {
        const char *q = serve_query(r, "signal");
        char *end = NULL;
        long sig = q ? strtol(q, &end, 10) : SIGKILL;
        if (q && (!*q || *end || sig < 1 || sig > 64))
            rc = serve_error(r, 400, "invalid_argument", "signal must be a number from 1 to 64");
        else if (strcmp(m.state, "running") != 0)
            rc = serve_error(r, 409, "invalid_state", "detached exec %d of box %s is not running (%s)", id,
                             cocoon_box_id(box), m.state);
        else if (cocoon_box_signal_exec(box, id, (int)sig, NULL, &err) < 0)
            rc = err.code == COCOON_E_NOT_FOUND
                     ? serve_error(r, 409, "invalid_state", "detached exec %d ended meanwhile", id)
                     : serve_cocoon_error(r, &err);
        else
            rc = serve_empty(r, 204);
    }
    serve_close_runtime_box(rt, box);
    return rc;
}

static int tune_detached(struct req *r, cocoon_box *box, struct log_job *job, int tuned)
{
    (void)tuned;
    cocoon_main_status m;
    cocoon_main_status_init(&m);
    cocoon_error err;
    if (cocoon_box_exec_status(box, job->exec_id, &m, &err) < 0)
        return serve_cocoon_error(r, &err);
    job->kind = LOG_DETACHED;
    return 0;
}

int handle_detached_logs(struct req *r)
{
    int id = detached_id(r);
    return id < 0 ? -1 : log_route(r, id, tune_detached);
}
