/* Unit tests of the monitor's QMP client (src/monitor/qmp.c): the line parser on
 * canned replies from QEMU (greeting, return, error, event, and bad shapes), and whole
 * commands against a stand-in QEMU on a socketpair: negotiation, events skipped,
 * errors passed on, a stray answer skipped, an over-long line and silence refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "monitor/qmp.h"

static enum qmp_kind parse(const char *line, long long *id, char *msg, size_t cap)
{
    return qmp_parse_line(line, strlen(line), NULL, id, msg, cap);
}

static void test_parse_shapes(void **unused)
{
    (void)unused;
    long long id;
    char msg[128];
    assert_int_equal(
        parse("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, \"capabilities\": []}}", &id, msg, sizeof(msg)),
        QMP_GREETING);
    assert_int_equal(parse("{\"return\": {}, \"id\": 7}\r", &id, msg, sizeof(msg)), QMP_RETURN);
    assert_int_equal(id, 7);
    json_t *r;
    const char *l = "{\"return\": {\"status\": \"completed\"}, \"id\": 3}";
    assert_int_equal(qmp_parse_line(l, strlen(l), &r, &id, NULL, 0), QMP_RETURN);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "completed");
    json_decref(r);
    assert_int_equal(parse("{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\\u0007 way\"}, \"id\": 4}", &id,
                           msg, sizeof(msg)),
                     QMP_ERROR);
    assert_string_equal(msg, "GenericError: no? way");
    assert_int_equal(id, 4);
    assert_int_equal(parse("{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1}}", &id, msg, sizeof(msg)), QMP_EVENT);
    assert_string_equal(msg, "STOP");
    assert_int_equal(id, -1);
    /* a negative or non-integer id is no id */
    assert_int_equal(parse("{\"return\": 1, \"id\": -2}", &id, msg, sizeof(msg)), QMP_RETURN);
    assert_int_equal(id, -1);
    assert_int_equal(parse("{\"return\": 1, \"id\": \"x\"}", &id, msg, sizeof(msg)), QMP_RETURN);
    assert_int_equal(id, -1);
}

static void test_parse_refuses(void **unused)
{
    (void)unused;
    long long id;
    char msg[64];
    const char *bad[] = {
        "",
        "not json",
        "[1, 2]",
        "\"return\"",
        "{}",
        "{\"return\": {}, \"error\": {\"class\": \"a\", \"desc\": \"b\"}}", /* two shapes at once */
        "{\"error\": \"text\"}",
        "{\"error\": {\"class\": 1, \"desc\": \"b\"}}",
        "{\"error\": {\"class\": \"a\"}}",
        "{\"event\": 5}",
        "{\"QMP\": 1}",
        "{\"return\": 1, \"return\": 2}", /* duplicate keys */
        "{\"return\": {}} trailing",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &id, msg, sizeof(msg)), QMP_BAD);
    char *huge = malloc(QMP_LINE_MAX + 16);
    memset(huge, ' ', QMP_LINE_MAX + 15);
    memcpy(huge, "{\"return\": 1}", 13);
    assert_int_equal(qmp_parse_line(huge, QMP_LINE_MAX + 15, NULL, &id, msg, sizeof(msg)), QMP_BAD);
    free(huge);
}

/* The stand-in QEMU: a script of what to send after each line it reads. */
struct fake {
    int fd;
    const char *greeting;
    const char *answers[4]; /* one per command read */
};

static void *fake_qemu(void *arg)
{
    struct fake *f = arg;
    if (f->greeting && write(f->fd, f->greeting, strlen(f->greeting)) < 0)
        return NULL;
    for (int i = 0; i < 4 && f->answers[i]; i++) {
        char c;
        do {
            if (read(f->fd, &c, 1) != 1)
                return NULL;
        } while (c != '\n');
        if (write(f->fd, f->answers[i], strlen(f->answers[i])) < 0)
            return NULL;
    }
    return NULL;
}

static int run_fake(struct fake *f, const char *cmd, json_t **ret, int timeout_ms, char *err, size_t cap)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f->fd = sv[1];
    pthread_t t;
    pthread_create(&t, NULL, fake_qemu, f);
    struct qmp q;
    qmp_init(&q, sv[0]);
    int rc = qmp_command(&q, cmd, json_pack("{s:s}", "a", "b"), -1, ret, timeout_ms, err, cap);
    shutdown(sv[0], SHUT_RDWR);
    pthread_join(t, NULL);
    qmp_close(&q);
    close(sv[1]);
    return rc;
}

#define GREETING "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n"

static void test_command(void **unused)
{
    (void)unused;
    char err[256];
    json_t *ret;
    struct fake ok = {.greeting = GREETING,
                      .answers = {"{\"return\": {}, \"id\": 1}\r\n",
                                  "{\"event\": \"STOP\"}\r\n{\"return\": {}, \"id\": 99}\r\n"
                                  "{\"return\": {\"running\": false}, \"id\": 2}\r\n"}};
    assert_int_equal(run_fake(&ok, "query-status", &ret, 2000, err, sizeof(err)), 0);
    assert_true(json_is_false(json_object_get(ret, "running")));
    json_decref(ret);

    struct fake refused = {
        .greeting = GREETING,
        .answers = {"{\"return\": {}, \"id\": 1}\n",
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Device 'x' not found\"}, \"id\": 2}\n"}};
    assert_int_equal(run_fake(&refused, "blockdev-snapshot", NULL, 2000, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "QEMU refused blockdev-snapshot: GenericError: Device 'x' not found"));

    struct fake no_greeting = {.greeting = "{\"return\": {}}\n"};
    assert_int_equal(run_fake(&no_greeting, "stop", NULL, 2000, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "greeting"));

    struct fake silent = {.greeting = GREETING, .answers = {"{\"return\": {}, \"id\": 1}\n", "\n"}};
    assert_int_equal(run_fake(&silent, "stop", NULL, 200, err, sizeof(err)), -1);

    struct fake garbage = {.greeting = GREETING, .answers = {"{\"return\": {}, \"id\": 1}\n", "}}}\n"}};
    assert_int_equal(run_fake(&garbage, "stop", NULL, 2000, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a QMP message"));

    char *longline = malloc(QMP_LINE_MAX + 64);
    memset(longline, ' ', QMP_LINE_MAX + 62);
    longline[QMP_LINE_MAX + 62] = '\n';
    longline[QMP_LINE_MAX + 63] = 0;
    struct fake flood = {.greeting = GREETING, .answers = {"{\"return\": {}, \"id\": 1}\n", longline}};
    assert_int_equal(run_fake(&flood, "stop", NULL, 2000, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "longer than 64 KiB"));
    free(longline);
}

static void test_no_channel(void **unused)
{
    (void)unused;
    struct qmp q;
    char err[128];
    qmp_init(&q, -1);
    assert_int_equal(qmp_command(&q, "stop", NULL, -1, NULL, 100, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no QMP channel"));
    qmp_close(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_shapes),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_no_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
