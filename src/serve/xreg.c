/* The execution registry behind xreg.h: entries in one list under one lock, a waiting
 * thread per execution, and the bounded output buffer between that thread and the
 * consumer. Finished entries stay XREG_KEEP_S seconds for status queries. */
#include "serve/xreg.h"

#include <errno.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve.h"
#include "util/util.h"

unsigned xreg_unread_timeout_s = XREG_UNREAD_TIMEOUT_S;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct xentry *reg_head;
static unsigned reg_running, reg_count;

void xreg_init(void) {}

static void entry_free(struct xentry *e)
{
    struct xchunk *c = e->head;
    while (c) {
        struct xchunk *next = c->next;
        free(c);
        c = next;
    }
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    free(e);
}

/* Drops finished entries past their time, and the oldest finished ones beyond
 * XREG_KEEP_MAX. Called with reg_lock held. */
static void sweep(void)
{
    time_t now = time(NULL);
    struct xentry **pp = &reg_head;
    while (*pp) {
        struct xentry *e = *pp;
        pthread_mutex_lock(&e->lock);
        int old = e->done && e->refs == 0 && (reg_count > XREG_KEEP_MAX || now - e->ended_at > XREG_KEEP_S);
        pthread_mutex_unlock(&e->lock);
        if (old) {
            *pp = e->next;
            reg_count--;
            entry_free(e);
        } else {
            pp = &e->next;
        }
    }
}

struct xentry *xreg_new(const char *box_id, const char *command, int tty, int detach)
{
    struct xentry *e = calloc(1, sizeof(*e));
    if (!e) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned char rnd[12];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        free(e);
        errno = EIO;
        return NULL;
    }
    int n = snprintf(e->id, sizeof(e->id), "exec_");
    for (size_t i = 0; i < sizeof(rnd); i++)
        n += snprintf(e->id + n, sizeof(e->id) - (size_t)n, "%02x", rnd[i]);
    snprintf(e->box_id, sizeof(e->box_id), "%s", box_id);
    snprintf(e->command, sizeof(e->command), "%s", command);
    e->tty = tty;
    e->detach = detach;
    e->started_at = time(NULL);
    e->t0_ns = util_now_ns(CLOCK_MONOTONIC);
    e->refs = 1;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    pthread_mutex_lock(&reg_lock);
    sweep();
    if (reg_running >= XREG_RUNNING_MAX) {
        pthread_mutex_unlock(&reg_lock);
        entry_free(e);
        errno = EAGAIN;
        return NULL;
    }
    reg_running++;
    reg_count++;
    e->next = reg_head;
    reg_head = e;
    pthread_mutex_unlock(&reg_lock);
    return e;
}

static void unlink_entry(struct xentry *e)
{
    for (struct xentry **pp = &reg_head; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            reg_count--;
            return;
        }
}

void xreg_abandon(struct xentry *e)
{
    pthread_mutex_lock(&reg_lock);
    unlink_entry(e);
    reg_running--;
    pthread_mutex_unlock(&reg_lock);
    entry_free(e);
}

static void push(struct xentry *e, uint8_t stream, const char *data, size_t len)
{
    while (len > 0) {
        size_t part = len > 64 * 1024 ? 64 * 1024 : len;
        struct xchunk *c = malloc(sizeof(*c) + part);
        pthread_mutex_lock(&e->lock);
        /* A consumer may come later: hold the output until the buffer is full, then
         * stop taking more (the guest blocks). An execution whose full buffer nobody
         * reads for xreg_unread_timeout_s (never attached, or its client left) is
         * killed rather than held for ever. */
        unsigned unread_s = 0;
        int orphaned = 0;
        while (!e->discard && !e->detach && e->buffered >= XREG_OUT_MAX) {
            if (e->attached) {
                unread_s = 0;
                pthread_cond_wait(&e->cond, &e->lock);
                continue;
            }
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            t.tv_sec += 1;
            if (pthread_cond_timedwait(&e->cond, &e->lock, &t) == ETIMEDOUT && ++unread_s >= xreg_unread_timeout_s &&
                e->buffered >= XREG_OUT_MAX && !e->attached) {
                e->killed = e->discard = orphaned = 1;
                snprintf(e->note, sizeof(e->note), "killed: nobody read its output for %u s", unread_s);
            }
        }
        if (orphaned) {
            pthread_mutex_unlock(&e->lock);
            free(c);
            xreg_signal(e, SIGKILL, NULL);
            return;
        }
        if (e->detach && !e->attached) {
            while (e->head && e->buffered + part > XREG_OUT_MAX) {
                struct xchunk *old = e->head;
                e->head = old->next;
                if (!e->head)
                    e->tail = NULL;
                e->buffered -= old->len;
                e->dropped += old->len;
                free(old);
            }
        }
        e->bytes_out += part;
        if (!c || e->discard) {
            if (!e->discard)
                e->dropped += part;
            free(c);
        } else {
            c->next = NULL;
            c->stream = stream;
            c->len = part;
            memcpy(c->data, data, part);
            if (e->tail)
                e->tail->next = c;
            else
                e->head = c;
            e->tail = c;
            e->buffered += part;
            pthread_cond_broadcast(&e->cond);
        }
        pthread_mutex_unlock(&e->lock);
        data += part;
        len -= part;
    }
}

void xreg_on_stdout(void *user, const char *data, size_t len) { push(user, XREG_STDOUT, data, len); }
void xreg_on_stderr(void *user, const char *data, size_t len) { push(user, XREG_STDERR, data, len); }

int xreg_not_started_code(const cocoon_error *err) { return strstr(err->message, "No such file") ? 127 : 126; }

static void *waiter(void *arg)
{
    struct xentry *e = arg;
    cocoon_exit_status st;
    cocoon_error err;
    int rc = cocoon_exec_wait(e->ex, &st, &err);
    if (rc < 0 && err.code == COCOON_E_EXEC) {
        /* The command never ran: say why on its stderr and exit as a shell would
         * (127 not found, 126 not runnable), so clients that only show streams and exit
         * codes tell the user. */
        char line[sizeof(err.message) + 16];
        int n = snprintf(line, sizeof(line), "cocoon: %s\n", err.message);
        push(e, XREG_STDERR, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
    pthread_mutex_lock(&e->lock);
    e->t1_ns = util_now_ns(CLOCK_MONOTONIC);
    e->ended_at = time(NULL);
    if (rc < 0) {
        e->err_code = err.code ? err.code : COCOON_E_IO;
        snprintf(e->err_msg, sizeof(e->err_msg), "%.500s", err.message);
        memset(&e->status, 0, sizeof(e->status));
        e->status.exit_code = err.code == COCOON_E_EXEC ? xreg_not_started_code(&err) : -1;
    } else {
        e->status = st;
    }
    e->done = 1;
    serve_box_count_exec(e->box_id, rc < 0, e->bytes_in, e->bytes_out);
    pthread_cond_broadcast(&e->cond);
    while (e->handles_users > 0)
        pthread_cond_wait(&e->cond, &e->lock);
    e->handles_closed = 1;
    pthread_mutex_unlock(&e->lock);
    cocoon_exec_free(e->ex);
    cocoon_box_close(e->box);
    cocoon_runtime_close(e->rt);
    e->ex = NULL;
    e->box = NULL;
    e->rt = NULL;
    pthread_mutex_lock(&reg_lock);
    reg_running--;
    pthread_mutex_unlock(&reg_lock);
    xreg_put(e);
    return NULL;
}

int xreg_launch(struct xentry *e, cocoon_runtime *rt, cocoon_box *box, cocoon_exec *ex)
{
    e->rt = rt;
    e->box = box;
    e->ex = ex;
    pthread_mutex_lock(&e->lock);
    e->refs++; /* the waiting thread's */
    e->launched = 1;
    pthread_mutex_unlock(&e->lock);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 2u << 20);
    pthread_t t;
    int rc = pthread_create(&t, &attr, waiter, e);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&e->lock);
        e->refs--;
        e->launched = 0;
        pthread_mutex_unlock(&e->lock);
        e->rt = NULL;
        e->box = NULL;
        e->ex = NULL;
        return -1;
    }
    return 0;
}

struct xentry *xreg_get(const char *box_id, const char *id)
{
    struct xentry *found = NULL;
    pthread_mutex_lock(&reg_lock);
    for (struct xentry *e = reg_head; e && !found; e = e->next) {
        if (strcmp(e->id, id) != 0 || (box_id && strcmp(e->box_id, box_id) != 0))
            continue;
        pthread_mutex_lock(&e->lock);
        if (e->launched) {
            e->refs++;
            found = e;
        }
        pthread_mutex_unlock(&e->lock);
    }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

void xreg_put(struct xentry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->refs--;
    pthread_mutex_unlock(&e->lock);
}

struct xentry **xreg_list(const char *box_id, size_t *count)
{
    pthread_mutex_lock(&reg_lock);
    struct xentry **out = calloc(reg_count + 1, sizeof(*out));
    size_t n = 0;
    for (struct xentry *e = reg_head; e && out; e = e->next) {
        if (strcmp(e->box_id, box_id) != 0)
            continue;
        pthread_mutex_lock(&e->lock);
        if (e->launched) {
            e->refs++;
            out[n++] = e;
        }
        pthread_mutex_unlock(&e->lock);
    }
    pthread_mutex_unlock(&reg_lock);
    *count = n;
    return out;
}

unsigned xreg_running(void)
{
    pthread_mutex_lock(&reg_lock);
    unsigned n = reg_running;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

int xreg_take(struct xentry *e, struct xchunk **out, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&e->lock);
    int rc = 0;
    while (!e->head && !e->done)
        if (pthread_cond_timedwait(&e->cond, &e->lock, &deadline) == ETIMEDOUT)
            break;
    if (e->head) {
        *out = e->head;
        e->head = e->head->next;
        if (!e->head)
            e->tail = NULL;
        e->buffered -= (*out)->len;
        pthread_cond_broadcast(&e->cond);
        rc = 1;
    } else if (e->done) {
        rc = -1;
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

int xreg_attach(struct xentry *e)
{
    pthread_mutex_lock(&e->lock);
    int rc = e->attached ? -1 : 0;
    e->attached = 1;
    pthread_mutex_unlock(&e->lock);
    return rc;
}

void xreg_detach(struct xentry *e, int gone)
{
    pthread_mutex_lock(&e->lock);
    e->attached = 0;
    int kill_it = gone && !e->detach && !e->done;
    if (kill_it) {
        e->killed = 1;
        e->discard = 1;
        pthread_cond_broadcast(&e->cond);
    }
    pthread_mutex_unlock(&e->lock);
    if (kill_it)
        xreg_signal(e, SIGKILL, NULL);
}

/* Runs op on the exec unless the waiting thread is about to free it. */
static int with_exec(struct xentry *e, cocoon_error *err, int (*op)(struct xentry *e, void *arg, cocoon_error *err),
                     void *arg)
{
    pthread_mutex_lock(&e->lock);
    if (e->handles_closed || e->done || !e->ex) {
        pthread_mutex_unlock(&e->lock);
        if (err) {
            err->code = COCOON_E_STATE;
            snprintf(err->message, sizeof(err->message), "execution %s has ended", e->id);
        }
        return -1;
    }
    e->handles_users++;
    pthread_mutex_unlock(&e->lock);
    cocoon_error local;
    int rc = op(e, arg, err ? err : &local);
    pthread_mutex_lock(&e->lock);
    e->handles_users--;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    return rc;
}

static int op_signal(struct xentry *e, void *arg, cocoon_error *err)
{
    return cocoon_exec_signal(e->ex, *(int *)arg, err);
}

int xreg_signal(struct xentry *e, int signo, cocoon_error *err) { return with_exec(e, err, op_signal, &signo); }

static int op_resize(struct xentry *e, void *arg, cocoon_error *err)
{
    const unsigned *rc = arg;
    return cocoon_exec_resize(e->ex, rc[0], rc[1], err);
}

int xreg_resize(struct xentry *e, unsigned rows, unsigned cols, cocoon_error *err)
{
    unsigned rc[2] = {rows, cols};
    return with_exec(e, err, op_resize, rc);
}

struct write_arg {
    const void *data;
    size_t len;
};

static int op_write(struct xentry *e, void *arg, cocoon_error *err)
{
    const struct write_arg *w = arg;
    int rc = cocoon_exec_write(e->ex, w->data, w->len, err);
    if (rc == 0) {
        pthread_mutex_lock(&e->lock);
        e->bytes_in += w->len;
        pthread_mutex_unlock(&e->lock);
    }
    return rc;
}

int xreg_write(struct xentry *e, const void *data, size_t len, cocoon_error *err)
{
    struct write_arg w = {data, len};
    return with_exec(e, err, op_write, &w);
}

static int op_close_stdin(struct xentry *e, void *arg, cocoon_error *err)
{
    return cocoon_exec_close_stdin(e->ex, err);
}

int xreg_close_stdin(struct xentry *e, cocoon_error *err) { return with_exec(e, err, op_close_stdin, NULL); }

const char *xreg_status(const struct xentry *e)
{
    if (!e->done)
        return "running";
    if (e->status.timed_out)
        return "timed_out";
    if (e->killed || e->status.signal)
        return "killed";
    return "completed";
}

int xreg_exit_code(const struct xentry *e) { return cocoon_exit_status_code(&e->status); }
