/* A guest's archive on its way out to a caller (tarfilter.h): the same rules as
 * cocoon_copy_from_box's extraction (extract.c), but the tree is not put on a disk: each
 * entry that passes is written again, renamed under the caller's name, by the caller's
 * writer. The guest is hostile: its stream is read by the strict tar_reader, names are
 * checked before anything of an entry is written, the tree must arrive depth-first with
 * each name once (so no entry can lie under a symlink), and a client that extracts the
 * result with any tar gets no setuid bit, no symlink out of the tree, no link to a file
 * outside it. */
#include "lib/tarfilter.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/internal.h"
#include "lib/tar_policy.h"
#include "util/util.h"
#include "util/dl_archive.h"

#define SHOW_MAX 240 /* bytes of a guest name in a message */

struct out {
    struct tar_reader *r;
    const char *top, *out_top;
    struct archive *w;
    struct archive_entry *out;
    const struct tarfilter_limits *lim;
    char *warnings;
    size_t wcap;
    cocoon_error *err;
    struct tar_book book;
    struct tarfilter_stats st;
    int have_top;
    enum tar_type top_type;
    char topname[NAME_MAX + 1]; /* the top name the guest used */
    size_t toplen;
    size_t stack[TAR_POLICY_MAX_DEPTH + 1]; /* lengths of the open directories' names, a prefix of cur each */
    size_t depth;
    char cur[TAR_NAME_MAX + 1]; /* the deepest open directory */
    char name[TAR_NAME_MAX + 1], target[TAR_NAME_MAX + 1];
    char shown[TAR_NAME_MAX + NAME_MAX + 2]; /* a name as the caller gets it */
};

static const char *show(char *buf, const char *s) { return util_escape_text(buf, SHOW_MAX, s, strlen(s)); }

__attribute__((format(printf, 3, 4))) static int refuse(struct out *o, int code, const char *fmt, ...)
{
    char msg[COCOON_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lib_err(o->err, code, "%s", msg);
    return TARFILTER_REFUSED;
}

/* A clean name (under the guest's top) as the caller gets it: out_top in place of top. */
static const char *renamed(struct out *o, const char *name)
{
    snprintf(o->shown, sizeof(o->shown), "%s%s", o->out_top, name + o->toplen);
    return o->shown;
}

static int reader_failed(struct out *o)
{
    if (o->r->source_failed)
        return TARFILTER_SOURCE_FAILED;
    return refuse(o, COCOON_E_PROTOCOL, "the guest sent a bad archive: %s", o->r->err);
}

/* ---- names ---- */

/* e's name, cleaned into o->name, with its number of components; the top rules. */
static int check_name(struct out *o, const struct tar_entry *e, size_t *ncomp)
{
    char b1[SHOW_MAX], b2[SHOW_MAX];
    enum tar_name_verdict v = tar_name_clean(e->path, o->name, sizeof(o->name), ncomp);
    if (v != TAR_NAME_OK)
        return refuse(o, COCOON_E_PROTOCOL, "the guest sent the name \"%s\", which %s", show(b1, e->path),
                      tar_name_problem(v));
    if (*ncomp == 0)
        return refuse(o, COCOON_E_PROTOCOL, "the guest sent the empty name \"%s\"", show(b1, e->path));
    size_t first = strcspn(o->name, "/");
    if (!o->have_top) {
        if (*ncomp != 1 || (o->top && strcmp(o->name, o->top) != 0))
            return refuse(o, COCOON_E_PROTOCOL, "the guest's archive does not start with \"%s\" itself",
                          show(b1, o->top ? o->top : o->out_top));
        if (first > NAME_MAX)
            return refuse(o, COCOON_E_PROTOCOL, "the guest sent a name longer than %u bytes", NAME_MAX);
        if (e->type == TAR_SPECIAL || e->type == TAR_HARDLINK)
            return refuse(o, COCOON_E_PROTOCOL, "the guest sent \"%s\" as a device, FIFO or hard link",
                          show(b1, o->name));
        o->toplen = first;
        memcpy(o->topname, o->name, first + 1);
        return TARFILTER_OK;
    }
    if (first != o->toplen || memcmp(o->name, o->topname, first) != 0)
        return refuse(o, COCOON_E_PROTOCOL, "the guest sent the name \"%s\", which is not inside \"%s\"",
                      show(b1, e->path), show(b2, o->topname));
    if (*ncomp == 1 || o->top_type != TAR_DIR)
        return refuse(o, COCOON_E_PROTOCOL, "the guest sent \"%s\" %s", show(b1, o->name),
                      *ncomp == 1 ? "twice" : "under its top, which is not a directory");
    if (tar_book_get(&o->book, o->name, strlen(o->name)) != TAR_KIND_NONE)
        return refuse(o, COCOON_E_PROTOCOL, "the guest sent \"%s\" twice", show(b2, o->name));
    return TARFILTER_OK;
}

/* The directory holding o->name must be open (the stream is depth-first): the ones the
 * stream left are closed. */
static int enter_parent(struct out *o)
{
    size_t plen = (size_t)(strrchr(o->name, '/') - o->name);
    while (o->depth > 0 && !(o->stack[o->depth - 1] == plen && memcmp(o->cur, o->name, plen) == 0))
        o->depth--;
    if (o->depth == 0) {
        char b[SHOW_MAX];
        return refuse(o, COCOON_E_PROTOCOL,
                      "the guest sent \"%s\" outside the directory it was sending (out of order, or its directory is "
                      "missing)",
                      show(b, o->name));
    }
    o->cur[plen] = 0;
    return TARFILTER_OK;
}

/* ---- output ---- */

static void out_entry(struct out *o, const struct tar_entry *e, mode_t type, unsigned perm, const char *symlink,
                      const char *hardlink)
{
    sym_archive_entry_clear(o->out);
    lib_tar_entry_names(o->out, renamed(o, o->name), symlink, hardlink);
    sym_archive_entry_set_filetype(o->out, type);
    sym_archive_entry_set_perm(o->out, perm);
    sym_archive_entry_set_mtime(o->out, e->mtime_sec, e->mtime_nsec);
}

static int write_entry(struct out *o)
{
    if (sym_archive_write_header(o->w, o->out) < ARCHIVE_WARN)
        return TARFILTER_SINK_FAILED;
    return TARFILTER_OK;
}

static int end_entry(struct out *o)
{
    return sym_archive_write_finish_entry(o->w) < ARCHIVE_WARN ? TARFILTER_SINK_FAILED : TARFILTER_OK;
}

static int record(struct out *o, enum tar_kind kind)
{
    if (tar_book_put(&o->book, o->name, strlen(o->name), kind) < 0)
        return refuse(o, COCOON_E_NOMEM, "out of memory");
    return TARFILTER_OK;
}

/* ---- entries ---- */

static int put_dir(struct out *o, const struct tar_entry *e)
{
    out_entry(o, e, AE_IFDIR, (e->mode & 0777) | 0700, NULL, NULL); /* the caller can always remove what arrived */
    int rc = write_entry(o);
    if (rc == TARFILTER_OK)
        rc = end_entry(o);
    if (rc == TARFILTER_OK)
        rc = record(o, TAR_KIND_DIR);
    size_t len = strlen(o->name);
    memcpy(o->cur, o->name, len + 1);
    o->stack[o->depth++] = len;
    return rc;
}

/* The data regions the reader found (a sparse file's map) onto o->out. */
static void sparse_map(struct out *o, const struct tar_entry *e)
{
    const struct tar_reader *r = o->r;
    if (e->size == 0 || (r->nseg == 1 && r->seg[0].off == 0 && r->seg[0].len == e->size))
        return; /* dense */
    int any = 0;
    for (size_t i = 0; i < r->nseg; i++)
        if (r->seg[i].len) {
            sym_archive_entry_sparse_add_entry(o->out, (la_int64_t)r->seg[i].off, (la_int64_t)r->seg[i].len);
            any = 1;
        }
    if (!any)
        sym_archive_entry_sparse_add_entry(o->out, (la_int64_t)e->size, 0);
}

static int put_file(struct out *o, const struct tar_entry *e)
{
    char b[SHOW_MAX];
    if (e->size > o->lim->max_bytes - o->st.bytes)
        return refuse(o, COCOON_E_INVALID,
                      "\"%s\" (%llu bytes) takes the copy above %llu bytes, the limit (raise it with %s)",
                      show(b, renamed(o, o->name)), (unsigned long long)e->size, (unsigned long long)o->lim->max_bytes,
                      o->lim->bytes_knob);
    o->st.bytes += e->size;
    out_entry(o, e, AE_IFREG, e->mode & 0777, NULL, NULL);
    sym_archive_entry_set_size(o->out, (la_int64_t)e->size);
    sparse_map(o, e);
    int rc = write_entry(o);
    if (rc != TARFILTER_OK)
        return rc;
    const void *data;
    size_t len;
    uint64_t off, done = 0;
    int d;
    while ((d = tar_data(o->r, &data, &len, &off)) == 1) { /* the reader keeps pieces in order, inside e->size */
        if ((off > done && lib_tar_write_zeros(o->w, off - done) < 0) || sym_archive_write_data(o->w, data, len) < 0)
            return TARFILTER_SINK_FAILED;
        done = off + len;
    }
    if (d < 0)
        return reader_failed(o);
    if (done < e->size && lib_tar_write_zeros(o->w, e->size - done) < 0)
        return TARFILTER_SINK_FAILED;
    rc = end_entry(o);
    return rc == TARFILTER_OK ? record(o, TAR_KIND_FILE) : rc;
}

static int put_symlink(struct out *o, const struct tar_entry *e, size_t ncomp)
{
    char b1[SHOW_MAX], b2[SHOW_MAX];
    int rc = record(o, TAR_KIND_SYMLINK);
    if (rc != TARFILTER_OK)
        return rc;
    if (!tar_link_stays_inside(e->link, (long)ncomp - 2)) {
        if (ncomp == 1)
            return refuse(o, COCOON_E_INVALID,
                          "it is a symlink (to \"%s\"), and a copy of it would point outside the copy; copy what it "
                          "points to instead",
                          show(b1, e->link));
        lib_warning(o->warnings, o->wcap, "%s: symlink to \"%s\" skipped: it points outside the copied tree",
                    show(b1, renamed(o, o->name)), show(b2, e->link));
        return TARFILTER_OK;
    }
    out_entry(o, e, AE_IFLNK, 0777, e->link, NULL);
    rc = write_entry(o);
    return rc == TARFILTER_OK ? end_entry(o) : rc;
}

static int put_hardlink(struct out *o, const struct tar_entry *e)
{
    char b1[SHOW_MAX], b2[SHOW_MAX];
    size_t tn;
    if (tar_name_clean(e->link, o->target, sizeof(o->target), &tn) != TAR_NAME_OK || tn < 2 ||
        strncmp(o->target, o->name, o->toplen + 1) != 0 ||
        tar_book_get(&o->book, o->target, strlen(o->target)) != TAR_KIND_FILE)
        return refuse(o, COCOON_E_PROTOCOL,
                      "the guest sent a hard link \"%s\" to \"%s\", which is not a file of this copy",
                      show(b1, renamed(o, o->name)), show(b2, e->link));
    char target[TAR_NAME_MAX + NAME_MAX + 2];
    snprintf(target, sizeof(target), "%s%s", o->out_top, o->target + o->toplen);
    out_entry(o, e, AE_IFREG, e->mode & 0777, NULL, target);
    int rc = write_entry(o);
    if (rc == TARFILTER_OK)
        rc = end_entry(o);
    return rc == TARFILTER_OK ? record(o, TAR_KIND_FILE) : rc;
}

static int put_entry(struct out *o, const struct tar_entry *e)
{
    char b[SHOW_MAX];
    size_t ncomp;
    if (++o->st.entries > o->lim->max_entries)
        return refuse(o, COCOON_E_INVALID, "more than %llu entries, the limit (raise it with %s)",
                      (unsigned long long)o->lim->max_entries, o->lim->entries_knob);
    int rc = check_name(o, e, &ncomp);
    if (rc == TARFILTER_OK && ncomp > 1)
        rc = enter_parent(o);
    if (rc != TARFILTER_OK)
        return rc;
    if (!o->have_top) {
        o->have_top = 1;
        o->top_type = e->type;
    }
    switch (e->type) {
    case TAR_DIR: return put_dir(o, e);
    case TAR_FILE: return put_file(o, e);
    case TAR_SYMLINK: return put_symlink(o, e, ncomp);
    case TAR_HARDLINK: return put_hardlink(o, e);
    case TAR_SPECIAL:
        lib_warning(o->warnings, o->wcap, "%s: device or FIFO skipped", show(b, renamed(o, o->name)));
        return record(o, TAR_KIND_OTHER);
    }
    return TARFILTER_OK;
}

static int filter(struct tar_reader *r, const char *top, const char *out_top, struct archive *w,
                  const struct tarfilter_limits *lim, char *warnings, size_t wcap, struct tarfilter_stats *stats,
                  cocoon_error *err)
{
    if (wcap)
        warnings[0] = 0;
    if (lib_archive_ready(err) < 0) /* w may come from a program's own libarchive */
        return TARFILTER_REFUSED;
    struct out *o = calloc(1, sizeof(*o));
    struct tar_entry *e = malloc(sizeof(*e));
    struct archive_entry *ae = sym_archive_entry_new();
    int rc = TARFILTER_REFUSED;
    if (!o || !e || !ae) {
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        if (ae)
            sym_archive_entry_free(ae);
        goto out;
    }
    *o = (struct out){.r = r,
                      .top = top,
                      .out_top = out_top,
                      .w = w,
                      .out = ae,
                      .lim = lim,
                      .warnings = warnings,
                      .wcap = wcap,
                      .err = err};
    if (tar_book_init(&o->book) < 0) {
        lib_err(err, COCOON_E_IO, "no random bytes for the archive's name table: %s", strerror(errno));
        goto out;
    }
    int n;
    while ((n = tar_next(r, e)) == 1)
        if ((rc = put_entry(o, e)) != TARFILTER_OK)
            goto out;
    if (n < 0)
        rc = reader_failed(o);
    else if (!o->have_top)
        rc = refuse(o, COCOON_E_PROTOCOL, "the guest sent an empty archive");
    else
        rc = TARFILTER_OK;
out:
    if (o) {
        if (stats)
            *stats = o->st;
        tar_book_free(&o->book);
        if (o->out)
            sym_archive_entry_free(o->out);
    }
    free(o);
    free(e);
    return rc;
}

int tarfilter_out(struct tar_reader *r, const char *top, const char *out_top, struct archive *w,
                  const struct tarfilter_limits *lim, char *warnings, size_t wcap, struct tarfilter_stats *stats,
                  cocoon_error *err)
{
    locale_t utf8, old = lib_tar_locale_enter(&utf8);
    int rc = filter(r, top, out_top, w, lim, warnings, wcap, stats, err);
    lib_tar_locale_leave(old, utf8);
    return rc;
}
