/* Opens a layer blob for the layer merge: libarchive over our own read callback, tar
 * formats only, gzip/zstd/xz/bzip2 decoded in-process (never by an external program),
 * and no skip callback, so libarchive reads through skipped data and a member claiming
 * more bytes than the blob holds shows up as truncation instead of a silent seek. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/unpack_int.h"
#include "util/dl_archive.h"

#define READER_BUF (256 * 1024)

static la_ssize_t reader__read(struct archive *a, void *user, const void **out)
{
    struct unpack_reader *r = user;
    for (;;) {
        ssize_t n = read(r->fd, r->buf, READER_BUF);
        if (n >= 0) {
            *out = r->buf;
            return n;
        }
        if (errno != EINTR) {
            sym_archive_set_error(a, errno, "read: %s", strerror(errno));
            return -1;
        }
    }
}

/* Adds one decoder; a decoder libarchive could only run as an external program is refused. */
static int reader__filter(struct archive *a, int (*support)(struct archive *), int required)
{
    int rc = support(a);
    if (rc == ARCHIVE_OK)
        return 0;
    return required ? -1 : 0;
}

int unpack_reader_open(struct unpack_reader *r, const char *path, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->fd = -1;
    if (dl_archive_load(err, errlen) < 0)
        return -1;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        snprintf(err, errlen, "cannot open layer blob %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "layer blob %s is not a regular file", path);
        goto fail;
    }
    r->blob_size = (uint64_t)st.st_size;
    r->buf = malloc(READER_BUF);
    r->a = sym_archive_read_new();
    if (!r->buf || !r->a) {
        snprintf(err, errlen, "out of memory opening layer %s", path);
        goto fail;
    }
    /* gzip and zstd are what OCI layers use: without an in-process decoder we refuse
     * rather than let libarchive spawn a program. xz and bzip2 only when built in. */
    if (reader__filter(r->a, sym_archive_read_support_filter_gzip, 1) < 0 ||
        reader__filter(r->a, sym_archive_read_support_filter_zstd, 1) < 0) {
        snprintf(err, errlen, "libarchive lacks built-in gzip/zstd support");
        goto fail;
    }
    reader__filter(r->a, sym_archive_read_support_filter_xz, 0);
    reader__filter(r->a, sym_archive_read_support_filter_bzip2, 0);
    sym_archive_read_support_format_tar(r->a);
    if (sym_archive_read_open(r->a, r, NULL, reader__read, NULL) != ARCHIVE_OK) {
        snprintf(err, errlen, "corrupt or truncated layer, or not a tar: %s", sym_archive_error_string(r->a));
        goto fail;
    }
    r->compressed = sym_archive_filter_count(r->a) > 1;
    return 0;
fail:
    unpack_reader_close(r);
    return -1;
}

void unpack_reader_close(struct unpack_reader *r)
{
    if (r->a)
        sym_archive_read_free(r->a);
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    r->a = NULL;
    r->buf = NULL;
    r->fd = -1;
}

const char *unpack_entry_path(struct archive_entry *e)
{
    const char *p = sym_archive_entry_pathname_utf8(e);
    return p ? p : sym_archive_entry_pathname(e);
}

const char *unpack_entry_hardlink(struct archive_entry *e)
{
    const char *p = sym_archive_entry_hardlink_utf8(e);
    return p ? p : sym_archive_entry_hardlink(e);
}

const char *unpack_entry_symlink(struct archive_entry *e)
{
    const char *p = sym_archive_entry_symlink_utf8(e);
    return p ? p : sym_archive_entry_symlink(e);
}
