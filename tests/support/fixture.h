/* Running a cmocka table whose tests all share one fixture: the setup and teardown are
 * named once, at the run, instead of on every line of the table. */
#ifndef COCOON_TESTS_FIXTURE_H
#define COCOON_TESTS_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Runs tests[0..n) as the group `group`, each test that names no setup or teardown of
 * its own with setup before it and teardown after it. Returns what cmocka returns (the
 * number of failed tests), or -1 when out of memory. */
int test_run_with_fixture(const char *group, const struct CMUnitTest *tests, size_t n, CMFixtureFunction setup,
                          CMFixtureFunction teardown);

/* As cmocka_run_group_tests(tests, NULL, NULL), with the fixture around every test. */
#define run_tests_with_fixture(tests, setup, teardown)                                                                 \
    test_run_with_fixture(#tests, (tests), sizeof(tests) / sizeof((tests)[0]), (setup), (teardown))

#endif
