/* The code interpreter's public calls (cocoon.h, "code interpreter"). A run is one exec of
 * the guest agent's relay mode (/proc/1/exe code-relay SOCKET) that carries the request
 * to the context's long-lived process and its NDJSON events back; each line is checked
 * (code_events.c) before on_event sees it. A context that is not there is started by
 * the guest's manager (code_runners.c) and the run tried once more. */
#include "lib/code.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/code_events.h"
#include "util/util.h"

/* How long past its own timeout a run may take to end (the context interrupts it on
 * time; this only catches a context that does not) before its relay is killed. */
#define CODE_TIMEOUT_GRACE_MS 15000u
#define RELAY_STDERR_MAX 2048u

void cocoon_code_options_init(cocoon_code_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

/* What the relay's stdout has been turned into so far. */
struct run_state {
    const cocoon_code_options *opts;
    cocoon_exec *ex;
    char *line;
    size_t len, cap;
    int ended;      /* number_of_executions seen */
    int stopped;    /* on_event asked to interrupt */
    int broken;     /* the guest broke the protocol: why says how */
    int got_output; /* any byte came: the context was there */
    char why[256];
    char errs[RELAY_STDERR_MAX];
    size_t errs_len;
};

static void stop_relay(struct run_state *s)
{
    cocoon_error ignored = {0};
    /* closing the relay closes the context's connection, which interrupts the run */
    cocoon_exec_signal(s->ex, SIGKILL, &ignored);
}

static void broken(struct run_state *s, const char *why)
{
    if (!s->broken)
        snprintf(s->why, sizeof(s->why), "%s", why);
    s->broken = 1;
    stop_relay(s);
}

static void take_line(struct run_state *s)
{
    struct code_event ev;
    char why[200];
    if (s->ended) {
        broken(s, "an event after number_of_executions");
        return;
    }
    if (code_event_check(s->line, s->len, &ev, why, sizeof(why)) < 0) {
        broken(s, why);
        return;
    }
    if (ev.kind == CODE_EV_END)
        s->ended = 1;
    if (!s->stopped && s->opts->on_event && s->opts->on_event(ev.json, ev.len, s->opts->ctx) != 0) {
        s->stopped = 1;
        if (!s->ended)
            stop_relay(s);
    }
    free(ev.json);
}

static void on_stdout(void *user, const char *data, size_t len)
{
    struct run_state *s = user;
    s->got_output = 1;
    while (len && !s->broken) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (s->len + take > CODE_EVENT_LINE_MAX) {
            char why[96];
            snprintf(why, sizeof(why), "an event line longer than %u bytes", CODE_EVENT_LINE_MAX);
            broken(s, why);
            return;
        }
        if (s->len + take + 1 > s->cap) {
            size_t cap = s->cap ? s->cap : 4096;
            while (cap < s->len + take + 1)
                cap *= 2;
            char *p = realloc(s->line, cap);
            if (!p) {
                broken(s, "out of memory for an event line");
                return;
            }
            s->line = p;
            s->cap = cap;
        }
        memcpy(s->line + s->len, data, take);
        s->len += take;
        data += take;
        len -= take;
        if (nl) {
            take_line(s);
            s->len = 0;
            data++;
            len--;
        }
    }
}

static void on_stderr(void *user, const char *data, size_t len)
{
    struct run_state *s = user;
    size_t room = sizeof(s->errs) - 1 - s->errs_len;
    if (len > room)
        len = room;
    memcpy(s->errs + s->errs_len, data, len);
    s->errs_len += len;
}

static char *request_json(const char *code, const cocoon_code_options *o, cocoon_error *err)
{
    json_t *env = json_object();
    for (size_t i = 0; o->env && o->env[i]; i++) {
        const char *eq = strchr(o->env[i], '=');
        if (!eq || eq == o->env[i]) {
            json_decref(env);
            lib_err(err, COCOON_E_INVALID, "environment entry \"%.100s\" is not KEY=VALUE", o->env[i]);
            return NULL;
        }
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - o->env[i]), o->env[i]);
        json_object_set_new(env, key, json_string(eq + 1));
    }
    json_t *req = json_pack("{s:s, s:o, s:I}", "code", code, "env", env, "timeout_ms", (json_int_t)o->timeout_ms);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!text)
        lib_err(err, COCOON_E_INVALID, "the code or an environment entry is not valid UTF-8");
    return text;
}

/* One run through the relay. 1: no context listens there (start it, try again). */
static int relay_run(cocoon_box *box, const char *ctx_id, const char *req, const cocoon_code_options *o,
                     cocoon_error *err)
{
    char sock[160];
    snprintf(sock, sizeof(sock), "%s/%s/sock", CODE_CTX_DIR, ctx_id);
    const char *argv[] = {"/proc/1/exe", "code-relay", sock, NULL};
    struct run_state s = {.opts = o};
    cocoon_exec_options eo;
    cocoon_exec_options_init(&eo);
    eo.argv = argv;
    eo.stdin_fd = COCOON_STDIN_API;
    eo.on_stdout = on_stdout;
    eo.on_stderr = on_stderr;
    eo.user_data = &s;
    if (o->timeout_ms)
        eo.timeout_ms =
            o->timeout_ms > UINT32_MAX - CODE_TIMEOUT_GRACE_MS ? UINT32_MAX : o->timeout_ms + CODE_TIMEOUT_GRACE_MS;
    if (cocoon_exec_start(box, &eo, &s.ex, err) < 0)
        return -1;
    cocoon_error ignored = {0};
    /* a relay that found no context exits without reading: its stdin may be gone */
    if (cocoon_exec_write(s.ex, req, strlen(req), &ignored) == 0)
        cocoon_exec_write(s.ex, "\n", 1, &ignored);
    cocoon_exec_close_stdin(s.ex, &ignored);
    cocoon_exit_status st;
    int rc = cocoon_exec_wait(s.ex, &st, err);
    cocoon_exec_free(s.ex);
    free(s.line);
    if (rc < 0)
        return -1;
    char msg[2 * RELAY_STDERR_MAX + 8];
    util_escape_text(msg, sizeof(msg), s.errs, s.errs_len);
    if (s.broken)
        return lib_err(err, COCOON_E_PROTOCOL, "the box's code context broke the protocol: %s", s.why);
    if (s.ended || s.stopped)
        return 0;
    if (!s.got_output && cocoon_exit_status_code(&st) == CODE_RELAY_NO_CONTEXT)
        return 1;
    if (s.len)
        return lib_err(err, COCOON_E_PROTOCOL,
                       "the box's code context broke the protocol: an event line without its end");
    if (st.timed_out)
        return lib_err(err, COCOON_E_IO, "the code context did not end the run within its timeout + %u s (restart it)",
                       CODE_TIMEOUT_GRACE_MS / 1000);
    if (cocoon_exit_status_code(&st) == 126 || cocoon_exit_status_code(&st) == 127)
        return lib_err(err, COCOON_E_UNSUPPORTED, "the box's agent cannot relay code runs (status %d): %s",
                       cocoon_exit_status_code(&st), msg);
    return lib_err(err, COCOON_E_IO,
                   "the code context's interpreter ended during the run; its state is lost and the next run starts "
                   "it again%s%s",
                   s.errs_len ? ": " : "", msg);
}

int cocoon_code_run(cocoon_box *box, const char *code, const cocoon_code_options *opts, cocoon_error *err)
{
    cocoon_code_options o;
    cocoon_code_options_init(&o);
    if (opts && lib_options_copy(&o, sizeof(o), opts, "cocoon_code_options", err) < 0)
        return -1;
    if (!code)
        return lib_err(err, COCOON_E_INVALID, "no code given");
    const char *language = o.language ? o.language : "python";
    if (code_check_language(language, err) < 0)
        return -1;
    const char *ctx_id = o.context ? o.context : language;
    if (code_check_id(ctx_id, err) < 0)
        return -1;
    char *req = request_json(code, &o, err);
    if (!req)
        return -1;
    int rc = relay_run(box, ctx_id, req, &o, err);
    if (rc == 1) {
        const char *args[] = {"ensure", ctx_id, NULL};
        rc = code_manage(box, args, NULL, err);
        if (rc == 0) {
            rc = relay_run(box, ctx_id, req, &o, err);
            if (rc == 1)
                rc = lib_err(err, COCOON_E_IO, "the code context %s was started but does not answer", ctx_id);
        }
    }
    free(req);
    if (rc == 0)
        lib_err_clear(err);
    return rc;
}

/* A context's description from the guest: {"id","language","cwd"}, strings, re-encoded. */
static json_t *checked_context(json_t *c, cocoon_error *err)
{
    const char *id = json_string_value(json_object_get(c, "id"));
    const char *lang = json_string_value(json_object_get(c, "language"));
    const char *cwd = json_string_value(json_object_get(c, "cwd"));
    cocoon_error ignored = {0};
    if (!json_is_object(c) || !id || !lang || !cwd || code_check_id(id, &ignored) < 0 ||
        code_check_language(lang, &ignored) < 0 || strlen(cwd) > 4096) {
        lib_err(err, COCOON_E_PROTOCOL, "the box's code-context manager answered a malformed context");
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s}", "id", id, "language", lang, "cwd", cwd);
}

static int answer(const char *text, int array, char **json_out, cocoon_error *err)
{
    json_t *in = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    json_t *out = NULL;
    if (in && array && json_is_array(in)) {
        out = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(in, i, c)
        {
            json_t *good = checked_context(c, err);
            if (!good) {
                json_decref(out);
                json_decref(in);
                return -1;
            }
            json_array_append_new(out, good);
        }
    } else if (in && !array) {
        out = checked_context(in, err);
        if (!out) {
            json_decref(in);
            return -1;
        }
    }
    json_decref(in);
    if (!out)
        return lib_err(err, COCOON_E_PROTOCOL, "the box's code-context manager answered something that is not JSON");
    *json_out = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(out);
    return *json_out ? 0 : lib_err(err, COCOON_E_NOMEM, "out of memory");
}

int cocoon_code_context_create(cocoon_box *box, const char *language, const char *cwd, char **json_out,
                               cocoon_error *err)
{
    if (!json_out)
        return lib_err(err, COCOON_E_INVALID, "json_out is NULL");
    *json_out = NULL;
    if (!language)
        language = "python";
    if (code_check_language(language, err) < 0)
        return -1;
    if (cwd && (cwd[0] != '/' || strlen(cwd) > 4096))
        return lib_err(err, COCOON_E_INVALID, "a context's working directory is an absolute path in the box");
    const char *args[] = {"create", language, cwd ? cwd : "/", NULL};
    char *text = NULL;
    if (code_manage(box, args, &text, err) < 0)
        return -1;
    int rc = answer(text, 0, json_out, err);
    free(text);
    return rc;
}

int cocoon_code_context_list(cocoon_box *box, char **json_out, cocoon_error *err)
{
    if (!json_out)
        return lib_err(err, COCOON_E_INVALID, "json_out is NULL");
    *json_out = NULL;
    const char *args[] = {"list", NULL};
    char *text = NULL;
    if (code_manage(box, args, &text, err) < 0)
        return -1;
    int rc = answer(text, 1, json_out, err);
    free(text);
    return rc;
}

static int context_op(cocoon_box *box, const char *op, const char *id, cocoon_error *err)
{
    if (code_check_id(id, err) < 0)
        return -1;
    const char *args[] = {op, id, NULL};
    return code_manage(box, args, NULL, err);
}

int cocoon_code_context_restart(cocoon_box *box, const char *id, cocoon_error *err)
{
    return context_op(box, "restart", id, err);
}

int cocoon_code_context_remove(cocoon_box *box, const char *id, cocoon_error *err)
{
    return context_op(box, "remove", id, err);
}
