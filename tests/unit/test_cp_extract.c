/* Unit tests of the host side of `cocoon cp BOX:X DIR` (src/lib/tar_reader.c and
 * src/lib/extract.c) fed forged tar streams: what a hostile guest agent could send.
 * Each refused case checks the destination afterwards: nothing outside the one name
 * asked for, no partial file, no staging directory left, files next to it untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/extract.h"
#include "lib/tar_reader.h"
#include "tar_forge.h"
#include "util/util.h"
#include "support/fixture.h"
#include "support/tmpdir.h"

static char root[PATH_MAX], dest[PATH_MAX + 16], victim[PATH_MAX + 16];
static char warnings[1024];
static cocoon_error err;

static int setup(void **state)
{
    if (test_tmpdir(root, sizeof(root), "cocoon-test-cp") < 0)
        return -1;
    snprintf(dest, sizeof(dest), "%s/dest", root);
    snprintf(victim, sizeof(victim), "%s/victim", root);
    umask(022);
    if (mkdir(dest, 0755) < 0)
        return -1;
    FILE *f = fopen(victim, "w");
    if (!f)
        return -1;
    fputs("precious\n", f);
    fclose(f);
    return 0;
}

static int teardown(void **state) { return util_rm_rf(root); }

/* ---- feeding the reader ---- */

struct mem {
    const uint8_t *p;
    size_t len, off, chunk;
};

static long mem_read(void *arg, void *buf, size_t cap)
{
    struct mem *m = arg;
    size_t k = m->len - m->off;
    if (k > cap)
        k = cap;
    if (k > m->chunk)
        k = m->chunk;
    memcpy(buf, m->p + m->off, k);
    m->off += k;
    return (long)k;
}

static uint64_t max_bytes = 1 << 20, max_entries = 100;

/* Extracts the forged stream as a copy of top into dest under final (NULL: top). */
static int run_named(struct forge *f, const char *top, const char *final)
{
    struct mem m = {f->buf, f->len, 0, 7001}; /* odd chunks cross every boundary */
    struct tar_reader r;
    assert_int_equal(tar_reader_init(&r, mem_read, &m), 0);
    struct extract_job job = {dest, top, final ? final : top, max_bytes, max_entries, "MAXB", "MAXE", NULL, NULL};
    memset(&err, 0, sizeof(err));
    int rc = extract_tar(&r, &job, warnings, sizeof(warnings), NULL, &err);
    tar_reader_free(&r);
    fg_free(f);
    return rc;
}

static int run(struct forge *f, const char *top) { return run_named(f, top, NULL); }

static void path_of(char *out, size_t cap, const char *rel) { snprintf(out, cap, "%s/%s", dest, rel); }

static struct stat lstat_rel(const char *rel)
{
    char p[PATH_MAX * 2];
    struct stat st;
    path_of(p, sizeof(p), rel);
    if (lstat(p, &st) < 0)
        fail_msg("%s missing: %s", rel, strerror(errno));
    return st;
}

static int exists_rel(const char *rel)
{
    char p[PATH_MAX * 2];
    struct stat st;
    path_of(p, sizeof(p), rel);
    return lstat(p, &st) == 0;
}

static char *read_rel(const char *rel)
{
    char p[PATH_MAX * 2];
    path_of(p, sizeof(p), rel);
    char *s = util_read_file(p, 1 << 20, NULL);
    if (!s)
        fail_msg("cannot read %s", rel);
    return s;
}

/* dest holds exactly the names listed (NULL-terminated), nothing else. */
static void assert_dest_holds(const char *const *names)
{
    DIR *d = opendir(dest);
    assert_non_null(d);
    struct dirent *de;
    size_t seen = 0, want = 0;
    while (names[want])
        want++;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        int listed = 0;
        for (size_t i = 0; names[i]; i++)
            listed |= !strcmp(names[i], de->d_name);
        if (!listed)
            fail_msg("unexpected \"%s\" in the destination", de->d_name);
        seen++;
    }
    closedir(d);
    assert_int_equal(seen, want);
    char *v = util_read_file(victim, 100, NULL);
    assert_string_equal(v, "precious\n");
    free(v);
}

static const char *const EMPTY[] = {NULL};

static void assert_refused(int rc, int code, const char *needle)
{
    if (rc == 0 || err.code != code || !strstr(err.message, needle))
        fail_msg("expected refusal %d with \"%s\", got rc=%d code=%d \"%s\"", code, needle, rc, err.code, err.message);
    for (const char *c = err.message; *c; c++)
        assert_true((unsigned char)*c >= 0x20 && *c != 0x7f); /* one printable line */
}

/* ---- a well-formed copy ---- */

static void test_tree(void **state)
{
    struct forge f = {0};
    fg_dir(&f, "x/", 0755);
    fg_file(&f, "x/a.txt", 0644, "hello\n");
    fg_dir(&f, "x/sub/", 0751);
    fg_file(&f, "x/sub/run.sh", 0750, "#!/bin/sh\n");
    fg_symlink(&f, "x/sub/up", "../a.txt");
    fg_symlink(&f, "x/sub/dangling", "missing");
    fg_hardlink(&f, "x/hard", "x/a.txt");
    fg_file(&f, "x/empty", 0600, "");
    uint64_t regions[] = {0, 10, 5000, 3, 8192, 0};
    fg_sparse(&f, "x/sparse", 8192, regions, 3, 's');
    char longname[300] = "x/";
    memset(longname + 2, 'n', 200);
    fg_file(&f, longname, 0644, "long");
    fg_end(&f);
    assert_int_equal(run(&f, "x"), 0);
    assert_string_equal(warnings, "");
    const char *const only_x[] = {"x", NULL};
    assert_dest_holds(only_x);
    char *s = read_rel("x/a.txt");
    assert_string_equal(s, "hello\n");
    free(s);
    assert_int_equal(lstat_rel("x/sub").st_mode & 07777, 0751);
    assert_int_equal(lstat_rel("x/sub/run.sh").st_mode & 07777, 0750);
    assert_int_equal(lstat_rel("x/a.txt").st_mtime, 1600000000);
    assert_int_equal(lstat_rel("x").st_mtime, 1600000000);
    char target[64] = "";
    char p[PATH_MAX * 2];
    path_of(p, sizeof(p), "x/sub/up");
    assert_int_equal(readlink(p, target, sizeof(target)), 8);
    assert_memory_equal(target, "../a.txt", 8);
    assert_int_equal(lstat_rel("x/hard").st_ino, lstat_rel("x/a.txt").st_ino);
    struct stat sp = lstat_rel("x/sparse");
    assert_int_equal(sp.st_size, 8192);
    s = read_rel("x/sparse");
    assert_memory_equal(s, "ssssssssss\0", 11);
    assert_memory_equal(s + 5000, "sss", 3);
    free(s);
    assert_true(exists_rel(longname));
}

static void test_rename_and_single_file(void **state)
{
    struct forge f = {0};
    fg_file(&f, "file.txt", 0640, "data");
    fg_end(&f);
    assert_int_equal(run_named(&f, "file.txt", "renamed"), 0);
    const char *const only[] = {"renamed", NULL};
    assert_dest_holds(only);
    assert_int_equal(lstat_rel("renamed").st_mode & 07777, 0640);
}

/* ---- names outside the one asked for ---- */

static void test_refuses_names_outside_top(void **state)
{
    static const char *const bad[] = {".bashrc", ".ssh/authorized_keys", ".git/hooks/pre-commit", "y", "xx/a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct forge f = {0};
        fg_dir(&f, "x/", 0755);
        fg_file(&f, "x/ok", 0644, "fine");
        if (strchr(bad[i], '/')) {
            char d[64];
            snprintf(d, sizeof(d), "%.*s", (int)(strchr(bad[i], '/') - bad[i]), bad[i]);
            fg_dir(&f, d, 0755);
        }
        fg_file(&f, bad[i], 0644, "evil");
        fg_end(&f);
        assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "which is not inside \"x\"");
        assert_dest_holds(EMPTY);
    }
    /* the first entry already outside */
    struct forge f = {0};
    fg_file(&f, ".bashrc", 0644, "evil");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "\".bashrc\", which is not inside");
    assert_dest_holds(EMPTY);
}

static void test_refuses_absolute_and_dotdot(void **state)
{
    struct forge f = {0};
    fg_dir(&f, "x/", 0755);
    fg_file(&f, "/etc/passwd", 0644, "evil");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "absolute name \"/etc/passwd\"");
    assert_dest_holds(EMPTY);

    memset(&f, 0, sizeof(f));
    fg_dir(&f, "x/", 0755);
    fg_file(&f, "x/../victim", 0644, "evil");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "climbs out with \"..\"");
    assert_dest_holds(EMPTY);
}

static void test_escapes_names_in_messages(void **state)
{
    struct forge f = {0};
    fg_file(&f, "\x1b]0;owned\x07\n\x1b[2Jcocoon: ok", 0644, "evil");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "\\x1b]0;owned\\x07\\n\\x1b[2Jcocoon: ok");
    assert_dest_holds(EMPTY);
}

/* ---- symlinks, hard links, special files ---- */

static void test_symlinks_never_followed_nor_left_pointing_out(void **state)
{
    struct forge f = {0};
    fg_dir(&f, "x/", 0755);
    fg_symlink(&f, "x/passwd", "/etc/passwd");
    fg_symlink(&f, "x/up", "../../victim");
    fg_symlink(&f, "x/self", "..");
    fg_dir(&f, "x/d/", 0755);
    fg_symlink(&f, "x/d/back", "../ok");         /* stays inside: kept */
    fg_symlink(&f, "x/d/sneaky", "e/../../..x"); /* ".." after a name: could climb through a link */
    fg_file(&f, "x/ok", 0644, "ok");
    fg_end(&f);
    assert_int_equal(run(&f, "x"), 0);
    assert_non_null(strstr(warnings, "x/passwd: symlink to \"/etc/passwd\" skipped"));
    assert_non_null(strstr(warnings, "x/up: symlink"));
    assert_non_null(strstr(warnings, "x/self: symlink"));
    assert_non_null(strstr(warnings, "x/d/sneaky: symlink"));
    assert_false(exists_rel("x/passwd"));
    assert_false(exists_rel("x/up"));
    assert_false(exists_rel("x/self"));
    assert_false(exists_rel("x/d/sneaky"));
    assert_true(S_ISLNK(lstat_rel("x/d/back").st_mode));
    const char *const only_x[] = {"x", NULL};
    assert_dest_holds(only_x);
}

static void test_refuses_writes_through_symlinks(void **state)
{
    /* a symlink inside the copy, then an entry "through" it */
    struct forge f = {0};
    fg_dir(&f, "x/", 0755);
    fg_dir(&f, "x/real/", 0755);
    fg_symlink(&f, "x/s", "real");
    fg_file(&f, "x/s/file", 0644, "evil");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "outside the directory it was sending");
    assert_dest_holds(EMPTY);

    /* the same name twice: a symlink, then a file "over" it */
    memset(&f, 0, sizeof(f));
    fg_dir(&f, "x/", 0755);
    fg_symlink(&f, "x/f", "inner");
    fg_file(&f, "x/f", 0644, "evil");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "sent \"x/f\" twice");
    assert_dest_holds(EMPTY);

    /* the top itself as a symlink: the copy would point outside */
    memset(&f, 0, sizeof(f));
    fg_symlink(&f, "x", "/etc/passwd");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_INVALID, "it is a symlink (to \"/etc/passwd\")");
    assert_dest_holds(EMPTY);
}

static void test_hardlinks_only_inside_the_copy(void **state)
{
    static const char *const bad[] = {"../victim", "/etc/passwd", "y/a", "x/missing", "x/d", "x/l"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct forge f = {0};
        fg_dir(&f, "x/", 0755);
        fg_dir(&f, "x/d/", 0755);
        fg_symlink(&f, "x/l", "d");
        fg_hardlink(&f, "x/h", bad[i]);
        fg_end(&f);
        int rc = run(&f, "x");
        assert_int_equal(rc, -1);
        assert_int_equal(err.code, COCOON_E_PROTOCOL);
        assert_dest_holds(EMPTY);
    }
}

static void test_skips_devices_and_fifos(void **state)
{
    struct forge f = {0};
    fg_dir(&f, "x/", 0755);
    fg_entry(&f, "x/null", '3', 0666, NULL, 0, NULL);
    fg_entry(&f, "x/sda", '4', 0660, NULL, 0, NULL);
    fg_entry(&f, "x/fifo", '6', 0600, NULL, 0, NULL);
    fg_end(&f);
    assert_int_equal(run(&f, "x"), 0);
    assert_non_null(strstr(warnings, "x/null: device or FIFO skipped"));
    assert_false(exists_rel("x/null") || exists_rel("x/sda") || exists_rel("x/fifo"));

    memset(&f, 0, sizeof(f));
    fg_entry(&f, "y", '6', 0600, NULL, 0, NULL);
    fg_end(&f);
    assert_refused(run(&f, "y"), COCOON_E_PROTOCOL, "as a device");
    const char *const only_x[] = {"x", NULL};
    assert_dest_holds(only_x);
}

/* ---- modes ---- */

static void test_modes_lose_special_bits_and_follow_umask(void **state)
{
    struct forge f = {0};
    fg_dir(&f, "x/", 01777);
    fg_file(&f, "x/suid", 06777, "s");
    fg_dir(&f, "x/ro/", 0555);
    fg_file(&f, "x/ro/w", 0666, "w");
    fg_end(&f);
    assert_int_equal(run(&f, "x"), 0);
    assert_int_equal(lstat_rel("x").st_mode & 07777, 0755);
    assert_int_equal(lstat_rel("x/suid").st_mode & 07777, 0755);
    assert_int_equal(lstat_rel("x/ro").st_mode & 07777, 0755); /* u+rwx kept: the copy stays the caller's */
    assert_int_equal(lstat_rel("x/ro/w").st_mode & 07777, 0644);
    assert_int_equal(lstat_rel("x/suid").st_uid, getuid());

    mode_t old = umask(077);
    memset(&f, 0, sizeof(f));
    fg_dir(&f, "y/", 0777);
    fg_file(&f, "y/f", 0666, "f");
    fg_end(&f);
    assert_int_equal(run(&f, "y"), 0);
    umask(old);
    assert_int_equal(lstat_rel("y").st_mode & 07777, 0700);
    assert_int_equal(lstat_rel("y/f").st_mode & 07777, 0600);
}

/* ---- bounds ---- */

static void test_bounds(void **state)
{
    char big[5000];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    max_bytes = 6000;
    struct forge f = {0};
    fg_dir(&f, "x/", 0755);
    fg_file(&f, "x/1", 0644, big);
    fg_file(&f, "x/2", 0644, big);
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_INVALID, "above 6000 bytes, the limit (raise it with MAXB)");
    assert_dest_holds(EMPTY);

    /* a sparse file counts its whole size */
    memset(&f, 0, sizeof(f));
    uint64_t regions[] = {0, 1, 10ull << 30, 0};
    fg_sparse(&f, "x", 10ull << 30, regions, 2, 'z');
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_INVALID, "(10737418240 bytes)");
    assert_dest_holds(EMPTY);
    max_bytes = 1 << 20;

    max_entries = 10;
    memset(&f, 0, sizeof(f));
    fg_dir(&f, "x/", 0755);
    for (int i = 0; i < 20; i++) {
        char n[32];
        snprintf(n, sizeof(n), "x/f%d", i);
        fg_file(&f, n, 0644, "");
    }
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_INVALID, "more than 10 entries, the limit (raise it with MAXE)");
    assert_dest_holds(EMPTY);
    max_entries = 100;
}

/* ---- broken or lying streams ---- */

static void test_truncated_leaves_nothing(void **state)
{
    char data[3000];
    memset(data, 'd', sizeof(data));
    struct forge f = {0};
    fg_dir(&f, "x/", 0755);
    fg_entry(&f, "x/partial", '0', 0644, data, sizeof(data), NULL);
    f.len -= 2048; /* cut inside the file's data */
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "truncated");
    assert_dest_holds(EMPTY);

    memset(&f, 0, sizeof(f));
    fg_file(&f, "x", 0644, "whole");
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "without its end-of-archive"); /* no end blocks */
    assert_dest_holds(EMPTY);
}

static void test_lying_headers(void **state)
{
    /* data on a directory */
    struct forge f = {0};
    fg_entry(&f, "x/", '5', 0755, "data", 4, NULL);
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "carries data");

    /* an unknown type, a GNU long name, a global pax header */
    static const char types[] = {'7', 'L', 'g', 'V'};
    for (size_t i = 0; i < sizeof(types); i++) {
        memset(&f, 0, sizeof(f));
        fg_entry(&f, "x", types[i], 0644, NULL, 0, NULL);
        fg_end(&f);
        assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "unsupported tar entry type");
    }

    /* a bad checksum */
    memset(&f, 0, sizeof(f));
    fg_file(&f, "x", 0644, "a");
    f.buf[0] = 'y';
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "bad checksum");

    /* a pax header past its bound */
    memset(&f, 0, sizeof(f));
    fg_header(&f, "././@PaxHeader", 'x', 0644, TAR_PAX_MAX + 1, NULL);
    fg_raw(&f, NULL, TAR_PAX_MAX + 512);
    fg_file(&f, "x", 0644, "a");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "pax extended header larger than");

    /* sparse maps: too many regions, overlapping, beyond the size, lying about data */
    uint64_t *many = calloc(2 * (TAR_SEGMENTS_MAX + 1), sizeof(*many));
    for (size_t i = 0; i <= TAR_SEGMENTS_MAX; i++)
        many[2 * i] = 2 * i, many[2 * i + 1] = 1;
    memset(&f, 0, sizeof(f));
    fg_sparse(&f, "x", 3 * (TAR_SEGMENTS_MAX + 1), many, TAR_SEGMENTS_MAX + 1, 'm');
    fg_end(&f);
    free(many);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "regions (at most 4096)");
    uint64_t overlap[] = {0, 10, 5, 10};
    memset(&f, 0, sizeof(f));
    fg_sparse(&f, "x", 100, overlap, 2, 'o');
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "overlap");
    uint64_t beyond[] = {90, 20};
    memset(&f, 0, sizeof(f));
    fg_sparse(&f, "x", 100, beyond, 1, 'o');
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "beyond the file's size");
    char rec[512] = "";
    fg_rec(rec, sizeof(rec), "GNU.sparse.map", "0,1");
    memset(&f, 0, sizeof(f));
    fg_pax(&f, rec);
    fg_file(&f, "x", 0644, "a");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "only GNU sparse 1.0");
    assert_dest_holds(EMPTY);

    /* an empty archive, and entries before the top */
    memset(&f, 0, sizeof(f));
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "empty archive");
    memset(&f, 0, sizeof(f));
    fg_file(&f, "x/a", 0644, "a");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "does not start with \"x\"");
    memset(&f, 0, sizeof(f));
    fg_dir(&f, "x/", 0755);
    fg_dir(&f, "x/a/", 0755);
    fg_dir(&f, "x/b/", 0755);
    fg_file(&f, "x/a/late", 0644, "a"); /* back into a finished directory */
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_PROTOCOL, "outside the directory it was sending");
    assert_dest_holds(EMPTY);
}

/* ---- into an existing destination ---- */

static void test_existing_destination(void **state)
{
    char p[PATH_MAX * 2];
    /* a symlink of the user's at the name: replaced, never written through */
    path_of(p, sizeof(p), "f");
    assert_int_equal(symlink(victim, p), 0);
    struct forge f = {0};
    fg_file(&f, "f", 0644, "new");
    fg_end(&f);
    assert_int_equal(run(&f, "f"), 0);
    assert_false(S_ISLNK(lstat_rel("f").st_mode));
    char *s = read_rel("f");
    assert_string_equal(s, "new");
    free(s);

    /* an existing directory receives the entries; its other files stay */
    path_of(p, sizeof(p), "x");
    assert_int_equal(mkdir(p, 0700), 0);
    path_of(p, sizeof(p), "x/mine");
    assert_int_equal(util_write_file_atomic(p, "mine", 4), 0);
    path_of(p, sizeof(p), "x/old");
    assert_int_equal(util_write_file_atomic(p, "old", 3), 0);
    memset(&f, 0, sizeof(f));
    fg_dir(&f, "x/", 0755);
    fg_file(&f, "x/old", 0644, "replaced");
    fg_dir(&f, "x/new/", 0755);
    fg_file(&f, "x/new/n", 0644, "n");
    fg_end(&f);
    assert_int_equal(run(&f, "x"), 0);
    s = read_rel("x/old");
    assert_string_equal(s, "replaced");
    free(s);
    s = read_rel("x/mine");
    assert_string_equal(s, "mine");
    free(s);
    assert_true(exists_rel("x/new/n"));

    /* a directory over a file or a file over a directory: refused before anything moves */
    memset(&f, 0, sizeof(f));
    fg_dir(&f, "x/", 0755);
    fg_file(&f, "x/aaa-first", 0644, "would be first");
    fg_dir(&f, "x/mine/", 0755);
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_IO, "x/mine\" exists here and is not a directory");
    assert_false(exists_rel("x/aaa-first"));
    memset(&f, 0, sizeof(f));
    fg_file(&f, "x", 0644, "file over dir");
    fg_end(&f);
    assert_refused(run(&f, "x"), COCOON_E_IO, "is a directory here");
    const char *const left[] = {"f", "x", NULL};
    assert_dest_holds(left);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree),
        cmocka_unit_test(test_rename_and_single_file),
        cmocka_unit_test(test_refuses_names_outside_top),
        cmocka_unit_test(test_refuses_absolute_and_dotdot),
        cmocka_unit_test(test_escapes_names_in_messages),
        cmocka_unit_test(test_symlinks_never_followed_nor_left_pointing_out),
        cmocka_unit_test(test_refuses_writes_through_symlinks),
        cmocka_unit_test(test_hardlinks_only_inside_the_copy),
        cmocka_unit_test(test_skips_devices_and_fifos),
        cmocka_unit_test(test_modes_lose_special_bits_and_follow_umask),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_truncated_leaves_nothing),
        cmocka_unit_test(test_lying_headers),
        cmocka_unit_test(test_existing_destination),
    };
    return run_tests_with_fixture(tests, setup, teardown);
}
