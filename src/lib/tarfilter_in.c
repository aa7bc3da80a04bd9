/* A caller's archive on its way into a box (tarfilter.h). libarchive reads it (tar
 * formats only, nothing decompressed, no skip callback: nothing is seeked over, and a
 * size that lies shows up as truncation); each entry is held to tar_policy.h's rules and
 * written again with only what the agent needs: a clean name, the type, permission
 * bits, mtime, size and data (a sparse file's map kept), a link target. What the caller
 * sends is untrusted (a network client): the bytes one entry's headers may take are
 * bounded before libarchive has to hold them, and every message escapes the names. */
#include "lib/tarfilter.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/internal.h"
#include "lib/tar_policy.h"
#include "util/util.h"
#include "util/dl_archive.h"

#define IN_CHUNK (64u * 1024u)
#define SHOW_MAX 240 /* bytes of a name in a message */

struct in {
    tar_read_fn read;
    void *arg;
    uint8_t *buf; /* IN_CHUNK */
    uint64_t total, header_start;
    int in_header, source_failed, header_too_big;
    int data_read;    /* the current entry's data was read to its end */
    uint8_t magic[6]; /* the input's first bytes: to name a compressed archive */
    size_t nmagic;
    const struct tarfilter_limits *lim;
    struct archive *r, *w;
    struct archive_entry *out;
    struct tar_book book;
    struct tarfilter_stats st;
    char *warnings;
    size_t wcap;
    cocoon_error *err;
    char name[TAR_NAME_MAX + 1], target[TAR_NAME_MAX + 1];
};

static const char *show(char *buf, const char *s) { return util_escape_text(buf, SHOW_MAX, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static int refuse(struct in *f, const char *fmt, ...)
{
    char msg[COCOON_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lib_err(f->err, COCOON_E_INVALID, "%s", msg);
    return TARFILTER_REFUSED;
}

/* ---- input ---- */

static la_ssize_t in_read(struct archive *a, void *arg, const void **out)
{
    struct in *f = arg;
    if (f->in_header && f->total - f->header_start > TARFILTER_HEADER_MAX) {
        f->header_too_big = 1;
        sym_archive_set_error(a, EFBIG, "headers too large");
        return -1;
    }
    long n = f->read(f->arg, f->buf, IN_CHUNK);
    if (n < 0 || (size_t)n > IN_CHUNK) {
        f->source_failed = 1;
        sym_archive_set_error(a, EIO, "reading the archive failed");
        return -1;
    }
    for (long i = 0; i < n && f->nmagic < sizeof(f->magic); i++)
        f->magic[f->nmagic++] = f->buf[i];
    f->total += (uint64_t)n;
    *out = f->buf;
    return n;
}

/* Why the first header could not be read: a compressed archive is named as such. */
static int not_a_tar(struct in *f)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *what;
    } kinds[] = {{"\x1f\x8b", 2, "gzip"},
                 {"BZh", 3, "bzip2"},
                 {"\xfd"
                  "7zXZ",
                  5, "xz"},
                 {"\x28\xb5\x2f\xfd", 4, "zstd"},
                 {"PK\x03\x04", 4, "a zip archive, not a tar"}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(*kinds); i++)
        if (f->nmagic >= kinds[i].len && !memcmp(f->magic, kinds[i].magic, kinds[i].len))
            return refuse(f, "the archive is %s%s: send a plain (uncompressed) tar archive", kinds[i].what,
                          i < 4 ? "-compressed" : "");
    if (f->total == 0)
        return refuse(f, "the archive is empty (no bytes): send a tar archive");
    return refuse(f, "not a tar archive: %s", sym_archive_error_string(f->r));
}

/* After the end-of-archive block: block padding (or anything) up to a bound is read
 * and dropped, so a writer on the other end of a pipe is not cut off. */
static int drain(struct in *f)
{
    uint64_t extra = 0;
    for (;;) {
        long n = f->read(f->arg, f->buf, IN_CHUNK);
        if (n == 0)
            return TARFILTER_OK;
        if (n < 0 || (size_t)n > IN_CHUNK)
            return TARFILTER_SOURCE_FAILED;
        if ((extra += (uint64_t)n) > TARFILTER_TRAILER_MAX)
            return refuse(f, "more than %u bytes follow the end of the archive", TARFILTER_TRAILER_MAX);
    }
}

/* ---- output ---- */

/* Starts f->out as a fresh entry named f->name (a link to symlink or hardlink when not
 * NULL) with e's permission bits and mtime. */
static void out_entry(struct in *f, struct archive_entry *e, mode_t type, const char *symlink, const char *hardlink)
{
    sym_archive_entry_clear(f->out);
    lib_tar_entry_names(f->out, f->name, symlink, hardlink);
    sym_archive_entry_set_filetype(f->out, type);
    sym_archive_entry_set_perm(f->out, sym_archive_entry_perm(e) & 07777);
    if (sym_archive_entry_mtime_is_set(e))
        sym_archive_entry_set_mtime(f->out, sym_archive_entry_mtime(e), sym_archive_entry_mtime_nsec(e));
    else
        sym_archive_entry_set_mtime(f->out, time(NULL), 0);
}

static int write_header(struct in *f)
{
    return sym_archive_write_header(f->w, f->out) < ARCHIVE_WARN ? TARFILTER_SINK_FAILED : TARFILTER_OK;
}

static int write_end(struct in *f)
{
    return sym_archive_write_finish_entry(f->w) < ARCHIVE_WARN ? TARFILTER_SINK_FAILED : TARFILTER_OK;
}

/* The sparse map of e onto f->out: checked (in order, no overlap, inside the file),
 * at most TARFILTER_SEGMENTS_MAX - 1 regions (the last one then reaches to the end of
 * the file's data: the holes inside it cross as zeros), as the writer may add an empty
 * one at the end. A file without any data keeps one
 * empty region at its end, so it stays a sparse entry. */
static int copy_sparse_map(struct in *f, struct archive_entry *e, int64_t size)
{
    char b[SHOW_MAX];
    if (sym_archive_entry_sparse_reset(e) <= 0)
        return TARFILTER_OK;
    la_int64_t off, len, end = 0, p_off = 0, p_end = 0;
    unsigned added = 0;
    int pending = 0;
    while (sym_archive_entry_sparse_next(e, &off, &len) == ARCHIVE_OK) {
        if (off < end || len < 0 || off > size || len > size - off)
            return refuse(f, "the sparse map of \"%s\" is malformed (regions out of order or beyond its size)",
                          show(b, f->name));
        end = off + len;
        if (len == 0)
            continue;
        if (pending && added < TARFILTER_SEGMENTS_MAX - 2) { /* room for the last one and the end marker */
            sym_archive_entry_sparse_add_entry(f->out, p_off, p_end - p_off);
            added++;
            pending = 0;
        }
        if (!pending)
            p_off = off;
        p_end = end;
        pending = 1;
    }
    if (pending)
        sym_archive_entry_sparse_add_entry(f->out, p_off, p_end - p_off);
    else
        sym_archive_entry_sparse_add_entry(f->out, size, 0);
    return TARFILTER_OK;
}

/* ---- entries ---- */

static int put_file(struct in *f, struct archive_entry *e)
{
    char b[SHOW_MAX];
    int64_t size = sym_archive_entry_size_is_set(e) ? sym_archive_entry_size(e) : 0;
    if (size < 0)
        return refuse(f, "\"%s\" has a negative size", show(b, f->name));
    if ((uint64_t)size > f->lim->max_bytes - f->st.bytes)
        return refuse(f, "\"%s\" (%lld bytes) takes the archive above %llu bytes, the limit (raise it with %s)",
                      show(b, f->name), (long long)size, (unsigned long long)f->lim->max_bytes, f->lim->bytes_knob);
    f->st.bytes += (uint64_t)size;
    out_entry(f, e, AE_IFREG, NULL, NULL);
    sym_archive_entry_set_size(f->out, size);
    int rc = copy_sparse_map(f, e, size);
    if (rc == TARFILTER_OK)
        rc = write_header(f);
    if (rc != TARFILTER_OK)
        return rc;
    switch (lib_tar_copy_data(f->r, f->w, size)) {
    case LIB_DATA_SENT: f->data_read = 1; break;
    case LIB_DATA_SEND_FAILED: return TARFILTER_SINK_FAILED;
    case LIB_DATA_OUT_OF_PLACE: return refuse(f, "the data of \"%s\" lies outside its sparse map", show(b, f->name));
    default:
        if (f->source_failed)
            return TARFILTER_SOURCE_FAILED;
        return refuse(f, "\"%s\": the archive is damaged or truncated (%s)", show(b, f->name),
                      sym_archive_error_string(f->r));
    }
    if (tar_book_put(&f->book, f->name, strlen(f->name), TAR_KIND_FILE) < 0)
        return refuse(f, "out of memory");
    return write_end(f);
}

/* A hard link may only name a file that came earlier in this archive. */
static int put_hardlink(struct in *f, struct archive_entry *e, const char *raw_target)
{
    char b1[SHOW_MAX], b2[SHOW_MAX];
    size_t tn;
    enum tar_name_verdict v = tar_name_clean(raw_target, f->target, sizeof(f->target), &tn);
    if (v != TAR_NAME_OK || tn == 0 || tar_book_get(&f->book, f->target, strlen(f->target)) != TAR_KIND_FILE)
        return refuse(f, "the hard link \"%s\" points to \"%s\", which is not a file earlier in the archive",
                      show(b1, f->name), show(b2, raw_target));
    int64_t data =
        sym_archive_entry_size_is_set(e) ? sym_archive_entry_size(e) : 0; /* pax allows data on a hard link */
    if (data < 0 || (uint64_t)data > f->lim->max_bytes - f->st.bytes)
        return refuse(f, "the hard link \"%s\" carries %lld bytes of data, above the limit of %llu (raise it with %s)",
                      show(b1, f->name), (long long)data, (unsigned long long)f->lim->max_bytes, f->lim->bytes_knob);
    f->st.bytes += (uint64_t)data;
    out_entry(f, e, AE_IFREG, NULL, f->target);
    sym_archive_entry_set_size(f->out, 0);
    int rc = write_header(f);
    if (rc == TARFILTER_OK) {
        f->data_read = sym_archive_read_data_skip(f->r) == ARCHIVE_OK;
        if (!f->data_read)
            rc = f->source_failed ? TARFILTER_SOURCE_FAILED
                                  : refuse(f, "\"%s\": the archive is damaged or truncated (%s)", show(b1, f->name),
                                           sym_archive_error_string(f->r));
    }
    if (rc == TARFILTER_OK && tar_book_put(&f->book, f->name, strlen(f->name), TAR_KIND_FILE) < 0)
        rc = refuse(f, "out of memory");
    return rc == TARFILTER_OK ? write_end(f) : rc;
}

static int put_symlink(struct in *f, struct archive_entry *e, size_t ncomp)
{
    char b1[SHOW_MAX], b2[SHOW_MAX];
    const char *target = sym_archive_entry_symlink(e);
    if (!target || !target[0] || strlen(target) > TAR_NAME_MAX)
        return refuse(f, "the symlink \"%s\" has no target or one longer than %u bytes", show(b1, f->name),
                      TAR_NAME_MAX);
    /* recorded even when skipped: nothing may arrive through its name */
    if (tar_book_put(&f->book, f->name, strlen(f->name), TAR_KIND_SYMLINK) < 0)
        return refuse(f, "out of memory");
    if (!tar_link_stays_inside(target, (long)ncomp - 1)) {
        lib_warning(f->warnings, f->wcap, "%s: symlink to \"%s\" skipped: it points outside the destination",
                    show(b1, f->name), show(b2, target));
        return TARFILTER_OK;
    }
    out_entry(f, e, AE_IFLNK, target, NULL);
    int rc = write_header(f);
    return rc == TARFILTER_OK ? write_end(f) : rc;
}

static int put_dir(struct in *f, struct archive_entry *e)
{
    char b[SHOW_MAX];
    int64_t data = sym_archive_entry_size_is_set(e) ? sym_archive_entry_size(e) : 0; /* GNU tar's dumpdir lists */
    if (data < 0 || (uint64_t)data > f->lim->max_bytes - f->st.bytes)
        return refuse(f, "the directory \"%s\" carries %lld bytes of data, above the limit of %llu (raise it with %s)",
                      show(b, f->name), (long long)data, (unsigned long long)f->lim->max_bytes, f->lim->bytes_knob);
    f->st.bytes += (uint64_t)data; /* read through (not kept) before the next header */
    /* it replaces a symlink or file of the same name that came before */
    if (tar_book_get(&f->book, f->name, strlen(f->name)) != TAR_KIND_NONE &&
        tar_book_put(&f->book, f->name, strlen(f->name), TAR_KIND_DIR) < 0)
        return refuse(f, "out of memory");
    out_entry(f, e, AE_IFDIR, NULL, NULL);
    int rc = write_header(f);
    return rc == TARFILTER_OK ? write_end(f) : rc;
}

/* The first component of f->name that a symlink of this archive stands for, if any. */
static const char *through_symlink(struct in *f)
{
    for (const char *s = strchr(f->name, '/'); s; s = strchr(s + 1, '/'))
        if (tar_book_get(&f->book, f->name, (size_t)(s - f->name)) == TAR_KIND_SYMLINK) {
            snprintf(f->target, sizeof(f->target), "%.*s", (int)(s - f->name), f->name);
            return f->target;
        }
    return NULL;
}

static int put_entry(struct in *f, struct archive_entry *e)
{
    char b1[SHOW_MAX], b2[SHOW_MAX];
    if (++f->st.entries > f->lim->max_entries)
        return refuse(f, "more than %llu entries, the limit (raise it with %s)",
                      (unsigned long long)f->lim->max_entries, f->lim->entries_knob);
    const char *raw = sym_archive_entry_pathname(e);
    if (!raw)
        return refuse(f, "an entry of the archive has no name");
    size_t ncomp;
    enum tar_name_verdict v = tar_name_clean(raw, f->name, sizeof(f->name), &ncomp);
    if (v != TAR_NAME_OK)
        return refuse(f, "the archive holds the name \"%s\", which %s: names must lie inside the destination",
                      show(b1, raw), tar_name_problem(v));
    mode_t type = sym_archive_entry_filetype(e);
    const char *hardlink = sym_archive_entry_hardlink(e);
    if (ncomp == 0) {
        if (type == AE_IFDIR && !hardlink)
            return TARFILTER_OK; /* "./": the destination itself, which exists */
        return refuse(f, "the entry \"%s\" names the destination directory itself", show(b1, raw));
    }
    const char *link = through_symlink(f);
    if (link)
        return refuse(f, "\"%s\" lies under \"%s\", a symlink of the archive: nothing is written through a symlink",
                      show(b1, f->name), show(b2, link));
    if (hardlink)
        return put_hardlink(f, e, hardlink);
    switch (type) {
    case AE_IFREG: return put_file(f, e);
    case AE_IFDIR: return put_dir(f, e);
    case AE_IFLNK: return put_symlink(f, e, ncomp);
    default:
        lib_warning(f->warnings, f->wcap, "%s: device, FIFO or socket skipped", show(b1, f->name));
        return TARFILTER_OK;
    }
}

/* A warning libarchive gives for a name it cannot convert to the locale's charset: the
 * name's bytes are kept as they are, which is what the guest gets. */
static int charset_warning(struct in *f)
{
    return strstr(sym_archive_error_string(f->r) ?: "", "can't be converted") != NULL;
}

static int next_header(struct in *f, struct archive_entry *e)
{
    /* what is left of the previous entry's data (counted in the bound when it was
     * seen) is read through first, so that what the header takes is measured alone */
    if (f->st.entries && !f->data_read && sym_archive_read_data_skip(f->r) != ARCHIVE_OK)
        return f->source_failed ? TARFILTER_SOURCE_FAILED
                                : refuse(f, "the archive is damaged or truncated: %s", sym_archive_error_string(f->r));
    int64_t before = sym_archive_filter_bytes(f->r, 0);
    f->header_start = f->total;
    f->in_header = 1;
    int r = sym_archive_read_next_header2(f->r, e);
    f->in_header = f->data_read = 0;
    if (r == ARCHIVE_EOF) {
        if (sym_archive_filter_bytes(f->r, 0) == before) /* no end-of-archive block was read */
            return f->st.entries == 0 && f->total == 0
                       ? not_a_tar(f)
                       : refuse(f, "the archive ends without its end-of-archive block (truncated?)");
        return 0;
    }
    if (r == ARCHIVE_OK || (r == ARCHIVE_WARN && charset_warning(f)))
        return 1;
    if (f->source_failed)
        return TARFILTER_SOURCE_FAILED;
    if (f->header_too_big)
        return refuse(f, "an entry's headers (pax, long names, sparse map) take more than %u bytes",
                      TARFILTER_HEADER_MAX);
    if (f->st.entries == 0 && before == 0)
        return not_a_tar(f);
    return refuse(f, "the archive is damaged after %llu entries: %s", (unsigned long long)f->st.entries,
                  sym_archive_error_string(f->r));
}

static int filter(tar_read_fn read, void *arg, struct archive *w, const struct tarfilter_limits *lim, char *warnings,
                  size_t wcap, struct tarfilter_stats *stats, cocoon_error *err)
{
    struct in f = {.read = read, .arg = arg, .lim = lim, .w = w, .warnings = warnings, .wcap = wcap, .err = err};
    if (wcap)
        warnings[0] = 0;
    if (lib_archive_ready(err) < 0) /* w may come from a program's own libarchive */
        return TARFILTER_REFUSED;
    int rc = TARFILTER_REFUSED;
    struct archive_entry *e = sym_archive_entry_new();
    f.buf = malloc(IN_CHUNK);
    f.out = sym_archive_entry_new();
    f.r = sym_archive_read_new();
    if (!e || !f.buf || !f.out || !f.r) {
        refuse(&f, "out of memory");
        goto out;
    }
    if (tar_book_init(&f.book) < 0) {
        refuse(&f, "no random bytes for the archive's name table: %s", strerror(errno));
        goto out;
    }
    sym_archive_read_support_format_tar(f.r);
    if (sym_archive_read_open(f.r, &f, NULL, in_read, NULL) != ARCHIVE_OK) {
        rc = f.source_failed ? TARFILTER_SOURCE_FAILED : not_a_tar(&f);
        goto out;
    }
    int n;
    while ((n = next_header(&f, e)) == 1)
        if ((rc = put_entry(&f, e)) != TARFILTER_OK)
            goto out;
    rc = n == 0 ? drain(&f) : n;
out:
    if (stats)
        *stats = f.st;
    if (f.r)
        sym_archive_read_free(f.r);
    if (f.out)
        sym_archive_entry_free(f.out);
    if (e)
        sym_archive_entry_free(e);
    tar_book_free(&f.book);
    free(f.buf);
    return rc;
}

int tarfilter_in(tar_read_fn read, void *arg, struct archive *w, const struct tarfilter_limits *lim, char *warnings,
                 size_t wcap, struct tarfilter_stats *stats, cocoon_error *err)
{
    locale_t utf8, old = lib_tar_locale_enter(&utf8);
    int rc = filter(read, arg, w, lim, warnings, wcap, stats, err);
    lib_tar_locale_leave(old, utf8);
    return rc;
}
