/* cocoon-vmm's log: timestamped lines appended to the box's vmm.log, which is what
 * libcocoon shows when the monitor dies without a word on the ready fd. */
#ifndef COCOON_UTIL_LOG_H
#define COCOON_UTIL_LOG_H

#include <stdint.h>

/* vmm.log becomes vmm.log.1 above this (COCOON_VMM_LOG_MAX=BYTES changes it): a box that
 * lives long, with many clients, keeps at most about twice this much of it. */
#define VMM_LOG_DEFAULT_BYTES (4u * 1024 * 1024)
uint64_t vmm_log_max_bytes(void);
/* Opens dirfd/name as the log, rotated (util/rotlog.h). The fd, or -1 with errno. */
int vmm_log_open(int dirfd, const char *name);
/* Directs the log to fd (O_APPEND); before this, lines go to stderr. */
void vmm_log_set_fd(int fd);
int vmm_log_fd(void);
void vmm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For lines a guest can cause at will: the first VMM_LOG_GUEST_MAX are written, then
 * one notice, then nothing, so a hostile guest cannot fill the host's disk. */
#define VMM_LOG_GUEST_MAX 100
void vmm_log_guest(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
