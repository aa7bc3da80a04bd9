/* The box's main process, supervised by its monitor: started once the guest is ready,
 * its output kept in DIR/main.log (rotated), its end recorded in DIR/main.state.json,
 * restarted per its policy with back-off, or else the box stops (docs/internals.md,
 * "Main process"). */
#ifndef COCOON_MONITOR_MAINPROC_H
#define COCOON_MONITOR_MAINPROC_H

#include <stddef.h>
#include <stdint.h>

#include "boxcfg/mainspec.h"
#include "proto/proto.h"

struct vmm;
/* Reads DIR/main.json (none: no main process) and opens main.log; before the jail. */
int mainproc_open(struct vmm *v, char *err, size_t cap);
/* The guest is ready, or the back-off is over: the main process starts. */
void mainproc_start(struct vmm *v);
/* Kills the running main process (its restart policy applies then): 1 when one ran. */
int mainproc_kill(struct vmm *v);
/* 1 when the box has a main process. */
int mainproc_present(const struct vmm *v);
/* A frame of an exec the monitor runs (mux.c routes them here): 1 when it was the
 * main process's. */
int mainproc_on_frame(struct vmm *v, uint32_t stream, const struct proto_header *h, const uint8_t *p);
/* The running main process as attachers see it (attach.c): 0 with io filled while it
 * runs (or is starting); -1 with why not in msg. */
struct mainproc_io {
    uint32_t stream; /* the agent's stream id */
    int pid, tty, open_stdin;
};
int mainproc_io(const struct vmm *v, struct mainproc_io *io, char *msg, size_t cap);
/* Input from an attacher for a main process started with open stdin: 0 sent (or held,
 * up to 64 KiB, until the agent says the process started), -1 when its stdin window is
 * full (the guest did not take the earlier input yet). */
int mainproc_stdin(struct vmm *v, const uint8_t *p, size_t n);
/* The monitor exits: a main process still running (or waiting to restart) is
 * recorded as stopped; the log is closed. */
void mainproc_close(struct vmm *v);

#endif
