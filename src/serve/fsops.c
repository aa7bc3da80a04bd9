/* File operation routes of `cocoon serve` (cocoon extensions, docs/openapi.yaml "fs"):
 * GET  /v1/boxes/{id}/fs/stat?path=P, GET /v1/boxes/{id}/fs/list?path=P,
 * POST /v1/boxes/{id}/fs/mkdir {path, parents, mode}, POST .../fs/remove {path, recursive},
 * POST .../fs/move {from, to, no_replace}. A stopped box is started first, as for exec.
 * Paths are checked here (absolute, bounded) and again by libcocoon; what the guest
 * answers was checked by libcocoon (src/lib/fsops_reply.c). */
#include <string.h>

#include "lib/fsops_json.h"
#include "serve/serve.h"

#define FS_PATH_MAX 4096

static int path_ok(struct req *r, const char *key, const char *p)
{
    if (!p || !*p)
        return serve_error(r, 400, "invalid_argument", "%s (an absolute path in the box) is required", key);
    if (p[0] != '/' || strlen(p) >= FS_PATH_MAX)
        return serve_error(r, 400, "invalid_argument", "%s must be an absolute path shorter than %d bytes", key,
                           FS_PATH_MAX);
    return 0;
}

/* The FileInfo of path (after mkdir or move: the result), or an error answer. */
static int answer_stat(struct req *r, cocoon_box *box, const char *path)
{
    cocoon_error err;
    cocoon_file_info fi;
    if (cocoon_file_stat(box, path, &fi, &err) < 0)
        return serve_cocoon_error(r, &err);
    json_t *j = lib_file_info_json(&fi, path);
    return j ? serve_json(r, 200, j) : serve_error(r, 503, "resource_exhausted", "out of memory");
}

static int answer_list(struct req *r, cocoon_box *box, const char *path)
{
    cocoon_error err;
    cocoon_file_info *list;
    size_t n;
    if (cocoon_file_list(box, path, &list, &n, &err) < 0)
        return serve_cocoon_error(r, &err);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        char at[FS_PATH_MAX + 300];
        lib_file_join(at, sizeof(at), path, list[i].name);
        if (json_array_append_new(arr, lib_file_info_json(&list[i], at)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    cocoon_file_list_free(list);
    json_t *j = arr ? json_pack("{s:o}", "entries", arr) : NULL;
    return j ? serve_json(r, 200, j) : serve_error(r, 503, "resource_exhausted", "out of memory");
}

/* The body of a POST route, read and checked before the box is touched. */
struct fs_body {
    const char *path, *to;
    int flag;
    uint64_t mode;
};

static json_t *read_body(struct req *r, struct fs_body *b)
{
    static const char *const mkdir_keys[] = {"path", "parents", "mode", NULL};
    static const char *const remove_keys[] = {"path", "recursive", NULL};
    static const char *const move_keys[] = {"from", "to", "no_replace", NULL};
    json_t *o = serve_body_object(r);
    if (!o)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->mode = 0755;
    int bad;
    switch (r->route.id) {
    case R_FS_MKDIR:
        bad = serve_only_keys(r, o, mkdir_keys) < 0 || serve_get_string(r, o, "path", FS_PATH_MAX, &b->path) < 0 ||
              serve_get_bool(r, o, "parents", &b->flag) < 0 || serve_get_uint(r, o, "mode", 0, 07777, &b->mode) < 0 ||
              path_ok(r, "path", b->path) < 0;
        break;
    case R_FS_REMOVE:
        bad = serve_only_keys(r, o, remove_keys) < 0 || serve_get_string(r, o, "path", FS_PATH_MAX, &b->path) < 0 ||
              serve_get_bool(r, o, "recursive", &b->flag) < 0 || path_ok(r, "path", b->path) < 0;
        break;
    default:
        bad = serve_only_keys(r, o, move_keys) < 0 || serve_get_string(r, o, "from", FS_PATH_MAX, &b->path) < 0 ||
              serve_get_string(r, o, "to", FS_PATH_MAX, &b->to) < 0 ||
              serve_get_bool(r, o, "no_replace", &b->flag) < 0 || path_ok(r, "from", b->path) < 0 ||
              path_ok(r, "to", b->to) < 0;
        break;
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int handle_fs(struct req *r)
{
    struct fs_body b;
    json_t *body = NULL;
    const char *path = NULL;
    if (r->method == M_POST) {
        if (!(body = read_body(r, &b)))
            return -1;
    } else {
        path = serve_query(r, "path");
        if (path_ok(r, "the query parameter path", path) < 0)
            return -1;
    }
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_running_box(r, &rt, &box) < 0) {
        json_decref(body);
        return -1;
    }
    cocoon_error err;
    int rc;
    switch (r->route.id) {
    case R_FS_STAT: rc = answer_stat(r, box, path); break;
    case R_FS_LIST: rc = answer_list(r, box, path); break;
    case R_FS_MKDIR:
        rc = cocoon_file_mkdir(box, b.path, (unsigned)b.mode, b.flag ? COCOON_MKDIR_PARENTS : 0, &err) < 0
                 ? serve_cocoon_error(r, &err)
                 : answer_stat(r, box, b.path);
        break;
    case R_FS_REMOVE:
        rc = cocoon_file_remove(box, b.path, b.flag ? COCOON_REMOVE_RECURSIVE : 0, &err) < 0
                 ? serve_cocoon_error(r, &err)
                 : serve_empty(r, 204);
        break;
    default:
        rc = cocoon_file_move(box, b.path, b.to, b.flag ? COCOON_MOVE_NO_REPLACE : 0, &err) < 0
                 ? serve_cocoon_error(r, &err)
                 : answer_stat(r, box, b.to);
        break;
    }
    serve_close_runtime_box(rt, box);
    json_decref(body);
    return rc;
}
