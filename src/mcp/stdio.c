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

struct job {
    struct mcp_session *s;
    char *text;
    size_t len;
};

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_done = PTHREAD_COND_INITIALIZER;
static unsigned jobs_running;

static void *run_job(void *p)
{
    struct job *j = p;
    mcp_session_handle(j->s, j->text, j->len, emit_line, NULL);
    free(j->text);
    free(j);
    pthread_mutex_lock(&jobs_lock);
    jobs_running--;
    pthread_cond_broadcast(&jobs_done);
    pthread_mutex_unlock(&jobs_lock);
    return NULL;
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
    struct job *j = malloc(sizeof(*j));
    char *copy = malloc(len + 1);
    pthread_mutex_lock(&jobs_lock);
    int room = jobs_running < MCP_INFLIGHT_MAX + 4;
    if (room && j && copy)
        jobs_running++;
    pthread_mutex_unlock(&jobs_lock);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (room && j && copy) {
        memcpy(copy, line, len);
        copy[len] = '\0';
        *j = (struct job){.s = s, .text = copy, .len = len};
        if (pthread_create(&t, &attr, run_job, j) == 0) {
            pthread_attr_destroy(&attr);
            return;
        }
        pthread_mutex_lock(&jobs_lock);
        jobs_running--;
        pthread_mutex_unlock(&jobs_lock);
    }
    pthread_attr_destroy(&attr);
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
    while (jobs_running && pthread_cond_timedwait(&jobs_done, &jobs_lock, &until) == 0)
        ;
    pthread_mutex_unlock(&jobs_lock);
    mcp_session_interrupt(s);
    pthread_mutex_lock(&jobs_lock);
    while (jobs_running)
        pthread_cond_wait(&jobs_done, &jobs_lock);
    pthread_mutex_unlock(&jobs_lock);
    mcp_session_end(s, log_line); /* long commands killed, boxes removed */
    return 0;
}
