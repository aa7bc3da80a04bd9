/* TCP termination driven by synthetic guest segments against a loopback echo server
 * (no VM): handshake, data both ways with flow control, retransmission after a lost
 * frame, one ACK per batch and delayed ACKs, FIN both ways, RST on refused/denied/
 * over-limit connections, published port, DNS over TCP answered by the stack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_echo.h"

static void test_echo_roundtrip(void **state)
{
    struct harness h;
    h_init_cfg(&h);
    allow_host(&h, echo_port);
    h_start(&h);
    assert_non_null(h.s);
    uint32_t their, seq = 1001;
    assert_int_equal(handshake(&h, 40000, echo_port, &their), 0);
    transfer(&h, 40000, echo_port, &seq, &their, (const uint8_t *)"hello", 5, 0);
    size_t big = 1u << 20;
    uint8_t *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 11));
    transfer(&h, 40000, echo_port, &seq, &their, data, big, 1);
    assert_true(net_stack_stats(h.s)->tcp_retransmits >= 1);
    free(data);

    /* FIN from the guest: the echo server closes, the stack sends FIN, we ack it. */
    h_send_tcp(&h, GW, 40000, echo_port, seq, their, TCPF_FIN | TCPF_ACK, 2048, NULL, 0, 0);
    seq++;
    struct pkt_tcp t;
    assert_int_equal(h_wait_tcp_flags(&h, TCPF_FIN, 200, &t), 0);
    assert_int_equal(t.seq, their);
    assert_int_equal(t.ack, seq);
    their++;
    h_send_tcp(&h, GW, 40000, echo_port, seq, their, TCPF_ACK, 2048, NULL, 0, 0);
    assert_int_equal(h.s->ntcp, 0);
    h_stop(&h);
}

/* Reads n echoed bytes (acking each segment); returns the ack of the first data
 * segment. */
static uint32_t read_echo(struct harness *h, uint16_t sport, uint32_t seq, uint32_t *their, size_t n)
{
    uint8_t f[2048];
    struct pkt_ip ip;
    struct pkt_tcp t;
    size_t got = 0;
    uint32_t first_ack = 0;
    for (int i = 0; i < 400 && got < n; i++) {
        size_t len = h_wait(h, f, sizeof(f), 20);
        if (!len || h_parse_tcp(f, len, &ip, &t) < 0)
            continue;
        assert_false(t.flags & TCPF_RST);
        assert_true((int32_t)(t.ack - seq) <= 0); /* never acks what was not sent */
        if (t.len && t.seq == *their) {
            if (!got)
                first_ack = t.ack;
            got += t.len;
            *their += (uint32_t)t.len;
            h_send_tcp(h, GW, sport, echo_port, seq, *their, TCPF_ACK, 4096, NULL, 0, 0);
        }
    }
    assert_int_equal(got, n);
    return first_ack;
}

/* A batch of guest segments costs one writev and one ACK, sent at the batch's end
 * with the whole window; a small request is not ACKed at once (the answer carries
 * the ACK, or the delayed-ACK timer sends it). */
static void test_batched_and_delayed_acks(void **state)
{
    struct harness h;
    uint8_t f[2048], seg[1000];
    struct pkt_ip ip;
    struct pkt_tcp t;
    h_init_cfg(&h);
    allow_host(&h, echo_port);
    h_start(&h);
    uint32_t their, seq = 1001;
    assert_int_equal(handshake(&h, 43000, echo_port, &their), 0);
    h_clear(&h);
    memset(seg, 'a', sizeof(seg));
    for (int i = 0; i < 8; i++) {
        h_input_tcp(&h, GW, 43000, echo_port, seq, their, TCPF_ACK, 4096, seg, sizeof(seg), 0);
        seq += sizeof(seg);
    }
    assert_int_equal(h_pop(&h, f, sizeof(f)), 0); /* nothing before the batch ends */
    net_stack_flush(h.s);
    size_t n = h_pop(&h, f, sizeof(f));
    assert_int_equal(h_parse_tcp(f, n, &ip, &t), 0);
    assert_int_equal(t.flags, TCPF_ACK);
    assert_int_equal(t.ack, seq);
    assert_int_equal((uint32_t)t.win << 3, h.s->tcp_list->to_host.cap); /* written to the host: all room again */
    assert_int_equal(h_pop(&h, f, sizeof(f)), 0);                       /* one ACK for the batch */
    read_echo(&h, 43000, seq, &their, 8000);

    h_clear(&h);
    h_send_tcp(&h, GW, 43000, echo_port, seq, their, TCPF_ACK | TCPF_PSH, 4096, "hi", 2, 0);
    seq += 2;
    assert_int_equal(h_pop(&h, f, sizeof(f)), 0); /* the ACK is held back */
    read_echo(&h, 43000, seq, &their, 2);
    h_pump(&h, 5); /* the delayed-ACK timer, if the echo was slow, sends nothing new now */
    while ((n = h_pop(&h, f, sizeof(f))) > 0) {
        assert_int_equal(h_parse_tcp(f, n, &ip, &t), 0);
        assert_int_equal(t.ack, seq);
    }
    h_stop(&h);
}

static void test_refused_and_denied(void **state)
{
    struct harness h;
    uint8_t f[2048];
    struct pkt_ip ip;
    struct pkt_tcp t;
    h_init_cfg(&h);
    uint16_t closed_port;
    int tmp = listen_any(SOCK_STREAM, &closed_port);
    close(tmp); /* nothing listens there now */
    allow_host(&h, closed_port);
    h_start(&h);
    /* connection refused by the host: RST to the guest */
    h_send_tcp(&h, GW, 40001, closed_port, 5000, 0, TCPF_SYN, 65535, NULL, 0, 1);
    size_t n = h_wait(&h, f, sizeof(f), 2000);
    assert_true(n > 0);
    assert_int_equal(h_parse_tcp(f, n, &ip, &t), 0);
    assert_true(t.flags & TCPF_RST);
    assert_int_equal(t.ack, 5001);
    /* the host without a rule for that port, the metadata address, loopback: RST, counted */
    uint64_t before = net_stack_stats(h.s)->denied_tcp;
    h_send_tcp(&h, GW, 40002, echo_port, 1, 0, TCPF_SYN, 65535, NULL, 0, 1);
    h_send_tcp(&h, 0xa9fea9feu, 40003, 80, 1, 0, TCPF_SYN, 65535, NULL, 0, 1);
    h_send_tcp(&h, 0x7f000001u, 40004, echo_port, 1, 0, TCPF_SYN, 65535, NULL, 0, 1);
    h_send_tcp(&h, 0xc0a80001u, 40005, 22, 1, 0, TCPF_SYN, 65535, NULL, 0, 1);
    for (int i = 0; i < 4; i++) {
        n = h_pop(&h, f, sizeof(f));
        assert_true(n > 0);
        assert_int_equal(h_parse_tcp(f, n, &ip, &t), 0);
        assert_true(t.flags & TCPF_RST);
    }
    assert_int_equal(net_stack_stats(h.s)->denied_tcp, before + 4);
    /* a stray ACK for no connection: RST */
    h_send_tcp(&h, GW, 40009, echo_port, 1, 77, TCPF_ACK, 65535, NULL, 0, 0);
    n = h_pop(&h, f, sizeof(f));
    assert_int_equal(h_parse_tcp(f, n, &ip, &t), 0);
    assert_true(t.flags & TCPF_RST);
    assert_int_equal(t.seq, 77);
    h_stop(&h);
}

static void test_limits(void **state)
{
    struct harness h;
    uint8_t f[2048];
    struct pkt_ip ip;
    struct pkt_tcp t;
    h_init_cfg(&h);
    h.cfg.max_tcp = 3;
    allow_host(&h, echo_port);
    h_start(&h);
    uint32_t their;
    for (int i = 0; i < 3; i++)
        assert_int_equal(handshake(&h, (uint16_t)(41000 + i), echo_port, &their), 0);
    h_send_tcp(&h, GW, 41010, echo_port, 1, 0, TCPF_SYN, 65535, NULL, 0, 1);
    size_t n = h_wait(&h, f, sizeof(f), 500);
    assert_int_equal(h_parse_tcp(f, n, &ip, &t), 0);
    assert_true(t.flags & TCPF_RST);
    assert_int_equal(net_stack_stats(h.s)->tcp_refused_limit, 1);
    h_stop(&h);

    /* SYN flood: the half-open table is bounded, the stack answers with RSTs. */
    h_init_cfg(&h);
    h.cfg.max_half_open = 8;
    allow_host(&h, echo_port);
    h_start(&h);
    for (int i = 0; i < 500; i++)
        h_send_tcp(&h, GW, (uint16_t)(20000 + i), echo_port, 1, 0, TCPF_SYN, 65535, NULL, 0, 1);
    assert_true(h.s->nhalf <= 8);
    assert_true(net_stack_stats(h.s)->tcp_refused_limit >= 492);
    h_stop(&h);
}

static void test_guest_rst(void **state)
{
    struct harness h;
    h_init_cfg(&h);
    allow_host(&h, echo_port);
    h_start(&h);
    uint32_t their;
    assert_int_equal(handshake(&h, 42000, echo_port, &their), 0);
    assert_int_equal(h.s->ntcp, 1);
    h_send_tcp(&h, GW, 42000, echo_port, 1001, their, TCPF_RST, 0, NULL, 0, 0);
    assert_int_equal(h.s->ntcp, 0);
    h_stop(&h);
}

static void test_zero_window_bounded(void **state)
{
    /* The guest never reads: the stack reads at most one ring from the host, and the
     * ring does not grow for a guest that takes nothing. */
    struct harness h;
    uint8_t f[2048];
    h_init_cfg(&h);
    allow_host(&h, echo_port);
    h_start(&h);
    uint32_t their, seq = 1001;
    assert_int_equal(handshake(&h, 43000, echo_port, &their), 0);
    /* advertise a zero window, then push 1 MB (the server echoes into our buffer) */
    static uint8_t chunk[1400];
    memset(chunk, 'z', sizeof(chunk));
    size_t pushed = 0;
    for (int i = 0; i < 2000; i++) {
        h_send_tcp(&h, GW, 43000, echo_port, seq, their, TCPF_ACK, 0, chunk, sizeof(chunk), 0);
        h_pump(&h, 1);
        struct pkt_ip ip;
        struct pkt_tcp t;
        size_t n;
        uint32_t acked = seq;
        while ((n = h_pop(&h, f, sizeof(f))))
            if (h_parse_tcp(f, n, &ip, &t) == 0 && (t.flags & TCPF_ACK))
                acked = t.ack;
        if (acked == seq + sizeof(chunk)) {
            seq += sizeof(chunk);
            pushed += sizeof(chunk);
        }
        if (pushed >= (1u << 20))
            break;
    }
    struct tcp_conn *c = h.s->tcp_list;
    assert_non_null(c);
    assert_true(c->to_guest.len <= RING_MAX);
    assert_true(c->to_host.len <= RING_MAX);
    /* the host's echo filled our ring toward the guest, and not one byte went out
     * into the closed window (the kernel's socket buffers absorb the rest) */
    assert_int_equal(c->to_guest.cap, RING_MIN);
    assert_int_equal(c->to_guest.len, c->to_guest.cap);
    assert_int_equal(c->snd_nxt, c->snd_una);
    h_stop(&h);
}

static void test_published_port(void **state)
{
    struct harness h;
    uint8_t f[2048];
    struct pkt_ip ip;
    struct pkt_tcp t;
    char err[128];
    h_init_cfg(&h);
    uint16_t hp;
    int tmp = listen_any(SOCK_STREAM, &hp);
    close(tmp);
    char spec[64];
    snprintf(spec, sizeof(spec), "127.0.0.1:%u:80", hp);
    assert_int_equal(net_port_parse(spec, &h.cfg.ports[0], err, sizeof(err)), 0);
    h.cfg.nports = 1;
    h_start(&h);
    assert_non_null(h.s);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(hp), .sin_addr.s_addr = htonl(0x7f000001)};
    assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    size_t n = h_wait(&h, f, sizeof(f), 2000);
    assert_int_equal(h_parse_tcp(f, n, &ip, &t), 0);
    assert_int_equal(t.flags, TCPF_SYN);
    assert_int_equal(t.dport, 80);
    assert_int_equal(ip.src, GW);
    uint16_t eport = t.sport;
    uint32_t their = t.seq + 1;
    h_send_tcp(&h, GW, 80, eport, 9000, their, TCPF_SYN | TCPF_ACK, 65535, NULL, 0, 1);
    n = h_wait(&h, f, sizeof(f), 500);
    assert_int_equal(h_parse_tcp(f, n, &ip, &t), 0);
    assert_int_equal(t.flags, TCPF_ACK);
    /* guest -> host client */
    h_send_tcp(&h, GW, 80, eport, 9001, their, TCPF_ACK | TCPF_PSH, 4096, "pong", 4, 0);
    char buf[16] = {0};
    for (int i = 0; i < 100; i++) {
        h_pump(&h, 5);
        ssize_t r = recv(cfd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r == 4)
            break;
    }
    assert_memory_equal(buf, "pong", 4);
    /* host client -> guest */
    assert_int_equal(send(cfd, "ping", 4, 0), 4);
    int got = 0;
    for (int i = 0; i < 100 && !got; i++) {
        n = h_wait(&h, f, sizeof(f), 10);
        if (n && h_parse_tcp(f, n, &ip, &t) == 0 && t.len == 4) {
            assert_memory_equal(t.data, "ping", 4);
            got = 1;
        }
    }
    assert_true(got);
    close(cfd);
    h_stop(&h);
}

/* DNS over TCP to the resolver address: two pipelined length-prefixed queries in one
 * segment (a local name and a denied one) get two answers, then FIN both ways. */
static void test_dns_over_tcp(void **state)
{
    struct harness h;
    uint8_t f[2048], seg[600];
    struct pkt_ip ip;
    struct pkt_tcp t;
    char err[128];
    const uint32_t dns = 0x0a000203u;
    h_init_cfg(&h);
    assert_int_equal(net_rule_parse("bad.test", 0, &h.cfg.rules[h.cfg.nrules++], err, sizeof(err)), 0);
    h_start(&h);
    h_send_tcp(&h, dns, 41000, 53, 100, 0, TCPF_SYN, 65535, NULL, 0, 1);
    size_t n = h_wait(&h, f, sizeof(f), 2000);
    assert_int_equal(h_parse_tcp(f, n, &ip, &t), 0);
    assert_int_equal(t.flags & (TCPF_SYN | TCPF_ACK | TCPF_RST), TCPF_SYN | TCPF_ACK);
    uint32_t their = t.seq + 1, seq = 101;
    h_send_tcp(&h, dns, 41000, 53, seq, their, TCPF_ACK, 4096, NULL, 0, 0);
    size_t a = h_dns_query(seg + 2, 0x1234, "host.cocoon.internal", 0);
    seg[0] = (uint8_t)(a >> 8);
    seg[1] = (uint8_t)a;
    size_t b = h_dns_query(seg + 4 + a, 0x5678, "bad.test", 0);
    seg[2 + a] = (uint8_t)(b >> 8);
    seg[3 + a] = (uint8_t)b;
    h_send_tcp(&h, dns, 41000, 53, seq, their, TCPF_ACK | TCPF_PSH, 4096, seg, a + b + 4, 0);
    seq += (uint32_t)(a + b + 4);
    uint8_t stream[1024];
    size_t got = 0;
    for (int i = 0; i < 100 && got < 4; i++) {
        n = h_wait(&h, f, sizeof(f), 20);
        if (n && h_parse_tcp(f, n, &ip, &t) == 0 && t.len && t.seq == their) {
            assert_true(got + t.len <= sizeof(stream));
            memcpy(stream + got, t.data, t.len);
            got += t.len;
            their += (uint32_t)t.len;
            h_send_tcp(&h, dns, 41000, 53, seq, their, TCPF_ACK, 4096, NULL, 0, 0);
        }
    }
    /* first answer: 0x1234, NOERROR, one A record 10.0.2.2 */
    assert_true(got > 2);
    size_t l1 = (size_t)stream[0] << 8 | stream[1];
    assert_true(got >= l1 + 4);
    assert_int_equal(stream[2] << 8 | stream[3], 0x1234);
    assert_int_equal(stream[5] & 0xf, 0);
    assert_int_equal(stream[8] << 8 | stream[9], 1);
    assert_memory_equal(stream + 2 + l1 - 4, "\x0a\x00\x02\x02", 4);
    size_t l2 = (size_t)stream[2 + l1] << 8 | stream[3 + l1];
    assert_int_equal(got, l1 + l2 + 4);
    const uint8_t *r2 = stream + 4 + l1;
    assert_int_equal(r2[0] << 8 | r2[1], 0x5678);
    assert_int_equal(r2[3] & 0xf, 5); /* REFUSED */
    assert_int_equal(net_stack_stats(h.s)->denied_dns, 1);
    /* FIN: answered with FIN; the connection goes away */
    h_send_tcp(&h, dns, 41000, 53, seq, their, TCPF_FIN | TCPF_ACK, 4096, NULL, 0, 0);
    seq++;
    assert_int_equal(h_wait_tcp_flags(&h, TCPF_FIN, 100, &t), 0);
    h_send_tcp(&h, dns, 41000, 53, seq, their + 1, TCPF_ACK, 4096, NULL, 0, 0);
    assert_int_equal(h.s->ntcp, 0);
    /* a length prefix that is no DNS message: RST */
    h_send_tcp(&h, dns, 41001, 53, 100, 0, TCPF_SYN, 65535, NULL, 0, 1);
    n = h_wait(&h, f, sizeof(f), 2000);
    assert_int_equal(h_parse_tcp(f, n, &ip, &t), 0);
    their = t.seq + 1;
    h_send_tcp(&h, dns, 41001, 53, 101, their, TCPF_ACK | TCPF_PSH, 4096, (const uint8_t *)"\xff\xff", 2, 0);
    assert_int_equal(h_wait_tcp_flags(&h, TCPF_RST, 100, &t), 0);
    assert_int_equal(h.s->ntcp, 0);
    h_stop(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_roundtrip),     cmocka_unit_test(test_batched_and_delayed_acks),
        cmocka_unit_test(test_refused_and_denied), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_guest_rst),          cmocka_unit_test(test_zero_window_bounded),
        cmocka_unit_test(test_published_port),     cmocka_unit_test(test_dns_over_tcp),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
