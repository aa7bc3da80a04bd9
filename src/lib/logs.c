/* The box's logs: the guest console (cocoon_box_logs) and the network log
 * (cocoon_box_net_logs). The monitor rotates both (NAME becomes NAME.1 above a size
 * bound: util/rotlog.c, net/netlog.c). The whole log is the old part then the current
 * one; following survives rotation like `tail -F`: the open file is read to its end
 * before the new one is opened. */
#include "lib/internal.h"

#include "util/fd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Passes in from *off to its end to the sink. 0 ok, 1 the reader went away, -1 error. */
static int drain(int in, off_t *off, const struct lib_log_sink *sink)
{
    char buf[65536];
    for (;;) {
        ssize_t n = pread(in, buf, sizeof(buf), *off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -1 : 0;
        if (sink->put(sink->arg, buf, (size_t)n) != 0)
            return 1;
        *off += n;
    }
}

int lib_write_all(int fd, const void *data, size_t n) { return util_write_all(fd, data, n) < 0; }

static int put_fd(void *arg, const char *buf, size_t n) { return lib_write_all(*(int *)arg, buf, n); }

static int same_file(int fd, const struct stat *b)
{
    struct stat a;
    return fstat(fd, &a) == 0 && a.st_ino == b->st_ino && a.st_dev == b->st_dev;
}

static int open_ro(const char *path) { return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW); }

int lib_rotating_copy(const char *path, const char *old, int out, int (*more)(void *), void *arg)
{
    struct lib_log_sink sink = {put_fd, &out, out};
    return lib_rotating_read(path, old, &sink, more, arg);
}

int lib_rotating_read(const char *path, const char *old, const struct lib_log_sink *sink, int (*more)(void *),
                      void *arg)
{
    int cur = open_ro(path), rc = 0;
    int prev = open_ro(old);
    struct stat st;
    if (prev >= 0 && cur >= 0 && fstat(prev, &st) == 0 && same_file(cur, &st)) {
        close(cur); /* rotated between the two opens: what we opened as current is old now */
        cur = open_ro(path);
    }
    if (prev >= 0) {
        off_t z = 0;
        rc = drain(prev, &z, sink);
        close(prev);
    }
    off_t off = 0;
    while (rc == 0) {
        int going = more ? more(arg) : 0; /* asked before reading: nothing written before it stops is missed */
        if (cur < 0) {
            cur = open_ro(path);
            off = 0;
        }
        if (cur >= 0) {
            if ((rc = drain(cur, &off, sink)) != 0)
                break;
            if (stat(path, &st) < 0 || !same_file(cur, &st)) {
                /* Rotated: the writer moved to a new net.log after its last write here,
                 * so this file is complete; read the rest of it, then the new one. */
                rc = drain(cur, &off, sink);
                close(cur);
                cur = -1;
                continue;
            }
            if (st.st_size < off)
                off = 0; /* truncated */
        }
        if (!going)
            break;
        /* A follower whose reader left (a pipe or socket with nobody at the other end)
         * stops now, not at the next log line, which may never come. */
        struct pollfd gone = {.fd = sink->watch_fd};
        if (poll(&gone, 1, 0) == 1 && (gone.revents & (POLLERR | POLLHUP | POLLNVAL))) {
            rc = 1;
            break;
        }
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (cur >= 0)
        close(cur);
    return rc;
}

int lib_box_running_cb(void *box) { return lib_box_running(((cocoon_box *)box)->dir, NULL); }

static int box_log_copy(cocoon_box *box, const char *name, int fd, int follow, cocoon_error *err)
{
    char path[LIB_PATH_MAX], old[LIB_PATH_MAX];
    if (lib_path(path, sizeof(path), "%s/%s", box->dir, name) < 0 ||
        lib_path(old, sizeof(old), "%s/%s.1", box->dir, name) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    if (lib_rotating_copy(path, old, fd, follow ? lib_box_running_cb : NULL, box) < 0)
        return lib_err(err, COCOON_E_IO, "cannot read %s: %s", path, strerror(errno));
    return 0;
}

int cocoon_box_logs(cocoon_box *box, int fd, int follow, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_logs: NULL box");
    return box_log_copy(box, "console.log", fd, follow, err);
}

int cocoon_box_net_logs(cocoon_box *box, int fd, int follow, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_net_logs: NULL box");
    return box_log_copy(box, "net.log", fd, follow, err);
}
