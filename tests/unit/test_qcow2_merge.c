/* Unit tests of qcow2_merge (src/disk/qcow2_merge.c, behind `cocoon snapshot compact`):
 * chains built here with qcow2_create/qcow2_write/qcow2_discard over a raw base, merged,
 * and read back against a model of what the chain showed: a 14-deep chain of random
 * writes, zeros hiding the base's data, sparse regions left out, a partial merge over a
 * qcow2 base, a chain with no base, and the refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "util/util.h"
#include "support/fixture.h"
#include "support/tmpdir.h"

#define CB 12 /* 4 KiB clusters: small disks with many clusters */
#define CS (1u << CB)
#define DISK (64u * CS)

static char dir[256];
static char err[512];

static const char *P(const char *name) { return test_tmp_path(dir, name); }

static int setup(void **state)
{
    (void)state;
    assert_int_equal(test_tmpdir(dir, sizeof(dir), "cocoon-merge"), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(util_rm_rf(dir), 0);
    return 0;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 131 + i * 7 + 1) | 1; /* never zero */
}

static void make_raw(const char *path, const uint8_t *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
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
    if (qcow2_close(q, err, sizeof(err)) < 0)
        fail_msg("close: %s", err);
}

/* The whole disk of path reads as model; its own metadata is clean. Returns the
 * check's counts in r. */
static void expect_view(const char *path, const uint8_t *model, struct qcow2_check_result *r)
{
    struct qcow2 *q = open_ok(path, 0);
    uint8_t *b = malloc(DISK);
    assert_int_equal(qcow2_read(q, 0, b, DISK, err, sizeof(err)), 0);
    for (size_t i = 0; i < DISK; i++)
        if (b[i] != model[i])
            fail_msg("%s: byte %zu reads %u, the chain read %u", path, i, b[i], model[i]);
    free(b);
    assert_int_equal(qcow2_check(q, r, err, sizeof(err)), 0);
    if (r->corruptions || r->leaks)
        fail_msg("%s: %llu corruptions, %llu leaks: %s", path, (unsigned long long)r->corruptions,
                 (unsigned long long)r->leaks, err);
    close_ok(q);
}

static void read_all(const char *path, uint8_t *b)
{
    struct qcow2 *q = open_ok(path, 0);
    assert_int_equal(qcow2_read(q, 0, b, DISK, err, sizeof(err)), 0);
    close_ok(q);
}

/* 14 layers over a raw base (the deepest a box stands on), each with random writes
 * (whole and partial clusters), written zeros and discards; the last quarter of the
 * disk is never touched. The merge reads as the chain did, over the same base. */
static void test_merge_fourteen_layers(void **state)
{
    (void)state;
    uint8_t *model = malloc(DISK), *chunk = malloc(CS);
    fill(model, DISK, 1);
    make_raw(P("base.raw"), model, DISK);
    char prev[512], cur[512];
    snprintf(prev, sizeof(prev), "%s", P("base.raw"));
    unsigned rnd = 12345;
    int touched[64] = {0};
    for (int layer = 1; layer <= 15; layer++) { /* 14 snapshot layers and the top */
        snprintf(cur, sizeof(cur), "%s/l%d.qcow2", dir, layer);
        assert_int_equal(qcow2_create(cur, 0, prev, layer == 1 ? "raw" : "qcow2", CB, err, sizeof(err)), 0);
        struct qcow2 *q = open_ok(cur, 1);
        for (int k = 0; k < 6; k++) {
            rnd = rnd * 1103515245u + 12345u;
            unsigned c = (rnd >> 8) % 48, kind = (rnd >> 20) % 4;
            uint64_t off = (uint64_t)c * CS;
            size_t n = kind == 3 ? CS / 3 : CS;
            touched[c] = 1;
            if (kind == 0) { /* zeros written as data */
                memset(chunk, 0, n);
                assert_int_equal(qcow2_write(q, off, chunk, n, err, sizeof(err)), 0);
                memset(model + off, 0, n);
            } else if (kind == 1) {
                assert_int_equal(qcow2_discard(q, off, n, err, sizeof(err)), 0);
                memset(model + off, 0, n);
            } else {
                fill(chunk, n, rnd);
                assert_int_equal(qcow2_write(q, off + (kind == 3 ? 100 : 0), chunk, n, err, sizeof(err)), 0);
                memcpy(model + off + (kind == 3 ? 100 : 0), chunk, n);
            }
        }
        close_ok(q);
        snprintf(prev, sizeof(prev), "%s", cur);
    }
    uint8_t *seen = malloc(DISK);
    read_all(cur, seen);
    assert_memory_equal(seen, model, DISK);
    free(seen);
    struct qcow2 *top = open_ok(cur, 0);
    assert_int_equal(qcow2_chain_depth(top), 15);
    struct qcow2_merge_result res;
    if (qcow2_merge(top, 14, P("merged.qcow2"), &res, err, sizeof(err)) < 0)
        fail_msg("merge: %s", err);
    close_ok(top);
    assert_int_equal(res.layers, 15);
    struct qcow2_check_result r;
    expect_view(P("merged.qcow2"), model, &r);
    struct qcow2 *m = open_ok(P("merged.qcow2"), 0);
    const char *chain[QCOW2_MAX_CHAIN];
    assert_int_equal(qcow2_chain_paths(m, chain, QCOW2_MAX_CHAIN), 1);
    assert_string_equal(chain[0], P("base.raw"));
    close_ok(m);
    unsigned ntouched = 0;
    for (int c = 0; c < 64; c++)
        ntouched += touched[c];
    /* sparse: only clusters some layer mapped are mapped, the untouched quarter is not */
    assert_int_equal(r.mapped, res.data_clusters + res.zero_clusters);
    assert_int_equal(r.mapped, ntouched);
    assert_int_equal(r.allocated, res.data_clusters);
    assert_true(res.zero_clusters > 0);
    free(model);
    free(chunk);
}

/* Zeros in the merged view over a base with data must hide it: a discarded cluster and
 * a cluster of written zeros become zero-flagged clusters, not holes. */
static void test_merge_zeros_hide_base(void **state)
{
    (void)state;
    uint8_t *model = malloc(DISK), z[CS];
    fill(model, DISK, 7);
    make_raw(P("zb.raw"), model, DISK);
    assert_int_equal(qcow2_create(P("z1.qcow2"), 0, P("zb.raw"), "raw", CB, err, sizeof(err)), 0);
    struct qcow2 *q = open_ok(P("z1.qcow2"), 1);
    memset(z, 0, sizeof(z));
    assert_int_equal(qcow2_discard(q, 0, CS, err, sizeof(err)), 0);
    assert_int_equal(qcow2_write(q, CS, z, CS, err, sizeof(err)), 0);
    close_ok(q);
    memset(model, 0, 2 * CS);
    assert_int_equal(qcow2_create(P("z2.qcow2"), 0, P("z1.qcow2"), "qcow2", CB, err, sizeof(err)), 0);
    struct qcow2 *top = open_ok(P("z2.qcow2"), 0);
    struct qcow2_merge_result res;
    assert_int_equal(qcow2_merge(top, 1, P("zm.qcow2"), &res, err, sizeof(err)), 0);
    close_ok(top);
    assert_int_equal(res.data_clusters, 0);
    assert_int_equal(res.zero_clusters, 2);
    struct qcow2_check_result r;
    expect_view(P("zm.qcow2"), model, &r);
    assert_int_equal(r.allocated, 0);
    assert_int_equal(r.mapped, 2);
    free(model);
}

/* Zeros over a hole of a sparse raw base need no cluster: only the zeros over its data
 * are kept. */
static void test_merge_zeros_over_holes_left_out(void **state)
{
    (void)state;
    uint8_t *model = calloc(1, DISK), c[CS];
    int fd = open(P("sparse.raw"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK), 0);
    fill(c, CS, 9);
    assert_int_equal(pwrite(fd, c, CS, 5 * CS), (ssize_t)CS); /* data in cluster 5 only */
    close(fd);
    assert_int_equal(qcow2_create(P("s1.qcow2"), 0, P("sparse.raw"), "raw", CB, err, sizeof(err)), 0);
    struct qcow2 *q = open_ok(P("s1.qcow2"), 1);
    assert_int_equal(qcow2_discard(q, 0, DISK, err, sizeof(err)), 0); /* the guest trimmed it all */
    close_ok(q);
    assert_int_equal(qcow2_create(P("s2.qcow2"), 0, P("s1.qcow2"), "qcow2", CB, err, sizeof(err)), 0);
    struct qcow2 *top = open_ok(P("s2.qcow2"), 0);
    struct qcow2_merge_result res;
    assert_int_equal(qcow2_merge(top, 1, P("sm.qcow2"), &res, err, sizeof(err)), 0);
    close_ok(top);
    assert_int_equal(res.zero_clusters, 1);
    assert_int_equal(res.data_clusters, 0);
    struct qcow2_check_result r;
    expect_view(P("sm.qcow2"), model, &r);
    assert_int_equal(r.mapped, 1);
    free(model);
}

/* Merging only the top two of three layers keeps the third as the base (qcow2), and a
 * chain with no base at all leaves zeros out entirely. */
static void test_merge_partial_and_no_base(void **state)
{
    (void)state;
    uint8_t *model = calloc(1, DISK), c[CS];
    const char *names[3] = {"p1.qcow2", "p2.qcow2", "p3.qcow2"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(qcow2_create(P(names[i]), i ? 0 : DISK, i ? P(names[i - 1]) : NULL, i ? "qcow2" : NULL, CB,
                                      err, sizeof(err)),
                         0);
        struct qcow2 *q = open_ok(P(names[i]), 1);
        fill(c, CS, (unsigned)i + 3);
        assert_int_equal(qcow2_write(q, (uint64_t)i * CS, c, CS, err, sizeof(err)), 0);
        memcpy(model + (uint64_t)i * CS, c, CS);
        memset(c, 0, CS);
        assert_int_equal(qcow2_write(q, (uint64_t)(10 + i) * CS, c, CS, err, sizeof(err)), 0);
        close_ok(q);
    }
    struct qcow2 *top = open_ok(P("p3.qcow2"), 0);
    struct qcow2_merge_result res;
    struct qcow2_check_result r;
    assert_int_equal(qcow2_merge(top, 1, P("pm.qcow2"), &res, err, sizeof(err)), 0);
    expect_view(P("pm.qcow2"), model, &r);
    assert_int_equal(res.data_clusters, 2);
    assert_int_equal(res.zero_clusters, 2); /* zeros over a base: kept as zero clusters */
    struct qcow2 *m = open_ok(P("pm.qcow2"), 0);
    const char *chain[QCOW2_MAX_CHAIN];
    assert_int_equal(qcow2_chain_paths(m, chain, QCOW2_MAX_CHAIN), 1);
    assert_string_equal(chain[0], P("p1.qcow2"));
    close_ok(m);
    /* the whole chain: no base, so zeros need no cluster at all */
    assert_int_equal(qcow2_merge(top, 2, P("full.qcow2"), &res, err, sizeof(err)), 0);
    expect_view(P("full.qcow2"), model, &r);
    assert_int_equal(res.data_clusters, 3);
    assert_int_equal(res.zero_clusters, 0);
    assert_int_equal(r.mapped, 3);
    /* refusals: an existing output, more levels than the chain has */
    assert_true(qcow2_merge(top, 1, P("pm.qcow2"), &res, err, sizeof(err)) < 0);
    assert_true(qcow2_merge(top, 3, P("deep.qcow2"), &res, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "fewer than 3"));
    close_ok(top);
    free(model);
}

/* Layers of different cluster sizes are refused with a message, nothing half made. */
static void test_merge_cluster_size_mismatch(void **state)
{
    (void)state;
    assert_int_equal(qcow2_create(P("m1.qcow2"), DISK, NULL, NULL, CB, err, sizeof(err)), 0);
    assert_int_equal(qcow2_create(P("m2.qcow2"), 0, P("m1.qcow2"), "qcow2", 16, err, sizeof(err)), 0);
    struct qcow2 *top = open_ok(P("m2.qcow2"), 0);
    struct qcow2_merge_result res;
    assert_true(qcow2_merge(top, 1, P("mm.qcow2"), &res, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "one cluster size"));
    assert_false(util_file_exists(P("mm.qcow2")));
    close_ok(top);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_fourteen_layers),           cmocka_unit_test(test_merge_zeros_hide_base),
        cmocka_unit_test(test_merge_zeros_over_holes_left_out), cmocka_unit_test(test_merge_partial_and_no_base),
        cmocka_unit_test(test_merge_cluster_size_mismatch),
    };
    return run_tests_with_fixture(tests, setup, teardown);
}
