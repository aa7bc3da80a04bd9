/* A tiny static control-socket client for the nested lane (the outer VM has no
 * Python and no libcocoon): speaks the ctl.sock framing of docs/protocol.md to run one
 * exec or to shut a box down.
 *   nestctl SOCK hello                 prints "backend=<b> accel=<a> ready_ms=<n>"
 *   nestctl SOCK exec ARGV...          stdout/stderr relayed, exits with the exec's code
 *   nestctl SOCK shutdown              asks the guest to power off, waits for the close */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/proto.h"

static uint8_t inbuf[4 * PROTO_MAX_FRAME];
static size_t inlen;
static struct proto_writer w;

static int die(const char *msg)
{
    fprintf(stderr, "nestctl: %s\n", msg);
    exit(125);
}

static void send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            die("write to ctl.sock failed");
        b += k;
        n -= (size_t)k;
    }
}

/* Next complete frame; returns 0 at EOF. The frame stays valid until the next call. */
static int next_frame(int fd, struct proto_header *h, const uint8_t **payload)
{
    static size_t consumed;
    if (consumed) {
        memmove(inbuf, inbuf + consumed, inlen - consumed);
        inlen -= consumed;
        consumed = 0;
    }
    for (;;) {
        size_t flen;
        int rc = proto_frame_parse(inbuf, inlen, h, payload, &flen);
        if (rc == PROTO_OK) {
            consumed = flen;
            return 1;
        }
        if (rc != PROTO_NEED_MORE)
            die(proto_strerror(rc));
        ssize_t k = read(fd, inbuf + inlen, sizeof(inbuf) - inlen);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return 0;
        inlen += (size_t)k;
    }
}

static int connect_to(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        die("socket path too long");
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("cannot connect to ctl.sock");
    return fd;
}

static int do_hello(int fd)
{
    struct proto_header h;
    const uint8_t *p;
    struct proto_vmm_hello m;
    while (next_frame(fd, &h, &p)) {
        if (h.type == PROTO_VMM_HELLO && proto_decode_vmm_hello(p, h.len, &m) == PROTO_OK) {
            printf("backend=%s accel=%s ready_ms=%u\n", m.backend, m.accel, m.ready_ms);
            return 0;
        }
    }
    return die("no VMM_HELLO");
}

static int do_exec(int fd, int argc, char **argv)
{
    struct proto_exec e = {.argv = argv, .argc = (size_t)argc, .window = PROTO_DEFAULT_WINDOW};
    char *noenv[] = {NULL};
    e.env = noenv;
    size_t n = proto_encode_exec(&w, 1, &e);
    if (!n)
        die("exec frame too large");
    send_all(fd, w.buf, n);
    struct proto_header h;
    const uint8_t *p;
    while (next_frame(fd, &h, &p)) {
        if (h.stream != 1)
            continue;
        switch (h.type) {
        case PROTO_STARTED:
            proto_writer_begin(&w, 1, PROTO_STDIN_EOF);
            n = proto_writer_finish(&w);
            send_all(fd, w.buf, n);
            break;
        case PROTO_STDOUT:
        case PROTO_STDERR: {
            FILE *f = h.type == PROTO_STDOUT ? stdout : stderr;
            if (h.len && fwrite(p, 1, h.len, f) != h.len)
                die("cannot write the output");
            n = proto_encode_credit(&w, 1, h.len);
            send_all(fd, w.buf, n);
            break;
        }
        case PROTO_EXIT: {
            struct proto_exit x;
            if (proto_decode_exit(p, h.len, &x) != PROTO_OK)
                die("bad EXIT");
            fflush(stdout);
            return x.signal ? 128 + (int)x.signal : x.code;
        }
        case PROTO_ERROR: {
            struct proto_error_msg m;
            if (proto_decode_error(p, h.len, &m) == PROTO_OK)
                fprintf(stderr, "nestctl: error: %s\n", m.message);
            return 126;
        }
        default: break;
        }
    }
    return die("ctl.sock closed before EXIT");
}

static int do_shutdown(int fd)
{
    size_t n = proto_encode_shutdown(&w, 0, 10000);
    send_all(fd, w.buf, n);
    struct proto_header h;
    const uint8_t *p;
    while (next_frame(fd, &h, &p))
        ;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return die("usage: nestctl SOCK hello|exec ARGV...|shutdown");
    int fd = connect_to(argv[1]);
    if (!strcmp(argv[2], "hello"))
        return do_hello(fd);
    if (!strcmp(argv[2], "exec") && argc > 3)
        return do_exec(fd, argc - 3, argv + 3);
    if (!strcmp(argv[2], "shutdown"))
        return do_shutdown(fd);
    return die("unknown command");
}
