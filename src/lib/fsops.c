/* cocoon_file_stat/list/mkdir/remove/move: one FILE_OP on a private control connection
 * (lib_xfer, as cocoon_file_read), answered by the guest agent on its STDOUT and checked
 * by fsops_reply.c. Guest text is escaped before it enters a message; the error's
 * category comes from the guest's errno (a hint: the guest chooses it). */
#include "lib/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static int code_of_errno(uint32_t e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR: return COCOON_E_NOT_FOUND;
    case EINVAL:
    case EEXIST:
    case ENOTEMPTY:
    case EISDIR:
    case E2BIG:
    case EBUSY:
    case ENAMETOOLONG:
    case ELOOP:
    case EXDEV: return COCOON_E_INVALID;
    default: return COCOON_E_IO;
    }
}

int lib_fsop_xfer(struct lib_xfer *x, const struct proto_file_op *op, struct lib_fsop_reply *r, const char *shown)
{
    if (lib_xfer_send(x, proto_encode_file_op(x->w, x->stream, op)) < 0)
        return -1;
    x->opened = 1;
    int broken = 0;
    while (!x->done) {
        struct proto_header h;
        const uint8_t *p;
        if (lib_xfer_next(x, &h, &p, 0) < 0)
            return -1;
        if (h.type != PROTO_STDOUT) {
            if (lib_xfer_handle(x, &h, p) < 0)
                return -1;
            continue;
        }
        if (!broken && lib_fsop_reply_feed(r, p, h.len) < 0)
            broken = 1; /* the rest is drained: the guest's stream ends by itself */
        lib_xfer_progress(x);
        if (lib_xfer_credit(x, h.len) < 0)
            return -1;
    }
    char text[1100];
    if (broken || lib_fsop_reply_finish(r) < 0)
        return lib_err(x->err, COCOON_E_PROTOCOL, "%s: the guest broke the file-operation protocol: %s", shown,
                       util_escape_text(text, sizeof(text), r->why, strlen(r->why)));
    if (r->has_error)
        return lib_err(x->err, code_of_errno(r->error_code), "%s: %s", shown,
                       util_escape_text(text, sizeof(text), r->error_msg, strlen(r->error_msg)));
    if (r->ended && x->exited && x->exit_code == 0)
        return 0;
    if (x->exited && x->exit_code == 0)
        return lib_err(x->err, COCOON_E_PROTOCOL, "%s: the guest broke the file-operation protocol: %s", shown,
                       "its answer ended without its last frame");
    /* refused before it ran (the monitor, a busy agent) or killed: the transfer's verdict */
    return lib_xfer_result(x, "file operation on", shown);
}

/* Runs op; r is initialised here and left for the caller to read and free. */
static int fsop_run(cocoon_box *box, const struct proto_file_op *op, int expect, struct lib_fsop_reply *r,
                    const char *shown, cocoon_error *err)
{
    if (lib_fsop_reply_init(r, expect) < 0)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    int rc = lib_fsop_xfer(x, op, r, shown);
    lib_xfer_close(x);
    return rc;
}

/* Checks a caller's path: absolute, within the protocol's string bound. */
static int path_ok(const char *what, const char *path, cocoon_error *err)
{
    if (!path || !*path)
        return lib_err(err, COCOON_E_INVALID, "%s: no path given", what);
    if (path[0] != '/')
        return lib_err(err, COCOON_E_INVALID, "%s: the path must be absolute (start with /)", path);
    if (strlen(path) >= PROTO_MAX_STRING)
        return lib_err(err, COCOON_E_INVALID, "%.64s...: the path is longer than %u bytes", path, PROTO_MAX_STRING - 1);
    return 0;
}

static struct proto_file_op *op_new(uint32_t op, const char *path, cocoon_error *err)
{
    struct proto_file_op *m = calloc(1, sizeof(*m));
    if (!m) {
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        return NULL;
    }
    m->op = op;
    snprintf(m->path, sizeof(m->path), "%s", path);
    m->window = PROTO_DEFAULT_WINDOW;
    return m;
}

/* The last component of path ("/" for the root), as stat names what it describes. */
static void last_component(char *out, size_t cap, const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/')
        start--;
    if (start == n) /* the root */
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(n - start), path + start);
}

/* An operation answered by the entry of one path (STAT, MKDIR, MOVE). */
static int one_entry(cocoon_box *box, struct proto_file_op *m, const char *named, const char *shown,
                     cocoon_file_info *out, cocoon_error *err)
{
    struct lib_fsop_reply r;
    int rc = fsop_run(box, m, FSOP_EXPECT_ONE, &r, shown, err);
    if (rc == 0 && out) {
        *out = r.entries[0];
        last_component(out->name, sizeof(out->name), named);
    }
    lib_fsop_reply_free(&r);
    free(m);
    return rc;
}

int cocoon_file_stat(cocoon_box *box, const char *path, cocoon_file_info *out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_stat: NULL argument");
    if (path_ok("cocoon_file_stat", path, err) < 0)
        return -1;
    struct proto_file_op *m = op_new(PROTO_FSOP_STAT, path, err);
    return m ? one_entry(box, m, path, path, out, err) : -1;
}

int cocoon_file_list(cocoon_box *box, const char *path, cocoon_file_info **out, size_t *count, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !out || !count)
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_list: NULL argument");
    *out = NULL;
    *count = 0;
    if (path_ok("cocoon_file_list", path, err) < 0)
        return -1;
    struct proto_file_op *m = op_new(PROTO_FSOP_LIST, path, err);
    if (!m)
        return -1;
    struct lib_fsop_reply r;
    int rc = fsop_run(box, m, FSOP_EXPECT_LIST, &r, path, err);
    free(m);
    if (rc == 0) {
        *out = r.entries;
        *count = r.count;
        r.entries = NULL;
    }
    lib_fsop_reply_free(&r);
    return rc;
}

void cocoon_file_list_free(cocoon_file_info *list) { free(list); }

int cocoon_file_mkdir(cocoon_box *box, const char *path, unsigned mode, unsigned flags, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_mkdir: NULL argument");
    if (path_ok("cocoon_file_mkdir", path, err) < 0)
        return -1;
    if (flags & ~COCOON_MKDIR_PARENTS)
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_mkdir: unknown flags 0x%x", flags & ~COCOON_MKDIR_PARENTS);
    if (mode > 07777)
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_mkdir: mode %o is more than permission bits (07777)", mode);
    struct proto_file_op *m = op_new(PROTO_FSOP_MKDIR, path, err);
    if (!m)
        return -1;
    m->mode = mode;
    m->flags = (flags & COCOON_MKDIR_PARENTS) ? PROTO_FSOP_PARENTS : 0;
    return one_entry(box, m, path, path, NULL, err);
}

int cocoon_file_remove(cocoon_box *box, const char *path, unsigned flags, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_remove: NULL argument");
    if (path_ok("cocoon_file_remove", path, err) < 0)
        return -1;
    if (flags & ~COCOON_REMOVE_RECURSIVE)
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_remove: unknown flags 0x%x",
                       flags & ~COCOON_REMOVE_RECURSIVE);
    struct proto_file_op *m = op_new(PROTO_FSOP_REMOVE, path, err);
    if (!m)
        return -1;
    m->flags = (flags & COCOON_REMOVE_RECURSIVE) ? PROTO_FSOP_RECURSIVE : 0;
    struct lib_fsop_reply r;
    int rc = fsop_run(box, m, FSOP_EXPECT_NONE, &r, path, err);
    lib_fsop_reply_free(&r);
    free(m);
    return rc;
}

int cocoon_file_move(cocoon_box *box, const char *from, const char *to, unsigned flags, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_move: NULL argument");
    if (path_ok("cocoon_file_move", from, err) < 0 || path_ok("cocoon_file_move", to, err) < 0)
        return -1;
    if (flags & ~COCOON_MOVE_NO_REPLACE)
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_move: unknown flags 0x%x", flags & ~COCOON_MOVE_NO_REPLACE);
    struct proto_file_op *m = op_new(PROTO_FSOP_MOVE, from, err);
    if (!m)
        return -1;
    snprintf(m->path2, sizeof(m->path2), "%s", to);
    m->flags = (flags & COCOON_MOVE_NO_REPLACE) ? PROTO_FSOP_NO_REPLACE : 0;
    char shown[2 * PROTO_MAX_STRING + 8];
    snprintf(shown, sizeof(shown), "%s -> %s", from, to);
    return one_entry(box, m, to, shown, NULL, err);
}
