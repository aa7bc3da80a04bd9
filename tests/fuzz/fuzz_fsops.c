/* Fuzz target: the host's reader of a guest's answer to a FILE_OP (src/lib/fsops_reply.c).
 * The first byte picks what was asked (remove, stat, list) and the chunk size the bytes
 * arrive in; the rest is the guest's STDOUT. Whatever it holds, the reader must stay in
 * its bounds, and what it accepts must hold to the protocol's rules. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_decoders.h"
#include "lib/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int expect = data[0] % 3;
    size_t chunk = 1 + (data[0] >> 2) * 97;
    data++;
    size--;
    struct lib_fsop_reply r;
    fuzz_check(lib_fsop_reply_init(&r, expect) == 0);
    int ok = 1;
    for (size_t off = 0; ok && off < size; off += chunk)
        ok = lib_fsop_reply_feed(&r, data + off, size - off < chunk ? size - off : chunk) == 0;
    if (ok)
        ok = lib_fsop_reply_finish(&r) == 0;
    fuzz_check(ok || r.why[0]);
    fuzz_check(r.count <= PROTO_FSOP_MAX_ENTRIES && r.len <= PROTO_MAX_FRAME && r.total <= PROTO_FSOP_MAX_BYTES);
    fuzz_check(memchr(r.error_msg, 0, sizeof(r.error_msg)) != NULL);
    if (expect == FSOP_EXPECT_NONE)
        fuzz_check(r.count == 0);
    if (expect == FSOP_EXPECT_ONE)
        fuzz_check(r.count <= 1);
    for (size_t i = 0; i < r.count; i++) {
        const cocoon_file_info *e = &r.entries[i];
        size_t n = strnlen(e->name, sizeof(e->name));
        fuzz_check(n < sizeof(e->name) && strnlen(e->link_target, sizeof(e->link_target)) < sizeof(e->link_target));
        fuzz_check(!memchr(e->name, '/', n) && strcmp(e->name, ".") && strcmp(e->name, ".."));
        fuzz_check((expect == FSOP_EXPECT_LIST) == (n > 0));
        fuzz_check(e->type >= COCOON_FILE_REGULAR && e->type <= COCOON_FILE_OTHER && e->mode <= 07777);
        fuzz_check(e->mtime_nsec >= 0 && e->mtime_nsec < 1000000000);
        fuzz_check(!e->link_target[0] || e->type == COCOON_FILE_SYMLINK);
        if (ok && i > 0)
            fuzz_check(strcmp(r.entries[i - 1].name, e->name) < 0); /* sorted, each name once */
    }
    lib_fsop_reply_free(&r);
    if (size > PROTO_HEADER_SIZE) /* the payload of its first frame through every decoder */
        fuzz_decode_all(data + PROTO_HEADER_SIZE, size - PROTO_HEADER_SIZE);
    return 0;
}
