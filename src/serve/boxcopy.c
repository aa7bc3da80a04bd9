/* Copies of boxes over the API (docs/openapi.yaml "clone", "export", "import"):
 * POST /v1/boxes/{id}/clone ({name?, snapshot?}: a new stopped box, 201 Box),
 * POST /v1/boxes/{id}/export ({snapshot?}: the archive `cocoon export` writes, made in
 * $COCOON_HOME/tmp and streamed), POST /v1/boxes/import?name= (the archive as the body,
 * spooled within --max-upload and checked whole by cocoon_import: a bad one is 400 and
 * leaves nothing). BoxLite's client calls the three as cloneBox, export and importBox.
 * POST /v1/boxes/{id}/fork ({count?, name?}: a running box's capture and that many new
 * running boxes that go on from it, 201 {snapshot, boxes: [Box]}; cocoon_box_fork). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/serve.h"
#include "serve/spool.h"

/* The box's snapshot named name into id (answered 404 when it is not one of box's). */
static int box_snapshot(struct req *r, cocoon_runtime *rt, cocoon_box *box, const char *name, char id[16])
{
    cocoon_snapshot_info s;
    cocoon_error err;
    if (cocoon_snapshot_inspect(rt, name, &s, &err) < 0)
        return serve_cocoon_error(r, &err);
    if (strcmp(s.box_id, cocoon_box_id(box)))
        return serve_error(r, 404, "not_found", "box %s has no snapshot \"%s\"", cocoon_box_id(box), name);
    snprintf(id, 16, "%s", s.id);
    return 0;
}

/* A libcocoon error of a call that makes a box: a taken name is BoxLite's already_exists. */
static int make_error(struct req *r, const cocoon_error *err)
{
    if (err->code == COCOON_E_STATE && strstr(err->message, "already in use"))
        return serve_error(r, 409, "already_exists", "%s", err->message);
    return serve_cocoon_error(r, err);
}

/* The new box by id, answered 201 with its Location. */
static int answer_new_box(struct req *r, cocoon_runtime *rt, const char *id)
{
    cocoon_box *box;
    cocoon_error err;
    if (cocoon_box_open(rt, id, &box, &err) < 0)
        return serve_cocoon_error(r, &err);
    serve_count(&serve_counters.boxes_created);
    snprintf(r->location, sizeof(r->location), "/v1/boxes/%s", id);
    int rc = serve_answer_box(r, box, 201);
    cocoon_box_close(box);
    return rc;
}

static int clone_box(struct req *r, cocoon_runtime *rt, cocoon_box *box)
{
    static const char *const keys[] = {"name", "snapshot", NULL};
    json_t *b = serve_body_object(r);
    if (!b)
        return -1;
    cocoon_clone_options o;
    cocoon_clone_options_init(&o);
    const char *snapshot = NULL;
    char source[16], ids[1][16];
    int rc = serve_only_keys(r, b, keys) < 0 || serve_get_string(r, b, "name", 64, &o.name) < 0 ||
                     serve_get_string(r, b, "snapshot", 64, &snapshot) < 0
                 ? -1
                 : 0;
    if (rc == 0 && snapshot)
        rc = box_snapshot(r, rt, box, snapshot, source);
    else if (rc == 0)
        snprintf(source, sizeof(source), "%s", cocoon_box_id(box));
    cocoon_error err;
    if (rc == 0)
        rc =
            cocoon_box_clone(rt, source, &o, ids, NULL, &err) < 0 ? make_error(r, &err) : answer_new_box(r, rt, ids[0]);
    json_decref(b);
    return rc;
}

static int export_box(struct req *r, cocoon_runtime *rt, cocoon_box *box)
{
    static const char *const keys[] = {"snapshot", NULL};
    json_t *b = serve_body_object(r);
    if (!b)
        return -1;
    const char *snapshot = NULL;
    char what[16];
    int rc = serve_only_keys(r, b, keys) < 0 || serve_get_string(r, b, "snapshot", 64, &snapshot) < 0 ? -1 : 0;
    if (rc == 0 && snapshot)
        rc = box_snapshot(r, rt, box, snapshot, what);
    else if (rc == 0)
        snprintf(what, sizeof(what), "%s", cocoon_box_id(box));
    json_decref(b);
    if (rc < 0)
        return -1;
    /* cocoon_export writes beside the path and renames onto it: the placeholder
     * mkstemp made is replaced, and the archive is unlinked as soon as it is open. */
    char path[COCOON_PATH_MAX];
    int fd = spool_tmp_file("export", path, sizeof(path));
    if (fd < 0)
        return serve_error(r, 507, "storage_error", "cannot create a temporary file for the export: %s",
                           strerror(errno));
    close(fd);
    cocoon_error err;
    if (cocoon_export(rt, what, path, &err) < 0) {
        unlink(path);
        return serve_cocoon_error(r, &err);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    int e = errno;
    unlink(path);
    if (fd < 0)
        return serve_error(r, 500, "internal", "cannot open the export: %s", strerror(e));
    return serve_stream_fd(r, 200, "application/octet-stream", fd);
}

static int fork_box(struct req *r, cocoon_runtime *rt, cocoon_box *box)
{
    static const char *const keys[] = {"name", "count", NULL};
    json_t *b = serve_body_object(r);
    if (!b)
        return -1;
    cocoon_fork_options o;
    cocoon_fork_options_init(&o);
    uint64_t count = 1;
    int rc = serve_only_keys(r, b, keys) < 0 || serve_get_string(r, b, "name", 64, &o.name) < 0 ||
                     serve_get_uint(r, b, "count", 1, COCOON_FORK_MAX, &count) < 0
                 ? -1
                 : 0;
    o.count = (unsigned)count;
    char(*ids)[16] = rc == 0 ? calloc(count, sizeof(*ids)) : NULL;
    char snap[16] = "";
    cocoon_error err;
    if (rc == 0 && !ids)
        rc = serve_error(r, 500, "internal", "out of memory");
    if (rc == 0 && cocoon_box_fork(box, &o, ids, snap, &err) < 0)
        rc = make_error(r, &err);
    json_t *list = rc == 0 ? json_array() : NULL;
    for (unsigned i = 0; rc == 0 && i < count; i++) {
        cocoon_box *child;
        cocoon_box_info info;
        if (cocoon_box_open(rt, ids[i], &child, &err) < 0) {
            rc = serve_cocoon_error(r, &err);
            break;
        }
        if (cocoon_box_inspect(child, &info, &err) == 0)
            json_array_append_new(list, serve_box_json(&info));
        cocoon_box_close(child);
        serve_count(&serve_counters.boxes_created);
    }
    free(ids);
    json_decref(b);
    if (rc < 0) {
        json_decref(list);
        return -1;
    }
    return serve_json(r, 201, json_pack("{s:s, s:o}", "snapshot", snap, "boxes", list));
}

/* fn on the route's box (answered 404 when there is none). */
static int on_box(struct req *r, int (*fn)(struct req *, cocoon_runtime *, cocoon_box *))
{
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    int rc = fn(r, rt, box);
    serve_close_runtime_box(rt, box);
    return rc;
}

int handle_box_clone(struct req *r) { return on_box(r, clone_box); }

int handle_box_export(struct req *r) { return on_box(r, export_box); }

int handle_box_fork(struct req *r) { return on_box(r, fork_box); }

int begin_box_import(struct req *r) { return spool_begin(r); }

int handle_box_import(struct req *r)
{
    struct spool *u = spool_done(r, "an archive `cocoon export` wrote (application/octet-stream)");
    if (!u)
        return -1;
    cocoon_import_options o;
    cocoon_import_options_init(&o);
    o.name = serve_query(r, "name");
    cocoon_runtime *rt;
    if (serve_runtime(r, &rt) < 0)
        return -1;
    cocoon_box *box;
    cocoon_error err;
    int rc;
    if (cocoon_import(rt, u->path, &o, &box, &err) == 0) {
        char id[16];
        snprintf(id, sizeof(id), "%s", cocoon_box_id(box));
        cocoon_box_close(box);
        rc = answer_new_box(r, rt, id);
    } else {
        /* The message names the spool file: the caller knows it as the body. */
        size_t l = strlen(u->path);
        if (!strncmp(err.message, u->path, l)) {
            cocoon_error named = err;
            snprintf(named.message, sizeof(named.message), "the body%.1900s", err.message + l);
            err = named;
        }
        rc = err.code == COCOON_E_IO ? serve_error(r, 507, "storage_error", "%s", err.message) : make_error(r, &err);
    }
    cocoon_runtime_close(rt);
    return rc;
}
