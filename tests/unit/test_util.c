/* Unit tests of the shared host helpers (src/util): socket path limits, console
 * tails used in boot errors, tree removal that must never leave its tree, and
 * atomic file writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

static char tmp_root[PATH_MAX];

static int setup_tmp(void **state)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp_root, sizeof(tmp_root), "%s/cocoon-test-util.XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown_tmp(void **state) { return util_rm_rf(tmp_root); }

static void path_in(char *out, size_t cap, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", tmp_root, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_unix_path(void **state)
{
    char out[200];
    assert_int_equal(util_unix_path(7, "ctl.sock", out, sizeof(out)), 0);
    assert_string_equal(out, "/proc/self/fd/7/ctl.sock");
    /* sun_path holds 108 bytes with the NUL: 107 characters is the longest path. */
    char name[200];
    size_t prefix = strlen("/proc/self/fd/7/");
    memset(name, 'n', sizeof(name));
    name[107 - prefix] = 0;
    assert_int_equal(util_unix_path(7, name, out, sizeof(out)), 0);
    assert_int_equal(strlen(out), 107);
    name[107 - prefix] = 'n';
    name[108 - prefix] = 0;
    errno = 0;
    assert_int_equal(util_unix_path(7, name, out, sizeof(out)), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    /* The caller's buffer is a limit too. */
    char small[10];
    assert_int_equal(util_unix_path(7, "ctl.sock", small, sizeof(small)), -1);
    assert_int_equal(util_unix_path(7, "ctl.sock", out, strlen("/proc/self/fd/7/ctl.sock")), -1);
    assert_int_equal(util_unix_path(7, "ctl.sock", out, strlen("/proc/self/fd/7/ctl.sock") + 1), 0);
}

static void test_tail_lines(void **state)
{
    char path[PATH_MAX], out[512];
    path_in(path, sizeof(path), "console.log");
    write_text(path, "one\ntwo\nthree\nfour\nKernel panic - not syncing: no init\n\n");
    util_tail_lines(path, 2, " | ", out, sizeof(out));
    assert_string_equal(out, "four | Kernel panic - not syncing: no init");
    util_tail_lines(path, 1, " | ", out, sizeof(out));
    assert_string_equal(out, "Kernel panic - not syncing: no init");
    /* More lines asked than exist: the whole file. */
    util_tail_lines(path, 50, "/", out, sizeof(out));
    assert_string_equal(out, "one/two/three/four/Kernel panic - not syncing: no init");
    /* Non-printables become '?', CR is dropped, tabs kept. */
    write_text(path, "a\x01\x1b[0mb\r\nc\td\xc3\xa9\n");
    util_tail_lines(path, 5, " | ", out, sizeof(out));
    assert_string_equal(out, "a??[0mb | c\td??");
    /* Output is clipped to the buffer and NUL-terminated. */
    char small[5];
    util_tail_lines(path, 5, " | ", small, sizeof(small));
    assert_string_equal(small, "a??[");
    /* Missing and empty files give an empty string. */
    snprintf(out, sizeof(out), "junk");
    util_tail_lines("/nonexistent/console.log", 3, " | ", out, sizeof(out));
    assert_string_equal(out, "");
    write_text(path, "");
    snprintf(out, sizeof(out), "%s", "junk");
    util_tail_lines(path, 3, " | ", out, sizeof(out));
    assert_string_equal(out, "");
    /* Only the end of a big file is read. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 10000; i++)
        fprintf(f, "line %d\n", i);
    fclose(f);
    util_tail_lines(path, 3, ",", out, sizeof(out));
    assert_string_equal(out, "line 9997,line 9998,line 9999");
}

static void test_rm_rf_no_follow(void **state)
{
    char outside[PATH_MAX], keep[PATH_MAX + 16], tree[PATH_MAX], p[PATH_MAX + 64];
    path_in(outside, sizeof(outside), "outside");
    path_in(tree, sizeof(tree), "tree");
    assert_int_equal(mkdir(outside, 0755), 0);
    snprintf(keep, sizeof(keep), "%s/precious", outside);
    write_text(keep, "keep me\n");
    snprintf(p, sizeof(p), "%s/a/b/c", tree);
    assert_int_equal(util_mkdir_p(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/a/b/c/file", tree);
    write_text(p, "x");
    /* Symlinks to the outside dir and file at several depths, and a dangling one. */
    snprintf(p, sizeof(p), "%s/link-dir", tree);
    assert_int_equal(symlink(outside, p), 0);
    snprintf(p, sizeof(p), "%s/a/b/link-dir", tree);
    assert_int_equal(symlink(outside, p), 0);
    snprintf(p, sizeof(p), "%s/a/link-file", tree);
    assert_int_equal(symlink(keep, p), 0);
    snprintf(p, sizeof(p), "%s/a/dangling", tree);
    assert_int_equal(symlink("/nonexistent/x", p), 0);
    /* An unreadable-mode subdir is still removable by its owner's parent listing. */
    assert_int_equal(util_rm_rf(tree), 0);
    struct stat st;
    assert_int_equal(lstat(tree, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(stat(outside, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(stat(keep, &st), 0);
    assert_int_equal(st.st_size, 8);
    /* The top itself being a symlink: the link goes, its target stays. */
    snprintf(p, sizeof(p), "%s/top-link", tmp_root);
    assert_int_equal(symlink(outside, p), 0);
    assert_int_equal(util_rm_rf(p), 0);
    assert_int_equal(lstat(p, &st), -1);
    assert_int_equal(stat(keep, &st), 0);
    /* A missing path is not an error; a plain file is removed. */
    assert_int_equal(util_rm_rf("/nonexistent/cocoon/tree"), 0);
    assert_int_equal(util_rm_rf(keep), 0);
    assert_int_equal(stat(keep, &st), -1);
}

static void test_write_file_atomic(void **state)
{
    char path[PATH_MAX];
    path_in(path, sizeof(path), "config.json");
    const char *a = "{\"id\": \"3fa2c9e01b7d\"}\n";
    assert_int_equal(util_write_file_atomic(path, a, strlen(a)), 0);
    size_t len = 0;
    char *got = util_read_file(path, 1 << 20, &len);
    assert_non_null(got);
    assert_int_equal(len, strlen(a));
    assert_string_equal(got, a);
    free(got);
    /* Replacing keeps no temp file behind and swaps the inode (readers never see a
     * half-written file). */
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    static char big[200000];
    memset(big, 'z', sizeof(big));
    assert_int_equal(util_write_file_atomic(path, big, sizeof(big)), 0);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_size, sizeof(big));
    assert_true(before.st_ino != after.st_ino);
    got = util_read_file(path, sizeof(big) + 1, &len);
    assert_non_null(got);
    assert_int_equal(len, sizeof(big));
    free(got);
    /* util_read_file enforces its limit. */
    errno = 0;
    assert_null(util_read_file(path, 1000, &len));
    assert_int_equal(errno, EFBIG);
    /* Empty content. */
    assert_int_equal(util_write_file_atomic(path, "", 0), 0);
    got = util_read_file(path, 10, &len);
    assert_non_null(got);
    assert_int_equal(len, 0);
    free(got);
    /* A directory that does not exist fails cleanly. */
    assert_int_equal(util_write_file_atomic("/nonexistent/dir/file", "x", 1), -1);
    /* Nothing but config.json is left in the directory. */
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", tmp_root);
    assert_int_equal(system(cmd), 0);
}

/* "a whole file of at most max bytes": a file of exactly max bytes must be read. */
static void test_read_file_exact_max(void **state)
{
    char path[PATH_MAX];
    path_in(path, sizeof(path), "exact");
    static char buf[10000];
    memset(buf, 'q', sizeof(buf));
    assert_int_equal(util_write_file_atomic(path, buf, sizeof(buf)), 0);
    size_t len = 0;
    char *got = util_read_file(path, sizeof(buf), &len);
    assert_non_null(got);
    assert_int_equal(len, sizeof(buf));
    free(got);
    assert_null(util_read_file(path, sizeof(buf) - 1, &len));
}

static void test_mkdir_p(void **state)
{
    char p[PATH_MAX];
    path_in(p, sizeof(p), "x/y/z");
    assert_int_equal(util_mkdir_p(p, 0700), 0);
    assert_int_equal(util_mkdir_p(p, 0700), 0); /* exists: fine */
    assert_true(util_file_exists(p));
    path_in(p, sizeof(p), "x");
    assert_int_equal(util_rm_rf(p), 0);
    assert_false(util_file_exists(p));
}

/* vmm.log is the host's record: guest text in it (an agent's ERROR message) may not
 * start lines of its own nor carry terminal escapes. */
static void test_log_line_holds_guest_text(void **state)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    int saved = vmm_log_fd();
    vmm_log_set_fd(p[1]);
    vmm_log_guest("the agent reported an error: %s (code %u)",
                  "x\n2030-01-01T00:00:00.000Z [1] box ready in 1 ms\n\x1b[2J\x1b]0;t\x07\xff", 5u);
    vmm_log("plain %s", "text \xe2\x80\x94 kept");
    vmm_log_set_fd(saved);
    close(p[1]);
    char buf[4096];
    ssize_t n = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    assert_true(n > 0);
    buf[n] = 0;
    char *second = strchr(buf, '\n');
    assert_non_null(second);
    assert_non_null(strstr(second + 1, "plain text \xe2\x80\x94 kept\n")); /* valid UTF-8 stays */
    assert_ptr_equal(strchr(second + 1, '\n'), buf + n - 1);               /* two lines, no more */
    assert_null(strchr(buf, 0x1b));
    assert_null(strchr(buf, 0x07));
    assert_non_null(strstr(buf, "x\\n2030-01-01"));
}

/* The reference vectors of SipHash-2-4 (key 00..0f, message 00..n-1), and a key that
 * changes the hash. */
static void test_siphash_vectors(void **state)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    assert_true(util_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ull);
    assert_true(util_siphash(key, msg, 1) == 0x74f839c593dc67fdull);
    assert_true(util_siphash(key, msg, 7) == 0xab0200f58b01d137ull);
    assert_true(util_siphash(key, msg, 8) == 0x93f5f5799a932462ull);
    assert_true(util_siphash(key, msg, 15) == 0xa129ca6149be45e5ull);
    assert_true(util_siphash(key, msg, 63) == 0x958a324ceb064572ull);
    key[0] ^= 1;
    assert_true(util_siphash(key, msg, 15) != 0xa129ca6149be45e5ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unix_path),
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_log_line_holds_guest_text),
        cmocka_unit_test_setup_teardown(test_tail_lines, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_rm_rf_no_follow, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_write_file_atomic, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_read_file_exact_max, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_mkdir_p, setup_tmp, teardown_tmp),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
