/* Buffered framing over a non-blocking fd; see conn.h. The inbound buffer holds at
 * most two frames, so a peer cannot make us buffer more than that however it writes. */
#include "proto/conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define IN_CAP (2 * PROTO_MAX_FRAME)

int proto_conn_init(struct proto_conn *c, int fd, size_t out_limit)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->out_limit = out_limit ? out_limit : 8u * 1024 * 1024;
    struct stat st;
    c->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    c->in = malloc(IN_CAP);
    return c->in ? 0 : -1;
}

void proto_conn_free(struct proto_conn *c)
{
    free(c->in);
    free(c->out.buf);
    c->in = c->out.buf = NULL;
}

long proto_conn_read(struct proto_conn *c)
{
    if (c->in_off > 0 && c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    if (c->in_off > 0 && IN_CAP - c->in_len < PROTO_MAX_FRAME) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_len == IN_CAP) {
        errno = EAGAIN; /* full of unparsed frames: the caller must consume first */
        return -1;
    }
    ssize_t n;
    do
        n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        c->eof = 1;
    if (n > 0)
        c->in_len += (size_t)n;
    return (long)n;
}

int proto_conn_next(struct proto_conn *c, struct proto_header *h, const uint8_t **payload)
{
    size_t frame_len = 0;
    int rc = proto_frame_parse(c->in + c->in_off, c->in_len - c->in_off, h, payload, &frame_len);
    if (rc == PROTO_OK)
        c->in_off += frame_len;
    return rc;
}

int proto_conn_flush(struct proto_conn *c)
{
    struct proto_bytes *q = &c->out;
    while (q->off < q->len) {
        /* MSG_NOSIGNAL: a library must not die of SIGPIPE when its peer goes away. */
        ssize_t n = c->is_socket ? send(c->fd, q->buf + q->off, q->len - q->off, MSG_NOSIGNAL)
                                 : write(c->fd, q->buf + q->off, q->len - q->off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        q->off += (size_t)n;
    }
    q->off = q->len = 0;
    return 0;
}

int proto_bytes_reserve(struct proto_bytes *q, size_t n, size_t first_cap)
{
    if (q->off > 0 && q->off == q->len)
        q->off = q->len = 0;
    if (q->len + n > q->cap && q->off > 0) {
        memmove(q->buf, q->buf + q->off, q->len - q->off);
        q->len -= q->off;
        q->off = 0;
    }
    if (q->len + n <= q->cap)
        return 0;
    size_t cap = q->cap ? q->cap : first_cap;
    while (cap < q->len + n)
        cap *= 2;
    uint8_t *grown = realloc(q->buf, cap);
    if (!grown)
        return -1;
    q->buf = grown;
    q->cap = cap;
    return 0;
}

int proto_conn_send(struct proto_conn *c, const void *frame, size_t len)
{
    if (len == 0)
        return -1;
    if (proto_conn_pending(c) + len > c->out_limit) {
        errno = ENOBUFS;
        return -1;
    }
    if (proto_bytes_reserve(&c->out, len, 4096) < 0)
        return -1;
    memcpy(c->out.buf + c->out.len, frame, len);
    c->out.len += len;
    return c->corked ? 0 : proto_conn_flush(c);
}

int proto_conn_uncork(struct proto_conn *c)
{
    c->corked = 0;
    return proto_conn_flush(c);
}
