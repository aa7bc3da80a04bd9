/* `cocoon clone`: new boxes whose disks are copy-on-write layers over a snapshot's
 * read-only layer (cocoon.h "clones"). Each clone is built as create builds a box: in
 * boxes/.creating-<id>/ under its lock (a new top layer over the snapshot's layer, the
 * config), renamed into place, then given its row, which makes it visible; a kill at
 * any point leaves either a whole box or garbage the collector removes. The snapshot
 * lock is held exclusively throughout, so the snapshot cannot be removed before the
 * clones' disks name it (after which it is in use). */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "lib/snapshot.h"
#include "util/util.h"

#define CLONE_SIDE_FILE_MAX (1u << 20) /* health.json, main.json: written by us, small */

/* What the clones are made from. */
struct clone_src {
    struct snap_record snap;    /* the snapshot they stand on */
    struct box_config c;        /* the config they start from */
    char box_dir[LIB_PATH_MAX]; /* the source box's directory, "" for a snapshot */
    char base[BOX_NAME_MAX];    /* what generated names start with */
};

void cocoon_clone_options_init(cocoon_clone_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

/* The id of the box holding name, or "" when it is free. */
static void name_owner(cocoon_runtime *rt, const char *name, char owner[16])
{
    struct state_box other;
    owner[0] = 0;
    if (state_box_find(rt->state, name, &other, NULL) == 0) {
        if (!strcmp(other.name, name))
            snprintf(owner, 16, "%s", other.id);
        state_box_clear(&other);
    }
}

/* count names into names[i] (BOX_NAME_MAX each): NAME, NAME-1..NAME-N, or the smallest
 * free "<base>-clone-<k>". A given name that is taken is refused before anything is made. */
static int pick_names(cocoon_runtime *rt, const struct clone_src *s, const char *asked, unsigned count,
                      char (*names)[BOX_NAME_MAX], cocoon_error *err)
{
    char owner[16];
    if (asked) {
        for (unsigned i = 0; i < count; i++) {
            int n = count == 1 ? snprintf(names[i], BOX_NAME_MAX, "%s", asked)
                               : snprintf(names[i], BOX_NAME_MAX, "%s-%u", asked, i + 1);
            if (n < 0 || n >= (int)BOX_NAME_MAX || !box_name_valid(names[i]))
                return lib_err(err, COCOON_E_INVALID,
                               "invalid box name \"%s\": up to %u letters, digits, '.', '_' or '-' (with -n, the "
                               "numbered names must fit too)",
                               asked, BOX_NAME_MAX - 1);
            name_owner(rt, names[i], owner);
            if (owner[0])
                return lib_err(err, COCOON_E_STATE, "box name \"%s\" is already in use by box %s", names[i], owner);
        }
        return 0;
    }
    unsigned k = 1;
    for (unsigned i = 0; i < count; i++)
        for (;; k++) {
            snprintf(names[i], BOX_NAME_MAX, "%.40s-clone-%u", s->base, k);
            name_owner(rt, names[i], owner);
            if (!owner[0] && box_name_valid(names[i])) {
                k++;
                break;
            }
            if (k > 100000)
                return lib_err(err, COCOON_E_STATE, "no free name \"%.40s-clone-<k>\": give one with --name", s->base);
        }
    return 0;
}

/* dir/file copied into tmp when it exists (the source box's health check, main process). */
static int copy_side_file(const char *from_dir, const char *tmp, const char *file, cocoon_error *err)
{
    char from[LIB_PATH_MAX], to[LIB_PATH_MAX];
    if (!from_dir[0] || lib_path(from, sizeof(from), "%s/%s", from_dir, file) < 0 || !util_file_exists(from))
        return 0;
    size_t len;
    char *text = util_read_file(from, CLONE_SIDE_FILE_MAX, &len);
    int rc = text && lib_path(to, sizeof(to), "%s/%s", tmp, file) == 0 && util_write_file_atomic(to, text, len) == 0
                 ? 0
                 : lib_err(err, COCOON_E_IO, "cannot copy %s into the clone: %s", from, strerror(errno));
    free(text);
    return rc;
}

/* One clone, whole or not at all; its id into id. */
static int make_one(cocoon_runtime *rt, const struct clone_src *s, const char *name, char id[16], cocoon_error *err)
{
    struct box_config *c = malloc(sizeof(*c));
    if (!c)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    *c = s->c;
    char dir[LIB_PATH_MAX], tmp[LIB_PATH_MAX], layer[LIB_PATH_MAX], disk_at_tmp[LIB_PATH_MAX], why[512];
    int lock = lib_box_begin(rt, id, dir, tmp, sizeof(dir), err);
    if (lock < 0) {
        free(c);
        return -1;
    }
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->created = (long long)time(NULL);
    c->ephemeral = 0;
    c->hostname[0] = 0; /* cocoon-<id>: its own */
    int rc = 0;
    if (lib_path(c->disk, sizeof(c->disk), "%s/disk.qcow2", dir) < 0 ||
        lib_path(disk_at_tmp, sizeof(disk_at_tmp), "%s/disk.qcow2", tmp) < 0 ||
        lib_snap_path(rt, s->snap.id, "disk.qcow2", layer, sizeof(layer)) < 0)
        rc = lib_err(err, COCOON_E_INVALID, "box path too long");
    util_test_point("CLONE_BUILD");
    if (rc == 0 && qcow2_create(disk_at_tmp, s->snap.virtual_size, layer, "qcow2", 0, why, sizeof(why)) < 0)
        rc = lib_err(err, COCOON_E_IO, "cannot create the clone's disk layer: %s", why);
    if (rc == 0)
        chmod(disk_at_tmp, 0644); /* as create makes a box disk */
    if (rc == 0)
        rc = copy_side_file(s->box_dir, tmp, "health.json", err);
    if (rc == 0)
        rc = copy_side_file(s->box_dir, tmp, "main.json", err);
    if (rc == 0)
        rc = lib_box_publish(tmp, dir, c, err);
    if (rc < 0) {
        util_rm_rf(tmp);
        close(lock);
        free(c);
        return -1;
    }
    util_test_point("CLONE_PUBLISH");
    rc = lib_box_insert_row(rt, c, err);
    if (rc < 0)
        util_rm_rf(dir); /* no row: still ours under the lock */
    else
        util_test_point("CLONE_ROW");
    close(lock);
    free(c);
    return rc;
}

/* The source as a box: stopped (its lock, returned, is held until the clones exist),
 * with a qcow2 disk; its config read under the lock. */
static int lock_box_source(cocoon_box *box, struct clone_src *s, cocoon_error *err)
{
    if (box->problem[0])
        return lib_err(err, COCOON_E_STATE, "box %s cannot be cloned: %s", box->id, box->problem);
    int lock =
        lib_snap_lock_qcow2(box, "cloning it", "clones need a qcow2 disk (a box made from an image)", &s->c, err);
    if (lock < 0)
        return -1;
    snprintf(s->box_dir, sizeof(s->box_dir), "%s", box->dir);
    snprintf(s->base, sizeof(s->base), "%.63s", box->name[0] ? box->name : box->id);
    return lock;
}

/* The source as a snapshot: its record and the config saved with it. */
static int from_snapshot(cocoon_runtime *rt, const char *source, struct clone_src *s, cocoon_error *err)
{
    if (lib_snap_find(rt, source, &s->snap, err) < 0) {
        if (err && err->code == COCOON_E_NOT_FOUND)
            lib_err(err, COCOON_E_NOT_FOUND,
                    "no box or snapshot with id or name \"%s\" (see `cocoon ls -a` and `cocoon snapshot ls`)", source);
        return -1;
    }
    char path[LIB_PATH_MAX], why[512];
    size_t len;
    if (lib_snap_path(rt, s->snap.id, "config.json", path, sizeof(path)) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    char *text = util_read_file(path, BOX_CONFIG_FILE_MAX, &len);
    if (!text)
        return lib_err(err, COCOON_E_IO, "cannot read %s: %s", path, strerror(errno));
    int rc = box_config_parse(text, len, &s->c, why, sizeof(why));
    free(text);
    if (rc < 0)
        return lib_err(err, COCOON_E_INVALID, "snapshot %s's config.json: %s", s->snap.name, why);
    s->box_dir[0] = 0;
    snprintf(s->base, sizeof(s->base), "%.63s", s->snap.name);
    return 0;
}

int cocoon_box_clone(cocoon_runtime *rt, const char *source, const cocoon_clone_options *opts, char (*ids)[16],
                     char snapshot[16], cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !source)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_clone: NULL argument");
    cocoon_clone_options o;
    if (LIB_OPTIONS(cocoon_clone_options, o, opts, err) < 0)
        return -1;
    unsigned count = o.count ? o.count : 1;
    if (count > COCOON_CLONE_MAX)
        return lib_err(err, COCOON_E_INVALID, "cannot make %u clones at once: at most %d", count, COCOON_CLONE_MAX);
    const char *asked = o.name && *o.name ? o.name : NULL;
    struct clone_src *s = calloc(1, sizeof(*s));
    char(*names)[BOX_NAME_MAX] = calloc(count, sizeof(*names));
    char(*made_ids)[16] = calloc(count, sizeof(*made_ids));
    if (!s || !names || !made_ids) {
        free(s);
        free(names);
        free(made_ids);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    lib_box_gc(rt);
    cocoon_box *box = NULL;
    cocoon_error box_err;
    int box_lock = -1, snap_made = 0, rc = 0;
    if (cocoon_box_open(rt, source, &box, &box_err) < 0) {
        box = NULL;
        if (box_err.code != COCOON_E_NOT_FOUND) {
            if (err)
                *err = box_err;
            rc = -1;
        }
    }
    /* The box lock first, then the snapshots' (the order snapshot create takes them in). */
    if (rc == 0 && box && (box_lock = lock_box_source(box, s, err)) < 0)
        rc = -1;
    int slock = rc == 0 ? lib_snap_lock(rt, LOCK_EX, err) : -1;
    if (rc == 0 && slock < 0)
        rc = -1;
    if (rc == 0) {
        lib_snap_gc(rt);
        rc = box ? lib_snap_for_clone(box, &s->c, &s->snap, &snap_made, err) : from_snapshot(rt, source, s, err);
    }
    if (rc == 0)
        rc = pick_names(rt, s, asked, count, names, err);
    unsigned made = 0;
    while (rc == 0 && made < count && (rc = make_one(rt, s, names[made], made_ids[made], err)) == 0)
        made++;
    if (rc < 0)
        for (unsigned i = 0; i < made; i++) { /* all or nothing */
            cocoon_box *b;
            if (cocoon_box_open(rt, made_ids[i], &b, NULL) == 0) {
                cocoon_box_remove(b, 1, NULL);
                cocoon_box_close(b);
            }
        }
    if (rc == 0 && ids)
        memcpy(ids, made_ids, count * sizeof(*made_ids));
    if (rc == 0 && snapshot)
        snprintf(snapshot, 16, "%s", s->snap.id);
    lib_snap_unlock(slock);
    if (box_lock >= 0)
        close(box_lock);
    if (box)
        cocoon_box_close(box);
    free(s);
    free(names);
    free(made_ids);
    return rc;
}
