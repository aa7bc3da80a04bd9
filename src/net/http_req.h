/* The HTTP/1.1 requests of an intercepted TLS connection (guest -> upstream), parsed
 * as a stream with bounded memory: the request line and headers of each request
 * (at most HTTP_HEAD_MAX bytes), then its body by Content-Length or chunked coding,
 * request after request (keep-alive, pipelining). Each header block is where secret
 * placeholders become values and header rules apply; the query and the body too for a
 * secret that asks (--secret-in); a placeholder anywhere it may not go stops the
 * connection (the caller logs why). */
#ifndef COCOON_NET_HTTP_REQ_H
#define COCOON_NET_HTTP_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define HTTP_HEAD_MAX (16u * 1024)     /* a request line and its headers */
#define HTTP_HEAD_OUT_MAX (48u * 1024) /* the same rewritten (values longer than placeholders, rules) */
#define HTTP_MAX_HEADERS 128
#define HTTP_LINE_MAX 1024 /* a chunk-size line or a trailer */
/* The largest Content-Length body buffered to put a secret's value in it (--secret-in
 * NAME=body): a larger one passes as it streams, and a placeholder in it is refused.
 * Chunked bodies are re-chunked as they stream: no bound. */
#define HTTP_BODY_MAX (64u * 1024)
#define HTTP_BODY_OUT_MAX (1024u * 1024) /* such a body once the values are in */

/* What the filter of one connection decides with. */
struct http_scope {
    const char *sni;              /* the TLS server name (lowercase) */
    int pinned;                   /* the destination came from this box's DNS answer for sni */
    const struct net_config *cfg; /* secrets (names, hosts, placeholders) and header rules */
    const char *const *values;    /* values[i]: secrets[i]'s value, NULL when not given */
};

enum http_state {
    HS_HEAD,       /* reading a request line and headers */
    HS_EMIT,       /* the rewritten head waits for room in the output */
    HS_BODY,       /* Content-Length bytes left */
    HS_CHUNK_SIZE, /* a chunk-size line */
    HS_CHUNK_DATA,
    HS_CHUNK_CRLF, /* the CRLF after a chunk's data */
    HS_TRAILER,    /* trailer lines until an empty one */
    HS_OPAQUE,     /* after an upgrade (CONNECT, WebSocket): bytes only, scanned */
    HS_BODY_BUF,   /* a Content-Length body buffered: secrets go in, then its length */
    HS_FAILED
};

struct http_filter {
    enum http_state state;
    uint8_t head[HTTP_HEAD_MAX];
    size_t head_len;
    uint8_t out[HTTP_HEAD_OUT_MAX]; /* the rewritten head */
    size_t out_len, out_off;
    uint64_t body_left;    /* HS_BODY, HS_CHUNK_DATA */
    enum http_state after; /* where HS_EMIT goes once the head is out */
    char line[HTTP_LINE_MAX];
    size_t line_len;
    uint8_t carry[160]; /* the end of the previous body bytes: placeholders split across reads */
    size_t carry_len;
    /* --secret-in NAME=body: this request's body gets values for placeholders */
    int body_swap, host_ok;
    uint8_t *body; /* HS_BODY_BUF: the body so far (heap, wiped) */
    size_t body_len;
    uint8_t pend[160]; /* chunked: body bytes held back, maybe the start of a placeholder */
    size_t pend_len;
    uint8_t *emit; /* HS_EMIT from here instead of out when set (heap, wiped) */
    unsigned requests;
    int scan_only;
    int violation; /* the failure is a secret's placeholder where it may not go (not a bad request) */
    char why[320]; /* set when it fails */
};

/* scan_only: the stream is not parsed, only scanned for placeholders (a host that is no
 * secret's and has no header rule: any protocol passes). */
void http_filter_init(struct http_filter *f, int scan_only);
/* Wipes and frees what a filter holds on the heap (a buffered body); init again to reuse. */
void http_filter_free(struct http_filter *f);
/* Feeds in[0..n): what may pass is appended to out (at most outcap - *outlen bytes).
 * *used: the bytes of in taken (less than n when out is full). 0, or -1 when the
 * stream must stop (f->why says why: a placeholder where it may not go, a malformed
 * or oversized request). */
int http_filter_run(struct http_filter *f, const struct http_scope *sc, const uint8_t *in, size_t n, size_t *used,
                    uint8_t *out, size_t outcap, size_t *outlen);

/* The placeholder of a secret (its name and 32 random hex digits): into out. */
void http_placeholder(const char *name, const uint8_t rnd[16], char *out, size_t cap);

#endif
