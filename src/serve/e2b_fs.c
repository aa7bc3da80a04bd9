/* envd's filesystem service (filesystem.Filesystem over Connect/JSON: Stat, MakeDir,
 * Move, ListDir, Remove; WatchDir is e2b_watch.c) and its plain HTTP /files
 * (download; upload as multipart or octet-stream), on libcocoon's file operations.
 * File contents are held in memory, up to E2B_FILE_MAX bytes a request. */
#include <errno.h>
#include <libgen.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/e2b.h"
#include "serve/http.h"
#include "serve/serve.h"
#include "util/util.h"

static const char *type_name(int type)
{
    switch (type) {
    case COCOON_FILE_REGULAR: return "FILE_TYPE_FILE";
    case COCOON_FILE_DIRECTORY: return "FILE_TYPE_DIRECTORY";
    case COCOON_FILE_SYMLINK: return "FILE_TYPE_SYMLINK";
    default: return "FILE_TYPE_UNSPECIFIED";
    }
}

/* Go's FileMode.String(): "drwxr-xr-x". */
static void permissions_text(const cocoon_file_info *fi, char out[11])
{
    out[0] = fi->type == COCOON_FILE_DIRECTORY ? 'd' : fi->type == COCOON_FILE_SYMLINK ? 'L' : '-';
    const char *rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        out[1 + i] = (fi->mode & (0400u >> i)) ? rwx[i] : '-';
    out[10] = '\0';
}

static json_t *entry_json(const cocoon_file_info *fi, const char *path)
{
    char perms[11], when[48], owner[16], group[16];
    permissions_text(fi, perms);
    serve_iso_time(fi->mtime, when, sizeof(when));
    snprintf(owner, sizeof(owner), "%u", fi->uid);
    snprintf(group, sizeof(group), "%u", fi->gid);
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:I,s:i,s:s,s:s,s:s,s:s}", "name", fi->name, "type", type_name(fi->type), "path", path,
                  "size", (json_int_t)fi->size, "mode", (int)fi->mode, "permissions", perms, "owner",
                  fi->uid == 0 ? "root" : owner, "group", fi->gid == 0 ? "root" : group, "modifiedTime", when);
    if (j && fi->type == COCOON_FILE_SYMLINK)
        json_object_set_new(j, "symlinkTarget", json_string(fi->link_target));
    return j;
}

/* The guest's "No such file" as not_found, the rest by libcocoon's code. */
static int fs_error(struct req *r, const cocoon_error *err)
{
    if (err->code == COCOON_E_NOT_FOUND)
        return e2b_error(r, 404, "not_found", "%s", err->message);
    return e2b_cocoon_error(r, err);
}

static int path_field(struct req *r, json_t *b, const char *key, char *out, size_t cap)
{
    const char *p = json_string_value(json_object_get(b, key));
    if (!p)
        return e2b_error(r, 400, "invalid_argument", "\"%s\" (a path) is required", key);
    return e2b_abs_path(r, p, out, cap);
}

static int stat_answer(struct req *r, cocoon_box *box, const char *path)
{
    cocoon_file_info fi;
    cocoon_error err;
    if (cocoon_file_stat(box, path, &fi, &err) < 0)
        return fs_error(r, &err);
    return serve_json(r, 200, json_pack("{s:o}", "entry", entry_json(&fi, path)));
}

/* Entries under dir down to depth levels, appended to arr. */
static int list_into(struct req *r, cocoon_box *box, const char *dir, unsigned depth, json_t *arr)
{
    cocoon_file_info *list;
    size_t n;
    cocoon_error err;
    if (cocoon_file_list(box, dir, &list, &n, &err) < 0)
        return fs_error(r, &err);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (json_array_size(arr) >= E2B_LIST_ENTRIES_MAX) {
            rc = e2b_error(r, 400, "out_of_range", "the listing has more than %d entries: ask for less depth",
                           E2B_LIST_ENTRIES_MAX);
            break;
        }
        char child[COCOON_PATH_MAX];
        int len = snprintf(child, sizeof(child), "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", list[i].name);
        if (len < 0 || (size_t)len >= sizeof(child))
            continue;
        json_array_append_new(arr, entry_json(&list[i], child));
        if (depth > 1 && list[i].type == COCOON_FILE_DIRECTORY)
            rc = list_into(r, box, child, depth - 1, arr);
    }
    cocoon_file_list_free(list);
    return rc;
}

static int fs_call(struct req *r, cocoon_box *box, const char *method, json_t *b)
{
    char path[COCOON_PATH_MAX], to[COCOON_PATH_MAX];
    cocoon_error err;
    if (strcmp(method, "Stat") == 0) {
        if (path_field(r, b, "path", path, sizeof(path)) < 0)
            return -1;
        return stat_answer(r, box, path);
    }
    if (strcmp(method, "MakeDir") == 0) {
        cocoon_file_info fi;
        if (path_field(r, b, "path", path, sizeof(path)) < 0)
            return -1;
        if (cocoon_file_stat(box, path, &fi, &err) == 0)
            return e2b_error(r, 409, "already_exists", "%s already exists", path);
        if (cocoon_file_mkdir(box, path, 0, COCOON_MKDIR_PARENTS, &err) < 0)
            return fs_error(r, &err);
        return stat_answer(r, box, path);
    }
    if (strcmp(method, "Move") == 0) {
        if (path_field(r, b, "source", path, sizeof(path)) < 0 || path_field(r, b, "destination", to, sizeof(to)) < 0)
            return -1;
        if (cocoon_file_move(box, path, to, 0, &err) < 0)
            return fs_error(r, &err);
        return stat_answer(r, box, to);
    }
    if (strcmp(method, "Remove") == 0) {
        if (path_field(r, b, "path", path, sizeof(path)) < 0)
            return -1;
        if (cocoon_file_remove(box, path, COCOON_REMOVE_RECURSIVE, &err) < 0)
            return fs_error(r, &err);
        return serve_json(r, 200, json_object());
    }
    if (strcmp(method, "ListDir") == 0) {
        if (path_field(r, b, "path", path, sizeof(path)) < 0)
            return -1;
        json_int_t depth =
            json_is_integer(json_object_get(b, "depth")) ? json_integer_value(json_object_get(b, "depth")) : 1;
        if (depth < 1 || depth > E2B_LIST_DEPTH_MAX)
            return e2b_error(r, 400, "invalid_argument", "\"depth\" must be from 1 to %d", E2B_LIST_DEPTH_MAX);
        cocoon_file_info fi;
        if (cocoon_file_stat(box, path, &fi, &err) < 0)
            return fs_error(r, &err);
        if (fi.type != COCOON_FILE_DIRECTORY)
            return e2b_error(r, 400, "invalid_argument", "%s is not a directory", path);
        json_t *arr = json_array();
        if (list_into(r, box, path, (unsigned)depth, arr) < 0) {
            json_decref(arr);
            return -1;
        }
        return serve_json(r, 200, json_pack("{s:o}", "entries", arr));
    }
    return e2b_error(r, 404, "unimplemented", "filesystem.Filesystem has no method %s", method);
}

int e2b_handle_filesystem(struct req *r, const char *method)
{
    if (strcmp(method, "WatchDir") == 0) {
        e2b_set_style(r, E2B_STYLE_STREAM);
        return e2b_watch_dir(r);
    }
    if (strcmp(method, "CreateWatcher") == 0 || strcmp(method, "GetWatcherEvents") == 0 ||
        strcmp(method, "RemoveWatcher") == 0) {
        e2b_set_style(r, E2B_STYLE_UNARY);
        return e2b_error(r, 501, "unimplemented",
                         "polled watchers are not supported by cocoon's E2B front: use WatchDir (files.watchDir)");
    }
    e2b_set_style(r, E2B_STYLE_UNARY);
    json_t *b = e2b_body(r);
    if (!b)
        return -1;
    cocoon_runtime *rt;
    cocoon_box *box;
    int rc = -1;
    if (e2b_open_box(r, &rt, &box) == 0) {
        rc = fs_call(r, box, method, b);
        serve_close_runtime_box(rt, box);
    }
    json_decref(b);
    return rc;
}

/* ---- GET/POST /files ---- */

struct upload_file {
    char *name; /* the part's file name: the path when ?path= is absent */
    char *data;
    size_t len;
};

struct upload {
    struct MHD_PostProcessor *pp; /* multipart; NULL: the body is the file */
    struct upload_file files[E2B_UPLOAD_FILES_MAX];
    size_t count;
    size_t total;
    int too_big, too_many, bad;
};

static void upload_free(void *p)
{
    struct upload *u = p;
    if (!u)
        return;
    if (u->pp)
        MHD_destroy_post_processor(u->pp);
    for (size_t i = 0; i < u->count; i++) {
        free(u->files[i].name);
        free(u->files[i].data);
    }
    free(u);
}

static int append(struct upload *u, struct upload_file *f, const char *data, size_t len)
{
    if (len > E2B_FILE_MAX - u->total) {
        u->too_big = 1;
        return -1;
    }
    char *grown = realloc(f->data, f->len + len + 1);
    if (!grown) {
        u->too_big = 1;
        return -1;
    }
    f->data = grown;
    memcpy(f->data + f->len, data, len);
    f->len += len;
    u->total += len;
    return 0;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                               const char *content_type, const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
    (void)kind;
    (void)content_type;
    (void)transfer_encoding;
    struct upload *u = cls;
    if (!key || strcmp(key, "file") != 0)
        return MHD_YES; /* other fields are not files */
    /* MHD may announce a part before its data (both at offset 0): a new file is an
     * offset 0 after data, or under another name. */
    const char *name = filename ? filename : "";
    if (off == 0 &&
        (u->count == 0 || u->files[u->count - 1].len > 0 || strcmp(u->files[u->count - 1].name, name) != 0)) {
        if (u->count == E2B_UPLOAD_FILES_MAX) {
            u->too_many = 1;
            return MHD_NO;
        }
        u->files[u->count].name = strdup(name);
        if (!u->files[u->count].name)
            return MHD_NO;
        u->count++;
    }
    if (u->count == 0)
        return MHD_NO;
    return size == 0 || append(u, &u->files[u->count - 1], data, size) == 0 ? MHD_YES : MHD_NO;
}

static int upload_take(void *ctx, const char *data, size_t len)
{
    struct upload *u = ctx;
    if (u->pp)
        return MHD_post_process(u->pp, data, len) == MHD_YES ? 0 : -1;
    return append(u, &u->files[0], data, len);
}

int e2b_begin_upload(struct req *r)
{
    struct upload *u = calloc(1, sizeof(*u));
    if (!u)
        return e2b_error(r, 503, "resource_exhausted", "out of memory");
    e2b_set_upload(r, u, upload_free);
    const char *type = serve_header(r, "Content-Type");
    const char *encoding = serve_header(r, "Content-Encoding");
    if (encoding && strcmp(encoding, "identity") != 0)
        return e2b_error(r, 415, "unimplemented", "Content-Encoding %s is not accepted: send the file uncompressed",
                         encoding);
    if (type && strncmp(type, "multipart/form-data", 19) == 0) {
        u->pp = MHD_create_post_processor(r->conn, 64 * 1024, on_part, u);
        if (!u->pp)
            return e2b_error(r, 400, "invalid_argument", "the multipart body has no boundary");
    } else {
        u->count = 1; /* application/octet-stream: one file, at ?path= */
        u->files[0].name = strdup("");
    }
    r->body_fn = upload_take;
    r->body_ctx = u;
    return 0;
}

/* Makes the parent directory of path (E2B's write creates missing ones). */
static int write_one(cocoon_box *box, const char *path, const struct upload_file *f, cocoon_error *err)
{
    char parent[COCOON_PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", path);
    char *dir = dirname(parent);
    if (strcmp(dir, "/") != 0 && cocoon_file_mkdir(box, dir, 0, COCOON_MKDIR_PARENTS, err) < 0)
        return -1;
    return cocoon_file_write(box, path, f->data ? f->data : "", f->len, 0, err);
}

static int upload_finish(struct req *r, cocoon_box *box)
{
    struct upload *u = e2b_upload(r);
    if (u->too_big)
        return e2b_error(r, 413, "resource_exhausted", "the upload is larger than %u bytes", E2B_FILE_MAX);
    if (u->too_many)
        return e2b_error(r, 400, "invalid_argument", "more than %d files in one upload", E2B_UPLOAD_FILES_MAX);
    if (r->body_failed || u->count == 0)
        return e2b_error(r, 400, "invalid_argument", "the body holds no file (a multipart field \"file\")");
    const char *query_path = serve_query(r, "path");
    json_t *arr = json_array();
    for (size_t i = 0; i < u->count; i++) {
        const char *given = u->count == 1 && query_path && query_path[0] ? query_path : u->files[i].name;
        char path[COCOON_PATH_MAX];
        cocoon_error err;
        if (!given || !given[0]) {
            json_decref(arr);
            return e2b_error(r, 400, "invalid_argument", "a file has no path (give ?path=)");
        }
        if (e2b_abs_path(r, given, path, sizeof(path)) < 0) {
            json_decref(arr);
            return -1;
        }
        if (write_one(box, path, &u->files[i], &err) < 0) {
            json_decref(arr);
            return fs_error(r, &err);
        }
        char base[COCOON_PATH_MAX];
        snprintf(base, sizeof(base), "%s", path);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "name", basename(base), "type", "file", "path", path));
    }
    return serve_json(r, 200, arr);
}

static int download(struct req *r, cocoon_box *box)
{
    char path[COCOON_PATH_MAX];
    const char *given = serve_query(r, "path");
    if (!given || !given[0])
        return e2b_error(r, 400, "invalid_argument", "?path= (the file to read) is required");
    if (e2b_abs_path(r, given, path, sizeof(path)) < 0)
        return -1;
    void *data = NULL;
    size_t len = 0;
    cocoon_error err;
    if (cocoon_file_read(box, path, &data, &len, E2B_FILE_MAX, &err) < 0)
        return fs_error(r, &err);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return e2b_error(r, 503, "resource_exhausted", "out of memory");
    }
    MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
    return serve_queue_response(r, 200, resp);
}

int e2b_handle_files(struct req *r)
{
    if (r->method != M_GET && r->method != M_POST)
        return e2b_error(r, 405, "unimplemented", "/files takes GET and POST");
    cocoon_runtime *rt;
    cocoon_box *box;
    if (e2b_open_box(r, &rt, &box) < 0)
        return -1;
    int rc = r->method == M_GET ? download(r, box) : upload_finish(r, box);
    serve_close_runtime_box(rt, box);
    return rc;
}
