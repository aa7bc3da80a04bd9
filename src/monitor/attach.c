/* Attachers of the main process (attach.h). Output reaches an attacher through its
 * control connection's queue; above ATTACH_QUEUE_MAX it is skipped for that attacher
 * and counted, and the count goes out in a VMM_ATTACHED notice once the queue has room
 * again. The main process's own route is credited as its output arrives (mux.c), so
 * neither it nor main.log ever waits for an attacher. */
#include "monitor/attach.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/mainproc.h"
#include "monitor/monitor.h"
#include "monitor/mux.h"
#include "util/log.h"

struct attacher {
    uint64_t serial;  /* the client; 0: a free slot */
    uint32_t stream;  /* its stream id for this attachment */
    int stdin_ok;     /* it may feed the main process's stdin */
    uint64_t dropped; /* output skipped since the last notice */
};

struct attachers {
    struct attacher a[ATTACH_MAX];
    int stdin_lost_logged;
};

static struct attacher *find(const struct vmm *v, uint64_t serial, uint32_t stream)
{
    for (int i = 0; v->attach && i < ATTACH_MAX; i++)
        if (v->attach->a[i].serial == serial && v->attach->a[i].stream == stream)
            return &v->attach->a[i];
    return NULL;
}

int attach_is(const struct vmm *v, uint64_t serial, uint32_t stream)
{
    return serial && find(v, serial, stream) != NULL;
}

int attach_open(struct vmm *v, uint64_t serial, uint32_t stream, const struct proto_attach *a, int *code, char *msg,
                size_t cap)
{
    struct mainproc_io io;
    if (mainproc_io(v, &io, msg, cap) < 0) {
        *code = ESRCH;
        return -1;
    }
    if (!v->attach && !(v->attach = calloc(1, sizeof(*v->attach)))) {
        *code = ENOMEM;
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    struct attacher *slot = find(v, 0, 0);
    if (!slot) {
        *code = EBUSY;
        snprintf(msg, cap, "%d clients are already attached to the main process", ATTACH_MAX);
        return -1;
    }
    slot->serial = serial;
    slot->stream = stream;
    slot->stdin_ok = io.open_stdin && (a->flags & PROTO_ATTACH_STDIN);
    slot->dropped = 0;
    if (io.tty && a->rows && a->cols)
        vmm_send_agent(v, v->agent_w.buf, proto_encode_resize(&v->agent_w, io.stream, a->rows, a->cols));
    struct proto_attached ans = {
        .pid = (uint32_t)io.pid, .tty = io.tty ? 1u : 0u, .flags = slot->stdin_ok ? PROTO_ATTACH_STDIN : 0u};
    mux_send_to(v->mux, serial, v->agent_w.buf, proto_encode_attached(&v->agent_w, stream, &ans));
    vmm_log("client %llu attached to the main process%s", (unsigned long long)serial,
            slot->stdin_ok ? " with stdin" : "");
    return 0;
}

int attach_on_client_frame(struct vmm *v, uint64_t serial, const struct proto_header *h, const uint8_t *p)
{
    struct attacher *x = find(v, serial, h->stream);
    if (!x)
        return 0;
    struct mainproc_io io;
    char why[128];
    if (mainproc_io(v, &io, why, sizeof(why)) < 0)
        return 1; /* between its end and the EXIT reaching this client */
    switch (h->type) {
    case PROTO_STDIN:
        if (x->stdin_ok && mainproc_stdin(v, p, h->len) < 0 && !v->attach->stdin_lost_logged) {
            vmm_log("main process: input from an attacher dropped: its stdin window is full (logged once)");
            v->attach->stdin_lost_logged = 1;
        }
        break;
    case PROTO_RESIZE:
        if (io.tty)
            vmm_send_agent(v, v->agent_w.buf, proto_encode_data(&v->agent_w, io.stream, PROTO_RESIZE, p, h->len));
        break;
    case PROTO_SIGNAL: /* `attach --sig-proxy` */
        vmm_send_agent(v, v->agent_w.buf, proto_encode_data(&v->agent_w, io.stream, PROTO_SIGNAL, p, h->len));
        break;
    default: break; /* STDIN_EOF: this attacher is done typing, the main process's stdin stays open; CREDIT: unused */
    }
    return 1;
}

void attach_client_gone(struct vmm *v, uint64_t serial)
{
    for (int i = 0; v->attach && i < ATTACH_MAX; i++)
        if (v->attach->a[i].serial == serial) {
            memset(&v->attach->a[i], 0, sizeof(v->attach->a[i]));
            vmm_log("client %llu detached from the main process", (unsigned long long)serial);
        }
}

/* Room again for an attacher that had output skipped: the count goes out first. -1
 * when the client is gone (the slot is freed). */
static int tell_dropped(struct vmm *v, struct attacher *x)
{
    if (!x->dropped)
        return 0;
    struct proto_writer *w = &v->agent_w;
    struct proto_attached note = {.dropped = x->dropped};
    int rc = mux_send_bounded(v->mux, x->serial, w->buf, proto_encode_attached(w, x->stream, &note), ATTACH_QUEUE_MAX);
    if (rc < 0) {
        memset(x, 0, sizeof(*x));
        return -1;
    }
    if (rc > 0)
        x->dropped = 0;
    return 0;
}

void attach_on_drained(struct vmm *v, uint64_t serial)
{
    for (int i = 0; v->attach && i < ATTACH_MAX; i++)
        if (v->attach->a[i].serial == serial)
            tell_dropped(v, &v->attach->a[i]);
}

void attach_output(struct vmm *v, uint16_t type, const uint8_t *p, size_t n)
{
    for (int i = 0; v->attach && i < ATTACH_MAX; i++) {
        struct attacher *x = &v->attach->a[i];
        if (!x->serial || tell_dropped(v, x) < 0)
            continue;
        struct proto_writer *w = &v->agent_w;
        int rc = x->dropped ? 0
                            : mux_send_bounded(v->mux, x->serial, w->buf, proto_encode_data(w, x->stream, type, p, n),
                                               ATTACH_QUEUE_MAX);
        if (rc < 0)
            memset(x, 0, sizeof(*x));
        else if (rc == 0)
            x->dropped += n;
    }
}

void attach_main_ended(struct vmm *v, int code, int signal)
{
    struct proto_exit ex = {.code = code, .signal = (uint32_t)signal};
    for (int i = 0; v->attach && i < ATTACH_MAX; i++) {
        struct attacher *x = &v->attach->a[i];
        if (!x->serial)
            continue;
        struct proto_writer *w = &v->agent_w;
        if (x->dropped) {
            struct proto_attached note = {.dropped = x->dropped};
            mux_send_to(v->mux, x->serial, w->buf, proto_encode_attached(w, x->stream, &note));
        }
        mux_send_to(v->mux, x->serial, w->buf, proto_encode_exit(w, x->stream, &ex));
        memset(x, 0, sizeof(*x));
    }
}

void attach_close(struct vmm *v)
{
    free(v->attach);
    v->attach = NULL;
}
