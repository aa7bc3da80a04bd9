/* The console relay (console_log.h). The log file is the monitor's: the child never
 * holds it, so a VMM child cannot write anywhere on the host, and both backends get
 * the same bound. */
#include "monitor/console_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "monitor/monitor.h"
#include "util/log.h"
#include "util/rotlog.h"
#include "util/util.h"

/* Read per event: a flooding guest shares the loop with everything else. */
#define DRAIN_PER_EVENT (256u * 1024)

struct console_log {
    int fd; /* our end of the socketpair */
    struct watch w;
    struct rotlog log;
};

uint64_t console_log_max_bytes(void)
{
    const char *e = getenv("COCOON_CONSOLE_LOG_MAX");
    char *end;
    unsigned long long v = e && *e ? strtoull(e, &end, 10) : 0;
    if (!v || *end)
        return CONSOLE_LOG_DEFAULT_BYTES;
    return v < CONSOLE_LOG_MIN_BYTES ? CONSOLE_LOG_MIN_BYTES : v;
}

int console_log_open(struct vmm *v, int *child_end, char *err, size_t cap)
{
    struct console_log *c = calloc(1, sizeof(*c));
    int sv[2];
    if (!c || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        free(c);
        snprintf(err, cap, "cannot create the console channel: %s", strerror(errno));
        return -1;
    }
    c->fd = sv[0];
    c->w.kind = W_CONSOLE;
    v->console = c;
    *child_end = sv[1];
    util_set_nonblock(c->fd, 1);
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

void console_log_drain(struct vmm *v)
{
    struct console_log *c = v->console;
    if (!c || c->fd < 0)
        return;
    char buf[16384];
    for (size_t done = 0; done < DRAIN_PER_EVENT;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                vmm_unwatch(v, c->fd); /* the child closed it: it is exiting */
                close(c->fd);
                c->fd = -1;
            }
            return;
        }
        rotlog_write(&c->log, buf, (size_t)n);
        done += (size_t)n;
    }
}

void console_log_close(struct vmm *v)
{
    struct console_log *c = v->console;
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    if (c->log.rotations || c->log.dropped)
        vmm_log("console: %llu rotation(s), %llu byte(s) not logged", (unsigned long long)c->log.rotations,
                (unsigned long long)c->log.dropped);
    rotlog_close(&c->log);
    free(c);
    v->console = NULL;
}
