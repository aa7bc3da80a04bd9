/* The network stack inside cocoon-vmm (QEMU backend): the `-netdev stream` link to
 * QEMU, the stack's fd in the monitor's epoll set, and net.log. */
#ifndef COCOON_VMM_NET_GLUE_H
#define COCOON_VMM_NET_GLUE_H

#include <stddef.h>
#include <stdint.h>

struct vmm;
/* Before QEMU starts: the socketpair (v->plan.net_fd is QEMU's end), when the box has
 * networking. -1 with a message in err. */
int net_glue_prepare(struct vmm *v, char *err, size_t cap);
/* After QEMU started: the stack, the watches, net.log. */
int net_glue_start(struct vmm *v, char *err, size_t cap);
void net_glue_on_link(struct vmm *v, uint32_t events);
void net_glue_on_stack(struct vmm *v);
void net_glue_free(struct vmm *v);

#endif
