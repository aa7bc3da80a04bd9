/* Unit tests of the detach key sequences of `cocoon attach` (src/lib/detach_keys.c):
 * docker's spec format, refusals with a reason, and matching in typed input, including
 * a sequence split across reads, keys that repeat, and bytes held back then let go. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "lib/detach_keys.h"

static void test_parse_docker_specs(void **unused)
{
    (void)unused;
    struct detach_keys k;
    char err[256];
    assert_int_equal(detach_keys_parse(DETACH_KEYS_DEFAULT, &k, err, sizeof(err)), 0);
    assert_int_equal(k.len, 2);
    assert_int_equal(k.seq[0], 0x10);
    assert_int_equal(k.seq[1], 0x11);
    assert_int_equal(detach_keys_parse("ctrl-a,d", &k, err, sizeof(err)), 0);
    assert_memory_equal(k.seq,
                        "\x01"
                        "d",
                        2);
    assert_int_equal(detach_keys_parse("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_,CTRL-Z", &k, err, sizeof(err)), 0);
    assert_memory_equal(k.seq, "\x00\x1b\x1c\x1d\x1e\x1f\x1a", 7);
    assert_int_equal(detach_keys_parse("", &k, err, sizeof(err)), 0);
    assert_int_equal(k.len, 0);
}

static void test_parse_refuses_bad_keys(void **unused)
{
    (void)unused;
    struct detach_keys k;
    char err[256];
    const char *bad[] = {"ctrl-", "ctrl-pp", "ab", ",", "ctrl-p,", "ctrl-1", "\x01", "ctrl-p,,ctrl-q", "alt-x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        assert_int_equal(detach_keys_parse(bad[i], &k, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "is not a key"));
        assert_int_equal(k.len, 0);
    }
    assert_int_equal(detach_keys_parse("a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a", &k, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at most 16 keys"));
}

/* Feeds text in pieces of `step` bytes; returns the index of the piece that detached or -1. */
static int feed(struct detach_keys *k, const char *text, size_t step, char *out, size_t *out_len)
{
    size_t n = strlen(text);
    *out_len = 0;
    for (size_t i = 0; i < n; i += step) {
        size_t len = n - i < step ? n - i : step;
        if (detach_keys_feed(k, (const uint8_t *)text + i, len, (uint8_t *)out, out_len))
            return (int)(i / step);
    }
    return -1;
}

static void test_matching(void **unused)
{
    (void)unused;
    struct detach_keys k;
    char err[256], out[256];
    size_t len;
    for (size_t step = 1; step <= 8; step++) {
        assert_int_equal(detach_keys_parse(DETACH_KEYS_DEFAULT, &k, err, sizeof(err)), 0);
        /* a lone ctrl-p (bash's history key) goes through once the next key is not ctrl-q */
        assert_true(feed(&k, "ls\x10x\x10\x10\x11rest", step, out, &len) >= 0);
        assert_int_equal(len, 5);
        assert_memory_equal(out, "ls\x10x\x10", 5);
    }
    /* repeated keys: "a,a,b" is found in "aaab" */
    assert_int_equal(detach_keys_parse("a,a,b", &k, err, sizeof(err)), 0);
    assert_int_equal(feed(&k, "xaaab", 1, out, &len), 4);
    assert_int_equal(len, 2);
    assert_memory_equal(out, "xa", 2);
    /* no sequence: everything passes */
    assert_int_equal(detach_keys_parse("", &k, err, sizeof(err)), 0);
    assert_int_equal(feed(&k, "\x10\x11", 1, out, &len), -1);
    assert_int_equal(len, 2);
    /* input that ends on a partial sequence lets the held bytes go */
    assert_int_equal(detach_keys_parse(DETACH_KEYS_DEFAULT, &k, err, sizeof(err)), 0);
    assert_int_equal(feed(&k, "end\x10", 4, out, &len), -1);
    assert_int_equal(len, 3);
    detach_keys_flush(&k, (uint8_t *)out, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(out, "end\x10", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_docker_specs),
        cmocka_unit_test(test_parse_refuses_bad_keys),
        cmocka_unit_test(test_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
