/* cocoon-vmm's log: timestamped lines appended to the box's vmm.log, which is what
 * libcocoon shows when the monitor dies without a word on the ready fd. */
#ifndef COCOON_VMM_LOG_H
#define COCOON_VMM_LOG_H

/* Directs the log to fd (O_APPEND); before this, lines go to stderr. */
void vmm_log_set_fd(int fd);
int vmm_log_fd(void);
void vmm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
