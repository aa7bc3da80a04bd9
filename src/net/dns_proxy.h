/* The box's DNS proxy: every query the guest sends to port 53, whatever address it
 * names, over UDP or TCP. It applies the policy to the name (denied: NXDOMAIN or
 * REFUSED, logged), answers host.cocoon.internal itself, forwards the rest to the
 * upstream resolver (with EDNS0, so answers come whole), filters and pins the answer
 * (dns.c) and, over UDP, sizes it to what the client takes (TC when over). It knows
 * nothing of the transports: each query comes with a callback that carries its
 * answer back (a UDP datagram, or a write into a TCP stream). DNS over TCP's framing
 * (RFC 7766: two length bytes before each message) is here too. */
#ifndef COCOON_NET_DNS_PROXY_H
#define COCOON_NET_DNS_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "net/internal.h"
#include "net/ring.h"

#define DNS_TIMEOUT_MS 5000    /* an upstream silent this long: SERVFAIL */
#define DNS_TCP_MAX_PENDING 16 /* queries of one TCP stream in flight; more wait in its ring */
#define DNS_TCP_MSG_MAX 4096   /* the largest query taken over TCP (a longer one ends the stream) */
#define DNS_HOST_ALIAS_NAME "host.cocoon.internal"

/* Who asked, and how the answer travels back. */
struct dns_client {
    uint32_t guest;  /* the guest's address (for the log) */
    uint16_t port;   /* the guest's port */
    uint32_t server; /* the address the guest asked: the answer comes from it */
    int over_tcp;    /* 0: UDP, the answer is sized to what the query advertised */
};

/* Carries one answer back. msg (len bytes) is valid during the call only; NULL means
 * no answer will come for that query (it was malformed, or its answer was dropped).
 * It may run before dns_proxy_query returns. now: ms, as given to the proxy. */
typedef void (*dns_answer_fn)(struct net_stack *s, const struct dns_client *to, const uint8_t *msg, size_t len,
                              uint64_t now);

/* A query waiting for the upstream (an object of the stack's epoll set). */
struct dns_query {
    struct nwatch w;
    int fd; /* connected to the upstream; closed with the query */
    struct dns_client to;
    dns_answer_fn answer;
    uint16_t id;
    char name[256];
    uint16_t qtype, qclass;
    size_t udp_max; /* the largest answer this query takes over UDP */
    int strip_opt;  /* the OPT record upstream was added by us: removed from the answer */
    uint64_t deadline;
    struct dns_query *next;
};

/* Fills cfg->upstreams from /etc/resolv.conf when none are configured. */
void dns_proxy_load_upstreams(struct net_config *cfg);
/* One query from the guest (msg, len bytes: the guest's, read only during the call).
 * answer is called exactly once for it, maybe before this returns, except that
 * queries still waiting when the stack is freed get no call. now: ms. */
void dns_proxy_query(struct net_stack *s, const struct dns_client *from, const uint8_t *msg, size_t len,
                     dns_answer_fn answer, uint64_t now);
/* The upstream socket of q is readable: a valid answer is filtered and passed on, and
 * q freed; anything else is ignored (q keeps waiting until its deadline). */
void dns_proxy_on_event(struct net_stack *s, struct dns_query *q, uint64_t now);
/* Answers SERVFAIL to the queries past their deadline; lowers *next (0: none yet) to
 * the earliest deadline left. */
void dns_proxy_tick(struct net_stack *s, uint64_t now, uint64_t *next);
/* Frees every waiting query without answering it (the stack is going away). */
void dns_proxy_free_all(struct net_stack *s);

/* The DNS-over-TCP side of one connection: how many of its queries are unanswered. */
struct dns_stream {
    int pending;
};
/* Takes each whole length-prefixed query at the front of in (the guest's bytes, in
 * order) while fewer than DNS_TCP_MAX_PENDING are unanswered, and asks the proxy
 * (from, answer, now as for dns_proxy_query). 0, or -1 when the stream is not DNS (a
 * length under 12 or over DNS_TCP_MSG_MAX): the caller ends the connection. */
int dns_stream_input(struct net_stack *s, struct dns_stream *st, struct ring *in, const struct dns_client *from,
                     dns_answer_fn answer, uint64_t now);
/* One answer (msg NULL: none) for a query of st: counted, and appended to out with
 * its length prefix when out is given (growing out within the budget as needed); an
 * answer that does not fit is lost, which only a guest not reading its answers sees. */
void dns_stream_answer(struct net_stack *s, struct dns_stream *st, struct ring *out, const uint8_t *msg, size_t len);

#endif
