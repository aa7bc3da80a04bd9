/* Fuzz target: bytes as a stream of frames. Each frame that parses is checked
 * against its header and its payload is handed to every typed decoder. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_decoders.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        struct proto_header h;
        const uint8_t *payload = NULL;
        size_t frame_len = 0;
        int rc = proto_frame_parse(data + off, size - off, &h, &payload, &frame_len);
        if (rc != PROTO_OK) {
            fuzz_check(rc == PROTO_NEED_MORE || rc < 0);
            /* Also decode whatever follows a bad header as a bare payload. */
            if (size - off > PROTO_HEADER_SIZE)
                fuzz_decode_all(data + off + PROTO_HEADER_SIZE, size - off - PROTO_HEADER_SIZE);
            break;
        }
        fuzz_check(frame_len == PROTO_HEADER_SIZE + (size_t)h.len && frame_len <= size - off);
        fuzz_check(payload == data + off + PROTO_HEADER_SIZE);
        fuzz_check(h.version == PROTO_VERSION && h.flags == 0 && h.len <= PROTO_MAX_PAYLOAD);
        fuzz_check(proto_type_known(h.type));
        fuzz_check(!proto_type_is_session(h.type) || h.stream == PROTO_STREAM_SESSION);
        fuzz_decode_all(payload, h.len);
        /* Data frames re-encode byte for byte. */
        if (proto_type_is_data(h.type) || h.type == PROTO_STDIN_EOF) {
            size_t n = proto_encode_data(&fuzz_w, h.stream, h.type, payload, h.len);
            fuzz_check(n == frame_len && memcmp(fuzz_w.buf, data + off, n) == 0);
        }
        off += frame_len;
    }
    return 0;
}
