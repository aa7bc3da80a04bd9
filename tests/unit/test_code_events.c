/* Unit tests of the host's check of code-interpreter events (src/lib/code_events.c): the
 * shapes cocoon.h documents pass and come back re-encoded on one line; unknown types and
 * keys, wrong types, bad base64, bad UTF-8, NUL, duplicate keys, negative counts and
 * over-long lines are refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/code_events.h"

static char why[256];

static int check(const char *line, struct code_event *ev)
{
    why[0] = 0;
    return code_event_check(line, strlen(line), ev, why, sizeof(why));
}

static void test_good_events(void **unused)
{
    (void)unused;
    struct code_event ev;
    assert_int_equal(check("{ \"type\" : \"stdout\", \"text\": \"hi\\n\" }", &ev), 0);
    assert_int_equal(ev.kind, CODE_EV_STDOUT);
    assert_string_equal(ev.json, "{\"type\":\"stdout\",\"text\":\"hi\\n\"}");
    free(ev.json);
    assert_int_equal(check("{\"type\":\"stderr\",\"text\":\"\"}", &ev), 0);
    assert_int_equal(ev.kind, CODE_EV_STDERR);
    free(ev.json);
    assert_int_equal(check("{\"type\":\"result\",\"is_main_result\":true,\"text\":\"3\",\"html\":\"<p>\","
                           "\"png\":\"iVBORw0KGgo=\",\"json\":{\"a\":[1]},\"markdown\":\"*x*\"}",
                           &ev),
                     0);
    assert_int_equal(ev.kind, CODE_EV_RESULT);
    free(ev.json);
    assert_int_equal(check("{\"type\":\"error\",\"name\":\"E\",\"value\":\"v\",\"traceback\":\"t\"}", &ev), 0);
    assert_int_equal(ev.kind, CODE_EV_ERROR);
    free(ev.json);
    assert_int_equal(check("{\"type\":\"number_of_executions\",\"execution_count\":7}", &ev), 0);
    assert_int_equal(ev.kind, CODE_EV_END);
    assert_int_equal(ev.execution_count, 7);
    free(ev.json);
}

static void refused(const char *line, const char *reason)
{
    struct code_event ev;
    assert_int_equal(check(line, &ev), -1);
    assert_null(ev.json);
    if (!strstr(why, reason))
        fail_msg("\"%s\" refused with \"%s\", expected \"%s\"", line, why, reason);
}

static void test_bad_events(void **unused)
{
    (void)unused;
    refused("{\"type\":\"launch\",\"text\":\"x\"}", "unknown event type");
    refused("{\"text\":\"x\"}", "without a string \"type\"");
    refused("[1]", "not a JSON object");
    refused("{\"type\":\"stdout\"", "not JSON");
    refused("{\"type\":\"stdout\",\"text\":\"a\xff\"}", "not JSON");
    refused("{\"type\":\"stdout\",\"text\":\"a\\u0000\"}", "not JSON");
    refused("{\"type\":\"stdout\",\"type\":\"stdout\",\"text\":\"x\"}", "not JSON");
    refused("{\"type\":\"stdout\",\"text\":1}", "text is not a string");
    refused("{\"type\":\"stdout\",\"text\":\"x\",\"extra\":1}", "unknown key");
    refused("{\"type\":\"result\",\"png\":\"abc!\"}", "png is not base64");
    refused("{\"type\":\"result\",\"png\":\"abc\"}", "png is not base64");
    refused("{\"type\":\"result\",\"json\":\"x\"}", "json is not an object");
    refused("{\"type\":\"result\",\"is_main_result\":1}", "not a boolean");
    refused("{\"type\":\"result\",\"exec\":\"x\"}", "unknown key");
    refused("{\"type\":\"error\",\"name\":\"E\",\"value\":\"v\"}", "no traceback");
    refused("{\"type\":\"number_of_executions\",\"execution_count\":-1}", "not a count");
    refused("{\"type\":\"number_of_executions\",\"execution_count\":1,\"x\":2}", "unknown keys");
}

static void test_bounds(void **unused)
{
    (void)unused;
    struct code_event ev;
    size_t n = CODE_EVENT_LINE_MAX + 1;
    char *line = malloc(n + 1);
    assert_non_null(line);
    memset(line, ' ', n);
    line[n] = 0;
    assert_int_equal(code_event_check(line, n, &ev, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "longer than"));
    /* a stdout text over its bound */
    size_t t = CODE_EVENT_TEXT_MAX + 1;
    char *big = malloc(t + 64);
    assert_non_null(big);
    static const char head[] = "{\"type\":\"stdout\",\"text\":\"";
    memcpy(big, head, sizeof(head));
    size_t at = strlen(big);
    memset(big + at, 'a', t);
    memcpy(big + at + t, "\"}", 3);
    assert_int_equal(check(big, &ev), -1);
    assert_non_null(strstr(why, "longer than"));
    free(big);
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_events),
        cmocka_unit_test(test_bad_events),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
