/* Unit tests of the WebSocket layer of `cocoon serve` (src/serve/ws*.c): the handshake's
 * accept key and request checks, every rule of the client frame parser (masking, the
 * three length forms, fragmentation with interleaved control frames, the size bound,
 * UTF-8, close codes) fed whole and in arbitrary pieces, and the connection over a
 * socketpair: pongs, the closing handshake, timeouts, short writes, two threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/ws.h"

/* ---- a client's frames, built here independently of the code under test ---- */

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

enum { LEN_MINIMAL, LEN_FORCE16, LEN_FORCE64 };

struct frame_spec {
    int fin;      /* 1 or 0 */
    uint8_t rsv;  /* bits 0x70 */
    uint8_t op;   /* opcode */
    int unmasked; /* leave the mask bit clear */
    int lenform;  /* LEN_* */
};

/* Appends one frame to out (at *at) carrying payload, masked with MASK unless asked not to. */
static void put_frame(uint8_t *out, size_t *at, struct frame_spec s, const void *payload, size_t len)
{
    uint8_t *o = out + *at;
    size_t n = 0;
    o[n++] = (uint8_t)((s.fin ? 0x80 : 0) | s.rsv | s.op);
    uint8_t maskbit = s.unmasked ? 0 : 0x80;
    if (s.lenform == LEN_MINIMAL && len < 126) {
        o[n++] = (uint8_t)(maskbit | len);
    } else if (s.lenform != LEN_FORCE64 && len <= 0xffff) {
        o[n++] = maskbit | 126;
        o[n++] = (uint8_t)(len >> 8);
        o[n++] = (uint8_t)len;
    } else {
        o[n++] = maskbit | 127;
        for (int i = 7; i >= 0; i--)
            o[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (!s.unmasked) {
        memcpy(o + n, MASK, 4);
        n += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        o[n + i] = s.unmasked ? p[i] : (uint8_t)(p[i] ^ MASK[i % 4]);
    *at += n + len;
}

static void put(uint8_t *out, size_t *at, uint8_t op, int fin, const char *text)
{
    put_frame(out, at, (struct frame_spec){.fin = fin, .op = op}, text, strlen(text));
}

/* Events with their data copied out (the parser's pointers live until its next call). */
struct got {
    enum ws_event_type type;
    enum ws_opcode opcode;
    uint16_t close_code;
    size_t len;
    uint8_t *data;
};

struct run {
    struct got ev[32];
    int n;
    size_t consumed;
};

static void record(struct run *r, const struct ws_event *ev)
{
    assert_true(r->n < 32);
    struct got *g = &r->ev[r->n++];
    g->type = ev->type;
    g->opcode = ev->opcode;
    g->close_code = ev->close_code;
    g->len = ev->len;
    g->data = malloc(ev->len + 1);
    assert_non_null(g->data);
    if (ev->len)
        memcpy(g->data, ev->data, ev->len);
    g->data[ev->len] = 0;
}

static void run_free(struct run *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->ev[i].data);
    r->n = 0;
}

/* Feeds buf in pieces of `piece` bytes (0: whole), recording every event, until it is
 * consumed or the parser finished. */
static void feed(struct ws_parser *p, const uint8_t *buf, size_t len, size_t piece, struct run *r)
{
    size_t off = 0;
    while (off < len) {
        size_t end = piece && len - off > piece ? off + piece : len;
        while (off < end) {
            struct ws_event ev;
            size_t n = ws_parse(p, buf + off, end - off, &ev);
            assert_true(n <= end - off);
            off += n;
            if (ev.type != WS_EV_NONE)
                record(r, &ev);
            if (ev.type == WS_EV_CLOSE || ev.type == WS_EV_ERROR) {
                r->consumed = off;
                return;
            }
            if (ev.type == WS_EV_NONE)
                assert_int_equal(off, end);
        }
    }
    r->consumed = off;
}

static void parse_once(const uint8_t *buf, size_t len, size_t max, struct run *r)
{
    struct ws_parser p;
    ws_parser_init(&p, max);
    feed(&p, buf, len, 0, r);
    ws_parser_free(&p);
}

/* The single error a buffer leads to, with its close code. */
static void expect_error(const uint8_t *buf, size_t len, uint16_t code)
{
    struct run r = {0};
    parse_once(buf, len, 0, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].type, WS_EV_ERROR);
    assert_int_equal(r.ev[0].close_code, code);
    run_free(&r);
}

/* ---- handshake ---- */

static void test_accept_rfc_example(void **state)
{
    char out[WS_ACCEPT_SIZE];
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* Optional whitespace around a header value is not part of the key. */
    assert_int_equal(ws_accept_key(" \tdGhlIHNhbXBsZSBub25jZQ== ", out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_accept_bad_keys(void **state)
{
    static const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",    /* too short */
        "dGhlIHNhbXBsZSBub25jZQ===",  /* too long */
        "dGhlIHNhbXBsZSBub25jZQAA",   /* 18 bytes, no padding */
        "dGhlIHNhbXBsZSBub25j",       /* 15 bytes */
        "dGhlIHNhbXBsZSBub25jZQ-=",   /* bad padding */
        "dGhlIHNhbX*sZSBub25jZQ==",   /* not base64 */
        "dGhlIHNhbXBsZSBu b25jZQ==",  /* inner space */
        "dGhlIHNhbXBsZSBub25jZQ==x",  /* trailing junk */
        "dGhlIHNhbXBsZSBub25jZQ==\r", /* a control character */
    };
    char out[WS_ACCEPT_SIZE];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ws_accept_key(bad[i], out), -1);
    assert_int_equal(ws_accept_key(NULL, out), -1);
}

static void test_upgrade_check(void **state)
{
    char accept[WS_ACCEPT_SIZE];
    const char *why = "unset";
    struct ws_upgrade_request ok = {"GET", "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ=="};
    assert_int_equal(ws_upgrade_check(&ok, accept, &why), 0);
    assert_null(why);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    /* Token lists, any case (Firefox sends "keep-alive, Upgrade"). */
    struct ws_upgrade_request lists = {"GET", "WebSocket", "keep-alive, Upgrade", "13", ok.key};
    assert_int_equal(ws_upgrade_check(&lists, accept, &why), 0);

    struct {
        struct ws_upgrade_request req;
        int status;
    } cases[] = {
        {{"POST", "websocket", "Upgrade", "13", ok.key}, 405},
        {{NULL, "websocket", "Upgrade", "13", ok.key}, 405},
        {{"GET", NULL, "Upgrade", "13", ok.key}, 400},
        {{"GET", "h2c", "Upgrade", "13", ok.key}, 400},
        {{"GET", "websockets", "Upgrade", "13", ok.key}, 400},
        {{"GET", "websocket", NULL, "13", ok.key}, 400},
        {{"GET", "websocket", "keep-alive", "13", ok.key}, 400},
        {{"GET", "websocket", "Upgraded", "13", ok.key}, 400},
        {{"GET", "websocket", "Upgrade", NULL, ok.key}, 426},
        {{"GET", "websocket", "Upgrade", "8", ok.key}, 426},
        {{"GET", "websocket", "Upgrade", "13", NULL}, 400},
        {{"GET", "websocket", "Upgrade", "13", "c2hvcnQ="}, 400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why = NULL;
        assert_int_equal(ws_upgrade_check(&cases[i].req, accept, &why), cases[i].status);
        assert_non_null(why);
    }
}

/* ---- the parser ---- */

static void test_rfc_masked_hello(void **state)
{
    /* RFC 6455 5.7: a single-frame masked text message containing "Hello". */
    static const uint8_t frame[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct run r = {0};
    parse_once(frame, sizeof(frame), 0, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].type, WS_EV_MESSAGE);
    assert_int_equal(r.ev[0].opcode, WS_OP_TEXT);
    assert_int_equal(r.ev[0].len, 5);
    assert_memory_equal(r.ev[0].data, "Hello", 5);
    assert_int_equal(r.consumed, sizeof(frame));
    run_free(&r);
}

static void test_unmasked_rejected(void **state)
{
    /* RFC 6455 5.7's unmasked "Hello" is a server frame: from a client it fails with 1002. */
    static const uint8_t frame[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    expect_error(frame, sizeof(frame), WS_CLOSE_PROTOCOL_ERROR);
    /* Control frames too. */
    static const uint8_t ping[] = {0x89, 0x00};
    expect_error(ping, sizeof(ping), WS_CLOSE_PROTOCOL_ERROR);
}

static void test_length_forms(void **state)
{
    size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 100000};
    int forms[] = {LEN_MINIMAL, LEN_FORCE16, LEN_FORCE64};
    size_t cap = 100000 + 64;
    uint8_t *payload = malloc(cap), *buf = malloc(cap);
    assert_non_null(payload);
    assert_non_null(buf);
    for (size_t i = 0; i < cap; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t f = 0; f < 3; f++) {
            if (forms[f] == LEN_FORCE16 && sizes[s] > 0xffff)
                continue;
            size_t at = 0;
            put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = WS_OP_BINARY, .lenform = forms[f]}, payload,
                      sizes[s]);
            struct run r = {0};
            parse_once(buf, at, 0, &r);
            assert_int_equal(r.n, 1);
            assert_int_equal(r.ev[0].type, WS_EV_MESSAGE);
            assert_int_equal(r.ev[0].opcode, WS_OP_BINARY);
            assert_int_equal(r.ev[0].len, sizes[s]);
            assert_memory_equal(r.ev[0].data, payload, sizes[s]);
            assert_int_equal(r.consumed, at);
            run_free(&r);
        }
    }
    free(payload);
    free(buf);
}

static void test_server_header_lengths(void **state)
{
    uint8_t h[WS_HEADER_MAX];
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 125, NULL), 2);
    assert_memory_equal(h, "\x81\x7d", 2);
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 126, NULL), 4);
    assert_memory_equal(h, "\x82\x7e\x00\x7e", 4);
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 65535, NULL), 4);
    assert_memory_equal(h, "\x82\x7e\xff\xff", 4);
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 65536, NULL), 10);
    assert_memory_equal(h, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(ws_frame_header(h, WS_OP_CLOSE, 0, NULL), 2);
    assert_memory_equal(h, "\x88\x00", 2);
    assert_int_equal(ws_frame_header(h, WS_OP_PING, 3, MASK), 6);
    assert_memory_equal(h, "\x89\x83\x37\xfa\x21\x3d", 6);
}

static void test_length64_top_bit(void **state)
{
    /* A 64-bit length with its most significant bit set is a protocol error, found from
     * the header alone (no payload is waited for). */
    static const uint8_t frame[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    struct ws_parser p;
    ws_parser_init(&p, 0);
    struct ws_event ev;
    assert_int_equal(ws_parse(&p, frame, sizeof(frame), &ev), sizeof(frame));
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, WS_CLOSE_PROTOCOL_ERROR);
    assert_non_null(ev.error);
    ws_parser_free(&p);

    /* All 64 bits set likewise; 2^62 without the top bit is merely too big (1009). */
    static const uint8_t ones[] = {0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    expect_error(ones, sizeof(ones), WS_CLOSE_PROTOCOL_ERROR);
    static const uint8_t huge[] = {0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    expect_error(huge, sizeof(huge), WS_CLOSE_TOO_BIG);
}

static void test_fragments_with_interleaved_control(void **state)
{
    uint8_t buf[512];
    size_t at = 0;
    put(buf, &at, WS_OP_TEXT, 0, "Hel");
    put(buf, &at, WS_OP_PING, 1, "p1");
    put(buf, &at, WS_OP_CONTINUATION, 0, "lo ");
    put(buf, &at, WS_OP_PONG, 1, "");
    put(buf, &at, WS_OP_PING, 1, "p2");
    put(buf, &at, WS_OP_CONTINUATION, 0, "");
    put(buf, &at, WS_OP_CONTINUATION, 1, "world");
    put(buf, &at, WS_OP_BINARY, 0, "\x01\x02");
    put(buf, &at, WS_OP_CONTINUATION, 1, "\x03");

    for (size_t piece = 0; piece <= 7; piece++) {
        struct run r = {0};
        struct ws_parser p;
        ws_parser_init(&p, 0);
        feed(&p, buf, at, piece, &r);
        ws_parser_free(&p);
        assert_int_equal(r.n, 5);
        assert_int_equal(r.ev[0].type, WS_EV_PING);
        assert_string_equal((char *)r.ev[0].data, "p1");
        assert_int_equal(r.ev[1].type, WS_EV_PONG);
        assert_int_equal(r.ev[1].len, 0);
        assert_int_equal(r.ev[2].type, WS_EV_PING);
        assert_string_equal((char *)r.ev[2].data, "p2");
        assert_int_equal(r.ev[3].type, WS_EV_MESSAGE);
        assert_int_equal(r.ev[3].opcode, WS_OP_TEXT);
        assert_string_equal((char *)r.ev[3].data, "Hello world");
        assert_int_equal(r.ev[4].type, WS_EV_MESSAGE);
        assert_int_equal(r.ev[4].opcode, WS_OP_BINARY);
        assert_int_equal(r.ev[4].len, 3);
        assert_memory_equal(r.ev[4].data, "\x01\x02\x03", 3);
        run_free(&r);
    }
}

static void test_fragmentation_errors(void **state)
{
    uint8_t buf[64];
    size_t at = 0;
    put(buf, &at, WS_OP_CONTINUATION, 1, "x"); /* nothing to continue */
    expect_error(buf, at, WS_CLOSE_PROTOCOL_ERROR);

    at = 0;
    put(buf, &at, WS_OP_TEXT, 0, "a");
    put(buf, &at, WS_OP_BINARY, 1, "b"); /* a new message inside one */
    expect_error(buf, at, WS_CLOSE_PROTOCOL_ERROR);

    at = 0;
    put(buf, &at, WS_OP_TEXT, 0, "a");
    put(buf, &at, WS_OP_TEXT, 1, "b");
    expect_error(buf, at, WS_CLOSE_PROTOCOL_ERROR);

    at = 0;
    put(buf, &at, WS_OP_PING, 0, "a"); /* fragmented control frame */
    expect_error(buf, at, WS_CLOSE_PROTOCOL_ERROR);
}

static void test_control_frame_bounds(void **state)
{
    uint8_t payload[126], buf[256];
    memset(payload, 'p', sizeof(payload));
    size_t at = 0;
    put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = WS_OP_PING}, payload, 125);
    struct run r = {0};
    parse_once(buf, at, 0, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].type, WS_EV_PING);
    assert_int_equal(r.ev[0].len, 125);
    run_free(&r);

    for (int op = WS_OP_CLOSE; op <= WS_OP_PONG; op++) {
        at = 0;
        put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = (uint8_t)op}, payload, 126);
        expect_error(buf, at, WS_CLOSE_PROTOCOL_ERROR);
        /* A short payload in a long length form is still longer than 125 by its 7 bits. */
        at = 0;
        put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = (uint8_t)op, .lenform = LEN_FORCE16}, payload, 5);
        expect_error(buf, at, WS_CLOSE_PROTOCOL_ERROR);
    }
}

static void test_reserved_bits_and_opcodes(void **state)
{
    uint8_t buf[64];
    for (uint8_t rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        size_t at = 0;
        put_frame(buf, &at, (struct frame_spec){.fin = 1, .rsv = rsv, .op = WS_OP_TEXT}, "a", 1);
        expect_error(buf, at, WS_CLOSE_PROTOCOL_ERROR);
    }
    static const uint8_t unknown[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
    for (size_t i = 0; i < sizeof(unknown); i++) {
        size_t at = 0;
        put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = unknown[i]}, "a", 1);
        expect_error(buf, at, WS_CLOSE_PROTOCOL_ERROR);
    }
}

static void test_message_size_bound(void **state)
{
    const size_t max = 1u << 20;
    size_t cap = max + 4096;
    uint8_t *payload = calloc(1, cap), *buf = malloc(cap + 64);
    assert_non_null(payload);
    assert_non_null(buf);

    /* Exactly the bound passes, in one frame or in fragments. */
    size_t at = 0;
    put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = WS_OP_BINARY}, payload, max);
    struct run r = {0};
    parse_once(buf, at, 0, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].type, WS_EV_MESSAGE);
    assert_int_equal(r.ev[0].len, max);
    run_free(&r);

    /* One byte more fails with 1009 at the header, before the payload arrives. */
    at = 0;
    put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = WS_OP_BINARY}, payload, max + 1);
    struct ws_parser p;
    ws_parser_init(&p, 0);
    struct ws_event ev;
    assert_int_equal(ws_parse(&p, buf, 14, &ev), 14);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, WS_CLOSE_TOO_BIG);
    assert_null(p.msg); /* nothing was allocated for it */
    ws_parser_free(&p);

    /* Fragments adding up past the bound fail at the fragment that crosses it. */
    at = 0;
    put_frame(buf, &at, (struct frame_spec){.fin = 0, .op = WS_OP_TEXT}, payload, max / 2);
    put_frame(buf, &at, (struct frame_spec){.fin = 0, .op = WS_OP_CONTINUATION}, payload, max / 2);
    size_t crossing = at;
    put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = WS_OP_CONTINUATION}, payload, 1);
    r = (struct run){0};
    parse_once(buf, at, 0, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].type, WS_EV_ERROR);
    assert_int_equal(r.ev[0].close_code, WS_CLOSE_TOO_BIG);
    assert_int_equal(r.consumed, crossing + 6);
    run_free(&r);

    /* A smaller bound set by the caller. */
    at = 0;
    put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = WS_OP_BINARY}, payload, 101);
    r = (struct run){0};
    parse_once(buf, at, 100, &r);
    assert_int_equal(r.ev[0].close_code, WS_CLOSE_TOO_BIG);
    run_free(&r);

    free(payload);
    free(buf);
}

static void test_utf8(void **state)
{
    /* Valid: ASCII, 2/3/4-byte characters, the extremes of each range. */
    static const char *good[] = {"",
                                 "plain",
                                 "caf\xc3\xa9",
                                 "\xe2\x82\xac",
                                 "\xf0\x9f\x98\x80",
                                 "\xed\x9f\xbf",
                                 "\xee\x80\x80",
                                 "\xf4\x8f\xbf\xbf",
                                 "\xc2\x80",
                                 "\xef\xbf\xbf"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(ws_utf8_valid(good[i], strlen(good[i])));
    static const char *bad[] = {
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\x80",     /* overlong */
        "\xe0\x9f\xbf",     /* overlong */
        "\xed\xa0\x80",     /* surrogate */
        "\xed\xbf\xbf",     /* surrogate */
        "\xf0\x80\x80\x80", /* overlong */
        "\xf0\x8f\xbf\xbf", /* overlong */
        "\xf4\x90\x80\x80", /* > U+10FFFF */
        "\xf5\x80\x80\x80", /* never a start byte */
        "\xff",
        "\x80", /* a lone continuation */
        "\xc3", /* cut short */
        "\xe2\x82",
        "a\xc3(b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(ws_utf8_valid(bad[i], strlen(bad[i])));
}

static void test_text_utf8_in_messages(void **state)
{
    uint8_t buf[128];
    size_t at = 0;
    /* A character split across fragments (and across any read boundary) is fine. */
    put(buf, &at, WS_OP_TEXT, 0, "caf\xc3");
    put(buf, &at, WS_OP_CONTINUATION, 0, "");
    put(buf, &at, WS_OP_CONTINUATION, 1, "\xa9!");
    for (size_t piece = 0; piece <= 3; piece++) {
        struct run r = {0};
        struct ws_parser p;
        ws_parser_init(&p, 0);
        feed(&p, buf, at, piece, &r);
        ws_parser_free(&p);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.ev[0].type, WS_EV_MESSAGE);
        assert_string_equal((char *)r.ev[0].data, "caf\xc3\xa9!");
        run_free(&r);
    }

    at = 0;
    put(buf, &at, WS_OP_TEXT, 1, "bad \xed\xa0\x80 surrogate");
    expect_error(buf, at, WS_CLOSE_INVALID_DATA);

    /* A message ending inside a character. */
    at = 0;
    put(buf, &at, WS_OP_TEXT, 0, "cut ");
    put(buf, &at, WS_OP_CONTINUATION, 1, "\xe2\x82");
    expect_error(buf, at, WS_CLOSE_INVALID_DATA);

    /* A bad byte fails at once, without waiting for the rest of the message. */
    at = 0;
    put(buf, &at, WS_OP_TEXT, 0, "\xc0\xaf and more");
    struct run r = {0};
    parse_once(buf, at, 0, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].close_code, WS_CLOSE_INVALID_DATA);
    run_free(&r);

    /* Binary messages are not text: any bytes go. */
    at = 0;
    put(buf, &at, WS_OP_BINARY, 1, "\xc0\xaf\xff");
    r = (struct run){0};
    parse_once(buf, at, 0, &r);
    assert_int_equal(r.ev[0].type, WS_EV_MESSAGE);
    run_free(&r);
}

/* A close frame with the given payload. */
static void close_frame(uint8_t *buf, size_t *at, const void *payload, size_t len)
{
    *at = 0;
    put_frame(buf, at, (struct frame_spec){.fin = 1, .op = WS_OP_CLOSE}, payload, len);
}

static void test_close_codes(void **state)
{
    uint8_t buf[256];
    size_t at;
    struct run r = {0};

    close_frame(buf, &at, "", 0);
    parse_once(buf, at, 0, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].type, WS_EV_CLOSE);
    assert_int_equal(r.ev[0].close_code, WS_CLOSE_NO_STATUS);
    assert_int_equal(r.ev[0].len, 0);
    run_free(&r);

    close_frame(buf, &at,
                "\x03\xe8"
                "bye \xc3\xa9",
                8);
    parse_once(buf, at, 0, &r);
    assert_int_equal(r.ev[0].type, WS_EV_CLOSE);
    assert_int_equal(r.ev[0].close_code, 1000);
    assert_int_equal(r.ev[0].len, 6);
    assert_memory_equal(r.ev[0].data, "bye \xc3\xa9", 6);
    run_free(&r);

    static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1014, 3000, 4999};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        uint8_t code[2] = {(uint8_t)(valid[i] >> 8), (uint8_t)valid[i]};
        close_frame(buf, &at, code, 2);
        parse_once(buf, at, 0, &r);
        assert_int_equal(r.ev[0].type, WS_EV_CLOSE);
        assert_int_equal(r.ev[0].close_code, valid[i]);
        run_free(&r);
    }
    static const uint16_t invalid[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        uint8_t code[2] = {(uint8_t)(invalid[i] >> 8), (uint8_t)invalid[i]};
        close_frame(buf, &at, code, 2);
        expect_error(buf, at, WS_CLOSE_PROTOCOL_ERROR);
    }
    close_frame(buf, &at, "\x03", 1); /* half a code */
    expect_error(buf, at, WS_CLOSE_PROTOCOL_ERROR);
    close_frame(buf, &at, "\x03\xe8\xff", 3); /* a reason that is not UTF-8 */
    expect_error(buf, at, WS_CLOSE_INVALID_DATA);
}

static void test_finished_parser(void **state)
{
    /* After a close the parser takes nothing more and repeats its close. */
    uint8_t buf[64];
    size_t at = 0;
    put(buf, &at, WS_OP_CLOSE, 1, "\x0f\xa0");
    size_t close_len = at;
    put(buf, &at, WS_OP_TEXT, 1, "after");
    struct ws_parser p;
    ws_parser_init(&p, 0);
    struct ws_event ev;
    assert_int_equal(ws_parse(&p, buf, at, &ev), close_len);
    assert_int_equal(ev.type, WS_EV_CLOSE);
    assert_int_equal(ev.close_code, 4000);
    assert_int_equal(ws_parse(&p, buf + close_len, at - close_len, &ev), 0);
    assert_int_equal(ev.type, WS_EV_CLOSE);
    assert_int_equal(ev.close_code, 4000);
    ws_parser_free(&p);
}

/* A pseudo-random generator for split points (deterministic, so failures repeat). */
static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return rnd_state >> 8;
}

static void test_any_split(void **state)
{
    /* Every frame shape in one stream; fed one byte at a time and in random pieces it
     * gives exactly the events it gives fed whole. */
    size_t big = 70000;
    uint8_t *payload = malloc(big), *buf = malloc(big + 1024);
    assert_non_null(payload);
    assert_non_null(buf);
    for (size_t i = 0; i < big; i++)
        payload[i] = (uint8_t)rnd();
    size_t at = 0;
    put(buf, &at, WS_OP_TEXT, 1, "");
    put_frame(buf, &at, (struct frame_spec){.fin = 0, .op = WS_OP_BINARY}, payload, 300);
    put(buf, &at, WS_OP_PING, 1, "in between");
    put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = WS_OP_CONTINUATION, .lenform = LEN_FORCE64}, payload + 300,
              big - 300);
    put(buf, &at, WS_OP_TEXT, 0, "\xf0\x9f");
    put(buf, &at, WS_OP_CONTINUATION, 1, "\x98\x80");
    put(buf, &at, WS_OP_PONG, 1, "x");
    put(buf, &at, WS_OP_CLOSE, 1, "\x03\xe9going");

    struct run whole = {0};
    parse_once(buf, at, 0, &whole);
    assert_int_equal(whole.n, 6);
    assert_int_equal(whole.ev[2].type, WS_EV_MESSAGE);
    assert_int_equal(whole.ev[2].len, big);
    assert_memory_equal(whole.ev[2].data, payload, big);
    assert_int_equal(whole.ev[5].type, WS_EV_CLOSE);
    assert_int_equal(whole.ev[5].close_code, 1001);

    for (int round = 0; round < 12; round++) {
        struct ws_parser p;
        ws_parser_init(&p, 0);
        struct run r = {0};
        size_t off = 0;
        while (off < at && (r.n == 0 || r.ev[r.n - 1].type != WS_EV_CLOSE)) {
            size_t piece = round == 0 ? 1 : 1 + rnd() % (round * 600);
            if (piece > at - off)
                piece = at - off;
            size_t end = off + piece;
            while (off < end) {
                struct ws_event ev;
                off += ws_parse(&p, buf + off, end - off, &ev);
                if (ev.type == WS_EV_NONE)
                    break;
                record(&r, &ev);
                if (ev.type == WS_EV_CLOSE)
                    break;
            }
        }
        assert_int_equal(off, at);
        assert_int_equal(r.n, whole.n);
        for (int i = 0; i < r.n; i++) {
            assert_int_equal(r.ev[i].type, whole.ev[i].type);
            assert_int_equal(r.ev[i].opcode, whole.ev[i].opcode);
            assert_int_equal(r.ev[i].close_code, whole.ev[i].close_code);
            assert_int_equal(r.ev[i].len, whole.ev[i].len);
            assert_memory_equal(r.ev[i].data, whole.ev[i].data, r.ev[i].len);
        }
        run_free(&r);
        ws_parser_free(&p);
    }
    run_free(&whole);
    free(payload);
    free(buf);
}

static void test_buffer_released_after_large_message(void **state)
{
    /* The memory of a large message is given back once it is delivered. */
    size_t big = 200000;
    uint8_t *payload = calloc(1, big), *buf = malloc(big + 64);
    assert_non_null(payload);
    assert_non_null(buf);
    size_t at = 0;
    put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = WS_OP_BINARY}, payload, big);
    put(buf, &at, WS_OP_BINARY, 1, "small");
    struct ws_parser p;
    ws_parser_init(&p, 0);
    struct ws_event ev;
    size_t n = ws_parse(&p, buf, at, &ev);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    assert_int_equal(ev.len, big);
    assert_true(p.msg_cap >= big && p.msg_cap <= WS_MESSAGE_MAX_DEFAULT);
    ws_parse(&p, buf + n, at - n, &ev);
    assert_int_equal(ev.type, WS_EV_MESSAGE);
    assert_int_equal(ev.len, 5);
    assert_true(p.msg_cap < big);
    ws_parser_free(&p);
    free(payload);
    free(buf);
}

/* ---- the connection over a socketpair ---- */

struct pair {
    int server, client;
    struct ws_conn conn;
};

static void pair_open(struct pair *p, size_t max_message, const void *extra, size_t extra_len)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    p->server = sv[0];
    p->client = sv[1];
    assert_int_equal(ws_conn_init(&p->conn, p->server, max_message, extra, extra_len), 0);
}

static void pair_close(struct pair *p)
{
    ws_conn_destroy(&p->conn);
    if (p->client >= 0)
        close(p->client);
    close(p->server);
}

static void write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *b = buf;
    while (len > 0) {
        ssize_t w = write(fd, b, len);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        b += w, len -= (size_t)w;
    }
}

static void read_exact(int fd, void *buf, size_t len)
{
    uint8_t *b = buf;
    while (len > 0) {
        ssize_t r = read(fd, b, len);
        if (r < 0 && errno == EINTR)
            continue;
        assert_true(r > 0);
        b += r, len -= (size_t)r;
    }
}

/* Reads one server frame as a client: it must be final and unmasked. Returns its
 * payload (malloc'd, NUL-terminated) and sets *op and *len. */
static uint8_t *read_server_frame(int fd, uint8_t *op, size_t *len)
{
    uint8_t h[2];
    read_exact(fd, h, 2);
    assert_int_equal(h[0] & 0xf0, 0x80); /* FIN, no reserved bits */
    assert_int_equal(h[1] & 0x80, 0);    /* servers never mask */
    *op = h[0] & 0x0f;
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        uint8_t e[2];
        read_exact(fd, e, 2);
        n = (uint64_t)e[0] << 8 | e[1];
        assert_true(n >= 126);
    } else if (n == 127) {
        uint8_t e[8];
        read_exact(fd, e, 8);
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | e[i];
        assert_true(n > 0xffff);
    }
    uint8_t *payload = malloc((size_t)n + 1);
    assert_non_null(payload);
    read_exact(fd, payload, (size_t)n);
    payload[n] = 0;
    *len = (size_t)n;
    return payload;
}

static void expect_server_frame(int fd, uint8_t want_op, const void *want, size_t want_len)
{
    uint8_t op;
    size_t len;
    uint8_t *payload = read_server_frame(fd, &op, &len);
    assert_int_equal(op, want_op);
    assert_int_equal(len, want_len);
    assert_memory_equal(payload, want, want_len);
    free(payload);
}

static void test_conn_messages_and_ping(void **state)
{
    struct pair p;
    pair_open(&p, 0, NULL, 0);
    uint8_t buf[256];
    size_t at = 0;
    put(buf, &at, WS_OP_PING, 1, "are you there");
    put(buf, &at, WS_OP_TEXT, 0, "hello ");
    put(buf, &at, WS_OP_PING, 1, "");
    put(buf, &at, WS_OP_CONTINUATION, 1, "there");
    put(buf, &at, WS_OP_PONG, 1, "tick");
    put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = WS_OP_BINARY}, "\x00\x01", 2);
    write_all(p.client, buf, at);

    struct ws_message m;
    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_MESSAGE);
    assert_int_equal(m.opcode, WS_OP_TEXT);
    assert_int_equal(m.len, 11);
    assert_memory_equal(m.data, "hello there", 11);
    /* Both pings were answered, in order, with their payloads. */
    expect_server_frame(p.client, WS_OP_PONG, "are you there", 13);
    expect_server_frame(p.client, WS_OP_PONG, "", 0);

    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_MESSAGE);
    assert_int_equal(m.opcode, WS_OP_BINARY);
    assert_int_equal(m.len, 2);
    assert_memory_equal(m.data, "\x00\x01", 2);
    assert_int_equal(ws_conn_pongs(&p.conn), 1);

    /* Server frames: text, binary in pieces, ping. */
    assert_int_equal(ws_send_text(&p.conn, "caf\xc3\xa9", 5), 0);
    expect_server_frame(p.client, WS_OP_TEXT, "caf\xc3\xa9", 5);
    struct iovec v[3] = {{"\x01", 1}, {"", 0}, {"stdout", 6}};
    assert_int_equal(ws_send(&p.conn, WS_OP_BINARY, v, 3), 0);
    expect_server_frame(p.client, WS_OP_BINARY, "\x01stdout", 7);
    assert_int_equal(ws_send_ping(&p.conn, "k", 1), 0);
    expect_server_frame(p.client, WS_OP_PING, "k", 1);
    pair_close(&p);
}

static void test_conn_send_refusals(void **state)
{
    struct pair p;
    pair_open(&p, 0, NULL, 0);
    char err[160];
    assert_int_equal(ws_send_text(&p.conn, "\xc3", 1), -1);
    assert_int_equal(errno, EINVAL);
    ws_conn_error(&p.conn, err, sizeof(err));
    assert_non_null(strstr(err, "UTF-8"));
    uint8_t big[126] = {0};
    assert_int_equal(ws_send_ping(&p.conn, big, sizeof(big)), -1);
    assert_int_equal(errno, EINVAL);
    /* Refusals write nothing and leave the connection usable. */
    assert_int_equal(ws_send_binary(&p.conn, "ok", 2), 0);
    expect_server_frame(p.client, WS_OP_BINARY, "ok", 2);

    /* Codes that are only ever reported are refused, and the connection stays open. */
    assert_int_equal(ws_send_close(&p.conn, WS_CLOSE_ABNORMAL, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(ws_send_close(&p.conn, WS_CLOSE_NO_STATUS, NULL), -1);
    assert_int_equal(ws_send_close(&p.conn, 999, NULL), -1);
    assert_int_equal(ws_send_binary(&p.conn, "still", 5), 0);
    expect_server_frame(p.client, WS_OP_BINARY, "still", 5);

    /* A long reason is cut to 123 bytes at a character boundary. */
    char reason[300] = "";
    for (int i = 0; i < 100; i++)
        strncat(reason, "\xc3\xa9", sizeof(reason) - strlen(reason) - 1);
    assert_int_equal(ws_send_close(&p.conn, 4001, reason), 0);
    uint8_t op;
    size_t len;
    uint8_t *payload = read_server_frame(p.client, &op, &len);
    assert_int_equal(op, WS_OP_CLOSE);
    assert_int_equal(len, 2 + 122);
    assert_int_equal(payload[0] << 8 | payload[1], 4001);
    assert_true(ws_utf8_valid(payload + 2, len - 2));
    free(payload);

    /* Nothing but a pong follows a close; a second close is a no-op. */
    assert_int_equal(ws_send_binary(&p.conn, "late", 4), -1);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(ws_send_close(&p.conn, 1000, NULL), 0);
    assert_int_equal(ws_send(&p.conn, WS_OP_PONG, NULL, 0), 0);
    expect_server_frame(p.client, WS_OP_PONG, "", 0);
    pair_close(&p);
}

static void test_conn_client_close(void **state)
{
    struct pair p;
    pair_open(&p, 0, NULL, 0);
    uint8_t buf[64];
    size_t at = 0;
    put(buf, &at, WS_OP_CLOSE, 1,
        "\x03\xe9"
        "bye");
    write_all(p.client, buf, at);
    struct ws_message m;
    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_CLOSED);
    assert_int_equal(p.conn.close_code, 1001);
    /* The close is echoed with its code. */
    expect_server_frame(p.client, WS_OP_CLOSE, "\x03\xe9", 2);
    /* Reading on gives the same answer; sending data is refused. */
    assert_int_equal(ws_read_message(&p.conn, 0, &m), WS_READ_CLOSED);
    assert_int_equal(ws_send_text(&p.conn, "x", 1), -1);
    pair_close(&p);

    /* A close without a code is answered without one. */
    pair_open(&p, 0, NULL, 0);
    at = 0;
    put(buf, &at, WS_OP_CLOSE, 1, "");
    write_all(p.client, buf, at);
    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_CLOSED);
    assert_int_equal(p.conn.close_code, WS_CLOSE_NO_STATUS);
    expect_server_frame(p.client, WS_OP_CLOSE, "", 0);
    pair_close(&p);
}

static void test_conn_server_close_first(void **state)
{
    /* The server closes; the client's answering close ends the read without a second close. */
    struct pair p;
    pair_open(&p, 0, NULL, 0);
    assert_int_equal(ws_send_close(&p.conn, 1000, "done"), 0);
    expect_server_frame(p.client, WS_OP_CLOSE,
                        "\x03\xe8"
                        "done",
                        6);
    uint8_t buf[64];
    size_t at = 0;
    put(buf, &at, WS_OP_BINARY, 1, "in flight");
    put(buf, &at, WS_OP_CLOSE, 1, "\x03\xe8");
    write_all(p.client, buf, at);
    struct ws_message m;
    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_MESSAGE);
    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_CLOSED);
    assert_int_equal(p.conn.close_code, 1000);
    shutdown(p.server, SHUT_WR);
    uint8_t rest;
    assert_int_equal(read(p.client, &rest, 1), 0); /* no second close was sent */
    pair_close(&p);
}

static void test_conn_protocol_error(void **state)
{
    struct pair p;
    pair_open(&p, 0, NULL, 0);
    uint8_t buf[64];
    size_t at = 0;
    put_frame(buf, &at, (struct frame_spec){.fin = 1, .op = WS_OP_TEXT, .unmasked = 1}, "plain", 5);
    write_all(p.client, buf, at);
    struct ws_message m;
    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_ERROR);
    assert_int_equal(p.conn.close_code, WS_CLOSE_PROTOCOL_ERROR);
    char err[160];
    ws_conn_error(&p.conn, err, sizeof(err));
    assert_non_null(strstr(err, "not masked"));
    /* The client is told why, with 1002. */
    uint8_t op;
    size_t len;
    uint8_t *payload = read_server_frame(p.client, &op, &len);
    assert_int_equal(op, WS_OP_CLOSE);
    assert_int_equal(payload[0] << 8 | payload[1], WS_CLOSE_PROTOCOL_ERROR);
    assert_non_null(strstr((char *)payload + 2, "not masked"));
    free(payload);
    pair_close(&p);

    /* Oversize: 1009 before the payload is sent at all. */
    pair_open(&p, 1000, NULL, 0);
    uint8_t hdr[8] = {0x82, 0x80 | 126, (1001 >> 8), 1001 & 0xff, 1, 2, 3, 4};
    write_all(p.client, hdr, sizeof(hdr));
    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_ERROR);
    assert_int_equal(p.conn.close_code, WS_CLOSE_TOO_BIG);
    payload = read_server_frame(p.client, &op, &len);
    assert_int_equal(payload[0] << 8 | payload[1], WS_CLOSE_TOO_BIG);
    free(payload);
    pair_close(&p);
}

static void test_conn_timeout_keeps_partial_input(void **state)
{
    struct pair p;
    pair_open(&p, 0, NULL, 0);
    struct ws_message m;
    assert_int_equal(ws_read_message(&p.conn, 0, &m), WS_READ_TIMEOUT);
    uint8_t buf[64];
    size_t at = 0;
    put(buf, &at, WS_OP_TEXT, 1, "split message");
    /* Half a frame, then a timeout: nothing of it is lost. */
    write_all(p.client, buf, 5);
    assert_int_equal(ws_read_message(&p.conn, 20, &m), WS_READ_TIMEOUT);
    write_all(p.client, buf + 5, at - 5);
    /* A timeout of 0 still takes what the socket already holds. */
    assert_int_equal(ws_read_message(&p.conn, 0, &m), WS_READ_MESSAGE);
    assert_int_equal(m.len, 13);
    assert_memory_equal(m.data, "split message", 13);
    pair_close(&p);
}

static void test_conn_extra_input(void **state)
{
    /* Bytes the HTTP server read past the request come first. */
    uint8_t buf[64];
    size_t at = 0;
    put(buf, &at, WS_OP_TEXT, 1, "early");
    put(buf, &at, WS_OP_TEXT, 1, "later");
    struct pair p;
    pair_open(&p, 0, buf, at - 3);
    write_all(p.client, buf + at - 3, 3);
    struct ws_message m;
    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_MESSAGE);
    assert_memory_equal(m.data, "early", 5);
    assert_true(ws_conn_has_input(&p.conn)); /* the start of the next frame is buffered */
    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_MESSAGE);
    assert_memory_equal(m.data, "later", 5);
    assert_false(ws_conn_has_input(&p.conn));
    pair_close(&p);
}

static void test_conn_peer_vanishes(void **state)
{
    struct pair p;
    pair_open(&p, 0, NULL, 0);
    uint8_t buf[64];
    size_t at = 0;
    put(buf, &at, WS_OP_TEXT, 0, "unfinished");
    write_all(p.client, buf, at);
    close(p.client);
    p.client = -1;
    struct ws_message m;
    assert_int_equal(ws_read_message(&p.conn, 5000, &m), WS_READ_ERROR);
    assert_int_equal(p.conn.close_code, WS_CLOSE_ABNORMAL);
    char err[160];
    ws_conn_error(&p.conn, err, sizeof(err));
    assert_non_null(strstr(err, "without a close"));
    /* Writing to a peer that is gone fails cleanly (no SIGPIPE). */
    assert_int_equal(ws_send_binary(&p.conn, "x", 1), -1);
    pair_close(&p);
}

static void test_conn_send_timeout(void **state)
{
    /* A client that reads nothing: the frame times out and the connection is broken. */
    struct pair p;
    pair_open(&p, 0, NULL, 0);
    p.conn.send_timeout_ms = 50;
    size_t big = 8u << 20;
    uint8_t *data = calloc(1, big);
    assert_non_null(data);
    assert_int_equal(ws_send_binary(&p.conn, data, big), -1);
    assert_int_equal(errno, ETIMEDOUT);
    char err[160];
    ws_conn_error(&p.conn, err, sizeof(err));
    assert_non_null(strstr(err, "within 50 ms"));
    assert_int_equal(ws_send_binary(&p.conn, "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    free(data);
    pair_close(&p);
}

/* ---- two threads, short writes, signals ---- */

struct sender {
    struct ws_conn *conn;
    int messages;
    size_t size;
    int failures;
};

static void *send_many(void *arg)
{
    struct sender *s = arg;
    uint8_t *data = malloc(s->size);
    for (int i = 0; i < s->messages; i++) {
        memset(data, i & 0xff, s->size);
        struct iovec v[2] = {{"\x01", 1}, {data, s->size}};
        if (ws_send(s->conn, WS_OP_BINARY, v, 2) < 0)
            s->failures++;
    }
    free(data);
    return NULL;
}

struct reader {
    struct ws_conn *conn;
    int messages;
    enum ws_read_result end;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;
    struct ws_message m;
    enum ws_read_result res;
    while ((res = ws_read_message(r->conn, 10000, &m)) == WS_READ_MESSAGE)
        r->messages++;
    r->end = res;
    return NULL;
}

static void on_signal(int sig) { (void)sig; }

static void test_conn_two_threads(void **state)
{
    /* One thread sends large frames (short writes: each is bigger than the socket
     * buffer) while the reader thread answers the client's pings: every frame the
     * client sees is whole, none interleaved. Signals land on both meanwhile. */
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: calls see EINTR */
    struct sigaction old;
    sigaction(SIGUSR1, &sa, &old);
    struct pair p;
    pair_open(&p, 0, NULL, 0);
    int sz = 4096;
    setsockopt(p.server, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(p.client, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));

    struct sender s = {.conn = &p.conn, .messages = 60, .size = 100000};
    struct reader r = {.conn = &p.conn};
    pthread_t ts, tr;
    assert_int_equal(pthread_create(&ts, NULL, send_many, &s), 0);
    assert_int_equal(pthread_create(&tr, NULL, read_all, &r), 0);

    int pings_sent = 0, pongs = 0, data_frames = 0;
    uint8_t buf[64];
    while (data_frames < s.messages || pongs < pings_sent) {
        if (pings_sent < 200) {
            size_t at = 0;
            char text[24];
            snprintf(text, sizeof(text), "ping %d", pings_sent);
            put(buf, &at, WS_OP_PING, 1, text);
            write_all(p.client, buf, at);
            pings_sent++;
        }
        pthread_kill(ts, SIGUSR1);
        pthread_kill(tr, SIGUSR1);
        uint8_t op;
        size_t len;
        uint8_t *payload = read_server_frame(p.client, &op, &len);
        if (op == WS_OP_PONG) {
            char text[24];
            snprintf(text, sizeof(text), "ping %d", pongs);
            assert_string_equal((char *)payload, text);
            pongs++;
        } else {
            assert_int_equal(op, WS_OP_BINARY);
            assert_int_equal(len, 1 + s.size);
            assert_int_equal(payload[0], 1);
            for (size_t i = 1; i < len; i++)
                assert_int_equal(payload[i], data_frames & 0xff);
            data_frames++;
        }
        free(payload);
    }
    pthread_join(ts, NULL);
    assert_int_equal(s.failures, 0);
    size_t at = 0;
    put(buf, &at, WS_OP_CLOSE, 1, "\x03\xe8");
    write_all(p.client, buf, at);
    pthread_join(tr, NULL);
    assert_int_equal(r.end, WS_READ_CLOSED);
    assert_int_equal(r.messages, 0);
    expect_server_frame(p.client, WS_OP_CLOSE, "\x03\xe8", 2);
    pair_close(&p);
    sigaction(SIGUSR1, &old, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_rfc_example),
        cmocka_unit_test(test_accept_bad_keys),
        cmocka_unit_test(test_upgrade_check),
        cmocka_unit_test(test_rfc_masked_hello),
        cmocka_unit_test(test_unmasked_rejected),
        cmocka_unit_test(test_length_forms),
        cmocka_unit_test(test_server_header_lengths),
        cmocka_unit_test(test_length64_top_bit),
        cmocka_unit_test(test_fragments_with_interleaved_control),
        cmocka_unit_test(test_fragmentation_errors),
        cmocka_unit_test(test_control_frame_bounds),
        cmocka_unit_test(test_reserved_bits_and_opcodes),
        cmocka_unit_test(test_message_size_bound),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_text_utf8_in_messages),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_finished_parser),
        cmocka_unit_test(test_any_split),
        cmocka_unit_test(test_buffer_released_after_large_message),
        cmocka_unit_test(test_conn_messages_and_ping),
        cmocka_unit_test(test_conn_send_refusals),
        cmocka_unit_test(test_conn_client_close),
        cmocka_unit_test(test_conn_server_close_first),
        cmocka_unit_test(test_conn_protocol_error),
        cmocka_unit_test(test_conn_timeout_keeps_partial_input),
        cmocka_unit_test(test_conn_extra_input),
        cmocka_unit_test(test_conn_peer_vanishes),
        cmocka_unit_test(test_conn_send_timeout),
        cmocka_unit_test(test_conn_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
