/* `cocoon-vmm --jail-probe DIR [ATTACK]` (jail_probe.c): a box's jail seen from inside. */
#ifndef COCOON_MONITOR_JAIL_PROBE_H
#define COCOON_MONITOR_JAIL_PROBE_H

#include <stddef.h>

#include "monitor/monitor.h"

/* v: a monitor with the box's config and child plan loaded (no VM started). Enters the
 * jail, reports what it sees on stdout, then tries ATTACK (exec, open-by-handle,
 * unshare, netlink, mount),
 * which the filter must stop (exit JAIL_SECCOMP_EXIT). Returns the exit status: 0 when
 * every look was right (and no attack was asked), 1 otherwise; -1 with a message when
 * the jail cannot be entered. */
int jail_probe_main(struct vmm *v, const char *what, char *err, size_t cap);

#endif
