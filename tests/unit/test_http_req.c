/* The HTTP request filter of intercepted TLS (src/net/http_req.c): placeholders become
 * values only in headers (Basic credentials included) toward the secret's own, pinned
 * host named by both SNI and Host; everything else is refused; header rules; requests
 * one after another (keep-alive, pipelining) with Content-Length and chunked bodies,
 * fed in pieces of every size; --secret-in: the query (percent-encoded) and bodies
 * (Content-Length rewritten, chunked re-chunked, placeholders split across reads and
 * chunks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_req.h"

#define PH "cocoon-secret-KEY-00112233445566778899aabbccddeeff"

static struct net_config cfg;
static struct http_filter f;
static const char *const values[] = {"sk-REAL", NULL};
static const char *const *vals = values; /* what run() gives the filter */

static void make_cfg(void)
{
    char err[256];
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(net_secret_add(&cfg, "KEY", "api.example.com,*.api2.example.com", PH, err, sizeof(err)), 0);
    assert_int_equal(net_header_rule_add(&cfg, "api.example.com:X-Injected=yes {{KEY}}", err, sizeof(err)), 0);
}

/* Runs text through a fresh filter in pieces of step bytes with an output room of
 * room bytes per call; returns 0 with the output in out, or -1 (f.why). */
static int run(const char *sni, int pinned, const char *text, size_t step, size_t room, char *out, size_t cap)
{
    struct http_scope sc = {.sni = sni, .pinned = pinned, .cfg = &cfg, .values = vals};
    http_filter_free(&f);
    http_filter_init(&f, 0);
    size_t n = strlen(text), off = 0, outlen = 0;
    while (off < n || f.state == HS_EMIT) {
        size_t k = n - off < step ? n - off : step, used = 0;
        size_t lim = outlen + room < cap ? outlen + room : cap;
        if (http_filter_run(&f, &sc, (const uint8_t *)text + off, k, &used, (uint8_t *)out, lim, &outlen) < 0)
            return -1;
        off += used;
        if (outlen >= cap)
            fail();
    }
    out[outlen] = 0;
    return 0;
}

static char out[200000];

static void test_header_and_basic(void **state)
{
    (void)state;
    make_cfg();
    /* "user:" PH in base64 */
    const char *req =
        "GET /v1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer " PH "\r\n"
        "Proxy-Authorization: Basic dXNlcjpjb2Nvb24tc2VjcmV0LUtFWS0wMDExMjIzMzQ0NTU2Njc3ODg5OWFhYmJjY2RkZWVmZg==\r\n"
        "X-Injected: guest's own\r\n\r\n";
    size_t steps[] = {1, 3, 17, 4096};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(run("api.example.com", 1, req, steps[i], 7 + i * 100, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "Authorization: Bearer sk-REAL\r\n"));
        assert_non_null(strstr(out, "Proxy-Authorization: Basic dXNlcjpzay1SRUFM\r\n")); /* user:sk-REAL */
        assert_non_null(strstr(out, "X-Injected: yes sk-REAL\r\n"));
        assert_null(strstr(out, "guest's own"));
        assert_null(strstr(out, "cocoon-secret"));
    }
}

static void test_refusals(void **state)
{
    (void)state;
    make_cfg();
    char req[1024];
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: api.example.com\r\nX-K: " PH "\r\n\r\n");
    assert_int_equal(run("api.example.com", 0, req, 5, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "not this box's DNS answer"));
    assert_int_equal(run("other.example.com", 1, req, 5, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "not one of the secret's hosts"));
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: evil.example.net\r\nX-K: " PH "\r\n\r\n");
    assert_int_equal(run("api.example.com", 1, req, 5, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "Host header is not the TLS server name"));
    snprintf(req, sizeof(req), "GET /?k=" PH " HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
    assert_int_equal(run("api.example.com", 1, req, 5, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "request target"));
    /* a body, the placeholder split across reads and chunks */
    snprintf(req, sizeof(req),
             "POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
             "a\r\n%.10s\r\n%x\r\n%s\r\n0\r\n\r\n",
             PH, (unsigned)strlen(PH) - 10, PH + 10);
    assert_int_equal(run("api.example.com", 1, req, 3, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "request body"));
    /* the secret's value is unknown to this box */
    const char *const none[] = {NULL, NULL};
    struct http_scope sc = {.sni = "api.example.com", .pinned = 1, .cfg = &cfg, .values = none};
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: api.example.com\r\nX-K: " PH "\r\n\r\n");
    size_t used = 0, outlen = 0;
    http_filter_init(&f, 0);
    assert_int_equal(http_filter_run(&f, &sc, (const uint8_t *)req, strlen(req), &used, (uint8_t *)out, 4096, &outlen),
                     -1);
    static const char *const smuggles[] = {
        "POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: api.example.com\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello!!\r\n",
    };
    for (size_t i = 0; i < sizeof(smuggles) / sizeof(smuggles[0]); i++)
        assert_int_equal(run("api.example.com", 1, smuggles[i], 7, 100, out, sizeof(out)), -1);
}

static void test_pipelined_bodies(void **state)
{
    (void)state;
    make_cfg();
    static char req[100000];
    static char big[60001];
    memset(big, 'b', 60000);
    snprintf(req, sizeof(req),
             "POST /a HTTP/1.1\r\nHost: x.api2.example.com\r\nContent-Length: 60000\r\n\r\n%s"
             "POST /b HTTP/1.1\r\nHost: x.api2.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3;ext=1\r\nabc\r\n0\r\nTrailer: t\r\n\r\n"
             "GET /c HTTP/1.1\r\nHost: X.API2.example.com:443\r\nX-K: " PH "\r\n\r\n",
             big);
    size_t steps[] = {1, 100, 1460, 16384};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(run("x.api2.example.com", 1, req, steps[i], 1000, out, sizeof(out)), 0);
        assert_int_equal(f.requests, 3);
        /* unchanged but for the last request's header */
        const char *c = strstr(out, "GET /c");
        assert_non_null(c);
        assert_memory_equal(out, req, (size_t)(c - out));
        assert_string_equal(c, "GET /c HTTP/1.1\r\nHost: X.API2.example.com:443\r\nX-K: sk-REAL\r\n\r\n");
    }
}

static void test_query(void **state)
{
    (void)state;
    make_cfg();
    char err[256], req[1024];
    static const char *const odd[] = {"sk REAL/+&=~", NULL};
    vals = odd;
    snprintf(req, sizeof(req), "GET /v1?key=" PH "&x=1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
    /* not asked for: refused */
    assert_int_equal(run("api.example.com", 1, req, 5, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "--secret-in NAME=query"));
    assert_int_equal(f.violation, 1);
    assert_int_equal(net_secret_in_set(&cfg, "KEY=headers,query", err, sizeof(err)), 0);
    size_t steps[] = {1, 7, 4096};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(run("api.example.com", 1, req, steps[i], 9, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "GET /v1?key=sk%20REAL%2F%2B%26%3D~&x=1 HTTP/1.1\r\n"));
        assert_null(strstr(out, "cocoon-secret"));
    }
    /* the path, another host, an unpinned address, Host != SNI: refused still */
    snprintf(req, sizeof(req), "GET /" PH "?x=1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
    assert_int_equal(run("api.example.com", 1, req, 5, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "headers only"));
    snprintf(req, sizeof(req), "GET /?k=" PH " HTTP/1.1\r\nHost: other.example.com\r\n\r\n");
    assert_int_equal(run("other.example.com", 1, req, 5, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "not one of the secret's hosts"));
    snprintf(req, sizeof(req), "GET /?k=" PH " HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
    assert_int_equal(run("api.example.com", 0, req, 5, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "DNS answer"));
    snprintf(req, sizeof(req), "GET /?k=" PH " HTTP/1.1\r\nHost: evil.example.net\r\n\r\n");
    assert_int_equal(run("api.example.com", 1, req, 5, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "Host header"));
    vals = values;
}

static void test_body_content_length(void **state)
{
    (void)state;
    make_cfg();
    char err[256];
    static char req[200000];
    const char *body = "{\"key\": \"" PH "\", \"again\": \"" PH "\"}";
    snprintf(req, sizeof(req),
             "POST /v1 HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: %zu\r\nX-A: 1\r\n\r\n%s"
             "GET /next HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
             strlen(body), body);
    assert_int_equal(run("api.example.com", 1, req, 5, 100, out, sizeof(out)), -1); /* not asked for */
    assert_non_null(strstr(f.why, "request body"));
    assert_int_equal(net_secret_in_set(&cfg, "KEY=body", err, sizeof(err)), 0);
    const char *want = "{\"key\": \"sk-REAL\", \"again\": \"sk-REAL\"}";
    char expect[512];
    snprintf(expect, sizeof(expect),
             "POST /v1 HTTP/1.1\r\nHost: api.example.com\r\nX-A: 1\r\nX-Injected: yes sk-REAL\r\n"
             "Content-Length: %zu\r\n\r\n%sGET /next HTTP/1.1\r\nHost: api.example.com\r\n"
             "X-Injected: yes sk-REAL\r\n\r\n",
             strlen(want), want);
    size_t steps[] = {1, 3, 17, 60, 4096};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(run("api.example.com", 1, req, steps[i], 11 + i * 50, out, sizeof(out)), 0);
        assert_string_equal(out, expect);
        assert_int_equal(f.requests, 2);
    }
    /* another host, unpinned: refused */
    assert_int_equal(run("api.example.com", 0, req, 64, 100, out, sizeof(out)), -1);
    assert_int_equal(run("other.example.com", 1, req, 64, 100, out, sizeof(out)), -1);
    /* over the bound: passes as is when it has no placeholder, refused when it has */
    static char big[HTTP_BODY_MAX + 2];
    memset(big, 'b', HTTP_BODY_MAX + 1);
    snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: %u\r\n\r\n%s",
             HTTP_BODY_MAX + 1, big);
    assert_int_equal(run("api.example.com", 1, req, 1460, 2000, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "Content-Length: 65537\r\n"));
    memcpy(big + 1000, PH, strlen(PH));
    snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: %u\r\n\r\n%s",
             HTTP_BODY_MAX + 1, big);
    assert_int_equal(run("api.example.com", 1, req, 1460, 2000, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "larger than 64 KiB"));
}

/* The chunked body after the head of out, decoded; the trailers after it in *rest. */
static size_t dechunk(const char *o, char *body, size_t cap, const char **rest)
{
    const char *p = strstr(o, "\r\n\r\n") + 4;
    size_t n = 0;
    for (;;) {
        char *e;
        unsigned long size = strtoul(p, &e, 16);
        assert_memory_equal(e, "\r\n", 2);
        p = e + 2;
        if (!size)
            break;
        assert_true(n + size < cap);
        memcpy(body + n, p, size);
        n += size;
        p += size;
        assert_memory_equal(p, "\r\n", 2);
        p += 2;
    }
    body[n] = 0;
    *rest = p;
    return n;
}

static void test_body_chunked(void **state)
{
    (void)state;
    make_cfg();
    char err[256], req[2048], body[1024];
    assert_int_equal(net_secret_in_set(&cfg, "KEY=headers,body", err, sizeof(err)), 0);
    /* the placeholder split across two chunks, and a second one whole */
    snprintf(req, sizeof(req),
             "POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
             "%x;ext=1\r\nk=%.20s\r\n%x\r\n%s&again=%s\r\n0\r\nX-Trailer: t\r\n\r\n"
             "GET /next HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
             22, PH, (unsigned)(strlen(PH) - 20 + 7 + strlen(PH)), PH + 20, PH);
    size_t steps[] = {1, 2, 5, 33, 4096};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(run("api.example.com", 1, req, steps[i], 40 + i * 40, out, sizeof(out)), 0);
        const char *rest;
        dechunk(out, body, sizeof(body), &rest);
        assert_string_equal(body, "k=sk-REAL&again=sk-REAL");
        assert_string_equal(rest, "X-Trailer: t\r\n\r\nGET /next HTTP/1.1\r\nHost: api.example.com\r\n"
                                  "X-Injected: yes sk-REAL\r\n\r\n");
        assert_null(strstr(out, "cocoon-secret"));
        assert_int_equal(f.requests, 2);
    }
    /* another host's body: refused */
    assert_int_equal(run("other.example.com", 1, req, 3, 100, out, sizeof(out)), -1);
    assert_non_null(strstr(f.why, "request body"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_and_basic),    cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_pipelined_bodies),    cmocka_unit_test(test_query),
        cmocka_unit_test(test_body_content_length), cmocka_unit_test(test_body_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
