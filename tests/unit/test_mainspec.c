/* Unit tests of a box's main process files (src/boxcfg/mainspec.c): the restart
 * policies' names both ways and their refusals, the back-off's doubling and cap,
 * main.json written and read back (and absent: no main process), its refusals, and
 * main.state.json as the monitor writes it; `logs --since` words (src/util/since.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boxcfg/mainspec.h"
#include "support/tmpdir.h"
#include "util/util.h"

static char dir[PATH_MAX];
static char why[512];

static int setup(void **state)
{
    (void)state;
    return test_tmpdir(dir, sizeof(dir), "cocoon-test-mainspec");
}

static int teardown(void **state)
{
    (void)state;
    return util_rm_rf(dir);
}

static void test_restart_policies(void **unused)
{
    (void)unused;
    enum main_restart r;
    unsigned n;
    char text[32];
    const char *good[] = {"no", "on-failure", "on-failure:3", "always", "unless-stopped"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(main_restart_parse(good[i], &r, &n, why, sizeof(why)), 0);
        main_restart_format(r, n, text, sizeof(text));
        assert_string_equal(text, good[i]);
    }
    assert_int_equal(main_restart_parse(NULL, &r, &n, why, sizeof(why)), 0);
    assert_int_equal(r, MAIN_RESTART_NO);
    const char *bad[] = {"sometimes",     "on-failure:",        "on-failure:0", "on-failure:-1",
                         "on-failure:3x", "on-failure:1000001", "Always",       "on-failure: 3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(main_restart_parse(bad[i], &r, &n, why, sizeof(why)), -1);
        assert_non_null(strstr(why, "restart policy"));
    }
}

static void test_backoff_doubles_to_its_cap(void **unused)
{
    (void)unused;
    assert_int_equal(main_backoff_ms(1), 1000);
    assert_int_equal(main_backoff_ms(2), 2000);
    assert_int_equal(main_backoff_ms(3), 4000);
    assert_int_equal(main_backoff_ms(6), 32000);
    assert_int_equal(main_backoff_ms(7), MAIN_BACKOFF_MAX_MS);
    assert_int_equal(main_backoff_ms(4000000000u), MAIN_BACKOFF_MAX_MS); /* no overflow, no long loop */
}

static void test_spec_written_and_read_back(void **unused)
{
    (void)unused;
    int dfd = open(dir, O_PATH | O_DIRECTORY);
    struct main_spec s, back;
    assert_int_equal(main_spec_read(dfd, &back, why, sizeof(why)), 0); /* none: no main process */
    char *argv[] = {"python3", "-m", "http.server", "8000", NULL};
    char *env[] = {"A=1", "B=two words", NULL};
    memset(&s, 0, sizeof(s));
    s.argv = argv;
    s.env = env;
    snprintf(s.workdir, sizeof(s.workdir), "/srv");
    snprintf(s.user, sizeof(s.user), "1000:1000");
    s.restart = MAIN_RESTART_ON_FAILURE;
    s.max_retries = 5;
    s.tty = 1; /* `run -d -t`: read back, as attach needs it */
    assert_int_equal(main_spec_write(dfd, &s, why, sizeof(why)), 0);
    assert_int_equal(main_spec_read(dfd, &back, why, sizeof(why)), 1);
    for (int i = 0; argv[i]; i++)
        assert_string_equal(back.argv[i], argv[i]);
    assert_null(back.argv[4]);
    assert_string_equal(back.env[1], "B=two words");
    assert_string_equal(back.workdir, "/srv");
    assert_string_equal(back.user, "1000:1000");
    assert_int_equal(back.restart, MAIN_RESTART_ON_FAILURE);
    assert_int_equal(back.max_retries, 5);
    assert_int_equal(back.tty, 1);
    assert_int_equal(back.open_stdin, 0);
    main_spec_free(&back);
    /* written before -i/-t existed: neither */
    const char *old = "{\"argv\":[\"x\"],\"restart\":\"no\"}";
    assert_int_equal(main_spec_parse(old, strlen(old), &back, why, sizeof(why)), 0);
    assert_int_equal(back.tty + back.open_stdin, 0);
    main_spec_free(&back);
    close(dfd);
}

static void test_spec_refusals(void **unused)
{
    (void)unused;
    struct main_spec s;
    const char *bad[] = {"",
                         "[]",
                         "{}",
                         "{\"argv\":[]}",
                         "{\"argv\":\"sh\"}",
                         "{\"argv\":[1]}",
                         "{\"argv\":[\"a\\u0000b\"]}",
                         "{\"argv\":[\"x\"],\"env\":{}}",
                         "{\"argv\":[\"x\"],\"restart\":\"sometimes\"}",
                         "{\"argv\":[\"x\"],\"argv\":[\"y\"]}",
                         "{\"argv\":[\"x\"],\"tty\":1}",
                         "{\"argv\":[\"x\"],\"stdin\":\"yes\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(main_spec_parse(bad[i], strlen(bad[i]), &s, why, sizeof(why)), -1);
    char user[400] = "{\"argv\":[\"x\"],\"user\":\"";
    memset(user + strlen(user), 'u', 300);
    size_t ulen = strlen(user);
    memcpy(user + ulen, "\"}", 3);
    assert_int_equal(main_spec_parse(user, strlen(user), &s, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "\"user\""));
}

static void test_state_written_and_read_back(void **unused)
{
    (void)unused;
    int dfd = open(dir, O_PATH | O_DIRECTORY);
    struct main_state st = {.pid = 0,
                            .exit_code = 3,
                            .signal = 0,
                            .started_at = 1700000000,
                            .finished_at = 1700000002,
                            .next_restart_ms = 1700000004000LL,
                            .restarts = 2};
    snprintf(st.state, sizeof(st.state), "restarting");
    assert_int_equal(main_state_write(dfd, &st), 0);
    struct main_state back;
    assert_int_equal(main_state_read(dfd, &back, why, sizeof(why)), 1);
    assert_string_equal(back.state, "restarting");
    assert_int_equal(back.exit_code, 3);
    assert_int_equal(back.restarts, 2);
    assert_true(back.next_restart_ms == 1700000004000LL);
    const char *damaged = "{\"state\":\"exited\",\"exit_code\":300}";
    assert_int_equal(main_state_parse(damaged, strlen(damaged), &back, why, sizeof(why)), -1);
    close(dfd);
}

static void test_since_words(void **unused)
{
    (void)unused;
    const long long now = 1764770400LL * 1000000; /* 2025-12-03T14:00:00Z */
    long long us = -1;
    char ts[32];
    assert_int_equal(util_parse_since("2025-12-03T14:00:00Z", now, &us, why, sizeof(why)), 0);
    assert_true(us == now);
    assert_int_equal(util_parse_since("2025-12-03T15:30:00.25+01:30", now, &us, why, sizeof(why)), 0);
    assert_true(us == now + 250000);
    assert_int_equal(util_parse_since("2025-12-03", now, &us, why, sizeof(why)), 0);
    assert_true(us == now - 14LL * 3600 * 1000000);
    assert_int_equal(util_parse_since("2024-02-29T00:00:00Z", now, &us, why, sizeof(why)), 0); /* a leap day */
    util_format_us(us, ts, sizeof(ts));
    assert_string_equal(ts, "2024-02-29T00:00:00.000000Z");
    assert_int_equal(util_parse_since("1764770400.5", now, &us, why, sizeof(why)), 0);
    assert_true(us == now + 500000);
    assert_int_equal(util_parse_since("1h30m", now, &us, why, sizeof(why)), 0);
    assert_true(us == now - 5400LL * 1000000);
    assert_int_equal(util_parse_since("90s", now, &us, why, sizeof(why)), 0);
    assert_true(us == now - 90LL * 1000000);
    assert_int_equal(util_parse_since("500ms", now, &us, why, sizeof(why)), 0);
    assert_true(us == now - 500000);
    assert_int_equal(util_parse_since("1000000d", now, &us, why, sizeof(why)), 0); /* further back than 1970 */
    assert_true(us == 0);
    util_format_us(now + 705420, ts, sizeof(ts));
    assert_string_equal(ts, "2025-12-03T14:00:00.705420Z");
    static const char *const bad[] = {"",      "yesterday", "10",          "2025-13-01",       "2025-02-29",
                                      "10x",   "1h30",      "-5m",         "2025-12-03T14:00", "2025-12-03T25:00Z",
                                      "1.5.5", "m",         "2025-12-03T", "1969-12-31",       NULL};
    for (int i = 0; bad[i]; i++) {
        if (!strcmp(bad[i], "10")) /* a bare number is a unix time: fine */
            continue;
        assert_int_equal(util_parse_since(bad[i], now, &us, why, sizeof(why)), -1);
        assert_true(why[0] != '\0');
    }
    assert_int_equal(util_parse_since("2025-12-03T14:00", now, &us, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "zone"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_policies),
        cmocka_unit_test(test_backoff_doubles_to_its_cap),
        cmocka_unit_test_setup_teardown(test_spec_written_and_read_back, setup, teardown),
        cmocka_unit_test(test_spec_refusals),
        cmocka_unit_test_setup_teardown(test_state_written_and_read_back, setup, teardown),
        cmocka_unit_test(test_since_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
