/* Parsers and policy of the network stack: IPv4/TCP/UDP header checks and checksums
 * on malformed input, DNS names with hostile compression, response filtering
 * (rebinding) and pinning, TLS SNI, rule parsing and first-match policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "net/dns.h"
#include "net/policy.h"
#include "net/sni.h"
#include "net/wire.h"

static void test_ipv4_checks(void **state)
{
    uint8_t p[60] = {0};
    struct pkt_ip ip;
    wire_ipv4_header(p, 0x0a00020f, 0x01020304, IP_PROTO_UDP, 1, 8);
    assert_int_equal(wire_parse_ipv4(p, 28, &ip), WIRE_OK);
    assert_int_equal(ip.l4_len, 8);
    assert_int_equal(wire_parse_ipv4(p, 27, &ip), WIRE_MALFORMED); /* total length beyond the frame */
    assert_int_equal(wire_parse_ipv4(p, 19, &ip), WIRE_MALFORMED);
    p[10] ^= 1;
    assert_int_equal(wire_parse_ipv4(p, 28, &ip), WIRE_MALFORMED); /* checksum */
    p[10] ^= 1;
    p[0] = 0x44; /* IHL 16 bytes */
    assert_int_equal(wire_parse_ipv4(p, 28, &ip), WIRE_MALFORMED);
    wire_ipv4_header(p, 0x0a00020f, 0x01020304, IP_PROTO_UDP, 1, 8);
    wr16(p + 6, 0x2000); /* more fragments */
    wr16(p + 10, 0);
    wr16(p + 10, wire_fold(wire_sum(p, 20, 0)));
    assert_int_equal(wire_parse_ipv4(p, 28, &ip), WIRE_FRAGMENT);
}

static void test_tcp_udp_checksums(void **state)
{
    uint8_t p[80] = {0};
    struct pkt_ip ip = {.src = 0x0a00020f, .dst = 0x0a000202, .proto = IP_PROTO_TCP, .l4 = p};
    memcpy(p + 28, "abc", 3);
    size_t hl = wire_tcp_header(p, ip.src, ip.dst, 1, 2, 100, 0, TCPF_SYN, 1000, 1460, 7, 3);
    assert_int_equal(hl, 28);
    ip.l4_len = hl + 3;
    struct pkt_tcp t;
    assert_int_equal(wire_parse_tcp(&ip, &t), WIRE_OK);
    assert_int_equal(t.mss, 1460);
    assert_int_equal(t.wscale, 7);
    assert_int_equal(t.len, 3);
    p[29] ^= 0xff;
    assert_int_equal(wire_parse_tcp(&ip, &t), WIRE_MALFORMED);
    p[29] ^= 0xff;
    p[12] = 0xf0; /* data offset 60 > segment */
    assert_int_equal(wire_parse_tcp(&ip, &t), WIRE_MALFORMED);
    /* options that run past their list are ignored, not read */
    memset(p, 0, sizeof(p));
    wire_tcp_header(p, ip.src, ip.dst, 1, 2, 1, 0, TCPF_SYN, 1, 1460, -1, 0);
    p[20] = 2;
    p[21] = 40;
    wr16(p + 16, 0);
    wr16(p + 16, wire_fold(wire_sum(p, 24, wire_pseudo(ip.src, ip.dst, IP_PROTO_TCP, 24))));
    ip.l4_len = 24;
    assert_int_equal(wire_parse_tcp(&ip, &t), WIRE_OK);
    assert_int_equal(t.mss, 0);
    struct pkt_udp u;
    memcpy(p + 8, "dns", 3);
    wire_udp_header(p, ip.src, ip.dst, 5, 53, 3);
    ip.proto = IP_PROTO_UDP;
    ip.l4_len = 11;
    assert_int_equal(wire_parse_udp(&ip, &u), WIRE_OK);
    wr16(p + 4, 200); /* length beyond the packet */
    assert_int_equal(wire_parse_udp(&ip, &u), WIRE_MALFORMED);
}

static size_t put_q(uint8_t *b, const char *name_wire, size_t nl)
{
    memset(b, 0, 12);
    wr16(b, 0x4242);
    wr16(b + 2, 0x0100);
    wr16(b + 4, 1);
    memcpy(b + 12, name_wire, nl);
    wr16(b + 12 + nl, 1);
    wr16(b + 14 + nl, 1);
    return 16 + nl;
}

static void test_dns_hostile(void **state)
{
    uint8_t b[600];
    struct dns_question q;
    size_t n = put_q(b, "\3www\7Example\3com\0", 17);
    assert_int_equal(dns_parse_query(b, n, &q), 0);
    assert_string_equal(q.name, "www.example.com");
    /* a pointer to itself, a forward pointer, a loop of two */
    n = put_q(b, "\xc0\x0c", 2);
    assert_int_equal(dns_parse_query(b, n, &q), -1);
    n = put_q(b, "\xc0\x20", 2);
    assert_int_equal(dns_parse_query(b, n, &q), -1);
    n = put_q(b, "\1a\xc0\x0c", 4);
    assert_int_equal(dns_parse_query(b, n, &q), -1);
    /* a label running past the end, a name over 255 bytes, a dot inside a label */
    assert_int_equal(dns_parse_query(b, 14, &q), -1);
    char longname[400];
    size_t o = 0;
    for (int i = 0; i < 5; i++) {
        longname[o++] = 60;
        memset(longname + o, 'a', 60);
        o += 60;
    }
    longname[o++] = 0;
    n = put_q(b, longname, o);
    assert_int_equal(dns_parse_query(b, n, &q), -1);
    n = put_q(b, "\3a.b\0", 5);
    assert_int_equal(dns_parse_query(b, n, &q), -1);
    /* responses and queries with several questions are not queries */
    n = put_q(b, "\1a\0", 3);
    wr16(b + 4, 2);
    assert_int_equal(dns_parse_query(b, n, &q), -1);
}

static void test_dns_filter_and_pin(void **state)
{
    static struct net_config cfg;
    static struct policy pol;
    net_config_defaults(&cfg);
    policy_init(&pol, &cfg);
    uint8_t b[512], out[4096];
    struct dns_question q;
    size_t n = put_q(b, "\3api\2ex\0", 8);
    assert_int_equal(dns_parse_query(b, n, &q), 0);
    wr16(b + 2, 0x8180);
    wr16(b + 6, 3);
    const uint32_t ips[3] = {0x5db8d822, 0xc0a8010a, 0x7f000001}; /* public, 192.168/16, loopback */
    for (int i = 0; i < 3; i++) {
        uint8_t *r = b + n;
        wr16(r, 0xc00c);
        wr16(r + 2, 1);
        wr16(r + 4, 1);
        wr32(r + 6, 300);
        wr16(r + 10, 4);
        wr32(r + 12, ips[i]);
        n += 16;
    }
    int stripped;
    long len = dns_filter_response(b, n, &q, &pol, 1000, out, sizeof(out), &stripped);
    assert_true(len > 0);
    assert_int_equal(stripped, 2);
    assert_int_equal(rd16(out + 6), 1);
    struct dns_question q2;
    size_t off = 12;
    char nm[256];
    assert_int_equal(dns_read_name(out, (size_t)len, &off, nm, sizeof(nm)), 0);
    assert_string_equal(nm, "api.ex");
    /* the surviving address is pinned to the name */
    struct net_rule r;
    char err[128];
    assert_int_equal(net_rule_parse("api.ex", 1, &r, err, sizeof(err)), 0);
    struct net_rule rules[2] = {r};
    assert_int_equal(net_rule_parse("0.0.0.0/0", 0, &rules[1], err, sizeof(err)), 0);
    pol.rules = rules;
    pol.nrules = 2;
    struct verdict v = policy_check_ip(&pol, ips[0], 443, NET_PROTO_TCP, NULL, 2000);
    assert_true(v.allow);
    assert_int_equal(v.rule, 0);
    v = policy_check_ip(&pol, ips[0], 443, NET_PROTO_TCP, "api.ex", 2000);
    assert_true(v.allow);
    v = policy_check_ip(&pol, ips[0], 443, NET_PROTO_TCP, "other.ex", 2000);
    assert_false(v.allow); /* SNI of another name: the deny-all rule decides */
    v = policy_check_ip(&pol, 0x5db8d823, 443, NET_PROTO_TCP, NULL, 2000);
    assert_false(v.allow); /* never returned by DNS */
    v = policy_check_ip(&pol, ips[0], 443, NET_PROTO_TCP, NULL, 2000 + 3600u * 1000);
    assert_false(v.allow); /* the pin expired */
    /* a reply with another id or question is not the answer */
    q2 = q;
    q2.id++;
    assert_int_equal(dns_filter_response(b, n, &q2, &pol, 1000, out, sizeof(out), &stripped), -1);
}

static void test_sni(void **state)
{
    static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0x3d, 0x01, 0x00, 0x00, 0x39, 0x03, 0x03, 1,    2,    3,
                                    4,    5,    6,    7,    8,    9,    10,   11,   12,   13,   14,   15,   16,   17,
                                    18,   19,   20,   21,   22,   23,   24,   25,   26,   27,   28,   29,   30,   31,
                                    32,   0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x0a,
                                    0x00, 0x08, 0x00, 0x00, 0x05, 'A',  'p',  'i',  '.',  'x'};
    char name[256];
    assert_int_equal(sni_parse(hello, sizeof(hello), name, sizeof(name)), 1);
    assert_string_equal(name, "api.x");
    assert_int_equal(sni_parse(hello, 20, name, sizeof(name)), 0);
    assert_int_equal(sni_parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, name, sizeof(name)), -1);
    uint8_t bad[sizeof(hello)];
    memcpy(bad, hello, sizeof(hello));
    bad[sizeof(bad) - 6] = 0x40; /* name length beyond the extension */
    assert_int_equal(sni_parse(bad, sizeof(bad), name, sizeof(name)), -1);
}

static void test_rules_and_modes(void **state)
{
    struct net_rule r;
    char err[256];
    assert_int_equal(net_rule_parse("10.1.2.0/24:5432/tcp", 1, &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, NET_RULE_CIDR);
    assert_int_equal(r.addr, 0x0a010200);
    assert_int_equal(r.port_lo, 5432);
    assert_int_equal(r.proto, NET_PROTO_TCP);
    assert_int_equal(net_rule_parse("*.Example.org", 1, &r, err, sizeof(err)), 0);
    assert_string_equal(r.domain, "*.example.org");
    assert_int_equal(net_rule_parse("host:8080", 1, &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, NET_RULE_HOST);
    assert_int_equal(net_rule_parse("1.2.3.4/33", 0, &r, err, sizeof(err)), -1);
    assert_int_equal(net_rule_parse("a..b", 0, &r, err, sizeof(err)), -1);
    assert_int_equal(net_rule_parse("x:0", 0, &r, err, sizeof(err)), -1);
    assert_int_equal(net_rule_parse("x:90-80", 0, &r, err, sizeof(err)), -1);
    assert_true(policy_domain_match("*.example.org", "a.b.example.org"));
    assert_false(policy_domain_match("*.example.org", "example.org"));
    assert_false(policy_domain_match("*.example.org", "badexample.org"));
    assert_true(policy_domain_match("*", "anything"));
    struct net_port p;
    assert_int_equal(net_port_parse("127.0.0.1:5353:53/udp", &p, err, sizeof(err)), 0);
    assert_int_equal(p.proto, NET_PROTO_UDP);
    assert_int_equal(p.host_port, 5353);
    assert_int_equal(p.guest_port, 53);
    assert_int_equal(net_port_parse("8080:80", &p, err, sizeof(err)), 0);
    assert_int_equal(p.host_ip, 0x7f000001);
    assert_int_equal(net_port_parse("80", &p, err, sizeof(err)), -1);

    static const struct {
        uint32_t ip;
        int is_public;
    } table[] = {{0x08080808, 1}, {0x0a000001, 0}, {0xac100001, 0}, {0xac200001, 1}, {0xc0a80101, 0},
                 {0x64400001, 0}, {0x647f0001, 0}, {0x64800001, 1}, {0xa9fea9fe, 0}, {0x7f000001, 0},
                 {0xe0000001, 0}, {0xffffffff, 0}, {0x00000000, 0}, {0x01010101, 1}};
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        assert_int_equal(net_addr_is_public(table[i].ip), table[i].is_public);

    /* first match wins; the mode decides when nothing matches */
    static struct net_config cfg;
    static struct policy pol;
    net_config_defaults(&cfg);
    assert_int_equal(net_rule_parse("1.2.3.4", 0, &cfg.rules[0], err, sizeof(err)), 0);
    assert_int_equal(net_rule_parse("1.2.3.0/24", 1, &cfg.rules[1], err, sizeof(err)), 0);
    assert_int_equal(net_rule_parse("10.1.2.0/24:5432/tcp", 1, &cfg.rules[2], err, sizeof(err)), 0);
    assert_int_equal(net_rule_parse("host:8080", 1, &cfg.rules[3], err, sizeof(err)), 0);
    assert_int_equal(net_rule_parse("blocked.example", 0, &cfg.rules[4], err, sizeof(err)), 0);
    cfg.nrules = 5;
    policy_init(&pol, &cfg);
    assert_false(policy_check_ip(&pol, 0x01020304, 80, NET_PROTO_TCP, NULL, 0).allow);
    assert_true(policy_check_ip(&pol, 0x01020305, 80, NET_PROTO_TCP, NULL, 0).allow);
    assert_true(policy_check_ip(&pol, 0x0a010203, 5432, NET_PROTO_TCP, NULL, 0).allow);
    assert_false(policy_check_ip(&pol, 0x0a010203, 5432, NET_PROTO_UDP, NULL, 0).allow);
    assert_false(policy_check_ip(&pol, 0x0a010203, 22, NET_PROTO_TCP, NULL, 0).allow);
    assert_true(policy_check_ip(&pol, 0x0a000202, 8080, NET_PROTO_TCP, NULL, 0).allow);
    assert_false(policy_check_ip(&pol, 0x0a000202, 8081, NET_PROTO_TCP, NULL, 0).allow);
    assert_false(policy_check_ip(&pol, 0xa9fea9fe, 80, NET_PROTO_TCP, NULL, 0).allow);
    assert_true(policy_check_ip(&pol, 0x08080808, 53, NET_PROTO_UDP, NULL, 0).allow);
    assert_false(policy_check_name(&pol, "blocked.example").allow);
    assert_true(policy_check_name(&pol, "fine.example").allow);
    pol.mode = NET_MODE_OPEN;
    assert_true(policy_check_ip(&pol, 0xc0a80101, 80, NET_PROTO_TCP, NULL, 0).allow);
    assert_false(policy_check_ip(&pol, 0x7f000001, 80, NET_PROTO_TCP, NULL, 0).allow);
    pol.mode = NET_MODE_NONE;
    assert_false(policy_check_ip(&pol, 0x08080808, 80, NET_PROTO_TCP, NULL, 0).allow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_checks), cmocka_unit_test(test_tcp_udp_checksums),
        cmocka_unit_test(test_dns_hostile), cmocka_unit_test(test_dns_filter_and_pin),
        cmocka_unit_test(test_sni),         cmocka_unit_test(test_rules_and_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
