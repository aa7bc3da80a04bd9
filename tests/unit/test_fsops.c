/* Unit tests of file operations' wire format (FILE_OP, FILE_ENTRIES in src/proto/proto.c)
 * and of the host's reader of the guest's answer (src/lib/fsops_reply.c) against
 * answers a real agent never sends: entries where none or one was asked for, bad names,
 * more than the bounds, frames after the end, a frame cut off, the same name twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/internal.h"

static struct proto_writer W;

/* ---- FILE_OP ---- */

static void test_file_op_roundtrip(void **state)
{
    struct proto_file_op m = {.op = PROTO_FSOP_MOVE, .flags = PROTO_FSOP_NO_REPLACE, .window = 4096};
    snprintf(m.path, sizeof(m.path), "/a/b");
    snprintf(m.path2, sizeof(m.path2), "/c");
    size_t n = proto_encode_file_op(&W, 7, &m);
    assert_true(n > PROTO_HEADER_SIZE);
    struct proto_header h;
    const uint8_t *p;
    size_t flen;
    assert_int_equal(proto_frame_parse(W.buf, n, &h, &p, &flen), PROTO_OK);
    assert_int_equal(h.type, PROTO_FILE_OP);
    static struct proto_file_op d;
    assert_int_equal(proto_decode_file_op(p, h.len, &d), PROTO_OK);
    assert_int_equal(d.op, PROTO_FSOP_MOVE);
    assert_string_equal(d.path, "/a/b");
    assert_string_equal(d.path2, "/c");
    assert_int_equal(d.flags, PROTO_FSOP_NO_REPLACE);
    assert_int_equal(d.window, 4096);
}

static void expect_op_refused(uint32_t op, const char *path, const char *path2, uint32_t flags, uint32_t mode)
{
    static struct proto_file_op m, d;
    memset(&m, 0, sizeof(m));
    m.op = op;
    m.flags = flags;
    m.mode = mode;
    snprintf(m.path, sizeof(m.path), "%s", path);
    snprintf(m.path2, sizeof(m.path2), "%s", path2);
    size_t n = proto_encode_file_op(&W, 1, &m);
    assert_true(n > 0);
    assert_int_equal(proto_decode_file_op(W.buf + PROTO_HEADER_SIZE, n - PROTO_HEADER_SIZE, &d), PROTO_E_FIELD);
}

static void test_file_op_invalid(void **state)
{
    expect_op_refused(0, "/x", "", 0, 0);
    expect_op_refused(6, "/x", "", 0, 0);
    expect_op_refused(PROTO_FSOP_STAT, "x", "", 0, 0);        /* relative */
    expect_op_refused(PROTO_FSOP_MOVE, "/x", "", 0, 0);       /* no destination */
    expect_op_refused(PROTO_FSOP_MOVE, "/x", "y", 0, 0);      /* relative destination */
    expect_op_refused(PROTO_FSOP_STAT, "/x", "/y", 0, 0);     /* a destination for what takes none */
    expect_op_refused(PROTO_FSOP_REMOVE, "/x", "", 0x80, 0);  /* unknown flag */
    expect_op_refused(PROTO_FSOP_MKDIR, "/x", "", 0, 010000); /* more than permission bits */
    static struct proto_file_op d;
    uint8_t none[1];
    assert_int_equal(proto_decode_file_op(none, 0, &d), PROTO_E_FIELD); /* OP and PATH required */
}

/* ---- FILE_ENTRIES ---- */

static struct proto_file_entry entry(const char *name, uint32_t type)
{
    struct proto_file_entry e;
    memset(&e, 0, sizeof(e));
    snprintf(e.name, sizeof(e.name), "%s", name);
    e.type = type;
    e.mode = 0644;
    e.size = 12345678901ull;
    e.mtime_sec = -5; /* before 1970 */
    e.mtime_nsec = 999999999;
    return e;
}

struct collected {
    struct proto_file_entry e[4096];
    size_t n;
};

static int collect(void *user, const struct proto_file_entry *e)
{
    struct collected *c = user;
    if (c->n < 4096)
        c->e[c->n] = *e;
    c->n++;
    return 0;
}

static void test_entries_roundtrip_across_frames(void **state)
{
    static struct collected c;
    c.n = 0;
    size_t frames = 0, sent = 0;
    uint32_t flags = 0;
    proto_entries_begin(&W);
    while (sent < 3000) {
        char name[64];
        snprintf(name, sizeof(name), "a-rather-long-file-name-%zu", sent);
        struct proto_file_entry e = entry(name, sent % 2 ? PROTO_FTYPE_SYMLINK : PROTO_FTYPE_REGULAR);
        if (e.type == PROTO_FTYPE_SYMLINK)
            snprintf(e.target, sizeof(e.target), "../target/%zu", sent);
        if (proto_entries_add(&W, &e)) {
            sent++;
            continue;
        }
        size_t n = proto_entries_finish(&W, 0);
        assert_true(n > 0 && n <= PROTO_MAX_FRAME);
        assert_int_equal(
            proto_decode_file_entries(W.buf + PROTO_HEADER_SIZE, n - PROTO_HEADER_SIZE, collect, &c, &flags), PROTO_OK);
        assert_int_equal(flags, 0);
        frames++;
        proto_entries_begin(&W);
    }
    size_t n = proto_entries_finish(&W, PROTO_FSOP_END);
    assert_int_equal(proto_decode_file_entries(W.buf + PROTO_HEADER_SIZE, n - PROTO_HEADER_SIZE, collect, &c, &flags),
                     PROTO_OK);
    assert_int_equal(flags, PROTO_FSOP_END);
    assert_true(frames >= 1); /* 3000 entries do not fit in one frame */
    assert_int_equal(c.n, 3000);
    assert_string_equal(c.e[2999].name, "a-rather-long-file-name-2999");
    assert_string_equal(c.e[2999].target, "../target/2999");
    assert_int_equal(c.e[0].size, 12345678901ull);
    assert_int_equal(c.e[0].mtime_sec, -5);
    assert_int_equal(c.e[0].mtime_nsec, 999999999);
}

/* One FILE_ENTRIES payload holding one entry whose fields the caller writes (raw). */
static size_t raw_entry_payload(uint8_t *out, void (*fields)(struct proto_writer *w))
{
    static struct proto_writer one;
    proto_writer_begin(&one, 0, 0);
    fields(&one);
    size_t n = one.len - PROTO_HEADER_SIZE;
    /* the entry as a PT_ENTRY field, written by hand: tag, length, value */
    uint8_t *p = out;
    p[0] = PT_ENTRY & 0xff;
    p[1] = PT_ENTRY >> 8;
    p[2] = (uint8_t)n;
    p[3] = (uint8_t)(n >> 8);
    p[4] = p[5] = 0;
    memcpy(p + 6, one.buf + PROTO_HEADER_SIZE, n);
    return 6 + n;
}

static void dup_type(struct proto_writer *w)
{
    proto_put_str(w, PT_NAME, "x");
    proto_put_u32(w, PT_FILE_TYPE, PROTO_FTYPE_REGULAR);
    proto_put_u32(w, PT_FILE_TYPE, PROTO_FTYPE_DIRECTORY);
}
static void no_type(struct proto_writer *w) { proto_put_str(w, PT_NAME, "x"); }
static void short_size(struct proto_writer *w)
{
    proto_put_u32(w, PT_FILE_TYPE, PROTO_FTYPE_REGULAR);
    proto_put_u32(w, PT_SIZE, 5); /* a u64 field of 4 bytes */
}
static void long_name(struct proto_writer *w)
{
    char name[PROTO_FSOP_MAX_NAME + 2];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    proto_put_str(w, PT_NAME, name);
    proto_put_u32(w, PT_FILE_TYPE, PROTO_FTYPE_REGULAR);
}
static void long_target(struct proto_writer *w)
{
    char t[PROTO_FSOP_MAX_TARGET + 2];
    memset(t, 't', sizeof(t) - 1);
    t[sizeof(t) - 1] = 0;
    proto_put_u32(w, PT_FILE_TYPE, PROTO_FTYPE_SYMLINK);
    proto_put_str(w, PT_PATH, t);
}

static void expect_entry_refused(struct proto_file_entry e)
{
    proto_entries_begin(&W);
    assert_true(proto_entries_add(&W, &e));
    size_t n = proto_entries_finish(&W, 0);
    static struct collected c;
    c.n = 0;
    uint32_t flags;
    assert_int_equal(proto_decode_file_entries(W.buf + PROTO_HEADER_SIZE, n - PROTO_HEADER_SIZE, collect, &c, &flags),
                     PROTO_E_FIELD);
    assert_int_equal(c.n, 0);
}

static void test_entries_invalid(void **state)
{
    expect_entry_refused(entry("a/b", PROTO_FTYPE_REGULAR));
    expect_entry_refused(entry(".", PROTO_FTYPE_DIRECTORY));
    expect_entry_refused(entry("..", PROTO_FTYPE_DIRECTORY));
    expect_entry_refused(entry("x", 0));
    expect_entry_refused(entry("x", 5));
    struct proto_file_entry e = entry("x", PROTO_FTYPE_REGULAR);
    e.mode = 010000;
    expect_entry_refused(e);
    e = entry("x", PROTO_FTYPE_REGULAR);
    e.mtime_nsec = 1000000000;
    expect_entry_refused(e);
    e = entry("x", PROTO_FTYPE_REGULAR);
    snprintf(e.target, sizeof(e.target), "/etc"); /* a target on what is not a symlink */
    expect_entry_refused(e);

    void (*raw[])(struct proto_writer *) = {dup_type, no_type, short_size, long_name, long_target};
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        static uint8_t payload[8192];
        size_t n = raw_entry_payload(payload, raw[i]);
        static struct collected c;
        c.n = 0;
        uint32_t flags;
        assert_int_equal(proto_decode_file_entries(payload, n, collect, &c, &flags), PROTO_E_FIELD);
        assert_int_equal(c.n, 0);
    }
    /* unknown FLAGS bits */
    proto_entries_begin(&W);
    size_t n = proto_entries_finish(&W, 2);
    uint32_t flags;
    assert_int_equal(proto_decode_file_entries(W.buf + PROTO_HEADER_SIZE, n - PROTO_HEADER_SIZE, collect, NULL, &flags),
                     PROTO_E_FIELD);
}

/* ---- the host's reader of an answer ---- */

static struct lib_fsop_reply R;

/* A frame of entries named names[0..n) (NULL: nameless), END when last. */
static size_t entries_frame(const char *const *names, size_t n, int last)
{
    proto_entries_begin(&W);
    for (size_t i = 0; i < n; i++) {
        struct proto_file_entry e = entry(names[i] ? names[i] : "", PROTO_FTYPE_REGULAR);
        assert_true(proto_entries_add(&W, &e));
    }
    return proto_entries_finish(&W, last ? PROTO_FSOP_END : 0);
}

static int feed_frame(size_t n) { return lib_fsop_reply_feed(&R, W.buf, n); }

static void start(int expect) { assert_int_equal(lib_fsop_reply_init(&R, expect), 0); }

static void expect_broken(const char *needle)
{
    assert_non_null(strstr(R.why, needle));
    lib_fsop_reply_free(&R);
}

static void test_reply_honest(void **state)
{
    /* a list in frames fed a few bytes at a time, sorted at the end */
    start(FSOP_EXPECT_LIST);
    static const char *const a[] = {"zeta", "alpha"}, *const b[] = {"mid"};
    static uint8_t all[3 * PROTO_MAX_FRAME];
    size_t len = entries_frame(a, 2, 0);
    memcpy(all, W.buf, len);
    size_t n = entries_frame(b, 1, 1);
    memcpy(all + len, W.buf, n);
    len += n;
    for (size_t off = 0; off < len; off += 7)
        assert_int_equal(lib_fsop_reply_feed(&R, all + off, len - off < 7 ? len - off : 7), 0);
    assert_int_equal(lib_fsop_reply_finish(&R), 0);
    assert_true(R.ended);
    assert_int_equal(R.count, 3);
    assert_string_equal(R.entries[0].name, "alpha");
    assert_string_equal(R.entries[1].name, "mid");
    assert_string_equal(R.entries[2].name, "zeta");
    assert_int_equal(R.entries[0].mtime, -5);
    lib_fsop_reply_free(&R);

    /* an ERROR */
    start(FSOP_EXPECT_ONE);
    n = proto_encode_error(&W, 1, 2, "No such file or directory");
    assert_int_equal(feed_frame(n), 0);
    assert_int_equal(lib_fsop_reply_finish(&R), 0);
    assert_true(R.has_error);
    assert_int_equal(R.error_code, 2);
    assert_string_equal(R.error_msg, "No such file or directory");
    lib_fsop_reply_free(&R);
}

static void test_reply_lies(void **state)
{
    static const char *const one[] = {"x"}, *const nameless[] = {NULL}, *const two[] = {NULL, NULL},
                             *const same[] = {"x", "x"};
    start(FSOP_EXPECT_NONE);
    assert_int_equal(feed_frame(entries_frame(nameless, 1, 1)), -1);
    expect_broken("an entry in the answer to a removal");

    start(FSOP_EXPECT_ONE);
    assert_int_equal(feed_frame(entries_frame(two, 2, 1)), -1);
    expect_broken("more than the one entry");

    start(FSOP_EXPECT_ONE);
    assert_int_equal(feed_frame(entries_frame(one, 1, 1)), -1); /* stat answers without a name */
    expect_broken("where the path itself was asked for");

    start(FSOP_EXPECT_ONE);
    assert_int_equal(feed_frame(entries_frame(NULL, 0, 1)), 0);
    assert_int_equal(lib_fsop_reply_finish(&R), -1);
    expect_broken("no entry");

    start(FSOP_EXPECT_LIST);
    assert_int_equal(feed_frame(entries_frame(nameless, 1, 0)), -1);
    expect_broken("without a name");

    start(FSOP_EXPECT_LIST);
    assert_int_equal(feed_frame(entries_frame(same, 2, 1)), 0);
    assert_int_equal(lib_fsop_reply_finish(&R), -1);
    expect_broken("the same name twice");

    start(FSOP_EXPECT_LIST);
    assert_int_equal(feed_frame(entries_frame(one, 1, 1)), 0);
    assert_int_equal(feed_frame(entries_frame(NULL, 0, 1)), -1);
    expect_broken("after the end");

    start(FSOP_EXPECT_LIST);
    size_t n = entries_frame(one, 1, 1);
    assert_int_equal(lib_fsop_reply_feed(&R, W.buf, n - 1), 0);
    assert_int_equal(lib_fsop_reply_finish(&R), -1);
    expect_broken("in the middle of a frame");

    start(FSOP_EXPECT_LIST); /* a frame of another type inside the answer */
    assert_int_equal(feed_frame(proto_encode_data(&W, 1, PROTO_STDOUT, "x", 1)), -1);
    expect_broken("a STDOUT frame");

    start(FSOP_EXPECT_LIST);
    n = entries_frame(one, 1, 1);
    W.buf[4] = 9; /* stream 9 */
    assert_int_equal(feed_frame(n), -1);
    expect_broken("stream 9");

    start(FSOP_EXPECT_LIST); /* a header announcing more than a frame may hold */
    proto_header_encode(W.buf, PROTO_MAX_PAYLOAD + 1, 1, PROTO_FILE_ENTRIES);
    assert_int_equal(feed_frame(PROTO_HEADER_SIZE), -1);
    expect_broken("bad frame");

    start(FSOP_EXPECT_LIST); /* once broken, stays broken */
    assert_int_equal(feed_frame(proto_encode_data(&W, 1, PROTO_STDOUT, "x", 1)), -1);
    assert_int_equal(feed_frame(entries_frame(one, 1, 1)), -1);
    assert_int_equal(lib_fsop_reply_finish(&R), -1);
    expect_broken("a STDOUT frame");
}

static void test_reply_bounds(void **state)
{
    /* one entry more than PROTO_FSOP_MAX_ENTRIES, each name distinct */
    start(FSOP_EXPECT_LIST);
    size_t sent = 0, fed_ok = 1;
    while (sent <= PROTO_FSOP_MAX_ENTRIES && fed_ok) {
        proto_entries_begin(&W);
        for (;;) {
            char name[32];
            snprintf(name, sizeof(name), "%zu", sent);
            struct proto_file_entry e = entry(name, PROTO_FTYPE_REGULAR);
            if (sent > PROTO_FSOP_MAX_ENTRIES || !proto_entries_add(&W, &e))
                break;
            sent++;
        }
        fed_ok = feed_frame(proto_entries_finish(&W, 0)) == 0;
    }
    assert_false(fed_ok);
    assert_int_equal(R.count, PROTO_FSOP_MAX_ENTRIES);
    expect_broken("more than 100000 entries");

    /* more bytes than an answer may have: frames of entries with long targets; the
     * count stays below its bound, the bytes do not */
    start(FSOP_EXPECT_LIST);
    uint64_t total = 0;
    int rc = 0;
    sent = 0;
    while (rc == 0 && total <= PROTO_FSOP_MAX_BYTES + (uint64_t)PROTO_MAX_FRAME) {
        proto_entries_begin(&W);
        for (;;) {
            struct proto_file_entry e = entry("", PROTO_FTYPE_SYMLINK);
            snprintf(e.name, sizeof(e.name), "%zu", sent);
            memset(e.target, 'x', PROTO_FSOP_MAX_TARGET);
            if (!proto_entries_add(&W, &e))
                break;
            sent++;
        }
        size_t n = proto_entries_finish(&W, 0);
        total += n;
        rc = feed_frame(n);
    }
    assert_int_equal(rc, -1);
    assert_true(R.count < PROTO_FSOP_MAX_ENTRIES);
    expect_broken("larger than 64 MiB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_op_roundtrip),
        cmocka_unit_test(test_file_op_invalid),
        cmocka_unit_test(test_entries_roundtrip_across_frames),
        cmocka_unit_test(test_entries_invalid),
        cmocka_unit_test(test_reply_honest),
        cmocka_unit_test(test_reply_lies),
        cmocka_unit_test(test_reply_bounds),
    };
    return cmocka_run_group_tests_name("fsops", tests, NULL, NULL);
}
