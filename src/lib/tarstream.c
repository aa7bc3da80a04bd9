/* cocoon_tar_to_box / cocoon_tar_from_box: a tar archive streamed into or out of a
 * running box through the caller's callbacks (cocoon.h, "archive streams"). Each call
 * has its own control connection (lib_xfer) carrying one FILE_PUT or FILE_GET stream;
 * the archive passes through a filter (tarfilter_in.c, tarfilter_out.c) that checks
 * every entry and writes it again, so neither side ever gets the other's bytes as they
 * were sent. This file is the glue: opening the stream, where the clean archive goes,
 * and who is to blame when something fails. */
#include "lib/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/tarfilter.h"
#include "lib/tar_reader.h"
#include "util/dl_archive.h"

#define WARN_MAX 1024
#define OUT_BLOCK 65536

static const char *box_label(const cocoon_box *box) { return box->name[0] ? box->name : box->id; }

static void limits_of(const struct lib_copy_limits *lim, struct tarfilter_limits *out)
{
    out->max_bytes = lim->max_bytes;
    out->max_entries = lim->max_entries;
    out->bytes_knob = "COCOON_CP_MAX_BYTES or cocoon_copy_options.max_bytes";
    out->entries_knob = "COCOON_CP_MAX_ENTRIES or cocoon_copy_options.max_entries";
}

/* "WHAT BOX:PATH: " before the message a filter left in err. */
static void prefix_err(cocoon_error *err, const char *what, const cocoon_box *box, const char *path)
{
    if (!err)
        return;
    char msg[COCOON_ERROR_MAX];
    snprintf(msg, sizeof(msg), "%s", err->message);
    lib_err(err, err->code, "%s %s:%s: %s", what, box_label(box), path, msg);
}

/* ---- into the box ---- */

/* PATH with a trailing "/": the agent then extracts into it, and only if it is an
 * existing directory. */
static int put_path(const char *box_dir, char *out, size_t cap, cocoon_error *err)
{
    size_t n = strlen(box_dir);
    if ((size_t)snprintf(out, cap, "%s%s", box_dir, box_dir[n - 1] == '/' ? "" : "/") >= cap)
        return lib_err(err, COCOON_E_INVALID, "%.200s...: the guest path is too long", box_dir);
    return 0;
}

int lib_tar_to_xfer(struct lib_xfer *x, const char *box_dir, cocoon_read_fn read, void *user, unsigned flags,
                    const struct lib_copy_limits *lim, cocoon_error *err)
{
    char path[PROTO_MAX_STRING], warnings[WARN_MAX];
    struct tarfilter_limits tl;
    limits_of(lim, &tl);
    if (lib_archive_ready(err) < 0 || put_path(box_dir, path, sizeof(path), err) < 0 ||
        lib_xfer_open_stream(x, PROTO_FILE_PUT, path, flags & COCOON_TAR_NO_OVERWRITE ? PROTO_FILE_NO_REPLACE : 0) < 0)
        return -1;
    struct archive *w = lib_xfer_tar_writer(x);
    if (!w)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    int rc = -1;
    switch (tarfilter_in(read, user, w, &tl, warnings, sizeof(warnings), NULL, err)) {
    case TARFILTER_OK:
        if (sym_archive_write_close(w) != ARCHIVE_OK) {
            lib_xfer_fail_unless_guest_said(x, "copy to", box_dir, COCOON_E_IO, sym_archive_error_string(w));
            break;
        }
        if (lib_xfer_send(x, proto_encode_data(x->w, x->stream, PROTO_STDIN_EOF, NULL, 0)) < 0)
            break;
        rc = lib_xfer_result(x, "copy to", box_dir);
        if (rc == 0)
            lib_xfer_pass_warnings(x, warnings);
        break;
    case TARFILTER_REFUSED: prefix_err(err, "copy to", x->box, box_dir); break;
    case TARFILTER_SOURCE_FAILED:
        lib_err(err, COCOON_E_IO, "copy to %s:%s: reading the archive failed (the read callback gave up)",
                box_label(x->box), box_dir);
        break;
    case TARFILTER_SINK_FAILED:
        lib_xfer_fail_unless_guest_said(x, "copy to", box_dir, COCOON_E_IO, sym_archive_error_string(w));
        break;
    }
    if (rc < 0)
        lib_xfer_abandon(x); /* the guest must not see the archive end: it keeps what it has, nothing more */
    lib_tar_writer_free(w);
    return rc;
}

int cocoon_tar_to_box(cocoon_box *box, const char *box_dir, cocoon_read_fn read, void *user, unsigned flags,
                      const cocoon_copy_options *opts, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !box_dir || !*box_dir || !read)
        return lib_err(err, COCOON_E_INVALID, "cocoon_tar_to_box: empty argument");
    if (flags & ~COCOON_TAR_NO_OVERWRITE)
        return lib_err(err, COCOON_E_INVALID, "cocoon_tar_to_box: flags 0x%x: only COCOON_TAR_NO_OVERWRITE applies",
                       flags);
    struct lib_copy_limits lim;
    if (lib_copy_limits(opts, &lim, err) < 0)
        return -1;
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    lib_xfer_set_timeouts(x, lim.idle_timeout_ms, lim.timeout_ms);
    int rc = lib_tar_to_xfer(x, box_dir, read, user, flags, &lim, err);
    lib_xfer_close(x);
    return rc;
}

/* ---- out of the box ---- */

struct sink {
    cocoon_write_fn write;
    void *user;
    int failed;
    int given_up; /* the call failed: freeing the writer (which closes the archive) must write nothing */
};

static la_ssize_t sink_write(struct archive *a, void *arg, const void *buf, size_t len)
{
    struct sink *s = arg;
    if (s->failed || s->given_up) {
        sym_archive_set_error(a, ECANCELED, "the archive was given up");
        return -1;
    }
    if (s->write(s->user, buf, len) < 0) {
        s->failed = 1;
        sym_archive_set_error(a, EPIPE, "the write callback gave up");
        return -1;
    }
    return (la_ssize_t)len;
}

int lib_tar_from_xfer(struct lib_xfer *x, const char *box_path, cocoon_write_fn write, void *user, unsigned flags,
                      const struct lib_copy_limits *lim, cocoon_error *err)
{
    char top[NAME_MAX + 1], warnings[WARN_MAX];
    struct tarfilter_limits tl;
    limits_of(lim, &tl);
    if (lib_archive_ready(err) < 0 || lib_guest_top(box_path, top, err) < 0 ||
        lib_xfer_open_stream(x, PROTO_FILE_GET, box_path, flags & COCOON_TAR_FOLLOW ? PROTO_FILE_FOLLOW : 0) < 0)
        return -1;
    struct sink sink = {write, user, 0, 0};
    struct tar_reader r;
    if (tar_reader_init(&r, lib_xfer_read_stdout, x) < 0)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    int rc = -1;
    struct archive *w = sym_archive_write_new();
    if (!w || sym_archive_write_set_format_pax(w) != ARCHIVE_OK ||
        sym_archive_write_set_bytes_per_block(w, OUT_BLOCK) || sym_archive_write_set_bytes_in_last_block(w, 1) ||
        sym_archive_write_open(w, &sink, NULL, sink_write, NULL) != ARCHIVE_OK) {
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        goto out;
    }
    switch (
        tarfilter_out(&r, flags & COCOON_TAR_FOLLOW ? NULL : top, top, w, &tl, warnings, sizeof(warnings), NULL, err)) {
    case TARFILTER_OK:
        if (lib_xfer_result(x, "copy from", box_path) < 0)
            break;
        if (sym_archive_write_close(w) != ARCHIVE_OK) {
            lib_err(err, COCOON_E_IO, "copy from %s:%s: the write callback gave up", box_label(x->box), box_path);
            break;
        }
        lib_xfer_pass_warnings(x, warnings);
        rc = 0;
        break;
    case TARFILTER_REFUSED:
    case TARFILTER_SOURCE_FAILED: lib_xfer_explain_failure(x, "copy from", box_path); break;
    case TARFILTER_SINK_FAILED:
        lib_err(err, COCOON_E_IO, "copy from %s:%s: the write callback gave up", box_label(x->box), box_path);
        break;
    }
out:
    if (rc < 0) {
        sink.given_up = 1;
        lib_xfer_abandon(x);
    }
    tar_reader_free(&r);
    lib_tar_writer_free(w);
    return rc;
}

int cocoon_tar_from_box(cocoon_box *box, const char *box_path, cocoon_write_fn write, void *user, unsigned flags,
                        const cocoon_copy_options *opts, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !box_path || !*box_path || !write)
        return lib_err(err, COCOON_E_INVALID, "cocoon_tar_from_box: empty argument");
    if (flags & ~COCOON_TAR_FOLLOW)
        return lib_err(err, COCOON_E_INVALID, "cocoon_tar_from_box: flags 0x%x: only COCOON_TAR_FOLLOW applies", flags);
    struct lib_copy_limits lim;
    char top[NAME_MAX + 1];
    if (lib_copy_limits(opts, &lim, err) < 0 || lib_guest_top(box_path, top, err) < 0)
        return -1;
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    lib_xfer_set_timeouts(x, lim.idle_timeout_ms, lim.timeout_ms);
    int rc = lib_tar_from_xfer(x, box_path, write, user, flags, &lim, err);
    lib_xfer_close(x);
    return rc;
}
