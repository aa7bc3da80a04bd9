/* File descriptor chores (util/fd.h). */
#include "util/fd.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

void util_fd_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Reads into in, or writes out when in is NULL. */
static ssize_t transfer(int fd, uint8_t *in, const uint8_t *out, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = in ? pread(fd, in + done, len - done, (off_t)(off + done))
                       : pwrite(fd, out + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

ssize_t util_pread_full(int fd, void *buf, size_t len, uint64_t off) { return transfer(fd, buf, NULL, len, off); }

ssize_t util_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    return transfer(fd, NULL, buf, len, off);
}

static int all_or_error(ssize_t moved, size_t len)
{
    if (moved == (ssize_t)len)
        return 0;
    if (moved >= 0)
        errno = EIO;
    return -1;
}

int util_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    return all_or_error(transfer(fd, buf, NULL, len, off), len);
}

int util_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    return all_or_error(transfer(fd, NULL, buf, len, off), len);
}

int util_epoll_set(int epfd, int op, int fd, uint32_t events, void *ptr)
{
    struct epoll_event e = {.events = events, .data.ptr = ptr};
    return epoll_ctl(epfd, op, fd, &e);
}

int util_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}
