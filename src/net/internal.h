/* Shared internals of the network stack: the stack object, what its epoll set points
 * at, and the helpers of the stack's core (stack.c), its budgets (budget.c) and log
 * (netlog.c) that the protocol files call, with the entry points of udp.c and icmp.c.
 * TCP is tcp.h, the flows of UDP and ICMP flow.h, the DNS proxy dns_proxy.h, the rings
 * ring.h. Not for outside use.
 *
 * Time: nothing below the stack's top level reads the clock. Each public entry point
 * (net.h) reads it once per event and passes it down as `now`, in milliseconds of
 * CLOCK_MONOTONIC; every deadline the stack keeps is on that clock. */
#ifndef COCOON_NET_INTERNAL_H
#define COCOON_NET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"
#include "net/policy.h"
#include "net/ring.h"
#include "net/wire.h"

struct reasm;
struct tcp_conn;
struct tls_box;
struct flow;
struct dns_query;

/* What an event of the stack's epoll set points at. */
enum nw_kind { NW_TIMER, NW_TCP, NW_UDP, NW_ICMP, NW_DNS, NW_LISTEN_TCP, NW_LISTEN_UDP };
struct nwatch {
    enum nw_kind kind;
    int dead;    /* freed later in this batch: ignore */
    size_t size; /* bytes charged to the memory budget (net_object_new) */
    struct nwatch *gnext;
};

/* A published port's host socket (TCP listener or UDP socket). */
struct listener {
    struct nwatch w;
    int fd;
    struct net_port port;
    uint64_t paused_until; /* ms: out of descriptors, not watched until then (0: watched) */
};

#define TCP_HASH 4096
struct net_stack {
    struct net_config cfg;
    struct policy pol;
    net_output_fn out;
    void *user;
    int epfd, timerfd;
    struct nwatch w_timer;
    struct net_stats st;
    int link_blocked;
    int icmp_ok;         /* unprivileged ICMP sockets work here */
    int icmp_explained;  /* the note on why they do not is in net.log */
    char ping_range[64]; /* net.ipv4.ping_group_range as the stack found it */
    unsigned ping_gid;   /* our group, for that note */
    uint64_t log_size;   /* bytes in the current net.log */
    int log_sized, log_stopped;
    uint8_t frame[65536 + 64]; /* scratch for frames to the guest */
    uint16_t ip_id;

    struct tcp_conn *tcp_hash[TCP_HASH];
    struct tcp_conn *tcp_list;
    struct tcp_conn *ack_list;
    int ntcp, nhalf;
    struct ring_pool rings; /* freed TCP rings kept for reuse */
    uint16_t next_eport;

    struct flow *flows; /* UDP and ICMP (flow.c) */
    int nflows;
    struct dns_query *dns_list;
    int ndns;

    struct listener *listeners[NET_MAX_PORTS];
    int nlisteners;

    struct reasm *reasm;  /* the guest's fragments being reassembled (reasm.c), on first use */
    struct nwatch *grave; /* objects freed at the end of an event batch */
    uint64_t rng;
    uint64_t armed_at;           /* the timerfd's expiry (ms), 0: none */
    uint64_t later_at;           /* see net_deadline */
    int armed_delack;            /* armed_at is only there for delayed ACKs */
    int ndelack;                 /* connections with a delayed ACK pending */
    uint64_t mem_used, mem_peak; /* bytes allocated, charged to cfg.mem_budget (budget.c) */
    unsigned noted;              /* limits already explained in net.log (budget.c) */
    /* TLS interception and secrets (tls_proxy.c) */
    struct tls_box *tls;                  /* NULL when the box has none */
    int ntls;                             /* intercepted connections open */
    char *secret_values[NET_MAX_SECRETS]; /* cfg.secrets[i]'s value (net_stack_secret_value), wiped at free */
    int stop_wanted;                      /* a secret violation stops the box (net_stack_stop_wanted) */
    char stop_why[400];
};

/* ---- stack.c ---- */

/* The public entry points of net.h with the clock already read: now (ms) is used for
 * every event they handle. The top level calls them; unit tests drive time through
 * them (a fixed now far from the real clock also keeps the timerfd quiet). */
/* net_stack_input_frame at now. */
void net_input_frame_at(struct net_stack *s, const uint8_t *frame, size_t len, uint64_t now);
/* net_stack_flush at now. */
void net_flush_at(struct net_stack *s, uint64_t now);
/* net_stack_on_fd_ready with every ready event handled at now. */
void net_on_fd_ready_at(struct net_stack *s, uint64_t now);
/* net_stack_tick at now: runs what is due at now, whatever the timerfd says. */
void net_tick_at(struct net_stack *s, uint64_t now);

/* The next pseudo-random number of the stack's xorshift generator (seeded from
 * getrandom): initial sequence numbers. */
uint32_t net_random(struct net_stack *s);
/* A port of the host alias for a new inbound connection or published UDP client:
 * the next of 49152..65535, round robin (the caller checks it is free). */
uint16_t net_next_eport(struct net_stack *s);
/* Adds fd (still the caller's) to the stack's epoll set for ev, its events pointing
 * at w (an object the stack owns). 0, or -1 with errno. */
int net_watch(struct net_stack *s, int fd, uint32_t ev, struct nwatch *w);
/* Changes what a watched fd waits for. 0, or -1 with errno. */
int net_rewatch(struct net_stack *s, int fd, uint32_t ev, struct nwatch *w);
/* Takes fd out of the epoll set (before it is closed). */
void net_unwatch(struct net_stack *s, int fd);
/* Marks obj (an object of net_object_new) dead and frees it at the end of the current
 * batch of events, so that events already read for it are skipped, not followed. */
void net_bury(struct net_stack *s, void *obj);
/* A listener whose accept failed for want of descriptors leaves the epoll set for a
 * moment (level-triggered, it would wake the caller in a loop); the timer restores it. */
void net_listener_pause(struct net_stack *s, struct listener *l, uint64_t now);
/* Makes sure the timer fires at or before at (ms). */
void net_deadline(struct net_stack *s, uint64_t at);
/* The armed expiry was for delayed ACKs that all went out early (armed_delack):
 * re-arm for the deadlines it hid, so the timer does not wake us for nothing. */
void net_deadline_release(struct net_stack *s);
/* Whether ip is an address of the box's own network other than the host alias: the
 * guest reaches nothing there (the policy is not asked). */
int net_inside_box(const struct net_stack *s, uint32_t ip);
/* May the guest reach dst:port over proto? The policy's verdict (no TLS name), or a
 * denial for addresses inside the box network. */
struct verdict net_egress_check(const struct net_stack *s, uint32_t dst, uint16_t port, int proto, uint64_t now);
/* A non-blocking datagram socket of proto (0: UDP, IPPROTO_ICMP) connected to
 * ip:port (host byte order), owned by the caller; -1 when none (running out of
 * descriptors is noted in net.log). */
int net_connected_dgram(struct net_stack *s, int proto, uint32_t ip, uint16_t port);
/* Builds Ethernet + IPv4 headers in front of the l4len bytes already at
 * s->frame + NET_L4_OFF and sends the frame. Returns the output callback's result
 * (0 taken, 1 taken and the link congested, -1 dropped). */
#define NET_L4_OFF 34
#define NET_MAX_L4 (65535 - 20) /* what one IPv4 packet carries */
int net_send_ip(struct net_stack *s, uint32_t src, uint32_t dst, uint8_t proto, size_t l4len);
/* The same for payloads that may exceed the guest's MTU (relayed UDP): sent as IP
 * fragments of at most the MTU then. Returns the worst output result. */
int net_send_ip_mtu(struct net_stack *s, uint32_t src, uint32_t dst, uint8_t proto, size_t l4len);

/* ---- budget.c ---- */

/* Charges n bytes to the memory budget, leaving keep bytes of it unused: 0, or -1
 * when they do not fit (the pool of spare rings is freed first, if that helps). */
int net_mem_charge(struct net_stack *s, size_t n, uint64_t keep);
/* Gives n charged bytes back. */
void net_mem_release(struct net_stack *s, size_t n);
/* A zeroed object of size bytes that starts with a struct nwatch of this kind,
 * charged to the budget (NULL over budget, noted once, or without memory). Free it
 * with net_bury (while events may still point at it) or net_object_free. */
void *net_object_new(struct net_stack *s, size_t size, enum nw_kind kind);
/* Frees obj now and gives its bytes back to the budget; NULL is fine. */
void net_object_free(struct net_stack *s, void *obj);
/* A TCP ring's bytes: a new connection's may use the whole budget (over it: refused,
 * noted once), growth only up to three quarters of it. 0 or -1. */
int net_ring_charge(struct net_stack *s, size_t n, int growth);
/* A socket() that failed with err: out of descriptors is noted once in net.log. */
void net_note_socket_error(struct net_stack *s, int err);
/* Lowers the caps on sockets so that they fit RLIMIT_NOFILE with cfg.fd_reserve
 * descriptors to spare (a note in net.log says so). */
void net_fit_fds(struct net_stack *s);

/* ---- netlog.c: a denial, or a note (an explanation written once), as one line of net.log ---- */

#define NET_LOG_NAME "net.log"
/* "TIME deny WHAT SRC:SPORT -> DST:DPORT rule="WHY"" for the verdict v (what: "tcp",
 * "udp", "icmp", "dns NAME", "tls"...). Nothing happens without a log or once the log
 * stopped (it could not rotate). */
void net_log_deny(struct net_stack *s, const char *what, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                  const struct verdict *v);
/* "TIME note TEXT", the same way. */
/* A secret's placeholder went where it may not (why): counted, logged as the denial of
 * what SPORT -> DST:DPORT unless cfg.secret_violation is NET_SV_BLOCK, and under
 * NET_SV_BLOCK_AND_STOP the box is to stop. The caller closes the connection. */
void net_secret_violation(struct net_stack *s, const char *what, uint16_t sport, uint32_t dst, uint16_t dport,
                          const char *why);
void net_log_note(struct net_stack *s, const char *text);
/* ip (host byte order) as dotted text in buf (INET_ADDRSTRLEN bytes); returns buf. */
const char *net_ip_text(uint32_t ip, char *buf);

/* ---- udp.c ---- */

/* One UDP datagram of the guest (ip: checked by wire_parse_ipv4): to the DNS proxy,
 * a published port's client, or a relayed flow, as the policy allows. */
void udp_input(struct net_stack *s, const struct pkt_ip *ip, uint64_t now);
/* A relayed flow's socket is readable: its datagrams go to the guest. */
void udp_on_event(struct net_stack *s, struct flow *f, uint64_t now);
/* A published UDP port's socket is readable: each host client becomes a flow. */
void udp_on_listener(struct net_stack *s, struct listener *l, uint64_t now);
/* Sends len bytes of data (any buffer, even s->frame's) to the guest as one UDP
 * datagram from src:sport to dport, in IP fragments when over the MTU. The output
 * result, or -1 when it cannot be one datagram (counted as dropped). */
int udp_send_to_guest(struct net_stack *s, uint32_t src, uint16_t sport, uint16_t dport, const void *data, size_t len);

/* ---- icmp.c ---- */

/* Finds out whether unprivileged ICMP sockets work here and reads
 * net.ipv4.ping_group_range for the note on why not (before the jail hides /proc). */
void icmp_init(struct net_stack *s);
/* One ICMP message of the guest (ip: checked by wire_parse_ipv4). */
void icmp_input(struct net_stack *s, const struct pkt_ip *ip, uint64_t now);
/* An ICMP flow's socket is readable: echo replies go to the guest. */
void icmp_on_event(struct net_stack *s, struct flow *f, uint64_t now);

#endif
