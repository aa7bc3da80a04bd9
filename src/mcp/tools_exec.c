/* exec (a command run to completion with bounded output, a timeout and cancellation)
 * and run_code (a stateful interpreter context through cocoon_code_run). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/command.h"

#define EXEC_OUTPUT_DEFAULT 65536
#define EXEC_TIMEOUT_DEFAULT_S 300
#define CODE_EVENTS_MAX (4u << 20) /* bytes of run_code events kept */

/* Output kept up to max bytes (the rest only counted), in a buffer that grows with
 * what comes: a large max_output_bytes costs memory only when the output is large. */
struct capture {
    char *data;
    size_t len, size, max;
    uint64_t total;
    int failed; /* the buffer could not grow: what came after is only counted */
};

static void capture_add(struct capture *c, const char *data, size_t len)
{
    c->total += len;
    size_t n = len < c->max - c->len ? len : c->max - c->len;
    if (n && !c->failed && c->len + n > c->size) {
        size_t size = c->size ? c->size : 4096;
        while (size < c->len + n)
            size *= 2;
        size = size < c->max ? size : c->max;
        char *grown = realloc(c->data, size);
        if (!grown)
            c->failed = 1;
        else {
            c->data = grown;
            c->size = size;
        }
    }
    if (n && !c->failed) {
        memcpy(c->data + c->len, data, n);
        c->len += n;
    }
}

static void on_stdout(void *user, const char *data, size_t len)
{
    capture_add(&((struct capture *)user)[0], data, len);
}
static void on_stderr(void *user, const char *data, size_t len)
{
    capture_add(&((struct capture *)user)[1], data, len);
}

static json_t *exec_result(const cocoon_exit_status *st, struct capture *cap)
{
    return tool_ok(json_pack(
        "{s:i, s:i, s:b, s:o, s:o, s:b, s:b, s:I, s:I}", "exit_code", cocoon_exit_status_code(st), "signal", st->signal,
        "timed_out", st->timed_out, "stdout", mcp_text(cap[0].data, cap[0].len), "stderr",
        mcp_text(cap[1].data, cap[1].len), "stdout_truncated", cap[0].total > cap[0].len, "stderr_truncated",
        cap[1].total > cap[1].len, "stdout_bytes", (json_int_t)cap[0].total, "stderr_bytes", (json_int_t)cap[1].total));
}

json_t *tool_exec(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    cocoon_command cmd = {0};
    json_t *fail;
    if (mcp_command(box, args, &cmd, &fail) < 0)
        return fail;
    size_t max = (size_t)arg_int(args, "max_output_bytes", EXEC_OUTPUT_DEFAULT);
    struct capture cap[2] = {{.max = max}, {.max = max}};
    const char *input = arg_str(args, "stdin", NULL);
    cocoon_exec_options o;
    mcp_exec_options(&cmd, &o);
    o.timeout_ms = (unsigned)arg_int(args, "timeout_s", EXEC_TIMEOUT_DEFAULT_S) * 1000u;
    o.stdin_fd = input ? COCOON_STDIN_API : COCOON_STDIN_NONE;
    o.on_stdout = on_stdout;
    o.on_stderr = on_stderr;
    o.user_data = cap;
    cocoon_error err;
    cocoon_exec *ex = NULL;
    cocoon_exit_status st;
    json_t *result;
    if (cocoon_exec_start(box, &o, &ex, &err) < 0) {
        result = tool_cocoon_error("the command did not start", &err);
    } else {
        call_set_exec(c, ex);
        int rc = 0;
        if (input && (cocoon_exec_write(ex, input, strlen(input), &err) < 0 || cocoon_exec_close_stdin(ex, &err) < 0))
            cocoon_exec_signal(ex, SIGKILL, &err);
        rc = cocoon_exec_wait(ex, &st, &err);
        call_set_exec(c, NULL);
        cocoon_exec_free(ex);
        if (call_cancelled(c))
            result = tool_error("the command was cancelled (killed)");
        else if (rc < 0)
            result = tool_cocoon_error("the command failed", &err);
        else if (cap[0].failed || cap[1].failed)
            result = tool_error("out of memory for the command's output (lower max_output_bytes)");
        else
            result = exec_result(&st, cap);
    }
    free(cap[0].data);
    free(cap[1].data);
    cocoon_command_free(&cmd);
    return result;
}

struct code_run {
    struct mcp_call *c;
    json_t *stdout_text, *stderr_text; /* arrays of chunks */
    json_t *results;
    json_t *error;
    json_int_t count;
    size_t bytes;
    int over;
};

static int on_code_event(const char *json, size_t len, void *ctx)
{
    struct code_run *run = ctx;
    if (call_cancelled(run->c))
        return 1;
    run->bytes += len;
    if (run->bytes > CODE_EVENTS_MAX) {
        run->over = 1;
        return 0;
    }
    json_t *e = json_loadb(json, len, 0, NULL);
    const char *type = json_string_value(json_object_get(e, "type"));
    if (!type) {
    } else if (strcmp(type, "stdout") == 0) {
        json_array_append(run->stdout_text, json_object_get(e, "text"));
    } else if (strcmp(type, "stderr") == 0) {
        json_array_append(run->stderr_text, json_object_get(e, "text"));
    } else if (strcmp(type, "result") == 0) {
        json_object_del(e, "type");
        json_array_append(run->results, e);
    } else if (strcmp(type, "error") == 0) {
        json_object_del(e, "type");
        json_decref(run->error);
        run->error = json_incref(e);
    } else if (strcmp(type, "number_of_executions") == 0) {
        run->count = json_integer_value(json_object_get(e, "execution_count"));
    }
    json_decref(e);
    return 0;
}

static json_t *joined(json_t *chunks)
{
    size_t total = 0, i;
    json_t *v;
    json_array_foreach(chunks, i, v) total += json_string_length(v);
    char *buf = malloc(total + 1);
    size_t at = 0;
    json_array_foreach(chunks, i, v)
    {
        if (!buf)
            break;
        memcpy(buf + at, json_string_value(v), json_string_length(v));
        at += json_string_length(v);
    }
    json_t *s = buf ? mcp_text(buf, at) : json_string("");
    free(buf);
    json_decref(chunks);
    return s;
}

json_t *tool_run_code(struct mcp_call *c, json_t *args, cocoon_box *box)
{
    struct code_run run = {.c = c,
                           .stdout_text = json_array(),
                           .stderr_text = json_array(),
                           .results = json_array(),
                           .error = json_null()};
    cocoon_code_options o;
    cocoon_code_options_init(&o);
    o.language = arg_str(args, "language", NULL);
    o.context = arg_str(args, "context", NULL);
    o.timeout_ms = (uint32_t)arg_int(args, "timeout_s", 0) * 1000u;
    o.on_event = on_code_event;
    o.ctx = &run;
    cocoon_error err;
    json_t *result;
    if (cocoon_code_run(box, arg_str(args, "code", ""), &o, &err) < 0) {
        result = call_cancelled(c) ? tool_error("the run was cancelled (interrupted)")
                                   : tool_cocoon_error("the code did not run", &err);
        json_decref(run.stdout_text);
        json_decref(run.stderr_text);
        json_decref(run.results);
        json_decref(run.error);
    } else {
        result = tool_ok(json_pack("{s:o, s:o, s:o, s:o, s:I, s:b}", "stdout", joined(run.stdout_text), "stderr",
                                   joined(run.stderr_text), "results", run.results, "error", run.error,
                                   "execution_count", run.count, "truncated", run.over));
        if (result && !json_is_null(json_object_get(json_object_get(result, "structuredContent"), "error")))
            json_object_set_new(result, "isError", json_true());
    }
    return result;
}
