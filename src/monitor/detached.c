/* Detached execs (detached.h): each one is an exec of the monitor's own (mux_open_own)
 * with a log (outlog.c) and a record of its end (main.state.json's format: mainspec.c).
 * The client that asked is answered with the exec's pid, its id for `kill --exec` and
 * `logs --exec`, once the guest reports it started. */
#include "monitor/detached.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "boxcfg/mainspec.h"
#include "monitor/monitor.h"
#include "monitor/mux.h"
#include "monitor/outlog.h"
#include "util/log.h"
#include "util/util.h"

struct detached {
    uint32_t stream; /* the agent's stream id; 0: a free slot */
    uint64_t serial; /* the client to answer, 0 once answered */
    char cmd[256];
    struct outlog *log; /* open from STARTED to EXIT */
    struct main_state st;
};

struct detached_set {
    int dirfd; /* DIR/execs */
    struct detached run[DETACHED_RUNNING_MAX];
    int kept[DETACHED_KEPT]; /* pids of finished ones whose files remain, oldest first */
    int nkept;
};

int detached_open(struct vmm *v, char *err, size_t cap)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/execs", v->box_dir);
    if ((util_rm_rf(path) < 0 && errno != ENOENT) || (mkdir(path, 0700) < 0 && errno != EEXIST)) {
        snprintf(err, cap, "cannot make %s: %s", path, strerror(errno));
        return -1;
    }
    struct detached_set *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    d->dirfd = openat(v->dirfd, "execs", O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (d->dirfd < 0) {
        snprintf(err, cap, "cannot open %s: %s", path, strerror(errno));
        free(d);
        return -1;
    }
    v->detached = d;
    return 0;
}

int detached_start(struct vmm *v, uint64_t serial, const struct proto_exec *ex, int *code, char *msg, size_t cap)
{
    struct detached_set *d = v->detached;
    struct detached *slot = NULL;
    for (int i = 0; d && i < DETACHED_RUNNING_MAX && !slot; i++)
        if (!d->run[i].stream)
            slot = &d->run[i];
    if (!slot) {
        *code = EAGAIN;
        snprintf(msg, cap, "%d detached execs already run in this box", DETACHED_RUNNING_MAX);
        return -1;
    }
    struct proto_exec own = *ex;
    own.tty = 0; /* nobody is there to type */
    own.window = PROTO_DEFAULT_WINDOW;
    uint32_t id = mux_open_own(v->mux, &own);
    if (!id) {
        *code = ENOMEM;
        snprintf(msg, cap, "cannot start the exec: out of memory");
        return -1;
    }
    memset(slot, 0, sizeof(*slot));
    slot->stream = id;
    slot->serial = serial;
    slot->st.exit_code = -1;
    snprintf(slot->st.state, sizeof(slot->st.state), "starting");
    util_join_words(slot->cmd, sizeof(slot->cmd), ex->argv, ex->argc);
    memcpy(slot->st.command, slot->cmd, sizeof(slot->st.command)); /* `cocoon exec --ls` shows it */
    return 0;
}

static void save(struct detached_set *d, struct detached *x)
{
    char name[32];
    snprintf(name, sizeof(name), "%d.json", x->st.pid);
    if (main_state_write_as(d->dirfd, name, &x->st) < 0)
        vmm_log("cannot write execs/%s: %s", name, strerror(errno));
}

/* The newest DETACHED_KEPT finished execs keep their files. */
static void keep(struct detached_set *d, int pid)
{
    if (d->nkept == DETACHED_KEPT) {
        char name[48];
        const char *suffix[] = {".log", ".log.1", ".json"};
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof(name), "%d%s", d->kept[0], suffix[i]);
            unlinkat(d->dirfd, name, 0);
        }
        memmove(d->kept, d->kept + 1, sizeof(d->kept[0]) * (DETACHED_KEPT - 1));
        d->nkept--;
    }
    d->kept[d->nkept++] = pid;
}

static void answer(struct vmm *v, struct detached *x, int err_code, const char *err_msg)
{
    if (!x->serial)
        return;
    struct proto_writer *w = &v->agent_w;
    if (err_msg) {
        mux_send_to(v->mux, x->serial, w->buf, proto_encode_error(w, 0, (uint32_t)err_code, err_msg));
    } else {
        struct proto_exec_entry e = {.pid = (uint32_t)x->st.pid};
        snprintf(e.cmd, sizeof(e.cmd), "%s", x->cmd);
        mux_send_to(v->mux, x->serial, w->buf, proto_encode_vmm_execs(w, &e, 1));
    }
    x->serial = 0;
}

static void finish(struct detached_set *d, struct detached *x)
{
    if (x->log) {
        outlog_close(x->log);
        free(x->log);
        x->log = NULL;
    }
    if (x->st.pid > 0) {
        save(d, x);
        keep(d, x->st.pid);
    }
    x->stream = 0;
}

int detached_on_frame(struct vmm *v, uint32_t stream, const struct proto_header *h, const uint8_t *p)
{
    struct detached_set *d = v->detached;
    struct detached *x = NULL;
    for (int i = 0; d && i < DETACHED_RUNNING_MAX && !x; i++)
        if (d->run[i].stream == stream)
            x = &d->run[i];
    if (!x)
        return 0;
    struct proto_started st;
    struct proto_exit ex;
    struct proto_error_msg em;
    switch (h->type) {
    case PROTO_STARTED: {
        if (proto_decode_started(p, h->len, &st) != PROTO_OK || st.pid == 0 || st.pid > (1u << 30))
            break;
        x->st.pid = (int)st.pid;
        x->st.started_at = (long long)time(NULL);
        snprintf(x->st.state, sizeof(x->st.state), "running");
        char name[32];
        snprintf(name, sizeof(name), "%d.log", x->st.pid);
        x->log = calloc(1, sizeof(*x->log));
        if (x->log && outlog_open(x->log, d->dirfd, name, OUTLOG_EXEC, 1) < 0) {
            vmm_log("cannot open execs/%s: %s", name, strerror(errno));
            free(x->log);
            x->log = NULL;
        }
        save(d, x);
        answer(v, x, 0, NULL);
        break;
    }
    case PROTO_STDOUT:
    case PROTO_STDERR:
        if (x->log)
            outlog_write(x->log, h->type == PROTO_STDERR, p, h->len);
        break;
    case PROTO_EXIT:
        if (proto_decode_exit(p, h->len, &ex) != PROTO_OK)
            break;
        x->st.signal = (int)ex.signal;
        x->st.exit_code = ex.signal ? 128 + (int)ex.signal : ex.code;
        x->st.finished_at = (long long)time(NULL);
        snprintf(x->st.state, sizeof(x->st.state), "exited");
        finish(d, x);
        break;
    case PROTO_ERROR:
        if (proto_decode_error(p, h->len, &em) != PROTO_OK)
            break;
        if (!x->st.pid) { /* it never ran: the client hears why */
            answer(v, x, (int)em.code, em.message);
            finish(d, x);
        } else if (x->log) {
            outlog_note(x->log, em.message);
        }
        break;
    default: break;
    }
    return 1;
}

void detached_close(struct vmm *v)
{
    struct detached_set *d = v->detached;
    if (!d)
        return;
    for (int i = 0; i < DETACHED_RUNNING_MAX; i++) {
        struct detached *x = &d->run[i];
        if (!x->stream)
            continue;
        snprintf(x->st.state, sizeof(x->st.state), "stopped");
        x->st.finished_at = (long long)time(NULL);
        finish(d, x);
    }
    close(d->dirfd);
    free(d);
    v->detached = NULL;
}
