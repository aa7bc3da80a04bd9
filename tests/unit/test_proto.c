/* Unit tests of the wire codec (src/proto/proto.c) and the framed connection
 * (src/proto/conn.c): round trips of every message, every rejection rule of the
 * header and TLV decoders, and reassembly/backpressure over a real socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/conn.h"
#include "proto/proto.h"

/* One writer is ~64 KiB: keep it off the stack. */
static struct proto_writer W;

/* ---- helpers ---- */

/* Stores in the wire's byte order (little-endian), by the C library rather than the
 * codec under test. */
static void put16(uint8_t *p, uint16_t v)
{
    uint16_t le = htole16(v);
    memcpy(p, &le, sizeof(le));
}

static void put32(uint8_t *p, uint32_t v)
{
    uint32_t le = htole32(v);
    memcpy(p, &le, sizeof(le));
}

/* A hand-built TLV payload, so tests can write what the encoder refuses to. */
struct tlv {
    uint8_t buf[80000];
    size_t len;
};

static void tlv_raw(struct tlv *t, uint16_t tag, const void *v, uint32_t n)
{
    assert_true(t->len + 6 + n <= sizeof(t->buf));
    put16(t->buf + t->len, tag);
    put32(t->buf + t->len + 2, n);
    if (n)
        memcpy(t->buf + t->len + 6, v, n);
    t->len += 6 + n;
}

static void tlv_u32(struct tlv *t, uint16_t tag, uint32_t v)
{
    uint32_t le = htole32(v);
    tlv_raw(t, tag, &le, sizeof(le));
}

static void tlv_u64(struct tlv *t, uint16_t tag, uint64_t v)
{
    uint64_t le = htole64(v);
    tlv_raw(t, tag, &le, sizeof(le));
}

static void tlv_str(struct tlv *t, uint16_t tag, const char *s) { tlv_raw(t, tag, s, (uint32_t)strlen(s)); }

static struct tlv T;

static void tlv_reset(void) { memset(&T, 0, sizeof(T)); }

/* Parses the frame in W and checks its header; returns the payload. */
static const uint8_t *parse_w(size_t frame_len, uint32_t stream, uint16_t type, size_t *plen)
{
    struct proto_header h;
    const uint8_t *payload = NULL;
    size_t flen = 0;
    assert_true(frame_len > 0);
    assert_int_equal(proto_frame_parse(W.buf, frame_len, &h, &payload, &flen), PROTO_OK);
    assert_int_equal(flen, frame_len);
    assert_int_equal(h.stream, stream);
    assert_int_equal(h.type, type);
    assert_int_equal(h.version, PROTO_VERSION);
    assert_int_equal(h.flags, 0);
    assert_int_equal(h.len, frame_len - PROTO_HEADER_SIZE);
    *plen = h.len;
    return payload;
}

/* The bytes of a frame as hex, compared with what the encoder wrote before the codec
 * became table-driven: the wire format must never move (a guest and a host of other
 * builds read it). On a mismatch cmocka prints both strings. */
static void assert_wire(const uint8_t *frame, size_t n, const char *want_hex)
{
    char got[2 * 1024 + 1];
    assert_true(n > 0 && n <= 1024);
    for (size_t i = 0; i < n; i++)
        snprintf(got + 2 * i, 3, "%02x", frame[i]);
    assert_string_equal(got, want_hex);
}

/* ---- round trips ---- */

static void test_roundtrip_hello(void **state)
{
    struct proto_hello in = {.version_min = 1, .version_max = 3, .boot_ns = 0x123456789abcdefull};
    snprintf(in.agent_version, sizeof(in.agent_version), "%s", "0.1.0");
    snprintf(in.kernel, sizeof(in.kernel), "%s", "6.1.192");
    size_t n = proto_encode_hello(&W, &in), plen;
    assert_wire(W.buf, n,
                "3a00000000000000010001000200040000000100000003000400000003000000040005000000302e312e300500070000"
                "00362e312e313932060008000000efcdab8967452301");
    const uint8_t *p = parse_w(n, 0, PROTO_HELLO, &plen);
    struct proto_hello out;
    assert_int_equal(proto_decode_hello(p, plen, &out), PROTO_OK);
    assert_int_equal(out.version_min, 1);
    assert_int_equal(out.version_max, 3);
    assert_true(out.boot_ns == in.boot_ns);
    assert_string_equal(out.agent_version, "0.1.0");
    assert_string_equal(out.kernel, "6.1.192");
}

static void test_roundtrip_config(void **state)
{
    struct proto_config in = {.version = 1, .realtime_ns = 1764190000123456789ull};
    snprintf(in.hostname, sizeof(in.hostname), "%s", "cocoon-3fa2c9");
    size_t n = proto_encode_config(&W, &in), plen;
    assert_wire(W.buf, n,
                "2b00000000000000020001000100040000000100000008000d000000636f636f6f6e2d33666132633909000800000015"
                "ada74175a97b18");
    const uint8_t *p = parse_w(n, 0, PROTO_CONFIG, &plen);
    struct proto_config out;
    assert_int_equal(proto_decode_config(p, plen, &out), PROTO_OK);
    assert_int_equal(out.version, 1);
    assert_string_equal(out.hostname, "cocoon-3fa2c9");
    assert_true(out.realtime_ns == in.realtime_ns);
}

static void test_roundtrip_ready(void **state)
{
    struct proto_ready in = {.boot_ns = 640000000ull, .init_ns = 420000000ull};
    size_t n = proto_encode_ready(&W, &in), plen;
    assert_wire(W.buf, n, "1c000000000000000300010006000800000000a025260000000007000800000000b1081900000000");
    const uint8_t *p = parse_w(n, 0, PROTO_READY, &plen);
    struct proto_ready out;
    assert_int_equal(proto_decode_ready(p, plen, &out), PROTO_OK);
    assert_true(out.boot_ns == in.boot_ns);
    assert_true(out.init_ns == in.init_ns);
}

static void test_roundtrip_exec(void **state)
{
    char *argv[] = {"python3", "-c", "print('hi')", "", NULL};
    char *env[] = {"FOO=bar", "EMPTY=", NULL};
    static struct proto_exec in;
    memset(&in, 0, sizeof(in));
    in.argv = argv;
    in.argc = 4;
    in.env = env;
    in.envc = 2;
    snprintf(in.cwd, sizeof(in.cwd), "%s", "/tmp");
    snprintf(in.user, sizeof(in.user), "%s", "1000:1000");
    in.tty = 1;
    in.rows = 24;
    in.cols = 80;
    in.timeout_ms = 30000;
    in.window = 65536;
    in.realtime_ns = 1764190000123456789ull;
    size_t n = proto_encode_exec(&W, 7, &in), plen;
    assert_wire(W.buf, n,
                "a200000007000000100001000e0007000000707974686f6e330e00020000002d630e000b0000007072696e7428276869"
                "27290e00000000000f0007000000464f4f3d6261720f0006000000454d5054593d1000040000002f746d701100090000"
                "00313030303a313030301200040000000100000013000400000018000000140004000000500000000b00080000003075"
                "0000000000001500040000000000010009000800000015ada74175a97b18");
    const uint8_t *p = parse_w(n, 7, PROTO_EXEC, &plen);
    static struct proto_exec out;
    assert_int_equal(proto_decode_exec(p, plen, &out), PROTO_OK);
    assert_int_equal(out.argc, 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(out.argv[i], argv[i]);
    assert_null(out.argv[4]);
    assert_int_equal(out.envc, 2);
    assert_string_equal(out.env[0], "FOO=bar");
    assert_string_equal(out.env[1], "EMPTY=");
    assert_null(out.env[2]);
    assert_string_equal(out.cwd, "/tmp");
    assert_string_equal(out.user, "1000:1000");
    assert_int_equal(out.tty, 1);
    assert_int_equal(out.rows, 24);
    assert_int_equal(out.cols, 80);
    assert_true(out.timeout_ms == 30000);
    assert_int_equal(out.window, 65536);
    assert_true(out.realtime_ns == 1764190000123456789ull);
    proto_exec_free(&out);
    assert_null(out.argv);
    /* the same fields as a detached exec asked of the monitor: on stream 0 */
    n = proto_encode_exec_detached(&W, &in);
    p = parse_w(n, 0, PROTO_VMM_EXEC_DETACHED, &plen);
    assert_int_equal(proto_decode_exec(p, plen, &out), PROTO_OK);
    assert_string_equal(out.argv[3], argv[3]);
    assert_string_equal(out.user, "1000:1000");
    proto_exec_free(&out);
    assert_true(proto_type_is_session(PROTO_VMM_EXEC_DETACHED));
    assert_string_equal(proto_type_name(PROTO_VMM_EXEC_DETACHED), "VMM_EXEC_DETACHED");
    assert_null(out.env);
}

static void test_roundtrip_exec_defaults(void **state)
{
    /* No env, no cwd, window 0 on the encoder side means the default window. */
    char *argv[] = {"true", NULL};
    static struct proto_exec in, out;
    memset(&in, 0, sizeof(in));
    in.argv = argv;
    in.argc = 1;
    size_t n = proto_encode_exec(&W, 1, &in), plen;
    assert_wire(W.buf, n,
                "2c00000001000000100001000e000400000074727565120004000000000000000b000800000000000000000000001500"
                "0400000000001000");
    const uint8_t *p = parse_w(n, 1, PROTO_EXEC, &plen);
    assert_int_equal(proto_decode_exec(p, plen, &out), PROTO_OK);
    assert_int_equal(out.argc, 1);
    assert_string_equal(out.argv[0], "true");
    assert_non_null(out.env); /* always a NULL-terminated list */
    assert_null(out.env[0]);
    assert_int_equal(out.envc, 0);
    assert_string_equal(out.cwd, "");
    assert_int_equal(out.window, PROTO_DEFAULT_WINDOW);
    assert_true(out.timeout_ms == 0);
    proto_exec_free(&out);
}

static void test_roundtrip_started(void **state)
{
    struct proto_started in = {.pid = 4242, .window = 131072}, out;
    size_t n = proto_encode_started(&W, 9, &in), plen;
    assert_wire(W.buf, n, "1400000009000000110001001600040000009210000015000400000000000200");
    const uint8_t *p = parse_w(n, 9, PROTO_STARTED, &plen);
    assert_int_equal(proto_decode_started(p, plen, &out), PROTO_OK);
    assert_int_equal(out.pid, 4242);
    assert_int_equal(out.window, 131072);
}

static void test_roundtrip_exit(void **state)
{
    struct proto_exit in = {.code = 42, .signal = 0, .timed_out = 0}, out;
    size_t n = proto_encode_exit(&W, 3, &in), plen;
    assert_wire(W.buf, n, "1e00000003000000160001000c00040000002a0000001700040000000000000018000400000000000000");
    const uint8_t *p = parse_w(n, 3, PROTO_EXIT, &plen);
    assert_int_equal(proto_decode_exit(p, plen, &out), PROTO_OK);
    assert_int_equal(out.code, 42);
    assert_int_equal(out.signal, 0);
    assert_int_equal(out.timed_out, 0);

    struct proto_exit killed = {.code = 0, .signal = 9, .timed_out = 1};
    n = proto_encode_exit(&W, 3, &killed);
    p = parse_w(n, 3, PROTO_EXIT, &plen);
    assert_int_equal(proto_decode_exit(p, plen, &out), PROTO_OK);
    assert_int_equal(out.signal, 9);
    assert_int_equal(out.timed_out, 1);

    struct proto_exit max = {.code = 255};
    n = proto_encode_exit(&W, 3, &max);
    p = parse_w(n, 3, PROTO_EXIT, &plen);
    assert_int_equal(proto_decode_exit(p, plen, &out), PROTO_OK);
    assert_int_equal(out.code, 255);
}

static void test_roundtrip_error(void **state)
{
    struct proto_error_msg out;
    size_t n = proto_encode_error(&W, 5, 2, "no such file: nonexistent-cmd"), plen;
    assert_wire(W.buf, n,
                "2d00000005000000070001000c0004000000020000000d001d0000006e6f20737563682066696c653a206e6f6e657869"
                "7374656e742d636d64");
    const uint8_t *p = parse_w(n, 5, PROTO_ERROR, &plen);
    assert_int_equal(proto_decode_error(p, plen, &out), PROTO_OK);
    assert_int_equal(out.code, 2);
    assert_string_equal(out.message, "no such file: nonexistent-cmd");

    /* ERROR is allowed on the session stream too. */
    n = proto_encode_error(&W, 0, 22, "bad config");
    p = parse_w(n, 0, PROTO_ERROR, &plen);
    assert_int_equal(proto_decode_error(p, plen, &out), PROTO_OK);

    /* A message longer than the decoder's buffer is clipped by the encoder, not refused. */
    char long_msg[3000];
    memset(long_msg, 'x', sizeof(long_msg) - 1);
    long_msg[sizeof(long_msg) - 1] = 0;
    n = proto_encode_error(&W, 5, 1, long_msg);
    p = parse_w(n, 5, PROTO_ERROR, &plen);
    assert_int_equal(proto_decode_error(p, plen, &out), PROTO_OK);
    assert_int_equal(strlen(out.message), sizeof(out.message) - 1);

    /* NULL message encodes as empty. */
    n = proto_encode_error(&W, 5, 1, NULL);
    assert_wire(W.buf, n, "1000000005000000070001000c0004000000010000000d0000000000");
    p = parse_w(n, 5, PROTO_ERROR, &plen);
    assert_int_equal(proto_decode_error(p, plen, &out), PROTO_OK);
    assert_string_equal(out.message, "");
}

static void test_roundtrip_data(void **state)
{
    static uint8_t data[PROTO_MAX_PAYLOAD];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    const uint16_t types[] = {PROTO_STDIN, PROTO_STDOUT, PROTO_STDERR, PROTO_PING, PROTO_PONG};
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        size_t n = proto_encode_data(&W, 11, types[t], data, sizeof(data)), plen;
        const uint8_t *p = parse_w(n, 11, types[t], &plen);
        assert_int_equal(plen, sizeof(data));
        assert_memory_equal(p, data, sizeof(data));
        assert_true(proto_type_is_data(types[t]));
    }
    /* Empty data frames (STDIN_EOF, empty PING on stream 0). */
    size_t plen;
    size_t n = proto_encode_data(&W, 11, PROTO_STDIN_EOF, NULL, 0);
    parse_w(n, 11, PROTO_STDIN_EOF, &plen);
    assert_int_equal(plen, 0);
    n = proto_encode_data(&W, 0, PROTO_PING, "A1", 2);
    assert_wire(W.buf, n, "0200000000000000040001004131");
    const uint8_t *p = parse_w(n, 0, PROTO_PING, &plen);
    assert_memory_equal(p, "A1", 2);
}

static void test_roundtrip_signal_credit(void **state)
{
    uint32_t v = 0;
    size_t n = proto_encode_signal(&W, 4, 15), plen;
    assert_wire(W.buf, n, "0a00000004000000170001001700040000000f000000");
    const uint8_t *p = parse_w(n, 4, PROTO_SIGNAL, &plen);
    assert_int_equal(proto_decode_u32_field(p, plen, PT_SIGNAL, &v), PROTO_OK);
    assert_int_equal(v, 15);

    n = proto_encode_credit(&W, 4, 262144);
    assert_wire(W.buf, n, "0a000000040000001900010019000400000000000400");
    p = parse_w(n, 4, PROTO_CREDIT, &plen);
    assert_int_equal(proto_decode_u32_field(p, plen, PT_BYTES, &v), PROTO_OK);
    assert_int_equal(v, 262144);
    /* Asking for a tag that is not there is an error. */
    assert_int_equal(proto_decode_u32_field(p, plen, PT_SIGNAL, &v), PROTO_E_FIELD);
}

static void test_roundtrip_shutdown(void **state)
{
    uint32_t mode = 9, timeout = 9;
    size_t n = proto_encode_shutdown(&W, 1, 5000), plen;
    assert_wire(W.buf, n, "1400000000000000060001000a0004000000010000000b000400000088130000");
    const uint8_t *p = parse_w(n, 0, PROTO_SHUTDOWN, &plen);
    assert_int_equal(proto_decode_shutdown(p, plen, &mode, &timeout), PROTO_OK);
    assert_int_equal(mode, 1);
    assert_int_equal(timeout, 5000);
    /* Empty SHUTDOWN: poweroff, no timeout. */
    assert_int_equal(proto_decode_shutdown(p, 0, &mode, &timeout), PROTO_OK);
    assert_int_equal(mode, 0);
    assert_int_equal(timeout, 0);
    /* Mode 2 does not exist. */
    n = proto_encode_shutdown(&W, 2, 0);
    p = parse_w(n, 0, PROTO_SHUTDOWN, &plen);
    assert_int_equal(proto_decode_shutdown(p, plen, &mode, &timeout), PROTO_E_FIELD);
}

static void test_roundtrip_resize(void **state)
{
    uint32_t rows = 0, cols = 0;
    size_t n = proto_encode_resize(&W, 2, 50, 132), plen;
    assert_wire(W.buf, n, "1400000002000000180001001300040000003200000014000400000084000000");
    const uint8_t *p = parse_w(n, 2, PROTO_RESIZE, &plen);
    assert_int_equal(proto_decode_resize(p, plen, &rows, &cols), PROTO_OK);
    assert_int_equal(rows, 50);
    assert_int_equal(cols, 132);
    n = proto_encode_resize(&W, 2, 70000, 80);
    p = parse_w(n, 2, PROTO_RESIZE, &plen);
    assert_int_equal(proto_decode_resize(p, plen, &rows, &cols), PROTO_E_FIELD);
}

static void test_roundtrip_vmm_hello(void **state)
{
    struct proto_vmm_hello in, out;
    memset(&in, 0, sizeof(in));
    in.version = 1;
    snprintf(in.backend, sizeof(in.backend), "%s", "qemu");
    snprintf(in.accel, sizeof(in.accel), "%s", "tcg");
    snprintf(in.box_id, sizeof(in.box_id), "%s", "3fa2c9e01b7d");
    snprintf(in.kernel, sizeof(in.kernel), "%s", "6.1.192");
    in.boot_ns = 1;
    in.init_ns = 2;
    in.ready_ms = 1234;
    size_t n = proto_encode_vmm_hello(&W, &in), plen;
    assert_wire(W.buf, n,
                "620000000000000020000100010004000000010000001a000400000071656d751b00030000007463671c000c00000033"
                "6661326339653031623764050007000000362e312e313932060008000000010000000000000007000800000002000000"
                "000000001d0004000000d2040000");
    const uint8_t *p = parse_w(n, 0, PROTO_VMM_HELLO, &plen);
    assert_int_equal(proto_decode_vmm_hello(p, plen, &out), PROTO_OK);
    assert_int_equal(out.version, 1);
    assert_string_equal(out.backend, "qemu");
    assert_string_equal(out.accel, "tcg");
    assert_string_equal(out.box_id, "3fa2c9e01b7d");
    assert_string_equal(out.kernel, "6.1.192");
    assert_true(out.boot_ns == 1 && out.init_ns == 2);
    assert_int_equal(out.ready_ms, 1234);
}

static void test_type_tables(void **state)
{
    for (unsigned t = 0; t <= PROTO_TYPE_MAX + 2; t++) {
        int known = proto_type_known(t);
        assert_int_equal(known, proto_type_name(t) != NULL);
        if (proto_type_is_session(t) || proto_type_is_data(t))
            assert_true(known);
    }
    assert_string_equal(proto_type_name(PROTO_EXEC), "EXEC");
    assert_false(proto_type_known(0));
    assert_false(proto_type_known(8));
    assert_false(proto_type_known(PROTO_TYPE_MAX));
    for (int s = -9; s <= 1; s++)
        assert_non_null(proto_strerror(s));
}

/* ---- header rejects ---- */

static void hdr(uint8_t *b, uint32_t len, uint32_t stream, uint16_t type, uint8_t version, uint8_t flags)
{
    put32(b, len);
    put32(b + 4, stream);
    put16(b + 8, type);
    b[10] = version;
    b[11] = flags;
}

static void test_header_encode_layout(void **state)
{
    uint8_t b[PROTO_HEADER_SIZE];
    proto_header_encode(b, 0x01020304, 0x0a0b0c0d, 0x0110);
    const uint8_t want[] = {4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a, 0x10, 0x01, 1, 0};
    assert_memory_equal(b, want, sizeof(want));
}

static void test_header_truncated(void **state)
{
    uint8_t b[PROTO_HEADER_SIZE + 4];
    struct proto_header h;
    const uint8_t *p;
    size_t fl;
    hdr(b, 4, 1, PROTO_STDOUT, 1, 0);
    memcpy(b + 12, "abcd", 4);
    for (size_t n = 0; n < PROTO_HEADER_SIZE; n++) {
        assert_int_equal(proto_header_decode(b, n, &h), PROTO_NEED_MORE);
        assert_int_equal(proto_frame_parse(b, n, &h, &p, &fl), PROTO_NEED_MORE);
    }
    /* Header complete, payload not. */
    for (size_t n = PROTO_HEADER_SIZE; n < sizeof(b); n++)
        assert_int_equal(proto_frame_parse(b, n, &h, &p, &fl), PROTO_NEED_MORE);
    assert_int_equal(proto_frame_parse(b, sizeof(b), &h, &p, &fl), PROTO_OK);
    assert_int_equal(fl, sizeof(b));
    assert_ptr_equal(p, b + 12);
}

static void test_header_oversize(void **state)
{
    uint8_t b[PROTO_HEADER_SIZE];
    struct proto_header h;
    hdr(b, PROTO_MAX_PAYLOAD, 1, PROTO_STDOUT, 1, 0);
    assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_OK);
    hdr(b, PROTO_MAX_PAYLOAD + 1, 1, PROTO_STDOUT, 1, 0);
    assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_E_OVERSIZE);
    hdr(b, 0xffffffffu, 1, PROTO_STDOUT, 1, 0);
    assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_E_OVERSIZE);
    /* frame_parse fails on the header alone: it must not wait for 4 GiB. */
    const uint8_t *p;
    size_t fl;
    assert_int_equal(proto_frame_parse(b, sizeof(b), &h, &p, &fl), PROTO_E_OVERSIZE);
}

static void test_header_unknown_type(void **state)
{
    uint8_t b[PROTO_HEADER_SIZE];
    struct proto_header h;
    const uint16_t bad[] = {0, 8, 15, 26, 31, 37, 63, 64, 0xffff};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hdr(b, 0, 1, bad[i], 1, 0);
        assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_E_TYPE);
    }
}

static void test_header_wrong_version(void **state)
{
    uint8_t b[PROTO_HEADER_SIZE];
    struct proto_header h;
    const uint8_t bad[] = {0, 2, 0x7f, 0xff};
    for (size_t i = 0; i < sizeof(bad); i++) {
        hdr(b, 0, 0, PROTO_PING, bad[i], 0);
        assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_E_VERSION);
    }
}

static void test_header_flags(void **state)
{
    uint8_t b[PROTO_HEADER_SIZE];
    struct proto_header h;
    for (unsigned f = 1; f < 256; f <<= 1) {
        hdr(b, 0, 0, PROTO_PING, 1, (uint8_t)f);
        assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_E_FLAGS);
    }
}

static void test_header_stream_rules(void **state)
{
    uint8_t b[PROTO_HEADER_SIZE];
    struct proto_header h;
    /* Session types only on stream 0. */
    const uint16_t session[] = {PROTO_HELLO, PROTO_CONFIG, PROTO_READY, PROTO_SHUTDOWN, PROTO_VMM_HELLO};
    for (size_t i = 0; i < sizeof(session) / sizeof(session[0]); i++) {
        hdr(b, 0, 0, session[i], 1, 0);
        assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_OK);
        hdr(b, 0, 1, session[i], 1, 0);
        assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_E_STREAM);
        hdr(b, 0, 0xffffffffu, session[i], 1, 0);
        assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_E_STREAM);
    }
    /* Exec types never on stream 0. */
    const uint16_t exec[] = {PROTO_EXEC,   PROTO_STARTED, PROTO_STDIN,  PROTO_STDIN_EOF, PROTO_STDOUT,
                             PROTO_STDERR, PROTO_EXIT,    PROTO_SIGNAL, PROTO_RESIZE,    PROTO_CREDIT};
    for (size_t i = 0; i < sizeof(exec) / sizeof(exec[0]); i++) {
        hdr(b, 0, 0, exec[i], 1, 0);
        assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_E_STREAM);
        hdr(b, 0, 5, exec[i], 1, 0);
        assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_OK);
    }
    /* PING, PONG and ERROR go on any stream. */
    const uint16_t any[] = {PROTO_PING, PROTO_PONG, PROTO_ERROR};
    for (size_t i = 0; i < 3; i++) {
        hdr(b, 0, 0, any[i], 1, 0);
        assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_OK);
        hdr(b, 0, 77, any[i], 1, 0);
        assert_int_equal(proto_header_decode(b, sizeof(b), &h), PROTO_OK);
    }
}

/* ---- TLV rejects ---- */

static void test_tlv_reader(void **state)
{
    struct proto_reader r;
    struct proto_field f;
    tlv_reset();
    tlv_u32(&T, PT_PID, 7);
    tlv_str(&T, PT_CWD, "/");
    proto_reader_init(&r, T.buf, T.len);
    assert_int_equal(proto_next_field(&r, &f), PROTO_OK);
    assert_int_equal(f.tag, PT_PID);
    assert_int_equal(f.len, 4);
    assert_int_equal(proto_next_field(&r, &f), PROTO_OK);
    assert_int_equal(f.tag, PT_CWD);
    assert_int_equal(proto_next_field(&r, &f), PROTO_NEED_MORE);
    /* A partial field header (1..5 bytes) is truncated. */
    for (size_t n = 1; n < 6; n++) {
        proto_reader_init(&r, T.buf, n);
        assert_int_equal(proto_next_field(&r, &f), PROTO_E_TRUNCATED);
    }
    /* u64/i32 accessors check sizes. */
    uint64_t v64;
    int32_t i32;
    proto_reader_init(&r, T.buf, T.len);
    assert_int_equal(proto_next_field(&r, &f), PROTO_OK);
    assert_int_equal(proto_field_u64(&f, &v64), PROTO_E_FIELD);
    assert_int_equal(proto_field_i32(&f, &i32), PROTO_OK);
    assert_int_equal(i32, 7);
    char small[2];
    assert_int_equal(proto_next_field(&r, &f), PROTO_OK);
    assert_int_equal(proto_field_str(&f, small, 0), PROTO_E_FIELD);
    assert_int_equal(proto_field_str(&f, small, 1), PROTO_E_FIELD); /* "/" needs 2 */
    assert_int_equal(proto_field_str(&f, small, 2), PROTO_OK);
    assert_string_equal(small, "/");
}

static void test_tlv_field_past_end(void **state)
{
    /* A field whose length claims more bytes than the payload holds. */
    uint8_t b[6 + 4];
    put16(b, PT_PID);
    put32(b + 2, 5);
    memset(b + 6, 0, 4);
    struct proto_started s;
    assert_int_equal(proto_decode_started(b, sizeof(b), &s), PROTO_E_TRUNCATED);
    put32(b + 2, 0xffffffffu);
    assert_int_equal(proto_decode_started(b, sizeof(b), &s), PROTO_E_TRUNCATED);
    static struct proto_exec e;
    put16(b, PT_ARGV);
    put32(b + 2, 0xfffffffau); /* 6 + len overflows 32 bits */
    assert_int_equal(proto_decode_exec(b, sizeof(b), &e), PROTO_E_TRUNCATED);
    assert_null(e.argv);
    /* Trailing garbage shorter than a field header. */
    tlv_reset();
    tlv_u32(&T, PT_CODE, 0);
    T.buf[T.len++] = 1;
    struct proto_exit x;
    assert_int_equal(proto_decode_exit(T.buf, T.len, &x), PROTO_E_TRUNCATED);
}

static void test_tlv_u32_wrong_size(void **state)
{
    struct proto_started s;
    const uint8_t zero[8] = {0};
    for (uint32_t n = 0; n <= 8; n++) {
        if (n == 4)
            continue;
        tlv_reset();
        tlv_raw(&T, PT_PID, zero, n);
        tlv_u32(&T, PT_WINDOW, 1);
        assert_int_equal(proto_decode_started(T.buf, T.len, &s), PROTO_E_FIELD);
    }
    /* u64 field given 4 bytes. */
    tlv_reset();
    tlv_u32(&T, PT_VERSION_MIN, 1);
    tlv_u32(&T, PT_VERSION_MAX, 1);
    tlv_u32(&T, PT_BOOT_NS, 1);
    struct proto_hello h;
    assert_int_equal(proto_decode_hello(T.buf, T.len, &h), PROTO_E_FIELD);
}

static void test_tlv_duplicate_scalar(void **state)
{
    struct proto_started s;
    tlv_reset();
    tlv_u32(&T, PT_PID, 1);
    tlv_u32(&T, PT_WINDOW, 1);
    assert_int_equal(proto_decode_started(T.buf, T.len, &s), PROTO_OK);
    tlv_u32(&T, PT_PID, 2);
    assert_int_equal(proto_decode_started(T.buf, T.len, &s), PROTO_E_FIELD);

    struct proto_exit x;
    tlv_reset();
    tlv_u32(&T, PT_CODE, 0);
    tlv_u32(&T, PT_CODE, 1);
    assert_int_equal(proto_decode_exit(T.buf, T.len, &x), PROTO_E_FIELD);

    uint32_t v;
    tlv_reset();
    tlv_u32(&T, PT_BYTES, 10);
    tlv_u32(&T, PT_BYTES, 10);
    assert_int_equal(proto_decode_u32_field(T.buf, T.len, PT_BYTES, &v), PROTO_E_FIELD);

    static struct proto_exec e;
    tlv_reset();
    tlv_str(&T, PT_ARGV, "ls");
    tlv_str(&T, PT_CWD, "/");
    tlv_str(&T, PT_CWD, "/root");
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    assert_null(e.argv);

    struct proto_config c;
    tlv_reset();
    tlv_u32(&T, PT_VERSION, 1);
    tlv_str(&T, PT_HOSTNAME, "a");
    tlv_str(&T, PT_HOSTNAME, "b");
    assert_int_equal(proto_decode_config(T.buf, T.len, &c), PROTO_E_FIELD);
}

static void test_tlv_nul_in_string(void **state)
{
    static struct proto_exec e;
    tlv_reset();
    tlv_raw(&T, PT_ARGV, "ls\0-la", 6);
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    tlv_reset();
    tlv_str(&T, PT_ARGV, "ls");
    tlv_raw(&T, PT_ENV, "A=b\0c", 5);
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    tlv_reset();
    tlv_str(&T, PT_ARGV, "ls");
    tlv_raw(&T, PT_CWD, "/tmp\0/etc", 9);
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);

    struct proto_error_msg m;
    tlv_reset();
    tlv_raw(&T, PT_MESSAGE, "\0", 1);
    assert_int_equal(proto_decode_error(T.buf, T.len, &m), PROTO_E_FIELD);
}

static void test_tlv_too_many_argv(void **state)
{
    static struct proto_exec e;
    tlv_reset();
    for (int i = 0; i < (int)PROTO_MAX_LIST; i++)
        tlv_str(&T, PT_ARGV, "x");
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_OK);
    assert_int_equal(e.argc, PROTO_MAX_LIST);
    proto_exec_free(&e);
    tlv_str(&T, PT_ARGV, "x"); /* 1025 */
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    assert_null(e.argv);
    /* Same bound for ENV. */
    tlv_reset();
    tlv_str(&T, PT_ARGV, "env");
    for (int i = 0; i <= (int)PROTO_MAX_LIST; i++)
        tlv_str(&T, PT_ENV, "A=1");
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    assert_null(e.env);
}

static void test_tlv_long_string(void **state)
{
    static char s[PROTO_MAX_STRING + 1];
    static struct proto_exec e;
    memset(s, 'a', sizeof(s) - 1);
    s[PROTO_MAX_STRING - 1] = 0; /* 4095 bytes: the longest allowed */
    tlv_reset();
    tlv_str(&T, PT_ARGV, s);
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_OK);
    assert_int_equal(strlen(e.argv[0]), PROTO_MAX_STRING - 1);
    proto_exec_free(&e);

    memset(s, 'a', sizeof(s) - 1);
    s[PROTO_MAX_STRING] = 0; /* 4096 bytes */
    tlv_reset();
    tlv_str(&T, PT_ARGV, s);
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    tlv_reset();
    tlv_str(&T, PT_ARGV, "pwd");
    tlv_str(&T, PT_CWD, s);
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);

    /* A string longer than the decoded struct's buffer. */
    struct proto_hello h;
    memset(s, 'k', 200);
    s[200] = 0;
    tlv_reset();
    tlv_u32(&T, PT_VERSION_MIN, 1);
    tlv_u32(&T, PT_VERSION_MAX, 1);
    tlv_str(&T, PT_KERNEL, s);
    assert_int_equal(proto_decode_hello(T.buf, T.len, &h), PROTO_E_FIELD);

    /* The writer refuses to encode an over-long string. */
    memset(s, 'a', sizeof(s) - 1);
    s[PROTO_MAX_STRING] = 0;
    proto_writer_begin(&W, 1, PROTO_EXEC);
    proto_put_str(&W, PT_ARGV, s);
    assert_int_equal(proto_writer_finish(&W), 0);
}

static void test_tlv_exec_invalid(void **state)
{
    static struct proto_exec e;
    /* No argv at all. */
    tlv_reset();
    tlv_str(&T, PT_CWD, "/");
    tlv_u32(&T, PT_WINDOW, 100);
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    assert_int_equal(proto_decode_exec(T.buf, 0, &e), PROTO_E_FIELD);
    /* Empty argv[0]. */
    tlv_reset();
    tlv_str(&T, PT_ARGV, "");
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    /* Window 0 would deadlock the stream. */
    tlv_reset();
    tlv_str(&T, PT_ARGV, "ls");
    tlv_u32(&T, PT_WINDOW, 0);
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    /* TTY is a boolean. */
    tlv_reset();
    tlv_str(&T, PT_ARGV, "ls");
    tlv_u32(&T, PT_TTY, 2);
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    /* ENV entries need '='. */
    tlv_reset();
    tlv_str(&T, PT_ARGV, "ls");
    tlv_str(&T, PT_ENV, "NOEQUALS");
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_E_FIELD);
    assert_null(e.argv);
    assert_null(e.env);
}

static void test_tlv_exit_invalid(void **state)
{
    struct proto_exit x;
    tlv_reset();
    tlv_u32(&T, PT_CODE, 300);
    assert_int_equal(proto_decode_exit(T.buf, T.len, &x), PROTO_E_FIELD);
    tlv_reset();
    tlv_u32(&T, PT_CODE, (uint32_t)-1);
    assert_int_equal(proto_decode_exit(T.buf, T.len, &x), PROTO_E_FIELD);
    tlv_reset();
    tlv_u32(&T, PT_CODE, 0);
    tlv_u32(&T, PT_SIGNAL, 65);
    assert_int_equal(proto_decode_exit(T.buf, T.len, &x), PROTO_E_FIELD);
    /* CODE is required. */
    tlv_reset();
    tlv_u32(&T, PT_SIGNAL, 9);
    assert_int_equal(proto_decode_exit(T.buf, T.len, &x), PROTO_E_FIELD);
    tlv_reset();
    tlv_u32(&T, PT_CODE, 255);
    tlv_u32(&T, PT_SIGNAL, 64);
    assert_int_equal(proto_decode_exit(T.buf, T.len, &x), PROTO_OK);
}

static void test_tlv_missing_required(void **state)
{
    struct proto_hello h;
    struct proto_config c;
    struct proto_started s;
    struct proto_error_msg m;
    struct proto_vmm_hello v;
    assert_int_equal(proto_decode_hello(NULL, 0, &h), PROTO_E_FIELD);
    assert_int_equal(proto_decode_config(NULL, 0, &c), PROTO_E_FIELD);
    assert_int_equal(proto_decode_started(NULL, 0, &s), PROTO_E_FIELD);
    assert_int_equal(proto_decode_error(NULL, 0, &m), PROTO_E_FIELD);
    assert_int_equal(proto_decode_vmm_hello(NULL, 0, &v), PROTO_E_FIELD);
    struct proto_ready r;
    assert_int_equal(proto_decode_ready(NULL, 0, &r), PROTO_OK); /* all optional */
    /* HELLO with min > max. */
    tlv_reset();
    tlv_u32(&T, PT_VERSION_MIN, 3);
    tlv_u32(&T, PT_VERSION_MAX, 2);
    assert_int_equal(proto_decode_hello(T.buf, T.len, &h), PROTO_E_FIELD);
}

static void test_tlv_unknown_tags_skipped(void **state)
{
    /* Unknown tags, both in the tracked range (< 64) and far above it, with any size. */
    static struct proto_exec e;
    tlv_reset();
    tlv_raw(&T, 60, "\x01\x02\x03", 3);
    tlv_str(&T, PT_ARGV, "echo");
    tlv_raw(&T, 0x1234, "whatever", 8);
    tlv_raw(&T, 0x1234, "repeated", 8); /* high tags may repeat */
    tlv_str(&T, PT_ARGV, "hi");
    tlv_raw(&T, 0xffff, NULL, 0);
    assert_int_equal(proto_decode_exec(T.buf, T.len, &e), PROTO_OK);
    assert_int_equal(e.argc, 2);
    assert_string_equal(e.argv[1], "hi");
    proto_exec_free(&e);

    struct proto_exit x;
    tlv_reset();
    tlv_u64(&T, 50, 99);
    tlv_u32(&T, PT_CODE, 7);
    tlv_str(&T, PT_MESSAGE, "a tag exit does not know");
    assert_int_equal(proto_decode_exit(T.buf, T.len, &x), PROTO_OK);
    assert_int_equal(x.code, 7);

    struct proto_hello h;
    tlv_reset();
    tlv_u32(&T, PT_VERSION_MIN, 1);
    tlv_u32(&T, PT_VERSION_MAX, 2);
    tlv_raw(&T, 1000, "future", 6);
    assert_int_equal(proto_decode_hello(T.buf, T.len, &h), PROTO_OK);
    assert_int_equal(h.version_max, 2);
}

static void test_writer_overflow(void **state)
{
    static uint8_t big[PROTO_MAX_PAYLOAD + 1];
    /* Data one byte over the payload limit. */
    assert_int_equal(proto_encode_data(&W, 1, PROTO_STDOUT, big, sizeof(big)), 0);
    /* Exactly the limit fits. */
    assert_int_equal(proto_encode_data(&W, 1, PROTO_STDOUT, big, PROTO_MAX_PAYLOAD), PROTO_MAX_FRAME);
    /* Many fields until it no longer fits: overflow is sticky. */
    proto_writer_begin(&W, 1, PROTO_EXEC);
    static char s[4000];
    memset(s, 's', sizeof(s) - 1);
    for (int i = 0; i < 20; i++)
        proto_put_str(&W, PT_ARGV, s);
    assert_true(W.overflow);
    proto_put_u32(&W, PT_TTY, 0);
    assert_int_equal(proto_writer_finish(&W), 0);
    /* An EXEC too big for one frame. */
    char *argv[21];
    for (int i = 0; i < 20; i++)
        argv[i] = s;
    argv[20] = NULL;
    static struct proto_exec e;
    memset(&e, 0, sizeof(e));
    e.argv = argv;
    e.argc = 20;
    assert_int_equal(proto_encode_exec(&W, 1, &e), 0);
    /* The writer is reusable after begin. */
    assert_true(proto_encode_credit(&W, 1, 5) > 0);
}

/* ---- proto_conn over a socketpair ---- */

static void make_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
}

static void test_conn_one_byte_writes(void **state)
{
    int sv[2];
    make_pair(sv);
    struct proto_conn c;
    assert_int_equal(proto_conn_init(&c, sv[0], 0), 0);
    static uint8_t data[3000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i ^ 0x5a);
    size_t n = proto_encode_data(&W, 3, PROTO_STDOUT, data, sizeof(data));
    struct proto_header h;
    const uint8_t *p;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(write(sv[1], W.buf + i, 1), 1);
        assert_int_equal(proto_conn_read(&c), 1);
        int rc = proto_conn_next(&c, &h, &p);
        if (i + 1 < n)
            assert_int_equal(rc, PROTO_NEED_MORE);
        else
            assert_int_equal(rc, PROTO_OK);
    }
    assert_int_equal(h.type, PROTO_STDOUT);
    assert_int_equal(h.stream, 3);
    assert_int_equal(h.len, sizeof(data));
    assert_memory_equal(p, data, sizeof(data));
    assert_int_equal(proto_conn_next(&c, &h, &p), PROTO_NEED_MORE);
    /* Nothing more to read: EAGAIN. */
    errno = 0;
    assert_int_equal(proto_conn_read(&c), -1);
    assert_int_equal(errno, EAGAIN);
    /* EOF is reported. */
    close(sv[1]);
    assert_int_equal(proto_conn_read(&c), 0);
    assert_true(c.eof);
    proto_conn_free(&c);
    close(sv[0]);
}

static void test_conn_two_frames_one_write(void **state)
{
    int sv[2];
    make_pair(sv);
    struct proto_conn c;
    assert_int_equal(proto_conn_init(&c, sv[0], 0), 0);
    uint8_t both[256];
    size_t a = proto_encode_credit(&W, 4, 1000);
    memcpy(both, W.buf, a);
    struct proto_exit x = {.code = 3};
    size_t b = proto_encode_exit(&W, 4, &x);
    memcpy(both + a, W.buf, b);
    assert_int_equal(write(sv[1], both, a + b), (ssize_t)(a + b));
    assert_int_equal(proto_conn_read(&c), (long)(a + b));
    struct proto_header h;
    const uint8_t *p;
    uint32_t v;
    assert_int_equal(proto_conn_next(&c, &h, &p), PROTO_OK);
    assert_int_equal(h.type, PROTO_CREDIT);
    assert_int_equal(proto_decode_u32_field(p, h.len, PT_BYTES, &v), PROTO_OK);
    assert_int_equal(v, 1000);
    assert_int_equal(proto_conn_next(&c, &h, &p), PROTO_OK);
    assert_int_equal(h.type, PROTO_EXIT);
    struct proto_exit out;
    assert_int_equal(proto_decode_exit(p, h.len, &out), PROTO_OK);
    assert_int_equal(out.code, 3);
    assert_int_equal(proto_conn_next(&c, &h, &p), PROTO_NEED_MORE);
    proto_conn_free(&c);
    close(sv[0]);
    close(sv[1]);
}

static void test_conn_many_max_frames(void **state)
{
    /* Max-size frames streamed through: the inbound buffer compacts and never needs
     * more than two frames; the sender's queue absorbs what the socket cannot take. */
    int sv[2];
    make_pair(sv);
    struct proto_conn rx, tx;
    assert_int_equal(proto_conn_init(&rx, sv[0], 0), 0);
    assert_int_equal(proto_conn_init(&tx, sv[1], 0), 0);
    static uint8_t data[PROTO_MAX_PAYLOAD];
    const int frames = 40;
    int sent = 0, got = 0;
    while (got < frames) {
        if (sent < frames && proto_conn_pending(&tx) < 2 * PROTO_MAX_FRAME) {
            memset(data, sent, sizeof(data));
            size_t n = proto_encode_data(&W, 1, PROTO_STDOUT, data, sizeof(data));
            assert_int_equal(proto_conn_send(&tx, W.buf, n), 0);
            sent++;
        }
        assert_int_equal(proto_conn_flush(&tx), 0);
        long r = proto_conn_read(&rx);
        assert_true(r > 0 || (r < 0 && errno == EAGAIN));
        struct proto_header h;
        const uint8_t *p;
        int rc;
        while ((rc = proto_conn_next(&rx, &h, &p)) == PROTO_OK) {
            assert_int_equal(h.len, PROTO_MAX_PAYLOAD);
            assert_int_equal(p[0], (uint8_t)got);
            assert_int_equal(p[PROTO_MAX_PAYLOAD - 1], (uint8_t)got);
            got++;
        }
        assert_int_equal(rc, PROTO_NEED_MORE);
        assert_true(rx.in_len <= 2 * PROTO_MAX_FRAME);
    }
    assert_int_equal(proto_conn_pending(&tx), 0);
    proto_conn_free(&rx);
    proto_conn_free(&tx);
    close(sv[0]);
    close(sv[1]);
}

static void test_conn_oversize_header(void **state)
{
    int sv[2];
    make_pair(sv);
    struct proto_conn c;
    assert_int_equal(proto_conn_init(&c, sv[0], 0), 0);
    uint8_t b[PROTO_HEADER_SIZE];
    hdr(b, PROTO_MAX_PAYLOAD + 1, 1, PROTO_STDOUT, 1, 0);
    assert_int_equal(write(sv[1], b, sizeof(b)), (ssize_t)sizeof(b));
    assert_int_equal(proto_conn_read(&c), (long)sizeof(b));
    struct proto_header h;
    const uint8_t *p;
    assert_int_equal(proto_conn_next(&c, &h, &p), PROTO_E_OVERSIZE);
    /* The failure is stable: the stream stays unusable. */
    assert_int_equal(proto_conn_next(&c, &h, &p), PROTO_E_OVERSIZE);
    proto_conn_free(&c);
    close(sv[0]);
    close(sv[1]);
}

static void test_conn_bad_frame_after_good(void **state)
{
    int sv[2];
    make_pair(sv);
    struct proto_conn c;
    assert_int_equal(proto_conn_init(&c, sv[0], 0), 0);
    uint8_t b[64];
    size_t a = proto_encode_credit(&W, 2, 1);
    memcpy(b, W.buf, a);
    hdr(b + a, 0, 0, PROTO_EXEC, 1, 0); /* EXEC on stream 0 */
    assert_int_equal(write(sv[1], b, a + 12), (ssize_t)(a + 12));
    assert_true(proto_conn_read(&c) > 0);
    struct proto_header h;
    const uint8_t *p;
    assert_int_equal(proto_conn_next(&c, &h, &p), PROTO_OK);
    assert_int_equal(proto_conn_next(&c, &h, &p), PROTO_E_STREAM);
    proto_conn_free(&c);
    close(sv[0]);
    close(sv[1]);
}

static void test_conn_out_limit(void **state)
{
    int sv[2];
    make_pair(sv);
    struct proto_conn tx;
    const size_t limit = 300000;
    assert_int_equal(proto_conn_init(&tx, sv[1], limit), 0);
    assert_int_equal(tx.out_limit, limit);
    static uint8_t data[PROTO_MAX_PAYLOAD];
    size_t n = proto_encode_data(&W, 1, PROTO_STDOUT, data, sizeof(data));
    /* Nobody reads sv[0]: the socket buffer fills, then the queue, then send fails. */
    int ok = 0, rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = proto_conn_send(&tx, W.buf, n);
        if (rc == 0)
            ok++;
    }
    assert_int_equal(rc, -1);
    assert_int_equal(errno, ENOBUFS);
    assert_true(ok > 0);
    assert_true(proto_conn_pending(&tx) <= limit);
    assert_true(proto_conn_pending(&tx) + n > limit);
    /* Draining the peer lets the queue empty and sending work again. */
    static uint8_t sink[1 << 16];
    size_t pending;
    for (int i = 0; i < 10000 && (pending = proto_conn_pending(&tx)) > 0; i++) {
        while (read(sv[0], sink, sizeof(sink)) > 0)
            ;
        assert_int_equal(proto_conn_flush(&tx), 0);
    }
    assert_int_equal(proto_conn_pending(&tx), 0);
    assert_int_equal(proto_conn_send(&tx, W.buf, n), 0);
    /* A zero-length send is refused. */
    assert_int_equal(proto_conn_send(&tx, W.buf, 0), -1);
    /* A write error (peer gone) is reported. */
    close(sv[0]);
    signal(SIGPIPE, SIG_IGN);
    int err = 0;
    for (int i = 0; i < 100 && !err; i++)
        err = proto_conn_send(&tx, W.buf, n) < 0;
    assert_true(err);
    proto_conn_free(&tx);
    close(sv[1]);
}

/* Corked, frames only queue; uncorking writes them together, so the peer reads both
 * in one read (an EXEC and its STDIN_EOF wake the guest once). */
static void test_conn_cork(void **state)
{
    int sv[2];
    make_pair(sv);
    struct proto_conn tx;
    assert_int_equal(proto_conn_init(&tx, sv[1], 0), 0);
    proto_conn_cork(&tx);
    size_t a = proto_encode_data(&W, 3, PROTO_STDOUT, "abc", 3);
    assert_int_equal(proto_conn_send(&tx, W.buf, a), 0);
    size_t b = proto_encode_data(&W, 3, PROTO_STDIN_EOF, NULL, 0);
    assert_int_equal(proto_conn_send(&tx, W.buf, b), 0);
    assert_int_equal(proto_conn_pending(&tx), a + b);
    uint8_t got[256];
    assert_int_equal(read(sv[0], got, sizeof(got)), -1); /* nothing written yet */
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(proto_conn_uncork(&tx), 0);
    assert_int_equal(proto_conn_pending(&tx), 0);
    assert_int_equal(read(sv[0], got, sizeof(got)), (ssize_t)(a + b));
    /* Uncorked again: a send writes at once. */
    assert_int_equal(proto_conn_send(&tx, W.buf, b), 0);
    assert_int_equal(read(sv[0], got, sizeof(got)), (ssize_t)b);
    proto_conn_free(&tx);
    close(sv[0]);
    close(sv[1]);
}

static void test_conn_default_limit(void **state)
{
    struct proto_conn c;
    assert_int_equal(proto_conn_init(&c, -1, 0), 0);
    assert_int_equal(c.out_limit, 8u * 1024 * 1024);
    proto_conn_free(&c);
    proto_conn_free(&c); /* idempotent */
}

/* ---- FILE_PUT / FILE_GET / STATS / STATS_REPLY ---- */

static void test_file_roundtrip(void **state)
{
    static struct proto_writer w;
    static struct proto_file m, back;
    memset(&m, 0, sizeof(m));
    snprintf(m.path, sizeof(m.path), "%s", "/root/ünï code/a b");
    m.window = 4096;
    m.flags = PROTO_FILE_EXACT;
    size_t n = proto_encode_file(&w, 5, PROTO_FILE_PUT, &m);
    assert_wire(w.buf, n,
                "2e00000005000000280001002800140000002f726f6f742fc3bc6ec3af20636f64652f61206215000400000000100000"
                "29000400000001000000");
    assert_true(n > PROTO_HEADER_SIZE);
    struct proto_header h;
    assert_int_equal(proto_header_decode(w.buf, n, &h), PROTO_OK);
    assert_int_equal(h.type, PROTO_FILE_PUT);
    assert_string_equal(proto_type_name(PROTO_FILE_GET), "FILE_GET");
    assert_int_equal(proto_decode_file(w.buf + PROTO_HEADER_SIZE, n - PROTO_HEADER_SIZE, &back), PROTO_OK);
    assert_string_equal(back.path, m.path);
    assert_int_equal(back.window, 4096);
    assert_int_equal(back.flags, PROTO_FILE_EXACT);
    /* defaults: window, no flags */
    tlv_reset();
    tlv_str(&T, PT_PATH, "/x");
    assert_int_equal(proto_decode_file(T.buf, T.len, &back), PROTO_OK);
    assert_int_equal(back.window, PROTO_DEFAULT_WINDOW);
    assert_int_equal(back.flags, 0);
    /* every known flag together */
    tlv_u32(&T, PT_FLAGS, PROTO_FILE_EXACT | PROTO_FILE_FOLLOW | PROTO_FILE_NO_REPLACE);
    assert_int_equal(proto_decode_file(T.buf, T.len, &back), PROTO_OK);
    assert_int_equal(back.flags, 7);
    /* a FILE_* frame on stream 0 is refused at the header */
    proto_header_encode(w.buf, 0, 0, PROTO_FILE_GET);
    assert_int_equal(proto_header_decode(w.buf, PROTO_HEADER_SIZE, &h), PROTO_E_STREAM);
}

static void test_file_invalid(void **state)
{
    static struct proto_file m;
    assert_int_equal(proto_decode_file(NULL, 0, &m), PROTO_E_FIELD); /* no PATH */
    tlv_reset();
    tlv_str(&T, PT_PATH, "");
    assert_int_equal(proto_decode_file(T.buf, T.len, &m), PROTO_E_FIELD); /* empty PATH */
    tlv_reset();
    tlv_str(&T, PT_PATH, "/a");
    tlv_u32(&T, PT_WINDOW, 0);
    assert_int_equal(proto_decode_file(T.buf, T.len, &m), PROTO_E_FIELD); /* WINDOW 0 */
    tlv_reset();
    tlv_str(&T, PT_PATH, "/a");
    tlv_u32(&T, PT_FLAGS, 0x80);
    assert_int_equal(proto_decode_file(T.buf, T.len, &m), PROTO_E_FIELD); /* unknown flag */
    tlv_reset();
    tlv_str(&T, PT_PATH, "/a");
    tlv_str(&T, PT_PATH, "/b");
    assert_int_equal(proto_decode_file(T.buf, T.len, &m), PROTO_E_FIELD); /* duplicate */
    tlv_reset();
    tlv_raw(&T, PT_PATH, "/a\0b", 4);
    assert_int_equal(proto_decode_file(T.buf, T.len, &m), PROTO_E_FIELD); /* NUL */
    static char longpath[PROTO_MAX_STRING + 1];
    memset(longpath, 'a', PROTO_MAX_STRING);
    tlv_reset();
    tlv_str(&T, PT_PATH, longpath);
    assert_int_equal(proto_decode_file(T.buf, T.len, &m), PROTO_E_FIELD); /* too long */
    tlv_reset();
    tlv_str(&T, PT_PATH, "/a");
    tlv_raw(&T, PT_FLAGS, "\1\0", 2);
    assert_int_equal(proto_decode_file(T.buf, T.len, &m), PROTO_E_FIELD); /* u32 of 2 bytes */
    tlv_reset();
    tlv_str(&T, PT_PATH, "/a");
    T.len -= 1;
    assert_int_equal(proto_decode_file(T.buf, T.len, &m), PROTO_E_TRUNCATED);
}

static void test_stats_roundtrip(void **state)
{
    static struct proto_writer w;
    struct proto_stats s, back;
    memset(&s, 0, sizeof(s)); /* padding too: the structs are compared bytewise */
    s.cpu_ns = 123456789012ull;
    s.mem_total = 1ull << 30;
    s.mem_available = 900u << 20;
    s.mem_free = 800u << 20;
    s.disk_total = 4ull << 30;
    s.disk_used = 1ull << 28;
    s.disk_available = 3ull << 30;
    s.uptime_ns = 5 * 1000000000ull;
    s.cpus = 2;
    s.procs = 31;
    s.load1 = 1500;
    s.load5 = 250;
    s.load15 = 5;
    size_t n = proto_encode_stats_reply(&w, 9, &s);
    assert_wire(w.buf, n,
                "a2000000090000002b0001002a0008000000141a99be1c0000002b0004000000020000002c0008000000000000400000"
                "00002d000800000000004038000000002e000800000000000032000000002f0008000000000000000100000030000800"
                "00000000001000000000310008000000000000c0000000003200040000001f00000033000800000000f2052a01000000"
                "340004000000dc050000350004000000fa00000036000400000005000000");
    assert_true(n > 0);
    assert_int_equal(proto_decode_stats_reply(w.buf + PROTO_HEADER_SIZE, n - PROTO_HEADER_SIZE, &back), PROTO_OK);
    assert_memory_equal(&s, &back, sizeof(s));
    n = proto_encode_stats(&w, 9);
    assert_wire(w.buf, n, "00000000090000002a000100");
    assert_int_equal(n, PROTO_HEADER_SIZE);
    assert_int_equal(proto_decode_stats(w.buf + PROTO_HEADER_SIZE, 0), PROTO_OK);
    /* the request skips unknown fields but not duplicates or truncation */
    tlv_reset();
    tlv_u32(&T, 60, 1);
    assert_int_equal(proto_decode_stats(T.buf, T.len), PROTO_OK);
    tlv_u32(&T, 60, 1);
    assert_int_equal(proto_decode_stats(T.buf, T.len), PROTO_E_FIELD);
}

static void test_vmm_execs_roundtrip(void **state)
{
    (void)state;
    static struct proto_writer w;
    struct proto_exec_entry in[3] = {{30, "sh -c sleep 200"}, {31, "sleep 100"}, {40, ""}};
    size_t len = proto_encode_vmm_execs(&w, in, 3);
    assert_wire(w.buf, len,
                "4800000000000000220001004000040000001e00000041000f0000007368202d6320736c656570203230304000040000"
                "001f000000410009000000736c6565702031303040000400000028000000410000000000");
    assert_true(len > 0);
    struct proto_header h;
    assert_int_equal(proto_header_decode(w.buf, len, &h), PROTO_OK);
    assert_int_equal(h.type, PROTO_VMM_EXECS);
    struct proto_exec_entry out[3];
    size_t n = 0;
    assert_int_equal(proto_decode_vmm_execs(w.buf + PROTO_HEADER_SIZE, h.len, out, 3, &n), PROTO_OK);
    assert_int_equal(n, 3);
    assert_int_equal(out[1].pid, 31);
    assert_string_equal(out[0].cmd, "sh -c sleep 200");
    assert_string_equal(out[2].cmd, "");
    /* fewer slots than entries: the count says so, nothing is written past cap */
    assert_int_equal(proto_decode_vmm_execs(w.buf + PROTO_HEADER_SIZE, h.len, out, 1, &n), PROTO_OK);
    assert_int_equal(n, 3);
    /* an empty list */
    len = proto_encode_vmm_execs(&w, in, 0);
    assert_int_equal(proto_decode_vmm_execs(w.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, out, 3, &n), PROTO_OK);
    assert_int_equal(n, 0);
}

static void test_vmm_execs_invalid(void **state)
{
    (void)state;
    static struct proto_writer w;
    struct proto_exec_entry out[2];
    size_t n;
    /* a command without a pid before it */
    proto_writer_begin(&w, 0, PROTO_VMM_EXECS);
    proto_put_str(&w, PT_EXEC_CMD, "x");
    size_t len = proto_writer_finish(&w);
    assert_int_equal(proto_decode_vmm_execs(w.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, out, 2, &n),
                     PROTO_E_FIELD);
    /* a pid without its command */
    proto_writer_begin(&w, 0, PROTO_VMM_EXECS);
    proto_put_u32(&w, PT_EXEC_PID, 5);
    len = proto_writer_finish(&w);
    assert_int_equal(proto_decode_vmm_execs(w.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, out, 2, &n),
                     PROTO_E_FIELD);
    /* signal numbers outside 1..64 */
    len = proto_encode_signal_exec(&w, 7, 0);
    uint32_t pid, sig;
    assert_int_equal(proto_decode_signal_exec(w.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, &pid, &sig),
                     PROTO_E_FIELD);
    len = proto_encode_signal_exec(&w, 7, 9);
    assert_wire(w.buf, len, "1400000000000000230001001600040000000700000017000400000009000000");
    assert_int_equal(proto_decode_signal_exec(w.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, &pid, &sig),
                     PROTO_OK);
    assert_int_equal(pid, 7);
    assert_int_equal(sig, 9);
    /* the listing types are session-only */
    uint8_t hdr[PROTO_HEADER_SIZE];
    struct proto_header h;
    proto_header_encode(hdr, 0, 3, PROTO_VMM_LIST_EXECS);
    assert_int_equal(proto_header_decode(hdr, sizeof(hdr), &h), PROTO_E_STREAM);
}

static void test_stats_reply_invalid(void **state)
{
    struct proto_stats s;
    assert_int_equal(proto_decode_stats_reply(NULL, 0, &s), PROTO_E_FIELD); /* no UPTIME_NS */
    tlv_reset();
    tlv_u64(&T, PT_UPTIME_NS, 1);
    tlv_u64(&T, PT_MEM_TOTAL, 100);
    tlv_u64(&T, PT_MEM_AVAILABLE, 200);
    assert_int_equal(proto_decode_stats_reply(T.buf, T.len, &s), PROTO_E_FIELD); /* available > total */
    tlv_reset();
    tlv_u64(&T, PT_UPTIME_NS, 1);
    tlv_u64(&T, PT_DISK_USED, 1);
    assert_int_equal(proto_decode_stats_reply(T.buf, T.len, &s), PROTO_E_FIELD); /* used > total (0) */
    tlv_reset();
    tlv_u32(&T, PT_UPTIME_NS, 1);
    assert_int_equal(proto_decode_stats_reply(T.buf, T.len, &s), PROTO_E_FIELD); /* u64 as 4 bytes */
    tlv_reset();
    tlv_u64(&T, PT_UPTIME_NS, 1);
    tlv_u64(&T, PT_UPTIME_NS, 2);
    assert_int_equal(proto_decode_stats_reply(T.buf, T.len, &s), PROTO_E_FIELD); /* duplicate */
}

/* Live snapshots: VMM_SNAPSHOT, FREEZE and FROZEN round trips and refusals. */
static void test_snapshot_messages(void **state)
{
    (void)state;
    struct proto_snapshot a = {.timeout_ms = 5000, .code = 1}, b;
    snprintf(a.message, sizeof(a.message), "why not");
    size_t len = proto_encode_vmm_snapshot(&W, &a);
    assert_true(len > 0);
    assert_int_equal(proto_decode_vmm_snapshot(W.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, &b), PROTO_OK);
    assert_int_equal(b.timeout_ms, 5000);
    assert_int_equal(b.code, 1);
    assert_string_equal(b.message, "why not");
    tlv_reset();
    tlv_u32(&T, PT_FLAGS, 2);
    assert_int_equal(proto_decode_vmm_snapshot(T.buf, T.len, &b), PROTO_E_FIELD); /* only MEMORY is defined */
    tlv_reset();
    tlv_u32(&T, PT_TIMEOUT_MS, PROTO_FREEZE_MAX_MS + 1);
    assert_int_equal(proto_decode_vmm_snapshot(T.buf, T.len, &b), PROTO_E_FIELD);
    uint32_t ms, fl;
    len = proto_encode_freeze(&W, 1234, PROTO_FREEZE_MUTE);
    assert_int_equal(proto_decode_freeze(W.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, &ms, &fl), PROTO_OK);
    assert_int_equal(ms, 1234);
    assert_int_equal(fl, PROTO_FREEZE_MUTE);
    assert_int_equal(proto_decode_freeze(NULL, 0, &ms, &fl), PROTO_E_FIELD); /* TIMEOUT_MS is required */
    tlv_reset();
    tlv_u32(&T, PT_TIMEOUT_MS, PROTO_FREEZE_MAX_MS + 1);
    assert_int_equal(proto_decode_freeze(T.buf, T.len, &ms, &fl), PROTO_E_FIELD);
    tlv_reset();
    tlv_u32(&T, PT_TIMEOUT_MS, 1);
    tlv_u32(&T, PT_FLAGS, 2);
    assert_int_equal(proto_decode_freeze(T.buf, T.len, &ms, &fl), PROTO_E_FIELD); /* unknown flag */
    struct proto_restored rs = {.realtime_ns = 99, .seed = {1, 2, 3, 4}}, rs2;
    len = proto_encode_restored(&W, &rs);
    assert_int_equal(proto_decode_restored(W.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, &rs2), PROTO_OK);
    assert_memory_equal(&rs, &rs2, sizeof(rs));
    tlv_reset();
    tlv_u64(&T, PT_REALTIME_NS, 1);
    tlv_u64(&T, PT_SEED, 1);
    assert_int_equal(proto_decode_restored(T.buf, T.len, &rs2), PROTO_E_FIELD); /* one seed of four */
    for (int i = 0; i < 4; i++)
        tlv_u64(&T, PT_SEED, 1);
    assert_int_equal(proto_decode_restored(T.buf, T.len, &rs2), PROTO_E_FIELD); /* five */
    tlv_reset();
    for (int i = 0; i < 4; i++)
        tlv_u32(&T, PT_SEED, 1);
    tlv_u64(&T, PT_REALTIME_NS, 1);
    assert_int_equal(proto_decode_restored(T.buf, T.len, &rs2), PROTO_E_FIELD); /* seeds of 4 bytes */
    struct proto_frozen f = {.mode = 1}, g;
    len = proto_encode_frozen(&W, &f);
    assert_int_equal(proto_decode_frozen(W.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, &g), PROTO_OK);
    assert_int_equal(g.mode, 1);
    assert_int_equal(proto_decode_frozen(NULL, 0, &g), PROTO_E_FIELD); /* MODE is required */
    tlv_reset();
    tlv_u32(&T, PT_MODE, 2);
    assert_int_equal(proto_decode_frozen(T.buf, T.len, &g), PROTO_E_FIELD);
    /* session messages only */
    struct proto_header h;
    uint8_t hdr[PROTO_HEADER_SIZE];
    proto_header_encode(hdr, 0, 3, PROTO_FREEZE);
    assert_int_equal(proto_header_decode(hdr, sizeof(hdr), &h), PROTO_E_STREAM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_messages),
        cmocka_unit_test(test_roundtrip_hello),
        cmocka_unit_test(test_roundtrip_config),
        cmocka_unit_test(test_roundtrip_ready),
        cmocka_unit_test(test_roundtrip_exec),
        cmocka_unit_test(test_roundtrip_exec_defaults),
        cmocka_unit_test(test_roundtrip_started),
        cmocka_unit_test(test_roundtrip_exit),
        cmocka_unit_test(test_roundtrip_error),
        cmocka_unit_test(test_roundtrip_data),
        cmocka_unit_test(test_roundtrip_signal_credit),
        cmocka_unit_test(test_roundtrip_shutdown),
        cmocka_unit_test(test_roundtrip_resize),
        cmocka_unit_test(test_roundtrip_vmm_hello),
        cmocka_unit_test(test_type_tables),
        cmocka_unit_test(test_header_encode_layout),
        cmocka_unit_test(test_header_truncated),
        cmocka_unit_test(test_header_oversize),
        cmocka_unit_test(test_header_unknown_type),
        cmocka_unit_test(test_header_wrong_version),
        cmocka_unit_test(test_header_flags),
        cmocka_unit_test(test_header_stream_rules),
        cmocka_unit_test(test_tlv_reader),
        cmocka_unit_test(test_tlv_field_past_end),
        cmocka_unit_test(test_tlv_u32_wrong_size),
        cmocka_unit_test(test_tlv_duplicate_scalar),
        cmocka_unit_test(test_tlv_nul_in_string),
        cmocka_unit_test(test_tlv_too_many_argv),
        cmocka_unit_test(test_tlv_long_string),
        cmocka_unit_test(test_tlv_exec_invalid),
        cmocka_unit_test(test_tlv_exit_invalid),
        cmocka_unit_test(test_tlv_missing_required),
        cmocka_unit_test(test_tlv_unknown_tags_skipped),
        cmocka_unit_test(test_writer_overflow),
        cmocka_unit_test(test_conn_one_byte_writes),
        cmocka_unit_test(test_conn_two_frames_one_write),
        cmocka_unit_test(test_conn_many_max_frames),
        cmocka_unit_test(test_conn_oversize_header),
        cmocka_unit_test(test_conn_bad_frame_after_good),
        cmocka_unit_test(test_conn_out_limit),
        cmocka_unit_test(test_conn_cork),
        cmocka_unit_test(test_conn_default_limit),
        cmocka_unit_test(test_file_roundtrip),
        cmocka_unit_test(test_file_invalid),
        cmocka_unit_test(test_stats_roundtrip),
        cmocka_unit_test(test_stats_reply_invalid),
        cmocka_unit_test(test_vmm_execs_roundtrip),
        cmocka_unit_test(test_vmm_execs_invalid),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
