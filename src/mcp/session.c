/* One MCP session's state: the calls in flight (so notifications/cancelled can kill
 * their exec), the boxes it created (removed when it ends unless kept) and its long
 * commands; and the end of a session, which leaves nothing of it running. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"
#include "mcp/jsonrpc.h"

struct mcp_session *mcp_session_new(const char *home, const char *transport)
{
    struct mcp_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (home && !(s->home = strdup(home))) {
        free(s);
        return NULL;
    }
    snprintf(s->transport, sizeof(s->transport), "%s", transport ? transport : "?");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->next_cmd_id = 1;
    return s;
}

unsigned mcp_session_busy(struct mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->busy;
    pthread_mutex_unlock(&s->lock);
    return n;
}

const char *mcp_session_protocol(struct mcp_session *s) { return s->initialized ? s->protocol : ""; }

int mcp_runtime(struct mcp_session *s, cocoon_runtime **rt, cocoon_error *err)
{
    cocoon_runtime_options o;
    cocoon_runtime_options_init(&o);
    o.home = s->home;
    return cocoon_runtime_open(&o, rt, err);
}

int session_add_box(struct mcp_session *s, const char *id, int keep)
{
    pthread_mutex_lock(&s->lock);
    int rc = -1;
    if (s->nboxes < MCP_SESSION_BOXES_MAX) {
        struct session_box *b = &s->boxes[s->nboxes++];
        snprintf(b->id, sizeof(b->id), "%s", id);
        b->keep = keep;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int session_boxes_full(struct mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    int full = s->nboxes >= MCP_SESSION_BOXES_MAX;
    pthread_mutex_unlock(&s->lock);
    return full;
}

void session_forget_box(struct mcp_session *s, const char *id)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nboxes; i++)
        if (strcmp(s->boxes[i].id, id) == 0) {
            s->boxes[i] = s->boxes[--s->nboxes];
            break;
        }
    pthread_mutex_unlock(&s->lock);
}

/* ---- calls in flight ---- */

int session_call_begin(struct mcp_session *s, struct mcp_call *c)
{
    pthread_mutex_lock(&s->lock);
    int slot = -1;
    for (int i = 0; !s->ending && i < MCP_INFLIGHT_MAX; i++)
        if (!s->calls[i]) {
            slot = i;
            break;
        }
    if (slot >= 0) {
        s->calls[slot] = c;
        c->slot = slot;
        s->busy++;
    }
    pthread_mutex_unlock(&s->lock);
    return slot < 0 ? -1 : 0;
}

void session_call_end(struct mcp_session *s, struct mcp_call *c)
{
    pthread_mutex_lock(&s->lock);
    s->calls[c->slot] = NULL;
    s->busy--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

/* The exec of a cancelled call is killed: the call's cocoon_exec_wait then returns. */
static void cancel_locked(struct mcp_call *c)
{
    __atomic_store_n(&c->cancelled, 1, __ATOMIC_RELEASE);
    if (c->exec) {
        cocoon_error err;
        cocoon_exec_signal(c->exec, SIGKILL, &err);
    }
}

int session_cancel(struct mcp_session *s, json_t *request_id)
{
    int found = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < MCP_INFLIGHT_MAX; i++)
        if (s->calls[i] && json_equal(s->calls[i]->id, request_id)) {
            cancel_locked(s->calls[i]);
            found = 1;
        }
    pthread_mutex_unlock(&s->lock);
    return found;
}

int call_set_exec(struct mcp_call *c, cocoon_exec *ex)
{
    pthread_mutex_lock(&c->s->lock);
    c->exec = ex;
    int cancelled = c->cancelled;
    if (cancelled && ex) {
        cocoon_error err;
        cocoon_exec_signal(ex, SIGKILL, &err);
    }
    pthread_mutex_unlock(&c->s->lock);
    return cancelled;
}

/* Lock-free: exec_output asks while it holds a command's lock (taken after s->lock elsewhere). */
int call_cancelled(struct mcp_call *c) { return __atomic_load_n(&c->cancelled, __ATOMIC_ACQUIRE); }

void call_progress(struct mcp_call *c, double done, double total, const char *message)
{
    if (!c->progress_token || !c->emit)
        return;
    json_t *p = json_object();
    json_object_set(p, "progressToken", c->progress_token);
    json_object_set_new(p, "progress", json_real(done));
    if (total > 0)
        json_object_set_new(p, "total", json_real(total));
    if (message)
        json_object_set_new(p, "message", json_string(message));
    size_t len;
    char *text = jrpc_dump(jrpc_notification("notifications/progress", p), &len);
    if (text)
        c->emit(c->emit_ctx, text, len);
    free(text);
}

/* ---- the end ---- */

void mcp_session_interrupt(struct mcp_session *s)
{
    pthread_mutex_lock(&s->lock);
    s->ending = 1;
    for (int i = 0; i < MCP_INFLIGHT_MAX; i++)
        if (s->calls[i])
            cancel_locked(s->calls[i]);
    pthread_mutex_unlock(&s->lock);
}

void mcp_session_end(struct mcp_session *s, void (*log)(const char *line))
{
    if (!s)
        return;
    mcp_session_interrupt(s);
    pthread_mutex_lock(&s->lock);
    while (s->busy)
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
    longcmd_end_all(s);

    cocoon_runtime *rt = NULL;
    cocoon_error err;
    if (s->nboxes && mcp_runtime(s, &rt, &err) < 0 && log) {
        char line[COCOON_ERROR_MAX + 64];
        snprintf(line, sizeof(line), "cannot remove the session's boxes: %s", err.message);
        log(line);
    }
    for (size_t i = 0; rt && i < s->nboxes; i++) {
        if (s->boxes[i].keep)
            continue;
        cocoon_box *box;
        char line[COCOON_ERROR_MAX + 64];
        if (cocoon_box_open(rt, s->boxes[i].id, &box, &err) < 0) {
            if (err.code != COCOON_E_NOT_FOUND && log) {
                snprintf(line, sizeof(line), "box %s: %s", s->boxes[i].id, err.message);
                log(line);
            }
            continue;
        }
        int rc = cocoon_box_remove(box, 1, &err);
        cocoon_box_close(box);
        if (log) {
            if (rc == 0)
                snprintf(line, sizeof(line), "removed box %s (created by the session, not kept)", s->boxes[i].id);
            else
                snprintf(line, sizeof(line), "cannot remove box %s: %s", s->boxes[i].id, err.message);
            log(line);
        }
    }
    if (rt)
        cocoon_runtime_close(rt);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    free(s->home);
    free(s);
}
