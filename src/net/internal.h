/* Shared internals of the network stack: the stack object, the objects its epoll set
 * points at (TCP connections, UDP/ICMP flows, DNS queries, published-port listeners),
 * and the helpers the per-protocol files call on each other. Not for outside use. */
#ifndef COCOON_NET_INTERNAL_H
#define COCOON_NET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "net/net.h"
#include "net/policy.h"
#include "net/wire.h"

struct reasm;

/* What an event of the stack's epoll set points at. */
enum nw_kind { NW_TIMER, NW_TCP, NW_UDP, NW_DNS, NW_LISTEN_TCP, NW_LISTEN_UDP };
struct nwatch {
    enum nw_kind kind;
    int dead;    /* freed later in this batch: ignore */
    size_t size; /* bytes charged to the memory budget (net_object_new) */
    struct nwatch *gnext;
};

/* A byte ring with a fixed capacity (allocated on first use). */
struct ring {
    uint8_t *buf;
    size_t cap, head, len;
};

enum tcp_state {
    TS_CONNECTING, /* guest SYN seen, host connect() in progress, nothing sent yet */
    TS_SYN_RCVD,   /* SYN-ACK sent to the guest, waiting for its ACK */
    TS_SYN_SENT,   /* published port: our SYN to the guest */
    TS_ESTABLISHED,
    TS_CLOSED
};

#define TCP_BUF (256u * 1024)     /* the most a ring grows to */
#define TCP_RING_MIN (16u * 1024) /* a new connection's rings */
#define TCP_SNI_MAX 16384         /* a ClientHello read before the host is chosen (fits TCP_RING_MIN) */

struct tcp_conn {
    struct nwatch w;
    int fd;
    enum tcp_state state;
    int inbound;  /* published port: we opened toward the guest */
    int sni_wait; /* SYN-ACK sent before connect(): waiting for the ClientHello */
    int sni_rule; /* index of the domain rule that wants the SNI checked */
    uint32_t rip; /* the remote address as the guest sees it */
    uint32_t cip; /* what we connect() to (differs for the host alias) */
    uint16_t gport, rport;
    /* toward the guest */
    uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, fin_seq;
    uint32_t snd_wl1, snd_wl2; /* seq and ack of the segment that last set snd_wnd */
    uint32_t max_wnd;          /* the largest window the guest advertised (RFC 5961) */
    int fin_ever, registered;
    uint8_t snd_wscale; /* shift of the guest's window */
    uint16_t mss;       /* the guest's MSS */
    /* from the guest */
    uint32_t irs, rcv_nxt, rcv_adv; /* rcv_adv: right edge last advertised */
    uint8_t rcv_wscale;
    int wscale_ok;
    struct ring to_guest; /* [snd_una, snd_una+len) read from the host */
    struct ring to_host;  /* in-order guest bytes not yet written to the host */
    int connecting;       /* host connect() in progress */
    int in_ack_list;
    uint32_t acked_to; /* rcv_nxt of the last ACK sent */
    int host_eof, fin_sent, fin_acked, guest_fin, host_shut;
    int ack_pending;
    uint64_t delack_at; /* ms: the held-back ACK goes out then */
    uint64_t rto_at;
    uint32_t rto_ms;
    int retries;
    uint32_t ev;     /* events registered in the epoll set */
    int dns;         /* DNS over TCP, answered by the stack's resolver (no host socket) */
    int dns_pending; /* queries of this connection waiting for an answer */
    int dns_busy;    /* dns_tcp_input is running: answers only queue */
    struct tcp_conn *hnext, *next, *prev, *ack_next;
};

enum udp_kind { UDP_RELAY, UDP_ICMP, UDP_PUBLISHED };
struct udp_flow {
    struct nwatch w;
    int fd; /* own socket (relay, icmp); the listener's for published */
    enum udp_kind kind;
    uint16_t gport;          /* guest port (relay) or guest echo id (icmp) */
    uint32_t rip;            /* remote address as the guest sees it */
    uint16_t rport;          /* remote port (relay); our alias port (published) */
    struct sockaddr_in peer; /* published: the host client */
    uint16_t guest_port;     /* published: the guest's port */
    uint64_t last;
    struct udp_flow *next;
};

struct dns_query {
    struct nwatch w;
    int fd;
    uint16_t gport, id;
    uint32_t dst; /* the address the guest asked (answers come from it) */
    uint16_t dport;
    char name[256];
    uint16_t qtype, qclass;
    size_t udp_max; /* the largest answer this query takes over UDP */
    int strip_opt;  /* the OPT record upstream was added by us: removed from the answer */
    uint64_t deadline;
    int tcp;      /* asked over TCP: the answer goes to that connection (gport, dst, 53) */
    int answered; /* the guest got its answer */
    struct dns_query *next;
};

struct listener {
    struct nwatch w;
    int fd;
    struct net_port port;
    uint64_t paused_until; /* ms: out of descriptors, not watched until then (0: watched) */
};

#define TCP_HASH 4096
#define RING_SPARE 8 /* freed TCP rings kept for reuse */
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
    uint8_t *ring_spare[RING_SPARE];
    int nspare;
    uint16_t next_eport;

    struct udp_flow *udp_list;
    int nudp;
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
};

uint64_t net_now_ms(void);
uint32_t net_random(struct net_stack *s);
/* Registers fd with the stack's epoll set. */
int net_watch(struct net_stack *s, int fd, uint32_t ev, struct nwatch *w);
int net_rewatch(struct net_stack *s, int fd, uint32_t ev, struct nwatch *w);
void net_unwatch(struct net_stack *s, int fd);
void net_bury(struct net_stack *s, void *obj); /* free after the current batch */
/* A listener whose accept failed for want of descriptors leaves the epoll set for a
 * moment (level-triggered, it would wake the caller in a loop); the timer restores it. */
void net_listener_pause(struct net_stack *s, struct listener *l);
/* Makes sure the timer fires at or before at (ms, net_now_ms clock). */
void net_deadline(struct net_stack *s, uint64_t at);
/* The armed expiry was for delayed ACKs that all went out early (armed_delack):
 * re-arm for the deadlines it hid, so the timer does not wake us for nothing. */
void net_deadline_release(struct net_stack *s);
/* Builds Ethernet + IPv4 headers in front of the l4 bytes already at
 * s->frame + NET_L4_OFF and sends the frame. Returns the output result. */
#define NET_L4_OFF 34
#define NET_MAX_L4 (65535 - 20) /* what one IPv4 packet carries */
int net_send_ip(struct net_stack *s, uint32_t src, uint32_t dst, uint8_t proto, size_t l4len);
/* The same for payloads that may exceed the guest's MTU (relayed UDP): sent as IP
 * fragments of at most the MTU then. Returns the worst output result. */
int net_send_ip_mtu(struct net_stack *s, uint32_t src, uint32_t dst, uint8_t proto, size_t l4len);

/* budget.c. Charges n bytes to the memory budget, leaving keep bytes of it unused:
 * 0, or -1 when they do not fit. */
int net_mem_charge(struct net_stack *s, size_t n, uint64_t keep);
void net_mem_release(struct net_stack *s, size_t n);
/* A zeroed object that starts with a struct nwatch of this kind, charged to the budget
 * (NULL over budget, noted once, or without memory). net_bury or net_object_free it. */
void *net_object_new(struct net_stack *s, size_t size, enum nw_kind kind);
void net_object_free(struct net_stack *s, void *obj);
/* A TCP ring's bytes: a new connection's may use the whole budget (over it: refused,
 * noted once), growth only up to three quarters of it. 0 or -1. */
int net_ring_charge(struct net_stack *s, size_t n, int growth);
/* A socket() that failed with err: out of descriptors is noted once in net.log. */
void net_note_socket_error(struct net_stack *s, int err);
/* Lowers the caps on sockets so that they fit RLIMIT_NOFILE with cfg.fd_reserve
 * descriptors to spare (a note in net.log says so). */
void net_fit_fds(struct net_stack *s);

/* netlog.c: a denial, or a note (an explanation written once), as one line of net.log. */
#define NET_LOG_NAME "net.log"
void net_log_deny(struct net_stack *s, const char *what, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                  const struct verdict *v);
void net_log_note(struct net_stack *s, const char *text);

/* tcp.c */
void tcp_input(struct net_stack *s, const struct pkt_ip *ip);
void tcp_on_event(struct net_stack *s, struct tcp_conn *c, uint32_t ev);
void tcp_tick(struct net_stack *s, uint64_t now, uint64_t *next);
void tcp_flush_acks(struct net_stack *s);
void tcp_link_ready(struct net_stack *s);
void tcp_accept(struct net_stack *s, struct listener *l);
void tcp_free_all(struct net_stack *s);
/* The answer (msg NULL: none) to a query made over the DNS-over-TCP connection
 * (gport, rip, 53); ignored when that connection is gone. */
void tcp_dns_answer(struct net_stack *s, uint16_t gport, uint32_t rip, const uint8_t *msg, size_t len);

/* udp.c */
void udp_input(struct net_stack *s, const struct pkt_ip *ip);
/* Reads net.ipv4.ping_group_range for the note on pings that cannot be relayed. */
void icmp_read_host_range(struct net_stack *s);
void icmp_input(struct net_stack *s, const struct pkt_ip *ip);
void udp_on_event(struct net_stack *s, struct udp_flow *f);
void udp_on_listener(struct net_stack *s, struct listener *l);
void dns_on_event(struct net_stack *s, struct dns_query *q);
void udp_tick(struct net_stack *s, uint64_t now, uint64_t *next);
void udp_free_all(struct net_stack *s);
/* Fills cfg->upstreams from /etc/resolv.conf when none are configured. */
void dns_load_upstreams(struct net_config *cfg);
int udp_send_to_guest(struct net_stack *s, uint32_t src, uint16_t sport, uint16_t dport, const void *data, size_t len);
/* One DNS query from the guest (src:sport -> dst:53) over UDP or, with tcp, over a
 * DNS-over-TCP connection; exactly one tcp_dns_answer follows for TCP queries. */
void dns_guest_query(struct net_stack *s, uint32_t src, uint16_t sport, uint32_t dst, const uint8_t *data, size_t len,
                     int tcp);

#endif
