/* File routes of `cocoon serve`, in BoxLite's shape:
 * - PUT /v1/boxes/{id}/files?path=P[&overwrite=false]: a tar archive into the box. An
 *   archive of one regular file, with P not ending in '/' and not an existing directory,
 *   becomes the file P; otherwise P is a directory (made with its parents when missing)
 *   the entries go into. The body is spooled first so that the shape is known before
 *   the box is touched; libcocoon checks every entry again as it goes in.
 * - GET /v1/boxes/{id}/files?path=P: a tar archive of P (its top entry named after P's
 *   last component), checked entry by entry as it leaves the guest. A missing P is a
 *   404 before any byte is sent. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"
#include "serve/spool.h"
#include "serve/worker.h"

#define FILES_PATH_MAX 4096
#define FILES_DEPTH_MAX 128 /* components made by one mkdir -p */

int begin_files_upload(struct req *r) { return r->method == M_PUT ? spool_begin(r) : 0; }

/* ?path=: absolute, bounded, no NUL (libmicrohttpd would have cut it: the length says). */
static const char *query_path(struct req *r)
{
    const char *p = serve_query(r, "path");
    if (!p || !*p) {
        serve_error(r, 400, "invalid_argument", "the query parameter path (an absolute path in the box) is required");
        return NULL;
    }
    if (p[0] != '/' || strlen(p) >= FILES_PATH_MAX) {
        serve_error(r, 400, "invalid_argument", "path must be absolute and shorter than %d bytes", FILES_PATH_MAX);
        return NULL;
    }
    return p;
}

/* ---- the spooled archive ---- */

struct scan {
    size_t entries;  /* without "." */
    int single_file; /* exactly one entry, a regular file */
    char error[512];
};

static int skip_name(const char *name) { return !strcmp(name, ".") || !strcmp(name, "./"); }

static struct archive *open_spool(int fd)
{
    struct archive *a = archive_read_new();
    if (!a)
        return NULL;
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (lseek(fd, 0, SEEK_SET) < 0 || archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
        archive_read_free(a);
        return NULL;
    }
    return a;
}

static int scan_spool(int fd, struct scan *s)
{
    memset(s, 0, sizeof(*s));
    struct archive *a = open_spool(fd);
    if (!a) {
        snprintf(s->error, sizeof(s->error), "the body is not a tar archive");
        return -1;
    }
    struct archive_entry *e;
    int rc, regular = 0;
    while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (name && skip_name(name))
            continue;
        s->entries++;
        regular += archive_entry_filetype(e) == AE_IFREG && !archive_entry_hardlink(e);
    }
    if (rc != ARCHIVE_EOF)
        snprintf(s->error, sizeof(s->error), "the body is not a tar archive: %s",
                 archive_error_string(a) ? archive_error_string(a) : "unreadable");
    archive_read_free(a);
    s->single_file = s->entries == 1 && regular == 1;
    return rc == ARCHIVE_EOF ? 0 : -1;
}

struct spool_reader {
    int fd;
    off_t off;
};

static long read_spool(void *user, void *buf, size_t cap)
{
    struct spool_reader *sr = user;
    for (;;) {
        ssize_t n = pread(sr->fd, buf, cap, sr->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0)
            sr->off += n;
        return n < 0 ? -1 : (long)n;
    }
}

/* A generated archive, produced as the reader asks for it: libarchive writes into
 * `buf` (unblocked, so each write lands at once) and read_generated hands it out. */
struct generated {
    struct archive *in; /* the spooled archive (the renamed single file) */
    struct archive *out;
    char *buf;
    size_t len, off, cap;
    int stage; /* 0: header not written, 1: copying data, 2: closed */
    char name[FILES_PATH_MAX];
    int failed;
};

static la_ssize_t gen_write(struct archive *a, void *client, const void *data, size_t len)
{
    struct generated *g = client;
    if (g->len + len > g->cap) {
        size_t cap = (g->len + len) * 2;
        char *grown = realloc(g->buf, cap);
        if (!grown)
            return -1;
        g->buf = grown;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, data, len);
    g->len += len;
    return (la_ssize_t)len;
}

static struct archive *gen_writer(struct generated *g)
{
    struct archive *w = archive_write_new();
    if (!w)
        return NULL;
    if (archive_write_set_format_pax_restricted(w) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(w, 0) != ARCHIVE_OK ||
        archive_write_open(w, g, NULL, gen_write, NULL) != ARCHIVE_OK) {
        archive_write_free(w);
        return NULL;
    }
    return w;
}

/* Produces more of the renamed single-file archive into g->buf. */
static int gen_step(struct generated *g)
{
    if (g->stage == 0) {
        struct archive_entry *e;
        int rc;
        while ((rc = archive_read_next_header(g->in, &e)) == ARCHIVE_OK && skip_name(archive_entry_pathname(e)))
            ;
        if (rc != ARCHIVE_OK)
            return -1;
        struct archive_entry *copy = archive_entry_clone(e);
        if (!copy)
            return -1;
        archive_entry_set_pathname(copy, g->name);
        rc = archive_write_header(g->out, copy);
        archive_entry_free(copy);
        if (rc != ARCHIVE_OK)
            return -1;
        g->stage = 1;
        return 0;
    }
    if (g->stage == 1) {
        char chunk[65536];
        la_ssize_t n = archive_read_data(g->in, chunk, sizeof(chunk));
        if (n < 0)
            return -1;
        if (n > 0)
            return archive_write_data(g->out, chunk, (size_t)n) == n ? 0 : -1;
        if (archive_write_close(g->out) != ARCHIVE_OK)
            return -1;
        g->stage = 2;
    }
    return 0;
}

static long read_generated(void *user, void *buf, size_t cap)
{
    struct generated *g = user;
    while (g->off == g->len) {
        g->off = g->len = 0;
        if (g->stage == 2)
            return 0;
        if (gen_step(g) < 0) {
            g->failed = 1;
            return -1;
        }
    }
    size_t n = g->len - g->off < cap ? g->len - g->off : cap;
    memcpy(buf, g->buf + g->off, n);
    g->off += n;
    return (long)n;
}

/* A whole small archive of directories "a", "a/b", ... (mode 0755) in memory. */
static int dirs_archive(struct generated *g, const char *rel)
{
    struct archive *w = gen_writer(g);
    if (!w)
        return -1;
    char path[FILES_PATH_MAX];
    int rc = 0;
    for (const char *p = rel; rc == 0 && *p;) {
        const char *slash = strchr(p, '/');
        size_t upto = slash ? (size_t)(slash - rel) : strlen(rel);
        if (upto >= sizeof(path)) {
            rc = -1;
            break;
        }
        memcpy(path, rel, upto);
        path[upto] = '\0';
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_perm(e, 0755);
        archive_entry_set_mtime(e, time(NULL), 0);
        rc = archive_write_header(w, e) == ARCHIVE_OK ? 0 : -1;
        archive_entry_free(e);
        p = slash ? slash + 1 : p + strlen(p);
    }
    if (archive_write_close(w) != ARCHIVE_OK)
        rc = -1;
    archive_write_free(w);
    g->stage = 2;
    return rc;
}

/* mkdir -p dir in the box: the deepest existing ancestor receives the missing part. */
static int make_dirs(cocoon_box *box, const char *dir, cocoon_error *err)
{
    char parent[FILES_PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", dir);
    for (int depth = 0; depth < FILES_DEPTH_MAX; depth++) {
        char *slash = strrchr(parent, '/');
        if (!slash)
            break;
        if (slash == parent)
            slash[1] = '\0';
        else
            *slash = '\0';
        const char *rel = dir + strlen(parent);
        while (*rel == '/')
            rel++;
        struct generated g = {0};
        if (dirs_archive(&g, rel) < 0) {
            free(g.buf);
            err->code = COCOON_E_NOMEM;
            snprintf(err->message, sizeof(err->message), "cannot build the directories of %.1900s", dir);
            return -1;
        }
        int rc = cocoon_tar_to_box(box, parent, read_generated, &g, COCOON_TAR_NO_OVERWRITE, NULL, err);
        free(g.buf);
        if (rc == 0 || err->code != COCOON_E_NOT_FOUND)
            return rc;
        if (!strcmp(parent, "/"))
            break;
    }
    return -1;
}

static int put_dir(cocoon_box *box, const char *dir, struct spool *u, unsigned flags, cocoon_error *err)
{
    struct spool_reader sr = {.fd = u->fd};
    int rc = cocoon_tar_to_box(box, dir, read_spool, &sr, flags, NULL, err);
    if (rc < 0 && err->code == COCOON_E_NOT_FOUND) {
        cocoon_error mk;
        if (make_dirs(box, dir, &mk) < 0) {
            *err = mk;
            return -1;
        }
        sr.off = 0;
        rc = cocoon_tar_to_box(box, dir, read_spool, &sr, flags, NULL, err);
    }
    return rc;
}

/* The single file as the file `path`: 1 when path turned out to be a directory (the
 * caller puts the file into it instead), 0 done, -1 error. */
static int put_file(cocoon_box *box, const char *path, struct spool *u, unsigned flags, cocoon_error *err)
{
    char dir[FILES_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = path + (slash - dir) + 1;
    if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        struct generated g = {0};
        g.in = open_spool(u->fd);
        g.out = g.in ? gen_writer(&g) : NULL;
        snprintf(g.name, sizeof(g.name), "%s", base);
        int rc = g.out ? cocoon_tar_to_box(box, dir, read_generated, &g, flags, NULL, err) : -1;
        if (!g.out) {
            err->code = COCOON_E_NOMEM;
            snprintf(err->message, sizeof(err->message), "cannot read the upload");
        }
        if (g.out)
            archive_write_free(g.out);
        if (g.in)
            archive_read_free(g.in);
        free(g.buf);
        if (rc == 0)
            return 0;
        if (strstr(err->message, "a directory with a non-directory")) /* path is a directory */
            return 1;
        if (err->code != COCOON_E_NOT_FOUND || attempt == 1)
            return -1;
        cocoon_error mk;
        if (make_dirs(box, dir, &mk) < 0) {
            *err = mk;
            return -1;
        }
    }
    return -1;
}

/* Everything about an upload that can be refused without the box: checked before the
 * box is booted, so a refused upload changes nothing. */
struct put_plan {
    struct spool *u;
    struct scan s;
    unsigned flags;
};

static int files_put_check(struct req *r, struct put_plan *p)
{
    int overwrite = serve_query(r, "overwrite") ? serve_query_bool(r, "overwrite") : 1;
    if (overwrite < 0)
        return serve_error(r, 400, "invalid_argument", "overwrite must be true or false");
    p->u = spool_done(r, "a tar archive (application/x-tar)");
    if (!p->u)
        return -1;
    if (scan_spool(p->u->fd, &p->s) < 0)
        return serve_error(r, 400, "invalid_argument", "%s", p->s.error);
    p->flags = overwrite ? 0 : COCOON_TAR_NO_OVERWRITE;
    return 0;
}

static int files_put(struct req *r, cocoon_box *box, const char *path, struct put_plan *p)
{
    cocoon_error err = {0};
    size_t len = strlen(path);
    int rc = 1;
    if (p->s.single_file && path[len - 1] != '/' && len > 1)
        rc = put_file(box, path, p->u, p->flags, &err);
    if (rc == 1)
        rc = put_dir(box, path, p->u, p->flags, &err);
    if (rc < 0) {
        if (err.code == COCOON_E_STATE && strstr(err.message, "may not be replaced"))
            return serve_error(r, 409, "already_exists", "%s", err.message);
        return serve_cocoon_error(r, &err);
    }
    return serve_empty(r, 204);
}

/* ---- GET: the archive out of the box ---- */

struct download {
    char box[ROUTE_ID_MAX];
    char path[FILES_PATH_MAX];
    int follow;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started, finished, refs;
    cocoon_error err;
    int fd;      /* the pipe's write end, owned by the worker */
    int read_fd; /* its read end, owned by the response */
};

static void download_put(void *arg)
{
    struct download *d = arg;
    pthread_mutex_lock(&d->lock);
    int last = --d->refs == 0;
    pthread_mutex_unlock(&d->lock);
    if (last) {
        pthread_mutex_destroy(&d->lock);
        pthread_cond_destroy(&d->cond);
        free(d);
    }
}

static int download_write(void *user, const void *data, size_t len)
{
    struct download *d = user;
    pthread_mutex_lock(&d->lock);
    if (!d->started) {
        d->started = 1;
        pthread_cond_broadcast(&d->cond);
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(d->fd, (const char *)data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1; /* the client went away */
        off += (size_t)n;
    }
    return 0;
}

/* The response's side: the pipe's bytes, then a clean end only when the guest's archive
 * was whole; a failure after the first bytes cuts the connection, so the client sees an
 * error rather than a short archive that looks complete. */
static long download_produce(void *ctx, char *buf, size_t cap)
{
    struct download *d = ctx;
    for (;;) {
        ssize_t n = read(d->read_fd, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != 0)
            return n < 0 ? -1 : (long)n;
        pthread_mutex_lock(&d->lock);
        while (!d->finished)
            pthread_cond_wait(&d->cond, &d->lock);
        int bad = d->err.code != 0;
        pthread_mutex_unlock(&d->lock);
        return bad ? -1 : 0;
    }
}

static void download_done(void *ctx)
{
    struct download *d = ctx;
    close(d->read_fd);
    download_put(d);
}

static void download_run(void *arg, int fd)
{
    struct download *d = arg;
    d->fd = fd;
    cocoon_runtime *rt;
    cocoon_box *box;
    cocoon_error err = {0};
    int rc = serve_runtime_open(&rt, &err);
    if (rc == 0) {
        rc = cocoon_box_open(rt, d->box, &box, &err);
        if (rc == 0) {
            rc = cocoon_tar_from_box(box, d->path, download_write, d, d->follow ? COCOON_TAR_FOLLOW : 0, NULL, &err);
            cocoon_box_close(box);
        }
        cocoon_runtime_close(rt);
    }
    pthread_mutex_lock(&d->lock);
    if (rc < 0)
        d->err = err;
    else
        d->err.code = 0;
    d->finished = 1;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static int files_get(struct req *r, cocoon_box *box, const char *path, int follow)
{
    struct download *d = calloc(1, sizeof(*d));
    if (!d)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    snprintf(d->box, sizeof(d->box), "%s", cocoon_box_id(box));
    snprintf(d->path, sizeof(d->path), "%s", path);
    d->follow = follow;
    d->refs = 2; /* the worker's and ours */
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    int fd = worker_pipe(download_run, d, download_put);
    if (fd < 0) {
        download_put(d);
        return serve_error(r, 503, "resource_exhausted", "cannot start the download: %s", strerror(errno));
    }
    /* Answer only once the guest sent the first bytes (200) or failed before (an error). */
    pthread_mutex_lock(&d->lock);
    while (!d->started && !d->finished)
        pthread_cond_wait(&d->cond, &d->lock);
    int failed = !d->started && d->err.code;
    cocoon_error err = d->err;
    pthread_mutex_unlock(&d->lock);
    if (failed) {
        close(fd);
        download_put(d);
        return serve_cocoon_error(r, &err);
    }
    d->read_fd = fd;
    return serve_stream(r, 200, "application/x-tar", download_produce, d, download_done);
}

int handle_files(struct req *r)
{
    const char *path = query_path(r);
    if (!path)
        return -1;
    struct put_plan plan = {0};
    int follow = serve_query_bool(r, "follow_symlinks");
    if (r->method == M_PUT ? files_put_check(r, &plan) < 0 : follow < 0) {
        if (!r->answered)
            serve_error(r, 400, "invalid_argument", "follow_symlinks must be true or false");
        return -1;
    }
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_running_box(r, &rt, &box) < 0)
        return -1;
    int rc = r->method == M_PUT ? files_put(r, box, path, &plan) : files_get(r, box, path, follow);
    serve_close_runtime_box(rt, box);
    return rc;
}
