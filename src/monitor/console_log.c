/* The console relay (console_log.h). The log file is the monitor's: the child never
 * holds it, so a VMM child cannot write anywhere on the host, and both backends get
 * the same bound. */
#include "monitor/console_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "monitor/monitor.h"
#include "util/log.h"
#include "util/rotlog.h"
#include "util/util.h"

/* Read per event: a flooding guest shares the loop with everything else. */
#define DRAIN_PER_EVENT (256u * 1024)
/* After a small read the pipe is left alone for BATCH_MS, so output arriving byte by
 * byte (a UART: QEMU writes each character on its own) is read in batches, at most
 * 500 wake-ups a second instead of several system calls per byte. The pipe holds
 * what comes meanwhile (64 KiB); when it is full the guest's console waits. */
#define BATCH_MS 2
#define BATCH_MIN (4u * 1024)
/* What a flush reads at most: more than the pipe holds, so all the child left; a
 * writer somehow still alive cannot keep the monitor in it. */
#define FLUSH_MAX (4u * DRAIN_PER_EVENT)

struct console_log {
    int fd; /* the pipe's read end */
    struct watch w, w_batch;
    int batch_fd; /* timerfd: the end of a pause */
    int paused;   /* fd is out of the epoll set until batch_fd fires */
    struct rotlog log;
};

uint64_t console_log_max_bytes(void)
{
    return util_env_bytes("COCOON_CONSOLE_LOG_MAX", CONSOLE_LOG_DEFAULT_BYTES, CONSOLE_LOG_MIN_BYTES);
}

int console_log_open(struct vmm *v, int *child_end, char *err, size_t cap)
{
    struct console_log *c = calloc(1, sizeof(*c));
    /* A pipe, not a socket: the kernel packs a UART's one-byte writes into pages, where
     * a stream socket queues each byte in a buffer of its own (a kilobyte of kernel
     * memory and work per byte, for the writer and for us). */
    int p[2];
    if (!c || pipe2(p, O_CLOEXEC) < 0) {
        free(c);
        snprintf(err, cap, "cannot create the console channel: %s", strerror(errno));
        return -1;
    }
    c->fd = p[0];
    c->w.kind = c->w_batch.kind = W_CONSOLE;
    v->console = c;
    *child_end = p[1];
    util_set_nonblock(c->fd, 1);
    c->batch_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (c->batch_fd < 0 || vmm_watch(v, c->batch_fd, EPOLLIN, &c->w_batch) < 0) {
        snprintf(err, cap, "cannot create the console timer: %s", strerror(errno));
        return -1;
    }
    /* A fresh log per boot: its tail must describe this boot, not the last one. */
    if (rotlog_open(&c->log, v->dirfd, "console.log", console_log_max_bytes(), 1) < 0) {
        snprintf(err, cap, "cannot create %s/console.log: %s", v->box_dir, strerror(errno));
        return -1;
    }
    if (vmm_watch(v, c->fd, EPOLLIN, &c->w) < 0) {
        snprintf(err, cap, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* The child closed its end (it is exiting): nothing more to read, nor to wait for. A
 * pause's timer left armed would stay readable and wake the loop for ever. */
static void stop_reading(struct vmm *v, struct console_log *c)
{
    if (!c->paused)
        vmm_unwatch(v, c->fd);
    close(c->fd);
    c->fd = -1;
    vmm_unwatch(v, c->batch_fd);
    close(c->batch_fd);
    c->batch_fd = -1;
    c->paused = 0;
}

/* Up to `most` bytes into the log: how many were read. When batching, a short read
 * ends it: what trickles in meanwhile waits for the next batch. */
static size_t drain(struct vmm *v, struct console_log *c, size_t most, int batching)
{
    char buf[16384];
    size_t done = 0;
    while (c->fd >= 0 && done < most) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                stop_reading(v, c);
            break;
        }
        rotlog_write(&c->log, buf, (size_t)n);
        done += (size_t)n;
        if ((size_t)n < sizeof(buf) && batching)
            break;
    }
    return done;
}

void console_log_drain(struct vmm *v)
{
    struct console_log *c = v->console;
    if (!c || c->fd < 0)
        return;
    if (c->paused) {
        uint64_t ticks;
        if (read(c->batch_fd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks))
            return; /* the pause is not over */
        /* should the pipe not go back into the set, it stays paused: the timer reads it */
        if (vmm_watch(v, c->fd, EPOLLIN, &c->w) == 0)
            c->paused = 0;
    }
    size_t got = drain(v, c, DRAIN_PER_EVENT, 1);
    if (c->fd < 0 || (!c->paused && (got == 0 || got >= BATCH_MIN)))
        return;
    struct itimerspec its = {.it_value.tv_nsec = BATCH_MS * 1000000L};
    if (timerfd_settime(c->batch_fd, 0, &its, NULL) == 0 && !c->paused) {
        vmm_unwatch(v, c->fd);
        c->paused = 1;
    }
}

void console_log_flush(struct vmm *v)
{
    struct console_log *c = v->console;
    if (c)
        drain(v, c, FLUSH_MAX, 0);
}

void console_log_close(struct vmm *v)
{
    struct console_log *c = v->console;
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    if (c->batch_fd >= 0)
        close(c->batch_fd);
    if (c->log.rotations || c->log.dropped)
        vmm_log("console: %llu rotation(s), %llu byte(s) not logged", (unsigned long long)c->log.rotations,
                (unsigned long long)c->log.dropped);
    rotlog_close(&c->log);
    free(c);
    v->console = NULL;
}
