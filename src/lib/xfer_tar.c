/* The tar stream of one file transfer (lib_xfer, xfer.c) and its outcome: opening a
 * FILE_PUT or FILE_GET stream, a libarchive writer that sends STDIN as the guest
 * credits it, a reader callback over the guest's STDOUT that credits what it took, and
 * the guest's verdict at the end, whose text (hostile) is escaped before it enters a
 * message. Shared by the copies of files.c and the archive streams of tarstream.c. */
#include "lib/internal.h"

#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "util/dl_archive.h"

#define STDIN_CHUNK (60u * 1024u)
#define TEXT_MAX 1024 /* escaped guest text in one message */

/* One frame of our stream handled. */
static int xfer_step(struct lib_xfer *x)
{
    struct proto_header h;
    const uint8_t *p;
    if (lib_xfer_next(x, &h, &p, 0) < 0)
        return -1;
    return lib_xfer_handle(x, &h, p);
}

int lib_xfer_open_stream(struct lib_xfer *x, uint16_t type, const char *path, uint32_t flags)
{
    if (strlen(path) >= PROTO_MAX_STRING)
        return lib_err(x->err, COCOON_E_INVALID, "%s: the guest path is too long", path);
    struct proto_file *m = calloc(1, sizeof(*m));
    if (!m)
        return lib_err(x->err, COCOON_E_NOMEM, "out of memory");
    snprintf(m->path, sizeof(m->path), "%s", path);
    m->window = PROTO_DEFAULT_WINDOW;
    m->flags = flags;
    int rc = lib_xfer_send(x, proto_encode_file(x->w, x->stream, type, m));
    free(m);
    x->opened = rc == 0;
    return rc;
}

/* The guest's diagnostics (lines) escaped and joined with "; " on one line. */
static void guest_text(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    out[0] = 0;
    while (*in && o + 1 < cap) {
        size_t n = strcspn(in, "\n");
        while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\r'))
            n--;
        if (n > 0) {
            if (o > 0 && o + 3 < cap)
                o += (size_t)snprintf(out + o, cap - o, "; ");
            util_escape_text(out + o, cap - o, in, n);
            o += strlen(out + o);
        }
        in += strcspn(in, "\n");
        if (*in)
            in++;
    }
}

/* The guest's verdict once the stream ended: 0 when it succeeded, else -1 with err set
 * to what it said. */
static int guest_verdict(struct lib_xfer *x, const char *what, const char *path)
{
    if (x->exited && x->exit_code == 0)
        return 0;
    char said[TEXT_MAX], msg[TEXT_MAX];
    guest_text(said, sizeof(said), x->errtext);
    guest_text(msg, sizeof(msg), x->errmsg);
    char killed[96] = "";
    if (x->exited && x->exit_code > 128) /* a stop of the box, or `cocoon kill`, ends transfers too */
        snprintf(killed, sizeof(killed), "the transfer was killed in the guest (signal %d: the box stopping?)",
                 x->exit_code - 128);
    const char *why = said[0] ? said : msg[0] ? msg : killed[0] ? killed : "the transfer failed in the guest";
    /* categories a program can act on (the guest chooses them, so they are only hints) */
    int code = COCOON_E_IO;
    if (strstr(why, "No such file") || strstr(why, "no such directory"))
        code = COCOON_E_NOT_FOUND;
    else if (strstr(why, PROTO_FILE_EXISTS_TEXT))
        code = COCOON_E_STATE;
    else if (strstr(why, ": not a directory"))
        code = COCOON_E_INVALID;
    if (msg[0] && !x->started)
        code = x->errcode == EPERM || x->errcode == EINVAL ? COCOON_E_UNSUPPORTED : COCOON_E_STATE;
    return lib_err(x->err, code, "%s %s:%s: %s", what, x->box->name[0] ? x->box->name : x->box->id, path, why);
}

int lib_xfer_result(struct lib_xfer *x, const char *what, const char *path)
{
    if (x->owed && !x->failed) { /* the last bytes our reader took: the guest may need them to finish */
        lib_xfer_credit(x, x->owed);
        x->owed = 0;
    }
    while (!x->done)
        if (xfer_step(x) < 0)
            return -1;
    return x->failed ? -1 : guest_verdict(x, what, path);
}

void lib_xfer_fail_unless_guest_said(struct lib_xfer *x, const char *what, const char *path, int code,
                                     const char *detail)
{
    if (!x->failed && lib_xfer_result(x, what, path) == 0)
        lib_err(x->err, code, "%s %s: %s", what, path, detail);
}

void lib_xfer_explain_failure(struct lib_xfer *x, const char *what, const char *path)
{
    if (x->failed)
        return; /* stalled, box stopped...: the transfer's message says so */
    if (x->done && guest_verdict(x, what, path) < 0)
        return;
    if (x->err) {
        char ours[COCOON_ERROR_MAX];
        snprintf(ours, sizeof(ours), "%s", x->err->message);
        lib_err(x->err, x->err->code, "%s %s:%s: %s", what, x->box->name[0] ? x->box->name : x->box->id, path, ours);
    }
}

void lib_xfer_pass_warnings(struct lib_xfer *x, const char *extra)
{
    if (!x->err)
        return;
    char said[TEXT_MAX];
    guest_text(said, sizeof(said), x->errtext);
    x->err->code = COCOON_OK;
    snprintf(x->err->message, sizeof(x->err->message), "%s%s%s", said, said[0] && extra[0] ? "\n" : "", extra);
}

/* ---- to the guest ---- */

static la_ssize_t put_write(struct archive *a, void *client, const void *buf, size_t len)
{
    struct lib_xfer *x = client;
    const char *p = buf;
    size_t sent = 0;
    if (x->abandoned) {
        sym_archive_set_error(a, ECANCELED, "the transfer was given up");
        return -1;
    }
    while (sent < len) {
        while (!x->done && !x->failed && (!x->started || x->credit == 0))
            if (xfer_step(x) < 0)
                break;
        if (x->failed || x->done) {
            sym_archive_set_error(a, EPIPE, "the guest stopped reading");
            return -1;
        }
        size_t n = len - sent;
        if (n > x->credit)
            n = (size_t)x->credit;
        if (n > STDIN_CHUNK)
            n = STDIN_CHUNK;
        if (lib_xfer_send(x, proto_encode_data(x->w, x->stream, PROTO_STDIN, p + sent, n)) < 0) {
            sym_archive_set_error(a, EIO, "sending to the monitor failed");
            return -1;
        }
        x->credit -= n;
        sent += n;
        util_test_point("CP_IN_SENT");
    }
    return (la_ssize_t)len;
}

int lib_archive_ready(cocoon_error *err)
{
    char why[COCOON_ERROR_MAX];
    if (dl_archive_load(why, sizeof(why)) < 0)
        return lib_err(err, COCOON_E_UNSUPPORTED, "%s", why);
    return 0;
}

struct archive *lib_xfer_tar_writer(struct lib_xfer *x)
{
    struct archive *w = sym_archive_write_new();
    if (!w)
        return NULL;
    if (sym_archive_write_set_format_pax(w) != ARCHIVE_OK || sym_archive_write_set_bytes_per_block(w, 65536) ||
        sym_archive_write_set_bytes_in_last_block(w, 1) ||
        sym_archive_write_open(w, x, NULL, put_write, NULL) != ARCHIVE_OK) {
        sym_archive_write_free(w);
        return NULL;
    }
    return w;
}

locale_t lib_tar_locale_enter(locale_t *utf8)
{
    *utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    return *utf8 ? uselocale(*utf8) : (locale_t)0;
}

void lib_tar_locale_leave(locale_t old, locale_t utf8)
{
    if (!utf8)
        return;
    uselocale(old);
    freelocale(utf8);
}

void lib_tar_entry_names(struct archive_entry *e, const char *path, const char *symlink, const char *hardlink)
{
    sym_archive_entry_copy_pathname(e, path);
    if (symlink)
        sym_archive_entry_copy_symlink(e, symlink);
    if (hardlink)
        sym_archive_entry_copy_hardlink(e, hardlink);
}

void lib_tar_writer_free(struct archive *w)
{
    if (!w)
        return;
    /* libarchive 3.6 frees a writer that failed inside a header without closing its
     * output, and so leaks the output's block buffer: close it first (what it writes
     * goes nowhere once its owner gave up) */
    sym_archive_write_close(w);
    sym_archive_write_free(w);
}

void lib_xfer_abandon(struct lib_xfer *x)
{
    if (x->opened && !x->done && !x->failed && !x->abandoned)
        lib_xfer_send(x, proto_encode_signal(x->w, x->stream, 9));
    x->abandoned = 1;
}

int lib_tar_write_zeros(struct archive *w, uint64_t n)
{
    static const char zeros[65536];
    while (n > 0) {
        size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
        if (sym_archive_write_data(w, zeros, k) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

int lib_tar_copy_data(struct archive *in, struct archive *w, int64_t size)
{
    const void *buf;
    size_t len;
    la_int64_t off;
    int64_t done = 0;
    int r;
    while ((r = sym_archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK) {
        if (off < done || off > size || (uint64_t)len > (uint64_t)(size - off))
            return LIB_DATA_OUT_OF_PLACE; /* an overlapping or oversized sparse map: the writer would shift data */
        if (off > done && lib_tar_write_zeros(w, (uint64_t)(off - done)) < 0)
            return LIB_DATA_SEND_FAILED;
        if (len && sym_archive_write_data(w, buf, len) < 0)
            return LIB_DATA_SEND_FAILED;
        done = off + (int64_t)len;
    }
    if (r != ARCHIVE_EOF)
        return LIB_DATA_READ_FAILED;
    if (done < size && lib_tar_write_zeros(w, (uint64_t)(size - done)) < 0)
        return LIB_DATA_SEND_FAILED;
    return LIB_DATA_SENT;
}

/* ---- from the guest ---- */

/* The tar reader's input: the guest's STDOUT, credited once consumed. The end of our
 * stream (EXIT, or ERROR before STARTED) is the end of the input. */
long lib_xfer_read_stdout(void *arg, void *buf, size_t cap)
{
    struct lib_xfer *x = arg;
    if (x->owed) {
        if (lib_xfer_credit(x, x->owed) < 0)
            return -1;
        x->owed = 0;
    }
    for (;;) {
        if (x->failed)
            return -1;
        if (x->done)
            return 0;
        struct proto_header h;
        const uint8_t *p;
        if (lib_xfer_next(x, &h, &p, 0) < 0)
            return -1;
        if (h.type == PROTO_STDOUT) {
            if (h.len == 0)
                continue;
            size_t k = h.len < cap ? h.len : cap; /* cap is TAR_IN_CHUNK, a whole frame */
            memcpy(buf, p, k);
            x->owed = h.len;
            lib_xfer_progress(x);
            return (long)k;
        }
        if (lib_xfer_handle(x, &h, p) < 0)
            return -1;
    }
}
