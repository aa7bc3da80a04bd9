/* The split-virtqueue walker (src/kvm/dev/virtq.c) against a fake guest memory of two
 * regions with hostile rings: loops, out-of-range indexes and addresses, huge and
 * wrapping lengths, over-long chains and bad indirect tables must all be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm/dev/virtq.h"
#include "support/fixture.h"

#define LOW 0x10000ull
#define HIGH_GPA 0x100000000ull
#define QS 8
#define DESC 0x1000ull
#define AVAIL 0x2000ull
#define USED 0x3000ull
#define BUF 0x8000ull
#define IND 0x6000ull

struct fx {
    struct guest_mem m;
    struct virtq q;
    struct virtq_chain c;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->m.n = 2;
    f->m.r[0] = (struct guest_region){0, LOW, aligned_alloc(4096, LOW)};
    f->m.r[1] = (struct guest_region){HIGH_GPA, LOW, aligned_alloc(4096, LOW)};
    memset(f->m.r[0].hva, 0, LOW);
    memset(f->m.r[1].hva, 0, LOW);
    f->q.size = QS;
    f->q.desc_gpa = DESC;
    f->q.avail_gpa = AVAIL;
    f->q.used_gpa = USED;
    f->q.indirect_ok = 1;
    assert_int_equal(virtq__enable(&f->q, &f->m), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    free(f->m.r[0].hva);
    free(f->m.r[1].hva);
    free(f);
    return 0;
}

static void set_desc(struct fx *f, uint64_t table, int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    struct virtq_desc d = {addr, len, flags, next};
    memcpy(guest_mem__ptr(&f->m, table + 16 * (uint64_t)i, 16), &d, 16);
}

static void offer(struct fx *f, uint16_t head)
{
    uint16_t *avail = guest_mem__ptr(&f->m, AVAIL, 4 + 2 * QS);
    avail[2 + avail[1] % QS] = head;
    avail[1]++;
}

static void test_mem_ptr(void **state)
{
    struct fx *f = *state;
    assert_non_null(guest_mem__ptr(&f->m, 0, LOW));
    assert_non_null(guest_mem__ptr(&f->m, LOW, 0));
    assert_null(guest_mem__ptr(&f->m, LOW, 1));
    assert_null(guest_mem__ptr(&f->m, LOW - 1, 2));
    assert_null(guest_mem__ptr(&f->m, 1, UINT64_MAX));
    assert_null(guest_mem__ptr(&f->m, UINT64_MAX, 2));
    assert_non_null(guest_mem__ptr(&f->m, HIGH_GPA + 16, 16));
    assert_null(guest_mem__ptr(&f->m, HIGH_GPA - 8, 16));
}

/* Kernel segments mapped from their file (guest_mem__map_file): the bytes around the
 * range read as zero, guest writes stay private, bad layouts are refused. */
static void test_map_file(void **state)
{
    (void)state;
    char path[] = "/tmp/cocoon-test-mapXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    uint8_t file[3 * 4096];
    for (size_t i = 0; i < sizeof(file); i++)
        file[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(write(fd, file, sizeof(file)), sizeof(file));
    struct guest_mem m;
    assert_int_equal(guest_mem__alloc(&m, 4u << 20, 1), 0);
    assert_int_equal(guest_mem__map_file(&m, 0x200010, fd, 0x10, 5000), 0);
    uint8_t *g = guest_mem__ptr(&m, 0x200000, 2 * 4096);
    assert_non_null(g);
    for (int i = 0; i < 0x10; i++)
        assert_int_equal(g[i], 0);
    assert_memory_equal(g + 0x10, file + 0x10, 5000);
    for (int i = 0x10 + 5000; i < 2 * 4096; i++)
        assert_int_equal(g[i], 0);
    g[0x20] ^= 0xff; /* private: the file keeps its byte */
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 0x20), 1);
    assert_int_equal(b, file[0x20]);
    assert_int_equal(guest_mem__map_file(&m, 0x200011, fd, 0x10, 100), -EINVAL);
    assert_int_equal(guest_mem__map_file(&m, (4u << 20) - 4096, fd, 0, 8192), -ERANGE);
    assert_int_equal(guest_mem__map_file(&m, 0x1000, fd, 0, 0), -EINVAL);
    guest_mem__free(&m);
    close(fd);
}

static void test_valid_chain(void **state)
{
    struct fx *f = *state;
    assert_int_equal(virtq__pop(&f->q, &f->m, &f->c), 0);
    memcpy(guest_mem__ptr(&f->m, BUF, 4), "ping", 4);
    set_desc(f, DESC, 3, BUF, 4, VIRTQ_DESC_F_NEXT, 5);
    set_desc(f, DESC, 5, HIGH_GPA + 64, 100, VIRTQ_DESC_F_WRITE, 0);
    offer(f, 3);
    assert_true(virtq__has_avail(&f->q));
    assert_int_equal(virtq__pop(&f->q, &f->m, &f->c), 1);
    assert_int_equal(f->c.head, 3);
    assert_int_equal(f->c.nr, 1);
    assert_int_equal(f->c.nw, 1);
    assert_int_equal(f->c.rlen, 4);
    assert_int_equal(f->c.wlen, 100);
    char buf[8] = {0};
    assert_int_equal(virtq_chain__read(&f->c, 0, buf, 8), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(virtq_chain__write(&f->c, 98, "pong", 4), 2);
    virtq__push(&f->q, &f->c, 100);
    uint16_t *used = guest_mem__ptr(&f->m, USED, 4);
    uint32_t *elem = guest_mem__ptr(&f->m, USED + 4, 8);
    assert_int_equal(used[1], 1);
    assert_int_equal(elem[0], 3);
    assert_int_equal(elem[1], 100);
    assert_int_equal(virtq__pop(&f->q, &f->m, &f->c), 0);
}

static void expect_broken(struct fx *f)
{
    assert_int_equal(virtq__pop(&f->q, &f->m, &f->c), -1);
    assert_true(f->q.broken);
    assert_non_null(f->q.why);
    assert_int_equal(virtq__pop(&f->q, &f->m, &f->c), -1); /* stays broken */
}

static void test_loop(void **state)
{
    struct fx *f = *state;
    set_desc(f, DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
    set_desc(f, DESC, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
    offer(f, 0);
    expect_broken(f);
}

static void test_self_loop_zero_len(void **state)
{
    struct fx *f = *state;
    set_desc(f, DESC, 2, BUF, 0, VIRTQ_DESC_F_NEXT, 2);
    offer(f, 2);
    expect_broken(f);
}

static void test_bad_addresses(void **state)
{
    struct fx *f = *state;
    uint64_t addrs[] = {LOW, LOW - 4, UINT64_MAX - 2, HIGH_GPA + LOW - 1, 0x7fffffff0000ull};
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        f->q.broken = 0;
        set_desc(f, DESC, 0, addrs[i], 8, 0, 0);
        offer(f, 0);
        expect_broken(f);
        f->q.last_avail++; /* skip the bad entry for the next round */
    }
}

static void test_huge_length(void **state)
{
    struct fx *f = *state;
    set_desc(f, DESC, 0, BUF, UINT32_MAX, VIRTQ_DESC_F_WRITE, 0);
    offer(f, 0);
    expect_broken(f);
}

static void test_bad_indexes(void **state)
{
    struct fx *f = *state;
    offer(f, QS); /* head out of range */
    expect_broken(f);
    f->q.broken = 0;
    f->q.last_avail++;
    set_desc(f, DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT, QS + 3);
    offer(f, 0);
    expect_broken(f);
    f->q.broken = 0;
    f->q.last_avail++;
    uint16_t *avail = guest_mem__ptr(&f->m, AVAIL, 4);
    avail[1] = (uint16_t)(f->q.last_avail + QS + 1);
    expect_broken(f);
}

static void test_write_then_read(void **state)
{
    struct fx *f = *state;
    set_desc(f, DESC, 0, BUF, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    set_desc(f, DESC, 1, BUF, 1, 0, 0);
    offer(f, 0);
    expect_broken(f);
}

static void test_indirect(void **state)
{
    struct fx *f = *state;
    set_desc(f, IND, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(f, IND, 1, BUF + 16, 32, VIRTQ_DESC_F_WRITE, 0);
    set_desc(f, DESC, 0, IND, 32, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    assert_int_equal(virtq__pop(&f->q, &f->m, &f->c), 1);
    assert_int_equal(f->c.nr, 1);
    assert_int_equal(f->c.nw, 1);
    assert_int_equal(f->c.wlen, 32);
}

static void indirect_case(struct fx *f, uint64_t addr, uint32_t len, uint16_t flags)
{
    set_desc(f, DESC, 0, addr, len, flags, 1);
    offer(f, 0);
    expect_broken(f);
}

static void test_indirect_bad(void **state)
{
    struct fx *f = *state;
    indirect_case(f, IND, 24, VIRTQ_DESC_F_INDIRECT); /* not a multiple of 16 */
    f->q.broken = 0, f->q.last_avail++;
    indirect_case(f, IND, 0, VIRTQ_DESC_F_INDIRECT);
    f->q.broken = 0, f->q.last_avail++;
    indirect_case(f, IND, 16 * (VIRTQ_MAX_INDIRECT + 1), VIRTQ_DESC_F_INDIRECT);
    f->q.broken = 0, f->q.last_avail++;
    indirect_case(f, LOW - 16, 32, VIRTQ_DESC_F_INDIRECT); /* table crosses the end of RAM */
    f->q.broken = 0, f->q.last_avail++;
    indirect_case(f, IND, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT);
    f->q.broken = 0, f->q.last_avail++;
    set_desc(f, IND, 0, IND, 16, VIRTQ_DESC_F_INDIRECT, 0); /* nested */
    indirect_case(f, IND, 16, VIRTQ_DESC_F_INDIRECT);
    f->q.broken = 0, f->q.last_avail++;
    set_desc(f, IND, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1); /* loop inside the table */
    set_desc(f, IND, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
    indirect_case(f, IND, 32, VIRTQ_DESC_F_INDIRECT);
    f->q.broken = 0, f->q.last_avail++;
    set_desc(f, IND, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 2); /* next past the table */
    indirect_case(f, IND, 32, VIRTQ_DESC_F_INDIRECT);
    f->q.broken = 0, f->q.last_avail++;
    f->q.indirect_ok = 0; /* not negotiated */
    set_desc(f, IND, 0, BUF, 1, 0, 0);
    indirect_case(f, IND, 16, VIRTQ_DESC_F_INDIRECT);
}

static void test_too_long(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < VIRTQ_MAX_INDIRECT; i++)
        set_desc(f, IND, i, BUF + (uint64_t)i, 1, i + 1 < VIRTQ_MAX_INDIRECT ? VIRTQ_DESC_F_NEXT : 0,
                 (uint16_t)(i + 1));
    set_desc(f, DESC, 0, IND, 16 * VIRTQ_MAX_INDIRECT, VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    expect_broken(f);
}

static void test_enable_checks(void **state)
{
    struct fx *f = *state;
    struct virtq q = f->q;
    uint16_t sizes[] = {0, 3, VIRTQ_MAX_SIZE * 2};
    for (size_t i = 0; i < 3; i++) {
        q.size = sizes[i];
        assert_int_equal(virtq__enable(&q, &f->m), -1);
    }
    q = f->q;
    q.desc_gpa = DESC + 8;
    assert_int_equal(virtq__enable(&q, &f->m), -1);
    q = f->q;
    q.used_gpa = LOW - 8;
    assert_int_equal(virtq__enable(&q, &f->m), -1);
    q = f->q;
    q.avail_gpa = UINT64_MAX - 1;
    assert_int_equal(virtq__enable(&q, &f->m), -1);
    q = f->q;
    q.used_gpa = HIGH_GPA;
    assert_int_equal(virtq__enable(&q, &f->m), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mem_ptr),
        cmocka_unit_test(test_map_file),
        cmocka_unit_test(test_valid_chain),
        cmocka_unit_test(test_loop),
        cmocka_unit_test(test_self_loop_zero_len),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_huge_length),
        cmocka_unit_test(test_bad_indexes),
        cmocka_unit_test(test_write_then_read),
        cmocka_unit_test(test_indirect),
        cmocka_unit_test(test_indirect_bad),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_enable_checks),
    };
    return run_tests_with_fixture(tests, setup, teardown);
}
