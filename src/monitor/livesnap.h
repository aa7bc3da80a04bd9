/* Live disk snapshots of a running box on the qemu backend (livesnap.c): the guest is
 * quiesced, QEMU paused and switched to a new top layer the client made, the box's
 * disk.qcow2 renamed to it, and the box resumed. */
#ifndef COCOON_MONITOR_LIVESNAP_H
#define COCOON_MONITOR_LIVESNAP_H

#include <stdint.h>

#include "proto/proto.h"

/* The new top layer libcocoon makes in the box directory before it asks (its backing
 * file is the snapshot's layer), disk.next-<snapshot id>.qcow2; renamed over
 * disk.qcow2 by the monitor, the commit. A name of its own per snapshot: QEMU reopens
 * the running top read-only by its file name when a later snapshot puts a layer over
 * it, and that name must then name no file at all (the reopen fails, harmlessly)
 * rather than another snapshot's new layer. */
#define LIVESNAP_NEXT_PREFIX "disk.next-"
#define LIVESNAP_NEXT_SUFFIX ".qcow2"
#define LIVESNAP_NEXT_FMT LIVESNAP_NEXT_PREFIX "%.12s" LIVESNAP_NEXT_SUFFIX
/* 1 when name is disk.next-<12 lowercase hex digits>.qcow2. */
static inline int livesnap_next_name_ok(const char *name)
{
    const char *p = name;
    for (const char *q = LIVESNAP_NEXT_PREFIX; *q; q++, p++)
        if (*p != *q)
            return 0;
    for (int i = 0; i < 12; i++, p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    for (const char *q = LIVESNAP_NEXT_SUFFIX; *q; q++, p++)
        if (*p != *q)
            return 0;
    return *p == 0;
}

/* A fork's memory and device state, linked into a new box's directory by libcocoon:
 * its monitor starts QEMU from it (and removes the link first: a later start is a cold
 * boot). memory.next is where a capture writes (a link to the snapshot's file). */
#define LIVESNAP_RESTORE "memory.restore"
#define LIVESNAP_MEMORY "memory.next"

struct vmm;
/* Before the child's plan is final: a box with memory.restore (qemu backend) gets
 * `-incoming fd:7` and v->restore_fd. */
void livesnap_restore_prepare(struct vmm *v);
/* After the child started from a restore: waits (QMP) until QEMU runs the restored
 * guest, then sends RESTORED; the agent answers READY. -1 with err. */
int livesnap_restore_begin(struct vmm *v, char *err, size_t cap);
/* Before the jail (its seccomp filter allows no new timerfd): the wait's timer. */
int livesnap_open(struct vmm *v);
/* A client (by serial) asked for a live snapshot. 0: under way (the client gets
 * VMM_SNAPSHOT or ERROR later); -1: refused at once, code and err say why. */
int livesnap_request(struct vmm *v, uint64_t serial, const struct proto_snapshot *req, int *code, char *err,
                     size_t cap);
/* The agent's FROZEN. */
void livesnap_on_frozen(struct vmm *v, const struct proto_frozen *f);
/* The wait for FROZEN timed out. */
void livesnap_on_timer(struct vmm *v);
void livesnap_close(struct vmm *v);

#endif
