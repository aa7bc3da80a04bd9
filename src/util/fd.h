/* File descriptor chores repeated across the monitor, the VMM, the disk code and the
 * network stack: closing a descriptor that may not be open, whole positional reads and
 * writes, and epoll registrations that carry a pointer to their owner. */
#ifndef COCOON_UTIL_FD_H
#define COCOON_UTIL_FD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Closes *fd when it is open (>= 0) and sets it to -1. */
void util_fd_close(int *fd);
/* pread/pwrite of all len bytes at off, across short transfers and EINTR. Returns the
 * bytes moved: len, or fewer when the file ends (read) or the write makes no progress;
 * -1 with errno on an error. */
ssize_t util_pread_full(int fd, void *buf, size_t len, uint64_t off);
ssize_t util_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* The same, all or nothing: 0 when all len bytes moved, else -1 with errno (EIO for a
 * file that ends early or a write that makes no progress). */
int util_pread_all(int fd, void *buf, size_t len, uint64_t off);
int util_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* write(2) of all len bytes across short writes and EINTR: 0, or -1 with errno (a
 * reader that went away: EPIPE). */
int util_write_all(int fd, const void *buf, size_t len);
/* Registers fd on epfd (op EPOLL_CTL_ADD) or changes its registration (EPOLL_CTL_MOD):
 * events, with ptr as the data epoll_wait hands back. epoll_ctl's result. */
int util_epoll_set(int epfd, int op, int fd, uint32_t events, void *ptr);

#endif
