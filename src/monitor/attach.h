/* Clients attached to the box's main process (`cocoon attach`): each gets its output
 * from the moment it attached, may feed its stdin (when the main process was started
 * with -i) and resize its terminal (with -t). A slow attacher has its output skipped,
 * never the main process or main.log held back (docs/internals.md, "Attach"). */
#ifndef COCOON_MONITOR_ATTACH_H
#define COCOON_MONITOR_ATTACH_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define ATTACH_MAX 8                   /* attachers at once; more are refused (EBUSY) */
#define ATTACH_QUEUE_MAX (256u * 1024) /* bytes queued to one attacher before its output is skipped */

struct vmm;
/* VMM_ATTACH from client `serial` on its `stream`: 0 attached (answered with
 * VMM_ATTACHED), or -1 with an errno-style code and a message for the client. */
int attach_open(struct vmm *v, uint64_t serial, uint32_t stream, const struct proto_attach *a, int *code, char *msg,
                size_t cap);
/* 1 when (serial, stream) is an attacher's. */
int attach_is(const struct vmm *v, uint64_t serial, uint32_t stream);
/* A checked STDIN, STDIN_EOF, RESIZE, SIGNAL or CREDIT of a client: 1 when it was on an
 * attacher's stream (and was handled), 0 when not. */
int attach_on_client_frame(struct vmm *v, uint64_t serial, const struct proto_header *h, const uint8_t *p);
/* The client went away: its attachments end. */
void attach_client_gone(struct vmm *v, uint64_t serial);
/* The main process printed (type STDOUT or STDERR). */
void attach_output(struct vmm *v, uint16_t type, const uint8_t *p, size_t n);
/* The client's queue was written out: an attacher that had output skipped is told
 * how much now, rather than with the next output (there may be none for a while). */
void attach_on_drained(struct vmm *v, uint64_t serial);
/* The main process ended (code, signal): every attacher gets its EXIT and is let go. */
void attach_main_ended(struct vmm *v, int code, int signal);
void attach_close(struct vmm *v);

#endif
