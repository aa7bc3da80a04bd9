/* Test harness for the network stack: builds guest frames (Ethernet/IPv4/TCP/UDP),
 * collects the frames the stack sends to the guest, and runs the stack's event loop
 * until a condition holds. With a driven clock (h_start_clocked) the frames and the
 * timers run at h->now, which only the test moves (h_advance): no sleeps. Included by
 * the test_net_*.c files. */
#ifndef COCOON_TEST_NET_HARNESS_H
#define COCOON_TEST_NET_HARNESS_H

#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "net/internal.h"
#include "net/tcp.h"
#include "net/wire.h"

#define H_MAXQ 4096
struct harness {
    struct net_stack *s;
    struct net_config cfg;
    uint8_t *q[H_MAXQ];
    size_t qlen[H_MAXQ];
    int qh, qt;
    int drop_next; /* the output drops this many frames */
    int clocked;   /* h_start_clocked: the stack runs at now, not at the real clock */
    uint64_t now;  /* ms */
};

/* Where a driven clock starts: far from CLOCK_MONOTONIC, so that the stack's timerfd,
 * armed at these times, never fires by itself. */
#define H_CLOCK_START (1ull << 40)

static inline int h_out(void *user, const uint8_t *f, size_t n)
{
    struct harness *h = user;
    if (h->drop_next > 0) {
        h->drop_next--;
        return -1;
    }
    if ((h->qt + 1) % H_MAXQ == h->qh)
        return -1;
    h->q[h->qt] = malloc(n);
    memcpy(h->q[h->qt], f, n);
    h->qlen[h->qt] = n;
    h->qt = (h->qt + 1) % H_MAXQ;
    return 0;
}

static inline void h_init_cfg(struct harness *h)
{
    memset(h, 0, sizeof(*h));
    net_config_defaults(&h->cfg);
    h->cfg.nupstreams = 1; /* never the host's real resolver in tests */
    h->cfg.upstreams[0].ip = 0x7f000001;
    h->cfg.upstreams[0].port = 9; /* discard: tests set their own */
}

static inline void h_start(struct harness *h)
{
    char err[256];
    h->s = net_stack_new(&h->cfg, h_out, h, err, sizeof(err));
    if (!h->s)
        fprintf(stderr, "net_stack_new: %s\n", err);
}

/* h_start with the driven clock at H_CLOCK_START and a fixed seed for the stack's
 * initial sequence numbers. */
static inline void h_start_clocked(struct harness *h)
{
    h->clocked = 1;
    h->now = H_CLOCK_START;
    h_start(h);
    if (h->s)
        h->s->rng = 0x9e3779b97f4a7c15ull;
}

/* Ends a batch of frames (net_stack_flush), at h->now when clocked. */
static inline void h_flush(struct harness *h)
{
    if (h->clocked)
        net_flush_at(h->s, h->now);
    else
        net_stack_flush(h->s);
}

/* Moves the driven clock ms forward and runs the timers due. */
static inline void h_advance(struct harness *h, uint64_t ms)
{
    h->now += ms;
    net_tick_at(h->s, h->now);
}

/* One frame from the guest, at h->now when clocked. */
static inline void h_input(struct harness *h, const uint8_t *f, size_t n)
{
    if (h->clocked)
        net_input_frame_at(h->s, f, n, h->now);
    else
        net_stack_input_frame(h->s, f, n);
}

static inline void h_clear(struct harness *h)
{
    while (h->qh != h->qt) {
        free(h->q[h->qh]);
        h->qh = (h->qh + 1) % H_MAXQ;
    }
}

static inline void h_stop(struct harness *h)
{
    net_stack_free(h->s);
    h_clear(h);
}

/* Pops one output frame into buf; returns its length or 0. */
static inline size_t h_pop(struct harness *h, uint8_t *buf, size_t cap)
{
    if (h->qh == h->qt)
        return 0;
    size_t n = h->qlen[h->qh] < cap ? h->qlen[h->qh] : cap;
    memcpy(buf, h->q[h->qh], n);
    free(h->q[h->qh]);
    h->qh = (h->qh + 1) % H_MAXQ;
    return n;
}

/* Waits up to ms for the stack's sockets or timer and handles what is ready (at
 * h->now when clocked: the wait is for real events, the clock does not move). */
static inline void h_pump(struct harness *h, int ms)
{
    struct pollfd p = {.fd = net_stack_fd(h->s), .events = POLLIN};
    if (poll(&p, 1, ms) > 0) {
        if (h->clocked)
            net_on_fd_ready_at(h->s, h->now);
        else
            net_stack_on_fd_ready(h->s);
    }
    h_flush(h);
}

static inline size_t h_wait(struct harness *h, uint8_t *buf, size_t cap, int ms)
{
    for (int i = 0; i < ms / 5 + 1; i++) {
        size_t n = h_pop(h, buf, cap);
        if (n)
            return n;
        h_pump(h, 5);
    }
    return h_pop(h, buf, cap);
}

static inline size_t h_eth_ip(const struct harness *h, uint8_t *f, uint32_t src, uint32_t dst, uint8_t proto,
                              size_t l4len)
{
    memcpy(f, h->cfg.gateway_mac, 6);
    memcpy(f + 6, h->cfg.guest_mac, 6);
    wr16(f + 12, ETHERTYPE_IPV4);
    wire_ipv4_header(f + 14, src, dst, proto, 7, l4len);
    return 34 + l4len;
}

/* One guest TCP segment into the stack, without ending the batch (net_stack_flush). */
static inline void h_input_tcp(struct harness *h, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq,
                               uint32_t ack, uint8_t flags, uint16_t win, const void *data, size_t len, int syn_opts)
{
    uint8_t f[2048];
    uint8_t *t = f + 34;
    size_t hl = syn_opts ? 28 : 20; /* MSS 1460 + NOP + wscale 7 */
    if (len)
        memcpy(t + hl, data, len);
    hl = wire_tcp_header(t, h->cfg.guest_ip, dst, sport, dport, seq, ack, flags, win, syn_opts ? 1460 : 0,
                         syn_opts ? 7 : -1, len);
    size_t n = h_eth_ip(h, f, h->cfg.guest_ip, dst, IP_PROTO_TCP, hl + len);
    h_input(h, f, n);
}

/* One guest TCP segment as a batch of its own. */
static inline void h_send_tcp(struct harness *h, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq,
                              uint32_t ack, uint8_t flags, uint16_t win, const void *data, size_t len, int syn_opts)
{
    h_input_tcp(h, dst, sport, dport, seq, ack, flags, win, data, len, syn_opts);
    h_flush(h);
}

static inline void h_send_udp(struct harness *h, uint32_t dst, uint16_t sport, uint16_t dport, const void *data,
                              size_t len)
{
    uint8_t f[2048];
    memcpy(f + 42, data, len);
    wire_udp_header(f + 34, h->cfg.guest_ip, dst, sport, dport, len);
    size_t n = h_eth_ip(h, f, h->cfg.guest_ip, dst, IP_PROTO_UDP, 8 + len);
    h_input(h, f, n);
}

/* A DNS query for name (A, IN, recursion desired) at p; with edns, an OPT record
 * advertising that UDP size. Returns its length. */
static inline size_t h_dns_query(uint8_t *p, uint16_t id, const char *name, int edns)
{
    wr16(p, id);
    wr16(p + 2, 0x0100);
    wr16(p + 4, 1);
    wr16(p + 6, 0);
    wr16(p + 8, 0);
    wr16(p + 10, edns ? 1 : 0);
    size_t o = 12;
    for (const char *s = name; *s;) {
        size_t l = strcspn(s, ".");
        p[o++] = (uint8_t)l;
        memcpy(p + o, s, l);
        o += l;
        s += l + (s[l] == '.');
    }
    p[o++] = 0;
    wr16(p + o, 1);
    wr16(p + o + 2, 1);
    o += 4;
    if (edns) {
        p[o] = 0; /* root */
        wr16(p + o + 1, 41);
        wr16(p + o + 3, (uint16_t)edns);
        wr32(p + o + 5, 0);
        wr16(p + o + 9, 0);
        o += 11;
    }
    return o;
}

/* Parses an output frame as an IPv4 packet of protocol proto; 0 when it is one. */
static inline int h_parse_ip(const uint8_t *f, size_t n, uint8_t proto, struct pkt_ip *ip)
{
    if (n < 34 || rd16(f + 12) != ETHERTYPE_IPV4)
        return -1;
    return wire_parse_ipv4(f + 14, n - 14, ip) == WIRE_OK && ip->proto == proto ? 0 : -1;
}

/* Parses an output frame as IPv4/TCP; 0 when it is one. */
static inline int h_parse_tcp(const uint8_t *f, size_t n, struct pkt_ip *ip, struct pkt_tcp *t)
{
    return h_parse_ip(f, n, IP_PROTO_TCP, ip) == 0 && wire_parse_tcp(ip, t) == WIRE_OK ? 0 : -1;
}

static inline int h_parse_udp(const uint8_t *f, size_t n, struct pkt_ip *ip, struct pkt_udp *u)
{
    return h_parse_ip(f, n, IP_PROTO_UDP, ip) == 0 && wire_parse_udp(ip, u) == WIRE_OK ? 0 : -1;
}

/* Waits, up to tries times 20 ms, for an output TCP segment with one of flags set.
 * 0 with its header in *t (t->data pointed into a frame that is gone), else -1. */
static inline int h_wait_tcp_flags(struct harness *h, uint8_t flags, int tries, struct pkt_tcp *t)
{
    uint8_t f[2048];
    struct pkt_ip ip;
    for (int i = 0; i < tries; i++) {
        size_t n = h_wait(h, f, sizeof(f), 20);
        if (n && h_parse_tcp(f, n, &ip, t) == 0 && (t->flags & flags))
            return 0;
    }
    return -1;
}

#endif
