/* Fuzz target: what `cocoon import` reads from an archive before trusting it
 * (src/lib/bundle.c). The first byte picks the parser: even, manifest.json
 * (bundle_manifest_parse; a manifest that parses must be within the bounds and read
 * back to itself from the writer's text); odd, the sparse disk stream
 * (bundle_disk_feed in pieces of the second byte's size; every write must lie inside
 * the declared disk, in increasing order). A crash, a leak, a write outside the disk or a
 * sanitizer report is a bug; any refusal is fine. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink_state {
    const struct bundle_disk_reader *r;
    uint64_t last_end;
};

static int sink(void *arg, uint64_t off, const void *data, size_t len, char *err, size_t errcap)
{
    struct sink_state *s = arg;
    (void)data;
    (void)err;
    (void)errcap;
    if (len == 0 || off < s->last_end || off > s->r->virtual_size || len > s->r->virtual_size - off)
        abort();
    s->last_end = off + len;
    return 0;
}

static void manifest(const uint8_t *data, size_t size)
{
    struct bundle_manifest m, again;
    char err[512];
    if (bundle_manifest_parse((const char *)data, size, &m, err, sizeof(err)) < 0)
        return;
    if (m.version != BUNDLE_VERSION || m.virtual_size == 0 || m.virtual_size > BUNDLE_VSIZE_MAX ||
        m.files[BUNDLE_CONFIG].size > BUNDLE_MANIFEST_MAX || strlen(m.files[0].sha256) != 64)
        abort();
    char *text = bundle_manifest_json(&m);
    if (!text)
        return;
    if (bundle_manifest_parse(text, strlen(text), &again, err, sizeof(err)) < 0 || memcmp(&m, &again, sizeof(m)))
        abort(); /* what we write, we read */
    free(text);
}

static void disk_stream(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    size_t piece = data[0] ? data[0] : 1;
    data++;
    size--;
    struct bundle_disk_reader r;
    struct sink_state s = {.r = &r};
    bundle_disk_reader_init(&r, sink, &s);
    char err[512];
    for (size_t at = 0; at < size; at += piece)
        if (bundle_disk_feed(&r, data + at, size - at < piece ? size - at : piece, err, sizeof(err)) < 0)
            return;
    bundle_disk_finish(&r, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0)
        manifest(data + 1, size - 1);
    else
        disk_stream(data + 1, size - 1);
    return 0;
}
