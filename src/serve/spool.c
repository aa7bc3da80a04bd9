/* Spooling of request bodies to temporary files for `cocoon serve` (see spool.h). */
#include "serve/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/serve.h"
#include "util/util.h"

static void spool_free(void *state)
{
    struct spool *u = state;
    if (u->fd >= 0)
        close(u->fd);
    if (u->path[0])
        unlink(u->path);
    free(u);
}

static int spool_chunk(void *ctx, const char *data, size_t len)
{
    struct spool *u = ctx;
    if (u->size + len > serve_cfg.max_upload) {
        u->too_big = 1;
        return -1;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(u->fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            u->failed = errno ? errno : EIO;
            return -1;
        }
        off += (size_t)n;
    }
    u->size += len;
    return 0;
}

int spool_tmp_file(const char *prefix, char *path, size_t cap)
{
    const char *home = serve_cfg.home ? serve_cfg.home : getenv("COCOON_HOME");
    char dir[COCOON_PATH_MAX - 64];
    snprintf(dir, sizeof(dir), "%s/tmp", home && *home ? home : "/tmp");
    util_mkdir_p(dir, 0700);
    int n = snprintf(path, cap, "%s/%s-XXXXXX", dir, prefix);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkostemp(path, O_CLOEXEC);
}

int spool_begin(struct req *r)
{
    struct spool *u = calloc(1, sizeof(*u));
    if (!u)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    u->fd = spool_tmp_file("upload", u->path, sizeof(u->path));
    if (u->fd < 0) {
        int e = errno;
        u->path[0] = '\0';
        spool_free(u);
        return serve_error(r, 500, "internal", "cannot create a temporary file for the upload: %s", strerror(e));
    }
    r->handler_state = u;
    r->handler_free = spool_free;
    r->body_fn = spool_chunk;
    r->body_ctx = u;
    return 0;
}

struct spool *spool_done(struct req *r, const char *what)
{
    struct spool *u = r->handler_state;
    if (!u) {
        serve_error(r, 500, "internal", "the upload was not set up");
        return NULL;
    }
    if (u->too_big) {
        serve_error(r, 413, "invalid_argument", "the body is larger than %llu bytes (the server's --max-upload)",
                    (unsigned long long)serve_cfg.max_upload);
        return NULL;
    }
    if (u->failed) {
        serve_error(r, 507, "storage_error", "cannot store the upload: %s", strerror(u->failed));
        return NULL;
    }
    if (u->size == 0) {
        serve_error(r, 400, "invalid_argument", "the body must be %s", what);
        return NULL;
    }
    return u;
}
