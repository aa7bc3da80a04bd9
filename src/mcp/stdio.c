/* The stdio transport (`cocoon mcp`): newline-delimited JSON-RPC on stdin/stdout, logs
 * on stderr only. Requests run on threads of their own so the reader keeps taking
 * messages (notifications/cancelled must reach a running call); at EOF the session
 * ends: running calls are interrupted and the boxes it created are removed. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcp/internal.h"
#include "mcp/jsonrpc.h"

#define EOF_GRACE_S 2

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void emit_line(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    pthread_mutex_lock(&out_lock);
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static void log_line(const char *line) { fprintf(stderr, "cocoon mcp: %s\n", line); }

/* Request threads are joinable, each in a slot: the reader joins finished ones before
 * it starts another, and every one before the process exits (a thread still in its
 * exit path would otherwise leave its thread-local state, e.g. OpenSSL's, behind). */
#define JOBS_MAX (MCP_INFLIGHT_MAX + 4)

struct job {
    struct mcp_session *s;
    char *text;
    size_t len;
    int slot;
};

static struct {
    pthread_t thread;
    int used, done;
} jobs[JOBS_MAX];
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_done = PTHREAD_COND_INITIALIZER;

static void *run_job(void *p)
{
    struct job *j = p;
    mcp_session_handle(j->s, j->text, j->len, emit_line, NULL);
    pthread_mutex_lock(&jobs_lock);
    jobs[j->slot].done = 1;
    pthread_cond_broadcast(&jobs_done);
    pthread_mutex_unlock(&jobs_lock);
    free(j->text);
    free(j);
    return NULL;
}

/* Joins the finished threads (all of them with every_one); returns how many still run. */
static unsigned reap_jobs(int every_one)
{
    unsigned running = 0;
    for (int i = 0; i < JOBS_MAX; i++) {
        pthread_mutex_lock(&jobs_lock);
        int join = jobs[i].used && (jobs[i].done || every_one);
        running += jobs[i].used && !jobs[i].done;
        pthread_mutex_unlock(&jobs_lock);
        if (join) {
            pthread_join(jobs[i].thread, NULL);
            jobs[i].used = 0;
        }
    }
    return running;
}

/* A request on its own thread; the session's bound on calls in flight answers an
 * excess one, so here only threads are bounded (a few more than that). */
static void dispatch(struct mcp_session *s, char *line, size_t len)
{
    /* Until the session is initialized everything runs here, in order: a client that
     * pipes its messages without waiting for answers must not see a request overtake
     * its initialize (nor one sent before it pass as initialized). */
    if (!mcp_message_is_request(line, len) || !mcp_session_protocol(s)[0]) {
        mcp_session_handle(s, line, len, emit_line, NULL);
        return;
    }
    reap_jobs(0);
    int slot = -1;
    for (int i = 0; i < JOBS_MAX && slot < 0; i++)
        if (!jobs[i].used)
            slot = i;
    struct job *j = slot >= 0 ? malloc(sizeof(*j)) : NULL;
    char *copy = j ? malloc(len + 1) : NULL;
    if (copy) {
        memcpy(copy, line, len);
        copy[len] = '\0';
        *j = (struct job){.s = s, .text = copy, .len = len, .slot = slot};
        jobs[slot].done = 0;
        if (pthread_create(&jobs[slot].thread, NULL, run_job, j) == 0) {
            jobs[slot].used = 1;
            return;
        }
    }
    free(j);
    free(copy);
    /* No thread: answer the request here, in order (it still gets its answer). */
    mcp_session_handle(s, line, len, emit_line, NULL);
}

int mcp_stdio_run(const char *home)
{
    signal(SIGPIPE, SIG_IGN); /* a client gone: writes fail, the reader sees EOF */
    struct mcp_session *s = mcp_session_new(home, "stdio");
    if (!s) {
        log_line("out of memory");
        return 1;
    }
    log_line("ready (MCP over stdio; logs go to stderr)");
    size_t cap = 64 * 1024, len = 0;
    char *line = malloc(cap);
    int too_big = 0;
    for (;;) {
        int ch = line ? getchar_unlocked() : EOF;
        if (ch == EOF)
            break;
        if (ch != '\n') {
            if (too_big)
                continue;
            if (len + 1 >= cap) {
                if (cap > MCP_MESSAGE_MAX) {
                    too_big = 1; /* drop the rest of the line, then say so */
                    continue;
                }
                char *grown = realloc(line, cap * 2);
                if (!grown) {
                    too_big = 1;
                    continue;
                }
                line = grown;
                cap *= 2;
            }
            line[len++] = (char)ch;
            continue;
        }
        if (too_big) {
            char why[128];
            snprintf(why, sizeof(why), "a message was larger than %u bytes, the bound: it was dropped",
                     MCP_MESSAGE_MAX);
            size_t n;
            char *text = jrpc_dump(jrpc_error(NULL, JRPC_INVALID_REQUEST, why), &n);
            if (text)
                emit_line(NULL, text, n);
            free(text);
        } else if (len > 0 && !(len == 1 && line[0] == '\r')) {
            dispatch(s, line, len);
        }
        len = 0;
        too_big = 0;
    }
    free(line);
    log_line("stdin closed: ending the session");
    /* Requests already read get EOF_GRACE_S to finish (a client that pipes its messages
     * and closes stdin still gets its answers); then running calls are cancelled (their
     * execs killed): the client is gone. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += EOF_GRACE_S;
    pthread_mutex_lock(&jobs_lock);
    for (;;) {
        int running = 0;
        for (int i = 0; i < JOBS_MAX; i++)
            running += jobs[i].used && !jobs[i].done;
        if (!running || pthread_cond_timedwait(&jobs_done, &jobs_lock, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&jobs_lock);
    mcp_session_interrupt(s);
    reap_jobs(1);
    mcp_session_end(s, log_line); /* long commands killed, boxes removed */
    return 0;
}
