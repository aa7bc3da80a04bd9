/* envd's WatchDir on a guest without inotify: the directory (and, when recursive, its
 * subdirectories) is listed through libcocoon at most every E2B_WATCH_POLL_MS, and what
 * changed between two listings streams as E2B's events: a new name is CREATE, a gone one
 * REMOVE, another size or modification time WRITE, other permissions CHMOD. A rename
 * shows as REMOVE + CREATE, and changes undone within one period are not seen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/e2b.h"
#include "serve/http.h"
#include "serve/serve.h"
#include "util/util.h"

#define KEEPALIVE_MS 5000

struct seen {
    char *rel; /* path under the watched directory */
    int type;
    unsigned mode;
    uint64_t size;
    long long mtime;
    long mtime_nsec;
};

struct snapshot {
    struct seen *items;
    size_t count, cap;
};

static void snapshot_free(struct snapshot *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->items[i].rel);
    free(s->items);
    memset(s, 0, sizeof(*s));
}

static int by_rel(const void *a, const void *b)
{
    return strcmp(((const struct seen *)a)->rel, ((const struct seen *)b)->rel);
}

/* Lists dir (rel: its path under the root, "" for the root) into s, down the tree when
 * recursive (at most E2B_LIST_DEPTH_MAX levels). 0, or -1 with err. */
static int take(cocoon_box *box, const char *root, const char *rel, int recursive, unsigned depth, struct snapshot *s,
                cocoon_error *err)
{
    char dir[COCOON_PATH_MAX];
    int n = snprintf(dir, sizeof(dir), "%s%s%s", root, rel[0] ? "/" : "", rel);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return 0;
    cocoon_file_info *list;
    size_t count;
    if (cocoon_file_list(box, dir, &list, &count, err) < 0)
        return rel[0] ? 0 : -1; /* a subdirectory may go between two calls */
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (s->count == E2B_WATCH_ENTRIES_MAX) {
            err->code = COCOON_E_INVALID;
            snprintf(err->message, sizeof(err->message), "%s holds more than %d entries: watch a smaller directory",
                     root, E2B_WATCH_ENTRIES_MAX);
            rc = -1;
            break;
        }
        if (s->count == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 64;
            struct seen *grown = realloc(s->items, cap * sizeof(*grown));
            if (!grown) {
                err->code = COCOON_E_NOMEM;
                snprintf(err->message, sizeof(err->message), "out of memory");
                rc = -1;
                break;
            }
            s->items = grown;
            s->cap = cap;
        }
        size_t len = strlen(rel) + strlen(list[i].name) + 2;
        char *child = malloc(len);
        if (!child) {
            rc = -1;
            break;
        }
        snprintf(child, len, "%s%s%s", rel, rel[0] ? "/" : "", list[i].name);
        s->items[s->count++] =
            (struct seen){child, list[i].type, list[i].mode, list[i].size, list[i].mtime, list[i].mtime_nsec};
        if (recursive && depth > 1 && list[i].type == COCOON_FILE_DIRECTORY)
            rc = take(box, root, child, recursive, depth - 1, s, err);
    }
    cocoon_file_list_free(list);
    return rc;
}

static int snapshot_take(cocoon_box *box, const char *root, int recursive, struct snapshot *s, cocoon_error *err)
{
    memset(s, 0, sizeof(*s));
    if (take(box, root, "", recursive, E2B_LIST_DEPTH_MAX, s, err) < 0) {
        snapshot_free(s);
        return -1;
    }
    if (s->count)
        qsort(s->items, s->count, sizeof(s->items[0]), by_rel);
    return 0;
}

struct watch {
    cocoon_runtime *rt;
    cocoon_box *box;
    char root[COCOON_PATH_MAX];
    int recursive;
    int client_fd;
    struct snapshot last;
    int started, finished;
    char *out; /* frames to hand out */
    size_t out_len, out_off, out_cap;
};

static int queue_json(struct watch *w, const char *json)
{
    size_t n = 0;
    char *frame = connect_frame_encode(0, json, strlen(json), &n);
    if (!frame)
        return -1;
    if (w->out_len + n > w->out_cap) {
        size_t cap = (w->out_len + n) * 2;
        char *grown = realloc(w->out, cap);
        if (!grown) {
            free(frame);
            return -1;
        }
        w->out = grown;
        w->out_cap = cap;
    }
    memcpy(w->out + w->out_len, frame, n);
    w->out_len += n;
    free(frame);
    return 0;
}

static int queue_event(struct watch *w, const char *rel, const char *type)
{
    json_t *ev = json_pack("{s:{s:s,s:s}}", "filesystem", "name", rel, "type", type);
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    int rc = text ? queue_json(w, text) : -1;
    free(text);
    return rc;
}

/* Events between the last listing and now (both sorted by path), then now is the last. */
static int diff(struct watch *w, struct snapshot *now)
{
    size_t i = 0, j = 0;
    int rc = 0;
    while (rc == 0 && (i < w->last.count || j < now->count)) {
        int c = i == w->last.count ? 1 : j == now->count ? -1 : strcmp(w->last.items[i].rel, now->items[j].rel);
        if (c < 0) {
            rc = queue_event(w, w->last.items[i++].rel, "EVENT_TYPE_REMOVE");
        } else if (c > 0) {
            rc = queue_event(w, now->items[j++].rel, "EVENT_TYPE_CREATE");
        } else {
            const struct seen *a = &w->last.items[i++], *b = &now->items[j++];
            if (a->type != b->type)
                rc = queue_event(w, b->rel, "EVENT_TYPE_CREATE");
            else if (a->type != COCOON_FILE_DIRECTORY &&
                     (a->size != b->size || a->mtime != b->mtime || a->mtime_nsec != b->mtime_nsec))
                rc = queue_event(w, b->rel, "EVENT_TYPE_WRITE");
            else if (a->mode != b->mode)
                rc = queue_event(w, b->rel, "EVENT_TYPE_CHMOD");
        }
    }
    snapshot_free(&w->last);
    w->last = *now;
    return rc;
}

/* The watch ends with an error message (the directory went, the bound was passed). */
static int queue_end_error(struct watch *w, const cocoon_error *err)
{
    json_t *end = json_pack("{s:{s:s,s:s}}", "error", "code",
                            err->code == COCOON_E_NOT_FOUND ? "not_found" : "internal", "message", err->message);
    char *text = end ? json_dumps(end, JSON_COMPACT) : NULL;
    json_decref(end);
    size_t n = 0;
    char *frame = text ? connect_frame_encode(CONNECT_FLAG_END, text, strlen(text), &n) : NULL;
    free(text);
    if (!frame)
        return -1;
    free(w->out);
    w->out = frame;
    w->out_len = w->out_cap = n;
    w->out_off = 0;
    w->finished = 1;
    return 0;
}

static long watch_produce(void *ctx, char *buf, size_t cap)
{
    struct watch *w = ctx;
    uint64_t quiet_since = util_now_ns(CLOCK_MONOTONIC);
    while (w->out_off == w->out_len) {
        if (w->finished)
            return 0;
        w->out_off = w->out_len = 0;
        if (!w->started) {
            w->started = 1;
            if (queue_json(w, "{\"start\":{}}") < 0)
                return -1;
            break;
        }
        for (int slept = 0; slept < E2B_WATCH_POLL_MS; slept += 100) {
            if (e2b_client_left(w->client_fd))
                return -1;
            struct timespec t = {0, 100 * 1000 * 1000};
            nanosleep(&t, NULL);
        }
        struct snapshot now;
        cocoon_error err;
        if (snapshot_take(w->box, w->root, w->recursive, &now, &err) < 0) {
            if (queue_end_error(w, &err) < 0)
                return -1;
            break;
        }
        if (diff(w, &now) < 0)
            return -1;
        if (w->out_len == 0 && util_now_ns(CLOCK_MONOTONIC) - quiet_since >= KEEPALIVE_MS * 1000000ull) {
            if (queue_json(w, "{\"keepalive\":{}}") < 0)
                return -1;
        }
    }
    size_t n = w->out_len - w->out_off;
    if (n > cap)
        n = cap;
    memcpy(buf, w->out + w->out_off, n);
    w->out_off += n;
    return (long)n;
}

static void watch_done(void *ctx)
{
    struct watch *w = ctx;
    snapshot_free(&w->last);
    serve_close_runtime_box(w->rt, w->box);
    free(w->out);
    free(w);
}

int e2b_watch_dir(struct req *r)
{
    json_t *b = e2b_body(r);
    if (!b)
        return -1;
    struct watch *w = calloc(1, sizeof(*w));
    const char *path = json_string_value(json_object_get(b, "path"));
    int rc = -1;
    if (!w) {
        rc = e2b_error(r, 503, "resource_exhausted", "out of memory");
    } else if (!path) {
        rc = e2b_error(r, 400, "invalid_argument", "\"path\" (the directory to watch) is required");
    } else if (e2b_abs_path(r, path, w->root, sizeof(w->root)) == 0 && e2b_open_box(r, &w->rt, &w->box) == 0) {
        w->recursive = json_is_true(json_object_get(b, "recursive"));
        w->client_fd = serve_client_fd(r);
        cocoon_file_info fi;
        cocoon_error err;
        if (cocoon_file_stat(w->box, w->root, &fi, &err) < 0) {
            rc = err.code == COCOON_E_NOT_FOUND ? e2b_error(r, 404, "not_found", "%s", err.message)
                                                : e2b_cocoon_error(r, &err);
        } else if (fi.type != COCOON_FILE_DIRECTORY) {
            rc = e2b_error(r, 400, "invalid_argument", "%s is not a directory", w->root);
        } else if (snapshot_take(w->box, w->root, w->recursive, &w->last, &err) < 0) {
            rc = e2b_cocoon_error(r, &err);
        } else {
            json_decref(b);
            return serve_stream(r, 200, "application/connect+json", watch_produce, w, watch_done);
        }
        serve_close_runtime_box(w->rt, w->box);
    }
    free(w);
    json_decref(b);
    return rc;
}
