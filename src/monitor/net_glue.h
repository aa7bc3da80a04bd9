/* The network stack inside cocoon-vmm, for both backends: the link to the VMM child's
 * network device (4-byte length + frame), the stack's fd in the monitor's epoll set,
 * net.log and net.stats.json. */
#ifndef COCOON_MONITOR_NET_GLUE_H
#define COCOON_MONITOR_NET_GLUE_H

#include <stddef.h>
#include <stdint.h>

struct vmm;
/* Before the child starts: the socketpair, when the box has networking; *child_end is
 * the child's end (CHILD_NET_FD) or -1. -1 with a message in err. */
int net_glue_prepare(struct vmm *v, int *child_end, char *err, size_t cap);
/* After the child started: the stack, the watches, net.log. */
int net_glue_start(struct vmm *v, char *err, size_t cap);
/* The link to the child is readable/writable; the stack's own fd is readable (its
 * host sockets or timers); freeing (writes net.stats.json a last time). */
void net_glue_on_link(struct vmm *v, uint32_t events);
void net_glue_on_stack(struct vmm *v);
void net_glue_free(struct vmm *v);
/* Sends the agent BOX_TRUST (the box CA, the variables of every command) when the box
 * intercepts TLS; nothing otherwise. Right after CONFIG. */
void net_glue_send_trust(struct vmm *v);

#endif
