/* A framed, non-blocking protocol connection: an inbound buffer that yields whole
 * validated frames and a bounded outbound queue. Used by the agent (virtio port),
 * cocoon-vmm (agent channel and control clients) and libcocoon (control socket). */
#ifndef COCOON_PROTO_CONN_H
#define COCOON_PROTO_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

/* Bytes waiting to be written to a non-blocking fd: buf[off..len), capacity cap. */
struct proto_bytes {
    uint8_t *buf;
    size_t off, len, cap;
};
/* Makes room for n more bytes at buf + len: compacts the queue first, then grows it by
 * doubling (from first_cap, > 0, when it has none). 0, or -1 when out of memory (the
 * queue is then unchanged). */
int proto_bytes_reserve(struct proto_bytes *q, size_t n, size_t first_cap);

struct proto_conn {
    int fd;
    uint8_t *in; /* capacity 2 * PROTO_MAX_FRAME */
    size_t in_len, in_off;
    struct proto_bytes out;
    size_t out_limit; /* queueing beyond this fails with PROTO_E_NOMEM */
    int eof;          /* peer closed its side */
    int is_socket;    /* send() with MSG_NOSIGNAL instead of write() */
    int corked;       /* proto_conn_send queues without writing (proto_conn_uncork) */
};

/* out_limit: most bytes that may wait to be written (0 picks 8 MiB). */
int proto_conn_init(struct proto_conn *c, int fd, size_t out_limit);
void proto_conn_free(struct proto_conn *c); /* does not close fd */

/* Reads what the fd has now (non-blocking). Returns bytes read, 0 at EOF (sets eof),
 * -1 with errno (EAGAIN when nothing is there). */
long proto_conn_read(struct proto_conn *c);
/* Next complete frame from the inbound buffer: PROTO_OK (payload valid until the next
 * call), PROTO_NEED_MORE, or a PROTO_E_* status (the stream is then unusable). */
int proto_conn_next(struct proto_conn *c, struct proto_header *h, const uint8_t **payload);
/* Queues a frame and tries to write. 0 ok, -1 when the queue limit is hit or the fd failed. */
int proto_conn_send(struct proto_conn *c, const void *frame, size_t len);
/* Writes queued bytes. 0 when all written or EAGAIN, -1 on a write error. */
int proto_conn_flush(struct proto_conn *c);
/* Frames sent between cork and uncork leave in one write, so the peer wakes once for
 * them (an EXEC and its STDIN_EOF, a batch relayed together). Uncork writes what is
 * queued: 0, or -1 on a write error, as proto_conn_flush. */
static inline void proto_conn_cork(struct proto_conn *c) { c->corked = 1; }
int proto_conn_uncork(struct proto_conn *c);
static inline size_t proto_conn_pending(const struct proto_conn *c) { return c->out.len - c->out.off; }

#endif
