/* Unit tests of the native qcow2 layer (src/disk/qcow2*.c): creation, allocation,
 * reads through raw and qcow2 backing files, copy-on-write of partial clusters,
 * writes across clusters and L2 tables, a 2 TiB disk, reopening, refcount table
 * growth, discard, a random-write model check, and every corruption we refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "util/util.h"
#include "support/fixture.h"
#include "support/tmpdir.h"

static char dir[256];
static char err[512];

static const char *P(const char *name) { return test_tmp_path(dir, name); }

static int setup(void **state)
{
    assert_int_equal(test_tmpdir(dir, sizeof(dir), "cocoon-qcow2"), 0);
    return 0;
}

static int teardown(void **state)
{
    assert_int_equal(util_rm_rf(dir), 0);
    return 0;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* Deterministic bytes: a function of the offset and a seed. */
static void pattern(uint8_t *b, size_t n, uint64_t off, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (off + i) * 2654435761u + seed * 40503u;
        b[i] = (uint8_t)(x ^ (x >> 13) ^ seed);
    }
}

static void make_raw(const char *path, uint64_t size, unsigned seed)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    uint8_t *b = malloc(size);
    pattern(b, size, 0, seed);
    assert_int_equal(write(fd, b, size), (ssize_t)size);
    free(b);
    close(fd);
}

static void assert_clean(struct qcow2 *q)
{
    struct qcow2_check_result r;
    assert_int_equal(qcow2_check(q, &r, err, sizeof(err)), 0);
    if (r.corruptions || r.leaks)
        fail_msg("check: %llu corruptions, %llu leaks: %s", (unsigned long long)r.corruptions,
                 (unsigned long long)r.leaks, err);
}

static int all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static void poke(const char *path, uint64_t off, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static uint64_t peek64(const char *path, uint64_t off)
{
    uint8_t b[8];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, 8, (off_t)off), 8);
    close(fd);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static void poke64(const char *path, uint64_t off, uint64_t v)
{
    uint8_t b[8];
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
    poke(path, off, b, 8);
}

static void poke32(const char *path, uint64_t off, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    poke(path, off, b, 4);
}

static struct qcow2 *open_ok(const char *path, int writable)
{
    struct qcow2 *q = qcow2_open(path, writable, err, sizeof(err));
    if (!q)
        fail_msg("open %s: %s", path, err);
    return q;
}

static void close_ok(struct qcow2 *q)
{
    int rc = qcow2_close(q, err, sizeof(err));
    if (rc < 0)
        fail_msg("close: %s", err);
}

/* ---- tests ---- */

static void test_create_open(void **state)
{
    const char *img = P("a.qcow2");
    assert_int_equal(qcow2_create(img, 1ull << 30, NULL, NULL, 0, err, sizeof(err)), 0);
    assert_true(file_size(img) <= 4 * 65536);
    /* refused: exists already, bad cluster bits */
    assert_true(qcow2_create(img, 1ull << 30, NULL, NULL, 0, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "exists"));
    assert_int_equal(qcow2_create(P("b.qcow2"), 1 << 20, NULL, NULL, 30, err, sizeof(err)), -EINVAL);
    struct qcow2 *q = open_ok(img, 1);
    assert_int_equal(qcow2_virtual_size(q), 1ull << 30);
    assert_int_equal(qcow2_cluster_size(q), 65536);
    assert_int_equal(qcow2_chain_depth(q), 0);
    assert_clean(q);
    close_ok(q);
}

static void test_unallocated_zero_and_one_cluster(void **state)
{
    const char *img = P("a.qcow2");
    assert_int_equal(qcow2_create(img, 64ull << 20, NULL, NULL, 0, err, sizeof(err)), 0);
    uint64_t before = file_size(img);
    struct qcow2 *q = open_ok(img, 1);
    uint8_t *b = malloc(1 << 20);
    memset(b, 0xee, 1 << 20);
    assert_int_equal(qcow2_read(q, 3 << 20, b, 1 << 20, err, sizeof(err)), 0);
    assert_true(all_zero(b, 1 << 20));

    uint8_t w[4096];
    pattern(w, sizeof(w), 5 << 20, 1);
    assert_int_equal(qcow2_write(q, 5 << 20, w, sizeof(w), err, sizeof(err)), 0);
    struct qcow2_check_result r;
    assert_int_equal(qcow2_check(q, &r, err, sizeof(err)), 0);
    assert_int_equal(r.allocated, 1);
    assert_int_equal(r.corruptions + r.leaks, 0);
    /* one data cluster + one L2 table */
    assert_int_equal(file_size(img), before + 2 * 65536);
    assert_int_equal(qcow2_read(q, (5 << 20) - 100, b, 8192, err, sizeof(err)), 0);
    assert_true(all_zero(b, 100));
    assert_memory_equal(b + 100, w, 4096);
    assert_true(all_zero(b + 4196, 8192 - 4196));
    /* out of range */
    assert_int_equal(qcow2_read(q, (64ull << 20) - 10, b, 20, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "past the end"));
    close_ok(q);
    free(b);
}

static void test_backing_raw_and_cow(void **state)
{
    const char *base = P("base.raw"), *img = P("ov.qcow2");
    uint64_t bs = 1000000; /* not cluster-aligned, not 512-aligned */
    make_raw(base, bs, 7);
    assert_int_equal(qcow2_create(img, 0, base, "raw", 0, err, sizeof(err)), 0);
    struct qcow2 *q = open_ok(img, 1);
    assert_int_equal(qcow2_virtual_size(q), (bs + 511) & ~511ull);
    assert_int_equal(qcow2_chain_depth(q), 1);
    uint64_t vs = qcow2_virtual_size(q);
    uint8_t *b = malloc(vs), *exp = malloc(vs);
    pattern(exp, bs, 0, 7);
    memset(exp + bs, 0, vs - bs);
    assert_int_equal(qcow2_read(q, 0, b, vs, err, sizeof(err)), 0);
    assert_memory_equal(b, exp, vs);

    /* partial-cluster writes: the rest of the cluster keeps the backing data */
    uint8_t w[300];
    memset(w, 0xab, sizeof(w));
    assert_int_equal(qcow2_write(q, 70000, w, sizeof(w), err, sizeof(err)), 0);
    memcpy(exp + 70000, w, sizeof(w));
    /* the last, partly backed cluster */
    assert_int_equal(qcow2_write(q, vs - 10, w, 10, err, sizeof(err)), 0);
    memcpy(exp + vs - 10, w, 10);
    assert_int_equal(qcow2_read(q, 0, b, vs, err, sizeof(err)), 0);
    assert_memory_equal(b, exp, vs);
    assert_clean(q);
    close_ok(q);

    /* reopen read-only: same content, writes refused, base untouched */
    q = open_ok(img, 0);
    memset(b, 0, vs);
    assert_int_equal(qcow2_read(q, 0, b, vs, err, sizeof(err)), 0);
    assert_memory_equal(b, exp, vs);
    assert_int_equal(qcow2_write(q, 0, w, 1, err, sizeof(err)), -EBADF);
    close_ok(q);
    uint8_t *orig = malloc(bs);
    pattern(orig, bs, 0, 7);
    FILE *f = fopen(base, "rb");
    assert_int_equal(fread(b, 1, bs, f), bs);
    fclose(f);
    assert_memory_equal(b, orig, bs);
    free(orig);
    free(b);
    free(exp);
}

static void test_qcow2_backing_and_relative_name(void **state)
{
    const char *base = P("base.raw"), *mid = P("mid.qcow2"), *top = P("top.qcow2");
    make_raw(base, 256 << 10, 3);
    assert_int_equal(qcow2_create(mid, 512 << 10, base, NULL, 0, err, sizeof(err)), 0);
    struct qcow2 *q = open_ok(mid, 1);
    uint8_t w[5000];
    pattern(w, sizeof(w), 0, 9);
    assert_int_equal(qcow2_write(q, 200000, w, sizeof(w), err, sizeof(err)), 0);
    close_ok(q);
    assert_int_equal(qcow2_create(top, 0, mid, "qcow2", 0, err, sizeof(err)), 0);
    /* store the backing name as a relative one: resolved against top's directory */
    uint64_t boff = peek64(top, 8);
    poke(top, boff, "mid.qcow2", 9);
    poke32(top, 16, 9);
    q = open_ok(top, 0);
    assert_int_equal(qcow2_chain_depth(q), 2);
    uint8_t *b = malloc(512 << 10), *exp = malloc(512 << 10);
    pattern(exp, 256 << 10, 0, 3);
    memset(exp + (256 << 10), 0, 256 << 10);
    memcpy(exp + 200000, w, sizeof(w));
    assert_int_equal(qcow2_read(q, 0, b, 512 << 10, err, sizeof(err)), 0);
    assert_memory_equal(b, exp, 512 << 10);
    close_ok(q);
    free(b);
    free(exp);
}

static void test_span_clusters_and_l2_tables(void **state)
{
    /* 512-byte clusters: an L2 table covers 32 KiB, so 100 KiB spans 4 tables */
    const char *img = P("s.qcow2");
    assert_int_equal(qcow2_create(img, 1 << 20, NULL, NULL, 9, err, sizeof(err)), 0);
    struct qcow2 *q = open_ok(img, 1);
    size_t n = 100 << 10;
    uint8_t *w = malloc(n), *b = malloc(n + 2000);
    pattern(w, n, 0, 4);
    assert_int_equal(qcow2_write(q, 30000, w, n, err, sizeof(err)), 0);
    assert_int_equal(qcow2_read(q, 29000, b, n + 2000, err, sizeof(err)), 0);
    assert_true(all_zero(b, 1000));
    assert_memory_equal(b + 1000, w, n);
    assert_true(all_zero(b + 1000 + n, 1000));
    assert_clean(q);
    close_ok(q);
    q = open_ok(img, 0);
    assert_int_equal(qcow2_read(q, 30000, b, n, err, sizeof(err)), 0);
    assert_memory_equal(b, w, n);
    close_ok(q);
    free(w);
    free(b);
}

static void test_two_tib(void **state)
{
    const char *img = P("big.qcow2");
    uint64_t vs = 2ull << 40;
    assert_int_equal(qcow2_create(img, vs, NULL, NULL, 0, err, sizeof(err)), 0);
    assert_true(file_size(img) <= 4 * 65536);
    struct qcow2 *q = open_ok(img, 1);
    assert_int_equal(qcow2_virtual_size(q), vs);
    uint8_t w[8192], b[8192];
    pattern(w, sizeof(w), vs - 8192, 5);
    assert_int_equal(qcow2_write(q, vs - 8192, w, sizeof(w), err, sizeof(err)), 0);
    assert_int_equal(qcow2_write(q, 1ull << 40, w, 100, err, sizeof(err)), 0);
    assert_int_equal(qcow2_write(q, vs - 1, w, 2, err, sizeof(err)), -EINVAL);
    close_ok(q);
    assert_true(file_size(img) < 1 << 20);
    q = open_ok(img, 0);
    assert_int_equal(qcow2_read(q, vs - 8192, b, sizeof(b), err, sizeof(err)), 0);
    assert_memory_equal(b, w, sizeof(w));
    assert_int_equal(qcow2_read(q, (1ull << 40) - 50, b, 200, err, sizeof(err)), 0);
    assert_true(all_zero(b, 50));
    assert_memory_equal(b + 50, w, 100);
    assert_true(all_zero(b + 150, 50));
    assert_clean(q);
    close_ok(q);
}

static void test_reftable_growth(void **state)
{
    /* 512-byte clusters, 16-bit refcounts: one refcount-table cluster covers 8 MiB */
    const char *img = P("g.qcow2");
    assert_int_equal(qcow2_create(img, 64 << 20, NULL, NULL, 9, err, sizeof(err)), 0);
    uint64_t rt0 = peek64(img, 48);
    struct qcow2 *q = open_ok(img, 1);
    size_t n = 12 << 20;
    uint8_t *w = malloc(n), *b = malloc(n);
    pattern(w, n, 0, 11);
    assert_int_equal(qcow2_write(q, 1000, w, n, err, sizeof(err)), 0);
    assert_clean(q);
    close_ok(q);
    assert_true(peek64(img, 48) != rt0);
    q = open_ok(img, 0);
    assert_int_equal(qcow2_read(q, 1000, b, n, err, sizeof(err)), 0);
    assert_memory_equal(b, w, n);
    assert_clean(q);
    close_ok(q);
    free(w);
    free(b);
}

static void test_discard(void **state)
{
    const char *base = P("base.raw"), *img = P("d.qcow2");
    make_raw(base, 1 << 20, 2);
    assert_int_equal(qcow2_create(img, 0, base, "raw", 0, err, sizeof(err)), 0);
    struct qcow2 *q = open_ok(img, 1);
    uint8_t w[70000], *b = malloc(1 << 20), *exp = malloc(1 << 20);
    memset(w, 0x11, sizeof(w));
    pattern(exp, 1 << 20, 0, 2);
    assert_int_equal(qcow2_write(q, 65536, w, sizeof(w), err, sizeof(err)), 0);
    memcpy(exp + 65536, w, sizeof(w));
    /* covers the tail of cluster 0, clusters 1..3 whole (1 allocated, 2..3 backed), head of 4 */
    assert_int_equal(qcow2_discard(q, 60000, 4 * 65536, err, sizeof(err)), 0);
    memset(exp + 60000, 0, 4 * 65536);
    assert_int_equal(qcow2_read(q, 0, b, 1 << 20, err, sizeof(err)), 0);
    assert_memory_equal(b, exp, 1 << 20);
    /* writing into a discarded (zero-flagged, preallocated) cluster */
    assert_int_equal(qcow2_write(q, 65536 + 10, w, 10, err, sizeof(err)), 0);
    memcpy(exp + 65536 + 10, w, 10);
    assert_int_equal(qcow2_write(q, 3 * 65536 + 10, w, 10, err, sizeof(err)), 0);
    memcpy(exp + 3 * 65536 + 10, w, 10);
    close_ok(q);
    q = open_ok(img, 0);
    assert_int_equal(qcow2_read(q, 0, b, 1 << 20, err, sizeof(err)), 0);
    assert_memory_equal(b, exp, 1 << 20);
    assert_clean(q);
    close_ok(q);
    free(b);
    free(exp);
}

static uint64_t mapped(const char *img)
{
    struct qcow2 *q = open_ok(img, 0);
    struct qcow2_check_result r;
    assert_int_equal(qcow2_check(q, &r, err, sizeof(err)), 0);
    close_ok(q);
    return r.mapped;
}

/* mapped counts every entry that hides the backing file, a zero-flagged one (a discard
 * of backed data) included: clone reuses a snapshot only for a layer with none. */
static void test_mapped_entries(void **state)
{
    const char *base = P("base.raw"), *img = P("m.qcow2");
    make_raw(base, 1 << 20, 3);
    assert_int_equal(qcow2_create(img, 0, base, "raw", 0, err, sizeof(err)), 0);
    assert_int_equal(mapped(img), 0);
    struct qcow2 *q = open_ok(img, 1);
    assert_int_equal(qcow2_discard(q, 2 * 65536, 65536, err, sizeof(err)), 0);
    close_ok(q);
    assert_int_equal(mapped(img), 1); /* reads zeros where the base has data */
    q = open_ok(img, 1);
    uint8_t w[10] = {1};
    assert_int_equal(qcow2_write(q, 5 * 65536, w, sizeof(w), err, sizeof(err)), 0);
    close_ok(q);
    assert_int_equal(mapped(img), 2);
}

/* Random writes of random sizes against an in-memory model, with reopens. */
static void test_random_model(void **state)
{
    const char *base = P("base.raw"), *img = P("m.qcow2");
    uint64_t vs = 3 << 20;
    make_raw(base, 2 << 20, 6);
    assert_int_equal(qcow2_create(img, vs, base, "raw", 12, err, sizeof(err)), 0);
    uint8_t *model = calloc(1, vs), *b = malloc(vs), *w = malloc(200000);
    pattern(model, 2 << 20, 0, 6);
    srand(1234);
    struct qcow2 *q = open_ok(img, 1);
    for (int i = 0; i < 400; i++) {
        size_t n = (size_t)(rand() % 3 == 0 ? rand() % 200000 : rand() % 9000) + 1;
        uint64_t off = (uint64_t)rand() % (vs - n);
        pattern(w, n, off, (unsigned)i);
        if (rand() % 10 == 0) {
            assert_int_equal(qcow2_discard(q, off, n, err, sizeof(err)), 0);
            memset(model + off, 0, n);
        } else {
            assert_int_equal(qcow2_write(q, off, w, n, err, sizeof(err)), 0);
            memcpy(model + off, w, n);
        }
        if (i % 100 == 99) {
            close_ok(q);
            q = open_ok(img, 1);
        }
    }
    assert_int_equal(qcow2_read(q, 0, b, vs, err, sizeof(err)), 0);
    assert_memory_equal(b, model, vs);
    assert_clean(q);
    close_ok(q);
    free(model);
    free(b);
    free(w);
}

/* Every refused header: open fails with -EUCLEAN/-ENOTSUP and a message. */
static void expect_refused(const char *img, int writable, const char *needle)
{
    err[0] = 0;
    struct qcow2 *q = qcow2_open(img, writable, err, sizeof(err));
    if (q)
        fail_msg("%s opened, expected refusal (%s)", img, needle);
    if (!strstr(err, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err, needle);
}

static void fresh(const char *img)
{
    unlink(img);
    assert_int_equal(qcow2_create(img, 16 << 20, NULL, NULL, 0, err, sizeof(err)), 0);
}

static void test_corrupt_headers(void **state)
{
    const char *img = P("c.qcow2");
    fresh(img);
    poke(img, 0, "QFI\xfa", 4);
    expect_refused(img, 0, "not a qcow2 image");
    fresh(img);
    poke32(img, 20, 30);
    expect_refused(img, 0, "cluster_bits 30");
    fresh(img);
    poke64(img, 40, 1ull << 40); /* L1 beyond EOF */
    expect_refused(img, 0, "L1 table offset");
    fresh(img);
    poke64(img, 40, 65536 + 512); /* L1 unaligned */
    expect_refused(img, 0, "L1 table offset");
    fresh(img);
    poke64(img, 72, 1ull << 9); /* unknown incompatible feature */
    expect_refused(img, 0, "incompatible feature");
    fresh(img);
    poke64(img, 72, 1ull << 4); /* extended L2 */
    expect_refused(img, 0, "extended L2");
    fresh(img);
    poke32(img, 36, 0); /* L1 too small for the size */
    expect_refused(img, 0, "too small");
    fresh(img);
    poke32(img, 4, 4);
    expect_refused(img, 0, "version 4");
    fresh(img);
    poke32(img, 32, 1);
    expect_refused(img, 0, "encrypted");
    fresh(img);
    poke64(img, 48, 3); /* refcount table unaligned */
    expect_refused(img, 0, "refcount table");
    fresh(img);
    poke32(img, 100, 105); /* header_length not a multiple of 8 */
    expect_refused(img, 0, "header_length");
    fresh(img);
    poke64(img, 8, 200); /* backing name sticking out of the header cluster */
    poke32(img, 16, 70000);
    expect_refused(img, 0, "backing file name");
    /* dirty: readable, but not writable */
    fresh(img);
    poke64(img, 72, 1);
    expect_refused(img, 1, "qemu-img check -r all");
    struct qcow2 *q = open_ok(img, 0);
    close_ok(q);
    /* truncated file */
    assert_int_equal(truncate(img, 50), 0);
    expect_refused(img, 0, "not a qcow2 image");
}

static void test_corrupt_l1_l2(void **state)
{
    const char *img = P("e.qcow2");
    fresh(img);
    struct qcow2 *q = open_ok(img, 1);
    uint8_t w[512] = {1};
    assert_int_equal(qcow2_write(q, 0, w, sizeof(w), err, sizeof(err)), 0);
    close_ok(q);
    uint64_t l1off = peek64(img, 40), l1e = peek64(img, l1off);
    uint64_t l2off = l1e & 0x00fffffffffffe00ull, l2e = peek64(img, l2off);
    uint8_t b[512];

    struct {
        uint64_t at, val;
        int rc;
        const char *needle;
    } cases[] = {
        {l1off, l1e + 512, -EUCLEAN, "L1 entry 0"},                     /* unaligned L2 table */
        {l1off, (1ull << 40) | (1ull << 63), -EUCLEAN, "past the end"}, /* L2 table past EOF */
        {l1off, l1e | 2, -EUCLEAN, "reserved bits"},                    /* reserved bit */
        {l1off, 65536 | (1ull << 63), -EUCLEAN, "other metadata"},      /* L2 = refcount table */
        {l2off, l2e + 512, -EUCLEAN, "unaligned"},                      /* data cluster unaligned */
        {l2off, (1ull << 45) | (1ull << 63), -EUCLEAN, "past the end"}, /* data past EOF */
        {l2off, l2e | 0x10, -EUCLEAN, "invalid flag bits"},             /* reserved bit */
        {l2off, (1ull << 62) | 12345, -ENOTSUP, "compressed"},          /* compressed */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        poke64(img, l1off, l1e);
        poke64(img, l2off, l2e);
        poke64(img, cases[i].at, cases[i].val);
        q = open_ok(img, 1);
        err[0] = 0;
        assert_int_equal(qcow2_read(q, 0, b, sizeof(b), err, sizeof(err)), cases[i].rc);
        if (!strstr(err, cases[i].needle))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].needle);
        assert_int_equal(qcow2_write(q, 100, b, 10, err, sizeof(err)), cases[i].rc);
        struct qcow2_check_result r;
        assert_int_equal(qcow2_check(q, &r, err, sizeof(err)), 0);
        assert_true(r.corruptions > 0 || cases[i].rc == -ENOTSUP);
        qcow2_close(q, NULL, 0);
    }
    /* restored: fine again */
    poke64(img, l1off, l1e);
    poke64(img, l2off, l2e);
    q = open_ok(img, 0);
    assert_int_equal(qcow2_read(q, 0, b, sizeof(b), err, sizeof(err)), 0);
    assert_int_equal(b[0], 1);
    assert_clean(q);
    close_ok(q);
}

static void test_chain_depth_limit(void **state)
{
    char prev[512], cur[512];
    snprintf(prev, sizeof(prev), "%s", P("l0.raw"));
    make_raw(prev, 4096, 1);
    /* 17 qcow2 layers over the raw base: the top has 17 images below it */
    for (int i = 1; i <= 17; i++) {
        snprintf(cur, sizeof(cur), "%s/l%d.qcow2", dir, i);
        assert_int_equal(qcow2_create(cur, 0, prev, NULL, 0, err, sizeof(err)), 0);
        snprintf(prev, sizeof(prev), "%s", cur);
    }
    snprintf(cur, sizeof(cur), "%s/l16.qcow2", dir);
    struct qcow2 *q = open_ok(cur, 0);
    assert_int_equal(qcow2_chain_depth(q), 16);
    uint8_t b[4096], exp[4096];
    pattern(exp, sizeof(exp), 0, 1);
    assert_int_equal(qcow2_read(q, 0, b, sizeof(b), err, sizeof(err)), 0);
    assert_memory_equal(b, exp, sizeof(b));
    close_ok(q);
    snprintf(cur, sizeof(cur), "%s/l17.qcow2", dir);
    expect_refused(cur, 0, "deeper than 16");
    /* a loop: an image that is its own backing file */
    const char *loop = P("loop.qcow2");
    assert_int_equal(qcow2_create(loop, 1 << 20, P("l1.qcow2"), "qcow2", 0, err, sizeof(err)), 0);
    uint64_t boff = peek64(loop, 8);
    poke(loop, boff, "loop.qcow2", 10);
    poke32(loop, 16, 10);
    expect_refused(loop, 0, "deeper than 16");
    /* a missing backing file */
    const char *orphan = P("orphan.qcow2");
    assert_int_equal(qcow2_create(orphan, 1 << 20, P("l0.raw"), "raw", 0, err, sizeof(err)), 0);
    boff = peek64(orphan, 8);
    poke(orphan, boff, "nothere", 7);
    poke32(orphan, 16, 7);
    expect_refused(orphan, 0, "nothere");
}

/* A live snapshot's layer switch (qcow2_open_over): writes after it land in the new
 * layer, the old one keeps what it had and stays clean; a layer of another size or with
 * no backing file is refused and leaves the old one as it was, writable. */
static void test_open_over(void **state)
{
    (void)state;
    const char *low = P("low.qcow2"), *next = P("next.qcow2"), *big = P("big.qcow2"), *alone = P("alone.qcow2");
    uint8_t a[4096], b[4096], r[4096];
    pattern(a, sizeof(a), 0, 1);
    pattern(b, sizeof(b), 0, 2);
    assert_int_equal(qcow2_create(low, 1 << 20, NULL, NULL, 0, err, sizeof(err)), 0);
    struct qcow2 *q = open_ok(low, 1);
    assert_int_equal(qcow2_write(q, 0, a, sizeof(a), err, sizeof(err)), 0);

    assert_int_equal(qcow2_create(alone, 1 << 20, NULL, NULL, 0, err, sizeof(err)), 0);
    assert_null(qcow2_open_over(open(alone, O_RDWR | O_CLOEXEC), alone, q, err, sizeof(err)));
    assert_non_null(strstr(err, "no backing file"));
    assert_int_equal(qcow2_create(big, 2 << 20, low, "qcow2", 0, err, sizeof(err)), 0);
    assert_null(qcow2_open_over(open(big, O_RDWR | O_CLOEXEC), big, q, err, sizeof(err)));
    assert_non_null(strstr(err, "size"));
    assert_int_equal(qcow2_write(q, 8192, b, sizeof(b), err, sizeof(err)), 0); /* still writable */

    assert_int_equal(qcow2_create(next, 0, low, "qcow2", 0, err, sizeof(err)), 0);
    struct qcow2 *top = qcow2_open_over(open(next, O_RDWR | O_CLOEXEC), next, q, err, sizeof(err));
    if (!top)
        fail_msg("open over: %s", err);
    assert_int_equal(qcow2_chain_depth(top), 1);
    assert_int_equal(qcow2_write(top, 0, b, sizeof(b), err, sizeof(err)), 0);
    assert_int_equal(qcow2_read(top, 8192, r, sizeof(r), err, sizeof(err)), 0);
    assert_memory_equal(r, b, sizeof(b));
    close_ok(top); /* and the layer below with it */

    struct qcow2_check_result res;
    const char *files[] = {low, next};
    const uint8_t *at0[] = {a, b};
    for (int i = 0; i < 2; i++) {
        struct qcow2 *c = open_ok(files[i], 0);
        assert_int_equal(qcow2_read(c, 0, r, sizeof(r), err, sizeof(err)), 0);
        assert_memory_equal(r, at0[i], sizeof(r));
        assert_int_equal(qcow2_read(c, 8192, r, sizeof(r), err, sizeof(err)), 0);
        assert_memory_equal(r, b, sizeof(r));
        memset(&res, 0, sizeof(res));
        assert_int_equal(qcow2_check(c, &res, err, sizeof(err)), 0);
        assert_int_equal(res.corruptions, 0);
        assert_int_equal(res.leaks, 0);
        close_ok(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_open),
        cmocka_unit_test(test_unallocated_zero_and_one_cluster),
        cmocka_unit_test(test_backing_raw_and_cow),
        cmocka_unit_test(test_qcow2_backing_and_relative_name),
        cmocka_unit_test(test_span_clusters_and_l2_tables),
        cmocka_unit_test(test_two_tib),
        cmocka_unit_test(test_reftable_growth),
        cmocka_unit_test(test_discard),
        cmocka_unit_test(test_mapped_entries),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_corrupt_headers),
        cmocka_unit_test(test_corrupt_l1_l2),
        cmocka_unit_test(test_chain_depth_limit),
        cmocka_unit_test(test_open_over),
    };
    return run_tests_with_fixture(tests, setup, teardown);
}
