/* The byte ring that holds one direction of a TCP connection's data. A ring starts at
 * RING_MIN bytes and doubles up to RING_MAX while it is what limits its connection,
 * every byte charged to the stack's memory budget (budget.c): an idle connection costs
 * little, a busy one gets the window it needs. A few freed smallest rings are kept,
 * still charged, for the next connections (struct ring_pool). */
#ifndef COCOON_NET_RING_H
#define COCOON_NET_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define RING_MIN (16u * 1024)  /* a new connection's rings */
#define RING_MAX (256u * 1024) /* the most a ring grows to */
#define RING_SPARE 8           /* freed smallest rings kept for reuse */

/* len bytes from buf[head], wrapping at cap. A zeroed ring has no buffer yet. */
struct ring {
    uint8_t *buf;
    size_t cap, head, len;
};

/* Freed RING_MIN buffers kept for reuse; they stay charged to the budget. */
struct ring_pool {
    uint8_t *spare[RING_SPARE];
    int n;
};

struct net_stack;

/* Gives r (zeroed, or already set up: then nothing happens) a RING_MIN buffer, from
 * s's pool or charged to s's budget. 0, or -1 over budget (noted once in net.log) or
 * without memory; r is then unchanged. */
int ring_init(struct net_stack *s, struct ring *r);
/* Returns r's buffer to s's pool (when RING_MIN and the pool has room) or frees it and
 * its charge; r is zeroed. A zeroed ring is fine. */
void ring_free(struct net_stack *s, struct ring *r);
/* Doubles r's capacity up to RING_MAX, keeping its bytes in order; growth may use at
 * most three quarters of s's budget (budget.c). 0 when it grew, -1 when it did not (r
 * is then unchanged). */
int ring_grow(struct net_stack *s, struct ring *r);
/* Frees the pool's buffers. Returns the bytes they were charged, for the caller to
 * release from the budget. */
size_t ring_pool_drain(struct ring_pool *p);

/* The ring's data as one or two pieces in iov[0..1]; returns how many (1 or 2). */
int ring_iov_data(const struct ring *r, struct iovec iov[2]);
/* The free room after the data, up to limit bytes of data in all, as one or two pieces
 * in iov[0..1]; returns how many. Bytes written there count once ring_fill says so. */
int ring_iov_space(const struct ring *r, size_t limit, struct iovec iov[2]);
/* n bytes (at most the room ring_iov_space gave) were written after the data. */
void ring_fill(struct ring *r, size_t n);
/* Copies n bytes starting off bytes into the data to dst. off + n <= r->len. */
void ring_copy_out(const struct ring *r, size_t off, uint8_t *dst, size_t n);
/* Appends n bytes; the caller checked that r->len + n <= r->cap. */
void ring_append(struct ring *r, const uint8_t *src, size_t n);
/* Drops the first n bytes of data; n <= r->len. */
void ring_drop(struct ring *r, size_t n);

#endif
