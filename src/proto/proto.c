/* Frame and TLV codec of the cocoon wire protocol. Every length read from a peer is
 * checked against the bytes actually present and against the protocol bounds before
 * it is used; decoders never read past the payload they were given. */
#include "proto/proto.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get_le64(const uint8_t *p) { return (uint64_t)get_le32(p) | ((uint64_t)get_le32(p + 4) << 32); }

const char *proto_strerror(int status)
{
    switch (status) {
    case PROTO_OK: return "ok";
    case PROTO_NEED_MORE: return "incomplete frame";
    case PROTO_E_VERSION: return "unsupported protocol version in frame header";
    case PROTO_E_OVERSIZE: return "frame payload larger than the protocol allows";
    case PROTO_E_TYPE: return "unknown message type";
    case PROTO_E_FLAGS: return "reserved frame flags set";
    case PROTO_E_TRUNCATED: return "field runs past the end of the message";
    case PROTO_E_FIELD: return "malformed or missing field";
    case PROTO_E_NOMEM: return "out of memory";
    case PROTO_E_STREAM: return "message on the wrong stream";
    default: return "unknown protocol error";
    }
}

const char *proto_type_name(unsigned type)
{
    switch (type) {
    case PROTO_HELLO: return "HELLO";
    case PROTO_CONFIG: return "CONFIG";
    case PROTO_READY: return "READY";
    case PROTO_PING: return "PING";
    case PROTO_PONG: return "PONG";
    case PROTO_SHUTDOWN: return "SHUTDOWN";
    case PROTO_ERROR: return "ERROR";
    case PROTO_EXEC: return "EXEC";
    case PROTO_STARTED: return "STARTED";
    case PROTO_STDIN: return "STDIN";
    case PROTO_STDIN_EOF: return "STDIN_EOF";
    case PROTO_STDOUT: return "STDOUT";
    case PROTO_STDERR: return "STDERR";
    case PROTO_EXIT: return "EXIT";
    case PROTO_SIGNAL: return "SIGNAL";
    case PROTO_RESIZE: return "RESIZE";
    case PROTO_CREDIT: return "CREDIT";
    case PROTO_VMM_HELLO: return "VMM_HELLO";
    case PROTO_VMM_LIST_EXECS: return "VMM_LIST_EXECS";
    case PROTO_VMM_EXECS: return "VMM_EXECS";
    case PROTO_VMM_SIGNAL_EXEC: return "VMM_SIGNAL_EXEC";
    case PROTO_VMM_EXEC_DETACHED: return "VMM_EXEC_DETACHED";
    case PROTO_FILE_PUT: return "FILE_PUT";
    case PROTO_FILE_GET: return "FILE_GET";
    case PROTO_STATS: return "STATS";
    case PROTO_STATS_REPLY: return "STATS_REPLY";
    case PROTO_FILE_OP: return "FILE_OP";
    case PROTO_FILE_ENTRIES: return "FILE_ENTRIES";
    case PROTO_VMM_ATTACH: return "VMM_ATTACH";
    case PROTO_VMM_ATTACHED: return "VMM_ATTACHED";
    case PROTO_VMM_SNAPSHOT: return "VMM_SNAPSHOT";
    case PROTO_FREEZE: return "FREEZE";
    case PROTO_FROZEN: return "FROZEN";
    case PROTO_RESTORED: return "RESTORED";
    case PROTO_BOX_TRUST: return "BOX_TRUST";
    default: return NULL;
    }
}

int proto_type_known(unsigned type) { return proto_type_name(type) != NULL; }

int proto_type_is_session(unsigned type)
{
    return type == PROTO_HELLO || type == PROTO_CONFIG || type == PROTO_READY || type == PROTO_SHUTDOWN ||
           type == PROTO_VMM_HELLO || type == PROTO_VMM_LIST_EXECS || type == PROTO_VMM_EXECS ||
           type == PROTO_VMM_SIGNAL_EXEC || type == PROTO_VMM_EXEC_DETACHED || type == PROTO_VMM_SNAPSHOT ||
           type == PROTO_FREEZE || type == PROTO_FROZEN || type == PROTO_RESTORED || type == PROTO_BOX_TRUST;
}

int proto_type_is_data(unsigned type)
{
    return type == PROTO_STDIN || type == PROTO_STDOUT || type == PROTO_STDERR || type == PROTO_PING ||
           type == PROTO_PONG;
}

void proto_header_encode(uint8_t *out, uint32_t len, uint32_t stream, uint16_t type)
{
    put_le32(out, len);
    put_le32(out + 4, stream);
    put_le16(out + 8, type);
    out[10] = PROTO_VERSION;
    out[11] = 0;
}

int proto_header_decode(const uint8_t *buf, size_t len, struct proto_header *h)
{
    if (len < PROTO_HEADER_SIZE)
        return PROTO_NEED_MORE;
    h->len = get_le32(buf);
    h->stream = get_le32(buf + 4);
    h->type = get_le16(buf + 8);
    h->version = buf[10];
    h->flags = buf[11];
    if (h->version != PROTO_VERSION)
        return PROTO_E_VERSION;
    if (h->len > PROTO_MAX_PAYLOAD)
        return PROTO_E_OVERSIZE;
    if (h->flags != 0)
        return PROTO_E_FLAGS;
    if (!proto_type_known(h->type))
        return PROTO_E_TYPE;
    if (proto_type_is_session(h->type) && h->stream != PROTO_STREAM_SESSION)
        return PROTO_E_STREAM;
    if (h->stream == PROTO_STREAM_SESSION && !proto_type_is_session(h->type) && h->type != PROTO_PING &&
        h->type != PROTO_PONG && h->type != PROTO_ERROR)
        return PROTO_E_STREAM;
    return PROTO_OK;
}

int proto_frame_parse(const uint8_t *buf, size_t len, struct proto_header *h, const uint8_t **payload,
                      size_t *frame_len)
{
    int rc = proto_header_decode(buf, len, h);
    if (rc != PROTO_OK)
        return rc;
    if (len - PROTO_HEADER_SIZE < h->len)
        return PROTO_NEED_MORE;
    *payload = buf + PROTO_HEADER_SIZE;
    *frame_len = PROTO_HEADER_SIZE + (size_t)h->len;
    return PROTO_OK;
}

/* ---- writer ---- */

void proto_writer_begin(struct proto_writer *w, uint32_t stream, uint16_t type)
{
    w->len = PROTO_HEADER_SIZE;
    w->overflow = 0;
    proto_header_encode(w->buf, 0, stream, type);
}

static uint8_t *writer_reserve(struct proto_writer *w, size_t n)
{
    if (w->overflow || n > sizeof(w->buf) - w->len) {
        w->overflow = 1;
        return NULL;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

static void put_field(struct proto_writer *w, uint16_t tag, const void *value, size_t n)
{
    if (n > PROTO_MAX_PAYLOAD) {
        w->overflow = 1;
        return;
    }
    uint8_t *p = writer_reserve(w, 6 + n);
    if (!p)
        return;
    put_le16(p, tag);
    put_le32(p + 2, (uint32_t)n);
    if (n)
        memcpy(p + 6, value, n);
}

void proto_put_u32(struct proto_writer *w, uint16_t tag, uint32_t v)
{
    uint8_t b[4];
    put_le32(b, v);
    put_field(w, tag, b, 4);
}

void proto_put_u64(struct proto_writer *w, uint16_t tag, uint64_t v)
{
    uint8_t b[8];
    put_le32(b, (uint32_t)v);
    put_le32(b + 4, (uint32_t)(v >> 32));
    put_field(w, tag, b, 8);
}

void proto_put_i32(struct proto_writer *w, uint16_t tag, int32_t v) { proto_put_u32(w, tag, (uint32_t)v); }

void proto_put_str(struct proto_writer *w, uint16_t tag, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= PROTO_MAX_STRING) {
        w->overflow = 1;
        return;
    }
    put_field(w, tag, s, n);
}

void proto_put_raw(struct proto_writer *w, const void *data, size_t n)
{
    uint8_t *p = writer_reserve(w, n);
    if (p && n)
        memcpy(p, data, n);
}

size_t proto_writer_finish(struct proto_writer *w)
{
    if (w->overflow || w->len - PROTO_HEADER_SIZE > PROTO_MAX_PAYLOAD)
        return 0;
    put_le32(w->buf, (uint32_t)(w->len - PROTO_HEADER_SIZE));
    return w->len;
}

/* ---- reader ---- */

void proto_reader_init(struct proto_reader *r, const uint8_t *payload, size_t len)
{
    r->p = payload;
    r->left = len;
}

int proto_next_field(struct proto_reader *r, struct proto_field *f)
{
    if (r->left == 0)
        return PROTO_NEED_MORE;
    if (r->left < 6)
        return PROTO_E_TRUNCATED;
    f->tag = get_le16(r->p);
    f->len = get_le32(r->p + 2);
    if (f->len > r->left - 6)
        return PROTO_E_TRUNCATED;
    f->value = r->p + 6;
    r->p += 6 + (size_t)f->len;
    r->left -= 6 + (size_t)f->len;
    return PROTO_OK;
}

int proto_field_u32(const struct proto_field *f, uint32_t *v)
{
    if (f->len != 4)
        return PROTO_E_FIELD;
    *v = get_le32(f->value);
    return PROTO_OK;
}

int proto_field_u64(const struct proto_field *f, uint64_t *v)
{
    if (f->len != 8)
        return PROTO_E_FIELD;
    *v = get_le64(f->value);
    return PROTO_OK;
}

int proto_field_i32(const struct proto_field *f, int32_t *v)
{
    uint32_t u;
    int rc = proto_field_u32(f, &u);
    if (rc == PROTO_OK)
        *v = (int32_t)u;
    return rc;
}

int proto_field_str(const struct proto_field *f, char *out, size_t cap)
{
    if (cap == 0 || f->len >= cap || f->len >= PROTO_MAX_STRING)
        return PROTO_E_FIELD;
    if (memchr(f->value, 0, f->len))
        return PROTO_E_FIELD;
    memcpy(out, f->value, f->len);
    out[f->len] = 0;
    return PROTO_OK;
}

/* ---- typed messages ----
 * Each message's fields are listed once, in a table (tag, kind, place in the struct):
 * its encoder writes them in table order and its decoder walks the payload once. The
 * walk records scalar tags in `seen`, so a duplicate (which a careless or hostile peer
 * could use to smuggle a second value) is an error; unknown tags are skipped so newer
 * peers can add fields. */

enum field_kind { FIELD_U32, FIELD_U64, FIELD_I32, FIELD_STR };

struct field {
    uint16_t tag;
    uint8_t kind;     /* enum field_kind */
    uint8_t required; /* the decoder refuses a message without it */
    uint16_t size;    /* of a FIELD_STR buffer */
    uint16_t offset;  /* in the message struct */
};

#define FIELD(type, member, tag_, kind_, required_)                                                                    \
    {                                                                                                                  \
        .tag = (tag_), .kind = (kind_), .required = (required_), .size = sizeof(((type *)0)->member),                  \
        .offset = offsetof(type, member)                                                                               \
    }
_Static_assert(sizeof(struct proto_exec) <= UINT16_MAX, "the largest message's offsets fit in a struct field");
#define FIELD_COUNT(table) (sizeof(table) / sizeof((table)[0]))

#define SEEN(tag) (1ull << (tag))

static int mark_seen(uint64_t *seen, uint16_t tag)
{
    if (tag > PT_TAG_MAX)
        return PROTO_OK; /* unknown tags are skipped, not tracked */
    if (*seen & SEEN(tag))
        return PROTO_E_FIELD;
    *seen |= SEEN(tag);
    return PROTO_OK;
}

static int decode_field(const struct field *d, const struct proto_field *f, void *msg)
{
    uint8_t *at = (uint8_t *)msg + d->offset;
    switch (d->kind) {
    case FIELD_U32: return proto_field_u32(f, (uint32_t *)at);
    case FIELD_U64: return proto_field_u64(f, (uint64_t *)at);
    case FIELD_I32: return proto_field_i32(f, (int32_t *)at);
    default: return proto_field_str(f, (char *)at, d->size);
    }
}

static void encode_field(struct proto_writer *w, const struct field *d, const void *msg)
{
    const uint8_t *at = (const uint8_t *)msg + d->offset;
    switch (d->kind) {
    case FIELD_U32: proto_put_u32(w, d->tag, *(const uint32_t *)at); break;
    case FIELD_U64: proto_put_u64(w, d->tag, *(const uint64_t *)at); break;
    case FIELD_I32: proto_put_i32(w, d->tag, *(const int32_t *)at); break;
    default: proto_put_str(w, d->tag, (const char *)at); break;
    }
}

/* A message's fields its table does not describe: repeated tags (ARGV, ENV, the
 * entries of VMM_EXECS). Returns NOT_REPEATED for a tag it leaves to the table. */
#define NOT_REPEATED 1
typedef int (*repeated_fn)(void *msg, const struct proto_field *f);

/* Decodes a payload into msg (which the caller has set to its defaults) by the table. */
static int decode_fields(const uint8_t *p, size_t n, const struct field *table, size_t count, void *msg,
                         repeated_fn repeated)
{
    struct proto_reader rd;
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    proto_reader_init(&rd, p, n);
    while ((rc = proto_next_field(&rd, &f)) == PROTO_OK) {
        int e = repeated ? repeated(msg, &f) : NOT_REPEATED;
        if (e == NOT_REPEATED && (e = mark_seen(&seen, f.tag)) == PROTO_OK) {
            for (size_t i = 0; i < count; i++)
                if (table[i].tag == f.tag) {
                    e = decode_field(&table[i], &f, msg);
                    break;
                }
        }
        if (e != PROTO_OK)
            return e;
    }
    if (rc != PROTO_NEED_MORE) /* the clean end of the payload */
        return rc;
    for (size_t i = 0; i < count; i++)
        if (table[i].required && !(seen & SEEN(table[i].tag)))
            return PROTO_E_FIELD;
    return PROTO_OK;
}

/* Builds a whole frame of the fields of msg, in table order. */
static size_t encode_fields(struct proto_writer *w, uint32_t stream, uint16_t type, const struct field *table,
                            size_t count, const void *msg)
{
    proto_writer_begin(w, stream, type);
    for (size_t i = 0; i < count; i++)
        encode_field(w, &table[i], msg);
    return proto_writer_finish(w);
}

/* Decodes into a zeroed *msg. */
#define DECODE(p, n, table, msg)                                                                                       \
    (memset((msg), 0, sizeof(*(msg))), decode_fields((p), (n), (table), FIELD_COUNT(table), (msg), NULL))
#define ENCODE(w, stream, type, table, msg) encode_fields((w), (stream), (type), (table), FIELD_COUNT(table), (msg))

/* HELLO */
static const struct field hello_fields[] = {
    FIELD(struct proto_hello, version_min, PT_VERSION_MIN, FIELD_U32, 1),
    FIELD(struct proto_hello, version_max, PT_VERSION_MAX, FIELD_U32, 1),
    FIELD(struct proto_hello, agent_version, PT_AGENT_VERSION, FIELD_STR, 0),
    FIELD(struct proto_hello, kernel, PT_KERNEL, FIELD_STR, 0),
    FIELD(struct proto_hello, boot_ns, PT_BOOT_NS, FIELD_U64, 0),
};

int proto_decode_hello(const uint8_t *p, size_t n, struct proto_hello *m)
{
    int rc = DECODE(p, n, hello_fields, m);
    if (rc == PROTO_OK && m->version_min > m->version_max)
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_hello(struct proto_writer *w, const struct proto_hello *m)
{
    return ENCODE(w, PROTO_STREAM_SESSION, PROTO_HELLO, hello_fields, m);
}

/* CONFIG */
static const struct field config_fields[] = {
    FIELD(struct proto_config, version, PT_VERSION, FIELD_U32, 1),
    FIELD(struct proto_config, hostname, PT_HOSTNAME, FIELD_STR, 0),
    FIELD(struct proto_config, realtime_ns, PT_REALTIME_NS, FIELD_U64, 0),
};

int proto_decode_config(const uint8_t *p, size_t n, struct proto_config *m) { return DECODE(p, n, config_fields, m); }

size_t proto_encode_config(struct proto_writer *w, const struct proto_config *m)
{
    return ENCODE(w, PROTO_STREAM_SESSION, PROTO_CONFIG, config_fields, m);
}

/* READY */
static const struct field ready_fields[] = {
    FIELD(struct proto_ready, boot_ns, PT_BOOT_NS, FIELD_U64, 0),
    FIELD(struct proto_ready, init_ns, PT_INIT_NS, FIELD_U64, 0),
};

int proto_decode_ready(const uint8_t *p, size_t n, struct proto_ready *m) { return DECODE(p, n, ready_fields, m); }

size_t proto_encode_ready(struct proto_writer *w, const struct proto_ready *m)
{
    return ENCODE(w, PROTO_STREAM_SESSION, PROTO_READY, ready_fields, m);
}

/* EXEC: ARGV and ENV repeat, in order; the other fields are scalars. */
static const struct field exec_fields[] = {
    FIELD(struct proto_exec, cwd, PT_CWD, FIELD_STR, 0),
    FIELD(struct proto_exec, user, PT_USER, FIELD_STR, 0),
    FIELD(struct proto_exec, tty, PT_TTY, FIELD_U32, 0),
    FIELD(struct proto_exec, rows, PT_ROWS, FIELD_U32, 0),
    FIELD(struct proto_exec, cols, PT_COLS, FIELD_U32, 0),
    FIELD(struct proto_exec, timeout_ms, PT_TIMEOUT_MS, FIELD_U64, 0),
    FIELD(struct proto_exec, window, PT_WINDOW, FIELD_U32, 0),
    FIELD(struct proto_exec, realtime_ns, PT_REALTIME_NS, FIELD_U64, 0),
};

static int push_string(char ***list, size_t *count, const struct proto_field *f)
{
    if (*count >= PROTO_MAX_LIST || f->len >= PROTO_MAX_STRING || memchr(f->value, 0, f->len))
        return PROTO_E_FIELD;
    char **grown = realloc(*list, (*count + 2) * sizeof(char *));
    if (!grown)
        return PROTO_E_NOMEM;
    *list = grown;
    char *s = malloc((size_t)f->len + 1);
    if (!s)
        return PROTO_E_NOMEM;
    memcpy(s, f->value, f->len);
    s[f->len] = 0;
    grown[(*count)++] = s;
    grown[*count] = NULL;
    return PROTO_OK;
}

static int exec_repeated(void *msg, const struct proto_field *f)
{
    struct proto_exec *m = msg;
    if (f->tag == PT_ARGV)
        return push_string(&m->argv, &m->argc, f);
    if (f->tag != PT_ENV)
        return NOT_REPEATED;
    int e = push_string(&m->env, &m->envc, f);
    if (e == PROTO_OK && !strchr(m->env[m->envc - 1], '='))
        e = PROTO_E_FIELD;
    return e;
}

void proto_exec_free(struct proto_exec *m)
{
    for (size_t i = 0; m->argv && i < m->argc; i++)
        free(m->argv[i]);
    for (size_t i = 0; m->env && i < m->envc; i++)
        free(m->env[i]);
    free(m->argv);
    free(m->env);
    m->argv = m->env = NULL;
    m->argc = m->envc = 0;
}

int proto_decode_exec(const uint8_t *p, size_t n, struct proto_exec *m)
{
    memset(m, 0, sizeof(*m));
    m->window = PROTO_DEFAULT_WINDOW;
    int rc = decode_fields(p, n, exec_fields, FIELD_COUNT(exec_fields), m, exec_repeated);
    if (rc == PROTO_OK && (m->argc == 0 || m->argv[0][0] == 0 || m->window == 0 || m->tty > 1))
        rc = PROTO_E_FIELD;
    if (rc == PROTO_OK && !m->env) {
        m->env = calloc(1, sizeof(char *));
        if (!m->env)
            rc = PROTO_E_NOMEM;
    }
    if (rc != PROTO_OK)
        proto_exec_free(m);
    return rc;
}

/* Fields at their defaults are left out (rows and cols mean something with a tty only). */
static size_t encode_exec_as(struct proto_writer *w, uint32_t stream, uint16_t type, const struct proto_exec *m)
{
    proto_writer_begin(w, stream, type);
    for (size_t i = 0; i < m->argc; i++)
        proto_put_str(w, PT_ARGV, m->argv[i]);
    for (size_t i = 0; i < m->envc; i++)
        proto_put_str(w, PT_ENV, m->env[i]);
    if (m->cwd[0])
        proto_put_str(w, PT_CWD, m->cwd);
    if (m->user[0])
        proto_put_str(w, PT_USER, m->user);
    proto_put_u32(w, PT_TTY, m->tty);
    if (m->tty) {
        proto_put_u32(w, PT_ROWS, m->rows);
        proto_put_u32(w, PT_COLS, m->cols);
    }
    proto_put_u64(w, PT_TIMEOUT_MS, m->timeout_ms);
    proto_put_u32(w, PT_WINDOW, m->window ? m->window : PROTO_DEFAULT_WINDOW);
    if (m->realtime_ns)
        proto_put_u64(w, PT_REALTIME_NS, m->realtime_ns);
    return proto_writer_finish(w);
}

size_t proto_encode_exec(struct proto_writer *w, uint32_t stream, const struct proto_exec *m)
{
    return encode_exec_as(w, stream, PROTO_EXEC, m);
}

size_t proto_encode_exec_detached(struct proto_writer *w, const struct proto_exec *m)
{
    return encode_exec_as(w, PROTO_STREAM_SESSION, PROTO_VMM_EXEC_DETACHED, m);
}

/* STARTED */
static const struct field started_fields[] = {
    FIELD(struct proto_started, pid, PT_PID, FIELD_U32, 1),
    FIELD(struct proto_started, window, PT_WINDOW, FIELD_U32, 1),
};

int proto_decode_started(const uint8_t *p, size_t n, struct proto_started *m)
{
    return DECODE(p, n, started_fields, m);
}

size_t proto_encode_started(struct proto_writer *w, uint32_t stream, const struct proto_started *m)
{
    return ENCODE(w, stream, PROTO_STARTED, started_fields, m);
}

/* EXIT */
static const struct field exit_fields[] = {
    FIELD(struct proto_exit, code, PT_CODE, FIELD_I32, 1),
    FIELD(struct proto_exit, signal, PT_SIGNAL, FIELD_U32, 0),
    FIELD(struct proto_exit, timed_out, PT_TIMED_OUT, FIELD_U32, 0),
};

int proto_decode_exit(const uint8_t *p, size_t n, struct proto_exit *m)
{
    int rc = DECODE(p, n, exit_fields, m);
    if (rc == PROTO_OK && (m->signal > 64 || m->code < 0 || m->code > 255))
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_exit(struct proto_writer *w, uint32_t stream, const struct proto_exit *m)
{
    return ENCODE(w, stream, PROTO_EXIT, exit_fields, m);
}

/* ERROR */
static const struct field error_fields[] = {
    FIELD(struct proto_error_msg, code, PT_CODE, FIELD_U32, 0),
    FIELD(struct proto_error_msg, message, PT_MESSAGE, FIELD_STR, 1),
};

int proto_decode_error(const uint8_t *p, size_t n, struct proto_error_msg *m) { return DECODE(p, n, error_fields, m); }

size_t proto_encode_error(struct proto_writer *w, uint32_t stream, uint32_t code, const char *message)
{
    struct proto_error_msg m = {.code = code};
    /* Messages are clipped rather than refused: an error must always be sendable. */
    snprintf(m.message, sizeof(m.message), "%s", message ? message : "");
    return ENCODE(w, stream, PROTO_ERROR, error_fields, &m);
}

/* One u32 field (SIGNAL, CREDIT...), required; *v is left as it was when it is missing. */
int proto_decode_u32_field(const uint8_t *p, size_t n, uint16_t tag, uint32_t *v)
{
    const struct field only = {tag, FIELD_U32, 1, sizeof(*v), 0};
    return decode_fields(p, n, &only, 1, v, NULL);
}

/* SHUTDOWN: MODE and TIMEOUT_MS, both optional. */
struct shutdown_msg {
    uint32_t mode, timeout_ms;
};

static const struct field shutdown_fields[] = {
    FIELD(struct shutdown_msg, mode, PT_MODE, FIELD_U32, 0),
    FIELD(struct shutdown_msg, timeout_ms, PT_TIMEOUT_MS, FIELD_U32, 0),
};

int proto_decode_shutdown(const uint8_t *p, size_t n, uint32_t *mode, uint32_t *timeout_ms)
{
    struct shutdown_msg v;
    int rc = DECODE(p, n, shutdown_fields, &v);
    *mode = v.mode;
    *timeout_ms = v.timeout_ms;
    if (rc == PROTO_OK && *mode > 1)
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_shutdown(struct proto_writer *w, uint32_t mode, uint32_t timeout_ms)
{
    struct shutdown_msg v = {mode, timeout_ms};
    return ENCODE(w, PROTO_STREAM_SESSION, PROTO_SHUTDOWN, shutdown_fields, &v);
}

/* RESIZE and VMM_SIGNAL_EXEC: two required u32 fields, each looked for in a pass of its own. */
int proto_decode_resize(const uint8_t *p, size_t n, uint32_t *rows, uint32_t *cols)
{
    int rc = proto_decode_u32_field(p, n, PT_ROWS, rows);
    if (rc == PROTO_OK)
        rc = proto_decode_u32_field(p, n, PT_COLS, cols);
    if (rc == PROTO_OK && (*rows > 65535 || *cols > 65535))
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_resize(struct proto_writer *w, uint32_t stream, uint32_t rows, uint32_t cols)
{
    proto_writer_begin(w, stream, PROTO_RESIZE);
    proto_put_u32(w, PT_ROWS, rows);
    proto_put_u32(w, PT_COLS, cols);
    return proto_writer_finish(w);
}

int proto_decode_signal_exec(const uint8_t *p, size_t n, uint32_t *pid, uint32_t *signal)
{
    int rc = proto_decode_u32_field(p, n, PT_PID, pid);
    if (rc == PROTO_OK)
        rc = proto_decode_u32_field(p, n, PT_SIGNAL, signal);
    if (rc == PROTO_OK && (*signal == 0 || *signal > 64))
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_signal_exec(struct proto_writer *w, uint32_t pid, uint32_t signal)
{
    proto_writer_begin(w, PROTO_STREAM_SESSION, PROTO_VMM_SIGNAL_EXEC);
    proto_put_u32(w, PT_PID, pid);
    proto_put_u32(w, PT_SIGNAL, signal);
    return proto_writer_finish(w);
}

static const struct field snapshot_fields[] = {
    FIELD(struct proto_snapshot, flags, PT_FLAGS, FIELD_U32, 0),
    FIELD(struct proto_snapshot, timeout_ms, PT_TIMEOUT_MS, FIELD_U32, 0),
    FIELD(struct proto_snapshot, code, PT_CODE, FIELD_U32, 0),
    FIELD(struct proto_snapshot, message, PT_MESSAGE, FIELD_STR, 0),
    FIELD(struct proto_snapshot, path, PT_PATH, FIELD_STR, 0),
};

int proto_decode_vmm_snapshot(const uint8_t *p, size_t n, struct proto_snapshot *m)
{
    int rc = DECODE(p, n, snapshot_fields, m);
    if (rc == PROTO_OK && ((m->flags & ~PROTO_SNAPSHOT_MEMORY) || m->timeout_ms > PROTO_FREEZE_MAX_MS || m->code > 1))
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_vmm_snapshot(struct proto_writer *w, const struct proto_snapshot *m)
{
    return ENCODE(w, PROTO_STREAM_SESSION, PROTO_VMM_SNAPSHOT, snapshot_fields, m);
}

static const struct field frozen_fields[] = {
    FIELD(struct proto_frozen, mode, PT_MODE, FIELD_U32, 1),
    FIELD(struct proto_frozen, code, PT_CODE, FIELD_U32, 0),
    FIELD(struct proto_frozen, message, PT_MESSAGE, FIELD_STR, 0),
};

int proto_decode_frozen(const uint8_t *p, size_t n, struct proto_frozen *m)
{
    int rc = DECODE(p, n, frozen_fields, m);
    if (rc == PROTO_OK && m->mode > 1)
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_frozen(struct proto_writer *w, const struct proto_frozen *m)
{
    return ENCODE(w, PROTO_STREAM_SESSION, PROTO_FROZEN, frozen_fields, m);
}

static const struct field freeze_fields[] = {
    FIELD(struct shutdown_msg, timeout_ms, PT_TIMEOUT_MS, FIELD_U32, 1),
    FIELD(struct shutdown_msg, mode, PT_FLAGS, FIELD_U32, 0),
};

int proto_decode_freeze(const uint8_t *p, size_t n, uint32_t *timeout_ms, uint32_t *flags)
{
    struct shutdown_msg v;
    int rc = DECODE(p, n, freeze_fields, &v);
    *timeout_ms = v.timeout_ms;
    *flags = v.mode;
    if (rc == PROTO_OK && (*timeout_ms > PROTO_FREEZE_MAX_MS || (*flags & ~PROTO_FREEZE_MUTE)))
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_freeze(struct proto_writer *w, uint32_t timeout_ms, uint32_t flags)
{
    struct shutdown_msg v = {.timeout_ms = timeout_ms, .mode = flags};
    return ENCODE(w, PROTO_STREAM_SESSION, PROTO_FREEZE, freeze_fields, &v);
}

/* RESTORED: REALTIME_NS once (required), SEED exactly four times (a repeated tag, above
 * PT_TAG_MAX, so it is counted here rather than by the scalar decoder). */
static const struct field restored_fields[] = {
    FIELD(struct proto_restored, realtime_ns, PT_REALTIME_NS, FIELD_U64, 1),
    FIELD(struct proto_restored, hostname, PT_HOSTNAME, FIELD_STR, 0),
};

int proto_decode_restored(const uint8_t *p, size_t n, struct proto_restored *m)
{
    int rc = DECODE(p, n, restored_fields, m);
    if (rc != PROTO_OK)
        return rc;
    struct proto_reader r;
    struct proto_field f;
    size_t seeds = 0;
    proto_reader_init(&r, p, n);
    while ((rc = proto_next_field(&r, &f)) == PROTO_OK) {
        if (f.tag != PT_SEED)
            continue;
        if (seeds == 4 || proto_field_u64(&f, &m->seed[seeds]) != PROTO_OK)
            return PROTO_E_FIELD;
        seeds++;
    }
    if (rc != PROTO_NEED_MORE)
        return rc;
    return seeds == 4 ? PROTO_OK : PROTO_E_FIELD;
}

size_t proto_encode_restored(struct proto_writer *w, const struct proto_restored *m)
{
    proto_writer_begin(w, PROTO_STREAM_SESSION, PROTO_RESTORED);
    proto_put_u64(w, PT_REALTIME_NS, m->realtime_ns);
    if (m->hostname[0])
        proto_put_str(w, PT_HOSTNAME, m->hostname);
    for (int i = 0; i < 4; i++)
        proto_put_u64(w, PT_SEED, m->seed[i]);
    return proto_writer_finish(w);
}

/* VMM_ATTACH: every field optional; unknown flags and sizes above 65535 are refused. */
static const struct field attach_fields[] = {
    FIELD(struct proto_attach, flags, PT_FLAGS, FIELD_U32, 0),
    FIELD(struct proto_attach, rows, PT_ROWS, FIELD_U32, 0),
    FIELD(struct proto_attach, cols, PT_COLS, FIELD_U32, 0),
};

int proto_decode_attach(const uint8_t *p, size_t n, struct proto_attach *m)
{
    int rc = DECODE(p, n, attach_fields, m);
    if (rc == PROTO_OK && ((m->flags & ~PROTO_ATTACH_FLAGS_ALL) || m->rows > 65535 || m->cols > 65535))
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_attach(struct proto_writer *w, uint32_t stream, const struct proto_attach *m)
{
    return ENCODE(w, stream, PROTO_VMM_ATTACH, attach_fields, m);
}

static const struct field attached_fields[] = {
    FIELD(struct proto_attached, pid, PT_PID, FIELD_U32, 0),
    FIELD(struct proto_attached, tty, PT_TTY, FIELD_U32, 0),
    FIELD(struct proto_attached, flags, PT_FLAGS, FIELD_U32, 0),
    FIELD(struct proto_attached, dropped, PT_BYTES, FIELD_U64, 0),
};

int proto_decode_attached(const uint8_t *p, size_t n, struct proto_attached *m)
{
    int rc = DECODE(p, n, attached_fields, m);
    if (rc == PROTO_OK && ((m->flags & ~PROTO_ATTACH_FLAGS_ALL) || m->tty > 1))
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_attached(struct proto_writer *w, uint32_t stream, const struct proto_attached *m)
{
    return ENCODE(w, stream, PROTO_VMM_ATTACHED, attached_fields, m);
}

size_t proto_encode_data(struct proto_writer *w, uint32_t stream, uint16_t type, const void *data, size_t n)
{
    proto_writer_begin(w, stream, type);
    proto_put_raw(w, data, n);
    return proto_writer_finish(w);
}

size_t proto_encode_signal(struct proto_writer *w, uint32_t stream, uint32_t signal)
{
    proto_writer_begin(w, stream, PROTO_SIGNAL);
    proto_put_u32(w, PT_SIGNAL, signal);
    return proto_writer_finish(w);
}

size_t proto_encode_credit(struct proto_writer *w, uint32_t stream, uint32_t bytes)
{
    proto_writer_begin(w, stream, PROTO_CREDIT);
    proto_put_u32(w, PT_BYTES, bytes);
    return proto_writer_finish(w);
}

/* VMM_HELLO */
static const struct field vmm_hello_fields[] = {
    FIELD(struct proto_vmm_hello, version, PT_VERSION, FIELD_U32, 1),
    FIELD(struct proto_vmm_hello, backend, PT_BACKEND, FIELD_STR, 0),
    FIELD(struct proto_vmm_hello, accel, PT_ACCEL, FIELD_STR, 0),
    FIELD(struct proto_vmm_hello, box_id, PT_BOX_ID, FIELD_STR, 0),
    FIELD(struct proto_vmm_hello, kernel, PT_KERNEL, FIELD_STR, 0),
    FIELD(struct proto_vmm_hello, boot_ns, PT_BOOT_NS, FIELD_U64, 0),
    FIELD(struct proto_vmm_hello, init_ns, PT_INIT_NS, FIELD_U64, 0),
    FIELD(struct proto_vmm_hello, ready_ms, PT_READY_MS, FIELD_U32, 0),
};

int proto_decode_vmm_hello(const uint8_t *p, size_t n, struct proto_vmm_hello *m)
{
    return DECODE(p, n, vmm_hello_fields, m);
}

size_t proto_encode_vmm_hello(struct proto_writer *w, const struct proto_vmm_hello *m)
{
    return ENCODE(w, PROTO_STREAM_SESSION, PROTO_VMM_HELLO, vmm_hello_fields, m);
}

/* FILE_PUT, FILE_GET */
static const struct field file_fields[] = {
    FIELD(struct proto_file, path, PT_PATH, FIELD_STR, 1),
    FIELD(struct proto_file, window, PT_WINDOW, FIELD_U32, 0),
    FIELD(struct proto_file, flags, PT_FLAGS, FIELD_U32, 0),
};

int proto_decode_file(const uint8_t *p, size_t n, struct proto_file *m)
{
    memset(m, 0, sizeof(*m));
    m->window = PROTO_DEFAULT_WINDOW;
    int rc = decode_fields(p, n, file_fields, FIELD_COUNT(file_fields), m, NULL);
    if (rc == PROTO_OK && (m->path[0] == 0 || m->window == 0 || (m->flags & ~PROTO_FILE_FLAGS_ALL)))
        rc = PROTO_E_FIELD;
    return rc;
}

/* A zero window means the default; no flags, no field. */
size_t proto_encode_file(struct proto_writer *w, uint32_t stream, uint16_t type, const struct proto_file *m)
{
    proto_writer_begin(w, stream, type);
    proto_put_str(w, PT_PATH, m->path);
    proto_put_u32(w, PT_WINDOW, m->window ? m->window : PROTO_DEFAULT_WINDOW);
    if (m->flags)
        proto_put_u32(w, PT_FLAGS, m->flags);
    return proto_writer_finish(w);
}

/* STATS (the request: its fields, if any, are skipped) and STATS_REPLY */
int proto_decode_stats(const uint8_t *p, size_t n) { return decode_fields(p, n, NULL, 0, NULL, NULL); }

size_t proto_encode_stats(struct proto_writer *w, uint32_t stream)
{
    proto_writer_begin(w, stream, PROTO_STATS);
    return proto_writer_finish(w);
}

static const struct field stats_reply_fields[] = {
    FIELD(struct proto_stats, cpu_ns, PT_CPU_NS, FIELD_U64, 0),
    FIELD(struct proto_stats, cpus, PT_CPUS, FIELD_U32, 0),
    FIELD(struct proto_stats, mem_total, PT_MEM_TOTAL, FIELD_U64, 0),
    FIELD(struct proto_stats, mem_available, PT_MEM_AVAILABLE, FIELD_U64, 0),
    FIELD(struct proto_stats, mem_free, PT_MEM_FREE, FIELD_U64, 0),
    FIELD(struct proto_stats, disk_total, PT_DISK_TOTAL, FIELD_U64, 0),
    FIELD(struct proto_stats, disk_used, PT_DISK_USED, FIELD_U64, 0),
    FIELD(struct proto_stats, disk_available, PT_DISK_AVAILABLE, FIELD_U64, 0),
    FIELD(struct proto_stats, procs, PT_PROCS, FIELD_U32, 0),
    FIELD(struct proto_stats, uptime_ns, PT_UPTIME_NS, FIELD_U64, 1),
    FIELD(struct proto_stats, load1, PT_LOAD1, FIELD_U32, 0),
    FIELD(struct proto_stats, load5, PT_LOAD5, FIELD_U32, 0),
    FIELD(struct proto_stats, load15, PT_LOAD15, FIELD_U32, 0),
};

int proto_decode_stats_reply(const uint8_t *p, size_t n, struct proto_stats *m)
{
    int rc = DECODE(p, n, stats_reply_fields, m);
    /* Plausibility: what is used or free cannot exceed the total. */
    if (rc == PROTO_OK && (m->mem_available > m->mem_total || m->mem_free > m->mem_total ||
                           m->disk_used > m->disk_total || m->disk_available > m->disk_total))
        rc = PROTO_E_FIELD;
    return rc;
}

size_t proto_encode_stats_reply(struct proto_writer *w, uint32_t stream, const struct proto_stats *m)
{
    return ENCODE(w, stream, PROTO_STATS_REPLY, stats_reply_fields, m);
}

/* FILE_OP */
static const struct field file_op_fields[] = {
    FIELD(struct proto_file_op, op, PT_OP, FIELD_U32, 1),
    FIELD(struct proto_file_op, path, PT_PATH, FIELD_STR, 1),
    FIELD(struct proto_file_op, path2, PT_PATH2, FIELD_STR, 0),
    FIELD(struct proto_file_op, flags, PT_FLAGS, FIELD_U32, 0),
    FIELD(struct proto_file_op, mode, PT_MODE, FIELD_U32, 0),
    FIELD(struct proto_file_op, window, PT_WINDOW, FIELD_U32, 0),
};

int proto_decode_file_op(const uint8_t *p, size_t n, struct proto_file_op *m)
{
    memset(m, 0, sizeof(*m));
    m->window = PROTO_DEFAULT_WINDOW;
    int rc = decode_fields(p, n, file_op_fields, FIELD_COUNT(file_op_fields), m, NULL);
    if (rc != PROTO_OK)
        return rc;
    if (m->op < PROTO_FSOP_STAT || m->op > PROTO_FSOP_MOVE || m->path[0] != '/' || m->window == 0 ||
        (m->flags & ~PROTO_FSOP_FLAGS_ALL) || m->mode > 07777 || (m->op == PROTO_FSOP_MOVE) != (m->path2[0] != 0) ||
        (m->path2[0] && m->path2[0] != '/'))
        return PROTO_E_FIELD;
    return PROTO_OK;
}

size_t proto_encode_file_op(struct proto_writer *w, uint32_t stream, const struct proto_file_op *m)
{
    proto_writer_begin(w, stream, PROTO_FILE_OP);
    proto_put_u32(w, PT_OP, m->op);
    proto_put_str(w, PT_PATH, m->path);
    if (m->path2[0])
        proto_put_str(w, PT_PATH2, m->path2);
    if (m->flags)
        proto_put_u32(w, PT_FLAGS, m->flags);
    if (m->mode)
        proto_put_u32(w, PT_MODE, m->mode);
    proto_put_u32(w, PT_WINDOW, m->window ? m->window : PROTO_DEFAULT_WINDOW);
    return proto_writer_finish(w);
}

/* FILE_ENTRIES: each ENTRY's value is a TLV payload of the entry's fields (a table of
 * its own, so a repeated field inside one entry is an error as anywhere else). The
 * frame travels inside FILE_OP's STDOUT, on nominal stream 1. */
struct entry_wire {
    struct proto_file_entry e;
    uint64_t mtime_sec; /* the int64 as sent */
};
static const struct field entry_fields[] = {
    FIELD(struct entry_wire, e.name, PT_NAME, FIELD_STR, 0),
    FIELD(struct entry_wire, e.type, PT_FILE_TYPE, FIELD_U32, 1),
    FIELD(struct entry_wire, e.mode, PT_MODE, FIELD_U32, 0),
    FIELD(struct entry_wire, e.uid, PT_UID, FIELD_U32, 0),
    FIELD(struct entry_wire, e.gid, PT_GID, FIELD_U32, 0),
    FIELD(struct entry_wire, e.size, PT_SIZE, FIELD_U64, 0),
    FIELD(struct entry_wire, mtime_sec, PT_MTIME_SEC, FIELD_U64, 0),
    FIELD(struct entry_wire, e.mtime_nsec, PT_MTIME_NSEC, FIELD_U32, 0),
    FIELD(struct entry_wire, e.target, PT_PATH, FIELD_STR, 0),
};
static const struct field entries_fields[] = {
    {.tag = PT_FLAGS, .kind = FIELD_U32, .required = 0, .size = 4, .offset = 0},
};

void proto_entries_begin(struct proto_writer *w) { proto_writer_begin(w, 1, PROTO_FILE_ENTRIES); }

int proto_entries_add(struct proto_writer *w, const struct proto_file_entry *e)
{
    struct proto_writer *one = malloc(sizeof(*one)); /* the entry's own payload */
    if (!one)
        return 0;
    struct entry_wire ew = {.e = *e, .mtime_sec = (uint64_t)e->mtime_sec};
    proto_writer_begin(one, 0, 0);
    for (size_t i = 0; i < FIELD_COUNT(entry_fields); i++)
        if (entry_fields[i].kind != FIELD_STR || ((const char *)&ew + entry_fields[i].offset)[0])
            encode_field(one, &entry_fields[i], &ew);
    size_t n = one->len - PROTO_HEADER_SIZE;
    /* room for this entry and the FLAGS field that ends the frame */
    int fits = !one->overflow && w->len + 6 + n + 10 <= PROTO_MAX_FRAME;
    if (fits)
        put_field(w, PT_ENTRY, one->buf + PROTO_HEADER_SIZE, n);
    free(one);
    return fits;
}

size_t proto_entries_finish(struct proto_writer *w, uint32_t flags)
{
    proto_put_u32(w, PT_FLAGS, flags);
    return proto_writer_finish(w);
}

static int entry_check(const struct proto_file_entry *e)
{
    const char *nm = e->name;
    if (strchr(nm, '/') || !strcmp(nm, ".") || !strcmp(nm, ".."))
        return PROTO_E_FIELD;
    if (e->type < PROTO_FTYPE_REGULAR || e->type > PROTO_FTYPE_OTHER || e->mode > 07777 ||
        e->mtime_nsec >= 1000000000u || (e->target[0] && e->type != PROTO_FTYPE_SYMLINK))
        return PROTO_E_FIELD;
    return PROTO_OK;
}

struct entries_decoding {
    uint32_t flags; /* first: the table's FLAGS lands at offset 0 */
    int stopped;
    int (*each)(void *user, const struct proto_file_entry *e);
    void *user;
};

static int entries_repeated(void *msg, const struct proto_field *f)
{
    struct entries_decoding *d = msg;
    if (f->tag == PT_FLAGS)
        return NOT_REPEATED;
    if (f->tag != PT_ENTRY)
        return PROTO_OK; /* unknown: skipped */
    struct entry_wire ew;
    int rc = DECODE(f->value, f->len, entry_fields, &ew);
    if (rc != PROTO_OK)
        return rc;
    ew.e.mtime_sec = (int64_t)ew.mtime_sec;
    if ((rc = entry_check(&ew.e)) != PROTO_OK)
        return rc;
    if (d->stopped)
        return PROTO_OK;
    int r = d->each(d->user, &ew.e);
    if (r)
        d->stopped = r;
    return PROTO_OK;
}

int proto_decode_file_entries(const uint8_t *p, size_t n, int (*each)(void *user, const struct proto_file_entry *e),
                              void *user, uint32_t *flags)
{
    struct entries_decoding d = {.each = each, .user = user};
    int rc = decode_fields(p, n, entries_fields, FIELD_COUNT(entries_fields), &d, entries_repeated);
    if (rc != PROTO_OK)
        return rc;
    if (d.flags & ~PROTO_FSOP_END)
        return PROTO_E_FIELD;
    *flags = d.flags;
    return d.stopped;
}

/* VMM_EXECS: pairs arrive in order, a PID opens an entry, the CMD after it names it.
 * The tags are above PT_TAG_MAX, so the pairs are all "repeated" fields. */
struct execs_decoding {
    struct proto_exec_entry *e;
    size_t cap, count;
    int have_cmd;
};

static int execs_repeated(void *msg, const struct proto_field *f)
{
    struct execs_decoding *d = msg;
    int err = PROTO_OK;
    if (f->tag == PT_EXEC_PID) {
        uint32_t pid;
        if (!d->have_cmd || (err = proto_field_u32(f, &pid)) != PROTO_OK)
            return d->have_cmd ? err : PROTO_E_FIELD;
        if (d->count < d->cap) {
            d->e[d->count].pid = pid;
            d->e[d->count].cmd[0] = 0;
        }
        d->count++;
        d->have_cmd = 0;
    } else if (f->tag == PT_EXEC_CMD) {
        if (d->have_cmd)
            return PROTO_E_FIELD;
        char cmd[sizeof(d->e->cmd)];
        if ((err = proto_field_str(f, cmd, sizeof(cmd))) != PROTO_OK)
            return err;
        if (d->count <= d->cap)
            memcpy(d->e[d->count - 1].cmd, cmd, sizeof(cmd));
        d->have_cmd = 1;
    }
    return PROTO_OK; /* other tags: skipped, and duplicates of them are no error here */
}

int proto_decode_vmm_execs(const uint8_t *p, size_t len, struct proto_exec_entry *e, size_t cap, size_t *n)
{
    struct execs_decoding d = {.e = e, .cap = cap, .have_cmd = 1};
    int rc = decode_fields(p, len, NULL, 0, &d, execs_repeated);
    if (rc != PROTO_OK)
        return rc;
    if (!d.have_cmd)
        return PROTO_E_FIELD;
    *n = d.count;
    return PROTO_OK;
}

size_t proto_encode_vmm_execs(struct proto_writer *w, const struct proto_exec_entry *e, size_t n)
{
    proto_writer_begin(w, PROTO_STREAM_SESSION, PROTO_VMM_EXECS);
    for (size_t i = 0; i < n; i++) {
        proto_put_u32(w, PT_EXEC_PID, e[i].pid);
        proto_put_str(w, PT_EXEC_CMD, e[i].cmd);
    }
    return proto_writer_finish(w);
}
