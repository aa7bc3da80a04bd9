/* The resolver's answer filter against rebinding, record by record: private addresses
 * anywhere in an answer (deep in a long answer section, in the authority section, as
 * additional glue, as SVCB/HTTPS address hints) never reach the guest, whatever the
 * answer's size, while the public records and the other records survive intact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"
#include "net/policy.h"
#include "net/wire.h"

#define T_NS 2
#define T_SOA 6
#define T_MX 15
#define T_TXT 16
#define T_OPT 41
#define T_HTTPS 65

static struct net_config cfg;
static struct policy pol;

static int setup(void **state)
{
    net_config_defaults(&cfg);
    policy_init(&pol, &cfg);
    return 0;
}

/* A response under construction: header, question "big.test" A IN, then records
 * appended to the section given by sec (0 answer, 1 authority, 2 additional). */
struct msg {
    uint8_t *b;
    size_t n, cap;
};

static void msg_start(struct msg *m, size_t cap)
{
    m->b = calloc(1, cap);
    m->cap = cap;
    wr16(m->b, 0x7777);
    wr16(m->b + 2, 0x81a0); /* response, RD, RA, AD */
    wr16(m->b + 4, 1);
    memcpy(m->b + 12, "\3big\4test\0", 10);
    wr16(m->b + 22, DNS_TYPE_A);
    wr16(m->b + 24, 1);
    m->n = 26;
}

static void msg_rr(struct msg *m, int sec, const uint8_t *owner, size_t olen, uint16_t type, const void *rd,
                   size_t rdlen)
{
    assert_true(m->n + olen + 10 + rdlen <= m->cap);
    memcpy(m->b + m->n, owner, olen);
    m->n += olen;
    wr16(m->b + m->n, type);
    wr16(m->b + m->n + 2, 1);
    wr32(m->b + m->n + 4, 300);
    wr16(m->b + m->n + 8, (uint16_t)rdlen);
    memcpy(m->b + m->n + 10, rd, rdlen);
    m->n += 10 + rdlen;
    wr16(m->b + 6 + 2 * sec, (uint16_t)(rd16(m->b + 6 + 2 * sec) + 1));
}

static const uint8_t QNAME_PTR[2] = {0xc0, 0x0c};

static void msg_a(struct msg *m, int sec, uint32_t ip)
{
    uint8_t a[4];
    wr32(a, ip);
    msg_rr(m, sec, QNAME_PTR, 2, DNS_TYPE_A, a, 4);
}

static struct dns_question question(void)
{
    struct dns_question q;
    memset(&q, 0, sizeof(q));
    q.id = 0x7777;
    q.qtype = DNS_TYPE_A;
    q.qclass = 1;
    snprintf(q.name, sizeof(q.name), "big.test");
    return q;
}

/* What a filtered message holds, read back record by record. */
struct seen {
    unsigned count[3];
    unsigned a_public, a_private, aaaa, ns, mx, soa, txt, opt, https;
    char mx_name[256], ns_name[256];
};

static void read_back(const uint8_t *b, size_t n, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    size_t off = 12;
    char name[256];
    assert_int_equal(dns_read_name(b, n, &off, name, sizeof(name)), 0);
    assert_string_equal(name, "big.test");
    off += 4;
    for (int sec = 0; sec < 3; sec++) {
        s->count[sec] = rd16(b + 6 + 2 * sec);
        for (unsigned i = 0; i < s->count[sec]; i++) {
            assert_int_equal(dns_read_name(b, n, &off, name, sizeof(name)), 0);
            assert_true(off + 10 <= n);
            uint16_t type = rd16(b + off), rdlen = rd16(b + off + 8);
            size_t rd = off + 10;
            assert_true(rd + rdlen <= n);
            size_t t = rd;
            switch (type) {
            case DNS_TYPE_A:
                assert_int_equal(rdlen, 4);
                if (net_addr_is_public(rd32(b + rd)))
                    s->a_public++;
                else
                    s->a_private++;
                break;
            case DNS_TYPE_AAAA: s->aaaa++; break;
            case T_NS:
                assert_int_equal(dns_read_name(b, n, &t, s->ns_name, sizeof(s->ns_name)), 0);
                assert_int_equal(t, rd + rdlen);
                s->ns++;
                break;
            case T_MX:
                t += 2;
                assert_int_equal(dns_read_name(b, n, &t, s->mx_name, sizeof(s->mx_name)), 0);
                assert_int_equal(t, rd + rdlen);
                s->mx++;
                break;
            case T_SOA:
                assert_int_equal(dns_read_name(b, n, &t, name, sizeof(name)), 0);
                assert_int_equal(dns_read_name(b, n, &t, name, sizeof(name)), 0);
                assert_int_equal(t + 20, rd + rdlen);
                s->soa++;
                break;
            case T_TXT: s->txt++; break;
            case T_OPT: s->opt++; break;
            case T_HTTPS: s->https++; break;
            }
            off = rd + rdlen;
        }
    }
    assert_int_equal(off, n); /* nothing after the records */
}

static long filter(const struct msg *m, uint8_t *out, size_t cap, int *stripped)
{
    struct dns_question q = question();
    return dns_filter_response(m->b, m->n, &q, &pol, 1000, out, cap, stripped);
}

/* Filters m, expecting an answer with want_stripped records removed; reads it back. */
static long filter_read(const struct msg *m, uint8_t *out, size_t cap, int want_stripped, struct seen *s)
{
    int stripped;
    long len = filter(m, out, cap, &stripped);
    assert_true(len > 0);
    assert_int_equal(stripped, want_stripped);
    read_back(out, (size_t)len, s);
    return len;
}

/* 1000 A records, the one at position 900 private: every record is looked at. */
static void test_private_deep_in_a_long_answer(void **state)
{
    struct msg m;
    msg_start(&m, 65535);
    for (uint32_t i = 0; i < 1000; i++)
        msg_a(&m, 0, i == 900 ? 0xc0a80001u : 0x5db80000u + i); /* 192.168.0.1 : 93.184.x.y */
    static uint8_t out[65536];
    struct seen s;
    filter_read(&m, out, sizeof(out), 1, &s);
    assert_int_equal(s.a_private, 0);
    assert_int_equal(s.a_public, 999);
    assert_false(rd16(out + 2) & 0x0020); /* no longer authenticated data: records were removed */
    free(m.b);

    /* the same within what the stack reads from its upstream (4096 bytes) */
    msg_start(&m, DNS_MAX_MSG);
    for (uint32_t i = 0; i < 200; i++)
        msg_a(&m, 0, i == 150 ? 0x7f000001u : 0x5db80000u + i);
    assert_true(m.n <= DNS_MAX_MSG);
    filter_read(&m, out, DNS_MAX_MSG, 1, &s);
    assert_int_equal(s.a_private, 0);
    assert_int_equal(s.a_public, 199);
    free(m.b);
}

/* Private addresses in the authority and additional sections (glue) go too; the
 * referral's NS, the MX, the SOA, TXT and the OPT record stay, names intact. */
static void test_authority_and_glue(void **state)
{
    struct msg m;
    msg_start(&m, 4096);
    msg_a(&m, 0, 0x5db8d822u);
    uint8_t mx[32] = {0, 10};
    memcpy(mx + 2, "\4mail\xc0\x0c", 7);
    msg_rr(&m, 0, QNAME_PTR, 2, T_MX, mx, 9);
    msg_rr(&m, 0, QNAME_PTR, 2, T_TXT, "\5hello", 6);
    msg_rr(&m, 1, QNAME_PTR, 2, T_NS, "\3ns1\xc0\x0c", 6);
    msg_a(&m, 1, 0x0a000001u); /* an A record in the authority section, private */
    uint8_t soa[64];
    memcpy(soa, "\3ns1\xc0\x0c\4host\xc0\x0c", 13);
    memset(soa + 13, 1, 20);
    msg_rr(&m, 1, QNAME_PTR, 2, T_SOA, soa, 33);
    const uint8_t ns1[] = "\3ns1\3big\4test";
    uint8_t a[4];
    wr32(a, 0xa9fea9feu); /* glue: the metadata address */
    msg_rr(&m, 2, ns1, sizeof(ns1), DNS_TYPE_A, a, 4);
    wr32(a, 0x5db8d823u);
    msg_rr(&m, 2, ns1, sizeof(ns1), DNS_TYPE_A, a, 4);
    uint8_t v6[16] = {0xfd, 0x00, 1}; /* ULA glue */
    msg_rr(&m, 2, ns1, sizeof(ns1), DNS_TYPE_AAAA, v6, 16);
    msg_rr(&m, 2, (const uint8_t *)"", 1, T_OPT, "", 0);
    uint8_t out[4096];
    int stripped;
    struct seen s;
    long len = filter_read(&m, out, sizeof(out), 3, &s);
    assert_int_equal(s.a_private, 0);
    assert_int_equal(s.a_public, 2);
    assert_int_equal(s.aaaa, 0);
    assert_int_equal(s.mx, 1);
    assert_string_equal(s.mx_name, "mail.big.test");
    assert_int_equal(s.ns, 1);
    assert_string_equal(s.ns_name, "ns1.big.test");
    assert_int_equal(s.soa, 1);
    assert_int_equal(s.txt, 1);
    assert_int_equal(s.opt, 1);
    assert_int_equal(s.count[0], 3);
    assert_int_equal(s.count[1], 2);
    assert_int_equal(s.count[2], 2);

    free(m.b);

    /* nothing private: the message goes out as it came */
    msg_start(&m, 4096);
    msg_a(&m, 0, 0x5db8d822u);
    msg_rr(&m, 1, QNAME_PTR, 2, T_NS, "\3ns1\xc0\x0c", 6);
    wr32(a, 0x5db8d823u);
    msg_rr(&m, 2, ns1, sizeof(ns1), DNS_TYPE_A, a, 4);
    len = filter(&m, out, sizeof(out), &stripped);
    assert_int_equal(stripped, 0);
    assert_int_equal(len, m.n);
    assert_memory_equal(out, m.b, m.n);
    /* bytes after the last record are not passed on (read_back checks the end) */
    m.b[m.n++] = 0xc0;
    len = filter_read(&m, out, sizeof(out), 0, &s);
    assert_int_equal(s.a_public, 2);
    assert_int_equal(s.ns, 1);
    free(m.b);
}

/* SVCB/HTTPS records carry address hints a client may connect to. */
static void test_https_hints(void **state)
{
    struct msg m;
    msg_start(&m, 4096);
    /* priority 1, target ".", alpn "h2", ipv4hint 93.184.216.34 */
    static const uint8_t good[] = {0, 1, 0, 0, 1, 0, 3, 2, 'h', '2', 0, 4, 0, 4, 93, 184, 216, 34};
    /* the same with a second hint, 10.1.2.3 */
    static const uint8_t bad4[] = {0, 1, 0, 0, 4, 0, 8, 93, 184, 216, 34, 10, 1, 2, 3};
    /* an ipv6hint ::1 */
    static const uint8_t bad6[] = {0, 1, 0, 0, 6, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    /* a hint list running past the record */
    static const uint8_t broken[] = {0, 1, 0, 0, 4, 0, 8, 93, 184, 216, 34};
    msg_rr(&m, 0, QNAME_PTR, 2, T_HTTPS, good, sizeof(good));
    msg_rr(&m, 0, QNAME_PTR, 2, T_HTTPS, bad4, sizeof(bad4));
    msg_rr(&m, 0, QNAME_PTR, 2, T_HTTPS, bad6, sizeof(bad6));
    msg_rr(&m, 2, QNAME_PTR, 2, T_HTTPS, broken, sizeof(broken));
    uint8_t out[4096];
    struct seen s;
    long len = filter_read(&m, out, sizeof(out), 3, &s);
    assert_int_equal(s.https, 1);
    assert_non_null(memmem(out, (size_t)len, good, sizeof(good)));
    free(m.b);
}

/* A rebuilt answer that no longer fits comes back truncated (TC, no records), so the
 * guest asks again over TCP instead of waiting for a timeout. */
static void test_rebuilt_answer_too_big(void **state)
{
    struct msg m;
    msg_start(&m, 4096);
    msg_a(&m, 0, 0x0a000001u);
    for (uint32_t i = 0; i < 100; i++)
        msg_a(&m, 0, 0x5db80000u + i);
    uint8_t out[512];
    int stripped;
    long len = filter(&m, out, sizeof(out), &stripped);
    assert_int_equal(len, 26);
    assert_true(rd16(out + 2) & DNS_FLAG_TC);
    assert_int_equal(rd16(out + 6), 0);
    free(m.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_private_deep_in_a_long_answer),
        cmocka_unit_test(test_authority_and_glue),
        cmocka_unit_test(test_https_hints),
        cmocka_unit_test(test_rebuilt_answer_too_big),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
