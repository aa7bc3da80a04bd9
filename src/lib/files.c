/* Files in and out of a running box: cocoon_copy_to_box / cocoon_copy_from_box (trees,
 * streamed as tar through FILE_PUT / FILE_GET streams) and cocoon_file_write /
 * cocoon_file_read (one file from memory). Each call uses its own control connection
 * (lib_xfer), so transfers run beside execs and each other without sharing a pump.
 * libarchive writes and reads the tar; extraction on the host refuses names that
 * leave the target directory, hard links, and writes through symlinks. */
#include "lib/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

#define XFER_STREAM 1u
#define STDIN_CHUNK (60u * 1024u)
#define CONNECT_TIMEOUT_MS 10000
#define WARN_MAX 1024

/* ---- lib_xfer: one private stream over a private control connection ---- */

/* Records the first failure as "box ID: <prefix><detail>". */
static int xfer_fail(struct lib_xfer *x, int code, const char *prefix, const char *detail)
{
    if (!x->failed) {
        x->failed = 1;
        lib_err(x->err, code, "box %s: %s%s", x->box->id, prefix, detail);
    }
    return -1;
}

static void xfer_release(struct lib_xfer *x);

static int xfer_init(cocoon_box *box, struct lib_xfer *x, cocoon_error *err)
{
    memset(x, 0, sizeof(*x));
    x->box = box;
    x->err = err;
    x->fd = -1;
    x->stream = XFER_STREAM;
    if (!lib_box_running(box->dir, NULL))
        return lib_err(err, COCOON_E_STATE, "box %s is not running (start it with `cocoon start %s`)", box->id,
                       box->name[0] ? box->name : box->id);
    x->w = malloc(sizeof(*x->w));
    x->buf = malloc(PROTO_MAX_PAYLOAD);
    if (!x->w || !x->buf) {
        xfer_release(x);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    int dirfd = open(box->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        xfer_release(x);
        return lib_err(err, COCOON_E_NOT_FOUND, "box %s: %s: %s", box->id, box->dir, strerror(errno));
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc = -1, e = 0;
    if (util_unix_path(dirfd, "ctl.sock", sa.sun_path, sizeof(sa.sun_path)) == 0)
        x->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (x->fd >= 0) {
        rc = connect(x->fd, (struct sockaddr *)&sa, sizeof(sa));
        e = errno;
    }
    close(dirfd);
    if (rc < 0) {
        xfer_release(x);
        return lib_err(err, COCOON_E_STATE, "box %s is not running (cannot connect to its control socket: %s)", box->id,
                       strerror(e));
    }
    util_set_nonblock(x->fd, 1);
    if (proto_conn_init(&x->conn, x->fd, 0) < 0) {
        xfer_release(x);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    x->conn_init = 1;
    struct proto_header h;
    const uint8_t *p;
    if (lib_xfer_next(x, &h, &p, 1) < 0) {
        xfer_release(x);
        return -1;
    }
    struct proto_vmm_hello hello;
    if (lib_ctl_hello(box, &h, p, &hello, err) < 0) {
        xfer_release(x);
        return -1;
    }
    return 0;
}

struct lib_xfer *lib_xfer_open(cocoon_box *box, cocoon_error *err)
{
    struct lib_xfer *x = malloc(sizeof(*x));
    if (!x) {
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        return NULL;
    }
    if (xfer_init(box, x, err) < 0) {
        free(x);
        return NULL;
    }
    return x;
}

void lib_xfer_close(struct lib_xfer *x)
{
    xfer_release(x);
    free(x);
}

static void xfer_release(struct lib_xfer *x)
{
    if (x->conn_init)
        proto_conn_free(&x->conn);
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
    x->conn_init = 0;
    free(x->w);
    free(x->buf);
    x->w = NULL;
    x->buf = NULL;
}

int lib_xfer_send(struct lib_xfer *x, size_t len)
{
    if (len == 0)
        return xfer_fail(x, COCOON_E_INVALID, "", "message too large for one frame");
    if (proto_conn_send(&x->conn, x->w->buf, len) < 0)
        return xfer_fail(x, COCOON_E_VMM, "cannot send to the monitor: ", strerror(errno));
    return 0;
}

/* Next frame from the monitor (any stream), waiting for it and flushing our output
 * meanwhile. With any_stream 0, frames for other streams are skipped. */
int lib_xfer_next(struct lib_xfer *x, struct proto_header *h, const uint8_t **p, int any_stream)
{
    for (;;) {
        int rc = proto_conn_next(&x->conn, h, p);
        if (rc == PROTO_OK) {
            if (any_stream || h->stream == x->stream)
                return 0;
            continue;
        }
        if (rc != PROTO_NEED_MORE)
            return xfer_fail(x, COCOON_E_PROTOCOL, "bad frame from the monitor: ", proto_strerror(rc));
        struct pollfd pf = {x->fd, (short)(POLLIN | (proto_conn_pending(&x->conn) ? POLLOUT : 0)), 0};
        int n = poll(&pf, 1, -1);
        if (n < 0 && errno != EINTR)
            return xfer_fail(x, COCOON_E_IO, "poll: ", strerror(errno));
        if (n <= 0)
            continue;
        if ((pf.revents & POLLOUT) && proto_conn_flush(&x->conn) < 0)
            return xfer_fail(x, COCOON_E_VMM, "", "the monitor closed the connection");
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            long r = proto_conn_read(&x->conn);
            if (r == 0)
                return xfer_fail(x, COCOON_E_VMM, "",
                                 "the box stopped during the transfer (monitor closed the connection)");
            if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return xfer_fail(x, COCOON_E_VMM, "reading from the monitor: ", strerror(errno));
        }
    }
}

static int send_credit(struct lib_xfer *x, uint32_t bytes)
{
    if (bytes == 0 || x->done)
        return 0;
    return lib_xfer_send(x, proto_encode_credit(x->w, x->stream, bytes));
}

/* Handles a frame of our stream other than STDOUT. -1 on a protocol error. */
int lib_xfer_handle(struct lib_xfer *x, const struct proto_header *h, const uint8_t *p)
{
    switch (h->type) {
    case PROTO_STARTED: {
        struct proto_started m;
        if (proto_decode_started(p, h->len, &m) != PROTO_OK)
            return xfer_fail(x, COCOON_E_PROTOCOL, "", "malformed STARTED");
        x->started = 1;
        x->credit += m.window;
        return 0;
    }
    case PROTO_CREDIT: {
        uint32_t bytes;
        if (proto_decode_u32_field(p, h->len, PT_BYTES, &bytes) != PROTO_OK)
            return xfer_fail(x, COCOON_E_PROTOCOL, "", "malformed CREDIT");
        x->credit += bytes;
        return 0;
    }
    case PROTO_STDERR: {
        size_t room = sizeof(x->errtext) - 1 - x->errlen;
        size_t k = h->len < room ? h->len : room;
        memcpy(x->errtext + x->errlen, p, k);
        x->errlen += k;
        x->errtext[x->errlen] = 0;
        return send_credit(x, h->len);
    }
    case PROTO_STDOUT: return send_credit(x, h->len); /* nobody reads it here */
    case PROTO_ERROR: {
        struct proto_error_msg m;
        if (proto_decode_error(p, h->len, &m) != PROTO_OK)
            snprintf(m.message, sizeof(m.message), "malformed ERROR message");
        snprintf(x->errmsg, sizeof(x->errmsg), "%s", m.message);
        x->errcode = (int)m.code;
        if (!x->started)
            x->done = 1;
        return 0;
    }
    case PROTO_EXIT: {
        struct proto_exit m;
        if (proto_decode_exit(p, h->len, &m) != PROTO_OK)
            return xfer_fail(x, COCOON_E_PROTOCOL, "", "malformed EXIT");
        x->exited = 1;
        x->exit_code = m.signal ? 128 + (int)m.signal : m.code;
        x->done = 1;
        return 0;
    }
    default: return 0;
    }
}

/* One frame of our stream handled. */
static int xfer_step(struct lib_xfer *x)
{
    struct proto_header h;
    const uint8_t *p;
    if (lib_xfer_next(x, &h, &p, 0) < 0)
        return -1;
    return lib_xfer_handle(x, &h, p);
}

static int xfer_open_stream(struct lib_xfer *x, uint16_t type, const char *path, uint32_t flags)
{
    if (strlen(path) >= PROTO_MAX_STRING)
        return xfer_fail(x, COCOON_E_INVALID, "", "the guest path is too long");
    struct proto_file *m = calloc(1, sizeof(*m));
    if (!m)
        return xfer_fail(x, COCOON_E_NOMEM, "", "out of memory");
    snprintf(m->path, sizeof(m->path), "%s", path);
    m->window = PROTO_DEFAULT_WINDOW;
    m->flags = flags;
    int rc = lib_xfer_send(x, proto_encode_file(x->w, x->stream, type, m));
    free(m);
    return rc;
}

/* The end of the transfer: the guest's verdict as an error, or 0. */
static int xfer_result(struct lib_xfer *x, const char *what, const char *path)
{
    while (!x->done)
        if (xfer_step(x) < 0)
            return -1;
    if (x->failed)
        return -1;
    char *t = x->errtext;
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == ' '))
        t[--n] = 0;
    if (!x->exited || x->exit_code != 0) {
        const char *why = t[0] ? t : x->errmsg[0] ? x->errmsg : "the transfer failed in the guest";
        int code = strstr(why, "No such file") ? COCOON_E_NOT_FOUND : COCOON_E_IO;
        if (x->errmsg[0] && !x->started)
            code = x->errcode == EPERM || x->errcode == EINVAL ? COCOON_E_UNSUPPORTED : COCOON_E_STATE;
        lib_err(x->err, code, "%s %s:%s: %s", what, x->box->name[0] ? x->box->name : x->box->id, path, why);
        return -1;
    }
    return 0;
}

/* After a failure on our side: the guest usually said why it stopped (its verdict
 * goes into err), else err gets ours. */
static void fail_unless_guest_said(struct lib_xfer *x, const char *what, const char *path, int code, const char *detail)
{
    if (!x->failed && xfer_result(x, what, path) == 0)
        lib_err(x->err, code, "%s %s: %s", what, path, detail);
}

/* Guest warnings of a successful transfer go into err->message with code 0. */
static void pass_warnings(struct lib_xfer *x, const char *extra)
{
    if (!x->err)
        return;
    x->err->code = COCOON_OK;
    snprintf(x->err->message, sizeof(x->err->message), "%s%s%s", x->errtext, x->errtext[0] && extra[0] ? "\n" : "",
             extra);
}

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

static void add_warning(char *w, size_t cap, const char *name, const char *what)
{
    size_t n = strlen(w);
    if (n + 1 < cap)
        snprintf(w + n, cap - n, "%s%s%s", n ? "\n" : "", name, what);
}

/* ---- to the box ---- */

static la_ssize_t put_write(struct archive *a, void *client, const void *buf, size_t len)
{
    struct lib_xfer *x = client;
    const char *p = buf;
    size_t sent = 0;
    while (sent < len) {
        while (!x->done && !x->failed && (!x->started || x->credit == 0))
            if (xfer_step(x) < 0)
                break;
        if (x->failed || x->done) {
            archive_set_error(a, EPIPE, "the guest stopped reading");
            return -1;
        }
        size_t n = len - sent;
        if (n > x->credit)
            n = (size_t)x->credit;
        if (n > STDIN_CHUNK)
            n = STDIN_CHUNK;
        if (lib_xfer_send(x, proto_encode_data(x->w, x->stream, PROTO_STDIN, p + sent, n)) < 0) {
            archive_set_error(a, EIO, "sending to the monitor failed");
            return -1;
        }
        x->credit -= n;
        sent += n;
    }
    return (la_ssize_t)len;
}

static struct archive *put_writer(struct lib_xfer *x)
{
    struct archive *w = archive_write_new();
    if (!w)
        return NULL;
    if (archive_write_set_format_pax(w) != ARCHIVE_OK || archive_write_set_bytes_per_block(w, 65536) ||
        archive_write_set_bytes_in_last_block(w, 1) || archive_write_open(w, x, NULL, put_write, NULL) != ARCHIVE_OK) {
        archive_write_free(w);
        return NULL;
    }
    return w;
}

static int write_zeros(struct archive *w, uint64_t n)
{
    static const char zeros[65536];
    while (n > 0) {
        size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
        if (archive_write_data(w, zeros, k) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

/* The data of the current disk entry; holes are fed as zeros, which the pax writer
 * drops again for a sparse entry (only data regions cross the channel). */
static int copy_entry_data(struct archive *disk, struct archive *w, int64_t size)
{
    const void *buf;
    size_t len;
    la_int64_t off;
    int64_t done = 0;
    int r;
    while ((r = archive_read_data_block(disk, &buf, &len, &off)) == ARCHIVE_OK) {
        if (off > done && write_zeros(w, (uint64_t)(off - done)) < 0)
            return -1;
        if (len && archive_write_data(w, buf, len) < 0)
            return -1;
        done = off + (int64_t)len;
    }
    if (r != ARCHIVE_EOF)
        return -2;
    if (done < size && write_zeros(w, (uint64_t)(size - done)) < 0)
        return -1;
    return 0;
}

int cocoon_copy_to_box(cocoon_box *box, const char *host_path, const char *box_path, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !host_path || !box_path || !*host_path || !*box_path)
        return lib_err(err, COCOON_E_INVALID, "cocoon_copy_to_box: empty argument");
    struct stat st;
    if (lstat(host_path, &st) != 0)
        return lib_err(err, errno == ENOENT ? COCOON_E_NOT_FOUND : COCOON_E_IO, "%s: %s", host_path, strerror(errno));
    char src[PATH_MAX], top[PATH_MAX];
    snprintf(src, sizeof(src), "%s", host_path);
    strip_slashes(src);
    snprintf(top, sizeof(top), "%s", base_of(src));
    if (!strcmp(top, ".") || !strcmp(top, "..") || !top[0] || !strcmp(src, "/")) {
        char real[PATH_MAX];
        if (!realpath(src, real) || !strcmp(real, "/"))
            return lib_err(err, COCOON_E_INVALID, "%s: name a file or directory other than /", host_path);
        snprintf(top, sizeof(top), "%s", base_of(real));
    }
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    int rc = -1;
    char warnings[WARN_MAX] = "";
    struct archive *disk = archive_read_disk_new(), *w = NULL;
    struct archive_entry *e = archive_entry_new();
    if (xfer_open_stream(x, PROTO_FILE_PUT, box_path, 0) < 0)
        goto out;
    if (!disk || !e || !(w = put_writer(x))) {
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        goto out;
    }
    archive_read_disk_set_symlink_physical(disk);
    archive_read_disk_set_behavior(disk,
                                   ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL | ARCHIVE_READDISK_NO_FFLAGS);
    if (archive_read_disk_open(disk, src) != ARCHIVE_OK) {
        lib_err(err, COCOON_E_IO, "%s: %s", host_path, archive_error_string(disk));
        goto out;
    }
    size_t srclen = strlen(src);
    for (;;) {
        archive_entry_clear(e);
        int r = archive_read_next_header2(disk, e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            lib_err(err, COCOON_E_IO, "%s: %s", host_path, archive_error_string(disk));
            goto out;
        }
        const char *name = archive_entry_pathname(e);
        if (r == ARCHIVE_WARN)
            add_warning(warnings, sizeof(warnings), name ? name : "?", ": skipped (unreadable)");
        if (archive_entry_filetype(e) == AE_IFDIR)
            archive_read_disk_descend(disk);
        mode_t type = archive_entry_filetype(e);
        if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
            add_warning(warnings, sizeof(warnings), name ? name : "?", ": special file skipped");
            continue;
        }
        /* name is src + "/rest": send it as top + "/rest" */
        char aname[PATH_MAX + 256];
        const char *rest = name && !strncmp(name, src, srclen) ? name + srclen : "";
        snprintf(aname, sizeof(aname), "%s%s", top, rest);
        archive_entry_set_pathname(e, aname);
        archive_entry_set_uname(e, NULL);
        archive_entry_set_gname(e, NULL);
        archive_entry_unset_atime(e);
        archive_entry_unset_ctime(e);
        archive_entry_unset_birthtime(e);
        if (archive_write_header(w, e) < ARCHIVE_WARN)
            goto archive_fail;
        if (type == AE_IFREG && archive_entry_size(e) > 0) {
            int c = copy_entry_data(disk, w, archive_entry_size(e));
            if (c == -2) {
                lib_err(err, COCOON_E_IO, "%s: %s", aname, archive_error_string(disk));
                goto out;
            }
            if (c < 0)
                goto archive_fail;
        }
        if (archive_write_finish_entry(w) < ARCHIVE_WARN)
            goto archive_fail;
    }
    if (archive_write_close(w) != ARCHIVE_OK)
        goto archive_fail;
    if (lib_xfer_send(x, proto_encode_data(x->w, x->stream, PROTO_STDIN_EOF, NULL, 0)) < 0)
        goto out;
    rc = xfer_result(x, "copy to", box_path);
    if (rc == 0)
        pass_warnings(x, warnings);
    goto out;
archive_fail:
    /* The guest usually said why it stopped reading. */
    fail_unless_guest_said(x, "copy to", box_path, COCOON_E_IO, archive_error_string(w));
out:
    if (w)
        archive_write_free(w);
    if (disk)
        archive_read_free(disk);
    if (e)
        archive_entry_free(e);
    lib_xfer_close(x);
    return rc;
}

/* ---- from the box ---- */

static la_ssize_t get_read(struct archive *a, void *client, const void **buf)
{
    struct lib_xfer *x = client;
    if (x->owed) {
        if (send_credit(x, x->owed) < 0)
            return -1;
        x->owed = 0;
    }
    for (;;) {
        if (x->done || x->failed)
            return 0;
        struct proto_header h;
        const uint8_t *p;
        if (lib_xfer_next(x, &h, &p, 0) < 0) {
            archive_set_error(a, EIO, "%s", x->err ? x->err->message : "transfer failed");
            return -1;
        }
        if (h.type == PROTO_STDOUT) {
            if (h.len == 0)
                continue;
            memcpy(x->buf, p, h.len);
            x->owed = h.len;
            *buf = x->buf;
            return (la_ssize_t)h.len;
        }
        if (lib_xfer_handle(x, &h, p) < 0)
            return -1;
    }
}

static struct archive *get_reader(struct lib_xfer *x)
{
    struct archive *r = archive_read_new();
    if (!r)
        return NULL;
    archive_read_support_format_tar(r);
    if (archive_read_open(r, x, NULL, get_read, NULL) != ARCHIVE_OK) {
        archive_read_free(r);
        return NULL;
    }
    return r;
}

/* An archive name from the guest as a safe relative path ("a/b"), first component
 * renamed when rename is set. -1 when it is absolute or climbs with "..". */
static int safe_name(const char *name, const char *rename, char *out, size_t cap)
{
    if (!name || name[0] == '/')
        return -1;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", name);
    size_t len = 0;
    int first = 1;
    out[0] = 0;
    char *save = NULL;
    for (char *c = strtok_r(tmp, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, "."))
            continue;
        if (!strcmp(c, ".."))
            return -1;
        int n = snprintf(out + len, cap - len, "%s%s", len ? "/" : "", first && rename ? rename : c);
        if (n < 0 || (size_t)n >= cap - len)
            return -1;
        len += (size_t)n;
        first = 0;
    }
    return len ? 0 : -1;
}

int cocoon_copy_from_box(cocoon_box *box, const char *box_path, const char *host_path, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !host_path || !box_path || !*host_path || !*box_path)
        return lib_err(err, COCOON_E_INVALID, "cocoon_copy_from_box: empty argument");
    /* Into an existing directory, or as a new name in an existing directory. */
    char dest[PATH_MAX], destdir[PATH_MAX], rename_buf[PATH_MAX];
    const char *rename = NULL;
    snprintf(dest, sizeof(dest), "%s", host_path);
    size_t dl = strlen(dest);
    int trailing = dl > 1 && dest[dl - 1] == '/';
    strip_slashes(dest);
    struct stat st;
    if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (!realpath(dest, destdir))
            return lib_err(err, COCOON_E_IO, "%s: %s", host_path, strerror(errno));
    } else {
        if (trailing)
            return lib_err(err, COCOON_E_NOT_FOUND, "%s: no such directory", host_path);
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%s", dest);
        char *slash = strrchr(parent, '/');
        snprintf(rename_buf, sizeof(rename_buf), "%s", slash ? slash + 1 : parent);
        if (slash == parent)
            parent[1] = 0;
        else if (slash)
            *slash = 0;
        else
            snprintf(parent, sizeof(parent), ".");
        if (!rename_buf[0] || !strcmp(rename_buf, ".") || !strcmp(rename_buf, ".."))
            return lib_err(err, COCOON_E_INVALID, "%s: not a valid destination", host_path);
        if (!realpath(parent, destdir) || stat(destdir, &st) != 0 || !S_ISDIR(st.st_mode))
            return lib_err(err, COCOON_E_NOT_FOUND, "%s: no such directory", parent);
        rename = rename_buf;
    }
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    int rc = -1;
    char warnings[WARN_MAX] = "";
    struct archive *r = NULL, *disk = archive_write_disk_new();
    if (xfer_open_stream(x, PROTO_FILE_GET, box_path, 0) < 0)
        goto out;
    if (!disk) {
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        goto out;
    }
    if (!(r = get_reader(x))) {
        /* Usually the guest refused (no such file...): its verdict says why. */
        fail_unless_guest_said(x, "copy from", box_path, COCOON_E_PROTOCOL, "the guest sent no archive");
        goto out;
    }
    /* No OWNER: files belong to the caller. The SECURE flags refuse writes through
     * symlinks (also ones this archive created) and ".."; names are checked and made
     * absolute below the real target directory by us (safe_name). */
    archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                             ARCHIVE_EXTRACT_SECURE_NODOTDOT);
    struct archive_entry *e;
    for (;;) {
        int h = archive_read_next_header(r, &e);
        if (h == ARCHIVE_EOF)
            break;
        if (h < ARCHIVE_WARN)
            goto read_fail;
        char rel[PATH_MAX], full[PATH_MAX * 2];
        const char *name = archive_entry_pathname(e);
        mode_t type = archive_entry_filetype(e);
        if (safe_name(name, rename, rel, sizeof(rel)) < 0) {
            lib_err(err, COCOON_E_PROTOCOL, "copy from %s: the guest sent an unsafe name \"%s\"; stopped", box_path,
                    name ? name : "");
            goto out;
        }
        if (archive_entry_hardlink(e) || (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)) {
            add_warning(warnings, sizeof(warnings), rel, ": hard link or special file skipped");
            continue;
        }
        snprintf(full, sizeof(full), "%s/%s", strcmp(destdir, "/") ? destdir : "", rel);
        archive_entry_set_pathname(e, full);
        int wh = archive_write_header(disk, e);
        if (wh < ARCHIVE_OK) {
            add_warning(warnings, sizeof(warnings), archive_error_string(disk), "");
            if (wh < ARCHIVE_WARN)
                goto write_fail;
        }
        const void *buf;
        size_t len;
        la_int64_t off;
        int dr;
        while ((dr = archive_read_data_block(r, &buf, &len, &off)) == ARCHIVE_OK)
            if (wh == ARCHIVE_OK && archive_write_data_block(disk, buf, len, off) < ARCHIVE_OK)
                goto write_fail;
        if (dr != ARCHIVE_EOF)
            goto read_fail;
        if (archive_write_finish_entry(disk) < ARCHIVE_WARN)
            goto write_fail;
    }
    if (archive_write_close(disk) != ARCHIVE_OK)
        goto write_fail;
    rc = xfer_result(x, "copy from", box_path);
    if (rc == 0)
        pass_warnings(x, warnings);
    goto out;
read_fail:
    fail_unless_guest_said(x, "copy from", box_path, COCOON_E_PROTOCOL, archive_error_string(r));
    goto out;
write_fail:
    lib_err(err, COCOON_E_IO, "copy from %s: %s", box_path, archive_error_string(disk));
out:
    if (r)
        archive_read_free(r);
    if (disk)
        archive_write_free(disk);
    lib_xfer_close(x);
    return rc;
}

/* ---- single files from memory ---- */

int cocoon_file_write(cocoon_box *box, const char *path, const void *data, size_t len, unsigned mode, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !path || !*path || (!data && len))
        return lib_err(err, COCOON_E_INVALID, "cocoon_file_write: NULL argument");
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    int rc = -1;
    struct archive *w = NULL;
    struct archive_entry *e = archive_entry_new();
    if (xfer_open_stream(x, PROTO_FILE_PUT, path, PROTO_FILE_EXACT) < 0)
        goto out;
    if (!e || !(w = put_writer(x))) {
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        goto out;
    }
    archive_entry_set_pathname(e, "file"); /* renamed to the last component of path */
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, (mode ? mode : 0644) & 07777);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_mtime(e, time(NULL), 0);
    if (archive_write_header(w, e) < ARCHIVE_WARN)
        goto archive_fail;
    const char *p = data;
    for (size_t off = 0; off < len;) {
        size_t k = len - off < (1u << 20) ? len - off : (1u << 20);
        if (archive_write_data(w, p + off, k) < 0)
            goto archive_fail;
        off += k;
    }
    if (archive_write_close(w) != ARCHIVE_OK)
        goto archive_fail;
    if (lib_xfer_send(x, proto_encode_data(x->w, x->stream, PROTO_STDIN_EOF, NULL, 0)) < 0)
        goto out;
    rc = xfer_result(x, "write", path);
    goto out;
archive_fail:
    fail_unless_guest_said(x, "write", path, COCOON_E_IO, archive_error_string(w));
out:
    if (w)
        archive_write_free(w);
    if (e)
        archive_entry_free(e);
    lib_xfer_close(x);
    return rc;
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
    int rc = -1;
    char *buf = NULL;
    struct archive *r = NULL;
    if (xfer_open_stream(x, PROTO_FILE_GET, path, PROTO_FILE_FOLLOW) < 0)
        goto out;
    if (!(r = get_reader(x))) {
        fail_unless_guest_said(x, "read", path, COCOON_E_PROTOCOL, "the guest sent no archive");
        goto out;
    }
    struct archive_entry *e;
    int h = archive_read_next_header(r, &e);
    if (h < ARCHIVE_WARN) {
        fail_unless_guest_said(x, "read", path, COCOON_E_PROTOCOL, archive_error_string(r));
        goto out;
    }
    if (h == ARCHIVE_EOF) {
        if (xfer_result(x, "read", path) == 0)
            lib_err(err, COCOON_E_PROTOCOL, "read %s: the guest sent no file", path);
        goto out;
    }
    if (archive_entry_filetype(e) != AE_IFREG) {
        lib_err(err, COCOON_E_INVALID, "read %s: not a regular file%s", path,
                archive_entry_filetype(e) == AE_IFDIR ? " (a directory)" : "");
        goto drain;
    }
    la_int64_t size = archive_entry_size(e);
    if (size < 0 || (uint64_t)size > max) {
        lib_err(err, COCOON_E_INVALID, "read %s: the file has %lld bytes, more than the %zu allowed", path,
                (long long)size, max);
        goto drain;
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        lib_err(err, COCOON_E_NOMEM, "out of memory");
        goto drain;
    }
    size_t got = 0;
    while (got < (size_t)size) {
        la_ssize_t n = archive_read_data(r, buf + got, (size_t)size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != (size_t)size) {
        fail_unless_guest_said(x, "read", path, COCOON_E_PROTOCOL, "the file data ended early");
        goto out;
    }
    buf[got] = 0;
    while (archive_read_next_header(r, &e) == ARCHIVE_OK)
        ; /* consume the end of the archive */
    if (xfer_result(x, "read", path) < 0)
        goto out;
    *data = buf;
    *len = got;
    buf = NULL;
    rc = 0;
    goto out;
drain:
    /* Stop the guest and let its EXIT arrive so the connection ends cleanly. */
    x->err = NULL; /* keep the message already set */
    lib_xfer_send(x, proto_encode_signal(x->w, x->stream, 9));
    while (!x->done && !x->failed && xfer_step(x) == 0)
        ;
out:
    free(buf);
    if (r)
        archive_read_free(r);
    lib_xfer_close(x);
    return rc;
}
