/* A tiny static control-socket client for the nested lane (the outer VM has no
 * Python and no libcocoon): speaks the ctl.sock framing of docs/protocol.md to run one
 * exec or to shut a box down.
 *   nestctl SOCK hello                 prints "backend=<b> accel=<a> ready_ms=<n>"
 *   nestctl SOCK exec ARGV...          stdout/stderr relayed, exits with the exec's code
 *   nestctl SOCK shutdown              asks the guest to power off, waits for the close
 *   nestctl dns PORT NAME=IPV4...      a DNS responder on 127.0.0.1:PORT (UDP) answering A
 *                                      queries for those names, NXDOMAIN for others, forever */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "disk/qcow2.h"
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
    memcpy(sa.sun_path, path, strlen(path) + 1);
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

/* A live snapshot (VMM_SNAPSHOT): the new layer NEXT (disk.next-<id>.qcow2, made with
 * mkoverlay) and, with "memory", the memory and device state into memory.next. Prints
 * the answer: "quiesced" or "not quiesced: why"; exit 1 on an error. */
static int do_snapshot(int fd, const char *next, int memory)
{
    struct proto_snapshot req = {.flags = memory ? PROTO_SNAPSHOT_MEMORY : 0};
    if (strlen(next) >= sizeof(req.path))
        die("layer name too long");
    snprintf(req.path, sizeof(req.path), "%s", next);
    size_t n = proto_encode_vmm_snapshot(&w, &req);
    if (!n)
        die("cannot encode VMM_SNAPSHOT");
    send_all(fd, w.buf, n);
    struct proto_header h;
    const uint8_t *p;
    while (next_frame(fd, &h, &p)) {
        if (h.type == PROTO_VMM_SNAPSHOT) {
            struct proto_snapshot a;
            if (proto_decode_vmm_snapshot(p, h.len, &a) != PROTO_OK)
                die("bad VMM_SNAPSHOT answer");
            if (a.code)
                printf("quiesced\n");
            else
                printf("not quiesced: %s\n", a.message);
            return 0;
        }
        if (h.type == PROTO_ERROR) {
            struct proto_error_msg m;
            if (proto_decode_error(p, h.len, &m) == PROTO_OK)
                fprintf(stderr, "nestctl: snapshot: %s\n", m.message);
            return 1;
        }
    }
    return die("ctl.sock closed before the snapshot's answer");
}

/* The upstream resolver of the lane's DNS check: one question per query, answered
 * from argv; just enough DNS (RFC 1035 4.1) for the stack's forwarding. */
static int do_dns(int port, int n, char **pairs)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return die("dns: cannot bind");
    for (;;) {
        uint8_t q[512], r[600];
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        ssize_t len = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&peer, &pl);
        if (len < 17 || q[4] != 0 || q[5] != 1)
            continue;
        char name[256];
        size_t off = 12, nl = 0;
        while (off < (size_t)len && q[off] && q[off] < 64 && off + 1 + q[off] < (size_t)len &&
               nl + q[off] + 1 < sizeof(name)) {
            if (nl)
                name[nl++] = '.';
            memcpy(name + nl, q + off + 1, q[off]);
            nl += q[off];
            off += 1 + (size_t)q[off];
        }
        if (off + 5 > (size_t)len || q[off])
            continue;
        name[nl] = 0;
        size_t qend = off + 5; /* the zero label, QTYPE, QCLASS */
        uint16_t qtype = (uint16_t)(q[off + 1] << 8 | q[off + 2]);
        const char *ip = NULL;
        for (int i = 0; i < n; i++) {
            const char *eq = strchr(pairs[i], '=');
            if (eq && (size_t)(eq - pairs[i]) == nl && !strncasecmp(pairs[i], name, nl))
                ip = eq + 1;
        }
        memcpy(r, q, qend);
        r[2] = 0x81;
        r[3] = ip ? 0x80 : 0x83; /* RA; NXDOMAIN when the name is unknown */
        r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
        size_t rl = qend;
        struct in_addr a;
        if (ip && qtype == 1 && inet_pton(AF_INET, ip, &a) == 1) {
            r[7] = 1;
            const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
            memcpy(r + rl, rr, sizeof(rr));
            memcpy(r + rl + sizeof(rr), &a, 4);
            rl += sizeof(rr) + 4;
        }
        sendto(fd, r, rl, 0, (struct sockaddr *)&peer, pl);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return die(
            "usage: nestctl SOCK hello|exec ARGV...|shutdown|snapshot NEXT [memory], nestctl dns PORT NAME=IP..., "
            "or nestctl mkoverlay BACKING NEW");
    if (!strcmp(argv[1], "dns"))
        return do_dns(atoi(argv[2]), argc - 3, argv + 3);
    if (!strcmp(argv[1], "mkoverlay") && argc == 4) { /* mkoverlay BACKING NEW: a qcow2 layer */
        char err[512];
        if (qcow2_create(argv[3], 0, argv[2], "qcow2", 0, err, sizeof(err)) < 0) {
            fprintf(stderr, "nestctl: mkoverlay: %s\n", err);
            return 1;
        }
        return 0;
    }
    int fd = connect_to(argv[1]);
    if (!strcmp(argv[2], "hello"))
        return do_hello(fd);
    if (!strcmp(argv[2], "exec") && argc > 3)
        return do_exec(fd, argc - 3, argv + 3);
    if (!strcmp(argv[2], "shutdown"))
        return do_shutdown(fd);
    if (!strcmp(argv[2], "snapshot") && argc >= 4)
        return do_snapshot(fd, argv[3], argc > 4 && !strcmp(argv[4], "memory"));
    return die("unknown command");
}
