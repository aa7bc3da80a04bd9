/* net.log rotation: the stack renames net.log to net.log.1 above its size bound and
 * keeps writing the latest denials to a new net.log (total disk use bounded), and the
 * reader behind `cocoon logs --net` shows the old part first and, following, keeps up
 * across rotations without losing or repeating a line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/internal.h"
#include "net_harness.h"

static char dir[] = "/tmp/cocoon-net-log-XXXXXX";
static char path[128], old[128];
static int dirfd_, logfd;

/* Denial n: one UDP datagram to 10.9.9.9:(1000 + n) (not public), one line of net.log. */
static void deny(struct harness *h, unsigned n) { h_send_udp(h, 0x0a090909u, 40000, (uint16_t)(1000 + n), "x", 1); }

static off_t size_of(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? st.st_size : -1;
}

static void start(struct harness *h)
{
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/net.log", dir);
    snprintf(old, sizeof(old), "%s/net.log.1", dir);
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    logfd = openat(dirfd_, "net.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    assert_true(dirfd_ >= 0 && logfd >= 0);
    h_init_cfg(h);
    setenv("COCOON_NET_LOG_MAX", "1024", 1);
    net_config_log(&h->cfg, logfd, dirfd_);
    unsetenv("COCOON_NET_LOG_MAX");
    assert_int_equal(h->cfg.log_max_bytes, 1024);
    h_start(h);
    assert_non_null(h->s);
}

static void stop(struct harness *h)
{
    h_stop(h);
    close(logfd);
    close(dirfd_);
    unlink(path);
    unlink(old);
    rmdir(dir);
    memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

/* Reads what lib_rotating_copy writes to a temporary file. */
static char *copy_all(int (*more)(void *), void *arg)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(lib_rotating_copy(path, old, fileno(f), more, arg), 0);
    long n = lseek(fileno(f), 0, SEEK_END);
    char *s = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(fileno(f), s, (size_t)n, 0), n);
    fclose(f);
    return s;
}

/* Checks that out holds the denials of ports first..last, each once and in order. */
static void check_sequence(const char *out, unsigned first, unsigned last)
{
    const char *p = out;
    unsigned want = first;
    while ((p = strstr(p, "-> 10.9.9.9:"))) {
        unsigned port = (unsigned)strtoul(p + 12, NULL, 10) - 1000;
        assert_int_equal(port, want);
        want++;
        p++;
    }
    assert_int_equal(want, last + 1);
}

static void test_rotation_keeps_latest(void **state)
{
    (void)state;
    struct harness h;
    start(&h);
    for (unsigned i = 1; i <= 200; i++)
        deny(&h, i);
    assert_int_equal(net_stack_stats(h.s)->denied_udp, 200);
    assert_true(net_stack_stats(h.s)->log_rotations >= 10);
    /* both files exist, each within the bound: the disk use stays bounded */
    assert_true(size_of(path) > 0 && size_of(path) <= 1024);
    assert_true(size_of(old) > 0 && size_of(old) <= 1024);
    /* the whole log: net.log.1 then net.log, ending with the latest denial */
    char *out = copy_all(NULL, NULL);
    const char *first = strstr(out, "-> 10.9.9.9:");
    assert_non_null(first);
    unsigned from = (unsigned)strtoul(first + 12, NULL, 10) - 1000;
    assert_true(from > 100);
    check_sequence(out, from, 200);
    free(out);
    /* the writer keeps its fd number (the caller closes it), now on the new net.log */
    struct stat a, b;
    assert_int_equal(fstat(logfd, &a), 0);
    assert_int_equal(stat(path, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    stop(&h);
}

struct follow {
    struct harness *h;
    unsigned next, last, rounds;
};

/* Called by the follower between reads: writes a few denials (sometimes enough to
 * rotate), until last is written; then one more round lets it read the end. */
static int more(void *arg)
{
    struct follow *f = arg;
    if (f->next > f->last)
        return f->rounds++ < 1;
    for (int i = 0; i < 3 && f->next <= f->last; i++)
        deny(f->h, f->next++);
    return 1;
}

static void test_follow_survives_rotation(void **state)
{
    (void)state;
    struct harness h;
    start(&h);
    for (unsigned i = 1; i <= 5; i++)
        deny(&h, i);
    struct follow f = {&h, 6, 120, 0};
    char *out = copy_all(more, &f);
    assert_true(net_stack_stats(h.s)->log_rotations >= 3);
    check_sequence(out, 1, 120); /* nothing lost, nothing twice */
    free(out);
    /* a log that was never rotated and one that does not exist yet */
    stop(&h);
    start(&h);
    unlink(path);
    out = copy_all(NULL, NULL);
    assert_string_equal(out, "");
    free(out);
    stop(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotation_keeps_latest),
        cmocka_unit_test(test_follow_survives_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
