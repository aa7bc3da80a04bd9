/* Frame and TLV codec of the cocoon wire protocol. Every length read from a peer is
 * checked against the bytes actually present and against the protocol bounds before
 * it is used; decoders never read past the payload they were given. */
#include "proto/proto.h"

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
    case PROTO_FILE_PUT: return "FILE_PUT";
    case PROTO_FILE_GET: return "FILE_GET";
    case PROTO_STATS: return "STATS";
    case PROTO_STATS_REPLY: return "STATS_REPLY";
    default: return NULL;
    }
}

int proto_type_known(unsigned type) { return proto_type_name(type) != NULL; }

int proto_type_is_session(unsigned type)
{
    return type == PROTO_HELLO || type == PROTO_CONFIG || type == PROTO_READY || type == PROTO_SHUTDOWN ||
           type == PROTO_VMM_HELLO || type == PROTO_VMM_LIST_EXECS || type == PROTO_VMM_EXECS ||
           type == PROTO_VMM_SIGNAL_EXEC;
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
 * A decoder walks the fields once. `seen` records scalar tags so a duplicate (which a
 * careless or hostile peer could use to smuggle a second value) is an error. */

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

static int need(uint64_t seen, uint64_t required) { return (seen & required) == required ? PROTO_OK : PROTO_E_FIELD; }

#define FOR_EACH_FIELD(p, n, f, rc)                                                                                    \
    struct proto_reader rd_;                                                                                           \
    proto_reader_init(&rd_, (p), (n));                                                                                 \
    while (((rc) = proto_next_field(&rd_, &(f))) == PROTO_OK)

/* Ends a FOR_EACH_FIELD loop: a clean end reads as PROTO_NEED_MORE. */
static int loop_end(int rc) { return rc == PROTO_NEED_MORE ? PROTO_OK : rc; }

int proto_decode_hello(const uint8_t *p, size_t n, struct proto_hello *m)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    memset(m, 0, sizeof(*m));
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK) {
            switch (f.tag) {
            case PT_VERSION_MIN: e = proto_field_u32(&f, &m->version_min); break;
            case PT_VERSION_MAX: e = proto_field_u32(&f, &m->version_max); break;
            case PT_AGENT_VERSION: e = proto_field_str(&f, m->agent_version, sizeof(m->agent_version)); break;
            case PT_KERNEL: e = proto_field_str(&f, m->kernel, sizeof(m->kernel)); break;
            case PT_BOOT_NS: e = proto_field_u64(&f, &m->boot_ns); break;
            default: break;
            }
        }
        if (e != PROTO_OK)
            return e;
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    if ((rc = need(seen, SEEN(PT_VERSION_MIN) | SEEN(PT_VERSION_MAX))) != PROTO_OK)
        return rc;
    return m->version_min <= m->version_max ? PROTO_OK : PROTO_E_FIELD;
}

int proto_decode_config(const uint8_t *p, size_t n, struct proto_config *m)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    memset(m, 0, sizeof(*m));
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK) {
            switch (f.tag) {
            case PT_VERSION: e = proto_field_u32(&f, &m->version); break;
            case PT_HOSTNAME: e = proto_field_str(&f, m->hostname, sizeof(m->hostname)); break;
            case PT_REALTIME_NS: e = proto_field_u64(&f, &m->realtime_ns); break;
            default: break;
            }
        }
        if (e != PROTO_OK)
            return e;
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    return need(seen, SEEN(PT_VERSION));
}

int proto_decode_ready(const uint8_t *p, size_t n, struct proto_ready *m)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    memset(m, 0, sizeof(*m));
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK) {
            if (f.tag == PT_BOOT_NS)
                e = proto_field_u64(&f, &m->boot_ns);
            else if (f.tag == PT_INIT_NS)
                e = proto_field_u64(&f, &m->init_ns);
        }
        if (e != PROTO_OK)
            return e;
    }
    return loop_end(rc);
}

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
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    memset(m, 0, sizeof(*m));
    m->window = PROTO_DEFAULT_WINDOW;
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = PROTO_OK;
        if (f.tag == PT_ARGV)
            e = push_string(&m->argv, &m->argc, &f);
        else if (f.tag == PT_ENV) {
            e = push_string(&m->env, &m->envc, &f);
            if (e == PROTO_OK && !strchr(m->env[m->envc - 1], '='))
                e = PROTO_E_FIELD;
        } else if ((e = mark_seen(&seen, f.tag)) == PROTO_OK) {
            switch (f.tag) {
            case PT_CWD: e = proto_field_str(&f, m->cwd, sizeof(m->cwd)); break;
            case PT_USER: e = proto_field_str(&f, m->user, sizeof(m->user)); break;
            case PT_TTY: e = proto_field_u32(&f, &m->tty); break;
            case PT_ROWS: e = proto_field_u32(&f, &m->rows); break;
            case PT_COLS: e = proto_field_u32(&f, &m->cols); break;
            case PT_TIMEOUT_MS: e = proto_field_u64(&f, &m->timeout_ms); break;
            case PT_WINDOW: e = proto_field_u32(&f, &m->window); break;
            case PT_REALTIME_NS: e = proto_field_u64(&f, &m->realtime_ns); break;
            default: break;
            }
        }
        if (e != PROTO_OK) {
            proto_exec_free(m);
            return e;
        }
    }
    rc = loop_end(rc);
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

int proto_decode_started(const uint8_t *p, size_t n, struct proto_started *m)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    memset(m, 0, sizeof(*m));
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK) {
            if (f.tag == PT_PID)
                e = proto_field_u32(&f, &m->pid);
            else if (f.tag == PT_WINDOW)
                e = proto_field_u32(&f, &m->window);
        }
        if (e != PROTO_OK)
            return e;
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    return need(seen, SEEN(PT_PID) | SEEN(PT_WINDOW));
}

int proto_decode_exit(const uint8_t *p, size_t n, struct proto_exit *m)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    memset(m, 0, sizeof(*m));
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK) {
            switch (f.tag) {
            case PT_CODE: e = proto_field_i32(&f, &m->code); break;
            case PT_SIGNAL: e = proto_field_u32(&f, &m->signal); break;
            case PT_TIMED_OUT: e = proto_field_u32(&f, &m->timed_out); break;
            default: break;
            }
        }
        if (e != PROTO_OK)
            return e;
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    if (m->signal > 64 || m->code < 0 || m->code > 255)
        return PROTO_E_FIELD;
    return need(seen, SEEN(PT_CODE));
}

int proto_decode_error(const uint8_t *p, size_t n, struct proto_error_msg *m)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    memset(m, 0, sizeof(*m));
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK) {
            if (f.tag == PT_CODE)
                e = proto_field_u32(&f, &m->code);
            else if (f.tag == PT_MESSAGE)
                e = proto_field_str(&f, m->message, sizeof(m->message));
        }
        if (e != PROTO_OK)
            return e;
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    return need(seen, SEEN(PT_MESSAGE));
}

int proto_decode_u32_field(const uint8_t *p, size_t n, uint16_t tag, uint32_t *v)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK && f.tag == tag)
            e = proto_field_u32(&f, v);
        if (e != PROTO_OK)
            return e;
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    return need(seen, SEEN(tag));
}

int proto_decode_shutdown(const uint8_t *p, size_t n, uint32_t *mode, uint32_t *timeout_ms)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    *mode = 0;
    *timeout_ms = 0;
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK) {
            if (f.tag == PT_MODE)
                e = proto_field_u32(&f, mode);
            else if (f.tag == PT_TIMEOUT_MS)
                e = proto_field_u32(&f, timeout_ms);
        }
        if (e != PROTO_OK)
            return e;
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    return *mode <= 1 ? PROTO_OK : PROTO_E_FIELD;
}

int proto_decode_resize(const uint8_t *p, size_t n, uint32_t *rows, uint32_t *cols)
{
    int rc = proto_decode_u32_field(p, n, PT_ROWS, rows);
    if (rc == PROTO_OK)
        rc = proto_decode_u32_field(p, n, PT_COLS, cols);
    if (rc == PROTO_OK && (*rows > 65535 || *cols > 65535))
        rc = PROTO_E_FIELD;
    return rc;
}

int proto_decode_vmm_hello(const uint8_t *p, size_t n, struct proto_vmm_hello *m)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    memset(m, 0, sizeof(*m));
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK) {
            switch (f.tag) {
            case PT_VERSION: e = proto_field_u32(&f, &m->version); break;
            case PT_BACKEND: e = proto_field_str(&f, m->backend, sizeof(m->backend)); break;
            case PT_ACCEL: e = proto_field_str(&f, m->accel, sizeof(m->accel)); break;
            case PT_BOX_ID: e = proto_field_str(&f, m->box_id, sizeof(m->box_id)); break;
            case PT_KERNEL: e = proto_field_str(&f, m->kernel, sizeof(m->kernel)); break;
            case PT_BOOT_NS: e = proto_field_u64(&f, &m->boot_ns); break;
            case PT_INIT_NS: e = proto_field_u64(&f, &m->init_ns); break;
            case PT_READY_MS: e = proto_field_u32(&f, &m->ready_ms); break;
            default: break;
            }
        }
        if (e != PROTO_OK)
            return e;
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    return need(seen, SEEN(PT_VERSION));
}

int proto_decode_file(const uint8_t *p, size_t n, struct proto_file *m)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    memset(m, 0, sizeof(*m));
    m->window = PROTO_DEFAULT_WINDOW;
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK) {
            switch (f.tag) {
            case PT_PATH: e = proto_field_str(&f, m->path, sizeof(m->path)); break;
            case PT_WINDOW: e = proto_field_u32(&f, &m->window); break;
            case PT_FLAGS: e = proto_field_u32(&f, &m->flags); break;
            default: break;
            }
        }
        if (e != PROTO_OK)
            return e;
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    if ((rc = need(seen, SEEN(PT_PATH))) != PROTO_OK)
        return rc;
    if (m->path[0] == 0 || m->window == 0 || (m->flags & ~PROTO_FILE_FLAGS_ALL))
        return PROTO_E_FIELD;
    return PROTO_OK;
}

int proto_decode_stats(const uint8_t *p, size_t n)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e != PROTO_OK)
            return e;
    }
    return loop_end(rc);
}

int proto_decode_stats_reply(const uint8_t *p, size_t n, struct proto_stats *m)
{
    struct proto_field f;
    uint64_t seen = 0;
    int rc;
    memset(m, 0, sizeof(*m));
    FOR_EACH_FIELD(p, n, f, rc)
    {
        int e = mark_seen(&seen, f.tag);
        if (e == PROTO_OK) {
            switch (f.tag) {
            case PT_CPU_NS: e = proto_field_u64(&f, &m->cpu_ns); break;
            case PT_CPUS: e = proto_field_u32(&f, &m->cpus); break;
            case PT_MEM_TOTAL: e = proto_field_u64(&f, &m->mem_total); break;
            case PT_MEM_AVAILABLE: e = proto_field_u64(&f, &m->mem_available); break;
            case PT_MEM_FREE: e = proto_field_u64(&f, &m->mem_free); break;
            case PT_DISK_TOTAL: e = proto_field_u64(&f, &m->disk_total); break;
            case PT_DISK_USED: e = proto_field_u64(&f, &m->disk_used); break;
            case PT_DISK_AVAILABLE: e = proto_field_u64(&f, &m->disk_available); break;
            case PT_PROCS: e = proto_field_u32(&f, &m->procs); break;
            case PT_UPTIME_NS: e = proto_field_u64(&f, &m->uptime_ns); break;
            case PT_LOAD1: e = proto_field_u32(&f, &m->load1); break;
            case PT_LOAD5: e = proto_field_u32(&f, &m->load5); break;
            case PT_LOAD15: e = proto_field_u32(&f, &m->load15); break;
            default: break;
            }
        }
        if (e != PROTO_OK)
            return e;
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    if ((rc = need(seen, SEEN(PT_UPTIME_NS))) != PROTO_OK)
        return rc;
    /* Plausibility: what is used or free cannot exceed the total. */
    if (m->mem_available > m->mem_total || m->mem_free > m->mem_total || m->disk_used > m->disk_total ||
        m->disk_available > m->disk_total)
        return PROTO_E_FIELD;
    return PROTO_OK;
}

/* ---- encoders ---- */

size_t proto_encode_hello(struct proto_writer *w, const struct proto_hello *m)
{
    proto_writer_begin(w, PROTO_STREAM_SESSION, PROTO_HELLO);
    proto_put_u32(w, PT_VERSION_MIN, m->version_min);
    proto_put_u32(w, PT_VERSION_MAX, m->version_max);
    proto_put_str(w, PT_AGENT_VERSION, m->agent_version);
    proto_put_str(w, PT_KERNEL, m->kernel);
    proto_put_u64(w, PT_BOOT_NS, m->boot_ns);
    return proto_writer_finish(w);
}

size_t proto_encode_config(struct proto_writer *w, const struct proto_config *m)
{
    proto_writer_begin(w, PROTO_STREAM_SESSION, PROTO_CONFIG);
    proto_put_u32(w, PT_VERSION, m->version);
    proto_put_str(w, PT_HOSTNAME, m->hostname);
    proto_put_u64(w, PT_REALTIME_NS, m->realtime_ns);
    return proto_writer_finish(w);
}

size_t proto_encode_ready(struct proto_writer *w, const struct proto_ready *m)
{
    proto_writer_begin(w, PROTO_STREAM_SESSION, PROTO_READY);
    proto_put_u64(w, PT_BOOT_NS, m->boot_ns);
    proto_put_u64(w, PT_INIT_NS, m->init_ns);
    return proto_writer_finish(w);
}

size_t proto_encode_exec(struct proto_writer *w, uint32_t stream, const struct proto_exec *m)
{
    proto_writer_begin(w, stream, PROTO_EXEC);
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

size_t proto_encode_started(struct proto_writer *w, uint32_t stream, const struct proto_started *m)
{
    proto_writer_begin(w, stream, PROTO_STARTED);
    proto_put_u32(w, PT_PID, m->pid);
    proto_put_u32(w, PT_WINDOW, m->window);
    return proto_writer_finish(w);
}

size_t proto_encode_exit(struct proto_writer *w, uint32_t stream, const struct proto_exit *m)
{
    proto_writer_begin(w, stream, PROTO_EXIT);
    proto_put_i32(w, PT_CODE, m->code);
    proto_put_u32(w, PT_SIGNAL, m->signal);
    proto_put_u32(w, PT_TIMED_OUT, m->timed_out);
    return proto_writer_finish(w);
}

size_t proto_encode_error(struct proto_writer *w, uint32_t stream, uint32_t code, const char *message)
{
    char clipped[1024];
    /* Messages are clipped rather than refused: an error must always be sendable. */
    strncpy(clipped, message ? message : "", sizeof(clipped) - 1);
    clipped[sizeof(clipped) - 1] = 0;
    proto_writer_begin(w, stream, PROTO_ERROR);
    proto_put_u32(w, PT_CODE, code);
    proto_put_str(w, PT_MESSAGE, clipped);
    return proto_writer_finish(w);
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

size_t proto_encode_shutdown(struct proto_writer *w, uint32_t mode, uint32_t timeout_ms)
{
    proto_writer_begin(w, PROTO_STREAM_SESSION, PROTO_SHUTDOWN);
    proto_put_u32(w, PT_MODE, mode);
    proto_put_u32(w, PT_TIMEOUT_MS, timeout_ms);
    return proto_writer_finish(w);
}

size_t proto_encode_resize(struct proto_writer *w, uint32_t stream, uint32_t rows, uint32_t cols)
{
    proto_writer_begin(w, stream, PROTO_RESIZE);
    proto_put_u32(w, PT_ROWS, rows);
    proto_put_u32(w, PT_COLS, cols);
    return proto_writer_finish(w);
}

size_t proto_encode_vmm_hello(struct proto_writer *w, const struct proto_vmm_hello *m)
{
    proto_writer_begin(w, PROTO_STREAM_SESSION, PROTO_VMM_HELLO);
    proto_put_u32(w, PT_VERSION, m->version);
    proto_put_str(w, PT_BACKEND, m->backend);
    proto_put_str(w, PT_ACCEL, m->accel);
    proto_put_str(w, PT_BOX_ID, m->box_id);
    proto_put_str(w, PT_KERNEL, m->kernel);
    proto_put_u64(w, PT_BOOT_NS, m->boot_ns);
    proto_put_u64(w, PT_INIT_NS, m->init_ns);
    proto_put_u32(w, PT_READY_MS, m->ready_ms);
    return proto_writer_finish(w);
}

size_t proto_encode_file(struct proto_writer *w, uint32_t stream, uint16_t type, const struct proto_file *m)
{
    proto_writer_begin(w, stream, type);
    proto_put_str(w, PT_PATH, m->path);
    proto_put_u32(w, PT_WINDOW, m->window ? m->window : PROTO_DEFAULT_WINDOW);
    if (m->flags)
        proto_put_u32(w, PT_FLAGS, m->flags);
    return proto_writer_finish(w);
}

size_t proto_encode_stats(struct proto_writer *w, uint32_t stream)
{
    proto_writer_begin(w, stream, PROTO_STATS);
    return proto_writer_finish(w);
}

size_t proto_encode_stats_reply(struct proto_writer *w, uint32_t stream, const struct proto_stats *m)
{
    proto_writer_begin(w, stream, PROTO_STATS_REPLY);
    proto_put_u64(w, PT_CPU_NS, m->cpu_ns);
    proto_put_u32(w, PT_CPUS, m->cpus);
    proto_put_u64(w, PT_MEM_TOTAL, m->mem_total);
    proto_put_u64(w, PT_MEM_AVAILABLE, m->mem_available);
    proto_put_u64(w, PT_MEM_FREE, m->mem_free);
    proto_put_u64(w, PT_DISK_TOTAL, m->disk_total);
    proto_put_u64(w, PT_DISK_USED, m->disk_used);
    proto_put_u64(w, PT_DISK_AVAILABLE, m->disk_available);
    proto_put_u32(w, PT_PROCS, m->procs);
    proto_put_u64(w, PT_UPTIME_NS, m->uptime_ns);
    proto_put_u32(w, PT_LOAD1, m->load1);
    proto_put_u32(w, PT_LOAD5, m->load5);
    proto_put_u32(w, PT_LOAD15, m->load15);
    return proto_writer_finish(w);
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

/* Pairs arrive in order: a PID opens an entry, the CMD after it names it. */
int proto_decode_vmm_execs(const uint8_t *p, size_t len, struct proto_exec_entry *e, size_t cap, size_t *n)
{
    struct proto_field f;
    int rc;
    size_t count = 0;
    int have_cmd = 1;
    FOR_EACH_FIELD(p, len, f, rc)
    {
        int err = PROTO_OK;
        if (f.tag == PT_EXEC_PID) {
            uint32_t pid;
            if (!have_cmd || (err = proto_field_u32(&f, &pid)) != PROTO_OK)
                return have_cmd ? err : PROTO_E_FIELD;
            if (count < cap) {
                e[count].pid = pid;
                e[count].cmd[0] = 0;
            }
            count++;
            have_cmd = 0;
        } else if (f.tag == PT_EXEC_CMD) {
            if (have_cmd)
                return PROTO_E_FIELD;
            char cmd[sizeof(e->cmd)];
            if ((err = proto_field_str(&f, cmd, sizeof(cmd))) != PROTO_OK)
                return err;
            if (count <= cap)
                memcpy(e[count - 1].cmd, cmd, sizeof(cmd));
            have_cmd = 1;
        }
    }
    if ((rc = loop_end(rc)) != PROTO_OK)
        return rc;
    if (!have_cmd)
        return PROTO_E_FIELD;
    *n = count;
    return PROTO_OK;
}

size_t proto_encode_signal_exec(struct proto_writer *w, uint32_t pid, uint32_t signal)
{
    proto_writer_begin(w, PROTO_STREAM_SESSION, PROTO_VMM_SIGNAL_EXEC);
    proto_put_u32(w, PT_PID, pid);
    proto_put_u32(w, PT_SIGNAL, signal);
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
