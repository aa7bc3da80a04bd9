/* Every state transition of the stack's TCP (tcp.h lists them), retransmission (RTO,
 * backoff, give-up), the window rules both ways and the acceptance rules for ACKs,
 * RSTs, SYNs and data (RFC 9293, RFC 5961), with the stack's clock driven by the test
 * (h_start_clocked, h_advance): exact frames at exact times, no sleeps, no threads.
 * Host ends are loopback sockets of the test itself; DNS over TCP, which the stack
 * completes and its proxy answers, gives connections with no host socket at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/dns_proxy.h"
#include "net_echo.h"

#define DNS_IP 0x0a000203u
#define GWIN 4096          /* the guest's usual window: 512 KiB with its scale of 7 */
#define ALIAS_QUERY 40     /* a framed query for host.cocoon.internal */
#define ALIAS_ANSWER 56    /* and the framed answer the proxy gives at once */
#define EXAMPLE_QUERY 31   /* a framed query for example.com (forwarded upstream) */
#define SERVFAIL_ANSWER 31 /* what the proxy answers it when the upstream is silent */

/* The waits the stack's timers must keep, written out rather than derived from its
 * constants, so that a changed constant shows here. */
static const uint32_t SYN_WAITS[] = {1000, 2000, 4000, 8000, 10000, 10000, 10000}; /* the last gives up */
static const uint32_t RTO_WAITS[] = {200,   400,   800,   1600,  3200,  6400, 10000,
                                     10000, 10000, 10000, 10000, 10000, 10000}; /* the last resets */
#define NWAITS(a) (sizeof(a) / sizeof((a)[0]))
#define DELACK 2              /* ms a small request's ACK is held back */
#define UPSTREAM_SILENCE 5000 /* ms the DNS proxy waits for its upstream */

struct seg {
    uint8_t f[2048];
    size_t n;
    struct pkt_ip ip;
    struct pkt_tcp t; /* t.data points into f */
};

/* The next frame the stack sent the guest, as TCP; 0 when there is none. */
static int next_seg(struct harness *h, struct seg *g)
{
    g->n = h_pop(h, g->f, sizeof(g->f));
    if (!g->n)
        return 0;
    assert_int_equal(h_parse_tcp(g->f, g->n, &g->ip, &g->t), 0);
    return 1;
}

/* The next frame is a segment with exactly these flags, seq, ack (with ACK) and length. */
static void expect(struct harness *h, struct seg *g, uint8_t flags, uint32_t seq, uint32_t ack, size_t len)
{
    assert_true(next_seg(h, g));
    assert_int_equal(g->t.flags, flags);
    assert_int_equal(g->t.seq, seq);
    if (flags & TCPF_ACK)
        assert_int_equal(g->t.ack, ack);
    assert_int_equal(g->t.len, len);
}

static void expect_none(struct harness *h)
{
    struct seg g;
    assert_false(next_seg(h, &g));
}

/* The timer schedule waits (n of them, ms): at each but the last expiry, and not one
 * ms before, the stack sends the segment described as for expect; then the clock is
 * left one ms before the last expiry, with nothing sent. */
static void expect_schedule(struct harness *h, const uint32_t *waits, size_t n, uint8_t flags, uint32_t seq,
                            uint32_t ack, size_t len)
{
    struct seg g;
    for (size_t i = 0; i + 1 < n; i++) {
        h_advance(h, waits[i] - 1);
        expect_none(h);
        h_advance(h, 1);
        expect(h, &g, flags, seq, ack, len);
    }
    h_advance(h, waits[n - 1] - 1);
    expect_none(h);
}

/* Handles the stack's host-side events (waiting up to 5 s of real time for them; its
 * clock stays at h->now) until it sent the guest a frame. */
static void wait_frame(struct harness *h)
{
    for (int i = 0; i < 100 && h->qh == h->qt; i++)
        h_pump(h, 50);
    assert_true(h->qh != h->qt);
}

static struct tcp_conn *conn(struct harness *h, uint16_t gport)
{
    for (struct tcp_conn *c = h->s->tcp_list; c; c = c->next)
        if (c->gport == gport)
            return c;
    return NULL;
}

static void start(struct harness *h)
{
    h_init_cfg(h);
    h_start_clocked(h);
    assert_non_null(h->s);
}

/* ---- DNS over TCP: connections without a host socket ---- */

/* A query for name with its length prefix at p; returns the bytes. */
static size_t framed(uint8_t *p, uint16_t id, const char *name)
{
    size_t n = h_dns_query(p + 2, id, name, 0);
    wr16(p, (uint16_t)n);
    return n + 2;
}

/* The guest's SYN from sport to the resolver and the stack's SYN-ACK; returns the
 * stack's ISS. The guest's ISS is 1000. */
static uint32_t dns_syn(struct harness *h, uint16_t sport, int opts)
{
    struct seg g;
    h_send_tcp(h, DNS_IP, sport, 53, 1000, 0, TCPF_SYN, 65535, NULL, 0, opts);
    assert_true(next_seg(h, &g));
    assert_int_equal(g.t.flags, TCPF_SYN | TCPF_ACK);
    assert_int_equal(g.t.ack, 1001);
    assert_int_equal(g.t.mss, 1460);
    assert_int_equal(g.t.wscale, opts ? TCP_RCV_WSCALE : -1);
    assert_int_equal(g.t.win, RING_MIN); /* a SYN's window is never scaled */
    expect_none(h);
    return g.t.seq;
}

/* A DNS connection from sport, established with the guest's window win (scaled by
 * 7); returns the stack's ISS + 1. The guest's next sequence number is 1001. */
static uint32_t dns_open(struct harness *h, uint16_t sport, uint16_t win)
{
    uint32_t their = dns_syn(h, sport, 1) + 1;
    h_send_tcp(h, DNS_IP, sport, 53, 1001, their, TCPF_ACK, win, NULL, 0, 0);
    expect_none(h);
    assert_int_equal(conn(h, sport)->state, TS_ESTABLISHED);
    return their;
}

/* The guest asks for host.cocoon.internal at seq, with its window win; the proxy
 * answers at once. */
static void ask_alias(struct harness *h, uint16_t sport, uint32_t seq, uint32_t ack, uint16_t win)
{
    uint8_t q[64];
    assert_int_equal(framed(q, 7, "host.cocoon.internal"), ALIAS_QUERY);
    h_send_tcp(h, DNS_IP, sport, 53, seq, ack, TCPF_ACK | TCPF_PSH, win, q, ALIAS_QUERY, 0);
}

/* A stack with one DNS connection from sport (the guest's window GWIN) whose query
 * for the host alias was answered: ALIAS_ANSWER bytes in flight. Returns the stack's
 * ISS + 1; the guest's next sequence number is 1041. */
static uint32_t dns_answered(struct harness *h, uint16_t sport)
{
    struct seg g;
    start(h);
    uint32_t their = dns_open(h, sport, GWIN);
    ask_alias(h, sport, 1001, their, GWIN);
    expect(h, &g, TCPF_ACK | TCPF_PSH, their, 1041, ALIAS_ANSWER);
    return their;
}

/* SYN_RCVD: a repeated SYN gets the SYN-ACK again, another SYN nothing, a wrong ACK or
 * a segment without ACK a RST; the ACK of our SYN makes it ESTABLISHED. */
static void test_syn_rcvd_to_established(void **state)
{
    struct harness h;
    struct seg g;
    start(&h);
    uint32_t iss = dns_syn(&h, 50000, 1);
    struct tcp_conn *c = conn(&h, 50000);
    assert_int_equal(c->state, TS_SYN_RCVD);
    assert_int_equal(h.s->nhalf, 1);
    h_send_tcp(&h, DNS_IP, 50000, 53, 1000, 0, TCPF_SYN, 65535, NULL, 0, 1);
    expect(&h, &g, TCPF_SYN | TCPF_ACK, iss, 1001, 0);
    h_send_tcp(&h, DNS_IP, 50000, 53, 5000, 0, TCPF_SYN, 65535, NULL, 0, 1);
    expect_none(&h);
    h_send_tcp(&h, DNS_IP, 50000, 53, 1001, iss + 5, TCPF_ACK, GWIN, NULL, 0, 0);
    expect(&h, &g, TCPF_RST, iss + 5, 0, 0);
    h_send_tcp(&h, DNS_IP, 50000, 53, 1001, 0, TCPF_PSH, GWIN, "x", 1, 0);
    expect(&h, &g, TCPF_RST | TCPF_ACK, 0, 1002, 0);
    assert_int_equal(c->state, TS_SYN_RCVD);
    h_send_tcp(&h, DNS_IP, 50000, 53, 1001, iss + 1, TCPF_ACK, GWIN, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(c->state, TS_ESTABLISHED);
    assert_int_equal(h.s->nhalf, 0);
    assert_int_equal(c->rto_at, 0);
    assert_int_equal(c->snd_wnd, (uint32_t)GWIN << 7);
    h_stop(&h);
}

/* SYN_RCVD -> CLOSED: a RST inside the window but not at rcv_nxt gets a challenge
 * ACK; the exact one ends the handshake, silently. */
static void test_syn_rcvd_reset(void **state)
{
    struct harness h;
    struct seg g;
    start(&h);
    uint32_t iss = dns_syn(&h, 50010, 1);
    h_send_tcp(&h, DNS_IP, 50010, 53, 1100, 0, TCPF_RST, 0, NULL, 0, 0);
    expect(&h, &g, TCPF_ACK, iss + 1, 1001, 0);
    assert_int_equal(h.s->ntcp, 1);
    h_send_tcp(&h, DNS_IP, 50010, 53, 1001, 0, TCPF_RST, 0, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(h.s->ntcp, 0);
    assert_int_equal(h.s->nhalf, 0);
    h_stop(&h);
}

/* SYN_RCVD -> CLOSED by give-up: the SYN-ACK is resent after 1, 2, 4, 8, 10, 10 s;
 * the next expiry drops the handshake without a RST. */
static void test_synack_retransmission_gives_up(void **state)
{
    struct harness h;
    struct seg g;
    start(&h);
    uint32_t iss = dns_syn(&h, 50020, 1);
    expect_schedule(&h, SYN_WAITS, NWAITS(SYN_WAITS), TCPF_SYN | TCPF_ACK, iss, 1001, 0);
    assert_int_equal(h.s->ntcp, 1);
    h_advance(&h, 1);
    expect_none(&h);
    assert_int_equal(h.s->ntcp, 0);
    assert_int_equal(h.s->nhalf, 0);
    /* a late ACK of that SYN-ACK meets no connection */
    h_send_tcp(&h, DNS_IP, 50020, 53, 1001, iss + 1, TCPF_ACK, GWIN, NULL, 0, 0);
    expect(&h, &g, TCPF_RST, iss + 1, 0, 0);
    h_stop(&h);
}

/* Retransmission: unacknowledged data goes again after 200 ms, then 400, 800... up to
 * 10 s; after 12 retransmissions the connection is reset. */
static void test_retransmission_backoff_gives_up(void **state)
{
    struct harness h;
    struct seg g;
    uint32_t their = dns_answered(&h, 50030);
    expect_schedule(&h, RTO_WAITS, NWAITS(RTO_WAITS), TCPF_ACK | TCPF_PSH, their, 1041, ALIAS_ANSWER);
    assert_int_equal(net_stack_stats(h.s)->tcp_retransmits, NWAITS(RTO_WAITS) - 1);
    h_advance(&h, 1);
    expect(&h, &g, TCPF_RST | TCPF_ACK, their + ALIAS_ANSWER, 1041, 0);
    assert_int_equal(h.s->ntcp, 0);
    h_stop(&h);
}

/* An ACK of new data restarts the timer at 200 ms and the count of retries; what is
 * left is resent from snd_una (go back N), and nothing once all is acknowledged. */
static void test_ack_restarts_retransmission(void **state)
{
    struct harness h;
    struct seg g;
    uint32_t their = dns_answered(&h, 50040);
    ask_alias(&h, 50040, 1041, their, GWIN);
    expect(&h, &g, TCPF_ACK | TCPF_PSH, their + ALIAS_ANSWER, 1081, ALIAS_ANSWER);
    h_advance(&h, RTO_WAITS[0]);
    expect(&h, &g, TCPF_ACK | TCPF_PSH, their, 1081, 2 * ALIAS_ANSWER); /* both, as one segment */
    h_advance(&h, 2 * RTO_WAITS[0]);
    expect(&h, &g, TCPF_ACK | TCPF_PSH, their, 1081, 2 * ALIAS_ANSWER);
    struct tcp_conn *c = conn(&h, 50040);
    assert_int_equal(c->retries, 2);
    h_send_tcp(&h, DNS_IP, 50040, 53, 1081, their + ALIAS_ANSWER, TCPF_ACK, GWIN, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(c->retries, 0);
    assert_int_equal(c->rto_ms, RTO_WAITS[0]);
    h_advance(&h, RTO_WAITS[0] - 1);
    expect_none(&h);
    h_advance(&h, 1);
    expect(&h, &g, TCPF_ACK | TCPF_PSH, their + ALIAS_ANSWER, 1081, ALIAS_ANSWER);
    h_send_tcp(&h, DNS_IP, 50040, 53, 1081, their + 2 * ALIAS_ANSWER, TCPF_ACK, GWIN, NULL, 0, 0);
    assert_int_equal(c->rto_at, 0);
    h_advance(&h, 60000);
    expect_none(&h);
    h_stop(&h);
}

/* A zero window from the guest: nothing is sent into it, the persist timer probes it
 * (an ACK one below snd_una) with backoff, and data flows when it opens. */
static void test_zero_window_probe(void **state)
{
    struct harness h;
    struct seg g;
    start(&h);
    uint32_t their = dns_open(&h, 50050, 0);
    assert_int_equal(conn(&h, 50050)->snd_wnd, 0);
    ask_alias(&h, 50050, 1001, their, 0);
    expect_none(&h); /* the answer waits; the ACK of the query is delayed */
    h_advance(&h, DELACK);
    expect(&h, &g, TCPF_ACK, their, 1041, 0);
    h_advance(&h, RTO_WAITS[0] - DELACK - 1);
    expect_none(&h);
    h_advance(&h, 1);
    expect(&h, &g, TCPF_ACK, their - 1, 1041, 0);
    h_advance(&h, 2 * RTO_WAITS[0] - 1);
    expect_none(&h);
    h_advance(&h, 1);
    expect(&h, &g, TCPF_ACK, their - 1, 1041, 0);
    assert_int_equal(net_stack_stats(h.s)->tcp_retransmits, 0);              /* probes resend nothing */
    h_send_tcp(&h, DNS_IP, 50050, 53, 1041, their, TCPF_ACK, 1, NULL, 0, 0); /* 128 bytes */
    expect(&h, &g, TCPF_ACK | TCPF_PSH, their, 1041, ALIAS_ANSWER);
    h_stop(&h);
}

/* A window that closes with data in flight: the retransmission probes it with one
 * byte, and the rest follows once it opens. */
static void test_closed_window_probed_with_one_byte(void **state)
{
    struct harness h;
    struct seg g;
    start(&h);
    uint32_t their = dns_open(&h, 50060, 1);
    ask_alias(&h, 50060, 1001, their, 1);
    expect(&h, &g, TCPF_ACK | TCPF_PSH, their, 1041, ALIAS_ANSWER);
    h_send_tcp(&h, DNS_IP, 50060, 53, 1041, their, TCPF_ACK, 0, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(conn(&h, 50060)->snd_wnd, 0);
    h_advance(&h, RTO_WAITS[0]);
    expect(&h, &g, TCPF_ACK, their, 1041, 1);
    h_send_tcp(&h, DNS_IP, 50060, 53, 1041, their + 1, TCPF_ACK, 1, NULL, 0, 0);
    expect(&h, &g, TCPF_ACK | TCPF_PSH, their + 1, 1041, ALIAS_ANSWER - 1);
    h_stop(&h);
}

/* The guest's window bounds what is in flight (its scale applies after the SYN):
 * three answers in a window of 128 bytes go as 128, then the rest once acknowledged.
 * The window of a segment older than the one that last set it is ignored. */
static void test_send_window(void **state)
{
    struct harness h;
    struct seg g;
    uint8_t q[3 * ALIAS_QUERY];
    start(&h);
    uint32_t their = dns_open(&h, 50070, 1);
    for (int i = 0; i < 3; i++)
        framed(q + i * ALIAS_QUERY, (uint16_t)i, "host.cocoon.internal");
    h_send_tcp(&h, DNS_IP, 50070, 53, 1001, their, TCPF_ACK | TCPF_PSH, 1, q, sizeof(q), 0);
    expect(&h, &g, TCPF_ACK, their, 1121, 128);
    expect_none(&h);
    struct tcp_conn *c = conn(&h, 50070);
    h_send_tcp(&h, DNS_IP, 50070, 53, 1121, their, TCPF_ACK, 1, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(c->snd_wl1, 1121);
    /* a reordered older segment (sequence number below the one that last set the
     * window) that would close it: ignored */
    h_send_tcp(&h, DNS_IP, 50070, 53, 1001, their, TCPF_ACK, 0, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(c->snd_wnd, 128);
    h_send_tcp(&h, DNS_IP, 50070, 53, 1121, their + 128, TCPF_ACK, 1, NULL, 0, 0);
    expect(&h, &g, TCPF_ACK | TCPF_PSH, their + 128, 1121, 3 * ALIAS_ANSWER - 128);
    h_stop(&h);
}

/* A guest without window scaling: its windows are taken as they are, ours are not
 * scaled, and its MSS defaults to 536. */
static void test_no_window_scale(void **state)
{
    struct harness h;
    struct seg g;
    start(&h);
    uint32_t their = dns_syn(&h, 50080, 0) + 1;
    h_send_tcp(&h, DNS_IP, 50080, 53, 1001, their, TCPF_ACK, 100, NULL, 0, 0);
    struct tcp_conn *c = conn(&h, 50080);
    assert_int_equal(c->snd_wnd, 100);
    assert_int_equal(c->mss, 536);
    ask_alias(&h, 50080, 1001, their, 100);
    expect(&h, &g, TCPF_ACK | TCPF_PSH, their, 1041, ALIAS_ANSWER);
    assert_int_equal(g.t.win, RING_MIN); /* the query was consumed: all room, unscaled */
    h_stop(&h);
}

/* Our window is the room in the ring toward the host: it shrinks as the guest's bytes
 * wait there (behind sixteen queries the silent upstream holds), a segment larger than
 * the room is cut to it, none is taken at zero, and a window update goes out when the
 * room comes back (the upstream's timeout, 5 s later). */
static void test_receive_window(void **state)
{
    struct harness h;
    struct seg g;
    uint8_t q[16 * EXAMPLE_QUERY];
    start(&h);
    uint32_t their = dns_open(&h, 50090, GWIN);
    for (int i = 0; i < 16; i++)
        assert_int_equal(framed(q + i * EXAMPLE_QUERY, (uint16_t)i, "example.com"), EXAMPLE_QUERY);
    h_send_tcp(&h, DNS_IP, 50090, 53, 1001, their, TCPF_ACK | TCPF_PSH, GWIN, q, sizeof(q), 0);
    struct tcp_conn *c = conn(&h, 50090);
    assert_int_equal(c->dns_stream.pending, 16); /* the most one stream has in flight */
    expect_none(&h);                             /* delayed: all passed on, and plenty of window left */
    h_advance(&h, DELACK);
    expect(&h, &g, TCPF_ACK, their, 1497, 0);
    assert_int_equal(g.t.win, RING_MIN >> TCP_RCV_WSCALE);
    /* messages that are no queries (answered by nothing) wait behind the sixteen, one
     * segment of the guest's MSS after the other */
    static uint8_t junk[5 * 4000];
    for (int m = 0; m < 5; m++) {
        memset(junk + m * 4000, 0xff, 4000);
        wr16(junk + m * 4000, 3998);
    }
    uint32_t seq = 1497;
    size_t filled = 0;
    while (filled + 1460 <= RING_MIN) {
        h_send_tcp(&h, DNS_IP, 50090, 53, seq, their, TCPF_ACK, GWIN, junk + filled, 1460, 0);
        filled += 1460;
        seq += 1460;
        expect(&h, &g, TCPF_ACK, their, seq, 0);
        assert_int_equal(g.t.win, (RING_MIN - filled) >> TCP_RCV_WSCALE);
    }
    uint32_t room = (uint32_t)(RING_MIN - filled);
    h_send_tcp(&h, DNS_IP, 50090, 53, seq, their, TCPF_ACK, GWIN, junk + filled, 1460, 0);
    expect(&h, &g, TCPF_ACK, their, seq + room, 0);
    assert_int_equal(g.t.win, 0);
    seq += room;
    h_send_tcp(&h, DNS_IP, 50090, 53, seq, their, TCPF_ACK, GWIN, junk + RING_MIN, 100, 0);
    expect(&h, &g, TCPF_ACK, their, seq, 0);
    assert_int_equal(g.t.win, 0);
    assert_int_equal(c->to_host.len, RING_MIN);
    uint32_t left = RING_MIN - 4 * 4000; /* the start of the fifth message */
    /* the upstream's silence ends the sixteen (SERVFAIL), the ring drains but for the
     * start of an unfinished message, and the window opens */
    h_advance(&h, UPSTREAM_SILENCE - DELACK - 1);
    expect_none(&h);
    h_advance(&h, 1);
    expect(&h, &g, TCPF_ACK, their, seq, 0);
    assert_int_equal(g.t.win, (RING_MIN - left) >> TCP_RCV_WSCALE);
    for (int i = 0; i < 16; i++)
        expect(&h, &g, TCPF_ACK | TCPF_PSH, their + (uint32_t)i * SERVFAIL_ANSWER, seq, SERVFAIL_ANSWER);
    expect_none(&h);
    assert_int_equal(c->to_host.len, left);
    assert_int_equal(c->dns_stream.pending, 0);
    h_stop(&h);
}

/* Data acceptance: a segment after a gap is not taken (the ACK says what is missing),
 * one overlapping what was taken gives only its new bytes, an old retransmission an
 * ACK. A small request's ACK is delayed by DELACK; an answer carries it. */
static void test_data_acceptance_and_delayed_ack(void **state)
{
    struct harness h;
    struct seg g;
    uint8_t q[64];
    start(&h);
    uint32_t their = dns_open(&h, 50100, GWIN);
    framed(q, 9, "host.cocoon.internal");
    h_send_tcp(&h, DNS_IP, 50100, 53, 1021, their, TCPF_ACK, GWIN, q + 20, 20, 0);
    expect(&h, &g, TCPF_ACK, their, 1001, 0);
    h_send_tcp(&h, DNS_IP, 50100, 53, 1001, their, TCPF_ACK, GWIN, q, 20, 0);
    expect(&h, &g, TCPF_ACK, their, 1021, 0); /* at once: the bytes wait in the ring */
    h_send_tcp(&h, DNS_IP, 50100, 53, 1011, their, TCPF_ACK, GWIN, q + 10, 30, 0);
    expect(&h, &g, TCPF_ACK | TCPF_PSH, their, 1041, ALIAS_ANSWER);
    expect_none(&h);
    h_send_tcp(&h, DNS_IP, 50100, 53, 1001, their, TCPF_ACK, GWIN, q, ALIAS_QUERY, 0);
    expect(&h, &g, TCPF_ACK, their + ALIAS_ANSWER, 1041, 0);
    /* a query the upstream holds: its ACK waits DELACK for an answer */
    uint8_t e[64];
    assert_int_equal(framed(e, 10, "example.com"), EXAMPLE_QUERY);
    h_send_tcp(&h, DNS_IP, 50100, 53, 1041, their + ALIAS_ANSWER, TCPF_ACK | TCPF_PSH, GWIN, e, EXAMPLE_QUERY, 0);
    expect_none(&h);
    h_advance(&h, DELACK - 1);
    expect_none(&h);
    h_advance(&h, 1);
    expect(&h, &g, TCPF_ACK, their + ALIAS_ANSWER, 1041 + EXAMPLE_QUERY, 0);
    h_stop(&h);
}

/* RFC 9293 3.10.7.4 with RFC 5961 5.2: an ACK above snd_max gets a challenge ACK and
 * its segment is dropped; one below snd_una by up to the largest window is a
 * duplicate that moves nothing; older than that, a challenge ACK; a new one moves
 * snd_una, and the last one stops the timer. */
static void test_ack_acceptance(void **state)
{
    struct harness h;
    struct seg g;
    uint32_t their = dns_answered(&h, 50110);
    struct tcp_conn *c = conn(&h, 50110);
    uint32_t top = their + ALIAS_ANSWER;
    h_send_tcp(&h, DNS_IP, 50110, 53, 1041, top + 1, TCPF_ACK | TCPF_PSH, GWIN, "bogus", 5, 0);
    expect(&h, &g, TCPF_ACK, top, 1041, 0);
    assert_int_equal(c->rcv_nxt, 1041);
    h_send_tcp(&h, DNS_IP, 50110, 53, 1041, their + 20, TCPF_ACK, GWIN, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(c->snd_una, their + 20);
    assert_int_equal(c->to_guest.len, ALIAS_ANSWER - 20);
    uint32_t wnd = c->snd_wnd;
    h_send_tcp(&h, DNS_IP, 50110, 53, 1041, their + 10, TCPF_ACK, 1, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(c->snd_una, their + 20);
    assert_int_equal(c->snd_wnd, wnd);
    h_send_tcp(&h, DNS_IP, 50110, 53, 1041, their + 20 - 0x40000000u, TCPF_ACK, GWIN, NULL, 0, 0);
    expect(&h, &g, TCPF_ACK, top, 1041, 0);
    assert_int_equal(c->snd_una, their + 20);
    h_send_tcp(&h, DNS_IP, 50110, 53, 1041, top, TCPF_ACK, GWIN, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(c->snd_una, top);
    assert_int_equal(c->rto_at, 0);
    h_advance(&h, 60000);
    expect_none(&h);
    assert_int_equal(net_stack_stats(h.s)->tcp_retransmits, 0);
    h_stop(&h);
}

/* RFC 5961 3 and 4: a RST inside the window but not at rcv_nxt gets a challenge ACK,
 * outside it nothing; a SYN gets a challenge ACK; a segment without ACK is dropped;
 * the exact RST ends the connection, and what comes later gets a RST. */
static void test_rst_syn_and_ackless_acceptance(void **state)
{
    struct harness h;
    struct seg g;
    uint8_t q[64];
    start(&h);
    uint32_t their = dns_open(&h, 50120, GWIN);
    h_send_tcp(&h, DNS_IP, 50120, 53, 1101, 0, TCPF_RST, 0, NULL, 0, 0);
    expect(&h, &g, TCPF_ACK, their, 1001, 0);
    h_send_tcp(&h, DNS_IP, 50120, 53, 1001 + RING_MIN + 100, 0, TCPF_RST, 0, NULL, 0, 0);
    h_send_tcp(&h, DNS_IP, 50120, 53, 1000, 0, TCPF_RST, 0, NULL, 0, 0);
    expect_none(&h);
    h_send_tcp(&h, DNS_IP, 50120, 53, 777, 0, TCPF_SYN, 65535, NULL, 0, 1);
    expect(&h, &g, TCPF_ACK, their, 1001, 0);
    assert_int_equal(conn(&h, 50120)->state, TS_ESTABLISHED);
    framed(q, 11, "host.cocoon.internal");
    h_send_tcp(&h, DNS_IP, 50120, 53, 1001, 0, TCPF_PSH, GWIN, q, ALIAS_QUERY, 0);
    expect_none(&h);
    assert_int_equal(conn(&h, 50120)->rcv_nxt, 1001);
    h_send_tcp(&h, DNS_IP, 50120, 53, 1001, 0, TCPF_RST, 0, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(h.s->ntcp, 0);
    h_send_tcp(&h, DNS_IP, 50120, 53, 1001, their, TCPF_ACK, GWIN, NULL, 0, 0);
    expect(&h, &g, TCPF_RST, their, 0, 0);
    h_stop(&h);
}

/* ESTABLISHED -> CLOSE WAIT -> LAST ACK -> CLOSED on a DNS connection: the guest's FIN
 * is ACKed at once, ours follows its answers, is resent on timeout, and its ACK frees
 * the connection. */
static void test_dns_close_wait_last_ack(void **state)
{
    struct harness h;
    struct seg g;
    start(&h);
    uint32_t their = dns_open(&h, 50130, GWIN);
    h_send_tcp(&h, DNS_IP, 50130, 53, 1001, their, TCPF_ACK | TCPF_FIN, GWIN, NULL, 0, 0);
    expect(&h, &g, TCPF_ACK, their, 1002, 0);
    expect(&h, &g, TCPF_ACK | TCPF_FIN, their, 1002, 0);
    struct tcp_conn *c = conn(&h, 50130);
    assert_true(c->guest_fin && c->fin_sent && !c->fin_acked);
    h_advance(&h, RTO_WAITS[0]);
    expect(&h, &g, TCPF_ACK | TCPF_FIN, their, 1002, 0);
    h_send_tcp(&h, DNS_IP, 50130, 53, 1002, their + 1, TCPF_ACK, GWIN, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(h.s->ntcp, 0);
    h_stop(&h);
}

/* ---- connections to a host socket (a loopback listener of the test) ---- */

static int host_accept(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* Reads up to n bytes the stack wrote to the host socket fd: what came within 5 s,
 * 0 at EOF, -1 with errno on an error. */
static ssize_t host_read(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1)
            break;
        ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
        if (r <= 0)
            return got ? (ssize_t)got : r;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* A stack that lets the guest reach the test's listener (*lfd) as GW:*port. */
static void start_with_host(struct harness *h, int *lfd, uint16_t *port)
{
    *lfd = listen_any(SOCK_STREAM, port);
    assert_true(*lfd >= 0);
    h_init_cfg(h);
    allow_host(h, *port);
    h_start_clocked(h);
    assert_non_null(h->s);
}

/* One guest connection to a host socket of the test. */
struct host_conn {
    struct harness h;
    int lfd, hfd;   /* the test's listener, and the connection it accepted */
    uint16_t port;  /* the listener's, reached by the guest as GW:port */
    uint16_t sport; /* the guest's */
    uint32_t their; /* the stack's ISS + 1; the guest's is 1000 */
};

/* A segment of the guest on x's connection. */
static void host_tx(struct host_conn *x, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, const void *data,
                    size_t len)
{
    h_send_tcp(&x->h, GW, x->sport, x->port, seq, ack, flags, win, data, len, (flags & TCPF_SYN) != 0);
}

/* The guest connects from x->sport (window win): CONNECTING, SYN_RCVD once the host
 * connection is up, ESTABLISHED on its ACK; x->hfd is the accepted host socket. */
static void host_open(struct host_conn *x, uint16_t sport, uint16_t win)
{
    struct harness *h = &x->h;
    struct seg g;
    x->sport = sport;
    host_tx(x, 1000, 0, TCPF_SYN, 65535, NULL, 0);
    if (h->qh == h->qt)
        assert_int_equal(conn(h, sport)->state, TS_CONNECTING); /* connect() still in progress */
    wait_frame(h);
    assert_true(next_seg(h, &g));
    assert_int_equal(g.t.flags, TCPF_SYN | TCPF_ACK);
    assert_int_equal(g.t.ack, 1001);
    assert_int_equal(conn(h, sport)->state, TS_SYN_RCVD);
    x->their = g.t.seq + 1;
    host_tx(x, 1001, x->their, TCPF_ACK, win, NULL, 0);
    expect_none(h);
    assert_int_equal(conn(h, sport)->state, TS_ESTABLISHED);
    x->hfd = host_accept(x->lfd);
}

/* A stack, a listener and one established connection to it from sport. */
static void host_start(struct host_conn *x, uint16_t sport, uint16_t win)
{
    start_with_host(&x->h, &x->lfd, &x->port);
    host_open(x, sport, win);
}

static void host_stop(struct host_conn *x)
{
    if (x->hfd >= 0)
        close(x->hfd);
    h_stop(&x->h);
    close(x->lfd);
}

/* CONNECTING: while the host's connect() is in progress (the listener's queue is
 * full) a repeated SYN and time change nothing, a RST off rcv_nxt is ignored, and the
 * exact RST drops the connection. A refused connect() is a RST to the guest. */
static void test_connecting(void **state)
{
    struct harness h;
    struct seg g;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t sl = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), filler = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 0), 0); /* one queued connection fills it */
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), 0);
    uint16_t port = ntohs(sa.sin_port), closed;
    int tmp = listen_any(SOCK_STREAM, &closed);
    close(tmp);
    h_init_cfg(&h);
    allow_host(&h, port);
    allow_host(&h, closed);
    h_start_clocked(&h);
    h_send_tcp(&h, GW, 50200, port, 1000, 0, TCPF_SYN, 65535, NULL, 0, 1);
    expect_none(&h);
    struct tcp_conn *c = conn(&h, 50200);
    assert_int_equal(c->state, TS_CONNECTING);
    assert_int_equal(h.s->nhalf, 1);
    h_send_tcp(&h, GW, 50200, port, 1000, 0, TCPF_SYN, 65535, NULL, 0, 1);
    h_advance(&h, 60000);
    h_send_tcp(&h, GW, 50200, port, 5000, 0, TCPF_RST, 0, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(c->state, TS_CONNECTING);
    h_send_tcp(&h, GW, 50200, port, 1001, 0, TCPF_RST, 0, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(h.s->ntcp, 0);
    assert_int_equal(h.s->nhalf, 0);
    /* nothing listens on closed: RST|ACK of the SYN, from no sequence number */
    h_send_tcp(&h, GW, 50201, closed, 3000, 0, TCPF_SYN, 65535, NULL, 0, 1);
    wait_frame(&h);
    expect(&h, &g, TCPF_RST | TCPF_ACK, 0, 3001, 0);
    assert_int_equal(h.s->ntcp, 0);
    h_stop(&h);
    close(filler);
    close(lfd);
}

/* CONNECTING -> SYN_RCVD -> ESTABLISHED, then data both ways: the guest's bytes reach
 * the host socket at the batch's end, the host's reach the guest. */
static void test_host_connection_data(void **state)
{
    struct host_conn x;
    struct seg g;
    uint8_t buf[16];
    host_start(&x, 50300, GWIN);
    host_tx(&x, 1001, x.their, TCPF_ACK | TCPF_PSH, GWIN, "hello", 5);
    assert_int_equal(host_read(x.hfd, buf, 5), 5);
    assert_memory_equal(buf, "hello", 5);
    h_advance(&x.h, DELACK);
    expect(&x.h, &g, TCPF_ACK, x.their, 1006, 0);
    assert_int_equal(send(x.hfd, "world", 5, 0), 5);
    wait_frame(&x.h);
    expect(&x.h, &g, TCPF_ACK | TCPF_PSH, x.their, 1006, 5);
    assert_memory_equal(g.t.data, "world", 5);
    host_stop(&x);
}

/* The guest's window and MSS bound what goes out of the host's data: 4000 bytes in a
 * window of 128 go 128 at a time, then in MSS-sized segments once it is wide. */
static void test_host_data_window_and_mss(void **state)
{
    struct host_conn x;
    struct seg g;
    static uint8_t data[4000];
    host_start(&x, 50400, 1);
    memset(data, 'w', sizeof(data));
    assert_int_equal(send(x.hfd, data, sizeof(data), 0), (ssize_t)sizeof(data));
    wait_frame(&x.h);
    expect(&x.h, &g, TCPF_ACK, x.their, 1001, 128);
    expect_none(&x.h);
    host_tx(&x, 1001, x.their + 128, TCPF_ACK, 1, NULL, 0);
    expect(&x.h, &g, TCPF_ACK, x.their + 128, 1001, 128);
    host_tx(&x, 1001, x.their + 256, TCPF_ACK, GWIN, NULL, 0);
    expect(&x.h, &g, TCPF_ACK, x.their + 256, 1001, 1460);
    expect(&x.h, &g, TCPF_ACK, x.their + 1716, 1001, 1460);
    expect(&x.h, &g, TCPF_ACK | TCPF_PSH, x.their + 3176, 1001, 4000 - 3176);
    expect_none(&x.h);
    host_stop(&x);
}

/* ESTABLISHED -> CLOSE WAIT -> LAST ACK -> CLOSED: the guest's FIN is ACKed at once
 * and shuts the host socket for writing; the host may still send; its close is our
 * FIN, resent on timeout, and the guest's ACK of it frees the connection. */
static void test_close_guest_first(void **state)
{
    struct host_conn x;
    struct seg g;
    uint8_t buf[16];
    host_start(&x, 50500, GWIN);
    host_tx(&x, 1001, x.their, TCPF_ACK | TCPF_FIN, GWIN, NULL, 0);
    expect(&x.h, &g, TCPF_ACK, x.their, 1002, 0);
    struct tcp_conn *c = conn(&x.h, x.sport);
    assert_true(c->guest_fin && !c->fin_sent);
    assert_int_equal(host_read(x.hfd, buf, sizeof(buf)), 0); /* EOF */
    assert_int_equal(send(x.hfd, "late", 4, 0), 4);
    wait_frame(&x.h);
    expect(&x.h, &g, TCPF_ACK | TCPF_PSH, x.their, 1002, 4);
    host_tx(&x, 1002, x.their + 4, TCPF_ACK, GWIN, NULL, 0);
    expect_none(&x.h);
    close(x.hfd);
    x.hfd = -1;
    wait_frame(&x.h);
    expect(&x.h, &g, TCPF_ACK | TCPF_FIN, x.their + 4, 1002, 0);
    assert_true(c->fin_sent && !c->fin_acked);
    h_advance(&x.h, RTO_WAITS[0]);
    expect(&x.h, &g, TCPF_ACK | TCPF_FIN, x.their + 4, 1002, 0);
    host_tx(&x, 1002, x.their + 5, TCPF_ACK, GWIN, NULL, 0);
    expect_none(&x.h);
    assert_int_equal(x.h.s->ntcp, 0);
    host_stop(&x);
}

/* Reads segments until the stack's FIN, checking they continue at *seq; returns the
 * data bytes, copied to buf. */
static size_t read_until_fin(struct harness *h, uint32_t *seq, uint8_t *buf, size_t cap)
{
    struct seg g;
    size_t got = 0;
    for (;;) {
        wait_frame(h);
        assert_true(next_seg(h, &g));
        assert_int_equal(g.t.seq, *seq);
        assert_true(got + g.t.len <= cap);
        memcpy(buf + got, g.t.data, g.t.len);
        got += g.t.len;
        *seq += (uint32_t)g.t.len;
        if (g.t.flags & TCPF_FIN)
            return got;
    }
}

/* ESTABLISHED -> FIN WAIT 1 -> FIN WAIT 2 -> CLOSED: the host's EOF is our FIN (on its
 * last bytes), the guest's ACK of the data alone leaves it unacknowledged, its ACK of
 * the FIN does not end the guest's side, which still sends; the guest's FIN frees the
 * connection at once (no TIME WAIT: a repeated FIN then meets a RST). */
static void test_close_host_first(void **state)
{
    struct host_conn x;
    struct seg g;
    uint8_t buf[16];
    host_start(&x, 50600, GWIN);
    assert_int_equal(send(x.hfd, "bye", 3, 0), 3);
    shutdown(x.hfd, SHUT_WR);
    uint32_t seq = x.their;
    assert_int_equal(read_until_fin(&x.h, &seq, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "bye", 3);
    assert_int_equal(seq, x.their + 3);
    struct tcp_conn *c = conn(&x.h, x.sport);
    host_tx(&x, 1001, x.their + 3, TCPF_ACK, GWIN, NULL, 0);
    expect_none(&x.h);
    assert_true(c->fin_sent && !c->fin_acked);
    host_tx(&x, 1001, x.their + 4, TCPF_ACK, GWIN, NULL, 0);
    expect_none(&x.h);
    assert_true(c->fin_acked);
    assert_int_equal(c->rto_at, 0);
    host_tx(&x, 1001, x.their + 4, TCPF_ACK | TCPF_PSH, GWIN, "more", 4);
    assert_int_equal(host_read(x.hfd, buf, 4), 4);
    assert_memory_equal(buf, "more", 4);
    host_tx(&x, 1005, x.their + 4, TCPF_ACK | TCPF_FIN, GWIN, NULL, 0);
    expect(&x.h, &g, TCPF_ACK, x.their + 4, 1006, 0);
    assert_int_equal(x.h.s->ntcp, 0);
    assert_int_equal(host_read(x.hfd, buf, sizeof(buf)), 0);
    host_tx(&x, 1005, x.their + 4, TCPF_ACK | TCPF_FIN, GWIN, NULL, 0);
    expect(&x.h, &g, TCPF_RST, x.their + 4, 0, 0);
    host_stop(&x);
}

/* Both FINs cross (CLOSING): the guest's FIN that does not acknowledge ours is ACKed,
 * and its ACK of ours frees the connection. */
static void test_simultaneous_close(void **state)
{
    struct host_conn x;
    struct seg g;
    uint8_t buf[16];
    host_start(&x, 50700, GWIN);
    shutdown(x.hfd, SHUT_WR);
    uint32_t seq = x.their;
    assert_int_equal(read_until_fin(&x.h, &seq, buf, sizeof(buf)), 0);
    host_tx(&x, 1001, x.their, TCPF_ACK | TCPF_FIN, GWIN, NULL, 0);
    expect(&x.h, &g, TCPF_ACK, x.their + 1, 1002, 0);
    assert_int_equal(x.h.s->ntcp, 1);
    host_tx(&x, 1002, x.their + 1, TCPF_ACK, GWIN, NULL, 0);
    expect_none(&x.h);
    assert_int_equal(x.h.s->ntcp, 0);
    host_stop(&x);
}

/* ESTABLISHED -> CLOSED both ways by reset: the guest's exact RST aborts the host
 * connection; a host connection reset is a RST to the guest. */
static void test_resets(void **state)
{
    struct host_conn x;
    struct seg g;
    uint8_t buf[16];
    host_start(&x, 50800, GWIN);
    host_tx(&x, 1001, 0, TCPF_RST, 0, NULL, 0);
    expect_none(&x.h);
    assert_int_equal(x.h.s->ntcp, 0);
    assert_int_equal(host_read(x.hfd, buf, sizeof(buf)), -1);
    assert_int_equal(errno, ECONNRESET);
    close(x.hfd);
    host_open(&x, 50801, GWIN);
    struct linger lg = {1, 0};
    setsockopt(x.hfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(x.hfd);
    x.hfd = -1;
    wait_frame(&x.h);
    expect(&x.h, &g, TCPF_RST | TCPF_ACK, x.their, 1001, 0);
    assert_int_equal(x.h.s->ntcp, 0);
    host_stop(&x);
}

/* ---- published ports: the stack opens toward the guest ---- */

/* A stack publishing a free host port (returned) to the guest's port 80, and a host
 * client connected to it; the stack's SYN to the guest is read into *syn. */
static int start_published(struct harness *h, struct pkt_tcp *syn)
{
    char err[128], spec[64];
    uint16_t hp;
    struct seg g;
    int tmp = listen_any(SOCK_STREAM, &hp);
    close(tmp);
    h_init_cfg(h);
    snprintf(spec, sizeof(spec), "127.0.0.1:%u:80", hp);
    assert_int_equal(net_port_parse(spec, &h->cfg.ports[0], err, sizeof(err)), 0);
    h->cfg.nports = 1;
    h_start_clocked(h);
    assert_non_null(h->s);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(hp), .sin_addr.s_addr = htonl(0x7f000001)};
    assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    wait_frame(h);
    assert_true(next_seg(h, &g));
    assert_int_equal(g.t.flags, TCPF_SYN);
    assert_int_equal(g.t.dport, 80);
    assert_int_equal(g.ip.src, GW);
    assert_int_equal(g.t.mss, 1460);
    assert_int_equal(g.t.wscale, TCP_RCV_WSCALE);
    *syn = g.t;
    struct tcp_conn *c = conn(h, 80);
    assert_int_equal(c->state, TS_SYN_SENT);
    assert_int_equal(h->s->nhalf, 1);
    return cfd;
}

/* SYN_SENT: segments that do not acknowledge our SYN get a RST (when they carry an
 * ACK), RSTs that do not are ignored; the guest's SYN-ACK makes it ESTABLISHED. */
static void test_syn_sent_to_established(void **state)
{
    struct harness h;
    struct seg g;
    struct pkt_tcp syn;
    int cfd = start_published(&h, &syn);
    uint16_t ep = syn.sport;
    uint32_t iss = syn.seq;
    h_send_tcp(&h, GW, 80, ep, 9000, iss + 7, TCPF_ACK, GWIN, NULL, 0, 0);
    expect(&h, &g, TCPF_RST, iss + 7, 0, 0);
    h_send_tcp(&h, GW, 80, ep, 9000, iss + 7, TCPF_SYN | TCPF_ACK, 65535, NULL, 0, 1);
    expect(&h, &g, TCPF_RST, iss + 7, 0, 0);
    h_send_tcp(&h, GW, 80, ep, 9000, 0, TCPF_RST, 0, NULL, 0, 0);
    h_send_tcp(&h, GW, 80, ep, 9000, iss + 5, TCPF_RST | TCPF_ACK, 0, NULL, 0, 0);
    expect_none(&h);
    struct tcp_conn *c = conn(&h, 80);
    assert_int_equal(c->state, TS_SYN_SENT);
    h_send_tcp(&h, GW, 80, ep, 9000, iss + 1, TCPF_SYN | TCPF_ACK, 65535, NULL, 0, 1);
    expect(&h, &g, TCPF_ACK, iss + 1, 9001, 0);
    assert_int_equal(c->state, TS_ESTABLISHED);
    assert_int_equal(h.s->nhalf, 0);
    assert_int_equal(c->snd_wscale, 7);
    assert_int_equal(send(cfd, "ping", 4, 0), 4);
    wait_frame(&h);
    expect(&h, &g, TCPF_ACK | TCPF_PSH, iss + 1, 9001, 4);
    assert_memory_equal(g.t.data, "ping", 4);
    close(cfd);
    h_stop(&h);
}

/* SYN_SENT -> CLOSED: our SYN is resent after 1, 2, 4, 8, 10, 10 s, then the host
 * client is reset; a RST acknowledging our SYN does the same at once. */
static void test_syn_sent_gives_up_or_reset(void **state)
{
    struct harness h;
    struct pkt_tcp syn;
    uint8_t buf[8];
    int cfd = start_published(&h, &syn);
    expect_schedule(&h, SYN_WAITS, NWAITS(SYN_WAITS), TCPF_SYN, syn.seq, 0, 0);
    assert_int_equal(h.s->ntcp, 1);
    h_advance(&h, 1);
    expect_none(&h);
    assert_int_equal(h.s->ntcp, 0);
    assert_int_equal(host_read(cfd, buf, sizeof(buf)), -1);
    assert_int_equal(errno, ECONNRESET);
    close(cfd);
    h_stop(&h);

    cfd = start_published(&h, &syn);
    h_send_tcp(&h, GW, 80, syn.sport, 0, syn.seq + 1, TCPF_RST | TCPF_ACK, 0, NULL, 0, 0);
    expect_none(&h);
    assert_int_equal(h.s->ntcp, 0);
    assert_int_equal(host_read(cfd, buf, sizeof(buf)), -1);
    assert_int_equal(errno, ECONNRESET);
    close(cfd);
    h_stop(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syn_rcvd_to_established),
        cmocka_unit_test(test_syn_rcvd_reset),
        cmocka_unit_test(test_synack_retransmission_gives_up),
        cmocka_unit_test(test_retransmission_backoff_gives_up),
        cmocka_unit_test(test_ack_restarts_retransmission),
        cmocka_unit_test(test_zero_window_probe),
        cmocka_unit_test(test_closed_window_probed_with_one_byte),
        cmocka_unit_test(test_send_window),
        cmocka_unit_test(test_no_window_scale),
        cmocka_unit_test(test_receive_window),
        cmocka_unit_test(test_data_acceptance_and_delayed_ack),
        cmocka_unit_test(test_ack_acceptance),
        cmocka_unit_test(test_rst_syn_and_ackless_acceptance),
        cmocka_unit_test(test_dns_close_wait_last_ack),
        cmocka_unit_test(test_connecting),
        cmocka_unit_test(test_host_connection_data),
        cmocka_unit_test(test_host_data_window_and_mss),
        cmocka_unit_test(test_close_guest_first),
        cmocka_unit_test(test_close_host_first),
        cmocka_unit_test(test_simultaneous_close),
        cmocka_unit_test(test_resets),
        cmocka_unit_test(test_syn_sent_to_established),
        cmocka_unit_test(test_syn_sent_gives_up_or_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
