/* Rotating log files (util/rotlog.h): the guest's console and the monitor's log (and,
 * by rotlog_rotate, the network log). The writer keeps its fd number across rotations
 * (dup3), so nothing else has to follow it. */
#include "util/rotlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_log(struct rotlog *l, int flags)
{
    return openat(l->dirfd, l->name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | flags, 0600);
}

int rotlog_open(struct rotlog *l, int dirfd, const char *name, uint64_t max, int fresh)
{
    memset(l, 0, sizeof(*l));
    l->dirfd = dirfd;
    l->max = max;
    l->fd = -1;
    if (snprintf(l->name, sizeof(l->name), "%s", name) >= (int)sizeof(l->name) - 2) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (fresh) {
        char old[sizeof(l->name) + 2];
        snprintf(old, sizeof(old), "%s.1", name);
        unlinkat(dirfd, old, 0);
    }
    l->fd = open_log(l, fresh ? O_TRUNC : 0);
    if (l->fd < 0)
        return -1;
    struct stat st;
    l->size = fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return 0;
}

int rotlog_rotate(int dirfd, const char *name, int fd)
{
    char old[NAME_MAX + 1];
    if (snprintf(old, sizeof(old), "%s.1", name) >= (int)sizeof(old))
        return -1;
    int fresh = -1;
    if (renameat(dirfd, name, dirfd, old) == 0)
        fresh = openat(dirfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fresh < 0 || dup3(fresh, fd, O_CLOEXEC) < 0) {
        if (fresh >= 0)
            close(fresh);
        return -1;
    }
    close(fresh);
    return 0;
}

static void rotate(struct rotlog *l)
{
    if (rotlog_rotate(l->dirfd, l->name, l->fd) < 0) {
        l->stopped = 1;
        return;
    }
    l->size = 0;
    l->rotations++;
}

void rotlog_write(struct rotlog *l, const void *buf, size_t n)
{
    if (l->fd < 0 || l->stopped) {
        l->dropped += n;
        return;
    }
    if (l->size + n > l->max && l->size > 0) {
        rotate(l);
        if (l->stopped) {
            l->dropped += n;
            return;
        }
    }
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(l->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            l->dropped += n; /* the disk is full: the box goes on without its log */
            return;
        }
        l->size += (uint64_t)w;
        p += w;
        n -= (size_t)w;
    }
}

void rotlog_close(struct rotlog *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}
