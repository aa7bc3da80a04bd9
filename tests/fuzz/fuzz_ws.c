/* Fuzz target: bytes as a client's WebSocket stream (src/serve/ws*.c). The first byte
 * picks the message bound and how the stream is cut; the rest is parsed whole and in
 * pieces (the events must agree), every event is checked against the protocol's rules,
 * and the stream is read once more through a connection (pongs and closes written to a
 * socketpair). The first line is also tried as a Sec-WebSocket-Key. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

#define MAX_EVENTS 64

struct seen {
    enum ws_event_type type;
    enum ws_opcode opcode;
    uint16_t close_code;
    size_t len;
    uint64_t hash;
};

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int close_code_allowed(uint16_t c)
{
    return c == WS_CLOSE_NO_STATUS || (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* Checks one event against the rules; records it. */
static void note(struct seen *s, int *n, const struct ws_event *ev, size_t max_message)
{
    switch (ev->type) {
    case WS_EV_MESSAGE:
        check(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
        check(ev->len <= max_message);
        check(ev->opcode != WS_OP_TEXT || ws_utf8_valid(ev->data, ev->len));
        break;
    case WS_EV_PING:
    case WS_EV_PONG: check(ev->len <= WS_CONTROL_MAX); break;
    case WS_EV_CLOSE:
        check(close_code_allowed(ev->close_code) && ev->len <= WS_CLOSE_REASON_MAX);
        check(ws_utf8_valid(ev->data, ev->len));
        break;
    case WS_EV_ERROR:
        check(ev->error != NULL);
        check(ev->close_code == WS_CLOSE_PROTOCOL_ERROR || ev->close_code == WS_CLOSE_INVALID_DATA ||
              ev->close_code == WS_CLOSE_TOO_BIG || ev->close_code == WS_CLOSE_INTERNAL_ERROR);
        break;
    default: check(0);
    }
    if (ev->len)
        check(ev->data != NULL);
    if (*n < MAX_EVENTS)
        s[*n] = (struct seen){ev->type, ev->opcode, ev->close_code, ev->len, hash_bytes(ev->data, ev->len)};
    (*n)++;
}

/* Parses the stream cut into pieces (piece_seed 0: whole); returns the events seen. */
static int parse_stream(const uint8_t *buf, size_t len, size_t max_message, uint32_t piece_seed, struct seen *s)
{
    struct ws_parser p;
    ws_parser_init(&p, max_message);
    int n = 0;
    size_t off = 0;
    uint32_t r = piece_seed;
    while (off < len) {
        size_t piece = len - off;
        if (piece_seed) {
            r = r * 1103515245u + 12345u;
            size_t cut = 1 + (r >> 16) % 23;
            if (cut < piece)
                piece = cut;
        }
        size_t end = off + piece;
        int finished = 0;
        while (off < end) {
            struct ws_event ev;
            size_t used = ws_parse(&p, buf + off, end - off, &ev);
            check(used <= end - off);
            off += used;
            if (ev.type == WS_EV_NONE) {
                check(off == end);
                break;
            }
            note(s, &n, &ev, p.max_message);
            if (ev.type == WS_EV_CLOSE || ev.type == WS_EV_ERROR) {
                /* A finished parser takes nothing more and says the same again. */
                struct ws_event again;
                check(ws_parse(&p, buf + off, len - off, &again) == 0);
                check(again.type == ev.type && again.close_code == ev.close_code);
                finished = 1;
                break;
            }
        }
        if (finished)
            break;
    }
    /* Never more than the bound plus what one growth step may round up to. */
    check(p.msg_cap <= p.max_message);
    ws_parser_free(&p);
    return n;
}

/* The same stream through a connection: it arrives as the bytes an HTTP server read
 * past the request, then the socket ends. */
static void read_through_conn(const uint8_t *buf, size_t len, size_t max_message, int expected_messages)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return;
    shutdown(sv[1], SHUT_WR); /* the client sends nothing more */
    struct ws_conn c;
    if (ws_conn_init(&c, sv[0], max_message, buf, len) == 0) {
        c.send_timeout_ms = 0; /* a full socket breaks the connection at once */
        struct ws_message m;
        enum ws_read_result r;
        int messages = 0;
        while ((r = ws_read_message(&c, 0, &m)) == WS_READ_MESSAGE) {
            check(m.len <= max_message);
            messages++;
        }
        check(r == WS_READ_CLOSED || r == WS_READ_ERROR || r == WS_READ_TIMEOUT);
        /* Pongs can only fail to go out when the peer's buffer is full: short of that, the
         * connection sees every message the parser saw. */
        if (!c.broken)
            check(messages == expected_messages || expected_messages > MAX_EVENTS);
        char err[160];
        ws_conn_error(&c, err, sizeof(err));
        check(memchr(err, 0, sizeof(err)) != NULL);
    }
    ws_conn_destroy(&c);
    close(sv[0]);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* The key check: the first line, NUL-terminated. */
    char key[64];
    size_t klen = 0;
    while (klen < size && klen < sizeof(key) - 1 && data[klen] != '\n')
        klen++;
    memcpy(key, data, klen);
    key[klen] = 0;
    char accept[WS_ACCEPT_SIZE];
    if (ws_accept_key(key, accept) == 0)
        check(strlen(accept) == WS_ACCEPT_SIZE - 1);

    /* A small bound (16 bytes to 64 KiB) so that 1009 is reachable from short inputs. */
    size_t max_message = (size_t)16 << (data[0] & 0x0f);
    uint32_t seed = (uint32_t)data[0] * 2654435761u | 1;
    const uint8_t *stream = data + 1;
    size_t len = size - 1;

    static struct seen whole[MAX_EVENTS], cut[MAX_EVENTS];
    int n_whole = parse_stream(stream, len, max_message, 0, whole);
    int n_cut = parse_stream(stream, len, max_message, seed, cut);
    check(n_whole == n_cut);
    for (int i = 0; i < n_whole && i < MAX_EVENTS; i++)
        check(whole[i].type == cut[i].type && whole[i].opcode == cut[i].opcode &&
              whole[i].close_code == cut[i].close_code && whole[i].len == cut[i].len && whole[i].hash == cut[i].hash);

    int messages = 0;
    for (int i = 0; i < n_whole && i < MAX_EVENTS; i++)
        messages += whole[i].type == WS_EV_MESSAGE;
    read_through_conn(stream, len, max_message, n_whole > MAX_EVENTS ? MAX_EVENTS + 1 : messages);
    return 0;
}
