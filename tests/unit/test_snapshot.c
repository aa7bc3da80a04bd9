/* Unit tests of the snapshot record (src/lib/snaprec.c) and the export archive's
 * manifest and sparse disk stream (src/lib/bundle.c): what is written reads back, and
 * hostile input (unknown versions, wrong member lists, sizes beyond the bounds,
 * records out of order, outside the disk or cut short) is refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/bundle.h"
#include "lib/snaprec.h"

static char why[512];

static void test_record_round_trip(void **unused)
{
    struct snap_record r = {.created = 1700000000, .virtual_size = 1 << 30}, back;
    snprintf(r.id, sizeof(r.id), "0123456789ab");
    snprintf(r.name, sizeof(r.name), "before-upgrade.1");
    snprintf(r.box_id, sizeof(r.box_id), "ba5eba11c0de");
    snprintf(r.parent, sizeof(r.parent), "feedfacecafe");
    snprintf(r.image, sizeof(r.image), "docker.io/library/python:3.12");
    char *text = snap_record_json(&r);
    assert_non_null(text);
    assert_int_equal(snap_record_parse(text, strlen(text), &back, why, sizeof(why)), 0);
    assert_memory_equal(&r, &back, sizeof(r));
    free(text);
}

static void test_record_refusals(void **unused)
{
    struct snap_record r;
    const char *bad[] = {
        "[]",
        "{\"id\":\"0123456789ab\",\"name\":\"x\",\"box_id\":\"0123456789ab\",\"created\":1}", /* no size */
        "{\"id\":\"../../etc\",\"name\":\"x\",\"box_id\":\"0123456789ab\",\"created\":1,\"virtual_size\":9}",
        "{\"id\":\"0123456789ab\",\"name\":\"-x\",\"box_id\":\"0123456789ab\",\"created\":1,\"virtual_size\":9}",
        "{\"id\":\"0123456789ab\",\"name\":\"a/b\",\"box_id\":\"0123456789ab\",\"created\":1,\"virtual_size\":9}",
        "{\"id\":\"0123456789ab\",\"name\":\"x\",\"box_id\":\"0123456789ab\",\"parent\":\"zz\",\"created\":1,"
        "\"virtual_size\":9}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = 0;
        assert_int_equal(snap_record_parse(bad[i], strlen(bad[i]), &r, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "snapshot record"));
    }
}

static void test_names(void **unused)
{
    assert_true(snap_name_valid("a"));
    assert_true(snap_name_valid("box-1.before_upgrade"));
    assert_false(snap_name_valid(""));
    assert_false(snap_name_valid(".hidden"));
    assert_false(snap_name_valid("a/b"));
    assert_false(snap_name_valid("a b"));
    char long_name[SNAP_NAME_MAX + 1];
    memset(long_name, 'a', SNAP_NAME_MAX);
    long_name[SNAP_NAME_MAX] = 0;
    assert_false(snap_name_valid(long_name));
    long_name[SNAP_NAME_MAX - 1] = 0;
    assert_true(snap_name_valid(long_name));
}

static struct bundle_manifest sample(void)
{
    struct bundle_manifest m = {.version = BUNDLE_VERSION, .created = 5, .virtual_size = 1 << 20};
    snprintf(m.kind, sizeof(m.kind), "box");
    snprintf(m.name, sizeof(m.name), "web");
    snprintf(m.source_id, sizeof(m.source_id), "0123456789ab");
    snprintf(m.image, sizeof(m.image), "default");
    m.files[0].size = 100;
    m.files[1].size = 4096;
    memset(m.files[0].sha256, 'a', 64);
    memset(m.files[1].sha256, 'b', 64);
    return m;
}

static void test_manifest_round_trip(void **unused)
{
    struct bundle_manifest m = sample(), back;
    char *text = bundle_manifest_json(&m);
    assert_non_null(text);
    assert_int_equal(bundle_manifest_parse(text, strlen(text), &back, why, sizeof(why)), 0);
    assert_memory_equal(&m, &back, sizeof(m));
    free(text);
}

/* The sample's text with one substring replaced. */
static int parse_edited(const char *from, const char *to)
{
    struct bundle_manifest m = sample(), out;
    char *text = bundle_manifest_json(&m);
    char *at = strstr(text, from);
    assert_non_null(at);
    char edited[4096];
    snprintf(edited, sizeof(edited), "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    free(text);
    why[0] = 0;
    return bundle_manifest_parse(edited, strlen(edited), &out, why, sizeof(why));
}

static void test_manifest_refusals(void **unused)
{
    assert_int_equal(parse_edited("\"version\": 1", "\"version\": 2"), -1);
    assert_non_null(strstr(why, "format version 2"));
    assert_int_equal(parse_edited("cocoon-export", "docker-save"), -1);
    assert_int_equal(parse_edited("\"config.json\"", "\"../config.json\""), -1);
    assert_int_equal(parse_edited("\"disk.img\"", "\"/etc/passwd\""), -1);
    assert_int_equal(parse_edited("\"size\": 100", "\"size\": 2000000"), -1);      /* config above 1 MiB */
    assert_int_equal(parse_edited("\"size\": 4096", "\"size\": 99999999999"), -1); /* more than the disk */
    assert_int_equal(parse_edited("\"virtual_size\": 1048576", "\"virtual_size\": 2199023255552"), -1);
    assert_int_equal(parse_edited("\"virtual_size\": 1048576", "\"virtual_size\": 1000"), -1);
    assert_int_equal(parse_edited("\"kind\": \"box\"", "\"kind\": \"vm\""), -1);
    assert_int_equal(parse_edited("aaaa", "AAAA"), -1);                            /* sha256 must be lowercase hex */
    assert_int_equal(parse_edited("\"kind\"", "\"kind\": \"box\", \"kind\""), -1); /* duplicate key */
    assert_string_not_equal(why, "");
}

/* ---- disk stream ---- */

static uint8_t disk[1 << 16];
static int writes;

static int sink(void *arg, uint64_t off, const void *data, size_t len, char *err, size_t errcap)
{
    (void)arg;
    (void)err;
    (void)errcap;
    assert_true(off + len <= sizeof(disk));
    memcpy(disk + off, data, len);
    writes++;
    return 0;
}

/* A stream of the given (offset, length) records over a 64 KiB disk, data bytes = 0x5a. */
static size_t stream(uint8_t *out, const uint64_t (*recs)[2], int n, int end)
{
    size_t at = 0;
    bundle_disk_header(out, sizeof(disk));
    at += BUNDLE_DISK_HEADER;
    for (int i = 0; i < n; i++) {
        bundle_disk_record(out + at, recs[i][0], recs[i][1]);
        at += BUNDLE_DISK_RECORD;
        memset(out + at, 0x5a, recs[i][1]);
        at += recs[i][1];
    }
    if (end) {
        bundle_disk_record(out + at, BUNDLE_DISK_END, 0);
        at += BUNDLE_DISK_RECORD;
    }
    return at;
}

static int feed_all(const uint8_t *s, size_t n, size_t piece)
{
    struct bundle_disk_reader r;
    bundle_disk_reader_init(&r, sink, NULL);
    memset(disk, 0, sizeof(disk));
    why[0] = 0;
    for (size_t at = 0; at < n; at += piece)
        if (bundle_disk_feed(&r, s + at, n - at < piece ? n - at : piece, why, sizeof(why)) < 0)
            return -1;
    return bundle_disk_finish(&r, why, sizeof(why));
}

static void test_disk_stream(void **unused)
{
    static uint8_t s[1 << 18];
    const uint64_t good[][2] = {{0, 512}, {4096, 100}, {65536 - 10, 10}};
    size_t n = stream(s, good, 3, 1);
    for (size_t piece = 1; piece <= n; piece = piece * 3 + 1) {
        assert_int_equal(feed_all(s, n, piece), 0);
        assert_int_equal(disk[0], 0x5a);
        assert_int_equal(disk[512], 0);
        assert_int_equal(disk[4096 + 99], 0x5a);
        assert_int_equal(disk[65535], 0x5a);
    }
    /* cut short anywhere: refused at the end */
    for (size_t cut = 0; cut < n; cut += 37) {
        assert_int_equal(feed_all(s, cut, 4096), -1);
        assert_non_null(strstr(why, "disk.img"));
    }
    const uint64_t overlap[][2] = {{0, 512}, {256, 512}};
    assert_int_equal(feed_all(s, stream(s, overlap, 2, 1), 999), -1);
    const uint64_t backwards[][2] = {{4096, 512}, {0, 512}};
    assert_int_equal(feed_all(s, stream(s, backwards, 2, 1), 999), -1);
    const uint64_t outside[][2] = {{65536 - 10, 11}};
    writes = 0;
    assert_int_equal(feed_all(s, stream(s, outside, 1, 1), 999), -1);
    assert_int_equal(writes, 0); /* nothing written for a record refused */
    const uint64_t empty[][2] = {{0, 0}};
    assert_int_equal(feed_all(s, stream(s, empty, 1, 1), 999), -1);
    /* bytes after the end record */
    n = stream(s, good, 1, 1);
    s[n] = 1;
    assert_int_equal(feed_all(s, n + 1, 999), -1);
    /* a bad magic */
    n = stream(s, good, 1, 1);
    s[0] = 'X';
    assert_int_equal(feed_all(s, n, 999), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_record_refusals),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_manifest_round_trip),
        cmocka_unit_test(test_manifest_refusals),
        cmocka_unit_test(test_disk_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
