/* Finding and signalling the commands running in a box, whoever started them. The
 * monitor relays every exec, so it knows them all (pid and command line); one
 * request on a private control connection lists or signals them, without running
 * anything in the guest. */
#include "lib/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

/* Most entries one VMM_EXECS frame can carry (each is a pid and a clipped command). */
#define EXECS_MAX (PROTO_MAX_PAYLOAD / 16)

/* Sends the request already encoded in x->w and decodes the VMM_EXECS answer. */
static int execs_request(cocoon_box *box, struct lib_xfer *x, size_t len, struct proto_exec_entry **out, size_t *count,
                         cocoon_error *err)
{
    if (lib_xfer_send(x, len) < 0)
        return -1;
    for (;;) {
        struct proto_header h;
        const uint8_t *p;
        if (lib_xfer_next(x, &h, &p, 1) < 0)
            return -1;
        if (h.stream != 0)
            continue;
        if (h.type == PROTO_ERROR) {
            struct proto_error_msg e;
            if (proto_decode_error(p, h.len, &e) != PROTO_OK)
                snprintf(e.message, sizeof(e.message), "malformed ERROR");
            return lib_err(err, COCOON_E_VMM, "box %s: the monitor refused: %s", box->id, e.message);
        }
        if (h.type != PROTO_VMM_EXECS)
            continue;
        struct proto_exec_entry *e = calloc(EXECS_MAX, sizeof(*e));
        if (!e)
            return lib_err(err, COCOON_E_NOMEM, "out of memory");
        size_t n = 0;
        int rc = proto_decode_vmm_execs(p, h.len, e, EXECS_MAX, &n);
        if (rc != PROTO_OK) {
            free(e);
            return lib_err(err, COCOON_E_PROTOCOL, "box %s: malformed exec list from the monitor: %s", box->id,
                           proto_strerror(rc));
        }
        *out = e;
        *count = n < EXECS_MAX ? n : EXECS_MAX;
        return 0;
    }
}

static int execs_call(cocoon_box *box, int list_only, uint32_t pid, uint32_t signo, struct proto_exec_entry **out,
                      size_t *count, cocoon_error *err)
{
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    size_t len;
    if (list_only) {
        proto_writer_begin(x->w, PROTO_STREAM_SESSION, PROTO_VMM_LIST_EXECS);
        len = proto_writer_finish(x->w);
    } else {
        len = proto_encode_signal_exec(x->w, pid, signo);
    }
    int rc = execs_request(box, x, len, out, count, err);
    lib_xfer_close(x);
    return rc;
}

int cocoon_box_list_execs(cocoon_box *box, cocoon_exec_info **out, size_t *count, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !out || !count)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_list_execs: NULL argument");
    *out = NULL;
    *count = 0;
    struct proto_exec_entry *e;
    size_t n;
    if (execs_call(box, 1, 0, 0, &e, &n, err) < 0)
        return -1;
    cocoon_exec_info *list = calloc(n ? n : 1, sizeof(*list));
    if (!list) {
        free(e);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        list[i].id = (int)e[i].pid;
        snprintf(list[i].command, sizeof(list[i].command), "%s", e[i].cmd);
    }
    free(e);
    *out = list;
    *count = n;
    return 0;
}

int cocoon_box_signal_exec(cocoon_box *box, int id, int signo, size_t *signalled, cocoon_error *err)
{
    lib_err_clear(err);
    if (signalled)
        *signalled = 0;
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_signal_exec: NULL box");
    if (signo <= 0 || signo >= 65)
        return lib_err(err, COCOON_E_INVALID, "invalid signal number %d", signo);
    if (id < 0 || id == 1)
        return lib_err(err, COCOON_E_INVALID, "invalid exec id %d", id);
    struct proto_exec_entry *e;
    size_t n;
    if (execs_call(box, 0, (uint32_t)id, (uint32_t)signo, &e, &n, err) < 0)
        return -1;
    free(e);
    if (n == 0 && id != 0)
        return lib_err(err, COCOON_E_NOT_FOUND, "box %s: no running exec with id %d (see `cocoon kill --list %s`)",
                       box->id, id, box->name[0] ? box->name : box->id);
    if (signalled)
        *signalled = n;
    return 0;
}

int cocoon_exec_detached(cocoon_box *box, const cocoon_exec_options *opts, int *id, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !opts || !id)
        return lib_err(err, COCOON_E_INVALID, "cocoon_exec_detached: NULL argument");
    *id = 0;
    cocoon_exec_options o;
    if (LIB_OPTIONS(cocoon_exec_options, o, opts, err) < 0)
        return -1;
    size_t argc, envc;
    if (lib_exec_validate(&o, &argc, &envc, err) < 0)
        return -1;
    if (o.tty)
        return lib_err(err, COCOON_E_INVALID, "a detached exec has no terminal");
    struct proto_exec *m = calloc(1, sizeof(*m));
    if (!m)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    m->argv = (char **)o.argv;
    m->argc = argc;
    m->env = (char **)o.env;
    m->envc = envc;
    snprintf(m->cwd, sizeof(m->cwd), "%s", o.cwd ? o.cwd : "");
    snprintf(m->user, sizeof(m->user), "%s", o.user ? o.user : "");
    m->timeout_ms = o.timeout_ms;
    m->window = PROTO_DEFAULT_WINDOW;
    m->realtime_ns = util_now_ns(CLOCK_REALTIME);
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x) {
        free(m);
        return -1;
    }
    size_t len = proto_encode_exec_detached(x->w, m);
    free(m);
    struct proto_exec_entry *e = NULL;
    size_t n = 0;
    int rc = len ? execs_request(box, x, len, &e, &n, err) : lib_err(err, COCOON_E_INVALID, "the command is too large");
    lib_xfer_close(x);
    if (rc == 0 && n != 1)
        rc = lib_err(err, COCOON_E_PROTOCOL, "box %s: the monitor answered a detached exec with %zu entries", box->id,
                     n);
    if (rc == 0)
        *id = (int)e[0].pid;
    free(e);
    return rc;
}
