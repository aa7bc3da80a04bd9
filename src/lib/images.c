/* The public image API: pull and load through the image pipeline (src/image), turn each
 * manifest into one shared ext4 base ($COCOON_HOME/images/bases/<hex>.ext4), record it
 * in the state database, and list, inspect, remove and prune images and their blobs.
 * Pulls and loads hold a shared lock on images/.lock; a prune or the blob sweep of a
 * remove holds it exclusively, so it never deletes the blobs of a pull in progress. */
#include "lib/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "util/util.h"

#define CONFIG_MAX (4u << 20)

static int images_dir(cocoon_runtime *rt, char *out, size_t cap) { return lib_path(out, cap, "%s/images", rt->home); }

/* "pid N (cocoon load x.tar)" for a process holding a lock on fd's file, from
 * /proc/locks, or "another cocoon process" when it cannot be told. */
static void lock_holder(int fd, char *out, size_t cap)
{
    snprintf(out, cap, "another cocoon process");
    struct stat st;
    char *locks = fstat(fd, &st) == 0 ? util_read_file("/proc/locks", 1 << 20, NULL) : NULL;
    long pid = 0;
    for (char *line = locks, *nl; line && *line && !pid; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        unsigned maj, min;
        unsigned long ino;
        long p;
        char kind[16];
        if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%lu", kind, &p, &maj, &min, &ino) == 5 &&
            !strcmp(kind, "FLOCK") && ino == (unsigned long)st.st_ino && p != getpid())
            pid = p;
    }
    free(locks);
    if (!pid)
        return;
    char path[64], cmd[160] = "";
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    size_t len = 0;
    char *argv = util_read_file(path, 4096, &len);
    for (size_t i = 0, at = 0; argv && i < len && at + 1 < sizeof(cmd); i += strlen(argv + i) + 1) {
        const char *word = i ? argv + i : (strrchr(argv, '/') ? strrchr(argv, '/') + 1 : argv);
        at += (size_t)snprintf(cmd + at, sizeof(cmd) - at, "%s%.60s", at ? " " : "", word);
    }
    free(argv);
    for (char *c = cmd; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    snprintf(out, cap, "pid %ld%s%s%s", pid, cmd[0] ? " (" : "", cmd, cmd[0] ? ")" : "");
}

/* Locks images/.lock (LOCK_SH or LOCK_EX, maybe | LOCK_NB); the fd, or -1. A wait of
 * more than a second is announced through the runtime's notice callback, saying who
 * holds the lock. */
int lib_store_lock(cocoon_runtime *rt, int how, cocoon_error *err)
{
    char dir[LIB_PATH_MAX], path[LIB_PATH_MAX];
    if (images_dir(rt, dir, sizeof(dir)) < 0 || lib_path(path, sizeof(path), "%s/.lock", dir) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    if (util_mkdir_p(dir, 0755) < 0)
        return lib_err(err, COCOON_E_IO, "cannot create %s: %s", dir, strerror(errno));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return lib_err(err, COCOON_E_IO, "cannot open %s: %s", path, strerror(errno));
    for (int waited_ms = 0;;) {
        if (flock(fd, how | LOCK_NB) == 0)
            return fd;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EWOULDBLOCK && !(how & LOCK_NB)) {
            if (waited_ms == 1000) {
                char who[256];
                lock_holder(fd, who, sizeof(who));
                lib_notice(rt, "waiting for the image store lock held by %s", who);
            }
            lib_sleep_ms(50);
            waited_ms += 50;
            continue;
        }
        close(fd);
        if (e == EWOULDBLOCK)
            return lib_err(err, COCOON_E_STATE, "the image store is busy (a pull or load is running)");
        return lib_err(err, COCOON_E_IO, "cannot lock %s: %s", path, strerror(e));
    }
}

void lib_store_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* $COCOON_INSECURE_REGISTRIES: "host[:port],..." ; a bare host matches any port. */
static int insecure_from_env(const char *registry)
{
    const char *list = getenv("COCOON_INSECURE_REGISTRIES");
    if (!list)
        return 0;
    size_t rlen = strlen(registry);
    const char *colon = strrchr(registry, ':');
    size_t host_len = colon ? (size_t)(colon - registry) : rlen;
    while (*list) {
        while (*list == ',' || *list == ' ')
            list++;
        size_t n = strcspn(list, ", ");
        if (n && ((n == rlen && !strncmp(list, registry, n)) || (n == host_len && !strncmp(list, registry, n))))
            return 1;
        list += n;
    }
    return 0;
}

/* "docker.io/library/python:3.12" -> repository and tag (or "@sha256:..." for digests). */
static void split_name(const char *name, char *repo, size_t rcap, char *tag, size_t tcap)
{
    const char *at = strchr(name, '@');
    const char *slash = strrchr(name, '/');
    const char *colon = strrchr(name, ':');
    if (at) {
        snprintf(repo, rcap, "%.*s", (int)(at - name), name);
        snprintf(tag, tcap, "%s", at);
    } else if (colon && (!slash || colon > slash)) {
        snprintf(repo, rcap, "%.*s", (int)(colon - name), name);
        snprintf(tag, tcap, "%s", colon + 1);
    } else {
        snprintf(repo, rcap, "%s", name);
        tag[0] = 0;
    }
}

static unsigned count_boxes(const struct state_box *boxes, size_t nboxes, const char *id)
{
    unsigned n = 0;
    for (size_t i = 0; i < nboxes; i++)
        if (!strcmp(boxes[i].image_id, id))
            n++;
    return n;
}

static void info_from_row(const struct state_image *row, unsigned boxes, cocoon_image_info *info)
{
    memset(info, 0, sizeof(*info));
    snprintf(info->id, sizeof(info->id), "%s", row->id);
    snprintf(info->name, sizeof(info->name), "%s", row->name);
    split_name(row->name, info->repository, sizeof(info->repository), info->tag, sizeof(info->tag));
    snprintf(info->config_digest, sizeof(info->config_digest), "%s", row->config_digest);
    snprintf(info->base_path, sizeof(info->base_path), "%s", row->base_path);
    info->size = row->size;
    info->created = row->created_at;
    info->boxes = boxes;
    info->pulled = strncmp(row->id, "sha256:", 7) == 0;
}

static int fill_info(cocoon_runtime *rt, const char *id, cocoon_image_info *info, cocoon_error *err)
{
    struct state_image row;
    if (state_image_get_by_id(rt->state, id, &row, err) < 0)
        return -1;
    struct state_box *boxes = NULL;
    size_t nboxes = 0;
    if (state_box_list(rt->state, &boxes, &nboxes, NULL) < 0)
        nboxes = 0;
    info_from_row(&row, count_boxes(boxes, nboxes, row.id), info);
    state_box_list_free(boxes, nboxes);
    state_image_clear(&row);
    return 0;
}

static int base_path_for(cocoon_runtime *rt, const char *manifest_digest, char *out, size_t cap)
{
    if (strncmp(manifest_digest, "sha256:", 7) != 0)
        return -1;
    return lib_path(out, cap, "%s/images/bases/%s.ext4", rt->home, manifest_digest + 7);
}

/* The base of a manifest, published exactly once: unpacked to a temporary file and
 * moved into place with a no-replace rename. A racing pull or load that loses discards
 * its copy and uses the winner's, so a base that boxes already stand on is never
 * replaced (the copies would be identical anyway: see ext4_write.c). */
static int ensure_base(cocoon_runtime *rt, const struct image_manifest_info *info, char *base, size_t cap,
                       cocoon_error *err)
{
    char dir[LIB_PATH_MAX], store[LIB_PATH_MAX], tmp[LIB_PATH_MAX];
    if (base_path_for(rt, info->manifest_digest, base, cap) < 0 ||
        lib_path(dir, sizeof(dir), "%s/images/bases", rt->home) < 0 || images_dir(rt, store, sizeof(store)) < 0)
        return lib_err(err, COCOON_E_INVALID, "bad manifest digest or COCOON_HOME path too long");
    if (util_file_exists(base))
        return 0;
    if (util_mkdir_p(dir, 0755) < 0)
        return lib_err(err, COCOON_E_IO, "cannot create %s: %s", dir, strerror(errno));
    if (lib_path(tmp, sizeof(tmp), "%s/.tmp-%ld-%.12s.ext4", dir, (long)getpid(), info->manifest_digest + 7) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    char msg[COCOON_ERROR_MAX - 64];
    if (image_unpack_ext4(store, info, tmp, msg, sizeof(msg)) < 0) {
        unlink(tmp);
        return lib_err(err, COCOON_E_IO, "unpacking %s: %s", info->manifest_digest, msg);
    }
    chmod(tmp, 0444); /* shared read-only by every box of the image */
    util_test_point("BASE_PUBLISH");
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, base, RENAME_NOREPLACE) < 0) {
        int e = errno;
        unlink(tmp);
        if (e == EEXIST)
            return 0; /* another pull or load published it first: theirs it is */
        return lib_err(err, COCOON_E_IO, "cannot rename %s to %s: %s", tmp, base, strerror(e));
    }
    return 0;
}

/* Base + database row for one pulled or loaded manifest; info out is optional. */
static int record(cocoon_runtime *rt, const char *name, const struct image_manifest_info *m, cocoon_image_info *out,
                  cocoon_error *err)
{
    struct state_image row;
    memset(&row, 0, sizeof(row));
    if (ensure_base(rt, m, row.base_path, sizeof(row.base_path), err) < 0)
        return -1;
    util_test_point("IMAGE_RECORD");
    char store[LIB_PATH_MAX], msg[1024];
    images_dir(rt, store, sizeof(store));
    size_t len = 0;
    row.config_json = image_blob_read(store, m->config_digest, CONFIG_MAX, &len, msg, sizeof(msg));
    if (!row.config_json)
        return lib_err(err, COCOON_E_IO, "image config %s: %s", m->config_digest, msg);
    struct stat st;
    if (stat(row.base_path, &st) < 0) {
        state_image_clear(&row);
        return lib_err(err, COCOON_E_IO, "%s: %s", row.base_path, strerror(errno));
    }
    snprintf(row.id, sizeof(row.id), "%s", m->manifest_digest);
    snprintf(row.name, sizeof(row.name), "%s", name ? name : "");
    snprintf(row.config_digest, sizeof(row.config_digest), "%s", m->config_digest);
    row.size = (uint64_t)st.st_size;
    int rc = state_image_put(rt->state, &row, err);
    state_image_clear(&row);
    if (rc < 0)
        return -1;
    return out ? fill_info(rt, m->manifest_digest, out, err) : 0;
}

struct progress_ctx {
    const cocoon_pull_options *opts;
};

static void on_progress(void *user, const char *digest, uint64_t done, uint64_t total)
{
    const struct progress_ctx *p = user;
    p->opts->progress(p->opts->user_data, digest, done, total);
}

void cocoon_pull_options_init(cocoon_pull_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

int cocoon_image_pull(cocoon_runtime *rt, const char *text, const cocoon_pull_options *opts, cocoon_image_info *out,
                      cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !text)
        return lib_err(err, COCOON_E_INVALID, "cocoon_image_pull: NULL argument");
    cocoon_pull_options o;
    if (LIB_OPTIONS(cocoon_pull_options, o, opts, err) < 0)
        return -1;
    struct image_ref ref;
    char msg[COCOON_ERROR_MAX - 128];
    if (image_ref_parse(text, &ref, msg, sizeof(msg)) < 0)
        return lib_err(err, COCOON_E_INVALID, "invalid image reference \"%s\": %s", text, msg);
    char canon[1200], store[LIB_PATH_MAX], auth[LIB_PATH_MAX];
    image_ref_format(&ref, canon, sizeof(canon));
    if (images_dir(rt, store, sizeof(store)) < 0 || lib_path(auth, sizeof(auth), "%s/auth.json", rt->home) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    struct progress_ctx pc = {&o};
    struct image_pull_options po = {0};
    po.insecure = o.insecure || insecure_from_env(ref.registry);
    po.auth_file = o.auth_file ? o.auth_file : auth;
    if (o.progress && !o.quiet) {
        po.progress = on_progress;
        po.progress_user = &pc;
    }
    struct image_manifest_info *m = malloc(sizeof(*m));
    if (!m)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    int lock = lib_store_lock(rt, LOCK_SH, err);
    int rc = -1;
    if (lock < 0)
        goto done;
    if (image_pull(store, &ref, &po, m, msg, sizeof(msg)) < 0) {
        int code = strstr(msg, " 404 ") || strstr(msg, "not found") || strstr(msg, "unknown") ? COCOON_E_NOT_FOUND
                                                                                              : COCOON_E_IO;
        lib_err(err, code, "pulling %s: %s", canon, msg);
        goto done;
    }
    util_test_point("PULL_FETCHED");
    rc = record(rt, canon, m, out, err);
done:
    lib_store_unlock(lock);
    free(m);
    return rc;
}

/* image_load says what went wrong in words only. A load fails either because the host
 * could not do its part (a missing or unreadable file, a full disk, no memory: errno
 * says so, as the failing call left it) or because the archive is not what it claims
 * (not a tar, a bad manifest, a missing blob: no system call failed, or only a probe
 * such as a stat of a blob not yet stored). The second is the caller's to fix. */
static int load_error_kind(const char *path, int e)
{
    if (access(path, F_OK) != 0)
        return COCOON_E_NOT_FOUND;
    switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case ENOMEM:
    case EROFS:
    case EMFILE:
    case ENFILE:
    case EACCES:
    case EPERM: return COCOON_E_IO;
    default: return COCOON_E_INVALID;
    }
}

int cocoon_image_load(cocoon_runtime *rt, const char *path, cocoon_image_info **out, size_t *count, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !path)
        return lib_err(err, COCOON_E_INVALID, "cocoon_image_load: NULL argument");
    if (out)
        *out = NULL;
    if (count)
        *count = 0;
    char store[LIB_PATH_MAX], msg[COCOON_ERROR_MAX - 128];
    if (images_dir(rt, store, sizeof(store)) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    int lock = lib_store_lock(rt, LOCK_SH, err);
    if (lock < 0)
        return -1;
    struct image_loaded *imgs = NULL;
    size_t n = 0;
    errno = 0;
    if (image_load(store, path, &imgs, &n, msg, sizeof(msg)) < 0) {
        int kind = load_error_kind(path, errno);
        lib_store_unlock(lock);
        return lib_err(err, kind, "loading %s: %s", path, msg);
    }
    util_test_point("LOAD_IMPORTED");
    cocoon_image_info *list = calloc(n ? n : 1, sizeof(*list));
    int rc = list ? 0 : lib_err(err, COCOON_E_NOMEM, "out of memory");
    /* Every name is checked before anything is recorded: a bad one records nothing. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (lib_image_shadows_builtin(rt, imgs[i].name))
            rc = lib_err(err, COCOON_E_INVALID,
                         "loading %s: refusing the image name %s: the built-in image of that name keeps it", path,
                         imgs[i].name);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = record(rt, imgs[i].name, &imgs[i].info, &list[i], err);
    lib_store_unlock(lock);
    free(imgs);
    if (rc < 0 || !out) {
        free(list);
        if (rc == 0 && count)
            *count = n;
        return rc;
    }
    *out = list;
    if (count)
        *count = n;
    return 0;
}

int cocoon_image_list(cocoon_runtime *rt, cocoon_image_info **out, size_t *count, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !out || !count)
        return lib_err(err, COCOON_E_INVALID, "cocoon_image_list: NULL argument");
    *out = NULL;
    *count = 0;
    struct state_image *rows = NULL;
    size_t n = 0;
    if (state_image_list_tags(rt->state, &rows, &n, err) < 0) /* each name is a line */
        return -1;
    struct state_box *boxes = NULL;
    size_t nboxes = 0;
    if (state_box_list(rt->state, &boxes, &nboxes, NULL) < 0)
        nboxes = 0;
    cocoon_image_info *list = calloc(n ? n : 1, sizeof(*list));
    if (list)
        for (size_t i = 0; i < n; i++)
            info_from_row(&rows[i], count_boxes(boxes, nboxes, rows[i].id), &list[i]);
    state_box_list_free(boxes, nboxes);
    state_image_list_free(rows, n);
    if (!list)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    *out = list;
    *count = n;
    return 0;
}

void cocoon_image_list_free(cocoon_image_info *list) { free(list); }

/* An existing image by what a user typed; no pull, no built-in registration. */
static int find_image(cocoon_runtime *rt, const char *name, struct state_image *out, cocoon_error *err)
{
    cocoon_error e;
    if (lib_image_lookup(rt, name, out, &e) == 0)
        return 0;
    state_image_clear(out);
    /* A row whose base file is gone can still be inspected and removed. */
    if (state_image_get_by_id(rt->state, name, out, NULL) == 0 ||
        state_image_get_by_name(rt->state, name, out, NULL) == 0)
        return 0;
    if (e.code == COCOON_E_NOT_FOUND)
        return lib_err(err, COCOON_E_NOT_FOUND, "no such image: %s", name);
    return lib_err(err, e.code, "%s", e.message);
}

static int find_tag(cocoon_runtime *rt, const char *name, char *tag, size_t cap);

int cocoon_image_inspect(cocoon_runtime *rt, const char *name, cocoon_image_info *info, char **config_json,
                         cocoon_error *err)
{
    lib_err_clear(err);
    if (config_json)
        *config_json = NULL;
    if (!rt || !name || !info)
        return lib_err(err, COCOON_E_INVALID, "cocoon_image_inspect: NULL argument");
    struct state_image row;
    if (find_image(rt, name, &row, err) < 0)
        return -1;
    int rc = fill_info(rt, row.id, info, err);
    /* Asked by one of its names: that name, not whichever of them fill_info met first. */
    char tag[sizeof(info->name)];
    if (rc == 0 && find_tag(rt, name, tag, sizeof(tag))) {
        snprintf(info->name, sizeof(info->name), "%s", tag);
        split_name(tag, info->repository, sizeof(info->repository), info->tag, sizeof(info->tag));
    }
    if (rc == 0 && config_json) {
        *config_json = row.config_json;
        row.config_json = NULL;
    }
    state_image_clear(&row);
    return rc;
}

static char **strv_dup(char **v) { return v ? lib_strv_join((const char *const *)v, NULL) : NULL; }

int cocoon_image_config_get(cocoon_runtime *rt, const char *name, cocoon_image_config *out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !name || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_image_config_get: NULL argument");
    memset(out, 0, sizeof(*out));
    struct state_image row;
    if (find_image(rt, name, &row, err) < 0)
        return -1;
    if (!row.config_json) {
        state_image_clear(&row);
        return 0;
    }
    struct image_config c;
    char msg[1024];
    int rc = image_config_parse(row.config_json, strlen(row.config_json), &c, msg, sizeof(msg));
    state_image_clear(&row);
    if (rc < 0)
        return lib_err(err, COCOON_E_PROTOCOL, "the config of image %s is invalid: %s", name, msg);
    out->env = strv_dup(c.env);
    out->entrypoint = strv_dup(c.entrypoint);
    out->cmd = strv_dup(c.cmd);
    out->working_dir = c.working_dir ? strdup(c.working_dir) : NULL;
    out->user = c.user ? strdup(c.user) : NULL;
    int oom = (c.env && !out->env) || (c.entrypoint && !out->entrypoint) || (c.cmd && !out->cmd) ||
              (c.working_dir && !out->working_dir) || (c.user && !out->user);
    image_config_free(&c);
    if (oom) {
        cocoon_image_config_free(out);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    return 0;
}

void cocoon_image_config_free(cocoon_image_config *cfg)
{
    if (!cfg)
        return;
    lib_strv_free(cfg->env);
    lib_strv_free(cfg->entrypoint);
    lib_strv_free(cfg->cmd);
    free(cfg->working_dir);
    free(cfg->user);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- removal and garbage collection ---- */

struct digest_set {
    char (*d)[72];
    size_t n, cap;
};

static void set_add(struct digest_set *s, const char *digest)
{
    if (!digest || strncmp(digest, "sha256:", 7) != 0)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        void *g = realloc(s->d, cap * sizeof(*s->d));
        if (!g)
            return;
        s->d = g;
        s->cap = cap;
    }
    snprintf(s->d[s->n++], sizeof(s->d[0]), "%s", digest + 7);
}

static int set_has(const struct digest_set *s, const char *hex)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->d[i], hex))
            return 1;
    return 0;
}

/* The blobs an image needs: its manifest, its config and its layers. */
static void add_image_blobs(const char *store, const struct state_image *img, struct digest_set *keep)
{
    set_add(keep, img->id);
    set_add(keep, img->config_digest);
    size_t len;
    char msg[256];
    char *doc = image_blob_read(store, img->id, CONFIG_MAX, &len, msg, sizeof(msg));
    if (!doc)
        return;
    json_t *m = json_loadb(doc, len, 0, NULL);
    free(doc);
    json_t *layers = json_object_get(m, "layers");
    for (size_t i = 0; i < json_array_size(layers); i++)
        set_add(keep, json_string_value(json_object_get(json_array_get(layers, i), "digest")));
    json_decref(m);
}

/* A file of the store no image needs: its bytes, reported to fn, and unlinked when remove is set. */
static uint64_t sweep_file(const char *path, int remove, void (*fn)(void *, const char *, uint64_t), void *arg)
{
    struct stat st;
    if (lstat(path, &st) < 0 || (remove && unlink(path) < 0))
        return 0;
    if (remove)
        util_test_point("SWEEP");
    uint64_t bytes = (uint64_t)st.st_blocks * 512;
    if (fn)
        fn(arg, path, bytes);
    return bytes;
}

uint64_t lib_image_sweep(cocoon_runtime *rt, int remove, void (*fn)(void *, const char *, uint64_t), void *arg)
{
    char store[LIB_PATH_MAX], dir[LIB_PATH_MAX], path[LIB_PATH_MAX];
    images_dir(rt, store, sizeof(store));
    struct digest_set keep = {0}, bases = {0};
    struct state_image *rows = NULL;
    size_t n = 0;
    if (state_image_list(rt->state, &rows, &n, NULL) < 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(rows[i].id, "sha256:", 7)) {
            add_image_blobs(store, &rows[i], &keep);
            set_add(&bases, rows[i].id);
        }
    }
    state_image_list_free(rows, n);
    uint64_t freed = 0;
    DIR *d;
    if (lib_path(dir, sizeof(dir), "%s/blobs/sha256", store) == 0 && (d = opendir(dir))) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.' && strncmp(e->d_name, ".tmp-", 5) != 0)
                continue;
            if (e->d_name[0] != '.' && set_has(&keep, e->d_name))
                continue;
            if (lib_path(path, sizeof(path), "%s/%s", dir, e->d_name) == 0)
                freed += sweep_file(path, remove, fn, arg);
        }
        closedir(d);
    }
    if (lib_path(dir, sizeof(dir), "%s/bases", store) == 0 && (d = opendir(dir))) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t len = strlen(e->d_name);
            int tmp = !strncmp(e->d_name, ".tmp-", 5);
            int digest_base =
                len == 69 && !strcmp(e->d_name + 64, ".ext4") && strspn(e->d_name, "0123456789abcdef") == 64;
            if (!tmp && !digest_base)
                continue;
            char hex[65];
            snprintf(hex, sizeof(hex), "%.64s", e->d_name);
            if (digest_base && set_has(&bases, hex))
                continue;
            if (lib_path(path, sizeof(path), "%s/%s", dir, e->d_name) == 0)
                freed += sweep_file(path, remove, fn, arg);
        }
        closedir(d);
    }
    free(keep.d);
    free(bases.d);
    return freed;
}

/* The tag a user means by name: as typed, or as a reference in canonical form. */
static int find_tag(cocoon_runtime *rt, const char *name, char *tag, size_t cap)
{
    struct state_image row;
    int found = state_image_get_by_name(rt->state, name, &row, NULL) == 0;
    if (found) {
        snprintf(tag, cap, "%s", name);
        state_image_clear(&row);
        return 1;
    }
    struct image_ref ref;
    char why[256];
    if (image_ref_parse(name, &ref, why, sizeof(why)) < 0)
        return 0;
    image_ref_format(&ref, tag, cap);
    found = state_image_get_by_name(rt->state, tag, &row, NULL) == 0;
    if (found)
        state_image_clear(&row);
    return found;
}

int cocoon_image_remove(cocoon_runtime *rt, const char *name, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !name)
        return lib_err(err, COCOON_E_INVALID, "cocoon_image_remove: NULL argument");
    cocoon_error e;
    int rc;
    char tag[1200];
    if (find_tag(rt, name, tag, sizeof(tag))) {
        /* A name: it goes, and the image only with its last name. */
        rc = state_image_untag(rt->state, tag, NULL, 0, NULL, &e);
    } else {
        /* An id or id prefix: the image and all its names. */
        struct state_image row;
        if (find_image(rt, name, &row, err) < 0)
            return -1;
        rc = state_image_remove(rt->state, row.id, &e);
        state_image_clear(&row);
    }
    if (rc < 0)
        return lib_err(err, e.code, "cannot remove image %s: %s", name, e.message);
    /* Its base and blobs go only when no pull or load runs right now (one may be about
     * to record this very image on them); a later prune gets them otherwise. */
    int lock = lib_store_lock(rt, LOCK_EX | LOCK_NB, NULL);
    if (lock >= 0) {
        lib_image_sweep(rt, 1, NULL, NULL);
        lib_store_unlock(lock);
    }
    return 0;
}

int cocoon_image_prune(cocoon_runtime *rt, size_t *removed, uint64_t *freed_bytes, cocoon_error *err)
{
    lib_err_clear(err);
    if (removed)
        *removed = 0;
    if (freed_bytes)
        *freed_bytes = 0;
    if (!rt)
        return lib_err(err, COCOON_E_INVALID, "cocoon_image_prune: NULL runtime");
    int lock = lib_store_lock(rt, LOCK_EX, err);
    if (lock < 0)
        return -1;
    struct state_image *rows = NULL;
    size_t n = 0;
    if (state_image_list(rt->state, &rows, &n, err) < 0) {
        lib_store_unlock(lock);
        return -1;
    }
    struct state_box *boxes = NULL;
    size_t nboxes = 0;
    int rc = state_box_list(rt->state, &boxes, &nboxes, err);
    uint64_t freed = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (count_boxes(boxes, nboxes, rows[i].id) || strncmp(rows[i].id, "sha256:", 7) != 0)
            continue; /* used, or a built-in image (its file is not ours) */
        cocoon_error e;
        /* A box created meanwhile makes the removal fail: that image is kept. */
        if (state_image_remove(rt->state, rows[i].id, &e) == 0 && removed)
            (*removed)++;
    }
    util_test_point("PRUNE_UNLISTED");
    if (rc == 0)
        freed += lib_image_sweep(rt, 1, NULL, NULL);
    state_box_list_free(boxes, nboxes);
    state_image_list_free(rows, n);
    lib_store_unlock(lock);
    if (freed_bytes)
        *freed_bytes = freed;
    return rc;
}

int lib_image_lookup_or_pull(cocoon_runtime *rt, const char *name, struct state_image *out, cocoon_error *err)
{
    cocoon_error e;
    if (lib_image_lookup(rt, name, out, &e) == 0)
        return 0;
    state_image_clear(out);
    memset(out, 0, sizeof(*out));
    struct image_ref ref;
    char why[256];
    if (e.code != COCOON_E_NOT_FOUND || !name || !*name || !strcmp(name, "default") ||
        image_ref_parse(name, &ref, why, sizeof(why)) < 0)
        return lib_err(err, e.code, "%s", e.message);
    cocoon_image_info info;
    cocoon_error pe;
    if (cocoon_image_pull(rt, name, NULL, &info, &pe) < 0)
        return lib_err(err, pe.code, "image \"%s\" is not here and could not be pulled: %s", name, pe.message);
    return state_image_get_by_id(rt->state, info.id, out, err);
}
