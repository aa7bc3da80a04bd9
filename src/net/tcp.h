/* TCP termination (tcp.c): the connections of the guest, each re-originated from a
 * host socket, those the stack opens toward the guest for published ports, and DNS
 * over TCP, which the stack completes itself and hands to the DNS proxy.
 *
 * States (enum tcp_state) and what moves a connection between them:
 *   guest SYN           -> CONNECTING (host connect() in progress) -> SYN_RCVD once it
 *                          is up; straight to SYN_RCVD for DNS (port 53) and for TLS
 *                          that waits for its ClientHello (sni_wait);
 *   published port      -> SYN_SENT (our SYN to the guest);
 *   SYN_RCVD, SYN_SENT  -> ESTABLISHED on the guest's ACK / SYN-ACK of our SYN;
 *   ESTABLISHED         -> closes by flags: guest_fin (the guest's FIN taken: CLOSE
 *                          WAIT), fin_sent/fin_acked (ours: FIN WAIT, LAST ACK); both
 *                          FINs done and the host side shut -> CLOSED. There is no
 *                          TIME WAIT: a late segment of a freed connection gets a RST;
 *   any state           -> CLOSED on an exact RST, a host error, or retransmissions
 *                          given up (RST to the guest once synchronized).
 * A CLOSED connection is out of the table and freed after the current batch. */
#ifndef COCOON_NET_TCP_H
#define COCOON_NET_TCP_H

#include <stdint.h>

#include "net/dns_proxy.h"
#include "net/internal.h"
#include "net/ring.h"

enum tcp_state {
    TS_CONNECTING, /* guest SYN seen, host connect() in progress, nothing sent yet */
    TS_SYN_RCVD,   /* SYN-ACK sent to the guest, waiting for its ACK */
    TS_SYN_SENT,   /* published port: our SYN to the guest */
    TS_ESTABLISHED,
    TS_CLOSED
};

#define TCP_SNI_MAX 16384 /* a ClientHello read before the host is chosen (fits RING_MIN) */
#define TCP_RCV_WSCALE 3  /* the window scale we offer */
#define TCP_RTO_MIN_MS 200
#define TCP_RTO_SYN_MS (TCP_RTO_MIN_MS * 5) /* the first RTO of a handshake */
#define TCP_RTO_MAX_MS 10000
#define TCP_MAX_RETRIES 12    /* RTOs of a synchronized connection before it is reset */
#define TCP_MAX_SYN_RETRIES 6 /* of a handshake before it is dropped */
#define TCP_DELACK_MS 2       /* held-back ACKs wait 1-2 ms (the clock counts whole ms) */

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
    uint64_t rto_at;    /* ms: the retransmission timer (0: not armed) */
    uint32_t rto_ms;
    int retries;
    uint32_t ev;                  /* events registered in the epoll set */
    int dns;                      /* DNS over TCP, answered by the DNS proxy (no host socket) */
    struct dns_stream dns_stream; /* its queries in flight */
    int dns_busy;                 /* the stream is being read: answers only queue */
    struct tls_conn *tls;         /* intercepted TLS (tls_proxy.c), NULL: spliced */
    uint8_t scan_carry[128];      /* a box with secrets: the end of what was scanned (secret_scan.h) */
    size_t scan_len;
    size_t scanned; /* bytes at the head of to_host already scanned */
    struct tcp_conn *hnext, *next, *prev, *ack_next;
};

/* One TCP segment of the guest (ip: checked by wire_parse_ipv4), at now (ms): opens,
 * moves or closes its connection, or gets a RST when it has none. */
void tcp_input(struct net_stack *s, const struct pkt_ip *ip, uint64_t now);
/* The host socket of c reported ev (epoll events). */
void tcp_on_event(struct net_stack *s, struct tcp_conn *c, uint32_t ev, uint64_t now);
/* Runs the delayed ACKs and retransmission timers due at now; lowers *next (0: none
 * yet) to the earliest deadline left. */
void tcp_tick(struct net_stack *s, uint64_t now, uint64_t *next);
/* Ends a batch of guest frames: writes the data it brought to the host sockets and
 * sends (or, for a small request, delays until now + TCP_DELACK_MS) the ACKs. */
void tcp_flush_acks(struct net_stack *s, uint64_t now);
/* The link to the guest drained (s->link_blocked was cleared): sends what waited. */
void tcp_link_ready(struct net_stack *s, uint64_t now);
/* A published TCP port's listener is readable: accepts one client and sends our SYN
 * toward the guest. */
void tcp_accept(struct net_stack *s, struct listener *l, uint64_t now);
/* Frees every connection (aborting its host socket) and the pool of spare rings. */
void tcp_free_all(struct net_stack *s);

#endif
