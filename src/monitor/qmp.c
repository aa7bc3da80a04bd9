/* The monitor's QMP client (qmp.h): QEMU's machine protocol over the socketpair given
 * to QEMU as `-chardev socket,fd=N -mon mode=control`. Synchronous: a command is sent
 * and its answer awaited under a deadline while the event loop waits; the commands the
 * monitor runs (stop, cont, blockdev-*, migrate) answer within milliseconds. */
#include "monitor/qmp.h"

#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Copies s into out as printable ASCII (others become '?'), cut to cap. */
static void printable(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; s && *s && o + 1 < cap; s++)
        out[o++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    if (cap)
        out[o] = 0;
}

enum qmp_kind qmp_parse_line(const char *line, size_t len, json_t **ret, long long *id, char *msg, size_t cap)
{
    if (ret)
        *ret = NULL;
    if (id)
        *id = -1;
    if (msg && cap)
        msg[0] = 0;
    if (len > QMP_LINE_MAX)
        return QMP_BAD;
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return QMP_BAD;
    enum qmp_kind kind = QMP_BAD;
    if (!json_is_object(o))
        goto out;
    json_t *jid = json_object_get(o, "id");
    if (id && json_is_integer(jid) && json_integer_value(jid) >= 0)
        *id = json_integer_value(jid);
    json_t *r = json_object_get(o, "return"), *e = json_object_get(o, "error"), *ev = json_object_get(o, "event"),
           *g = json_object_get(o, "QMP");
    if ((r != NULL) + (e != NULL) + (ev != NULL) + (g != NULL) != 1)
        goto out;
    if (g) {
        kind = json_is_object(g) ? QMP_GREETING : QMP_BAD;
    } else if (r) {
        kind = QMP_RETURN;
        if (ret)
            *ret = json_incref(r);
    } else if (e) {
        json_t *cls = json_is_object(e) ? json_object_get(e, "class") : NULL;
        json_t *desc = json_is_object(e) ? json_object_get(e, "desc") : NULL;
        if (!json_is_string(cls) || !json_is_string(desc))
            goto out;
        kind = QMP_ERROR;
        if (msg && cap) {
            char c[64], d[512];
            printable(c, sizeof(c), json_string_value(cls));
            printable(d, sizeof(d), json_string_value(desc));
            snprintf(msg, cap, "%s: %s", c, d);
        }
    } else {
        if (!json_is_string(ev))
            goto out;
        kind = QMP_EVENT;
        if (msg && cap)
            printable(msg, cap < 64 ? cap : 64, json_string_value(ev));
    }
out:
    json_decref(o);
    return kind;
}

void qmp_init(struct qmp *q, int fd)
{
    memset(q, 0, sizeof(*q));
    q->fd = fd;
    q->next_id = 1;
    q->peer = "QEMU";
}

void qmp_close(struct qmp *q)
{
    if (q->fd >= 0)
        close(q->fd);
    free(q->buf);
    q->buf = NULL;
    q->fd = -1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int fail(struct qmp *q, char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(struct qmp *q, char *err, size_t cap, const char *fmt, ...)
{
    q->broken = 1;
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(err, cap, "the QMP channel to %s broke: %s", q->peer, what);
    return -1;
}

/* The next line from QEMU into *line (NUL-terminated in q->buf, valid until the next
 * read), waiting until deadline (0: do not wait). 1 a line, 0 none yet, -1 broken. */
static int read_line(struct qmp *q, char **line, size_t *len, uint64_t deadline, char *err, size_t cap)
{
    for (;;) {
        char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
        if (nl) {
            *nl = 0;
            *line = q->buf;
            *len = (size_t)(nl - q->buf);
            return 1;
        }
        if (q->len >= QMP_LINE_MAX)
            return fail(q, err, cap, "%s sent a line longer than 64 KiB", q->peer);
        uint64_t now = now_ms();
        int wait = deadline > now ? (int)(deadline - now) : 0;
        struct pollfd pf = {.fd = q->fd, .events = POLLIN};
        int n = poll(&pf, 1, wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(q, err, cap, "%s", strerror(errno));
        if (n == 0) {
            if (deadline == 0)
                return 0;
            return fail(q, err, cap, "%s did not answer in time", q->peer);
        }
        ssize_t r = recv(q->fd, q->buf + q->len, QMP_LINE_MAX - q->len, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0)
            return fail(q, err, cap, "%s", strerror(errno));
        if (r == 0)
            return fail(q, err, cap, "%s closed it", q->peer);
        q->len += (size_t)r;
    }
}

/* Drops the line read last from the buffer. */
static void consume(struct qmp *q, size_t len)
{
    size_t used = len + 1;
    memmove(q->buf, q->buf + used, q->len - used);
    q->len -= used;
}

static int send_all(struct qmp *q, const char *text, size_t n, int pass_fd, char *err, size_t cap)
{
    size_t off = 0;
    while (off < n) {
        struct iovec iov = {.iov_base = (char *)text + off, .iov_len = n - off};
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (pass_fd >= 0 && off == 0) {
            memset(&u, 0, sizeof(u));
            mh.msg_control = u.buf;
            mh.msg_controllen = sizeof(u.buf);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
        }
        ssize_t w = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {.fd = q->fd, .events = POLLOUT};
            poll(&pf, 1, 100);
            continue;
        }
        if (w < 0)
            return fail(q, err, cap, "%s", strerror(errno));
        off += (size_t)w;
    }
    return 0;
}

/* Sends {"execute": cmd, "arguments": args, "id": N} and waits for the answer with id
 * N; events and stray answers are skipped. */
static int run(struct qmp *q, const char *cmd, json_t *args, int pass_fd, json_t **ret, uint64_t deadline, char *err,
               size_t cap)
{
    long long want = q->next_id++;
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "execute", json_string(cmd)) < 0 ||
        (args && json_object_set_new(o, "arguments", args) < 0) ||
        json_object_set_new(o, "id", json_integer(want)) < 0) {
        json_decref(o);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    args = NULL;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    size_t tl = strlen(text);
    char *withnl = realloc(text, tl + 2);
    if (!withnl) {
        free(text);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    withnl[tl] = '\n';
    withnl[tl + 1] = 0;
    int rc = send_all(q, withnl, tl + 1, pass_fd, err, cap);
    free(withnl);
    if (rc < 0)
        return -1;
    for (;;) {
        char *line, msg[600];
        size_t len;
        if (read_line(q, &line, &len, deadline, err, cap) < 0)
            return -1;
        long long id;
        json_t *r = NULL;
        enum qmp_kind k = qmp_parse_line(line, len, ret ? &r : NULL, &id, msg, sizeof(msg));
        consume(q, len);
        if (k == QMP_BAD)
            return fail(q, err, cap, "%s sent a line that is not a QMP message", q->peer);
        if ((k != QMP_RETURN && k != QMP_ERROR) || id != want) {
            json_decref(r);
            continue; /* an event, or a late answer to an earlier command */
        }
        if (k == QMP_ERROR) {
            snprintf(err, cap, "%s refused %s: %s", q->peer, cmd, msg);
            return -1;
        }
        if (ret)
            *ret = r;
        return 0;
    }
}

/* The greeting, then qmp_capabilities (QEMU accepts nothing else before it). */
static int negotiate(struct qmp *q, uint64_t deadline, char *err, size_t cap)
{
    char *line;
    size_t len;
    if (read_line(q, &line, &len, deadline, err, cap) < 0)
        return -1;
    enum qmp_kind k = qmp_parse_line(line, len, NULL, NULL, NULL, 0);
    consume(q, len);
    if (k != QMP_GREETING)
        return fail(q, err, cap, "the first line of %s is not a QMP greeting", q->peer);
    if (run(q, "qmp_capabilities", NULL, -1, NULL, deadline, err, cap) < 0)
        return -1;
    q->negotiated = 1;
    return 0;
}

int qmp_command(struct qmp *q, const char *cmd, json_t *args, int pass_fd, json_t **ret, int timeout_ms, char *err,
                size_t cap)
{
    if (ret)
        *ret = NULL;
    if (q->fd < 0 || q->broken) {
        json_decref(args);
        if (q->fd < 0)
            snprintf(err, cap, "this box's VMM has no QMP channel");
        else
            snprintf(err, cap, "the QMP channel to %s is broken", q->peer);
        return -1;
    }
    if (!q->buf && !(q->buf = malloc(QMP_LINE_MAX + 1))) {
        json_decref(args);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
    if (!q->negotiated && negotiate(q, deadline, err, cap) < 0) {
        json_decref(args);
        return -1;
    }
    /* Events that came since the last command are dropped unread. */
    char *line;
    size_t len;
    int got;
    while ((got = read_line(q, &line, &len, 0, err, cap)) == 1)
        consume(q, len);
    if (got < 0) {
        json_decref(args);
        return -1;
    }
    return run(q, cmd, args, pass_fd, ret, deadline, err, cap);
}
