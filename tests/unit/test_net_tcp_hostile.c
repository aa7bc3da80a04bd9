/* TCP segments a hostile guest sends on an established connection, replayed exactly:
 * an ACK below snd_una (which once rewound it and made the stack resend stale ring
 * memory), an ACK above snd_max, RSTs at and around rcv_nxt and a SYN, each checked
 * against RFC 793/5961's acceptance rules: nothing the guest already acknowledged is
 * sent again, bogus segments get a challenge ACK, and the connection keeps working. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "net_echo.h"

#define SECRET "SECRET-of-an-earlier-connection:"

/* What the stack sent the guest since the last call: frames, their data bytes, and
 * whether any frame carries the marker of an earlier connection. */
struct sent {
    int frames, acks_only, rsts, data_segs;
    size_t data_bytes;
    int secret;
    uint32_t min_seq, last_ack;
};

static void collect(struct harness *h, struct sent *out, int ms)
{
    uint8_t f[2048];
    struct pkt_ip ip;
    struct pkt_tcp t;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < ms / 5 + 1; i++) {
        size_t n;
        while ((n = h_pop(h, f, sizeof(f))) > 0) {
            out->frames++;
            if (memmem(f, n, "SECRET", 6))
                out->secret = 1;
            if (h_parse_tcp(f, n, &ip, &t) < 0)
                continue;
            if (t.flags & TCPF_RST)
                out->rsts++;
            if (t.len) {
                if (!out->data_segs || (int32_t)(t.seq - out->min_seq) < 0)
                    out->min_seq = t.seq;
                out->data_segs++;
                out->data_bytes += t.len;
            } else if (t.flags == TCPF_ACK) {
                out->acks_only++;
            }
            out->last_ack = t.ack;
        }
        h_pump(h, 5);
    }
}

/* A stack with one connection from sport to the echo server, established, the
 * frames of its handshake consumed. */
static void establish(struct harness *h, uint16_t sport, uint32_t *their)
{
    struct sent got;
    h_init_cfg(h);
    allow_host(h, echo_port);
    h_start(h);
    assert_int_equal(handshake(h, sport, echo_port, their), 0);
    collect(h, &got, 10);
}

/* The attack as first seen: an earlier connection leaves its data in the rings the
 * stack keeps for reuse, a second connection exchanges 5 bytes, then the guest sends
 * an ACK 200000 below snd_una with a wide window. Nothing may leave: the guest has
 * acknowledged every byte, so there is nothing to resend. */
static void test_old_ack_resends_nothing(void **state)
{
    struct harness h;
    struct sent got;
    uint32_t their, seq = 1001;
    establish(&h, 44000, &their);
    size_t big = 200000;
    uint8_t *secret = malloc(big);
    for (size_t i = 0; i < big; i++)
        secret[i] = (uint8_t)SECRET[i % (sizeof(SECRET) - 1)];
    transfer(&h, 44000, echo_port, &seq, &their, secret, big, 0);
    free(secret);
    h_send_tcp(&h, GW, 44000, echo_port, seq, their, TCPF_RST, 0, NULL, 0, 0);
    assert_int_equal(h.s->ntcp, 0);

    seq = 1001;
    assert_int_equal(handshake(&h, 44001, echo_port, &their), 0);
    transfer(&h, 44001, echo_port, &seq, &their, (const uint8_t *)"hello", 5, 0);
    collect(&h, &got, 20);
    struct tcp_conn *c = h.s->tcp_list;
    assert_non_null(c);
    assert_int_equal(c->snd_una, their);
    uint32_t wnd = c->snd_wnd;

    h_send_tcp(&h, GW, 44001, echo_port, seq, their - 200000, TCPF_ACK, 65535, NULL, 0, 0);
    collect(&h, &got, 100);
    assert_int_equal(got.data_segs, 0);
    assert_int_equal(got.data_bytes, 0);
    assert_false(got.secret);
    assert_int_equal(c->snd_una, their);
    assert_int_equal(c->snd_nxt, their);
    assert_int_equal(c->snd_wnd, wnd); /* an old ACK does not move the window either */
    assert_int_equal(net_stack_stats(h.s)->tcp_retransmits, 0);

    /* an ACK far older than any window: challenge ACK, dropped */
    h_send_tcp(&h, GW, 44001, echo_port, seq, their - 0x40000000u, TCPF_ACK, 65535, NULL, 0, 0);
    collect(&h, &got, 20);
    assert_int_equal(got.data_segs, 0);
    assert_false(got.secret);

    /* and the connection still works */
    transfer(&h, 44001, echo_port, &seq, &their, (const uint8_t *)"again", 5, 0);
    assert_int_equal(c->snd_una, their);
    h_stop(&h);
}

/* An ACK for bytes never sent: a challenge ACK, and the segment (with its data) is
 * dropped, so the host never sees those bytes. */
static void test_ack_above_snd_max_challenged(void **state)
{
    struct harness h;
    struct sent got;
    uint32_t their, seq = 1001;
    establish(&h, 44100, &their);
    h_send_tcp(&h, GW, 44100, echo_port, seq, their + 100000, TCPF_ACK | TCPF_PSH, 4096, "bogus", 5, 0);
    collect(&h, &got, 100);
    assert_int_equal(got.acks_only, 1);
    assert_int_equal(got.last_ack, seq); /* the 5 bytes were not taken */
    assert_int_equal(got.data_segs, 0);  /* so nothing was echoed */
    struct tcp_conn *c = h.s->tcp_list;
    assert_non_null(c);
    assert_int_equal(c->rcv_nxt, seq);
    assert_int_equal(c->snd_una, their);
    transfer(&h, 44100, echo_port, &seq, &their, (const uint8_t *)"fine", 4, 0);
    h_stop(&h);
}

/* RFC 5961 section 3: a RST resets the connection only at exactly rcv_nxt; inside the
 * window it gets a challenge ACK, outside it is ignored. */
static void test_rst_acceptance(void **state)
{
    struct harness h;
    struct sent got;
    uint32_t their, seq = 1001;
    establish(&h, 44200, &their);
    h_send_tcp(&h, GW, 44200, echo_port, seq + 1000, 0, TCPF_RST, 0, NULL, 0, 0);
    collect(&h, &got, 20);
    assert_int_equal(h.s->ntcp, 1);
    assert_int_equal(got.acks_only, 1);
    assert_int_equal(got.last_ack, seq);
    h_send_tcp(&h, GW, 44200, echo_port, seq + (64u << 20), 0, TCPF_RST | TCPF_ACK, 0, NULL, 0, 0);
    h_send_tcp(&h, GW, 44200, echo_port, seq - 1, 0, TCPF_RST, 0, NULL, 0, 0);
    collect(&h, &got, 20);
    assert_int_equal(h.s->ntcp, 1);
    assert_int_equal(got.frames, 0);
    transfer(&h, 44200, echo_port, &seq, &their, (const uint8_t *)"alive", 5, 0);
    h_send_tcp(&h, GW, 44200, echo_port, seq, 0, TCPF_RST, 0, NULL, 0, 0);
    assert_int_equal(h.s->ntcp, 0);
    h_stop(&h);
}

/* RFC 5961 section 4: a SYN on a synchronized connection gets a challenge ACK; the
 * connection is neither reset nor restarted. Segments without ACK carry nothing. */
static void test_syn_and_ackless_on_established(void **state)
{
    struct harness h;
    struct sent got;
    uint32_t their, seq = 1001;
    establish(&h, 44300, &their);
    h_send_tcp(&h, GW, 44300, echo_port, 777777, 0, TCPF_SYN, 65535, NULL, 0, 1);
    collect(&h, &got, 20);
    assert_int_equal(h.s->ntcp, 1);
    assert_int_equal(got.rsts, 0);
    assert_int_equal(got.acks_only, 1);
    assert_int_equal(got.last_ack, seq);
    h_send_tcp(&h, GW, 44300, echo_port, seq, 0, TCPF_PSH, 4096, "noack", 5, 0);
    collect(&h, &got, 50);
    assert_int_equal(h.s->tcp_list->rcv_nxt, seq);
    assert_int_equal(got.data_segs, 0);
    transfer(&h, 44300, echo_port, &seq, &their, (const uint8_t *)"still", 5, 0);
    h_stop(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_old_ack_resends_nothing),
        cmocka_unit_test(test_ack_above_snd_max_challenged),
        cmocka_unit_test(test_rst_acceptance),
        cmocka_unit_test(test_syn_and_ackless_on_established),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
