/* Image routes of `cocoon serve`: pull (its progress as NDJSON when asked), load of an
 * uploaded `docker save` or OCI archive, list, inspect, remove. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/serve.h"
#include "serve/spool.h"
#include "serve/worker.h"
#include "util/util.h"

static json_t *image_json(const cocoon_image_info *im)
{
    char created[32];
    serve_iso_time(im->created, created, sizeof(created));
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:b,s:s}", "id", im->id, "reference", im->name, "repository",
                          im->repository, "tag", im->tag, "size_bytes", (json_int_t)im->size, "created_at", created,
                          "boxes", (json_int_t)im->boxes, "builtin", !im->pulled, "config_digest", im->config_digest);
    json_object_set_new(j, "references", im->name[0] ? json_pack("[s]", im->name) : json_array());
    json_object_set_new(j, "cached_at", json_string(created));
    return j;
}

/* {"images": [ImageInfo...]}; frees list. */
static int answer_images(struct req *r, cocoon_image_info *list, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, image_json(&list[i]));
    cocoon_image_list_free(list);
    return serve_json(r, 200, json_pack("{s:o}", "images", arr));
}

int handle_images(struct req *r)
{
    cocoon_runtime *rt;
    if (serve_runtime(r, &rt) < 0)
        return -1;
    cocoon_image_info *list;
    size_t n;
    cocoon_error err;
    int rc;
    rc = cocoon_image_list(rt, &list, &n, &err) < 0 ? serve_cocoon_error(r, &err) : answer_images(r, list, n);
    cocoon_runtime_close(rt);
    return rc;
}

int handle_image(struct req *r)
{
    cocoon_runtime *rt;
    if (serve_runtime(r, &rt) < 0)
        return -1;
    cocoon_error err;
    int rc;
    if (r->method == M_DELETE) {
        rc = cocoon_image_remove(rt, r->route.image, &err) < 0 ? serve_cocoon_error(r, &err) : serve_empty(r, 204);
    } else {
        cocoon_image_info info;
        char *config = NULL;
        if (cocoon_image_inspect(rt, r->route.image, &info, &config, &err) < 0) {
            rc = serve_cocoon_error(r, &err);
        } else if (r->method == M_HEAD) {
            rc = serve_empty(r, 204);
        } else {
            json_t *j = image_json(&info);
            json_t *cfg = config ? json_loads(config, 0, NULL) : NULL;
            json_object_set_new(j, "config", cfg ? cfg : json_null());
            rc = serve_json(r, 200, j);
        }
        free(config);
    }
    cocoon_runtime_close(rt);
    return rc;
}

/* ---- pull ---- */

struct pull_job {
    char ref[1024];
    int insecure;
    int fd;
    uint64_t last_done;
};

static void write_line(int fd, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text)
        return;
    size_t len = strlen(text);
    text[len] = '\n';
    /* A reader that went away makes this fail: the pull goes on, its result is kept. */
    for (size_t off = 0; off < len + 1;) {
        ssize_t n = write(fd, text + off, len + 1 - off);
        if (n <= 0 && errno != EINTR)
            break;
        if (n > 0)
            off += (size_t)n;
    }
    free(text);
}

static void pull_progress(void *user, const char *layer, uint64_t done, uint64_t total)
{
    struct pull_job *job = user;
    /* one line per MiB of progress per layer at most, and the last one */
    if (done != total && done - job->last_done < (1u << 20) && done > job->last_done)
        return;
    job->last_done = done;
    write_line(job->fd, json_pack("{s:s,s:s,s:I,s:I}", "type", "progress", "layer", layer, "done", (json_int_t)done,
                                  "total", (json_int_t)total));
}

static int pull(const struct pull_job *job, int progress_fd, cocoon_image_info *info, cocoon_error *err)
{
    cocoon_runtime *rt;
    if (serve_runtime_open(&rt, err) < 0)
        return -1;
    cocoon_pull_options o;
    cocoon_pull_options_init(&o);
    o.insecure = job->insecure;
    if (progress_fd >= 0) {
        o.progress = pull_progress;
        o.user_data = (void *)job;
    } else {
        o.quiet = 1;
    }
    int rc = cocoon_image_pull(rt, job->ref, &o, info, err);
    cocoon_runtime_close(rt);
    return rc;
}

static const char *pull_error_code(const cocoon_error *err)
{
    return err->code == COCOON_E_INVALID ? "invalid_argument" : "image_pull_failed";
}

static void pull_streamed(void *arg, int fd)
{
    struct pull_job *job = arg;
    job->fd = fd;
    cocoon_image_info info;
    cocoon_error err;
    if (pull(job, fd, &info, &err) < 0)
        write_line(fd, json_pack("{s:s,s:{s:s,s:s,s:s}}", "type", "error", "error", "message", err.message, "type",
                                 serve_error_type(pull_error_code(&err), 422), "code", pull_error_code(&err)));
    else
        write_line(fd, json_pack("{s:s,s:o}", "type", "done", "image", image_json(&info)));
}

int handle_image_pull(struct req *r)
{
    json_t *b = serve_body_object(r);
    if (!b)
        return -1;
    static const char *const keys[] = {"reference", "image", "insecure", NULL};
    const char *ref = NULL;
    int insecure = 0, rc = -1;
    if (serve_only_keys(r, b, keys) < 0 || serve_get_string(r, b, "reference", 1000, &ref) < 0 ||
        (!ref && serve_get_string(r, b, "image", 1000, &ref) < 0) || serve_get_bool(r, b, "insecure", &insecure) < 0)
        goto out;
    if (!ref || !*ref) {
        rc = serve_error(r, 400, "invalid_argument", "field \"reference\" (e.g. \"python:3.12\") is required");
        goto out;
    }
    struct pull_job *job = calloc(1, sizeof(*job));
    if (!job) {
        rc = serve_error(r, 503, "resource_exhausted", "out of memory");
        goto out;
    }
    snprintf(job->ref, sizeof(job->ref), "%s", ref);
    job->insecure = insecure;
    job->fd = -1;
    const char *accept = serve_header(r, "Accept");
    if (accept && strstr(accept, "application/x-ndjson")) {
        int fd = worker_pipe(pull_streamed, job, free);
        rc = fd < 0 ? serve_error(r, 503, "resource_exhausted", "cannot start the pull: %s", strerror(errno))
                    : serve_stream_fd(r, 200, "application/x-ndjson", fd);
        goto out;
    }
    cocoon_image_info info;
    cocoon_error err;
    if (pull(job, -1, &info, &err) < 0)
        rc = err.code == COCOON_E_INVALID ? serve_cocoon_error(r, &err)
                                          : serve_error(r, 422, pull_error_code(&err), "%s", err.message);
    else
        rc = serve_json(r, 200, image_json(&info));
    free(job);
out:
    json_decref(b);
    return rc;
}

/* ---- load: the body is spooled to a private temporary file, then cocoon_image_load ---- */

int begin_image_load(struct req *r) { return spool_begin(r); }

int handle_image_load(struct req *r)
{
    struct spool *u = spool_done(r, "a `docker save` or OCI archive (application/x-tar)");
    if (!u)
        return -1;
    cocoon_runtime *rt;
    if (serve_runtime(r, &rt) < 0)
        return -1;
    cocoon_image_info *list;
    size_t n;
    cocoon_error err;
    int rc;
    rc = cocoon_image_load(rt, u->path, &list, &n, &err) < 0 ? serve_cocoon_error(r, &err) : answer_images(r, list, n);
    cocoon_runtime_close(rt);
    return rc;
}
