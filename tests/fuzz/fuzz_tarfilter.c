/* Fuzz target: the filters of the archive streams (src/lib/tarfilter_in.c: a client's
 * archive into a box, read by libarchive; tarfilter_out.c: a guest's archive out to a
 * client, read by tar_reader). The first input byte picks the filter (even: in, odd:
 * out), the rest is the archive. Refusals are fine; a crash, a sanitizer report, a
 * refusal without a message, or an output that breaks the rules is not: the output
 * must read back cleanly with the strict reader, every name relative without "..",
 * every symlink inside the tree, every hard link to a file sent before it, no entry
 * under a symlink, no more file bytes than the bound; out of a box also every name
 * under the caller's top and no setuid, setgid or sticky bit. */
#include <archive.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/internal.h"
#include "lib/tar_policy.h"
#include "lib/tar_reader.h"
#include "support/fuzzfile.h"
#include "lib/tarfilter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BYTES (64u << 10)
#define OUT_MAX (8u << 20)
#define SEEN_MAX 2048

struct out {
    uint8_t *buf;
    size_t len;
};

static la_ssize_t out_write(struct archive *a, void *arg, const void *p, size_t n)
{
    struct out *o = arg;
    if (n > OUT_MAX - o->len)
        return -1;
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return (la_ssize_t)n;
}

/* The names the output held, with their latest kinds (a small input makes few). */
static struct {
    char name[TAR_NAME_MAX + 1];
    enum tar_type type;
} seen[SEEN_MAX];
static size_t nseen;

static int seen_as(const char *name, size_t len, enum tar_type type)
{
    for (size_t i = 0; i < nseen; i++)
        if (strlen(seen[i].name) == len && !memcmp(seen[i].name, name, len) && seen[i].type == type)
            return 1;
    return 0;
}

/* Reads the filter's output back and checks every rule; out: the top name (NULL for in). */
static void check_output(const struct out *o, const char *top)
{
    struct fuzz_pieces m = {o->buf, o->len, 0};
    struct tar_reader r;
    static struct tar_entry e;
    static char clean[TAR_NAME_MAX + 1];
    if (tar_reader_init(&r, fuzz_pieces_read, &m) < 0)
        return;
    nseen = 0;
    uint64_t bytes = 0;
    int n;
    while ((n = tar_next(&r, &e)) == 1) {
        size_t ncomp;
        if (tar_name_clean(e.path, clean, sizeof(clean), &ncomp) != TAR_NAME_OK || ncomp == 0)
            abort();
        if (top && (strncmp(clean, top, strlen(top)) || (clean[strlen(top)] && clean[strlen(top)] != '/')))
            abort(); /* out of a box: everything under the caller's name */
        if (top && (e.mode & 07000))
            abort();
        for (const char *s = strchr(clean, '/'); s; s = strchr(s + 1, '/'))
            if (seen_as(clean, (size_t)(s - clean), TAR_SYMLINK))
                abort(); /* under a symlink of the archive */
        if (e.type == TAR_SYMLINK && !tar_link_stays_inside(e.link, (long)ncomp - (top ? 2 : 1)))
            abort();
        if (e.type == TAR_HARDLINK) {
            static char target[TAR_NAME_MAX + 1];
            size_t tn;
            if (tar_name_clean(e.link, target, sizeof(target), &tn) != TAR_NAME_OK ||
                !seen_as(target, strlen(target), TAR_FILE))
                abort();
        }
        if (e.type == TAR_FILE)
            bytes += e.size;
        size_t i = 0; /* a name sent again (into a box, a later entry replaces an earlier one) */
        while (i < nseen && strcmp(seen[i].name, clean))
            i++;
        if (i < SEEN_MAX) {
            memcpy(seen[i].name, clean, strlen(clean) + 1);
            seen[i].type = e.type == TAR_HARDLINK ? TAR_FILE : e.type;
            nseen += i == nseen;
        }
    }
    if (n < 0 || bytes > MAX_BYTES)
        abort(); /* a complete, well-formed archive within the bound */
    tar_reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int out_of_box = data[0] & 1;
    struct fuzz_pieces m = {data + 1, size - 1, 0};
    struct out o = {malloc(OUT_MAX), 0};
    struct archive *w = archive_write_new();
    if (!o.buf || !w || archive_write_set_format_pax(w) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(w, 512) != ARCHIVE_OK ||
        archive_write_open(w, &o, NULL, out_write, NULL) != ARCHIVE_OK) {
        if (w)
            archive_write_free(w);
        free(o.buf);
        return 0;
    }
    struct tarfilter_limits lim = {MAX_BYTES, 2000, "B", "E"};
    char warnings[1024];
    cocoon_error err = {0};
    int rc;
    if (out_of_box) {
        struct tar_reader r;
        if (tar_reader_init(&r, fuzz_pieces_read, &m) < 0) {
            lib_tar_writer_free(w);
            free(o.buf);
            return 0;
        }
        rc = tarfilter_out(&r, (data[0] & 2) ? NULL : "x", "top", w, &lim, warnings, sizeof(warnings), NULL, &err);
        tar_reader_free(&r);
    } else {
        rc = tarfilter_in(fuzz_pieces_read, &m, w, &lim, warnings, sizeof(warnings), NULL, &err);
    }
    if (rc == TARFILTER_REFUSED && (err.code == COCOON_OK || !err.message[0]))
        abort(); /* a refusal says why */
    if (rc == TARFILTER_OK) {
        if (archive_write_close(w) != ARCHIVE_OK)
            abort();
        check_output(&o, out_of_box ? "top" : NULL);
    }
    lib_tar_writer_free(w);
    free(o.buf);
    return 0;
}
