/* WebSocket (RFC 6455), server side, for `cocoon serve`: the opening handshake's
 * checks and Sec-WebSocket-Accept (ws_handshake.c), an incremental parser of client
 * frames with bounded buffering (ws.c), and a connection over a socket that writes whole
 * frames from any thread and reads whole messages, answering pings (ws_conn.c). */
#ifndef COCOON_SERVE_WS_H
#define COCOON_SERVE_WS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* ---- bounds ---- */
#define WS_MESSAGE_MAX_DEFAULT (1u << 20) /* a reassembled client message: larger → close 1009 */
#define WS_CONTROL_MAX 125                /* a control frame's payload (RFC 6455 5.5) */
#define WS_HEADER_MAX 14                  /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_READ_CHUNK 16384               /* bytes read from the socket at a time */
#define WS_SEND_TIMEOUT_MS_DEFAULT 30000  /* a frame not written by then breaks the connection */
#define WS_CLOSE_REASON_MAX 123           /* a close frame's reason: 125 minus the code */

/* Sec-WebSocket-Accept: base64 of a SHA-1, 28 characters and a NUL. */
#define WS_ACCEPT_SIZE 29

enum ws_opcode {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

/* Close codes this code sends or reports (RFC 6455 7.4.1). */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* reported for a close frame without a code; never sent */
    WS_CLOSE_ABNORMAL = 1006,  /* reported when the peer vanished without a close; never sent */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL_ERROR = 1011,
};

/* ---- handshake (ws_handshake.c) ---- */

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (surrounding spaces and tabs
 * ignored): 0 with out filled, -1 when the key is not the base64 of 16 bytes. */
int ws_accept_key(const char *client_key, char out[WS_ACCEPT_SIZE]);

/* The upgrade request's parts (header values as received, NULL when absent). */
struct ws_upgrade_request {
    const char *method;     /* "GET" */
    const char *upgrade;    /* Upgrade: a token list holding "websocket" */
    const char *connection; /* Connection: a token list holding "upgrade" */
    const char *version;    /* Sec-WebSocket-Version: "13" */
    const char *key;        /* Sec-WebSocket-Key */
};
/* Checks an upgrade request. 0 with accept filled: answer 101 with "Upgrade: websocket",
 * "Connection: Upgrade" and "Sec-WebSocket-Accept: <accept>". Otherwise the HTTP status
 * to answer (405 not GET, 426 with "Sec-WebSocket-Version: 13" for another version, 400
 * for anything else) and *why says what is wrong. */
int ws_upgrade_check(const struct ws_upgrade_request *req, char accept[WS_ACCEPT_SIZE], const char **why);

/* ---- frames (ws.c): pure code over bytes, no I/O ---- */

/* 1 when the len bytes at p are valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int ws_utf8_valid(const void *p, size_t len);
/* The same check over text arriving in pieces: zero it, feed every piece (0 at the first
 * invalid byte, 1 otherwise), then ws_utf8_complete says whether it ends on a character. */
struct ws_utf8 {
    uint8_t need, lo, hi; /* continuation bytes still due, the range of the next one */
};
int ws_utf8_feed(struct ws_utf8 *u, const uint8_t *s, size_t n);
static inline int ws_utf8_complete(const struct ws_utf8 *u) { return u->need == 0; }

/* 1 for the codes a close frame may carry (RFC 6455 7.4 and IANA's registry: 1000-1003,
 * 1007-1014, 3000-4999); 1005, 1006 and 1015 are only ever reported, never sent. */
int ws_close_code_valid(uint16_t code);

/* Writes a frame header (FIN set) for a payload of len bytes: masked with mask when it is
 * not NULL (client frames; the caller masks the payload), unmasked otherwise (server
 * frames). Returns its size (2 to WS_HEADER_MAX). */
size_t ws_frame_header(uint8_t out[WS_HEADER_MAX], enum ws_opcode op, uint64_t len, const uint8_t *mask);

enum ws_event_type {
    WS_EV_NONE,    /* every byte given was consumed; nothing complete yet */
    WS_EV_MESSAGE, /* a whole text or binary message */
    WS_EV_PING,    /* data: the ping's payload (to echo in a pong) */
    WS_EV_PONG,
    WS_EV_CLOSE, /* close_code (WS_CLOSE_NO_STATUS when it had none), data: its reason */
    WS_EV_ERROR, /* the client broke the protocol: close with close_code, error says why */
};

struct ws_event {
    enum ws_event_type type;
    enum ws_opcode opcode; /* of a message: WS_OP_TEXT (valid UTF-8) or WS_OP_BINARY */
    const uint8_t *data;   /* valid until the next ws_parse/ws_parser_free */
    size_t len;
    uint16_t close_code;
    const char *error;
};

/* The parser's state between calls. At most max_message bytes of a message plus one
 * control frame (WS_CONTROL_MAX) are ever held, whatever the client sends. */
struct ws_parser {
    size_t max_message;
    /* the frame being read */
    uint8_t hdr[WS_HEADER_MAX];
    size_t hdr_len;
    int in_payload; /* the header is complete and checked */
    uint8_t opcode, fin, mask[4];
    uint64_t payload_len, payload_done;
    /* the message being reassembled (opcode 0: none) */
    uint8_t msg_opcode;
    uint8_t *msg;
    size_t msg_len, msg_cap;
    struct ws_utf8 utf8; /* of a text message, checked as it arrives */
    uint8_t ctl[WS_CONTROL_MAX];
    /* set once a close or an error was reported: the parser takes no more input */
    struct ws_event final;
    int deliver_reset; /* the last event's buffer is dropped at the next call */
};

/* max_message: the largest message accepted (0 picks WS_MESSAGE_MAX_DEFAULT). */
void ws_parser_init(struct ws_parser *p, size_t max_message);
void ws_parser_free(struct ws_parser *p);
/* Consumes client bytes until one event is complete (or all are consumed: WS_EV_NONE).
 * Returns the bytes consumed; the caller passes the rest again. Input may be split
 * anywhere, one byte at a time included. After WS_EV_CLOSE or WS_EV_ERROR the parser is
 * finished: later calls consume nothing and report the same event again. */
size_t ws_parse(struct ws_parser *p, const uint8_t *buf, size_t len, struct ws_event *ev);

/* ---- a connection over a socket (ws_conn.c) ---- */

/* Sends take the write lock, so one thread may send output while another reads (and
 * answers pings or a close); reads belong to one thread at a time. The fd may be
 * blocking or not: every wait is a poll with a deadline. */
struct ws_conn {
    int fd;
    int is_socket;       /* send() with MSG_NOSIGNAL|MSG_DONTWAIT rather than writev() */
    int send_timeout_ms; /* per frame; -1 waits forever (default WS_SEND_TIMEOUT_MS_DEFAULT) */
    pthread_mutex_t write_lock;
    int close_sent; /* under write_lock: nothing but a close is ever sent after one */
    int broken;     /* under write_lock: a frame was cut short, the stream is unusable */
    struct ws_parser parser;
    uint8_t *in; /* read but not yet parsed: in[in_off..in_len) */
    size_t in_off, in_len, in_cap;
    int close_received;
    int read_done;       /* WS_READ_CLOSED or WS_READ_ERROR once reading has ended */
    uint16_t close_code; /* after WS_READ_CLOSED or WS_READ_ERROR: received or sent */
    unsigned long pongs; /* pongs received: read with ws_conn_pongs */
    char error[160];     /* under write_lock: read with ws_conn_error */
};

/* extra_in: bytes the HTTP server already read past the request (libmicrohttpd's
 * upgrade handler hands them over); they are parsed before the socket is read. 0, or
 * -1 with error set (out of memory). Does not take ownership of fd. */
int ws_conn_init(struct ws_conn *c, int fd, size_t max_message, const void *extra_in, size_t extra_len);
void ws_conn_destroy(struct ws_conn *c); /* does not close fd */
/* What went wrong last (a send's or the reader's failure), for a person: copied into out. */
void ws_conn_error(struct ws_conn *c, char *out, size_t cap);
/* Pongs received so far, from any thread: a liveness signal for the caller's pings. */
unsigned long ws_conn_pongs(const struct ws_conn *c);

/* Whole unfragmented frames, unmasked. 0, or -1 with c->error set: after a close was sent
 * (data frames only), on a timeout or a failed write (the connection is then broken:
 * close the fd), a control payload over WS_CONTROL_MAX, or text that is not UTF-8. */
int ws_send(struct ws_conn *c, enum ws_opcode op, const struct iovec *iov, int iovcnt);
int ws_send_text(struct ws_conn *c, const void *data, size_t len);
int ws_send_binary(struct ws_conn *c, const void *data, size_t len);
int ws_send_ping(struct ws_conn *c, const void *data, size_t len);
/* Starts the closing handshake (once: later calls return 0 and send nothing). code 0
 * sends a close without a status, else it must pass ws_close_code_valid (-1, EINVAL);
 * reason may be NULL, it is cut to WS_CLOSE_REASON_MAX bytes at a character boundary. */
int ws_send_close(struct ws_conn *c, uint16_t code, const char *reason);

enum ws_read_result {
    WS_READ_MESSAGE, /* msg holds a message */
    WS_READ_CLOSED,  /* the client closed (c->close_code); our close was sent: close the fd */
    WS_READ_TIMEOUT, /* nothing complete within timeout_ms; call again (nothing is lost) */
    WS_READ_ERROR,   /* protocol or I/O error, c->error says which; a close with c->close_code
                        was sent when the stream allowed it: close the fd */
};
struct ws_message {
    enum ws_opcode opcode; /* WS_OP_TEXT or WS_OP_BINARY */
    const uint8_t *data;   /* valid until the next ws_read_message or ws_conn_destroy */
    size_t len;
};
/* The next message, answering pings with pongs and a close with a close on the way.
 * timeout_ms bounds this call's waiting (-1: none). */
enum ws_read_result ws_read_message(struct ws_conn *c, int timeout_ms, struct ws_message *msg);
/* For a caller that polls c->fd itself (with other fds): bytes are buffered that may hold
 * a whole message, so call ws_read_message(c, 0, ...) before polling again. */
static inline int ws_conn_has_input(const struct ws_conn *c) { return c->in_off < c->in_len; }

#endif
