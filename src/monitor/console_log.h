/* The guest's serial console, for both backends: the child writes it to a socket and
 * the monitor keeps it in DIR/console.log, rotated (console.log.1) so that a guest
 * printing without end cannot fill the host's disk. */
#ifndef COCOON_MONITOR_CONSOLE_LOG_H
#define COCOON_MONITOR_CONSOLE_LOG_H

#include <stddef.h>
#include <stdint.h>

/* Above this console.log becomes console.log.1: at most about twice this per box.
 * COCOON_CONSOLE_LOG_MAX=BYTES in the monitor's environment changes it. */
#define CONSOLE_LOG_DEFAULT_BYTES (4u * 1024 * 1024)
#define CONSOLE_LOG_MIN_BYTES 4096u
/* The rotation bound in effect (the default, or COCOON_CONSOLE_LOG_MAX). */
uint64_t console_log_max_bytes(void);

struct vmm;
/* Before the child starts: a fresh console.log and the pipe; *child_end is the child's
 * end (CHILD_CONSOLE_FD, written), the caller closes it once the child has it. */
int console_log_open(struct vmm *v, int *child_end, char *err, size_t cap);
/* The console's events: reads what the child wrote (bounded per call; the loop comes
 * back) into the log, then leaves the pipe alone for a moment so output is read in
 * batches. */
void console_log_drain(struct vmm *v);
/* Everything the child wrote, now (it has exited: its last words matter). */
void console_log_flush(struct vmm *v);
/* Closes the channel and the log (logging how often it rotated or dropped). */
void console_log_close(struct vmm *v);

#endif
