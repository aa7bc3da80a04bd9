/* The server's executions: each command started over the API, the thread that waits for
 * it, and its output held in a bounded buffer between the guest and whoever streams it
 * (a WebSocket attach, an NDJSON reader). The buffer is where flow control meets the
 * network: when it is full the waiting thread stops taking output, libcocoon stops
 * crediting the guest, and the command blocks on its writes. */
#ifndef COCOON_SERVE_XREG_H
#define COCOON_SERVE_XREG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cocoon.h"

#define XREG_OUT_MAX (1u << 20) /* output bytes held per execution */
#define XREG_RUNNING_MAX 1024   /* running executions per server */
#define XREG_KEEP_MAX 4096      /* finished ones remembered (for GET) */
#define XREG_KEEP_S 600         /* ... for this long after they end */
#define XREG_ID_MAX 40
#define XREG_UNREAD_TIMEOUT_S 60 /* a full buffer nobody reads: the execution is killed */

/* The server's --unread-output-timeout (XREG_UNREAD_TIMEOUT_S unless given). */
extern unsigned xreg_unread_timeout_s;

enum xreg_stream { XREG_STDOUT = 1, XREG_STDERR = 2 };

struct xchunk {
    struct xchunk *next;
    uint8_t stream;
    size_t len;
    char data[];
};

struct xentry {
    char id[XREG_ID_MAX];
    char box_id[16];
    char command[512];
    int tty, detach;
    long long started_at, ended_at; /* unix time */
    uint64_t t0_ns, t1_ns;
    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int refs;
    int done;
    cocoon_exit_status status;
    int err_code;
    char err_msg[512];
    char note[96]; /* why the server ended it, when it did */
    int killed;    /* by DELETE or a consumer that went away */
    int attached;  /* a consumer streams the output now */
    int discard;   /* nobody will read the output any more: drop it */
    struct xchunk *head, *tail;
    size_t buffered;
    uint64_t dropped; /* bytes a detached execution lost to a full buffer */
    uint64_t bytes_out, bytes_in;
    int handles_users; /* threads inside a cocoon_exec_* call on ex */
    int handles_closed;
    int launched;
    struct xentry *next; /* in the registry */
    /* the libcocoon side, owned by the waiting thread */
    cocoon_runtime *rt;
    cocoon_box *box;
    cocoon_exec *ex;
};

void xreg_init(void);
/* A new execution for box_id, not yet started: set its callbacks (xreg_on_stdout/
 * xreg_on_stderr with the entry as user_data), start the exec, then xreg_launch or
 * xreg_abandon. NULL with errno EAGAIN at XREG_RUNNING_MAX, ENOMEM. */
struct xentry *xreg_new(const char *box_id, const char *command, int tty, int detach);
/* The entry takes rt, box and ex and starts its waiting thread; the caller keeps one
 * reference (xreg_put). Returns -1 (the caller still owns rt, box, ex and must
 * xreg_abandon) when the thread cannot start. */
int xreg_launch(struct xentry *e, cocoon_runtime *rt, cocoon_box *box, cocoon_exec *ex);
void xreg_abandon(struct xentry *e);
void xreg_on_stdout(void *user, const char *data, size_t len);
void xreg_on_stderr(void *user, const char *data, size_t len);
/* Finds an execution of box_id (a reference the caller drops with xreg_put). */
struct xentry *xreg_get(const char *box_id, const char *id);
void xreg_put(struct xentry *e);
/* Every execution of a box, as references in a malloc'd array. */
struct xentry **xreg_list(const char *box_id, size_t *count);
unsigned xreg_running(void);

/* The next output chunk (the caller frees it), waiting up to timeout_ms. Returns 1 with
 * *out, 0 on timeout, -1 when the execution ended and everything was taken. */
int xreg_take(struct xentry *e, struct xchunk **out, int timeout_ms);
/* A consumer starts (0) or is refused because one is attached already (-1). */
int xreg_attach(struct xentry *e);
/* The consumer is done; gone != 0 means it went away before the end: the execution is
 * killed unless it was started detached. */
void xreg_detach(struct xentry *e, int gone);

/* Calls into libcocoon on the entry's exec, safe against the waiting thread freeing it:
 * -1 with err "the execution has ended" once it did. */
int xreg_signal(struct xentry *e, int signo, cocoon_error *err);
int xreg_resize(struct xentry *e, unsigned rows, unsigned cols, cocoon_error *err);
int xreg_write(struct xentry *e, const void *data, size_t len, cocoon_error *err);
int xreg_close_stdin(struct xentry *e, cocoon_error *err);

/* The exit code of a command that could not be started (COCOON_E_EXEC): 127 when it
 * was not found, 126 otherwise (the shell's convention). */
int xreg_not_started_code(const cocoon_error *err);
/* "running", "completed", "killed", "timed_out"; the exit code (128+signal when killed). */
const char *xreg_status(const struct xentry *e);
int xreg_exit_code(const struct xentry *e);

#endif
