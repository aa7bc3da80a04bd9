/* The monitor's jail steps (jail_setup.c over src/jail): plan the box's jail, enter it
 * before the VMM child starts, lock the monitor itself once the child runs. */
#ifndef COCOON_MONITOR_JAIL_SETUP_H
#define COCOON_MONITOR_JAIL_SETUP_H

#include <stddef.h>

#include "jail/jail.h"
#include "monitor/monitor.h"

/* What the child needs inside (after v->plan is built). -1 with a message. */
int jail_setup_plan(struct vmm *v, struct jail_plan *p, char *err, size_t cap);
/* Namespaces and the new root, logged with what the host did not allow. */
int jail_setup_enter(struct vmm *v, struct jail_plan *p, struct jail_state *st, char *err, size_t cap);
/* After the child started: no capabilities, no_new_privs, rlimits, the seccomp filter. */
int jail_setup_lock(struct vmm *v, const struct jail_plan *p, char *err, size_t cap);

#endif
