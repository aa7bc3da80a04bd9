/* Unit tests of a box's health check files (src/boxcfg/healthspec.c): durations both
 * ways and their refusals, the failure actions, health.json written and read back with
 * its bounds, and health.state.json: results kept to the last five, guest output cut to
 * 4 KiB and made printable UTF-8, and damaged files refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boxcfg/healthspec.h"
#include "support/tmpdir.h"
#include "util/util.h"

static char dir[PATH_MAX];
static char why[512];

static int setup(void **state)
{
    (void)state;
    return test_tmpdir(dir, sizeof(dir), "cocoon-test-healthspec");
}

static int teardown(void **state)
{
    (void)state;
    return util_rm_rf(dir);
}

static uint32_t dur(const char *text)
{
    uint32_t ms = 12345;
    assert_int_equal(health_duration_parse(text, "--x", &ms, why, sizeof(why)), 0);
    return ms;
}

static void test_durations(void **unused)
{
    (void)unused;
    assert_int_equal(dur("30s"), 30000);
    assert_int_equal(dur("30"), 30000);
    assert_int_equal(dur("1m30s"), 90000);
    assert_int_equal(dur("500ms"), 500);
    assert_int_equal(dur("1.5s"), 1500);
    assert_int_equal(dur("2h"), 7200000);
    assert_int_equal(dur("1h1m1s1ms"), 3661001);
    assert_int_equal(dur("0"), 0);
    assert_int_equal(dur("24h"), HEALTH_DURATION_MAX_MS);
    const char *bad[] = {"", "s", "1x", "1s2", "-1s", "1.s5", "25h", "99999999999999999999s", "1 s", "1.5.5s", NULL};
    for (int i = 0; bad[i]; i++) {
        uint32_t ms = 7;
        assert_int_equal(health_duration_parse(bad[i], "--health-interval", &ms, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "--health-interval"));
        assert_int_equal(ms, 7); /* untouched */
    }
    assert_int_equal(health_duration_parse(NULL, "--x", &(uint32_t){0}, why, sizeof(why)), -1);
    char out[32];
    const struct {
        uint32_t ms;
        const char *text;
    } fmt[] = {{30000, "30s"}, {90000, "1m30s"}, {1500, "1.500s"}, {0, "0s"}, {7200000, "2h"}, {3661001, "1h1m1.001s"}};
    for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
        health_duration_format(fmt[i].ms, out, sizeof(out));
        assert_string_equal(out, fmt[i].text);
        assert_int_equal(dur(out), fmt[i].ms); /* what is shown reads back */
    }
}

static void test_on_failure(void **unused)
{
    (void)unused;
    enum health_on_failure f;
    assert_int_equal(health_on_failure_parse(NULL, &f, why, sizeof(why)), 0);
    assert_int_equal(f, HEALTH_ON_FAILURE_NONE);
    assert_int_equal(health_on_failure_parse("stop", &f, why, sizeof(why)), 0);
    assert_int_equal(f, HEALTH_ON_FAILURE_STOP);
    assert_int_equal(health_on_failure_parse("restart", &f, why, sizeof(why)), 0);
    assert_string_equal(health_on_failure_name(f), "restart");
    assert_int_equal(health_on_failure_parse("kill", &f, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "none, restart or stop"));
}

static void test_spec_written_and_read_back(void **unused)
{
    (void)unused;
    int dfd = open(dir, O_PATH | O_DIRECTORY);
    assert_true(dfd >= 0);
    struct health_spec s = {0};
    assert_int_equal(health_spec_read(dfd, &s, why, sizeof(why)), 0); /* none yet */
    char *argv[] = {"/bin/sh", "-c", "curl -f localhost || exit 1", NULL};
    struct health_spec w = {.argv = argv,
                            .interval_ms = 1000,
                            .timeout_ms = 2000,
                            .start_period_ms = 0,
                            .retries = 4,
                            .on_failure = HEALTH_ON_FAILURE_STOP};
    assert_int_equal(health_spec_write(dfd, &w, why, sizeof(why)), 0);
    assert_int_equal(health_spec_read(dfd, &s, why, sizeof(why)), 1);
    assert_string_equal(s.argv[2], "curl -f localhost || exit 1");
    assert_null(s.argv[3]);
    assert_int_equal(s.interval_ms, 1000);
    assert_int_equal(s.timeout_ms, 2000);
    assert_int_equal(s.retries, 4);
    assert_int_equal(s.on_failure, HEALTH_ON_FAILURE_STOP);
    health_spec_free(&s);
    /* below the bounds: refused on the way out, nothing written over the good file */
    w.interval_ms = 999;
    assert_int_equal(health_spec_write(dfd, &w, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "1s to 24h"));
    assert_int_equal(health_spec_read(dfd, &s, why, sizeof(why)), 1);
    assert_int_equal(s.interval_ms, 1000);
    health_spec_free(&s);
    close(dfd);
}

static void test_spec_refusals(void **unused)
{
    (void)unused;
    struct health_spec s;
    const char *bad[] = {
        "[]",
        "{\"argv\":[]}",
        "{\"argv\":\"true\"}",
        "{\"argv\":[\"true\"],\"interval_ms\":10}",
        "{\"argv\":[\"true\"],\"timeout_ms\":0}",
        "{\"argv\":[\"true\"],\"retries\":0}",
        "{\"argv\":[\"true\"],\"retries\":1001}",
        "{\"argv\":[\"true\"],\"interval_ms\":86400001}",
        "{\"argv\":[\"true\"],\"on_failure\":\"explode\"}",
        "{\"argv\":[\"true\"],\"on_failure\":3}",
        "{\"argv\":[\"t\\u0000rue\"]}",
        "{\"argv\":[\"true\"],\"argv\":[\"false\"]}",
        NULL,
    };
    for (int i = 0; bad[i]; i++)
        assert_int_equal(health_spec_parse(bad[i], strlen(bad[i]), &s, why, sizeof(why)), -1);
    const char *defaults = "{\"argv\":[\"true\"]}";
    assert_int_equal(health_spec_parse(defaults, strlen(defaults), &s, why, sizeof(why)), 0);
    assert_int_equal(s.interval_ms, HEALTH_INTERVAL_DEFAULT_MS);
    assert_int_equal(s.timeout_ms, HEALTH_TIMEOUT_DEFAULT_MS);
    assert_int_equal(s.retries, HEALTH_RETRIES_DEFAULT);
    assert_int_equal(s.start_period_ms, 0);
    health_spec_free(&s);
}

static void test_state_keeps_five_bounded_results(void **unused)
{
    (void)unused;
    int dfd = open(dir, O_PATH | O_DIRECTORY);
    assert_true(dfd >= 0);
    struct health_state *st = calloc(1, sizeof(*st)), *back = calloc(1, sizeof(*back));
    assert_non_null(st);
    assert_non_null(back);
    snprintf(st->status, sizeof(st->status), "unhealthy");
    st->failing_streak = 7;
    /* output as a hostile guest could make it: 10 KiB with NULs, escapes, bad UTF-8 */
    size_t n = 10000;
    char *flood = malloc(n);
    assert_non_null(flood);
    for (size_t i = 0; i < n; i++)
        flood[i] = (char)(i * 37 % 256);
    for (int i = 0; i < 7; i++)
        health_state_add(st, i, 1000 + i, 2000 + i, flood, n);
    const char *mixed = "ok \xc3\xa9t\xc3\xa9\n\x1b[31m\xff";
    health_state_add(st, 0, 3000, 3001, mixed, strlen(mixed));
    assert_int_equal(st->nlog, HEALTH_LOG_KEEP);
    assert_int_equal(st->log[0].exit_code, 3); /* the oldest went */
    assert_int_equal(strlen(st->log[0].output), HEALTH_OUTPUT_MAX);
    assert_string_equal(st->log[4].output, "ok \xc3\xa9t\xc3\xa9\n?[31m?");
    assert_int_equal(health_state_write(dfd, st), 0);
    assert_int_equal(health_state_read(dfd, back, why, sizeof(why)), 1);
    assert_string_equal(back->status, "unhealthy");
    assert_int_equal(back->failing_streak, 7);
    assert_int_equal(back->nlog, HEALTH_LOG_KEEP);
    for (unsigned i = 0; i < HEALTH_LOG_KEEP; i++) {
        assert_string_equal(back->log[i].output, st->log[i].output);
        assert_int_equal(back->log[i].exit_code, st->log[i].exit_code);
        assert_true(back->log[i].start_ms == st->log[i].start_ms);
    }
    /* the largest state there can be fits the file bound */
    struct stat sb;
    assert_int_equal(fstatat(dfd, "health.state.json", &sb, 0), 0);
    assert_true((size_t)sb.st_size < HEALTH_STATE_FILE_MAX);
    free(flood);
    free(st);
    free(back);
    close(dfd);
}

static void test_state_refusals(void **unused)
{
    (void)unused;
    struct health_state *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    const char *bad[] = {
        "{}",
        "{\"status\":\"fine\",\"failing_streak\":0,\"log\":[]}",
        "{\"status\":\"healthy\",\"failing_streak\":-1,\"log\":[]}",
        "{\"status\":\"healthy\",\"failing_streak\":0,\"log\":[{},{},{},{},{},{}]}",
        "{\"status\":\"healthy\",\"failing_streak\":0,\"log\":[{\"exit_code\":256}]}",
        "{\"status\":\"healthy\",\"failing_streak\":0,\"log\":[{\"exit_code\":0,\"output\":1}]}",
        "{\"status\":\"healthy\",\"failing_streak\":0,\"log\":[1]}",
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        assert_int_equal(health_state_parse(bad[i], strlen(bad[i]), st, why, sizeof(why)), -1);
        assert_int_equal(st->nlog, 0);
    }
    /* an output longer than 4 KiB is not ours */
    size_t len = HEALTH_OUTPUT_MAX + 200;
    char *text = malloc(len + 200);
    assert_non_null(text);
    int k = snprintf(text, 200, "{\"status\":\"healthy\",\"failing_streak\":0,\"log\":[{\"exit_code\":0,\"output\":\"");
    memset(text + k, 'a', HEALTH_OUTPUT_MAX + 1);
    snprintf(text + k + HEALTH_OUTPUT_MAX + 1, 16, "\"}]}");
    assert_int_equal(health_state_parse(text, strlen(text), st, why, sizeof(why)), -1);
    free(text);
    free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_on_failure),
        cmocka_unit_test_setup_teardown(test_spec_written_and_read_back, setup, teardown),
        cmocka_unit_test(test_spec_refusals),
        cmocka_unit_test_setup_teardown(test_state_keeps_five_bounded_results, setup, teardown),
        cmocka_unit_test(test_state_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
