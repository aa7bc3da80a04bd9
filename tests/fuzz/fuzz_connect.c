/* Fuzz target: the Connect protocol pieces of cocoon's E2B front (src/serve/e2b_connect.c)
 * on a client's bytes: every envelope of a body read back to back (bounds, flags, cuts),
 * each message parsed as a JSON object, and the whole input as a unary body and as a
 * server-streaming request. What is read must lie inside the input; what is encoded
 * must read back the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/e2b.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char msg[256];
    size_t off = 0;
    struct connect_frame f;
    int got;
    while ((got = connect_frame_next(buf, size, &off, &f, msg, sizeof(msg))) == 1) {
        check(f.data >= buf && f.data + f.len <= buf + size && off <= size);
        check(f.len <= E2B_MESSAGE_MAX && !(f.flags & CONNECT_FLAG_COMPRESSED));
        json_t *j = connect_request_message(f.data, f.len, 0, msg, sizeof(msg));
        check(!j || json_is_object(j));
        json_decref(j);
        size_t n = 0;
        char *again = connect_frame_encode(f.flags, f.data, f.len, &n);
        check(again && n == f.len + 5);
        size_t o2 = 0;
        struct connect_frame g;
        check(connect_frame_next(again, n, &o2, &g, msg, sizeof(msg)) == 1 && g.len == f.len &&
              memcmp(g.data, f.data, f.len) == 0 && o2 == n);
        free(again);
    }
    check(got == 0 || got == -1);
    for (int enveloped = 0; enveloped < 2; enveloped++) {
        json_t *j = connect_request_message(buf, size, enveloped, msg, sizeof(msg));
        check(!j || json_is_object(j));
        json_decref(j);
    }
    return 0;
}
