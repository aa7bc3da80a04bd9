/* Files in and out of a running box: cocoon_copy_to_box / cocoon_copy_from_box (trees,
 * streamed as tar through FILE_PUT / FILE_GET streams) and cocoon_file_write /
 * cocoon_file_read (one file from memory). Each call uses its own control connection
 * (lib_xfer, xfer.c; its tar stream and the guest's verdict: xfer_tar.c), so transfers
 * run beside execs and each other without sharing a pump. libarchive writes what we send; what the guest sends is read
 * by our own bounded reader (tar_reader.c) and put on disk by extract.c, which holds the policy against a hostile
 * guest. Guest text is escaped before it enters any message. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/extract.h"
#include "lib/tar_reader.h"
#include "util/util.h"
#include "util/dl_archive.h"

#define WARN_MAX 1024

/* ---- bounds ---- */

void cocoon_copy_options_init(cocoon_copy_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

/* $name as a count (with a K/M/G/T binary suffix when sizes): 1 set, 0 unset, -1 bad. */
static int env_number(const char *name, int sizes, uint64_t *v, cocoon_error *err)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    if (util_parse_count(s, sizes, v) < 0)
        return lib_err(err, COCOON_E_INVALID, "%s=\"%.40s\" is not valid: expected a whole number greater than 0%s",
                       name, s, sizes ? " (bytes, or with a K, M, G or T suffix)" : "");
    return 1;
}

int lib_copy_limits(const cocoon_copy_options *opts, struct lib_copy_limits *out, cocoon_error *err)
{
    memset(out, 0, sizeof(*out));
    cocoon_copy_options o;
    if (LIB_OPTIONS(cocoon_copy_options, o, opts, err) < 0)
        return -1;
    out->max_bytes = o.max_bytes;
    out->max_entries = o.max_entries;
    out->idle_timeout_ms = o.idle_timeout_ms;
    out->timeout_ms = o.timeout_ms;
    uint64_t v;
    int rc;
    if (!out->max_bytes && (rc = env_number("COCOON_CP_MAX_BYTES", 1, &v, err)) != 0) {
        if (rc < 0)
            return -1;
        out->max_bytes = v;
    }
    if (!out->max_entries && (rc = env_number("COCOON_CP_MAX_ENTRIES", 0, &v, err)) != 0) {
        if (rc < 0)
            return -1;
        out->max_entries = v;
    }
    if (!out->idle_timeout_ms && (rc = env_number("COCOON_CP_IDLE_TIMEOUT", 0, &v, err)) != 0) {
        if (rc < 0)
            return -1;
        out->idle_timeout_ms = v > UINT_MAX / 1000u ? UINT_MAX / 1000u * 1000u : (unsigned)v * 1000u;
    }
    if (!out->max_bytes)
        out->max_bytes = LIB_CP_MAX_BYTES_DEFAULT;
    if (!out->max_entries)
        out->max_entries = LIB_CP_MAX_ENTRIES_DEFAULT;
    if (!out->idle_timeout_ms)
        out->idle_timeout_ms = LIB_XFER_IDLE_DEFAULT_MS;
    return 0;
}

/* ---- the stream and the guest's verdict ---- */

/* ---- host path helpers ---- */

static void strip_slashes(char *s)
{
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/')
        s[--n] = 0;
}

static const char *base_of(const char *s)
{
    const char *b = strrchr(s, '/');
    return b ? b + 1 : s;
}

/* ---- to the box ---- */

/* The source's name in the archive: its last component (of its real path for "." or "/x/.."). */
static int put_names(const char *host_path, char *src, char *top, cocoon_error *err)
{
    snprintf(src, PATH_MAX, "%s", host_path);
    strip_slashes(src);
    snprintf(top, PATH_MAX, "%s", base_of(src));
    if (!strcmp(top, ".") || !strcmp(top, "..") || !top[0] || !strcmp(src, "/")) {
        char real[PATH_MAX];
        if (!realpath(src, real) || !strcmp(real, "/"))
            return lib_err(err, COCOON_E_INVALID, "%s: name a file or directory other than /", host_path);
        snprintf(top, PATH_MAX, "%s", base_of(real));
    }
    return 0;
}

int lib_copy_to_xfer(struct lib_xfer *x, const char *host_path, const char *box_path, cocoon_error *err)
{
    char src[PATH_MAX], top[PATH_MAX];
    if (lib_archive_ready(err) < 0 || put_names(host_path, src, top, err) < 0)
        return -1;
    int rc = -1;
    char warnings[WARN_MAX] = "";
    struct archive *disk = sym_archive_read_disk_new(), *w = NULL;
    struct archive_entry *e = sym_archive_entry_new();
    if (lib_xfer_open_stream(x, PROTO_FILE_PUT, box_path, 0) < 0)
        goto out;
    if (!disk || !e || !(w = lib_xfer_tar_writer(x))) {
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        goto out;
    }
    sym_archive_read_disk_set_symlink_physical(disk);
    sym_archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL |
                                                 ARCHIVE_READDISK_NO_FFLAGS);
    if (sym_archive_read_disk_open(disk, src) != ARCHIVE_OK) {
        lib_err(err, COCOON_E_IO, "%s: %s", host_path, sym_archive_error_string(disk));
        goto out;
    }
    size_t srclen = strlen(src);
    for (;;) {
        sym_archive_entry_clear(e);
        int r = sym_archive_read_next_header2(disk, e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            lib_err(err, COCOON_E_IO, "%s: %s", host_path, sym_archive_error_string(disk));
            goto out;
        }
        const char *name = sym_archive_entry_pathname(e);
        if (r == ARCHIVE_WARN)
            lib_warning(warnings, sizeof(warnings), "%s: skipped (unreadable)", name ? name : "?");
        if (sym_archive_entry_filetype(e) == AE_IFDIR)
            sym_archive_read_disk_descend(disk);
        mode_t type = sym_archive_entry_filetype(e);
        if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
            lib_warning(warnings, sizeof(warnings), "%s: special file skipped", name ? name : "?");
            continue;
        }
        /* name is src + "/rest": send it as top + "/rest" */
        char aname[PATH_MAX + 256];
        const char *rest = name && !strncmp(name, src, srclen) ? name + srclen : "";
        snprintf(aname, sizeof(aname), "%s%s", top, rest);
        sym_archive_entry_set_pathname(e, aname);
        sym_archive_entry_set_uname(e, NULL);
        sym_archive_entry_set_gname(e, NULL);
        sym_archive_entry_unset_atime(e);
        sym_archive_entry_unset_ctime(e);
        sym_archive_entry_unset_birthtime(e);
        if (sym_archive_write_header(w, e) < ARCHIVE_WARN)
            goto archive_fail;
        if (type == AE_IFREG && sym_archive_entry_size(e) > 0) {
            int c = lib_tar_copy_data(disk, w, sym_archive_entry_size(e));
            if (c == LIB_DATA_READ_FAILED || c == LIB_DATA_OUT_OF_PLACE) {
                lib_err(err, COCOON_E_IO, "%s: %s", aname, sym_archive_error_string(disk));
                goto out;
            }
            if (c < 0)
                goto archive_fail;
        }
        if (sym_archive_write_finish_entry(w) < ARCHIVE_WARN)
            goto archive_fail;
    }
    if (sym_archive_write_close(w) != ARCHIVE_OK)
        goto archive_fail;
    if (lib_xfer_send(x, proto_encode_data(x->w, x->stream, PROTO_STDIN_EOF, NULL, 0)) < 0)
        goto out;
    rc = lib_xfer_result(x, "copy to", box_path);
    if (rc == 0)
        lib_xfer_pass_warnings(x, warnings);
    goto out;
archive_fail:
    lib_xfer_fail_unless_guest_said(x, "copy to", box_path, COCOON_E_IO, sym_archive_error_string(w));
out:
    if (rc < 0)
        lib_xfer_abandon(x); /* freeing the writer must not end the archive the guest reads */
    lib_tar_writer_free(w);
    if (disk)
        sym_archive_read_free(disk);
    if (e)
        sym_archive_entry_free(e);
    return rc;
}

/* ---- from the box ---- */

int lib_guest_top(const char *box_path, char top[NAME_MAX + 1], cocoon_error *err)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", box_path);
    strip_slashes(tmp);
    const char *b = base_of(tmp);
    if (!*b || !strcmp(b, ".") || !strcmp(b, "..") || strlen(b) > NAME_MAX)
        return lib_err(err, COCOON_E_INVALID, "%s: name a file or directory in the box (not the root, \".\" or \"..\")",
                       box_path);
    memcpy(top, b, strlen(b) + 1);
    return 0;
}

/* Where a copy from the box goes: a directory (real path), the copy's name in it, and
 * the name the guest will send (box_path's last component). */
static int from_box_names(const char *box_path, const char *host_path, char *dir, char *name, char *top,
                          cocoon_error *err)
{
    if (lib_guest_top(box_path, top, err) < 0)
        return -1;
    /* Into an existing directory, or as a new name in an existing directory. */
    char dest[PATH_MAX];
    snprintf(dest, sizeof(dest), "%s", host_path);
    size_t dl = strlen(dest);
    int trailing = dl > 1 && dest[dl - 1] == '/';
    strip_slashes(dest);
    struct stat st;
    if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (!realpath(dest, dir))
            return lib_err(err, COCOON_E_IO, "%s: %s", host_path, strerror(errno));
        memcpy(name, top, strlen(top) + 1);
        return 0;
    }
    if (trailing)
        return lib_err(err, COCOON_E_NOT_FOUND, "%s: no such directory", host_path);
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", dest);
    char *slash = strrchr(parent, '/');
    const char *newname = slash ? base_of(dest) : dest;
    if (!*newname || !strcmp(newname, ".") || !strcmp(newname, "..") || strlen(newname) > NAME_MAX)
        return lib_err(err, COCOON_E_INVALID, "%s: not a valid destination", host_path);
    memcpy(name, newname, strlen(newname) + 1);
    if (slash == parent)
        parent[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(parent, sizeof(parent), ".");
    if (!realpath(parent, dir) || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return lib_err(err, COCOON_E_NOT_FOUND, "%s: no such directory", parent);
    return 0;
}

struct from_box {
    struct lib_xfer *x;
    const char *box_path;
};

/* extract_tar's last word before the copy goes into place: the guest's verdict. */
static int from_box_confirm(void *arg)
{
    struct from_box *f = arg;
    return lib_xfer_result(f->x, "copy from", f->box_path);
}

int lib_copy_from_xfer(struct lib_xfer *x, const char *box_path, const char *host_path,
                       const struct lib_copy_limits *lim, cocoon_error *err)
{
    char dir[PATH_MAX], name[NAME_MAX + 1], top[NAME_MAX + 1];
    if (from_box_names(box_path, host_path, dir, name, top, err) < 0)
        return -1;
    if (lib_xfer_open_stream(x, PROTO_FILE_GET, box_path, 0) < 0)
        return -1;
    struct tar_reader r;
    if (tar_reader_init(&r, lib_xfer_read_stdout, x) < 0)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    struct from_box f = {x, box_path};
    struct extract_job job = {
        .dest_dir = dir,
        .top = top,
        .final_name = name,
        .max_bytes = lim->max_bytes,
        .max_entries = lim->max_entries,
        .bytes_knob = "COCOON_CP_MAX_BYTES or cocoon_copy_options.max_bytes",
        .entries_knob = "COCOON_CP_MAX_ENTRIES or cocoon_copy_options.max_entries",
        .confirm = from_box_confirm,
        .confirm_arg = &f,
    };
    char warnings[WARN_MAX];
    int rc = extract_tar(&r, &job, warnings, sizeof(warnings), NULL, err);
    tar_reader_free(&r);
    if (rc < 0) {
        lib_xfer_explain_failure(x, "copy from", box_path);
        return -1;
    }
    lib_xfer_pass_warnings(x, warnings);
    return 0;
}

/* ---- single files from memory ---- */

int cocoon_file_write(cocoon_box *box, const char *path, const void *data, size_t len, unsigned mode, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !path || !*path || (!data && len))
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_write: NULL argument");
    if (lib_archive_ready(err) < 0)
        return -1;
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    int rc = -1;
    struct archive *w = NULL;
    struct archive_entry *e = sym_archive_entry_new();
    if (lib_xfer_open_stream(x, PROTO_FILE_PUT, path, PROTO_FILE_EXACT) < 0)
        goto out;
    if (!e || !(w = lib_xfer_tar_writer(x))) {
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        goto out;
    }
    sym_archive_entry_set_pathname(e, "file"); /* renamed to the last component of path */
    sym_archive_entry_set_filetype(e, AE_IFREG);
    sym_archive_entry_set_perm(e, (mode ? mode : 0644) & 07777);
    sym_archive_entry_set_size(e, (la_int64_t)len);
    sym_archive_entry_set_mtime(e, time(NULL), 0);
    if (sym_archive_write_header(w, e) < ARCHIVE_WARN)
        goto archive_fail;
    const char *p = data;
    for (size_t off = 0; off < len;) {
        size_t k = len - off < (1u << 20) ? len - off : (1u << 20);
        if (sym_archive_write_data(w, p + off, k) < 0)
            goto archive_fail;
        off += k;
    }
    if (sym_archive_write_close(w) != ARCHIVE_OK)
        goto archive_fail;
    if (lib_xfer_send(x, proto_encode_data(x->w, x->stream, PROTO_STDIN_EOF, NULL, 0)) < 0)
        goto out;
    rc = lib_xfer_result(x, "write", path);
    goto out;
archive_fail:
    lib_xfer_fail_unless_guest_said(x, "write", path, COCOON_E_IO, sym_archive_error_string(w));
out:
    if (rc < 0)
        lib_xfer_abandon(x);
    lib_tar_writer_free(w);
    if (e)
        sym_archive_entry_free(e);
    lib_xfer_close(x);
    return rc;
}

/* The single regular file of the archive into buf (zeros where the file has holes). */
static int read_one_file(struct lib_xfer *x, struct tar_reader *r, const char *path, char **out, size_t *len,
                         size_t max)
{
    struct tar_entry *e = malloc(sizeof(*e));
    int rc = -1, n;
    char *buf = NULL;
    if (!e)
        return lib_err(x->err, COCOON_E_NOMEM, "out of memory");
    if ((n = tar_next(r, e)) <= 0) {
        if (n < 0 && !r->source_failed)
            lib_err(x->err, COCOON_E_PROTOCOL, "the guest sent a bad archive: %s", r->err);
        else if (n == 0)
            lib_err(x->err, COCOON_E_PROTOCOL, "the guest sent no file");
        lib_xfer_explain_failure(x, "read", path);
        goto out;
    }
    if (e->type != TAR_FILE) {
        lib_err(x->err, COCOON_E_INVALID, "read %s: not a regular file%s", path,
                e->type == TAR_DIR ? " (a directory)" : "");
        goto out;
    }
    if (e->size > max) {
        lib_err(x->err, COCOON_E_INVALID, "read %s: the file has %llu bytes, more than the %zu allowed", path,
                (unsigned long long)e->size, max);
        goto out;
    }
    if (!(buf = calloc(1, (size_t)e->size + 1))) {
        lib_err(x->err, COCOON_E_NOMEM, "out of memory");
        goto out;
    }
    const void *data;
    size_t dlen;
    uint64_t off;
    while ((n = tar_data(r, &data, &dlen, &off)) == 1)
        memcpy(buf + off, data, dlen); /* the reader keeps every piece inside e->size */
    *len = (size_t)e->size;
    if (n == 0 && (n = tar_next(r, e)) > 0) {
        lib_err(x->err, COCOON_E_PROTOCOL, "the guest sent more than the one file asked for");
        lib_xfer_explain_failure(x, "read", path);
        goto out;
    }
    if (n < 0) {
        if (!r->source_failed)
            lib_err(x->err, COCOON_E_PROTOCOL, "the guest sent a bad archive: %s", r->err);
        lib_xfer_explain_failure(x, "read", path);
        goto out;
    }
    *out = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    free(e);
    return rc;
}

int lib_file_read_xfer(struct lib_xfer *x, const char *path, void **data, size_t *len, size_t max, cocoon_error *err)
{
    if (lib_xfer_open_stream(x, PROTO_FILE_GET, path, PROTO_FILE_FOLLOW) < 0)
        return -1;
    struct tar_reader r;
    if (tar_reader_init(&r, lib_xfer_read_stdout, x) < 0)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    char *buf = NULL;
    size_t got = 0;
    int rc = read_one_file(x, &r, path, &buf, &got, max);
    tar_reader_free(&r);
    if (rc == 0 && lib_xfer_result(x, "read", path) == 0) {
        *data = buf;
        *len = got;
        return 0;
    }
    if (rc == 0)
        free(buf);
    else if (!x->done && !x->failed) /* refused here: stop the guest's side */
        lib_xfer_send(x, proto_encode_signal(x->w, x->stream, 9));
    return -1;
}

int cocoon_file_read(cocoon_box *box, const char *path, void **data, size_t *len, size_t max, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !path || !*path || !data || !len)
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_read: NULL argument");
    *data = NULL;
    *len = 0;
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    int rc = lib_file_read_xfer(x, path, data, len, max, err);
    lib_xfer_close(x);
    return rc;
}

/* ---- trees ---- */

int cocoon_copy_to_box_opts(cocoon_box *box, const char *host_path, const char *box_path,
                            const cocoon_copy_options *opts, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !host_path || !box_path || !*host_path || !*box_path)
        return lib_err(err, COCOON_E_INVALID, "cocoon_copy_to_box: empty argument");
    struct lib_copy_limits lim;
    if (lib_copy_limits(opts, &lim, err) < 0)
        return -1;
    struct stat st;
    if (lstat(host_path, &st) != 0)
        return lib_err(err, errno == ENOENT ? COCOON_E_NOT_FOUND : COCOON_E_IO, "%s: %s", host_path, strerror(errno));
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    lib_xfer_set_timeouts(x, lim.idle_timeout_ms, lim.timeout_ms);
    int rc = lib_copy_to_xfer(x, host_path, box_path, err);
    lib_xfer_close(x);
    return rc;
}

int cocoon_copy_from_box_opts(cocoon_box *box, const char *box_path, const char *host_path,
                              const cocoon_copy_options *opts, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !host_path || !box_path || !*host_path || !*box_path)
        return lib_err(err, COCOON_E_INVALID, "cocoon_copy_from_box: empty argument");
    struct lib_copy_limits lim;
    char dir[PATH_MAX], name[NAME_MAX + 1], top[NAME_MAX + 1];
    if (lib_copy_limits(opts, &lim, err) < 0 || from_box_names(box_path, host_path, dir, name, top, err) < 0)
        return -1; /* before connecting: a bad destination is said first */
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    lib_xfer_set_timeouts(x, lim.idle_timeout_ms, lim.timeout_ms);
    int rc = lib_copy_from_xfer(x, box_path, host_path, &lim, err);
    lib_xfer_close(x);
    return rc;
}

int cocoon_copy_to_box(cocoon_box *box, const char *host_path, const char *box_path, cocoon_error *err)
{
    return cocoon_copy_to_box_opts(box, host_path, box_path, NULL, err);
}

int cocoon_copy_from_box(cocoon_box *box, const char *box_path, const char *host_path, cocoon_error *err)
{
    return cocoon_copy_from_box_opts(box, box_path, host_path, NULL, err);
}
