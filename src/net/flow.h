/* The stack's UDP and ICMP echo flows: one connected host socket per guest port (or
 * echo id) and destination, made at the guest's first datagram, dropped after
 * FLOW_IDLE_MS without traffic, at most cfg.max_udp of them. A published UDP port's
 * host clients are flows too (they share the listener's socket). */
#ifndef COCOON_NET_FLOW_H
#define COCOON_NET_FLOW_H

#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>

#include "net/internal.h"

#define FLOW_IDLE_MS 60000

enum flow_kind { FLOW_UDP, FLOW_ICMP, FLOW_PUBLISHED };

struct flow {
    struct nwatch w;
    int fd; /* own socket (UDP, ICMP); the listener's for published, not the flow's to close */
    enum flow_kind kind;
    uint16_t gport;          /* guest port (UDP) or guest echo id (ICMP) */
    uint32_t rip;            /* remote address as the guest sees it */
    uint16_t rport;          /* remote port (UDP); our alias port (published) */
    struct sockaddr_in peer; /* published: the host client */
    uint16_t guest_port;     /* published: the guest's port */
    uint64_t last;           /* ms of the latest datagram either way */
    struct flow *next;
};

/* The flow of that kind for gport, rip and rport, or NULL. */
struct flow *flow_find(struct net_stack *s, enum flow_kind kind, uint16_t gport, uint32_t rip, uint16_t rport);
/* The flow for gport, rip and rport, made when missing with a datagram socket of
 * proto (0: UDP, IPPROTO_ICMP) connected to cip:cport and watched for replies
 * (NW_UDP or NW_ICMP objects). NULL when the flows are at their cap or no socket,
 * memory or watch could be had. */
struct flow *flow_open(struct net_stack *s, enum flow_kind kind, uint16_t gport, uint32_t rip, uint16_t rport,
                       uint32_t cip, uint16_t cport, uint64_t now);
/* A new flow of kind on fd, which it owns from now on unless published; NULL over the
 * memory budget (fd is then the caller's). The caller fills in the addresses. */
struct flow *flow_new(struct net_stack *s, enum flow_kind kind, int fd, uint64_t now);
/* Sends the guest's len bytes of data through f's socket, without waiting; the flow
 * was active at now. A datagram the socket refuses is counted as dropped. */
void flow_send(struct net_stack *s, struct flow *f, const void *data, size_t len, uint64_t now);
/* What a flow's host socket received: one datagram (data is only valid during the call). */
typedef void (*flow_deliver_fn)(struct net_stack *s, struct flow *f, const uint8_t *data, size_t len);
/* Reads the datagrams waiting on f's socket without waiting, at most 16 a call so one
 * flow cannot hold the loop, and hands each to deliver (the flow was active at now). */
void flow_drain(struct net_stack *s, struct flow *f, uint64_t now, flow_deliver_fn deliver);
/* Closes f's own socket and frees f (after the current batch of events). */
void flow_free(struct net_stack *s, struct flow *f);
/* Frees the flows idle for FLOW_IDLE_MS; lowers *next (0: none yet) to the earliest
 * expiry left. */
void flow_tick(struct net_stack *s, uint64_t now, uint64_t *next);
/* Frees every flow (the stack is going away). */
void flow_free_all(struct net_stack *s);

#endif
