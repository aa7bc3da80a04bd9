/* The control-socket relay: control clients on ctl.sock, each with its own exec
 * stream ids, multiplexed onto the one agent channel with ids rewritten both ways. */
#ifndef COCOON_MONITOR_MUX_H
#define COCOON_MONITOR_MUX_H

#include <stdint.h>

#include "proto/proto.h"

struct vmm;
struct mux;
struct client;

#define MUX_MAX_CLIENTS 256
#define MUX_MAX_ROUTES 4096
#define MUX_MAX_ROUTES_PER_CLIENT 1024
#define MUX_CLIENT_OUT_LIMIT (4u * 1024 * 1024) /* plus the window of each open stream */
#define MUX_MAX_WINDOW (16u * 1024 * 1024)      /* a larger EXEC window is refused */

/* The relay of a monitor (NULL when out of memory), and freeing it. */
struct mux *mux_new(struct vmm *v);
void mux_free(struct mux *m); /* closes every client */
void mux_on_listen(struct mux *m);
/* A client's socket is readable or writable (events from epoll). */
void mux_on_client(struct mux *m, struct client *c, uint32_t events);
/* A validated frame from the agent once the box is running. */
void mux_on_agent_frame(struct mux *m, const struct proto_header *h, const uint8_t *payload);
/* The monitor's own exec (the box's main process, mainproc.c): opened like a client's,
 * with no client; its frames go to mainproc_on_frame. The agent's stream id, or 0 when
 * it cannot be sent. */
uint32_t mux_open_own(struct mux *m, const struct proto_exec *ex);
/* The same with the exec's stdin left open (a main process started with -i or -t). */
uint32_t mux_open_own_stdin(struct mux *m, const struct proto_exec *ex);
/* Queues a frame to the client with this serial unless more than limit bytes already
 * wait for it: 1 queued, 0 skipped (it reads too slowly), -1 it is gone. */
int mux_send_bounded(struct mux *m, uint64_t serial, const void *frame, size_t len, size_t limit);
/* Sends a signal to the process group of one of the monitor's own execs, if it still runs. */
void mux_signal_own(struct mux *m, uint32_t agent_id, int sig);
/* Queues a frame to the client with this serial, if it is still connected. */
void mux_send_to(struct mux *m, uint64_t serial, const void *frame, size_t len);
/* SIGKILL every running exec (the caller is gone). */
void mux_kill_all(struct mux *m);
/* Clients are read only while the agent's outbound queue is short. */
void mux_set_backlogged(struct mux *m, int backlogged);
/* Frees clients closed during the last epoll batch (their events may still be queued). */
void mux_reap(struct mux *m);

#endif
