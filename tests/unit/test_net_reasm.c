/* IPv4 reassembly of the guest's fragments (src/net/reasm.c): in and out of order,
 * and the hostile cases — overlaps, a datagram over 64 KiB, a second different end,
 * odd middle lengths, stale and evicted datagrams — all dropped, memory bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "net/reasm.h"
#include "net/wire.h"

#define SRC 0x0a00020fu
#define DST 0x0a000202u

/* One fragment of datagram id: payload bytes [off, off+len) of a pattern. */
static size_t frag(uint8_t *p, uint16_t id, uint32_t off, uint32_t len, int more)
{
    for (uint32_t i = 0; i < len; i++)
        p[20 + i] = (uint8_t)((off + i) * 13 + 5);
    wire_ipv4_fragment(p, SRC, DST, IP_PROTO_UDP, id, len, (uint16_t)((off / 8) | (more ? 0x2000 : 0)));
    return 20 + len;
}

static void check_pattern(const struct pkt_ip *ip, uint32_t total)
{
    assert_int_equal(ip->l4_len, total);
    for (uint32_t i = 0; i < total; i++)
        assert_int_equal(ip->l4[i], (uint8_t)(i * 13 + 5));
}

static struct reasm *new_reasm(void)
{
    struct reasm *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    return r;
}

static void test_in_order_and_reversed(void **state)
{
    (void)state;
    struct reasm *r = new_reasm();
    uint8_t p[2048];
    struct pkt_ip ip;
    assert_int_equal(reasm_input(r, p, frag(p, 1, 0, 1480, 1), 0, &ip), REASM_MORE);
    assert_int_equal(reasm_input(r, p, frag(p, 1, 1480, 1480, 1), 0, &ip), REASM_MORE);
    assert_int_equal(reasm_input(r, p, frag(p, 1, 2960, 1001, 0), 0, &ip), REASM_DONE);
    check_pattern(&ip, 3961);
    assert_int_equal(ip.src, SRC);
    assert_int_equal(ip.dst, DST);
    assert_int_equal(ip.proto, IP_PROTO_UDP);
    assert_int_equal(ip.hdr_len, 20);
    /* the last fragment first, the first one last */
    assert_int_equal(reasm_input(r, p, frag(p, 2, 2960, 1001, 0), 0, &ip), REASM_MORE);
    assert_int_equal(reasm_input(r, p, frag(p, 2, 1480, 1480, 1), 0, &ip), REASM_MORE);
    assert_int_equal(reasm_input(r, p, frag(p, 2, 0, 1480, 1), 0, &ip), REASM_DONE);
    check_pattern(&ip, 3961);
    free(r);
}

static void test_largest_and_too_big(void **state)
{
    (void)state;
    struct reasm *r = new_reasm();
    uint8_t p[2048];
    struct pkt_ip ip;
    uint32_t off = 0;
    while (off + 1480 < REASM_MAX) {
        assert_int_equal(reasm_input(r, p, frag(p, 3, off, 1480, 1), 0, &ip), REASM_MORE);
        off += 1480;
    }
    assert_int_equal(reasm_input(r, p, frag(p, 3, off, REASM_MAX - off, 0), 0, &ip), REASM_DONE);
    check_pattern(&ip, REASM_MAX);
    /* one byte more than an IPv4 datagram can carry */
    assert_int_equal(reasm_input(r, p, frag(p, 4, 0, 1480, 1), 0, &ip), REASM_MORE);
    assert_int_equal(reasm_input(r, p, frag(p, 4, (REASM_MAX / 8) * 8, REASM_MAX % 8 + 1, 0), 0, &ip), REASM_DROPPED);
    free(r);
}

static void test_overlaps_dropped(void **state)
{
    (void)state;
    struct reasm *r = new_reasm();
    uint8_t p[2048];
    struct pkt_ip ip;
    assert_int_equal(reasm_input(r, p, frag(p, 5, 0, 1480, 1), 0, &ip), REASM_MORE);
    assert_int_equal(reasm_input(r, p, frag(p, 5, 1472, 16, 0), 0, &ip), REASM_DROPPED);
    /* the datagram is gone: the rest alone never completes it */
    assert_int_equal(reasm_input(r, p, frag(p, 5, 1480, 8, 0), 0, &ip), REASM_MORE);
    /* the same fragment twice */
    assert_int_equal(reasm_input(r, p, frag(p, 6, 0, 8, 1), 0, &ip), REASM_MORE);
    assert_int_equal(reasm_input(r, p, frag(p, 6, 0, 8, 1), 0, &ip), REASM_DROPPED);
    free(r);
}

static void test_inconsistent_ends_and_lengths(void **state)
{
    (void)state;
    struct reasm *r = new_reasm();
    uint8_t p[2048];
    struct pkt_ip ip;
    /* two different last fragments */
    assert_int_equal(reasm_input(r, p, frag(p, 7, 16, 8, 0), 0, &ip), REASM_MORE);
    assert_int_equal(reasm_input(r, p, frag(p, 7, 32, 8, 0), 0, &ip), REASM_DROPPED);
    /* data past the end a last fragment set */
    assert_int_equal(reasm_input(r, p, frag(p, 8, 64, 8, 1), 0, &ip), REASM_MORE);
    assert_int_equal(reasm_input(r, p, frag(p, 8, 0, 16, 0), 0, &ip), REASM_DROPPED);
    /* a middle fragment that does not end on an 8-byte boundary, an empty one */
    assert_int_equal(reasm_input(r, p, frag(p, 9, 0, 13, 1), 0, &ip), REASM_DROPPED);
    assert_int_equal(reasm_input(r, p, frag(p, 10, 8, 0, 0), 0, &ip), REASM_DROPPED);
    /* a truncated header */
    assert_int_equal(reasm_input(r, p, 12, 0, &ip), REASM_DROPPED);
    free(r);
}

static void test_stale_and_evicted(void **state)
{
    (void)state;
    struct reasm *r = new_reasm();
    uint8_t p[2048];
    struct pkt_ip ip;
    assert_int_equal(reasm_input(r, p, frag(p, 11, 0, 8, 1), 1000, &ip), REASM_MORE);
    /* after the timeout the first half is forgotten: the second alone does not complete */
    assert_int_equal(reasm_input(r, p, frag(p, 11, 8, 8, 0), 1000 + REASM_TIMEOUT_MS + 1, &ip), REASM_MORE);
    /* more datagrams in progress than slots: the oldest is evicted, the newest complete */
    struct reasm *q = new_reasm();
    for (int i = 0; i <= REASM_SLOTS; i++)
        assert_int_equal(reasm_input(q, p, frag(p, (uint16_t)(100 + i), 0, 8, 1), (uint64_t)i, &ip), REASM_MORE);
    assert_int_equal(reasm_input(q, p, frag(p, 100, 8, 8, 0), 10, &ip), REASM_MORE); /* evicted */
    assert_int_equal(reasm_input(q, p, frag(p, 100 + REASM_SLOTS, 8, 8, 0), 10, &ip), REASM_DONE);
    check_pattern(&ip, 16);
    free(q);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_and_reversed), cmocka_unit_test(test_largest_and_too_big),
        cmocka_unit_test(test_overlaps_dropped),      cmocka_unit_test(test_inconsistent_ends_and_lengths),
        cmocka_unit_test(test_stale_and_evicted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
