/* The hostile agent: a test-only PID 1 that replaces cocoon-agent in a real box and
 * attacks the host through every channel it has (tests/integration/test_hostile.py).
 * It does the real handshake so the box starts, then runs `attack NAME ARGS...` execs
 * and answers `cocoon cp` with forged archives and `cocoon fs` with forged answers. Never shipped, never trusted. */
#ifndef COCOON_TESTS_HOSTILE_H
#define COCOON_TESTS_HOSTILE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/conn.h"
#include "proto/proto.h"

#define HOSTILE_MAX_STREAMS 64
#define HOSTILE_MAX_QUEUED 16

/* One stream the host opened and the agent still answers on. */
struct hstream {
    uint32_t id;
    int64_t credit; /* output the host allows now (may go negative when ignored) */
    uint32_t signal;
    int in_use, stdin_eof;
    uint64_t hold_until; /* "hold": EXIT 0 at this CLOCK_MONOTONIC ns, or on a SIGNAL */
};

/* A stream-opening frame that arrived while an attack ran: handled afterwards. */
struct hqueued {
    struct proto_header h;
    uint8_t *payload;
};

struct hostile {
    int fd;
    struct proto_conn conn;
    struct proto_writer w;
    int configured;
    int deaf; /* stop reading the channel (the "deaf" attack) */
    struct hstream streams[HOSTILE_MAX_STREAMS];
    struct hqueued queued[HOSTILE_MAX_QUEUED];
    int nqueued;
    uint32_t next_pid;
};
extern struct hostile H;

/* ---- chan.c: the channel to the host ---- */
void chan_init(int fd);
/* Queues a frame built in H.w (len from a proto_encode_*), then writes until at most
 * `keep` bytes wait, reading (and dispatching) the host's frames meanwhile. */
void chan_send_w(size_t len, size_t keep);
/* Raw bytes, no framing check: for malformed frames. */
void chan_send_raw(const void *p, size_t n);
/* Writes what is queued, then waits up to ms for input and dispatches it. */
void chan_pump(int ms);
struct hstream *stream_open(uint32_t id, uint32_t window);
struct hstream *stream_find(uint32_t id);
void stream_close(struct hstream *s);
/* STDOUT on s honouring its credit (waits for CREDIT); -1 if it was signalled. */
int stream_out(struct hstream *s, const void *p, size_t n);
int stream_printf(struct hstream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void stream_exit(struct hstream *s, int code);
/* The next queued stream-opening frame (payload owned by the caller), or 0. */
int chan_next_queued(struct hqueued *out);

/* ---- util ---- */
uint64_t now_ns(void);
void hlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint32_t rnd(void);

/* ---- attacks: each returns the EXIT code to send, or -1 when it sent its own end
 * (or never ends the stream on purpose). args[0] is the attack's name. ---- */
typedef int (*attack_fn)(struct hstream *s, int argc, char **args);
struct attack {
    const char *name;
    attack_fn fn;
};
extern const struct attack chan_attacks[];
extern const struct attack net_attacks[];
/* cp: FILE_GET of a path whose last component names a forged archive. */
void cp_forge(struct hstream *s, const char *name);
/* fs: FILE_OP of a path whose last component names a forged answer. */
void fsop_forge(struct hstream *s, const char *name);

#endif
