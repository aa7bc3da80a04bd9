/* Attacks on the agent channel and the console: malformed and oversized frames, bad
 * payloads, ignored credits, endless output, silence, floods of exec events on other
 * streams' ids, a channel nobody reads, and a console flood. */
#include "hostile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long arg_num(int argc, char **args, int i, unsigned long def)
{
    return i < argc ? strtoul(args[i], NULL, 0) : def;
}

/* header KIND: one frame whose header breaks a rule of docs/protocol.md "Frames". The
 * monitor must stop the box (the byte stream cannot be resynchronised). */
static int attack_header(struct hstream *s, int argc, char **args)
{
    const char *kind = argc > 1 ? args[1] : "oversize";
    uint8_t buf[4096];
    memset(buf, 0x41, sizeof(buf));
    proto_header_encode(buf, 16, s->id, PROTO_STDOUT);
    if (!strcmp(kind, "oversize"))
        proto_header_encode(buf, 0xffffffffu, s->id, PROTO_STDOUT);
    else if (!strcmp(kind, "version"))
        buf[10] = 2;
    else if (!strcmp(kind, "flags"))
        buf[11] = 0x80;
    else if (!strcmp(kind, "type"))
        proto_header_encode(buf, 16, s->id, 99);
    else if (!strcmp(kind, "stream"))
        proto_header_encode(buf, 16, 0, PROTO_STDOUT); /* an exec type on the session stream */
    else
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (uint8_t)rnd();
    chan_send_raw(buf, sizeof(buf));
    return -1; /* the host ends this box */
}

static size_t tlv(uint8_t *p, uint16_t tag, const void *v, uint32_t n)
{
    p[0] = (uint8_t)tag;
    p[1] = (uint8_t)(tag >> 8);
    for (int i = 0; i < 4; i++)
        p[2 + i] = (uint8_t)(n >> (8 * i));
    memcpy(p + 6, v, n);
    return 6 + n;
}

static void frame(uint32_t stream, uint16_t type, const uint8_t *payload, size_t n)
{
    proto_header_encode(H.w.buf, (uint32_t)n, stream, type);
    memcpy(H.w.buf + PROTO_HEADER_SIZE, payload, n);
    chan_send_w(PROTO_HEADER_SIZE + n, 256u << 10);
}

/* payloads N: frames with good headers and bad contents, on this stream, on streams
 * that do not exist and on the session stream; guest text made to forge log lines. */
static int attack_payloads(struct hstream *s, int argc, char **args)
{
    unsigned long n = arg_num(argc, args, 1, 5000);
    uint8_t p[2048];
    uint32_t v;
    char msg[1000];
    snprintf(msg, sizeof(msg),
             "forged\n2030-01-01T00:00:00.000Z [1] box ready in 1 ms (forged)\n\x1b[2J\x1b]0;pwned\x07 \xff\xfe end");
    for (unsigned long i = 0; i < n; i++) {
        size_t len = 0;
        uint32_t other = 100000 + (uint32_t)(i % 5000);
        switch (i % 9) {
        case 0: frame(s->id, PROTO_STARTED, p, 0); break; /* no PID */
        case 1:
            v = 300; /* an exit code out of range */
            len = tlv(p, PT_CODE, &v, 4);
            frame(other, PROTO_EXIT, p, len);
            break;
        case 2:
            v = 5;
            len = tlv(p, PT_CODE, &v, 4);
            len += tlv(p + len, PT_MESSAGE, msg, (uint32_t)strlen(msg));
            frame(0, PROTO_ERROR, p, len);
            break;
        case 3: {
            uint64_t total = 1, more = 2;
            len = tlv(p, PT_UPTIME_NS, &total, 8);
            len += tlv(p + len, PT_MEM_TOTAL, &total, 8);
            len += tlv(p + len, PT_MEM_AVAILABLE, &more, 8); /* above its total */
            frame(s->id, PROTO_STATS_REPLY, p, len);
            break;
        }
        case 4: frame(s->id, PROTO_CREDIT, (const uint8_t *)"\x19\x00\x02\x00\x00\x00\x01\x02", 8); break;
        case 5: frame(0, PROTO_PONG, (const uint8_t *)"unasked", 7); break;
        case 6:
            v = 1;
            len = tlv(p, PT_PID, &v, 4);
            p[len - 5] = 0x7f; /* the field's length now runs past the payload */
            frame(s->id, PROTO_STARTED, p, len);
            break;
        case 7: {
            v = 1;
            len = tlv(p, PT_VERSION_MIN, &v, 4);
            len += tlv(p + len, PT_VERSION_MAX, &v, 4);
            frame(0, PROTO_HELLO, p, len); /* a second handshake */
            break;
        }
        default: frame(other, PROTO_STDOUT, (const uint8_t *)"to nobody\n", 10); break;
        }
    }
    stream_printf(s, "sent %lu\n", n);
    return 0;
}

/* credit BYTES: output far past the window, never waiting for CREDIT. */
static int attack_credit(struct hstream *s, int argc, char **args)
{
    unsigned long long total = arg_num(argc, args, 1, 64ul << 20), sent = 0;
    static uint8_t chunk[PROTO_MAX_PAYLOAD];
    memset(chunk, 'x', sizeof(chunk));
    chunk[sizeof(chunk) - 1] = '\n';
    while (sent < total) {
        chan_send_w(proto_encode_data(&H.w, s->id, PROTO_STDOUT, chunk, sizeof(chunk)), 1u << 20);
        sent += sizeof(chunk);
    }
    return 0;
}

/* endless SECS: output as fast as the credits allow, ignoring SIGNAL (even SIGKILL)
 * and the exec's timeout for SECS seconds, then silence: the stream is never ended. */
static int attack_endless(struct hstream *s, int argc, char **args)
{
    uint64_t until = now_ns() + arg_num(argc, args, 1, 20) * 1000000000ull;
    static uint8_t chunk[PROTO_MAX_PAYLOAD];
    memset(chunk, 'y', sizeof(chunk));
    while (now_ns() < until) {
        if (s->credit <= 0) {
            chan_pump(100);
            continue;
        }
        size_t k = s->credit < (int64_t)sizeof(chunk) ? (size_t)s->credit : sizeof(chunk);
        chan_send_w(proto_encode_data(&H.w, s->id, PROTO_STDOUT, chunk, k), 1u << 20);
        s->credit -= (int64_t)k;
    }
    return -1;
}

/* silent: STARTED, then nothing, ever; SIGNAL and the exec's timeout are ignored. */
static int attack_silent(struct hstream *s, int argc, char **args) { return -1; }

/* hold SECS: an ordinary long command (EXIT 0 after SECS, or at the host's SIGNAL). */
static int attack_hold(struct hstream *s, int argc, char **args)
{
    stream_printf(s, "holding\n");
    s->hold_until = now_ns() + arg_num(argc, args, 1, 60) * 1000000000ull;
    return -1;
}

/* events N: exec events for streams this exec does not own (other clients' execs
 * among them: the monitor hands out agent ids in order), as fast as the channel goes. */
static int attack_events(struct hstream *s, int argc, char **args)
{
    unsigned long n = arg_num(argc, args, 1, 20000);
    for (unsigned long i = 0; i < n; i++) {
        uint32_t id = 1 + (uint32_t)(i / 6 % 64);
        if (id == s->id)
            continue;
        switch (i % 6) {
        case 0: {
            struct proto_started st = {.pid = 4242, .window = 0xffffffffu};
            chan_send_w(proto_encode_started(&H.w, id, &st), 256u << 10);
            break;
        }
        case 1: chan_send_w(proto_encode_data(&H.w, id, PROTO_STDOUT, "forged output\n", 14), 256u << 10); break;
        case 2: chan_send_w(proto_encode_data(&H.w, id, PROTO_STDERR, "forged error\n", 13), 256u << 10); break;
        case 3: chan_send_w(proto_encode_credit(&H.w, id, 0xffffffffu), 256u << 10); break;
        case 4: chan_send_w(proto_encode_error(&H.w, id, 1, "forged error message"), 256u << 10); break;
        default: {
            struct proto_exit x = {.code = (int32_t)(i % 256)};
            chan_send_w(proto_encode_exit(&H.w, id, &x), 256u << 10);
            break;
        }
        }
    }
    stream_printf(s, "sent %lu\n", n);
    return 0;
}

/* deaf SECS: stop reading the channel (0: forever) while the host sends. */
static int attack_deaf(struct hstream *s, int argc, char **args)
{
    unsigned long secs = arg_num(argc, args, 1, 0);
    stream_printf(s, "deaf\n");
    H.deaf = 1;
    uint64_t until = now_ns() + secs * 1000000000ull;
    while (!secs || now_ns() < until)
        chan_pump(200);
    H.deaf = 0;
    return 0;
}

/* console BYTES SECS: the serial console written as fast as it goes. */
static int attack_console(struct hstream *s, int argc, char **args)
{
    unsigned long long total = arg_num(argc, args, 1, 8ul << 20), done = 0;
    uint64_t until = now_ns() + arg_num(argc, args, 2, 20) * 1000000000ull;
    char line[4096];
    while (done < total && now_ns() < until) {
        int n = snprintf(line, sizeof(line), "hostile console flood %llu ", done);
        memset(line + n, 'c', sizeof(line) - (size_t)n - 1);
        line[sizeof(line) - 1] = '\n';
        ssize_t w = write(1, line, sizeof(line));
        if (w <= 0)
            break;
        done += (unsigned long long)w;
        chan_pump(0); /* keep answering the host */
    }
    stream_printf(s, "wrote %llu\n", done);
    return 0;
}

const struct attack chan_attacks[] = {{"header", attack_header},   {"payloads", attack_payloads},
                                      {"credit", attack_credit},   {"endless", attack_endless},
                                      {"silent", attack_silent},   {"hold", attack_hold},
                                      {"events", attack_events},   {"deaf", attack_deaf},
                                      {"console", attack_console}, {NULL, NULL}};
