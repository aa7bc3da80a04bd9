/* Fuzz target: the input is a qcow2 image file. It is opened read-only and read at
 * a few places, checked, merged into a new image (qcow2_merge, when small enough), then
 * opened writable and written to, so hostile headers, L1/L2 tables and refcount
 * structures meet the mapping, the merge and the allocator.
 * Any error is fine; a crash, a sanitizer report or a wild access is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "support/fuzzfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(struct qcow2 *q, int writable)
{
    static uint8_t buf[3 * 65536 + 1000];
    char err[256];
    uint64_t vs = qcow2_virtual_size(q);
    uint64_t at[4] = {0, vs / 2, vs > 70000 ? vs - 70000 : 0, 512 * 7 + 3};
    for (int i = 0; i < 4; i++) {
        uint64_t off = at[i] < vs ? at[i] : 0;
        size_t n = vs - off < sizeof(buf) ? (size_t)(vs - off) : sizeof(buf);
        if (qcow2_read(q, off, buf, n, err, sizeof(err)) < 0)
            continue;
        if (writable) {
            memset(buf, 0x5a, 1000);
            qcow2_write(q, off, buf, n < 1000 ? n : 1000, err, sizeof(err));
            if (i == 1)
                qcow2_discard(q, off, n, err, sizeof(err));
        }
    }
    struct qcow2_check_result r;
    qcow2_check(q, &r, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[256];
    int fd = fuzz_input_file("fuzz-qcow2", data, size, path, sizeof(path));
    if (fd < 0)
        return 0;
    for (int writable = 0; writable <= 1; writable++) {
        struct qcow2 *q = qcow2_open(path, writable, err, sizeof(err));
        if (!q)
            continue;
        exercise(q, writable);
        /* the merge walks every cluster: only images of at most 4096 clusters */
        if (!writable && qcow2_virtual_size(q) / qcow2_cluster_size(q) <= 4096) {
            char out[256];
            struct qcow2_merge_result res;
            const char *tmp = getenv("TMPDIR");
            snprintf(out, sizeof(out), "%s/cocoon-fuzz-merge-%d.qcow2", tmp && *tmp ? tmp : "/tmp", (int)getpid());
            unlink(out);
            qcow2_merge(q, 0, out, &res, err, sizeof(err));
            unlink(out);
        }
        qcow2_close(q, err, sizeof(err));
    }
    close(fd);
    return 0;
}
