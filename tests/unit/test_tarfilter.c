/* Unit tests of the filters archive streams pass through (src/lib/tarfilter_in.c,
 * tarfilter_out.c): a caller's archive going into a box, forged with every trick a
 * network client could use, and a guest's archive going out, forged the way a hostile
 * agent would. What a filter writes is read back with the strict tar_reader, so each
 * test sees exactly the archive the other side would get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/internal.h"
#include "lib/tar_policy.h"
#include "lib/tar_reader.h"
#include "lib/tarfilter.h"
#include "tar_forge.h"

static cocoon_error err;
static char warnings[1024];

/* ---- input in uneven pieces ---- */

struct mem {
    const uint8_t *p;
    size_t len, off, chunk;
    int fail_at_end; /* the read callback fails instead of ending */
};

static long mem_read(void *arg, void *buf, size_t cap)
{
    struct mem *m = arg;
    size_t k = m->len - m->off;
    if (k == 0 && m->fail_at_end)
        return -1;
    if (k > cap)
        k = cap;
    if (k > m->chunk)
        k = m->chunk;
    if (k)
        memcpy(buf, m->p + m->off, k);
    m->off += k;
    return (long)k;
}

/* ---- output into memory ---- */

struct sink {
    struct forge out;
    size_t writes, writes_by_filter; /* the latter: when the filter returned (freeing a writer ends its archive) */
    int fail;
};

static la_ssize_t sink_write(struct archive *a, void *arg, const void *buf, size_t len)
{
    struct sink *s = arg;
    if (s->fail)
        return -1;
    s->writes++;
    fg_raw(&s->out, buf, len);
    return (la_ssize_t)len;
}

static struct archive *sink_open(struct sink *s)
{
    struct archive *w = archive_write_new();
    assert_non_null(w);
    assert_int_equal(archive_write_set_format_pax(w), ARCHIVE_OK);
    assert_int_equal(archive_write_set_bytes_per_block(w, 512), ARCHIVE_OK); /* every entry shows at once */
    assert_int_equal(archive_write_open(w, s, NULL, sink_write, NULL), ARCHIVE_OK);
    return w;
}

/* ---- the output read back ---- */

#define MAX_SEEN 64
struct seen {
    size_t n;
    struct tar_entry e[MAX_SEEN];
    char data[MAX_SEEN][64];   /* the first bytes of each file's data */
    uint64_t stored[MAX_SEEN]; /* data bytes the archive held for it (holes not counted) */
};
static struct seen seen;

static void read_back(const struct forge *f)
{
    memset(&seen, 0, sizeof(seen));
    struct mem m = {f->buf, f->len, 0, 4096, 0};
    struct tar_reader r;
    assert_int_equal(tar_reader_init(&r, mem_read, &m), 0);
    int n;
    while ((n = tar_next(&r, &seen.e[seen.n])) == 1) {
        const void *d;
        size_t len;
        uint64_t off;
        while (tar_data(&r, &d, &len, &off) == 1) {
            if (off < sizeof(seen.data[0]) - 1)
                memcpy(seen.data[seen.n] + off, d,
                       len < sizeof(seen.data[0]) - 1 - off ? len : sizeof(seen.data[0]) - 1 - off);
            seen.stored[seen.n] += len;
        }
        assert_true(++seen.n < MAX_SEEN);
    }
    if (n < 0)
        fail_msg("the filter wrote an archive the strict reader refuses: %s", r.err);
    tar_reader_free(&r);
}

static const struct tar_entry *find(const char *path)
{
    for (size_t i = 0; i < seen.n; i++)
        if (!strcmp(seen.e[i].path, path) ||
            (seen.e[i].type == TAR_DIR && !strncmp(seen.e[i].path, path, strlen(path)) &&
             !strcmp(seen.e[i].path + strlen(path), "/")))
            return &seen.e[i];
    return NULL;
}

static size_t index_of(const char *path)
{
    const struct tar_entry *e = find(path);
    if (!e)
        fail_msg("\"%s\" is not in the output", path);
    return (size_t)(e - seen.e);
}

static void assert_refused(int rc, int code, const char *needle)
{
    if (rc != TARFILTER_REFUSED || err.code != code || !strstr(err.message, needle))
        fail_msg("expected a refusal %d with \"%s\", got rc=%d code=%d \"%s\"", code, needle, rc, err.code,
                 err.message);
    for (const char *c = err.message; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            fail_msg("control character 0x%02x in \"%s\"", (unsigned char)*c, err.message);
}

static struct tarfilter_limits lim = {16ull << 30, 100, "MAXB", "MAXE"};

/* ---- into a box ---- */

static int run_in(struct forge *f, struct sink *s)
{
    struct mem m = {f->buf, f->len, 0, 7001, 0};
    memset(s, 0, sizeof(*s));
    memset(&err, 0, sizeof(err));
    struct archive *w = sink_open(s);
    int rc = tarfilter_in(mem_read, &m, w, &lim, warnings, sizeof(warnings), NULL, &err);
    if (rc == TARFILTER_OK)
        assert_int_equal(archive_write_close(w), ARCHIVE_OK);
    lib_tar_writer_free(w);
    return rc;
}

static int in_ok(struct forge *f)
{
    struct sink s;
    int rc = run_in(f, &s);
    if (rc != TARFILTER_OK)
        fail_msg("refused: %s", err.message);
    read_back(&s.out);
    fg_free(&s.out);
    return rc;
}

static int in_refused(struct forge *f, const char *needle)
{
    struct sink s;
    int rc = run_in(f, &s);
    assert_refused(rc, COCOON_E_INVALID, needle);
    fg_free(&s.out);
    fg_free(f);
    return rc;
}

static void test_in_round_trip(void **state)
{
    struct forge f = {0};
    fg_dir(&f, "./", 0755);
    fg_dir(&f, "./proj/", 0750);
    fg_entry(&f, "./proj/./run.sh", '0', 04755, "#!/bin/sh\n", 10, NULL);
    fg_symlink(&f, "proj/latest", "run.sh");
    fg_symlink(&f, "proj/up", "../proj/run.sh"); /* one level up from proj: still inside */
    fg_hardlink(&f, "proj/again", "./proj/run.sh");
    uint64_t regions[] = {1 << 20, 3};
    fg_sparse(&f, "proj/sparse", 1ull << 30, regions, 1, 's');
    fg_end(&f);
    in_ok(&f);
    fg_free(&f);
    assert_int_equal(seen.n, 6); /* "./" itself is dropped */
    const struct tar_entry *e = &seen.e[index_of("proj/run.sh")];
    assert_int_equal(e->type, TAR_FILE);
    assert_int_equal(e->mode, 04755); /* the box is the caller's: modes travel whole */
    assert_string_equal(seen.data[index_of("proj/run.sh")], "#!/bin/sh\n");
    assert_int_equal(seen.e[index_of("proj")].mode, 0750);
    assert_string_equal(seen.e[index_of("proj/latest")].link, "run.sh");
    assert_string_equal(seen.e[index_of("proj/up")].link, "../proj/run.sh");
    assert_int_equal(seen.e[index_of("proj/again")].type, TAR_HARDLINK);
    assert_string_equal(seen.e[index_of("proj/again")].link, "proj/run.sh");
    size_t sp = index_of("proj/sparse");
    assert_true(seen.e[sp].size == 1ull << 30 && seen.stored[sp] == 3); /* only the data crossed */
    assert_string_equal(warnings, "");
}

static void test_in_dialects(void **state)
{
    /* GNU long names ('L'), a pax global header, v7-style regular type 0, a name with
     * bytes that are not UTF-8 and a UTF-8 one in a pax header: all pass byte for byte */
    struct forge f = {0};
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    fg_header(&f, "././@LongLink", 'L', 0644, strlen(longname) + 1, NULL);
    fg_raw(&f, longname, strlen(longname) + 1);
    fg_pad(&f);
    fg_header(&f, "nnnn", '0', 0600, 2, NULL);
    fg_raw(&f, "hi", 2);
    fg_pad(&f);
    fg_header(&f, "pax_global_header", 'g', 0644, 0, NULL);
    fg_file(&f,
            "bad\xff"
            "name",
            0644, "b");
    char rec[512] = "";
    fg_rec(rec, sizeof(rec), "path", "h\xc3\xa9llo");
    fg_pax(&f, rec);
    fg_file(&f, "ignored", 0644, "u");
    fg_entry(&f, "dumpdir", 'D', 0755, "Yfile\0\0", 8, NULL); /* GNU incremental: data read through */
    fg_file(&f, "after", 0644, "a");
    fg_end(&f);
    in_ok(&f);
    fg_free(&f);
    assert_int_equal(seen.n, 5);
    assert_int_equal(seen.e[index_of("dumpdir")].type, TAR_DIR);
    assert_string_equal(seen.data[index_of("after")], "a");
    assert_string_equal(seen.data[index_of(longname)], "hi");
    assert_string_equal(seen.data[index_of("bad\xff"
                                           "name")],
                        "b");
    assert_string_equal(seen.data[index_of("h\xc3\xa9llo")], "u");
}

static void test_in_refuses_names(void **state)
{
    static const char *const bad[] = {"/etc/passwd", "../x", "a/../../x", "a/.."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct forge f = {0};
        fg_file(&f, "ok", 0644, "fine");
        fg_file(&f, bad[i], 0644, "evil");
        fg_end(&f);
        in_refused(&f, bad[i][0] == '/' ? "\"/etc/passwd\", which is absolute" : "climbs out with \"..\"");
    }
    struct forge f = {0};
    fg_file(&f, ".", 0644, "evil");
    fg_end(&f);
    in_refused(&f, "names the destination directory itself");
    /* terminal escapes in a name reach no message as they are */
    fg_file(&f, "/\x1b]0;owned\x07", 0644, "evil");
    fg_end(&f);
    in_refused(&f, "\\x1b]0;owned\\x07");
}

static void test_in_symlinks(void **state)
{
    /* a symlink, then a file through it: refused, whatever the symlink points to */
    static const char *const targets[] = {"/etc", "sub", "."};
    for (size_t i = 0; i < sizeof(targets) / sizeof(*targets); i++) {
        struct forge f = {0};
        fg_dir(&f, "sub/", 0755);
        fg_symlink(&f, "l", targets[i]);
        fg_file(&f, "l/passwd", 0644, "evil");
        fg_end(&f);
        in_refused(&f, "\"l/passwd\" lies under \"l\", a symlink of the archive");
    }
    /* deeper, and through a directory entry of the same name that came first */
    struct forge f = {0};
    fg_dir(&f, "a/", 0755);
    fg_dir(&f, "a/b/", 0755);
    fg_symlink(&f, "a/b", "/");
    fg_file(&f, "a/b/c/d", 0644, "evil");
    fg_end(&f);
    in_refused(&f, "lies under \"a/b\"");

    /* symlinks out of the destination are skipped; those inside kept; a directory
     * entry replacing a symlink lets entries under it through again */
    fg_symlink(&f, "abs", "/etc/passwd");
    fg_symlink(&f, "up", "../outside");
    fg_dir(&f, "d/", 0755);
    fg_symlink(&f, "d/up", "../in");
    fg_symlink(&f, "d/upup", "../../out");
    fg_symlink(&f, "d/mid", "x/../../../out");
    fg_symlink(&f, "r", "d");
    fg_dir(&f, "r/", 0755);
    fg_file(&f, "r/f", 0644, "fine");
    fg_end(&f);
    in_ok(&f);
    fg_free(&f);
    assert_null(find("abs"));
    assert_null(find("up"));
    assert_null(find("d/upup"));
    assert_null(find("d/mid"));
    assert_string_equal(seen.e[index_of("d/up")].link, "../in");
    assert_int_equal(seen.e[index_of("r/f")].type, TAR_FILE);
    assert_non_null(strstr(warnings, "abs: symlink to \"/etc/passwd\" skipped: it points outside the destination"));
    assert_non_null(strstr(warnings, "up: symlink to \"../outside\" skipped"));

    /* a skipped symlink still guards its name */
    fg_symlink(&f, "etc", "/etc");
    fg_file(&f, "etc/shadow", 0644, "evil");
    fg_end(&f);
    in_refused(&f, "\"etc/shadow\" lies under \"etc\"");
}

static void test_in_hardlinks_and_specials(void **state)
{
    static const char *const bad[] = {"/etc/passwd", "nothere", "d", "s", "../x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct forge f = {0};
        fg_dir(&f, "d/", 0755);
        fg_symlink(&f, "s", "d");
        fg_hardlink(&f, "h", bad[i]);
        fg_end(&f);
        in_refused(&f, "which is not a file earlier in the archive");
    }
    /* a link to a file that comes later is refused too */
    struct forge f = {0};
    fg_hardlink(&f, "h", "f");
    fg_file(&f, "f", 0644, "x");
    fg_end(&f);
    in_refused(&f, "the hard link \"h\" points to \"f\"");

    fg_entry(&f, "null", '3', 0666, NULL, 0, NULL);
    fg_entry(&f, "fifo", '6', 0666, NULL, 0, NULL);
    fg_file(&f, "f", 0644, "x");
    fg_end(&f);
    in_ok(&f);
    fg_free(&f);
    assert_int_equal(seen.n, 1);
    assert_string_equal(warnings, "null: device, FIFO or socket skipped\nfifo: device, FIFO or socket skipped");
}

static void test_in_bounds(void **state)
{
    /* a size header of 1 TiB is refused before any of its data is read */
    struct forge f = {0};
    fg_header(&f, "big", '0', 0644, 1ull << 40, NULL);
    fg_raw(&f, "xxxx", 4);
    in_refused(
        &f, "\"big\" (1099511627776 bytes) takes the archive above 17179869184 bytes, the limit (raise it with MAXB)");

    fg_header(&f, "d", 'D', 0755, 1ull << 40, NULL);
    in_refused(&f, "the directory \"d\" carries 1099511627776 bytes of data, above the limit");

    for (int i = 0; i < 101; i++) {
        char n[16];
        snprintf(n, sizeof(n), "f%d", i);
        fg_file(&f, n, 0644, "");
    }
    fg_end(&f);
    in_refused(&f, "more than 100 entries, the limit (raise it with MAXE)");

    /* headers that never end: nine pax headers of a megabyte each before one entry */
    char *big = malloc(1000001);
    assert_non_null(big);
    memset(big, 'v', 1000000);
    big[1000000] = 0;
    char *rec = malloc(1000100);
    assert_non_null(rec);
    for (int i = 0; i < 9; i++) {
        rec[0] = 0;
        fg_rec(rec, 1000100, "comment", big + 20);
        fg_pax(&f, rec);
    }
    fg_file(&f, "x", 0644, "x");
    fg_end(&f);
    free(big);
    free(rec);
    struct sink s;
    int rc = run_in(&f, &s);
    fg_free(&f);
    fg_free(&s.out);
    if (rc == TARFILTER_REFUSED && strstr(err.message, "headers (pax, long names, sparse map) take more than"))
        return;
    /* libarchive may refuse stacked pax headers itself first: a refusal all the same */
    assert_refused(rc, COCOON_E_INVALID, "damaged");
}

static void test_in_truncated_and_not_tar(void **state)
{
    struct forge whole = {0};
    fg_file(&whole, "a", 0644, "aaaa");
    char data[1500];
    memset(data, 'b', sizeof(data));
    fg_entry(&whole, "b", '0', 0644, data, sizeof(data), NULL);
    /* cut inside b's data */
    struct forge f = {0};
    fg_raw(&f, whole.buf, whole.len - 700);
    in_refused(&f, "\"b\": the archive is damaged or truncated");
    /* cut exactly after b: no end-of-archive block */
    fg_raw(&f, whole.buf, whole.len);
    in_refused(&f, "the archive ends without its end-of-archive block (truncated?)");
    /* one end block is enough, and padding after it is read and dropped */
    fg_raw(&f, whole.buf, whole.len);
    fg_raw(&f, NULL, 512 + 9216);
    in_ok(&f);
    fg_free(&f);
    assert_int_equal(seen.n, 2);
    /* but not a megabyte of anything after it */
    fg_raw(&f, whole.buf, whole.len);
    fg_end(&f);
    static char garbage[512];
    memset(garbage, 'g', sizeof(garbage));
    for (int i = 0; i < 2100; i++)
        fg_raw(&f, garbage, sizeof(garbage));
    in_refused(&f, "bytes follow the end of the archive");
    fg_free(&whole);

    static const struct {
        const char *bytes;
        size_t len;
        const char *says;
    } not_tar[] = {{"\x1f\x8b\x08\0\0\0\0\0", 8, "the archive is gzip-compressed: send a plain (uncompressed) tar"},
                   {"\xfd"
                    "7zXZ\0",
                    6, "xz-compressed"},
                   {"\x28\xb5\x2f\xfd", 4, "zstd-compressed"},
                   {"BZh91AY&SY", 10, "bzip2-compressed"},
                   {"", 0, "the archive is empty (no bytes)"},
                   {"hello, this is not an archive at all", 36, "not a tar archive"}};
    for (size_t i = 0; i < sizeof(not_tar) / sizeof(*not_tar); i++) {
        if (not_tar[i].len)
            fg_raw(&f, not_tar[i].bytes, not_tar[i].len);
        if (not_tar[i].len > 10)
            fg_raw(&f, NULL, 1024);
        in_refused(&f, not_tar[i].says);
    }
}

static void test_in_sparse_map_checked(void **state)
{
    /* regions out of order: refused, nothing of the file written */
    struct forge f = {0};
    uint64_t regions[] = {8192, 10, 100, 10};
    fg_sparse(&f, "s", 1 << 20, regions, 2, 'z');
    fg_end(&f);
    struct sink s;
    int rc = run_in(&f, &s);
    fg_free(&f);
    fg_free(&s.out);
    assert_refused(rc, COCOON_E_INVALID, "\"s\"");

    /* more regions than kept: the rest crosses as data, the file stays the same */
    uint64_t *many = malloc(sizeof(uint64_t) * 2 * 5000);
    assert_non_null(many);
    for (int i = 0; i < 5000; i++) {
        many[2 * i] = (uint64_t)i * 100;
        many[2 * i + 1] = 1;
    }
    fg_sparse(&f, "m", 500000, many, 5000, 'm');
    fg_end(&f);
    free(many);
    in_ok(&f);
    fg_free(&f);
    size_t i = index_of("m");
    assert_int_equal(seen.e[i].size, 500000);
    assert_true(seen.stored[i] > 5000 && seen.stored[i] < 500000);
}

static void test_in_callbacks_fail(void **state)
{
    struct forge f = {0};
    fg_file(&f, "a", 0644, "aaaa");
    struct mem m = {f.buf, f.len, 0, 100, 1};
    struct sink s = {0};
    struct archive *w = sink_open(&s);
    memset(&err, 0, sizeof(err));
    assert_int_equal(tarfilter_in(mem_read, &m, w, &lim, warnings, sizeof(warnings), NULL, &err),
                     TARFILTER_SOURCE_FAILED);
    lib_tar_writer_free(w);
    fg_free(&s.out);

    fg_end(&f);
    struct mem m2 = {f.buf, f.len, 0, 100, 0};
    memset(&s, 0, sizeof(s));
    s.fail = 1;
    w = sink_open(&s);
    assert_int_equal(tarfilter_in(mem_read, &m2, w, &lim, warnings, sizeof(warnings), NULL, &err),
                     TARFILTER_SINK_FAILED);
    lib_tar_writer_free(w);
    fg_free(&f);
}

/* ---- out of a box ---- */

static int run_out(struct forge *f, const char *top, const char *out_top, struct sink *s)
{
    struct mem m = {f->buf, f->len, 0, 7001, 0};
    memset(s, 0, sizeof(*s));
    memset(&err, 0, sizeof(err));
    struct tar_reader r;
    assert_int_equal(tar_reader_init(&r, mem_read, &m), 0);
    struct archive *w = sink_open(s);
    int rc = tarfilter_out(&r, top, out_top, w, &lim, warnings, sizeof(warnings), NULL, &err);
    s->writes_by_filter = s->writes;
    if (rc == TARFILTER_OK)
        assert_int_equal(archive_write_close(w), ARCHIVE_OK);
    lib_tar_writer_free(w);
    tar_reader_free(&r);
    return rc;
}

static void out_ok(struct forge *f, const char *top, const char *out_top)
{
    struct sink s;
    int rc = run_out(f, top, out_top, &s);
    if (rc != TARFILTER_OK)
        fail_msg("refused: %s", err.message);
    read_back(&s.out);
    fg_free(&s.out);
    fg_free(f);
}

/* A refusal; returns how many writes reached the sink before it. */
static size_t out_refused(struct forge *f, int code, const char *needle)
{
    struct sink s;
    int rc = run_out(f, "x", "x", &s);
    assert_refused(rc, code, needle);
    fg_free(&s.out);
    fg_free(f);
    return s.writes_by_filter;
}

static void test_out_round_trip(void **state)
{
    struct forge f = {0};
    fg_dir(&f, "x/", 0700);
    fg_entry(&f, "x/tool", '0', 06755, "#!", 2, NULL);
    fg_symlink(&f, "x/latest", "tool");
    fg_symlink(&f, "x/passwd", "/etc/passwd");
    fg_symlink(&f, "x/up", "../../etc");
    fg_hardlink(&f, "x/again", "x/tool");
    fg_entry(&f, "x/null", '3', 0666, NULL, 0, NULL);
    fg_dir(&f, "x/sub/", 01777);
    uint64_t regions[] = {4096, 5};
    fg_sparse(&f, "x/sub/holes", 10ull << 30, regions, 1, 'h');
    fg_end(&f);
    out_ok(&f, "x", "renamed");
    assert_int_equal(seen.n, 6);
    assert_int_equal(seen.e[0].type, TAR_DIR);
    assert_string_equal(seen.e[0].path, "renamed/");
    assert_int_equal(seen.e[index_of("renamed/tool")].mode, 0755); /* no setuid for whoever extracts it */
    assert_int_equal(seen.e[index_of("renamed/sub")].mode, 0777);
    assert_string_equal(seen.e[index_of("renamed/latest")].link, "tool");
    assert_string_equal(seen.e[index_of("renamed/again")].link, "renamed/tool");
    assert_null(find("renamed/passwd"));
    assert_null(find("renamed/up"));
    assert_null(find("renamed/null"));
    size_t i = index_of("renamed/sub/holes");
    assert_true(seen.e[i].size == 10ull << 30 && seen.stored[i] == 5);
    assert_non_null(strstr(warnings, "renamed/passwd: symlink to \"/etc/passwd\" skipped"));
    assert_non_null(strstr(warnings, "renamed/null: device or FIFO skipped"));

    /* a single file, and any top name when the guest followed a symlink (top NULL) */
    fg_file(&f, "target.txt", 0640, "data");
    fg_end(&f);
    out_ok(&f, NULL, "link");
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.e[0].path, "link");
    assert_string_equal(seen.data[0], "data");
}

static void test_out_refusals(void **state)
{
    struct forge f = {0};
    fg_dir(&f, "x/", 0755);
    fg_file(&f, ".bashrc", 0644, "evil");
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "the guest sent the name \".bashrc\", which is not inside \"x\"");

    fg_dir(&f, "x/", 0755);
    fg_file(&f, "/etc/passwd", 0644, "evil");
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "\"/etc/passwd\", which is absolute");

    fg_dir(&f, "x/", 0755);
    fg_file(&f, "x/../y", 0644, "evil");
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "climbs out with \"..\"");

    fg_dir(&f, "x/", 0755);
    fg_file(&f, "x/a", 0644, "one");
    fg_symlink(&f, "x/a", "/etc/passwd");
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "the guest sent \"x/a\" twice");

    /* a symlink, then a "directory" of its name to write through: the name came already */
    fg_dir(&f, "x/", 0755);
    fg_symlink(&f, "x/l", ".");
    fg_dir(&f, "x/l/", 0755);
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "\"x/l\" twice");

    /* not depth-first: b's entry after the stream left b */
    fg_dir(&f, "x/", 0755);
    fg_dir(&f, "x/b/", 0755);
    fg_dir(&f, "x/c/", 0755);
    fg_file(&f, "x/b/late", 0644, "late");
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "outside the directory it was sending");

    /* entries under a symlink never pass: its name is not an open directory */
    fg_dir(&f, "x/", 0755);
    fg_symlink(&f, "x/l", "sub");
    fg_file(&f, "x/l/f", 0644, "evil");
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "outside the directory it was sending");

    fg_dir(&f, "x/", 0755);
    fg_file(&f, "x/f", 0644, "f");
    fg_hardlink(&f, "x/h", "etc/shadow");
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "hard link \"x/h\" to \"etc/shadow\", which is not a file of this copy");

    fg_dir(&f, "x/", 0755);
    fg_hardlink(&f, "x/h", "x");
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "which is not a file of this copy");

    fg_file(&f, "x", 0644, "f");
    fg_file(&f, "x/under", 0644, "f");
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "under its top, which is not a directory");

    fg_file(&f, "x", 0644, "f");
    fg_file(&f, "x", 0644, "f");
    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "\"x\" twice");

    fg_symlink(&f, "x", "/etc/passwd");
    fg_end(&f);
    out_refused(&f, COCOON_E_INVALID, "it is a symlink (to \"/etc/passwd\")");

    fg_end(&f);
    out_refused(&f, COCOON_E_PROTOCOL, "the guest sent an empty archive");

    fg_dir(&f, "x/", 0755);
    fg_file(&f, "x/a", 0644, "a");
    out_refused(&f, COCOON_E_PROTOCOL, "truncated");

    fg_dir(&f, "x/", 0755);
    fg_header(&f, "x/big", '0', 0644, 1ull << 40, NULL);
    out_refused(&f, COCOON_E_INVALID, "\"x/big\" (1099511627776 bytes) takes the copy above 17179869184 bytes");

    fg_dir(&f, "x/", 0755);
    for (int i = 0; i < 100; i++) {
        char n[16];
        snprintf(n, sizeof(n), "x/%d", i);
        fg_file(&f, n, 0644, "");
    }
    fg_end(&f);
    out_refused(&f, COCOON_E_INVALID, "more than 100 entries, the limit (raise it with MAXE)");
}

static void test_out_nothing_before_top(void **state)
{
    /* refusals at the first entry: not a byte reached the caller */
    struct forge f = {0};
    fg_file(&f, "y", 0644, "not what was asked for");
    fg_end(&f);
    assert_int_equal(out_refused(&f, COCOON_E_PROTOCOL, "does not start with \"x\""), 0);
    fg_entry(&f, "x", '3', 0644, NULL, 0, NULL);
    fg_end(&f);
    assert_int_equal(out_refused(&f, COCOON_E_PROTOCOL, "as a device, FIFO or hard link"), 0);
    fg_raw(&f, "junk", 4);
    assert_int_equal(out_refused(&f, COCOON_E_PROTOCOL, "bad archive"), 0);
}

/* ---- the rules themselves (tar_policy.c) ---- */

static void test_policy_names_and_book(void **state)
{
    char out[64];
    size_t n;
    assert_int_equal(tar_name_clean("./a//b/./c/", out, sizeof(out), &n), TAR_NAME_OK);
    assert_string_equal(out, "a/b/c");
    assert_int_equal(n, 3);
    assert_int_equal(tar_name_clean("./", out, sizeof(out), &n), TAR_NAME_OK);
    assert_true(n == 0 && out[0] == 0);
    assert_int_equal(tar_name_clean("/a", out, sizeof(out), &n), TAR_NAME_ABSOLUTE);
    assert_int_equal(tar_name_clean("a/b/..", out, sizeof(out), &n), TAR_NAME_DOTDOT);
    assert_int_equal(tar_name_clean("a/..b/c..", out, sizeof(out), &n), TAR_NAME_OK); /* not ".." itself */
    char longname[100];
    memset(longname, 'l', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(tar_name_clean(longname, out, sizeof(out), &n), TAR_NAME_TOO_LONG);
    static char deep[2 * (TAR_POLICY_MAX_DEPTH + 1) + 1], big[sizeof(deep)];
    for (size_t i = 0; i < TAR_POLICY_MAX_DEPTH + 1; i++)
        memcpy(deep + 2 * i, "d/", 2);
    assert_int_equal(tar_name_clean(deep, big, sizeof(big), &n), TAR_NAME_TOO_DEEP);
    deep[2 * TAR_POLICY_MAX_DEPTH] = 0;
    assert_int_equal(tar_name_clean(deep, big, sizeof(big), &n), TAR_NAME_OK);

    assert_true(tar_link_stays_inside("b/c", 0) && tar_link_stays_inside("../x", 1) &&
                tar_link_stays_inside("./../../x", 2));
    assert_false(tar_link_stays_inside("/x", 5) || tar_link_stays_inside("../x", 0) ||
                 tar_link_stays_inside("a/../../x", 3) || tar_link_stays_inside("x", -1));

    /* the book: many names, each found with its kind, others not; a kind replaced */
    struct tar_book b;
    assert_int_equal(tar_book_init(&b), 0);
    char name[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(name, sizeof(name), "dir/%d", i);
        assert_int_equal(tar_book_put(&b, name, strlen(name), i % 2 ? TAR_KIND_FILE : TAR_KIND_SYMLINK), 0);
    }
    assert_true(b.used == 100000 && b.cap <= 4 * 100000 && b.cap >= 2 * 100000);
    for (int i = 0; i < 100000; i++) {
        snprintf(name, sizeof(name), "dir/%d", i);
        assert_int_equal(tar_book_get(&b, name, strlen(name)), i % 2 ? TAR_KIND_FILE : TAR_KIND_SYMLINK);
        snprintf(name, sizeof(name), "other/%d", i);
        assert_int_equal(tar_book_get(&b, name, strlen(name)), TAR_KIND_NONE);
    }
    assert_int_equal(tar_book_put(&b, "dir/0", 5, TAR_KIND_DIR), 0);
    assert_int_equal(tar_book_get(&b, "dir/0", 5), TAR_KIND_DIR);
    assert_int_equal(tar_book_get(&b, "dir/01", 5), TAR_KIND_DIR); /* only len bytes count */
    assert_int_equal(tar_book_get(&b, "dir/", 4), TAR_KIND_NONE);
    assert_int_equal(b.used, 100000);
    tar_book_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_names_and_book),
        cmocka_unit_test(test_in_round_trip),
        cmocka_unit_test(test_in_dialects),
        cmocka_unit_test(test_in_refuses_names),
        cmocka_unit_test(test_in_symlinks),
        cmocka_unit_test(test_in_hardlinks_and_specials),
        cmocka_unit_test(test_in_bounds),
        cmocka_unit_test(test_in_truncated_and_not_tar),
        cmocka_unit_test(test_in_sparse_map_checked),
        cmocka_unit_test(test_in_callbacks_fail),
        cmocka_unit_test(test_out_round_trip),
        cmocka_unit_test(test_out_refusals),
        cmocka_unit_test(test_out_nothing_before_top),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
