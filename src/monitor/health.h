/* The box's health check, run by its monitor: an exec in the guest every interval once
 * the box runs, killed past its timeout; starting/healthy/unhealthy, the failing streak
 * and the last results go to DIR/health.state.json (docs/internals.md, "Health checks"). */
#ifndef COCOON_MONITOR_HEALTH_H
#define COCOON_MONITOR_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct vmm;
/* Reads DIR/health.json (none: no check) and makes its timer; before the jail. */
int health_open(struct vmm *v, char *err, size_t cap);
/* The guest is ready: the first check comes one interval later. */
void health_start(struct vmm *v);
/* The main process was started again: the start period begins anew. */
void health_main_restarted(struct vmm *v);
/* The health timer fired: a check is due, or the running one is past its timeout. */
void health_on_timer(struct vmm *v);
/* A frame of an exec the monitor runs: 1 when it was the health check's. */
int health_on_frame(struct vmm *v, uint32_t stream, const struct proto_header *h, const uint8_t *p);
void health_close(struct vmm *v);

#endif
