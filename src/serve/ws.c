/* WebSocket frames (RFC 6455 section 5): the incremental parser of client frames that
 * reassembles messages within a size bound and fails the connection with the right close
 * code on every protocol breach, the server's frame header writer, and UTF-8 checking. */
#include "serve/ws.h"

#include <stdlib.h>
#include <string.h>

/* A message buffer larger than this is freed once its message is delivered, so an idle
 * connection does not keep the memory of its largest message. */
#define WS_KEEP_BUFFER 65536
#define WS_FIRST_BUFFER 4096

/* ---- UTF-8 ---- */

int ws_utf8_feed(struct ws_utf8 *u, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = s[i];
        if (u->need) {
            if (b < u->lo || b > u->hi)
                return 0;
            u->need--;
            u->lo = 0x80, u->hi = 0xbf;
            continue;
        }
        if (b < 0x80)
            continue;
        /* The second byte's range rules out overlongs (E0, F0), surrogates (ED) and
         * code points past U+10FFFF (F4); C0, C1 and F5..FF never start a character. */
        u->lo = 0x80, u->hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf)
            u->need = 1;
        else if (b >= 0xe0 && b <= 0xef)
            u->need = 2, u->lo = b == 0xe0 ? 0xa0 : 0x80, u->hi = b == 0xed ? 0x9f : 0xbf;
        else if (b >= 0xf0 && b <= 0xf4)
            u->need = 3, u->lo = b == 0xf0 ? 0x90 : 0x80, u->hi = b == 0xf4 ? 0x8f : 0xbf;
        else
            return 0;
    }
    return 1;
}

int ws_utf8_valid(const void *p, size_t len)
{
    struct ws_utf8 u = {0};
    return ws_utf8_feed(&u, p, len) && ws_utf8_complete(&u);
}

/* ---- the server's frames ---- */

size_t ws_frame_header(uint8_t out[WS_HEADER_MAX], enum ws_opcode op, uint64_t len, const uint8_t *mask)
{
    size_t n = 2;
    out[0] = (uint8_t)(0x80 | op);
    if (len < 126) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8), out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

/* ---- the client's frames ---- */

void ws_parser_init(struct ws_parser *p, size_t max_message)
{
    memset(p, 0, sizeof(*p));
    p->max_message = max_message ? max_message : WS_MESSAGE_MAX_DEFAULT;
}

void ws_parser_free(struct ws_parser *p)
{
    free(p->msg);
    p->msg = NULL;
    p->msg_cap = p->msg_len = 0;
}

static int is_control(uint8_t op) { return op & 0x8; }

/* Ends the parser with an error event: the connection is to be failed with code. */
static void fail(struct ws_parser *p, uint16_t code, const char *why, struct ws_event *ev)
{
    memset(&p->final, 0, sizeof(p->final));
    p->final.type = WS_EV_ERROR;
    p->final.close_code = code;
    p->final.error = why;
    *ev = p->final;
}

/* Forgets the delivered message; a large buffer goes back to the allocator. */
static void message_reset(struct ws_parser *p)
{
    p->msg_opcode = 0;
    p->msg_len = 0;
    memset(&p->utf8, 0, sizeof(p->utf8));
    if (p->msg_cap > WS_KEEP_BUFFER) {
        free(p->msg);
        p->msg = NULL;
        p->msg_cap = 0;
    }
}

/* Bytes the header has once its first two are known. */
static size_t header_size(const uint8_t *h)
{
    size_t n = 2;
    uint8_t len7 = h[1] & 0x7f;
    if (len7 == 126)
        n += 2;
    else if (len7 == 127)
        n += 8;
    if (h[1] & 0x80)
        n += 4;
    return n;
}

/* Checks a frame's first two bytes: whatever they break fails at once, before any
 * length or payload is read. NULL when fine, else why (all are protocol errors). */
static const char *check_start(const struct ws_parser *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    uint8_t op = b0 & 0x0f;
    if (b0 & 0x70)
        return "reserved bits set in a frame (no extension was negotiated)";
    if (!(b1 & 0x80))
        return "client frame not masked";
    switch (op) {
    case WS_OP_CONTINUATION:
        if (!p->msg_opcode)
            return "continuation frame without a message to continue";
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (p->msg_opcode)
            return "new message started before the previous one's final fragment";
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!(b0 & 0x80))
            return "fragmented control frame";
        if ((b1 & 0x7f) > WS_CONTROL_MAX)
            return "control frame longer than 125 bytes";
        break;
    default: return "unknown opcode";
    }
    return NULL;
}

/* The header is complete: its length is known and checked against the bounds. */
static int header_done(struct ws_parser *p, struct ws_event *ev)
{
    const uint8_t *h = p->hdr;
    uint8_t len7 = h[1] & 0x7f;
    size_t at = 2;
    uint64_t len = len7;
    if (len7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        at = 10;
        if (len >> 63) {
            fail(p, WS_CLOSE_PROTOCOL_ERROR, "frame length has its most significant bit set", ev);
            return -1;
        }
    }
    memcpy(p->mask, h + at, 4);
    p->fin = h[0] >> 7;
    p->opcode = h[0] & 0x0f;
    p->payload_len = len;
    p->payload_done = 0;
    if (!is_control(p->opcode)) {
        if (len > p->max_message - p->msg_len) {
            fail(p, WS_CLOSE_TOO_BIG, "message larger than the server accepts", ev);
            return -1;
        }
        if (p->opcode != WS_OP_CONTINUATION) {
            p->msg_opcode = p->opcode;
            memset(&p->utf8, 0, sizeof(p->utf8));
        }
    }
    p->in_payload = 1;
    return 0;
}

/* Room for n more message bytes (n fits within max_message: header_done checked). */
static int message_reserve(struct ws_parser *p, size_t n)
{
    size_t need = p->msg_len + n;
    if (need <= p->msg_cap)
        return 0;
    size_t cap = p->msg_cap ? p->msg_cap : WS_FIRST_BUFFER;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > p->max_message)
        cap = need > p->max_message ? need : p->max_message;
    uint8_t *grown = realloc(p->msg, cap);
    if (!grown)
        return -1;
    p->msg = grown;
    p->msg_cap = cap;
    return 0;
}

/* Unmasks up to n payload bytes into the message or the control buffer. */
static int payload_take(struct ws_parser *p, const uint8_t *in, size_t n, struct ws_event *ev)
{
    uint8_t *dst;
    if (is_control(p->opcode)) {
        dst = p->ctl + p->payload_done; /* payload_len <= WS_CONTROL_MAX */
    } else {
        if (message_reserve(p, n) < 0) {
            fail(p, WS_CLOSE_INTERNAL_ERROR, "out of memory reassembling a message", ev);
            return -1;
        }
        dst = p->msg + p->msg_len;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = in[i] ^ p->mask[(p->payload_done + i) & 3];
    if (!is_control(p->opcode)) {
        /* Text is checked as it arrives, so a bad byte fails without waiting for more. */
        if (p->msg_opcode == WS_OP_TEXT && !ws_utf8_feed(&p->utf8, dst, n)) {
            fail(p, WS_CLOSE_INVALID_DATA, "text message is not valid UTF-8", ev);
            return -1;
        }
        p->msg_len += n;
    }
    p->payload_done += n;
    return 0;
}

int ws_close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/* A whole frame's payload is in: an event for a control frame or a final fragment. */
static void frame_done(struct ws_parser *p, struct ws_event *ev)
{
    size_t len = (size_t)p->payload_len;
    p->in_payload = 0;
    p->hdr_len = 0;
    switch (p->opcode) {
    case WS_OP_PING:
    case WS_OP_PONG:
        ev->type = p->opcode == WS_OP_PING ? WS_EV_PING : WS_EV_PONG;
        ev->data = p->ctl;
        ev->len = len;
        return;
    case WS_OP_CLOSE:
        if (len == 1) {
            fail(p, WS_CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload", ev);
            return;
        }
        memset(&p->final, 0, sizeof(p->final));
        p->final.type = WS_EV_CLOSE;
        p->final.close_code = WS_CLOSE_NO_STATUS;
        if (len >= 2) {
            uint16_t code = (uint16_t)(p->ctl[0] << 8 | p->ctl[1]);
            if (!ws_close_code_valid(code)) {
                fail(p, WS_CLOSE_PROTOCOL_ERROR, "close frame with an invalid status code", ev);
                return;
            }
            if (!ws_utf8_valid(p->ctl + 2, len - 2)) {
                fail(p, WS_CLOSE_INVALID_DATA, "close frame reason is not valid UTF-8", ev);
                return;
            }
            p->final.close_code = code;
            p->final.data = p->ctl + 2;
            p->final.len = len - 2;
        }
        *ev = p->final;
        return;
    default:
        if (!p->fin)
            return;
        if (p->msg_opcode == WS_OP_TEXT && !ws_utf8_complete(&p->utf8)) {
            fail(p, WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 character", ev);
            return;
        }
        ev->type = WS_EV_MESSAGE;
        ev->opcode = p->msg_opcode;
        /* An empty message may have no buffer yet: point at something valid anyway. */
        ev->data = p->msg ? p->msg : p->ctl;
        ev->len = p->msg_len;
        p->deliver_reset = 1;
        return;
    }
}

size_t ws_parse(struct ws_parser *p, const uint8_t *buf, size_t len, struct ws_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (p->final.type != WS_EV_NONE) {
        *ev = p->final;
        return 0;
    }
    if (p->deliver_reset) {
        p->deliver_reset = 0;
        message_reset(p);
    }
    size_t used = 0;
    for (;;) {
        if (!p->in_payload) {
            if (used == len)
                return used;
            p->hdr[p->hdr_len++] = buf[used++];
            if (p->hdr_len == 2) {
                const char *why = check_start(p);
                if (why) {
                    fail(p, WS_CLOSE_PROTOCOL_ERROR, why, ev);
                    return used;
                }
            }
            if (p->hdr_len < 2 || p->hdr_len < header_size(p->hdr))
                continue;
            if (header_done(p, ev) < 0)
                return used;
        }
        if (p->payload_done < p->payload_len) {
            if (used == len)
                return used;
            uint64_t left = p->payload_len - p->payload_done;
            size_t n = len - used < left ? len - used : (size_t)left;
            if (payload_take(p, buf + used, n, ev) < 0)
                return used + n;
            used += n;
            if (p->payload_done < p->payload_len)
                return used;
        }
        frame_done(p, ev);
        if (ev->type != WS_EV_NONE)
            return used;
    }
}
