/* Fuzz target: bytes pushed through a proto_conn pair over a socketpair in chunks
 * whose sizes the input chooses, exercising the inbound buffer's reassembly and
 * compaction and the outbound queue. The first byte seeds the chunk sizes. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_decoders.h"
#include "proto/conn.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Drains complete frames; returns 1 once the stream is broken (a decode error). */
static int drain(struct proto_conn *rx)
{
    struct proto_header h;
    const uint8_t *p;
    int rc;
    while ((rc = proto_conn_next(rx, &h, &p)) == PROTO_OK) {
        fuzz_check(h.len <= PROTO_MAX_PAYLOAD);
        fuzz_check(p >= rx->in && p + h.len <= rx->in + rx->in_len);
        fuzz_decode_all(p, h.len);
    }
    fuzz_check(rx->in_off <= rx->in_len && rx->in_len <= 2 * PROTO_MAX_FRAME);
    return rc != PROTO_NEED_MORE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    data++;
    size--;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    struct proto_conn rx, tx;
    if (proto_conn_init(&rx, sv[0], 0) < 0 || proto_conn_init(&tx, sv[1], 1u << 20) < 0) {
        proto_conn_free(&rx);
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    size_t off = 0;
    int broken = 0;
    /* Chunk sizes cycle through a small set picked by the seed: 1-byte writes, header
     * splits, and large bursts. */
    static const size_t sizes[] = {1, 3, 11, 12, 13, 100, 4096, 70000};
    unsigned step = 0;
    int idle = 0;
    while (!broken && (off < size || proto_conn_pending(&tx) > 0) && idle < 1000) {
        if (off < size) {
            size_t chunk = sizes[(seed + step * 5 + (seed >> 3) * step) % 8];
            step++;
            if (chunk > size - off)
                chunk = size - off;
            if (proto_conn_send(&tx, data + off, chunk) == 0)
                off += chunk;
        }
        fuzz_check(proto_conn_flush(&tx) == 0);
        long r = proto_conn_read(&rx);
        fuzz_check(r > 0 || (r < 0 && errno == EAGAIN));
        broken = drain(&rx);
        idle = r > 0 ? 0 : idle + 1;
    }
    /* The peer closes: EOF must be seen once the buffer was drained. */
    if (!broken) {
        close(sv[1]);
        sv[1] = -1;
        long r;
        while ((r = proto_conn_read(&rx)) > 0)
            if (drain(&rx))
                break;
        if (r == 0)
            fuzz_check(rx.eof);
    }
    proto_conn_free(&rx);
    proto_conn_free(&tx);
    close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    return 0;
}
