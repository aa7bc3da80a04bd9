/* Detached execs (`cocoon exec -d`): commands a client asks the monitor to run and
 * keep, so they outlive the client. Their output goes to DIR/execs/<pid>.log (rotated
 * above 1 MiB), their end to DIR/execs/<pid>.json; both stay until the box's next
 * start, for the newest DETACHED_KEPT of them. */
#ifndef COCOON_MONITOR_DETACHED_H
#define COCOON_MONITOR_DETACHED_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define DETACHED_RUNNING_MAX 64 /* at once; more are refused (EAGAIN) */
#define DETACHED_KEPT 32        /* finished ones whose files are kept; older ones are removed */

struct vmm;
/* A fresh DIR/execs/ (a new boot keeps nothing of the last one's); before the jail. */
int detached_open(struct vmm *v, char *err, size_t cap);
/* VMM_EXEC_DETACHED from client `serial`: 0 started (the client is answered once its
 * pid is known), or -1 with an errno-style code and a message for the client. */
int detached_start(struct vmm *v, uint64_t serial, const struct proto_exec *ex, int *code, char *msg, size_t cap);
/* A frame of an exec the monitor runs: 1 when it was one of the detached ones. */
int detached_on_frame(struct vmm *v, uint32_t stream, const struct proto_header *h, const uint8_t *p);
void detached_close(struct vmm *v);

#endif
