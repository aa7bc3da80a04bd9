/* Unit tests of the Connect protocol pieces of cocoon's E2B front (src/serve/e2b_connect.c):
 * envelopes read back-to-back and cut anywhere, the size bound, compressed and end-of-stream
 * flags, the one-message rule of a server-streaming request, unary JSON bodies, and the
 * HTTP statuses of Connect's error codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "serve/e2b.h"

/* An envelope built here, independently of connect_frame_encode. */
static size_t envelope(char *out, unsigned flags, const char *msg, size_t len)
{
    out[0] = (char)flags;
    out[1] = (char)(len >> 24);
    out[2] = (char)(len >> 16);
    out[3] = (char)(len >> 8);
    out[4] = (char)len;
    memcpy(out + 5, msg, len);
    return len + 5;
}

static void test_encode_matches_wire(void **state)
{
    (void)state;
    size_t n = 0;
    char *f = connect_frame_encode(CONNECT_FLAG_END, "{}", 2, &n);
    assert_non_null(f);
    char want[8];
    assert_int_equal(n, envelope(want, 2, "{}", 2));
    assert_memory_equal(f, want, n);
    free(f);
    f = connect_frame_encode(0, NULL, 0, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(f, "\0\0\0\0\0", 5);
    free(f);
}

static void test_last_frames(void **state)
{
    (void)state;
    size_t n = 0;
    char *f = connect_frames_last("{\"x\":1}", 7, &n);
    assert_non_null(f);
    char want[32];
    size_t w = envelope(want, 0, "{\"x\":1}", 7);
    w += envelope(want + w, CONNECT_FLAG_END, "{}", 2);
    assert_int_equal(n, w);
    assert_memory_equal(f, want, w);
    free(f);
}

static void test_frames_back_to_back(void **state)
{
    (void)state;
    char buf[64];
    size_t len = envelope(buf, 0, "{\"a\":1}", 7);
    len += envelope(buf + len, 0, "", 0);
    len += envelope(buf + len, CONNECT_FLAG_END, "{}", 2);
    size_t off = 0;
    struct connect_frame f;
    char msg[128];
    assert_int_equal(connect_frame_next(buf, len, &off, &f, msg, sizeof(msg)), 1);
    assert_int_equal(f.len, 7);
    assert_memory_equal(f.data, "{\"a\":1}", 7);
    assert_int_equal(connect_frame_next(buf, len, &off, &f, msg, sizeof(msg)), 1);
    assert_int_equal(f.len, 0);
    assert_int_equal(connect_frame_next(buf, len, &off, &f, msg, sizeof(msg)), 1);
    assert_int_equal(f.flags, CONNECT_FLAG_END);
    assert_int_equal(connect_frame_next(buf, len, &off, &f, msg, sizeof(msg)), 0);
    assert_int_equal(off, len);
}

/* Every cut of a valid envelope is refused with a message, never read past. */
static void test_every_cut_refused(void **state)
{
    (void)state;
    char buf[32];
    size_t len = envelope(buf, 0, "{\"pid\":7}", 9);
    for (size_t cut = 1; cut < len; cut++) {
        char *copy = malloc(cut); /* exact size: ASan sees any read past it */
        memcpy(copy, buf, cut);
        size_t off = 0;
        struct connect_frame f;
        char msg[128] = "";
        assert_int_equal(connect_frame_next(copy, cut, &off, &f, msg, sizeof(msg)), -1);
        assert_true(strstr(msg, "cut") || strstr(msg, "announces"));
        assert_int_equal(off, 0);
        free(copy);
    }
}

static void test_size_bound_and_compression(void **state)
{
    (void)state;
    char buf[8] = {0};
    uint32_t big = E2B_MESSAGE_MAX + 1;
    buf[1] = (char)(big >> 24);
    buf[2] = (char)(big >> 16);
    buf[3] = (char)(big >> 8);
    buf[4] = (char)big;
    size_t off = 0;
    struct connect_frame f;
    char msg[128];
    assert_int_equal(connect_frame_next(buf, sizeof(buf), &off, &f, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "larger than"));
    char z[16];
    size_t n = envelope(z, CONNECT_FLAG_COMPRESSED, "xx", 2);
    off = 0;
    assert_int_equal(connect_frame_next(z, n, &off, &f, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "compressed"));
}

static void test_request_message(void **state)
{
    (void)state;
    char msg[256];
    json_t *j = connect_request_message("{\"path\":\"/x\"}", 13, 0, msg, sizeof(msg));
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/x");
    json_decref(j);
    j = connect_request_message("", 0, 0, msg, sizeof(msg)); /* an empty unary body is {} */
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 0);
    json_decref(j);
    assert_null(connect_request_message("[1]", 3, 0, msg, sizeof(msg)));
    assert_non_null(strstr(msg, "object"));
    assert_null(connect_request_message("{\"a\":1,\"a\":2}", 13, 0, msg, sizeof(msg)));
    assert_null(connect_request_message("{\"a\":", 5, 0, msg, sizeof(msg)));

    char buf[64];
    size_t n = envelope(buf, 0, "{\"cmd\":\"ls\"}", 12);
    j = connect_request_message(buf, n, 1, msg, sizeof(msg));
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "cmd")), "ls");
    json_decref(j);
    size_t two = n + envelope(buf + n, 0, "{}", 2);
    assert_null(connect_request_message(buf, two, 1, msg, sizeof(msg)));
    assert_non_null(strstr(msg, "exactly one"));
    n = envelope(buf, CONNECT_FLAG_END, "{}", 2);
    assert_null(connect_request_message(buf, n, 1, msg, sizeof(msg)));
    assert_null(connect_request_message("", 0, 1, msg, sizeof(msg)));
    assert_non_null(strstr(msg, "no Connect message"));
}

static void test_http_status(void **state)
{
    (void)state;
    assert_int_equal(connect_http_status("not_found"), 404);
    assert_int_equal(connect_http_status("invalid_argument"), 400);
    assert_int_equal(connect_http_status("already_exists"), 409);
    assert_int_equal(connect_http_status("unauthenticated"), 401);
    assert_int_equal(connect_http_status("unimplemented"), 501);
    assert_int_equal(connect_http_status("no such code"), 500);
    assert_int_equal(connect_http_status(NULL), 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_matches_wire),
        cmocka_unit_test(test_last_frames),
        cmocka_unit_test(test_frames_back_to_back),
        cmocka_unit_test(test_every_cut_refused),
        cmocka_unit_test(test_size_bound_and_compression),
        cmocka_unit_test(test_request_message),
        cmocka_unit_test(test_http_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
