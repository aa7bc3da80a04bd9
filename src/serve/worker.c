/* Detached worker threads of the server: one per streamed log or slow job, each
 * ending on its own when its work or its reader is gone. */
#include "serve/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct job {
    void (*fn)(void *arg, int fd);
    void (*plain)(void *arg);
    void *arg;
    void (*free_arg)(void *arg);
    int fd;
};

static void *run(void *p)
{
    struct job *j = p;
    if (j->fn) {
        j->fn(j->arg, j->fd);
        close(j->fd);
    } else {
        j->plain(j->arg);
    }
    if (j->free_arg)
        j->free_arg(j->arg);
    free(j);
    return NULL;
}

static int spawn(struct job *j)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 2u << 20);
    pthread_t t;
    int rc = pthread_create(&t, &attr, run, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

int worker_pipe(void (*fn)(void *arg, int fd), void *arg, void (*free_arg)(void *arg))
{
    int p[2];
    struct job *j = calloc(1, sizeof(*j));
    if (!j || pipe2(p, O_CLOEXEC) < 0) {
        free(j);
        if (free_arg)
            free_arg(arg);
        return -1;
    }
    j->fn = fn;
    j->arg = arg;
    j->free_arg = free_arg;
    j->fd = p[1];
    if (spawn(j) < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        if (free_arg)
            free_arg(arg);
        free(j);
        errno = e;
        return -1;
    }
    return p[0];
}

int worker_start(void (*fn)(void *arg), void *arg)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -1;
    j->plain = fn;
    j->arg = arg;
    if (spawn(j) < 0) {
        free(j);
        return -1;
    }
    return 0;
}
