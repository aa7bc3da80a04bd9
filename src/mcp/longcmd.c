/* Long-running commands of a session (exec_start → id, exec_output from a cursor,
 * exec_write_stdin, exec_signal): each has a thread waiting for it that keeps the last
 * MCP_LONGCMD_BUFFER bytes of each stream; cursors are byte offsets from the start, so
 * a reader that falls behind learns how much was dropped. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcp/command.h"
#include "util/util.h"

struct stream_buf {
    char *data;     /* ring of MCP_LONGCMD_BUFFER bytes */
    uint64_t total; /* bytes ever written: the offset after the newest */
};

struct longcmd {
    int id;
    struct mcp_session *s;
    cocoon_runtime *rt;
    cocoon_box *box;
    cocoon_exec *ex;
    cocoon_command cmd;
    pthread_t waiter;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct stream_buf out[2];
    int users; /* tool calls using it now (under s->lock): never evicted then */
    int done;
    cocoon_exit_status st;
    char error[COCOON_ERROR_MAX];
};

static void buf_add(struct stream_buf *b, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        b->data[(b->total + i) % MCP_LONGCMD_BUFFER] = data[i];
    b->total += len;
}

static void on_output(struct longcmd *lc, int which, const char *data, size_t len)
{
    pthread_mutex_lock(&lc->lock);
    buf_add(&lc->out[which], data, len);
    pthread_cond_broadcast(&lc->changed);
    pthread_mutex_unlock(&lc->lock);
}
static void on_stdout(void *u, const char *d, size_t n) { on_output(u, 0, d, n); }
static void on_stderr(void *u, const char *d, size_t n) { on_output(u, 1, d, n); }

static void *wait_thread(void *p)
{
    struct longcmd *lc = p;
    cocoon_exit_status st = {0};
    cocoon_error err = {0};
    int rc = cocoon_exec_wait(lc->ex, &st, &err);
    pthread_mutex_lock(&lc->lock);
    lc->st = st;
    if (rc < 0)
        snprintf(lc->error, sizeof(lc->error), "%s", err.message);
    lc->done = 1;
    pthread_cond_broadcast(&lc->changed);
    pthread_mutex_unlock(&lc->lock);
    return NULL;
}

/* What a command holds besides its exec and thread (a command that never started has
 * only this). */
static void longcmd_discard(struct longcmd *lc)
{
    cocoon_command_free(&lc->cmd);
    mcp_close_box(lc->rt, lc->box);
    free(lc->out[0].data);
    free(lc->out[1].data);
    pthread_mutex_destroy(&lc->lock);
    pthread_cond_destroy(&lc->changed);
    free(lc);
}

static void longcmd_free(struct longcmd *lc)
{
    cocoon_error err;
    pthread_mutex_lock(&lc->lock);
    int done = lc->done;
    pthread_mutex_unlock(&lc->lock);
    if (!done)
        cocoon_exec_signal(lc->ex, SIGKILL, &err);
    pthread_join(lc->waiter, NULL);
    cocoon_exec_free(lc->ex);
    longcmd_discard(lc);
}

/* A slot for a new command (under s->lock): a free one, else the oldest finished one,
 * whose command is handed back in *evicted to be freed outside the lock. -1 when
 * MCP_LONGCMD_RUNNING_MAX run or no slot can be made. */
static int take_slot(struct mcp_session *s, struct longcmd **evicted)
{
    int running = 0, free_slot = -1, oldest_done = -1;
    for (int i = 0; i < MCP_LONGCMD_KEPT_MAX; i++) {
        struct longcmd *lc = s->cmds[i];
        if (!lc) {
            if (free_slot < 0)
                free_slot = i;
            continue;
        }
        pthread_mutex_lock(&lc->lock);
        int done = lc->done;
        pthread_mutex_unlock(&lc->lock);
        if (!done)
            running++;
        else if (lc->users == 0 && lc->ex && (oldest_done < 0 || lc->id < s->cmds[oldest_done]->id))
            oldest_done = i;
    }
    if (running >= MCP_LONGCMD_RUNNING_MAX)
        return -1;
    if (free_slot >= 0)
        return free_slot;
    if (oldest_done < 0)
        return -1;
    *evicted = s->cmds[oldest_done];
    s->cmds[oldest_done] = NULL;
    return oldest_done;
}

json_t *tool_exec_start(struct mcp_call *c, json_t *args)
{
    struct mcp_session *s = c->s;
    struct longcmd *lc = calloc(1, sizeof(*lc));
    if (!lc || !(lc->out[0].data = malloc(MCP_LONGCMD_BUFFER)) || !(lc->out[1].data = malloc(MCP_LONGCMD_BUFFER))) {
        if (lc)
            free(lc->out[0].data);
        free(lc);
        return tool_error("out of memory");
    }
    pthread_mutex_init(&lc->lock, NULL);
    pthread_cond_init(&lc->changed, NULL);
    lc->s = s;
    json_t *fail = NULL;
    cocoon_error err;
    if (mcp_open_box(c, args, &lc->rt, &lc->box, &fail) < 0 || mcp_command(lc->box, args, &lc->cmd, &fail) < 0)
        goto failed;
    cocoon_exec_options o;
    mcp_exec_options(&lc->cmd, &o);
    o.timeout_ms = (unsigned)arg_int(args, "timeout_s", 0) * 1000u;
    o.stdin_fd = COCOON_STDIN_API;
    o.on_stdout = on_stdout;
    o.on_stderr = on_stderr;
    o.user_data = lc;

    struct longcmd *evicted = NULL;
    pthread_mutex_lock(&s->lock);
    int slot = s->ending ? -1 : take_slot(s, &evicted);
    if (slot >= 0) {
        s->cmds[slot] = lc; /* reserved; filled in below */
        lc->id = s->next_cmd_id++;
    }
    pthread_mutex_unlock(&s->lock);
    if (evicted)
        longcmd_free(evicted);
    if (slot < 0) {
        fail = tool_error("%d commands of this session are running (the bound): wait for one or stop it with "
                          "exec_signal",
                          MCP_LONGCMD_RUNNING_MAX);
        goto failed;
    }
    cocoon_exec *ex = NULL;
    if (cocoon_exec_start(lc->box, &o, &ex, &err) == 0) {
        pthread_mutex_lock(&s->lock);
        lc->ex = ex; /* find() sees the command from now on */
        pthread_mutex_unlock(&s->lock);
    }
    if (!ex || pthread_create(&lc->waiter, NULL, wait_thread, lc) != 0) {
        if (ex) {
            cocoon_exec_signal(ex, SIGKILL, &err);
            cocoon_exit_status st;
            cocoon_exec_wait(ex, &st, &err);
            cocoon_exec_free(ex);
            snprintf(err.message, sizeof(err.message), "cannot make a thread for it");
        }
        pthread_mutex_lock(&s->lock);
        s->cmds[slot] = NULL;
        pthread_mutex_unlock(&s->lock);
        fail = tool_cocoon_error("the command did not start", &err);
        goto failed;
    }
    return tool_ok(json_pack("{s:i, s:s}", "id", lc->id, "box", cocoon_box_id(lc->box)));
failed:
    longcmd_discard(lc);
    return fail;
}

/* The command with that id, or NULL with *fail. The session keeps it alive: commands
 * are freed only by eviction at exec_start (finished ones) or at the session's end. */
static struct longcmd *find(struct mcp_call *c, json_t *args, json_t **fail)
{
    int id = (int)arg_int(args, "id", 0);
    struct longcmd *found = NULL;
    pthread_mutex_lock(&c->s->lock);
    for (int i = 0; i < MCP_LONGCMD_KEPT_MAX; i++)
        if (c->s->cmds[i] && c->s->cmds[i]->id == id && c->s->cmds[i]->ex) {
            found = c->s->cmds[i];
            found->users++;
        }
    pthread_mutex_unlock(&c->s->lock);
    if (!found)
        *fail = tool_error("no command with id %d in this session (exec_start returns ids; finished commands are "
                           "forgotten after %d newer ones)",
                           id, MCP_LONGCMD_KEPT_MAX);
    return found;
}

static json_t *release(struct mcp_call *c, struct longcmd *lc, json_t *result)
{
    pthread_mutex_lock(&c->s->lock);
    lc->users--;
    pthread_mutex_unlock(&c->s->lock);
    return result;
}

/* Bytes of b from *cursor on (at most max), moving *cursor; *dropped: bytes lost to the ring. */
static json_t *take(struct stream_buf *b, uint64_t *cursor, size_t max, uint64_t *dropped, char *tmp)
{
    uint64_t oldest = b->total > MCP_LONGCMD_BUFFER ? b->total - MCP_LONGCMD_BUFFER : 0;
    *dropped = 0;
    if (*cursor > b->total)
        *cursor = b->total;
    if (*cursor < oldest) {
        *dropped = oldest - *cursor;
        *cursor = oldest;
    }
    size_t n = (size_t)(b->total - *cursor) < max ? (size_t)(b->total - *cursor) : max;
    for (size_t i = 0; i < n; i++)
        tmp[i] = b->data[(*cursor + i) % MCP_LONGCMD_BUFFER];
    *cursor += n;
    return mcp_text(tmp, n);
}

json_t *tool_exec_output(struct mcp_call *c, json_t *args)
{
    json_t *fail;
    struct longcmd *lc = find(c, args, &fail);
    if (!lc)
        return fail;
    uint64_t cur[2] = {(uint64_t)arg_int(args, "cursor", 0), (uint64_t)arg_int(args, "stderr_cursor", 0)};
    size_t max = (size_t)arg_int(args, "max_bytes", 65536);
    char *tmp = malloc(max);
    if (!tmp)
        return release(c, lc, tool_error("out of memory"));
    long long wait_ms = arg_int(args, "wait_s", 0) * 1000;
    uint64_t deadline = util_now_ns(CLOCK_MONOTONIC) + (uint64_t)wait_ms * 1000000u;
    pthread_mutex_lock(&lc->lock);
    while (!lc->done && lc->out[0].total <= cur[0] && lc->out[1].total <= cur[1] && !call_cancelled(c)) {
        uint64_t now = util_now_ns(CLOCK_MONOTONIC);
        if (now >= deadline)
            break;
        /* Short waits, so a cancel is seen within 200 ms. */
        uint64_t step = deadline - now < 200000000u ? deadline - now : 200000000u;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + step;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&lc->changed, &lc->lock, &ts);
    }
    uint64_t dropped[2];
    json_t *out = take(&lc->out[0], &cur[0], max, &dropped[0], tmp);
    json_t *err = take(&lc->out[1], &cur[1], max, &dropped[1], tmp);
    int done = lc->done && cur[0] == lc->out[0].total && cur[1] == lc->out[1].total;
    json_t *o = json_pack("{s:i, s:o, s:o, s:I, s:I, s:I, s:I, s:b}", "id", lc->id, "stdout", out, "stderr", err,
                          "cursor", (json_int_t)cur[0], "stderr_cursor", (json_int_t)cur[1], "dropped_stdout",
                          (json_int_t)dropped[0], "dropped_stderr", (json_int_t)dropped[1], "running", !lc->done);
    if (o && done) {
        json_object_set_new(o, "exit_code", json_integer(cocoon_exit_status_code(&lc->st)));
        json_object_set_new(o, "signal", json_integer(lc->st.signal));
        json_object_set_new(o, "timed_out", json_boolean(lc->st.timed_out));
        if (lc->error[0])
            json_object_set_new(o, "error", json_string(lc->error));
    }
    pthread_mutex_unlock(&lc->lock);
    free(tmp);
    return release(c, lc, tool_ok(o));
}

json_t *tool_exec_write_stdin(struct mcp_call *c, json_t *args)
{
    json_t *fail;
    struct longcmd *lc = find(c, args, &fail);
    if (!lc)
        return fail;
    const char *data = arg_str(args, "data", "");
    size_t len = strlen(data);
    void *decoded = NULL;
    if (arg_bool(args, "base64", 0)) {
        size_t cap = len / 4 * 3 + 4;
        decoded = malloc(cap);
        if (!decoded || util_base64_decode(data, len, decoded, cap, &len) < 0) {
            free(decoded);
            return release(c, lc, tool_error("\"data\" is not valid base64"));
        }
        data = decoded;
    }
    cocoon_error err;
    json_t *result = NULL;
    if (len && cocoon_exec_write(lc->ex, data, len, &err) < 0)
        result = tool_cocoon_error("cannot write to the command's stdin", &err);
    else if (arg_bool(args, "eof", 0) && cocoon_exec_close_stdin(lc->ex, &err) < 0)
        result = tool_cocoon_error("cannot close the command's stdin", &err);
    else
        result = tool_ok(
            json_pack("{s:i, s:I, s:b}", "id", lc->id, "written", (json_int_t)len, "eof", arg_bool(args, "eof", 0)));
    free(decoded);
    return release(c, lc, result);
}

json_t *tool_exec_signal(struct mcp_call *c, json_t *args)
{
    json_t *fail;
    struct longcmd *lc = find(c, args, &fail);
    if (!lc)
        return fail;
    static const struct {
        const char *name;
        int signo;
    } sigs[] = {{"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"HUP", SIGHUP},  {"QUIT", SIGQUIT},
                {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP}, {"CONT", SIGCONT}};
    const char *name = arg_str(args, "signal", "TERM");
    int signo = SIGTERM;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (strcmp(sigs[i].name, name) == 0)
            signo = sigs[i].signo;
    pthread_mutex_lock(&lc->lock);
    int done = lc->done;
    pthread_mutex_unlock(&lc->lock);
    if (done)
        return release(c, lc, tool_error("command %d has already ended (exec_output shows its exit status)", lc->id));
    cocoon_error err;
    if (cocoon_exec_signal(lc->ex, signo, &err) < 0)
        return release(c, lc, tool_cocoon_error("cannot signal the command", &err));
    return release(c, lc, tool_ok(json_pack("{s:i, s:s}", "id", lc->id, "signal", name)));
}

void longcmd_end_all(struct mcp_session *s)
{
    for (int i = 0; i < MCP_LONGCMD_KEPT_MAX; i++) {
        pthread_mutex_lock(&s->lock);
        struct longcmd *lc = s->cmds[i];
        s->cmds[i] = NULL;
        pthread_mutex_unlock(&s->lock);
        if (lc)
            longcmd_free(lc);
    }
}
