/* What killed commands leave in $COCOON_HOME, found and collected: the box collector
 * run by create and list (lib_box_gc), and the whole state check behind `cocoon doctor
 * [--fix]` (cocoon_state_check): box rows against box directories, the image store
 * against image rows, stopped boxes' disks, the database itself. Only garbage is ever
 * removed (what no row needs, and rows whose files are gone); a damaged box or image
 * is reported with the command that removes it. */
#include "lib/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "lib/snapshot.h"
#include "util/util.h"

int lib_gc_lock(cocoon_runtime *rt, int how)
{
    char path[LIB_PATH_MAX];
    if (lib_path(path, sizeof(path), "%s/.gc.lock", rt->home) < 0)
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc;
    while ((rc = flock(fd, how)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void lib_gc_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

struct check {
    cocoon_runtime *rt;
    int fix;
    cocoon_check_fn fn; /* NULL: collect quietly (lib_box_gc) */
    void *user;
    int left; /* findings not fixed */
    /* The box ids with a row when the check began (NULL if that query failed): one
     * query instead of one per directory, which `ls` paid for every box. */
    struct state_box_id *rows;
    size_t nrows;
};

static void report(struct check *c, int kind, int fixed, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void report(struct check *c, int kind, int fixed, const char *action, const char *fmt, ...)
{
    if (kind != COCOON_CHECK_INFO && !fixed)
        c->left++;
    if (!c->fn)
        return;
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    cocoon_check_finding f = {kind, fixed, what, action};
    c->fn(c->user, &f);
}

static int cmp_id(const void *key, const void *row) { return strcmp(key, ((const struct state_box_id *)row)->id); }

/* 1 when the box has a row, 0 when it certainly has none, -1 when the database could
 * not say (then its directory is left alone). */
static int has_row(struct check *c, const char *id)
{
    cocoon_error e;
    if (state_box_get(c->rt->state, id, NULL, &e) == 0)
        return 1;
    return e.code == COCOON_E_NOT_FOUND ? 0 : -1;
}

/* An entry of boxes/ that no row needs, whose creator or remover is gone (nobody holds
 * its box lock): removed when fixing. A held lock means a command is at work there. */
static void collect_dir(struct check *c, const char *boxes, const char *name)
{
    int creating = !strncmp(name, ".creating-", 10), removing = !strncmp(name, ".removing-", 10);
    int id = strlen(name) == 12 && util_is_hex(name);
    char dir[LIB_PATH_MAX];
    struct stat st;
    if (lib_path(dir, sizeof(dir), "%s/%s", boxes, name) < 0)
        return;
    if ((!creating && !removing && !id) || lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        if (c->fn)
            report(c, COCOON_CHECK_PROBLEM, 0, "it is not cocoon's: move it away", "unexpected entry %s", dir);
        return;
    }
    /* Had a row a moment ago: nothing to collect (a row deleted since is its rm's to clean). */
    if (id && c->rows && bsearch(name, c->rows, c->nrows, sizeof(*c->rows), cmp_id))
        return;
    if (id && has_row(c, name) != 0)
        return;
    int lock = lib_box_lock(dir);
    if (lock < 0)
        return;
    /* Checked again under the lock: a create inserts its row before letting go. */
    if (!id || has_row(c, name) == 0) {
        const char *why = creating   ? "left by an interrupted create"
                          : removing ? "left by an interrupted rm"
                                     : "a box directory without a row (an interrupted create or rm)";
        int rc = c->fix ? util_rm_rf(dir) : -1;
        char action[300];
        if (!c->fix)
            snprintf(action, sizeof(action), "`cocoon doctor --fix` removes it");
        else
            snprintf(action, sizeof(action), rc == 0 ? "removed" : "cannot remove it: %s", strerror(errno));
        report(c, COCOON_CHECK_GARBAGE, rc == 0, action, "%s: %s", dir, why);
    }
    close(lock);
}

static void check_box_dirs(struct check *c)
{
    char boxes[LIB_PATH_MAX];
    if (lib_path(boxes, sizeof(boxes), "%s/boxes", c->rt->home) < 0)
        return;
    /* doctor waits for a collector at work; create and list do not */
    int gc = lib_gc_lock(c->rt, LOCK_EX | (c->fn ? 0 : LOCK_NB));
    if (gc < 0) {
        if (c->fn)
            report(c, COCOON_CHECK_PROBLEM, 0, "", "%s not checked: cannot lock %s/.gc.lock: %s", boxes, c->rt->home,
                   strerror(errno));
        return;
    }
    if (state_box_ids(c->rt->state, &c->rows, &c->nrows, NULL) < 0)
        c->rows = NULL;
    DIR *d = opendir(boxes);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            collect_dir(c, boxes, e->d_name);
    if (d)
        closedir(d);
    free(c->rows);
    c->rows = NULL;
    lib_gc_unlock(gc);
}

void lib_box_gc(cocoon_runtime *rt)
{
    struct check c = {.rt = rt, .fix = 1};
    check_box_dirs(&c);
}

/* A stopped box's qcow2 disk, checked the way `qemu-img check` does. */
static void check_disk(struct check *c, const char *id, const char *disk)
{
    char err[512] = "";
    struct qcow2 *q = qcow2_open(disk, 0, err, sizeof(err));
    if (!q) {
        report(c, COCOON_CHECK_PROBLEM, 0, "", "box %s: its disk %s cannot be opened: %s", id, disk, err);
        return;
    }
    struct qcow2_check_result r;
    memset(&r, 0, sizeof(r));
    if (qcow2_check(q, &r, err, sizeof(err)) < 0)
        report(c, COCOON_CHECK_PROBLEM, 0, "", "box %s: its disk %s cannot be checked: %s", id, disk, err);
    else if (r.corruptions)
        report(c, COCOON_CHECK_PROBLEM, 0, "copy what you need out of it, then remove it (cocoon rm)",
               "box %s: its disk %s is corrupt (%llu problems; first: %s)", id, disk, (unsigned long long)r.corruptions,
               err);
    else if (r.leaks && c->fn)
        report(c, COCOON_CHECK_INFO, 0, "harmless: they only take space",
               "box %s: its disk %s has %llu leaked clusters", id, disk, (unsigned long long)r.leaks);
    qcow2_close(q, NULL, 0);
}

/* disk.compact, left in a box's directory by a `snapshot compact` killed before its
 * rename: garbage once nobody holds the box's lock (a compact at work holds it). */
static void check_compact_leftover(struct check *c, const char *dir)
{
    char tmp[LIB_PATH_MAX];
    struct stat st;
    if (lib_path(tmp, sizeof(tmp), "%s/disk.compact", dir) < 0 || lstat(tmp, &st) < 0)
        return;
    int lock = lib_box_lock(dir);
    if (lock < 0)
        return;
    int rc = c->fix ? unlink(tmp) : -1;
    report(c, COCOON_CHECK_GARBAGE, rc == 0,
           c->fix ? (rc == 0 ? "removed" : "cannot remove it") : "`cocoon doctor --fix` removes it",
           "%s: left by an interrupted `cocoon snapshot compact`", tmp);
    close(lock);
}

/* Rows against directories: a row whose directory is gone (its ephemeral box was
 * removed by its monitor) goes; a damaged box is reported. */
static void check_box_rows(struct check *c)
{
    struct state_box *rows = NULL;
    size_t n = 0;
    struct box_config *cfg = malloc(sizeof(*cfg)); /* large: the network rules, four paths */
    if (!cfg || state_box_list(c->rt->state, &rows, &n, NULL) < 0) {
        free(cfg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char dir[LIB_PATH_MAX];
        cocoon_error why;
        const char *id = rows[i].id;
        if (lib_path(dir, sizeof(dir), "%s/boxes/%s", c->rt->home, id) < 0)
            continue;
        if (!util_file_exists(dir)) {
            int rc = c->fix ? state_box_delete(c->rt->state, id, &why) : -1;
            report(c, COCOON_CHECK_GARBAGE, rc == 0,
                   c->fix ? (rc == 0 ? "removed" : why.message) : "`cocoon doctor --fix` removes it",
                   "box %s%s%s%s: a row without a directory (its monitor removed it, or an interrupted rm)", id,
                   rows[i].name[0] ? " (" : "", rows[i].name, rows[i].name[0] ? ")" : "");
            continue;
        }
        check_compact_leftover(c, dir);
        char rm[64];
        snprintf(rm, sizeof(rm), "remove it: cocoon rm -f %s", id);
        if (lib_config_read(dir, cfg, &why) < 0) {
            report(c, COCOON_CHECK_PROBLEM, 0, rm, "box %s cannot start: %s", id, why.message);
        } else if (!util_file_exists(cfg->disk)) {
            report(c, COCOON_CHECK_PROBLEM, 0, rm, "box %s cannot start: its disk %s is missing", id, cfg->disk);
        } else if (!strcmp(cfg->disk_format, "qcow2") && !lib_box_running(dir, NULL)) {
            check_disk(c, id, cfg->disk);
        }
    }
    state_box_list_free(rows, n);
    free(cfg);
}

static void on_store_file(void *arg, const char *path, uint64_t bytes)
{
    struct check *c = arg;
    char action[300];
    if (c->fix)
        snprintf(action, sizeof(action), "removed (%llu bytes)", (unsigned long long)bytes);
    else
        snprintf(action, sizeof(action), "`cocoon doctor --fix` removes it (%llu bytes)", (unsigned long long)bytes);
    report(c, COCOON_CHECK_GARBAGE, c->fix, action, "%s: no image needs it (an interrupted pull, load, rmi or prune)",
           path);
}

/* Image rows against bases, and the store's files no row needs (with the store lock
 * held exclusively, so never the files of a pull or load at work). */
static void check_images(struct check *c)
{
    cocoon_error e;
    int lock = lib_store_lock(c->rt, LOCK_EX | LOCK_NB, &e);
    if (lock < 0) {
        report(c, COCOON_CHECK_INFO, 0, "", "image store not checked: %s", e.message);
        return;
    }
    lib_image_sweep(c->rt, c->fix, on_store_file, c);
    struct state_image *rows = NULL;
    size_t n = 0;
    if (state_image_list(c->rt->state, &rows, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++)
            if (!util_file_exists(rows[i].base_path)) {
                char rmi[600];
                snprintf(rmi, sizeof(rmi), "pull or load it again, or remove it: cocoon rmi %s", rows[i].id);
                report(c, COCOON_CHECK_PROBLEM, 0, rmi, "image %s (%s): its base %s is missing", rows[i].id,
                       rows[i].name, rows[i].base_path);
            }
        state_image_list_free(rows, n);
    }
    lib_store_unlock(lock);
}

static void snap_found(void *arg, const char *path, int removed)
{
    struct check *c = arg;
    report(c, COCOON_CHECK_GARBAGE, removed, "cocoon doctor --fix removes it",
           "%s: left by an interrupted snapshot command", path);
}

/* Snapshot directories and layers no snapshot command finished (snapshot.c). Fixed
 * only when no snapshot command is at work (snapshots/.lock free). */
static void check_snapshots(struct check *c)
{
    int lock = lib_snap_lock(c->rt, c->fix ? LOCK_EX | LOCK_NB : LOCK_SH | LOCK_NB, NULL);
    if (lock < 0)
        return; /* a snapshot command is at work: its files are not garbage */
    lib_snap_garbage(c->rt, c->fix, snap_found, c);
    lib_snap_unlock(lock);
}

int cocoon_state_check(cocoon_runtime *rt, unsigned flags, cocoon_check_fn fn, void *user, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt)
        return lib_err(err, COCOON_E_INVALID, "cocoon_state_check: NULL runtime");
    struct check c = {.rt = rt, .fix = (flags & COCOON_CHECK_FIX) != 0, .fn = fn, .user = user};
    char db[COCOON_ERROR_MAX];
    if (state_integrity(rt->state, db, sizeof(db)) < 0)
        report(&c, COCOON_CHECK_PROBLEM, 0,
               "restore it from a backup, or move it away (cocoon starts a new, empty one)",
               "the state database %s is damaged: %s", rt->state->path, db);
    check_box_dirs(&c);
    check_box_rows(&c);
    check_images(&c);
    check_snapshots(&c);
    return c.left;
}
