/* UDP paths of the stack without a VM: DNS answers over UDP sized as a resolver does
 * (512 bytes without EDNS0, the advertised EDNS0 size otherwise, never more than one
 * frame of the MTU; TC with header and question when over), IP fragmentation of big
 * relayed datagrams, and the once-only note when ICMP sockets are not allowed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/dns.h"
#include "net_harness.h"

#define GW 0x0a000202u
#define DNS 0x0a000203u

/* The upstream's answer to q (copied from its question) with n A records, and an OPT
 * record (size 1232) when q had one, as a real server answers. */
static size_t answer(const uint8_t *q, size_t qlen, int n, uint8_t *out)
{
    struct dns_question dq;
    assert_int_equal(dns_parse_query(q, qlen, &dq), 0);
    int opt = rd16(q + 10) == 1;
    memcpy(out, q, dq.end);
    wr16(out + 2, 0x8180);
    wr16(out + 6, (uint16_t)n);
    wr16(out + 10, (uint16_t)opt);
    size_t o = dq.end;
    for (int i = 0; i < n; i++) {
        wr16(out + o, 0xc00c);
        wr16(out + o + 2, DNS_TYPE_A);
        wr16(out + o + 4, 1);
        wr32(out + o + 6, 60);
        wr16(out + o + 10, 4);
        wr32(out + o + 12, 0x5db8d900u + (uint32_t)i + 1); /* 93.184.217.x: public */
        o += 16;
    }
    if (opt) {
        out[o] = 0;
        wr16(out + o + 1, 41);
        wr16(out + o + 3, 1232);
        wr32(out + o + 5, 0);
        wr16(out + o + 9, 0);
        o += 11;
    }
    return o;
}

static void test_udp_size_and_truncate(void **state)
{
    (void)state;
    uint8_t q[600], big[4096], tc[600];
    struct dns_question dq;
    size_t n = h_dns_query(q, 1, "big.test", 0);
    assert_int_equal(dns_parse_query(q, n, &dq), 0);
    assert_int_equal(dns_query_udp_size(q, n, &dq), 512);
    n = h_dns_query(q, 1, "big.test", 1232);
    assert_int_equal(dns_parse_query(q, n, &dq), 0);
    assert_int_equal(dns_query_udp_size(q, n, &dq), 1232);
    assert_int_equal(dns_query_udp_size(q, n - 1, &dq), 512); /* OPT cut short */
    n = h_dns_query(q, 1, "big.test", 100);
    assert_int_equal(dns_parse_query(q, n, &dq), 0);
    assert_int_equal(dns_query_udp_size(q, n, &dq), 512); /* below 512 means 512 */
    n = h_dns_query(q, 1, "big.test", 4096);
    wr16(q + 10, 9); /* claims more additional records than there are */
    assert_int_equal(dns_query_udp_size(q, n, &dq), 4096);
    q[dq.end] = 1; /* OPT must be owned by the root: a label makes it something else */
    assert_int_equal(dns_query_udp_size(q, n, &dq), 512);

    n = h_dns_query(q, 7, "big.test", 0);
    size_t blen = answer(q, n, 40, big);
    long t = dns_truncate(big, blen, tc, sizeof(tc));
    assert_int_equal(t, 12 + 10 + 4); /* header + question, no partial records */
    assert_int_equal(rd16(tc), 7);
    assert_true(rd16(tc + 2) & DNS_FLAG_TC);
    assert_true(rd16(tc + 2) & 0x8000);
    assert_int_equal(rd16(tc + 4), 1);
    assert_int_equal(rd16(tc + 6), 0);
    assert_int_equal(rd16(tc + 8), 0);
    assert_int_equal(rd16(tc + 10), 0);
    assert_memory_equal(tc + 12, big + 12, 14);
    assert_int_equal(dns_truncate(q, n, tc, sizeof(tc)), -1);    /* a query, not a response */
    assert_int_equal(dns_truncate(big, 20, tc, sizeof(tc)), -1); /* question cut short */
    assert_int_equal(dns_truncate(big, blen, tc, 20), -1);       /* no room */
    wr16(big + 4, 2);
    assert_int_equal(dns_truncate(big, blen, tc, sizeof(tc)), -1); /* two questions */

    /* upstream query: an OPT appended (and taken out of the answer), or the guest's raised */
    int added;
    uint8_t up[700];
    n = h_dns_query(q, 9, "big.test", 0);
    assert_int_equal(dns_parse_query(q, n, &dq), 0);
    assert_int_equal(dns_upstream_query(q, n, &dq, up, n + 5, &added), n); /* no room: as it is */
    assert_int_equal(added, 0);
    assert_int_equal(dns_upstream_query(q, n, &dq, up, sizeof(up), &added), n + 11);
    assert_int_equal(added, 1);
    assert_int_equal(dns_query_udp_size(up, n + 11, &dq), 4096);
    blen = answer(up, n + 11, 2, big); /* with an OPT, as a server answers one */
    assert_int_equal(rd16(big + 10), 1);
    assert_int_equal(dns_strip_opt(big, blen), (long)blen - 11);
    assert_int_equal(rd16(big + 10), 0);
    assert_int_equal(rd16(big + 6), 2);
    assert_int_equal(dns_strip_opt(big, blen - 11), (long)blen - 11); /* none: unchanged */
    assert_int_equal(dns_strip_opt(big, 30), -1);                     /* records cut short */
    n = h_dns_query(q, 9, "big.test", 1232);
    assert_int_equal(dns_parse_query(q, n, &dq), 0);
    assert_int_equal(dns_upstream_query(q, n, &dq, up, sizeof(up), &added), n);
    assert_int_equal(added, 0);
    assert_int_equal(dns_query_udp_size(up, n, &dq), 4096);
}

static int upstream_fd;

static void start(struct harness *h, const char *allow)
{
    char err[128];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t sl = sizeof(sa);
    upstream_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(upstream_fd >= 0);
    assert_int_equal(bind(upstream_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(upstream_fd, (struct sockaddr *)&sa, &sl), 0);
    struct timeval tv = {5, 0};
    setsockopt(upstream_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    h_init_cfg(h);
    h->cfg.upstreams[0].port = ntohs(sa.sin_port);
    if (allow)
        assert_int_equal(net_rule_parse(allow, 1, &h->cfg.rules[h->cfg.nrules++], err, sizeof(err)), 0);
    h_start(h);
    assert_non_null(h->s);
}

/* Sends the guest's query, has the upstream answer with n records, and returns the
 * DNS message the guest got (0: none). */
static size_t ask(struct harness *h, int edns, int n, uint8_t *msg, size_t cap)
{
    uint8_t q[600], up[4096], f[2048];
    size_t ql = h_dns_query(q, 0x4242, "big.test", edns);
    h_send_udp(h, DNS, 40000, 53, q, ql);
    h_pump(h, 0);
    struct sockaddr_in peer;
    socklen_t pl = sizeof(peer);
    ssize_t got = recvfrom(upstream_fd, up, sizeof(up), 0, (struct sockaddr *)&peer, &pl);
    /* forwarded with EDNS0 advertising 4096, so the upstream does not truncate */
    struct dns_question dq;
    assert_int_equal(dns_parse_query(up, (size_t)got, &dq), 0);
    assert_int_equal(got, (ssize_t)(edns ? ql : ql + 11));
    assert_int_equal(dns_query_udp_size(up, (size_t)got, &dq), DNS_MAX_MSG);
    size_t al = answer(up, (size_t)got, n, up);
    assert_int_equal(sendto(upstream_fd, up, al, 0, (struct sockaddr *)&peer, pl), (ssize_t)al);
    size_t fl = h_wait(h, f, sizeof(f), 3000);
    struct pkt_ip ip;
    struct pkt_udp u;
    if (!fl || h_parse_udp(f, fl, &ip, &u) != 0)
        return 0;
    assert_true(fl <= 14u + h->cfg.mtu);
    assert_int_equal(u.sport, 53);
    assert_int_equal(u.dport, 40000);
    assert_true(u.len <= cap);
    memcpy(msg, u.data, u.len);
    return u.len;
}

static void test_dns_over_udp_sizes(void **state)
{
    (void)state;
    struct harness h;
    uint8_t m[2048];
    start(&h, NULL);
    /* 40 records (666 bytes): over 512, so without EDNS0 the guest gets TC only */
    size_t n = ask(&h, 0, 40, m, sizeof(m));
    assert_int_equal(n, 26);
    assert_true(rd16(m + 2) & DNS_FLAG_TC);
    assert_int_equal(rd16(m + 6), 0);
    assert_int_equal(net_stack_stats(h.s)->dns_truncated, 1);
    /* with EDNS0 1232 the same answer fits and comes whole */
    n = ask(&h, 1232, 40, m, sizeof(m));
    assert_int_equal(n, 26 + 40 * 16 + 11);
    assert_false(rd16(m + 2) & DNS_FLAG_TC);
    assert_int_equal(rd16(m + 6), 40);
    assert_int_equal(rd16(m + 10), 1); /* the guest's OPT: it gets the upstream's back */
    /* small answers pass either way, without the OPT the guest never sent */
    n = ask(&h, 0, 3, m, sizeof(m));
    assert_int_equal(n, 26 + 3 * 16);
    assert_int_equal(rd16(m + 6), 3);
    assert_int_equal(rd16(m + 10), 0);
    /* 100 records (1626 bytes) fit the 4096 advertised but not one 1500-byte frame:
     * TC rather than fragments */
    n = ask(&h, 4096, 100, m, sizeof(m));
    assert_int_equal(n, 26);
    assert_true(rd16(m + 2) & DNS_FLAG_TC);
    /* a smaller MTU lowers the bound too */
    h_stop(&h);
    close(upstream_fd);
    start(&h, NULL);
    h.s->cfg.mtu = 576;
    n = ask(&h, 1232, 40, m, sizeof(m));
    assert_int_equal(n, 26);
    assert_true(rd16(m + 2) & DNS_FLAG_TC);
    h_stop(&h);
    close(upstream_fd);
}

/* A UDP server on the host's loopback (5 s receive timeout) and a stack whose guest may
 * reach it as host.cocoon.internal. */
static int start_with_udp_server(struct harness *h, struct sockaddr_in *sa)
{
    int srv = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    *sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t sl = sizeof(*sa);
    assert_int_equal(bind(srv, (struct sockaddr *)sa, sizeof(*sa)), 0);
    assert_int_equal(getsockname(srv, (struct sockaddr *)sa, &sl), 0);
    struct timeval tv = {5, 0};
    setsockopt(srv, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char rule[64];
    snprintf(rule, sizeof(rule), "host:%u/udp", ntohs(sa->sin_port));
    start(h, rule);
    close(upstream_fd);
    return srv;
}

static void test_big_datagram_fragmented(void **state)
{
    (void)state;
    struct harness h;
    struct sockaddr_in sa;
    int srv = start_with_udp_server(&h, &sa);
    h_send_udp(&h, GW, 41000, ntohs(sa.sin_port), "hi", 2);
    h_pump(&h, 0);
    uint8_t buf[5000], back[5000];
    struct sockaddr_in peer;
    socklen_t pl = sizeof(peer);
    assert_int_equal(recvfrom(srv, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &pl), 2);
    for (size_t i = 0; i < 4000; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(sendto(srv, buf, 4000, 0, (struct sockaddr *)&peer, pl), 4000);
    /* 8 + 4000 bytes of UDP: fragments of 1480, 1480 and 1048 payload bytes */
    size_t have = 0, total = 0;
    int frags = 0, last_seen = 0;
    uint16_t id = 0;
    uint8_t l4[4100];
    for (int i = 0; i < 200 && !(last_seen && have == total); i++) {
        uint8_t f[2048];
        size_t n = h_wait(&h, f, sizeof(f), 20);
        if (!n)
            continue;
        assert_true(n <= 14u + h.cfg.mtu);
        const uint8_t *p = f + 14;
        assert_int_equal(p[9], IP_PROTO_UDP);
        assert_int_equal(wire_fold(wire_sum(p, 20, 0)), 0);
        size_t plen = rd16(p + 2) - 20u;
        uint16_t fr = rd16(p + 6);
        size_t off = (size_t)(fr & 0x1fff) * 8;
        if (frags++ == 0)
            id = rd16(p + 4);
        assert_int_equal(rd16(p + 4), id);
        assert_false(fr & 0x4000); /* no DF on fragments */
        if (fr & 0x2000)
            assert_int_equal(plen % 8, 0);
        else {
            last_seen = 1;
            total = off + plen;
        }
        assert_true(off + plen <= sizeof(l4));
        memcpy(l4 + off, p + 20, plen);
        have += plen;
    }
    assert_int_equal(frags, 3);
    assert_int_equal(total, 4008);
    assert_int_equal(have, 4008);
    /* the reassembled datagram is a valid UDP datagram with the data */
    struct pkt_ip ip = {.src = GW, .dst = h.cfg.guest_ip, .proto = IP_PROTO_UDP, .l4 = l4, .l4_len = total};
    struct pkt_udp u;
    assert_int_equal(wire_parse_udp(&ip, &u), WIRE_OK);
    assert_int_equal(u.len, 4000);
    memcpy(back, u.data, u.len);
    assert_memory_equal(back, buf, 4000);
    assert_int_equal(net_stack_stats(h.s)->fragments_out, 1);
    h_stop(&h);
    close(srv);
}

static void send_ping(struct harness *h, uint32_t dst, uint16_t seq)
{
    uint8_t f[128];
    uint8_t *p = f + 34;
    memset(p, 0, 16);
    p[0] = 8;
    wr16(p + 4, 0x77);
    wr16(p + 6, seq);
    memcpy(p + 8, "cocoon!!", 8);
    wr16(p + 2, wire_fold(wire_sum(p, 16, 0)));
    size_t n = h_eth_ip(h, f, h->cfg.guest_ip, dst, IP_PROTO_ICMP, 16);
    net_stack_input_frame(h->s, f, n);
}

static void test_icmp_not_permitted_explained_once(void **state)
{
    (void)state;
    struct harness h;
    char path[] = "/tmp/cocoon-net-icmp-XXXXXX", err[128];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    h_init_cfg(&h);
    assert_int_equal(net_rule_parse("198.51.100.2", 0, &h.cfg.rules[h.cfg.nrules++], err, sizeof(err)), 0);
    h.cfg.mode = NET_MODE_OPEN;
    h.cfg.log_fd = fd;
    h_start(&h);
    h.s->icmp_ok = 0; /* as on a host whose ping_group_range leaves us out */
    for (uint16_t i = 0; i < 3; i++)
        send_ping(&h, 0xc6336401u, i); /* 198.51.100.1: allowed */
    send_ping(&h, 0xc6336402u, 9);     /* denied by its rule */
    send_ping(&h, GW, 10);             /* the gateway answers itself */
    uint8_t f[256];
    size_t n = h_wait(&h, f, sizeof(f), 100);
    assert_true(n >= 34 + 8);
    assert_int_equal(f[14 + 9], IP_PROTO_ICMP);
    assert_int_equal(f[34], 0); /* echo reply */
    assert_int_equal(rd16(f + 34 + 6), 10);
    h_stop(&h);
    char log[4096] = {0};
    assert_true(pread(fd, log, sizeof(log) - 1, 0) > 0);
    close(fd);
    unlink(path);
    const char *a = strstr(log, "net.ipv4.ping_group_range");
    assert_non_null(a);
    assert_null(strstr(a + 1, "note icmp")); /* once */
    assert_non_null(strstr(log, "note icmp echo to 198.51.100.1 is allowed but not relayed"));
    assert_non_null(strstr(log, "sysctl -w net.ipv4.ping_group_range="));
    assert_non_null(strstr(log, "deny icmp 10.0.2.15:0 -> 198.51.100.2:0 rule=\"deny 198.51.100.2\""));
}

/* A datagram the guest sends in fragments (over its MTU) leaves the host as one
 * datagram; an overlapping fragment kills its datagram and is counted. */
static void test_guest_fragments_reassembled(void **state)
{
    (void)state;
    struct harness h;
    struct sockaddr_in sa;
    int srv = start_with_udp_server(&h, &sa);
    /* the whole datagram, then cut into fragments of 1480 payload bytes */
    static uint8_t dgram[8 + 4000], f[2048];
    for (size_t i = 0; i < 4000; i++)
        dgram[8 + i] = (uint8_t)(i * 11 + 1);
    wire_udp_header(dgram, h.cfg.guest_ip, GW, 41000, ntohs(sa.sin_port), 4000);
    for (int round = 0; round < 2; round++) {
        for (size_t off = 0; off < sizeof(dgram); off += 1480) {
            size_t part = sizeof(dgram) - off < 1480 ? sizeof(dgram) - off : 1480;
            memcpy(f, h.cfg.gateway_mac, 6);
            memcpy(f + 6, h.cfg.guest_mac, 6);
            wr16(f + 12, ETHERTYPE_IPV4);
            memcpy(f + 34, dgram + off, part);
            uint16_t fr = (uint16_t)((off / 8) | (off + part < sizeof(dgram) ? 0x2000 : 0));
            if (round == 1 && off == 1480)
                fr = (uint16_t)(fr - 1); /* overlaps the first fragment by 8 bytes */
            wire_ipv4_fragment(f + 14, h.cfg.guest_ip, GW, IP_PROTO_UDP, (uint16_t)(500 + round), part, fr);
            net_stack_input_frame(h.s, f, 34 + part);
        }
        h_pump(&h, 0);
    }
    uint8_t got[5000];
    struct sockaddr_in peer;
    socklen_t pl = sizeof(peer);
    assert_int_equal(recvfrom(srv, got, sizeof(got), 0, (struct sockaddr *)&peer, &pl), 4000);
    assert_memory_equal(got, dgram + 8, 4000);
    assert_true(recvfrom(srv, got, sizeof(got), MSG_DONTWAIT, (struct sockaddr *)&peer, &pl) < 0);
    const struct net_stats *st = net_stack_stats(h.s);
    assert_int_equal(st->reassembled, 1);
    assert_true(st->dropped_fragment >= 1);
    h_stop(&h);
    close(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udp_size_and_truncate),
        cmocka_unit_test(test_dns_over_udp_sizes),
        cmocka_unit_test(test_big_datagram_fragmented),
        cmocka_unit_test(test_guest_fragments_reassembled),
        cmocka_unit_test(test_icmp_not_permitted_explained_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
