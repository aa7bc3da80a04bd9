/* Disk snapshots of stopped boxes (cocoon.h "disk snapshots"). A snapshot is
 * $COCOON_HOME/snapshots/<id>/ holding snapshot.json, a copy of the box's config.json
 * and disk.qcow2: the box's former top layer, now read-only, under the box's new top.
 * Taking one, under the box lock and snapshots/.lock:
 *   1. snapshots/.creating-<id>/ gets the record and a hard link to the box's disk;
 *   2. it is renamed to snapshots/<id>/ (its layer still has two links: not committed);
 *   3. a new top layer over snapshots/<id>/disk.qcow2 is made as snapshots/<id>/top.new;
 *   4. renamed over the box's disk.qcow2: the commit, after which the layer has one link.
 * So a snapshot whose layer has more than one link was interrupted before its commit:
 * it is never listed and the next snapshot command under the lock removes it (the
 * box's disk, the other link, is untouched). */
#include "lib/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "lib/snapshot.h"
#include "monitor/livesnap.h"
#include "util/util.h"

/* How long a live snapshot may take, the guest's freeze included. */
#define LIVESNAP_WAIT_MS 120000u

int lib_snap_lock(cocoon_runtime *rt, int how, cocoon_error *err)
{
    char path[LIB_PATH_MAX];
    if (lib_path(path, sizeof(path), "%s/snapshots", rt->home) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return lib_err(err, COCOON_E_IO, "cannot create %s: %s", path, strerror(errno));
    if (lib_path(path, sizeof(path), "%s/snapshots/.lock", rt->home) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return lib_err(err, COCOON_E_IO, "cannot open %s: %s", path, strerror(errno));
    int rc;
    while ((rc = flock(fd, how)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        int e = errno;
        close(fd);
        return lib_err(err, COCOON_E_IO, "cannot lock %s: %s", path, strerror(e));
    }
    return fd;
}

void lib_snap_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

int lib_snap_path(cocoon_runtime *rt, const char *id, const char *file, char *out, size_t cap)
{
    return lib_path(out, cap, "%s/snapshots/%s%s%s", rt->home, id, file ? "/" : "", file ? file : "");
}

/* The record of a committed snapshot: 1, 0 when it is not one (interrupted, damaged,
 * not a snapshot directory at all), -1 with err for a read error of a real one. */
static int load(cocoon_runtime *rt, const char *id, struct snap_record *r)
{
    char path[LIB_PATH_MAX];
    struct stat st;
    if (!snap_id_valid(id) || lib_snap_path(rt, id, "disk.qcow2", path, sizeof(path)) < 0 || lstat(path, &st) < 0 ||
        !S_ISREG(st.st_mode) || st.st_nlink != 1)
        return 0;
    if (lib_snap_path(rt, id, "snapshot.json", path, sizeof(path)) < 0)
        return 0;
    size_t len;
    char *text = util_read_file(path, SNAP_RECORD_MAX, &len), why[256];
    int ok = text && snap_record_parse(text, len, r, why, sizeof(why)) == 0 && !strcmp(r->id, id);
    free(text);
    return ok;
}

int lib_snap_all(cocoon_runtime *rt, struct snap_record **out, size_t *count, cocoon_error *err)
{
    *out = NULL;
    *count = 0;
    char dir[LIB_PATH_MAX];
    if (lib_path(dir, sizeof(dir), "%s/snapshots", rt->home) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : lib_err(err, COCOON_E_IO, "cannot read %s: %s", dir, strerror(errno));
    struct snap_record *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        struct snap_record r;
        if (e->d_name[0] == '.' || load(rt, e->d_name, &r) != 1)
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            struct snap_record *grown = realloc(list, ncap * sizeof(*list));
            if (!grown) {
                free(list);
                closedir(d);
                return lib_err(err, COCOON_E_NOMEM, "out of memory");
            }
            list = grown;
            cap = ncap;
        }
        list[n++] = r;
    }
    closedir(d);
    /* Oldest first (snap_record_before). */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && snap_record_before(&list[j], &list[j - 1]); j--) {
            struct snap_record t = list[j];
            list[j] = list[j - 1];
            list[j - 1] = t;
        }
    *out = list;
    *count = n;
    return 0;
}

int lib_snap_find(cocoon_runtime *rt, const char *id_or_name, struct snap_record *out, cocoon_error *err)
{
    struct snap_record *all;
    size_t n;
    if (lib_snap_all(rt, &all, &n, err) < 0)
        return -1;
    int hit = -1, prefix_hits = 0, prefix = -1;
    for (size_t i = 0; i < n && hit < 0; i++)
        if (!strcmp(all[i].id, id_or_name) || !strcmp(all[i].name, id_or_name))
            hit = (int)i;
    for (size_t i = 0; i < n && hit < 0; i++)
        if (*id_or_name && !strncmp(all[i].id, id_or_name, strlen(id_or_name))) {
            prefix_hits++;
            prefix = (int)i;
        }
    if (hit < 0 && prefix_hits == 1)
        hit = prefix;
    if (hit >= 0)
        *out = all[hit];
    free(all);
    if (hit >= 0)
        return 0;
    if (prefix_hits > 1)
        return lib_err(err, COCOON_E_INVALID, "snapshot id prefix \"%s\" is ambiguous: give more digits", id_or_name);
    return lib_err(err, COCOON_E_NOT_FOUND, "no snapshot with id or name \"%s\" (see `cocoon snapshot ls`)",
                   id_or_name);
}

/* What interrupted snapshot commands left: .creating-*, .removing-*, published
 * directories whose layer still has a second link (step 2 above), and a new top layer
 * (top.new) a snapshot or restore did not get to rename. Each goes to fn (may be NULL),
 * and is removed when remove is set: only with snapshots/.lock held exclusively, when
 * no snapshot command is at work. Returns how many there were. */
/* An unfinished snapshot of a running box may be a live one its monitor is still
 * committing (the command that asked was killed): it is left alone until the box
 * stops. 1 when dir's record names a box whose monitor runs; 0 otherwise, and then the
 * new layer a killed live snapshot left in that box's directory goes too (remove). */
static int of_running_box(cocoon_runtime *rt, const char *dir, int remove)
{
    char path[LIB_PATH_MAX], why[256];
    struct snap_record r;
    size_t len;
    if (lib_path(path, sizeof(path), "%s/snapshot.json", dir) < 0)
        return 0;
    char *text = util_read_file(path, SNAP_RECORD_MAX, &len);
    int ok = text && snap_record_parse(text, len, &r, why, sizeof(why)) == 0;
    free(text);
    if (!ok || lib_path(path, sizeof(path), "%s/boxes/%s", rt->home, r.box_id) < 0)
        return 0;
    struct lib_monitor m;
    int state = lib_monitor_probe(path, &m);
    lib_monitor_done(&m);
    if (state == LIB_MON_RUNNING)
        return 1;
    if (remove && lib_path(path, sizeof(path), "%s/boxes/%s/" LIVESNAP_NEXT_FMT, rt->home, r.box_id, r.id) == 0)
        unlink(path);
    if (remove && lib_path(path, sizeof(path), "%s/boxes/%s/" LIVESNAP_MEMORY, rt->home, r.box_id) == 0)
        unlink(path);
    return 0;
}

unsigned lib_snap_garbage(cocoon_runtime *rt, int remove, void (*fn)(void *, const char *, int), void *arg)
{
    char dir[LIB_PATH_MAX];
    if (lib_path(dir, sizeof(dir), "%s/snapshots", rt->home) < 0)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    unsigned found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        char path[LIB_PATH_MAX], layer[LIB_PATH_MAX];
        struct stat st;
        int doomed = !strncmp(n, ".creating-", 10) || !strncmp(n, ".removing-", 10);
        if (!doomed && snap_id_valid(n) && lib_snap_path(rt, n, "disk.qcow2", layer, sizeof(layer)) == 0)
            doomed = lstat(layer, &st) < 0 || st.st_nlink != 1;
        if (doomed && lib_path(path, sizeof(path), "%s/%s", dir, n) == 0 && strncmp(n, ".removing-", 10) &&
            of_running_box(rt, path, remove))
            continue;
        if (doomed && lib_path(path, sizeof(path), "%s/%s", dir, n) == 0) {
            found++;
            int gone = remove && util_rm_rf(path) == 0;
            if (fn)
                fn(arg, path, gone);
        } else if (snap_id_valid(n) && lib_snap_path(rt, n, "top.new", path, sizeof(path)) == 0 &&
                   lstat(path, &st) == 0) {
            found++;
            int gone = remove && unlink(path) == 0;
            if (fn)
                fn(arg, path, gone);
        }
    }
    closedir(d);
    return found;
}

void lib_snap_gc(cocoon_runtime *rt) { lib_snap_garbage(rt, 1, NULL, NULL); }

/* ---- who stands on what ---- */

struct holder {
    char label[160]; /* "box ID (NAME)" or "snapshot NAME" */
    const char *chain[QCOW2_MAX_CHAIN];
    char *paths; /* storage of chain[] */
    int n;
};

static void holder_load(struct holder *h, const char *disk)
{
    h->n = 0;
    h->paths = NULL;
    char why[256];
    struct qcow2 *q = qcow2_open(disk, 0, why, sizeof(why));
    if (!q)
        return;
    const char *chain[QCOW2_MAX_CHAIN];
    int n = qcow2_chain_paths(q, chain, QCOW2_MAX_CHAIN);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += strlen(chain[i]) + 1;
    h->paths = malloc(total ? total : 1);
    char *p = h->paths;
    for (int i = 0; p && i < n; i++) {
        size_t l = strlen(chain[i]) + 1;
        memcpy(p, chain[i], l);
        h->chain[h->n++] = p;
        p += l;
    }
    qcow2_close(q, NULL, 0);
}

struct holders {
    struct holder *h;
    size_t n;
};

static void holders_free(struct holders *hs)
{
    for (size_t i = 0; i < hs->n; i++)
        free(hs->h[i].paths);
    free(hs->h);
    hs->h = NULL;
    hs->n = 0;
}

/* Every box disk and snapshot layer with the files below it. */
static int holders_load(cocoon_runtime *rt, const struct snap_record *snaps, size_t nsnaps, struct holders *hs,
                        cocoon_error *err)
{
    struct state_box *boxes;
    size_t nboxes;
    if (state_box_list(rt->state, &boxes, &nboxes, err) < 0)
        return -1;
    hs->h = calloc(nboxes + nsnaps + 1, sizeof(*hs->h));
    hs->n = 0;
    if (!hs->h) {
        state_box_list_free(boxes, nboxes);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < nboxes; i++) {
        char disk[LIB_PATH_MAX];
        struct holder *h = &hs->h[hs->n];
        if (lib_path(disk, sizeof(disk), "%s/boxes/%s/disk.qcow2", rt->home, boxes[i].id) < 0 ||
            !util_file_exists(disk))
            continue;
        snprintf(h->label, sizeof(h->label), "box %s%s%.100s%s", boxes[i].id, boxes[i].name[0] ? " (" : "",
                 boxes[i].name, boxes[i].name[0] ? ")" : "");
        holder_load(h, disk);
        hs->n++;
    }
    state_box_list_free(boxes, nboxes);
    for (size_t i = 0; i < nsnaps; i++) {
        char layer[LIB_PATH_MAX];
        struct holder *h = &hs->h[hs->n];
        if (lib_snap_path(rt, snaps[i].id, "disk.qcow2", layer, sizeof(layer)) < 0)
            continue;
        snprintf(h->label, sizeof(h->label), "snapshot %s", snaps[i].name);
        holder_load(h, layer);
        hs->n++;
    }
    return 0;
}

/* How many holders have path in their chain; the first few named in names. */
static unsigned users_of(const struct holders *hs, const char *path, char *names, size_t cap)
{
    unsigned n = 0;
    if (names && cap)
        names[0] = 0;
    for (size_t i = 0; i < hs->n; i++)
        for (int j = 0; j < hs->h[i].n; j++)
            if (!strcmp(hs->h[i].chain[j], path)) {
                if (names && n < 3) {
                    size_t l = strlen(names);
                    snprintf(names + l, cap - l, "%s%s", n ? ", " : "", hs->h[i].label);
                }
                n++;
                break;
            }
    return n;
}

/* The snapshot a layer stands on, from its chain: its directory's id, or "". */
void lib_snap_of_path(cocoon_runtime *rt, const char *path, char id[16])
{
    char prefix[LIB_PATH_MAX];
    id[0] = 0;
    if (lib_path(prefix, sizeof(prefix), "%s/snapshots/", rt->home) < 0)
        return;
    size_t l = strlen(prefix);
    if (strncmp(path, prefix, l) || strlen(path) != l + 12 + strlen("/disk.qcow2") ||
        strcmp(path + l + 12, "/disk.qcow2"))
        return;
    char cand[16];
    snprintf(cand, sizeof(cand), "%.12s", path + l);
    if (snap_id_valid(cand))
        snprintf(id, 16, "%s", cand);
}

/* Snapshot layers in a chain (files under snapshots/). */
static unsigned snap_depth(cocoon_runtime *rt, const struct holder *h)
{
    unsigned d = 0;
    for (int i = 0; i < h->n; i++) {
        char id[16];
        lib_snap_of_path(rt, h->chain[i], id);
        d += id[0] != 0;
    }
    return d;
}

static void fill_info(cocoon_runtime *rt, const struct snap_record *r, const struct holders *hs,
                      cocoon_snapshot_info *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->id, sizeof(o->id), "%s", r->id);
    snprintf(o->name, sizeof(o->name), "%s", r->name);
    snprintf(o->box_id, sizeof(o->box_id), "%s", r->box_id);
    snprintf(o->box_name, sizeof(o->box_name), "%s", r->box_name);
    snprintf(o->parent, sizeof(o->parent), "%s", r->parent);
    snprintf(o->image, sizeof(o->image), "%s", r->image);
    o->created = r->created;
    o->virtual_size = r->virtual_size;
    char layer[LIB_PATH_MAX];
    struct stat st;
    if (lib_snap_path(rt, r->id, "disk.qcow2", layer, sizeof(layer)) < 0)
        return;
    if (stat(layer, &st) == 0)
        o->size = (uint64_t)st.st_blocks * 512;
    o->users = users_of(hs, layer, NULL, 0);
    struct holder self;
    holder_load(&self, layer);
    o->depth = snap_depth(rt, &self) + 1;
    free(self.paths);
}

/* ---- public API ---- */

void cocoon_snapshot_options_init(cocoon_snapshot_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

int cocoon_snapshot_list(cocoon_runtime *rt, const char *box, cocoon_snapshot_info **out, size_t *count,
                         cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !out || !count)
        return lib_err(err, COCOON_E_INVALID, "cocoon_snapshot_list: NULL argument");
    *out = NULL;
    *count = 0;
    char box_id[16] = "";
    if (box) {
        struct state_box row;
        if (state_box_find(rt->state, box, &row, NULL) == 0) {
            snprintf(box_id, sizeof(box_id), "%s", row.id);
            state_box_clear(&row);
        } else {
            snprintf(box_id, sizeof(box_id), "%.15s", box); /* a removed box, by its id */
        }
    }
    struct snap_record *all;
    size_t n;
    if (lib_snap_all(rt, &all, &n, err) < 0)
        return -1;
    struct holders hs = {0};
    cocoon_snapshot_info *list = calloc(n + 1, sizeof(*list));
    if (!list || holders_load(rt, all, n, &hs, err) < 0) {
        free(all);
        free(list);
        return list ? -1 : lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!box || !strcmp(all[i].box_id, box_id))
            fill_info(rt, &all[i], &hs, &list[k++]);
    holders_free(&hs);
    free(all);
    *out = list;
    *count = k;
    return 0;
}

void cocoon_snapshot_list_free(cocoon_snapshot_info *list) { free(list); }

int cocoon_snapshot_inspect(cocoon_runtime *rt, const char *id_or_name, cocoon_snapshot_info *out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !id_or_name || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_snapshot_inspect: NULL argument");
    struct snap_record r, *all;
    size_t n;
    if (lib_snap_find(rt, id_or_name, &r, err) < 0 || lib_snap_all(rt, &all, &n, err) < 0)
        return -1;
    struct holders hs = {0};
    int rc = holders_load(rt, all, n, &hs, err);
    if (rc == 0)
        fill_info(rt, &r, &hs, out);
    holders_free(&hs);
    free(all);
    return rc;
}

int lib_snap_lock_stopped(cocoon_box *box, const char *doing, cocoon_error *err)
{
    int lock = lib_box_lock(box->dir);
    if (lock >= 0)
        return lock;
    if (errno == EWOULDBLOCK)
        return lib_err(err, COCOON_E_STATE,
                       "box %s is running (or busy): stop it before %s (or take a snapshot of the running box and "
                       "use that)",
                       box->id, doing);
    return lib_err(err, COCOON_E_IO, "cannot lock box %s: %s", box->id, strerror(errno));
}

int lib_snap_lock_qcow2(cocoon_box *box, const char *doing, const char *raw_why, struct box_config *c,
                        cocoon_error *err)
{
    int lock = lib_snap_lock_stopped(box, doing, err);
    if (lock < 0)
        return -1;
    int rc = lib_config_read(box->dir, c, err);
    if (rc == 0 && strcmp(c->disk_format, "qcow2"))
        rc = lib_err(err, COCOON_E_UNSUPPORTED, "box %s has a raw disk (made with --rootfs): %s", box->id, raw_why);
    if (rc < 0) {
        close(lock);
        return -1;
    }
    return lock;
}

/* Makes a new top layer over the snapshot's layer as snapshots/<id>/top.new and renames
 * it over the box's disk.qcow2 (a killed command leaves top.new to the collector). */
static int new_top(cocoon_runtime *rt, const char *dir, const char *snap_id, uint64_t vsize, const char *crash_point,
                   cocoon_error *err)
{
    char next[LIB_PATH_MAX], disk[LIB_PATH_MAX], layer[LIB_PATH_MAX], why[512];
    if (lib_snap_path(rt, snap_id, "top.new", next, sizeof(next)) < 0 ||
        lib_snap_path(rt, snap_id, "disk.qcow2", layer, sizeof(layer)) < 0 ||
        lib_path(disk, sizeof(disk), "%s/disk.qcow2", dir) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    unlink(next);
    int rc = qcow2_create(next, vsize, layer, "qcow2", 0, why, sizeof(why));
    if (rc < 0)
        return lib_err(err, COCOON_E_IO, "cannot create the box's new disk layer: %s", why);
    chmod(next, 0644); /* as create makes a box disk */
    util_test_point(crash_point);
    if (rename(next, disk) < 0) {
        int e = errno;
        unlink(next);
        return lib_err(err, COCOON_E_IO, "cannot replace %s: %s", disk, strerror(e));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* A running box: its new top layer is made as disk.next.qcow2 in the box
 * directory and the monitor switches QEMU to it and renames it over disk.qcow2 (the
 * commit; monitor/livesnap.c). 0 committed; -1 refused, nothing committed; -2 the
 * answer was lost (the monitor may still commit: the caller looks at the layer). */
static int live_switch(cocoon_box *box, const struct snap_record *r, int memory, cocoon_error *err)
{
    char next[LIB_PATH_MAX], layer[LIB_PATH_MAX], why[512], mem[LIB_PATH_MAX], mem_link[LIB_PATH_MAX];
    if (lib_path(next, sizeof(next), "%s/" LIVESNAP_NEXT_FMT, box->dir, r->id) < 0 ||
        lib_path(mem_link, sizeof(mem_link), "%s/" LIVESNAP_MEMORY, box->dir) < 0 ||
        lib_snap_path(box->rt, r->id, "disk.qcow2", layer, sizeof(layer)) < 0 ||
        lib_snap_path(box->rt, r->id, LIB_SNAP_MEMORY, mem, sizeof(mem)) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    unlink(next);
    unlink(mem_link);
    if (qcow2_create(next, r->virtual_size, layer, "qcow2", 0, why, sizeof(why)) < 0)
        return lib_err(err, COCOON_E_IO, "cannot create the box's new disk layer: %s", why);
    chmod(next, 0644);
    if (memory) { /* the monitor writes the memory through a link in the box directory (QEMU is jailed there) */
        int fd = open(mem, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 || link(mem, mem_link) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            unlink(next);
            return lib_err(err, COCOON_E_IO, "cannot make the memory snapshot's file %s: %s", mem, strerror(e));
        }
        close(fd);
    }
    util_test_point("LIVESNAP_LINKED");
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x) {
        unlink(next);
        return -1;
    }
    lib_xfer_set_timeouts(x, LIVESNAP_WAIT_MS, LIVESNAP_WAIT_MS);
    struct proto_snapshot req;
    memset(&req, 0, sizeof(req));
    req.flags = memory ? PROTO_SNAPSHOT_MEMORY : 0;
    snprintf(req.path, sizeof(req.path), LIVESNAP_NEXT_FMT, r->id);
    int rc = lib_xfer_send(x, proto_encode_vmm_snapshot(x->w, &req)) < 0 ? -2 : 1;
    while (rc == 1) {
        struct proto_header h;
        const uint8_t *p;
        if (lib_xfer_next(x, &h, &p, 1) < 0) {
            rc = -2;
            break;
        }
        if (h.stream != 0)
            continue;
        if (h.type == PROTO_ERROR) {
            struct proto_error_msg e;
            if (proto_decode_error(p, h.len, &e) != PROTO_OK)
                snprintf(e.message, sizeof(e.message), "malformed ERROR");
            rc = lib_err(err,
                         e.code == EOPNOTSUPP                  ? COCOON_E_UNSUPPORTED
                         : e.code == EBUSY || e.code == EAGAIN ? COCOON_E_STATE
                                                               : COCOON_E_VMM,
                         "%s", e.message);
        } else if (h.type == PROTO_VMM_SNAPSHOT) {
            struct proto_snapshot a;
            rc = proto_decode_vmm_snapshot(p, h.len, &a) == PROTO_OK
                     ? 0
                     : lib_err(err, COCOON_E_PROTOCOL, "box %s: malformed snapshot answer from the monitor", box->id);
        }
    }
    lib_xfer_close(x);
    if (rc == -1)
        unlink(next);
    if (rc != -2)
        unlink(mem_link); /* the snapshot's own link stays (removed with it when refused) */
    if (rc == 0 && memory)
        chmod(mem, 0400);
    return rc;
}

static int new_snap_id(cocoon_runtime *rt, char id[16], cocoon_error *err)
{
    for (int tries = 0; tries < 16; tries++) {
        unsigned char b[6];
        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
            return lib_err(err, COCOON_E_IO, "getrandom failed: %s", strerror(errno));
        for (int i = 0; i < 6; i++)
            snprintf(id + 2 * i, 3, "%02x", b[i]);
        char path[LIB_PATH_MAX];
        if (lib_snap_path(rt, id, NULL, path, sizeof(path)) == 0 && !util_file_exists(path))
            return 0;
    }
    return lib_err(err, COCOON_E_IO, "cannot find a free snapshot id");
}

/* A free default name: <box name or id>-<n>. */
static int pick_name(const struct snap_record *all, size_t n, const cocoon_box *box, const char *asked, char *out,
                     size_t cap, cocoon_error *err)
{
    if (asked && *asked) {
        if (!snap_name_valid(asked))
            return lib_err(err, COCOON_E_INVALID,
                           "invalid snapshot name \"%s\": up to %d letters, digits, '.', '_' or '-', starting with a "
                           "letter or digit",
                           asked, SNAP_NAME_MAX - 1);
        for (size_t i = 0; i < n; i++)
            if (!strcmp(all[i].name, asked) || !strcmp(all[i].id, asked))
                return lib_err(err, COCOON_E_STATE, "snapshot name \"%s\" is already in use by snapshot %s", asked,
                               all[i].id);
        snprintf(out, cap, "%s", asked);
        return 0;
    }
    for (unsigned k = 1;; k++) {
        snprintf(out, cap, "%.48s-%u", box->name[0] ? box->name : box->id, k);
        size_t i = 0;
        while (i < n && strcmp(all[i].name, out))
            i++;
        if (i == n)
            return 0;
    }
}

static int snapshot_locked(cocoon_box *box, const char *asked, const struct box_config *c, int live,
                           cocoon_snapshot_info *out, struct snap_record *rec_out, cocoon_error *err)
{
    cocoon_runtime *rt = box->rt;
    struct snap_record *all = NULL, r;
    size_t n = 0;
    lib_snap_gc(rt);
    memset(&r, 0, sizeof(r));
    if (lib_snap_all(rt, &all, &n, err) < 0 || pick_name(all, n, box, asked, r.name, sizeof(r.name), err) < 0) {
        free(all);
        return -1;
    }
    free(all);
    char disk[LIB_PATH_MAX], why[512];
    if (lib_path(disk, sizeof(disk), "%s/disk.qcow2", box->dir) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    struct qcow2 *q = qcow2_open(disk, 0, why, sizeof(why));
    if (!q)
        return lib_err(err, COCOON_E_IO, "cannot read box %s's disk: %s", box->id, why);
    struct holder self = {.n = 0};
    self.n = qcow2_chain_paths(q, self.chain, QCOW2_MAX_CHAIN);
    r.virtual_size = qcow2_virtual_size(q);
    unsigned depth = snap_depth(rt, &self);
    if (self.n > 0)
        lib_snap_of_path(rt, self.chain[0], r.parent);
    qcow2_close(q, NULL, 0);
    if (depth >= COCOON_SNAPSHOT_DEPTH_MAX || self.n + 2 > QCOW2_MAX_CHAIN)
        return lib_err(err, COCOON_E_STATE,
                       "box %s already stands on %u snapshots, the most a disk chain may hold (%d): compact its disk "
                       "(`cocoon snapshot compact`), or restore an older snapshot",
                       box->id, depth, COCOON_SNAPSHOT_DEPTH_MAX);
    if (new_snap_id(rt, r.id, err) < 0)
        return -1;
    snprintf(r.box_id, sizeof(r.box_id), "%s", box->id);
    snprintf(r.box_name, sizeof(r.box_name), "%s", box->name);
    snprintf(r.image, sizeof(r.image), "%s", c->image);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    r.created = (long long)now.tv_sec;
    r.created_us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;

    char tmp[LIB_PATH_MAX], final[LIB_PATH_MAX], path[LIB_PATH_MAX], layer[LIB_PATH_MAX];
    if (lib_path(tmp, sizeof(tmp), "%s/snapshots/.creating-%s", rt->home, r.id) < 0 ||
        lib_snap_path(rt, r.id, NULL, final, sizeof(final)) < 0 ||
        lib_snap_path(rt, r.id, "disk.qcow2", layer, sizeof(layer)) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    if (mkdir(tmp, 0700) < 0)
        return lib_err(err, COCOON_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    char *record = snap_record_json(&r);
    size_t cfg_len = 0;
    char cfg_path[LIB_PATH_MAX];
    char *cfg = lib_path(cfg_path, sizeof(cfg_path), "%s/config.json", box->dir) == 0
                    ? util_read_file(cfg_path, BOX_CONFIG_FILE_MAX, &cfg_len)
                    : NULL;
    int rc = record && cfg ? 0 : lib_err(err, COCOON_E_IO, "cannot read box %s's config.json", box->id);
    if (rc == 0 &&
        (lib_path(path, sizeof(path), "%s/config.json", tmp) < 0 || util_write_file_atomic(path, cfg, cfg_len) < 0 ||
         lib_path(path, sizeof(path), "%s/snapshot.json", tmp) < 0 ||
         util_write_file_atomic(path, record, strlen(record)) < 0))
        rc = lib_err(err, COCOON_E_IO, "cannot write the snapshot record in %s: %s", tmp, strerror(errno));
    free(record);
    free(cfg);
    if (rc == 0 && (lib_path(path, sizeof(path), "%s/disk.qcow2", tmp) < 0 || link(disk, path) < 0))
        rc = lib_err(err, COCOON_E_IO, "cannot link the box's disk into %s: %s", tmp, strerror(errno));
    util_test_point("SNAPSHOT_LINKED");
    if (rc == 0 && rename(tmp, final) < 0)
        rc = lib_err(err, COCOON_E_IO, "cannot rename %s: %s", tmp, strerror(errno));
    if (rc == 0 && live) {
        rc = live_switch(box, &r, live == 2, err);
        struct stat st;
        if (rc < 0 && lstat(layer, &st) == 0 && st.st_nlink == 1)
            rc = 0; /* the monitor committed (the box's disk stands on the layer): whatever it said after */
        else if (rc == -2) {
            struct lib_monitor m;
            int state = lib_monitor_probe(box->dir, &m);
            lib_monitor_done(&m);
            if (state != LIB_MON_STOPPED)
                return -1; /* the monitor may still commit: the collector decides once the box stops */
            char next[LIB_PATH_MAX];
            if (lib_path(next, sizeof(next), "%s/" LIVESNAP_NEXT_FMT, box->dir, r.id) == 0)
                unlink(next);
            if (lib_path(next, sizeof(next), "%s/" LIVESNAP_MEMORY, box->dir) == 0)
                unlink(next);
        }
    } else if (rc == 0) {
        rc = new_top(rt, box->dir, r.id, r.virtual_size, "SNAPSHOT_LAYER", err);
    }
    if (rc < 0) {
        util_rm_rf(tmp);
        util_rm_rf(final); /* not committed: the box's disk still has its own link */
        return -1;
    }
    chmod(layer, 0400); /* read-only from now on */
    util_test_point("SNAPSHOT_COMMITTED");
    if (rec_out)
        *rec_out = r;
    if (out) {
        struct holders hs = {0};
        fill_info(rt, &r, &hs, out);
        out->users = 1;
    }
    return 0;
}

int cocoon_snapshot_create(cocoon_box *box, const cocoon_snapshot_options *opts, cocoon_snapshot_info *out,
                           cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_snapshot_create: NULL box");
    cocoon_snapshot_options o;
    if (LIB_OPTIONS(cocoon_snapshot_options, o, opts, err) < 0)
        return -1;
    if (box->problem[0])
        return lib_err(err, COCOON_E_STATE, "box %s cannot be snapshotted: %s", box->id, box->problem);
    struct box_config *c = malloc(sizeof(*c));
    if (!c)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    struct lib_monitor m;
    int running = lib_monitor_probe(box->dir, &m) == LIB_MON_RUNNING;
    lib_monitor_done(&m);
    int lock = -1;
    if (running) { /* a live snapshot: the monitor holds the box; it does the switch */
        int rc = lib_config_read(box->dir, c, err);
        if (rc == 0 && strcmp(c->disk_format, "qcow2"))
            rc = lib_err(err, COCOON_E_UNSUPPORTED,
                         "box %s has a raw disk (made with --rootfs): snapshots need a qcow2 disk (a box made from an "
                         "image)",
                         box->id);
        if (rc < 0) {
            free(c);
            return -1;
        }
    } else {
        lock = lib_snap_lock_qcow2(box, "taking a snapshot", "snapshots need a qcow2 disk (a box made from an image)",
                                   c, err);
    }
    int slock = lock >= 0 || running ? lib_snap_lock(box->rt, LOCK_EX, err) : -1;
    int rc = slock >= 0 ? snapshot_locked(box, o.name, c, running, out, NULL, err) : -1;
    lib_snap_unlock(slock);
    free(c);
    if (lock >= 0)
        close(lock);
    return rc;
}

int lib_snap_create_live(cocoon_box *box, int memory, struct snap_record *out, cocoon_error *err)
{
    struct lib_monitor m;
    int running = lib_monitor_probe(box->dir, &m) == LIB_MON_RUNNING;
    lib_monitor_done(&m);
    if (!running)
        return lib_err(err, COCOON_E_STATE,
                       "box %s is not running: a fork captures a running box (for a stopped one, use cocoon clone)",
                       box->id);
    struct box_config *c = malloc(sizeof(*c));
    if (!c)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    int rc = lib_config_read(box->dir, c, err);
    if (rc == 0 && strcmp(c->disk_format, "qcow2"))
        rc = lib_err(err, COCOON_E_UNSUPPORTED, "box %s has a raw disk (made with --rootfs): forks need a qcow2 disk",
                     box->id);
    int slock = rc == 0 ? lib_snap_lock(box->rt, LOCK_EX, err) : -1;
    if (slock >= 0)
        rc = snapshot_locked(box, NULL, c, memory ? 2 : 1, NULL, out, err);
    else
        rc = -1;
    lib_snap_unlock(slock);
    free(c);
    return rc;
}

int lib_snap_for_clone(cocoon_box *box, const struct box_config *c, struct snap_record *out, int *made,
                       cocoon_error *err)
{
    char disk[LIB_PATH_MAX], why[512], under[16] = "";
    *made = 0;
    if (lib_path(disk, sizeof(disk), "%s/disk.qcow2", box->dir) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    struct qcow2 *q = qcow2_open(disk, 0, why, sizeof(why));
    if (!q)
        return lib_err(err, COCOON_E_IO, "cannot read box %s's disk: %s", box->id, why);
    const char *chain[QCOW2_MAX_CHAIN];
    struct qcow2_check_result res;
    if (qcow2_chain_paths(q, chain, QCOW2_MAX_CHAIN) > 0 && qcow2_check(q, &res, why, sizeof(why)) == 0 &&
        res.mapped == 0 && res.corruptions == 0)
        lib_snap_of_path(box->rt, chain[0], under);
    qcow2_close(q, NULL, 0);
    /* Nothing written since the snapshot under it: the clones share that one, so cloning
     * an unchanged box again does not deepen its chain. */
    if (under[0] && lib_snap_find(box->rt, under, out, NULL) == 0)
        return 0;
    *made = 1;
    return snapshot_locked(box, NULL, c, 0, NULL, out, err);
}

int cocoon_snapshot_restore(cocoon_box *box, const char *id_or_name, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !id_or_name)
        return lib_err(err, COCOON_E_INVALID, "cocoon_snapshot_restore: NULL argument");
    int lock = lib_snap_lock_stopped(box, "restoring a snapshot", err);
    if (lock < 0)
        return -1;
    int slock = lib_snap_lock(box->rt, LOCK_EX, err);
    struct snap_record r;
    int rc = slock >= 0 ? lib_snap_find(box->rt, id_or_name, &r, err) : -1;
    if (rc == 0 && strcmp(r.box_id, box->id))
        rc = lib_err(err, COCOON_E_INVALID,
                     "snapshot %s was taken of box %s, not of box %s: restore it onto that box, or export it and "
                     "import it as a new box",
                     r.name, r.box_id, box->id);
    if (rc == 0)
        rc = new_top(box->rt, box->dir, r.id, r.virtual_size, "RESTORE_LAYER", err);
    lib_snap_unlock(slock);
    close(lock);
    return rc;
}

int cocoon_snapshot_remove(cocoon_runtime *rt, const char *id_or_name, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !id_or_name)
        return lib_err(err, COCOON_E_INVALID, "cocoon_snapshot_remove: NULL argument");
    int slock = lib_snap_lock(rt, LOCK_EX, err);
    if (slock < 0)
        return -1;
    lib_snap_gc(rt);
    struct snap_record r, *all = NULL;
    size_t n = 0;
    struct holders hs = {0};
    int rc = lib_snap_find(rt, id_or_name, &r, err);
    if (rc == 0)
        rc = lib_snap_all(rt, &all, &n, err);
    if (rc == 0)
        rc = holders_load(rt, all, n, &hs, err);
    char layer[LIB_PATH_MAX], names[512], dir[LIB_PATH_MAX], aside[LIB_PATH_MAX];
    if (rc == 0 && (lib_snap_path(rt, r.id, "disk.qcow2", layer, sizeof(layer)) < 0 ||
                    lib_snap_path(rt, r.id, NULL, dir, sizeof(dir)) < 0 ||
                    lib_path(aside, sizeof(aside), "%s/snapshots/.removing-%s", rt->home, r.id) < 0))
        rc = lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    unsigned users = rc == 0 ? users_of(&hs, layer, names, sizeof(names)) : 0;
    if (rc == 0 && users)
        rc = lib_err(err, COCOON_E_STATE,
                     "snapshot %s is in use by %u %s (%s%s): remove %s first, or restore the box onto another "
                     "snapshot",
                     r.name, users, users == 1 ? "box or snapshot" : "boxes and snapshots", names,
                     users > 3 ? ", ..." : "", users == 1 ? "it" : "them");
    if (rc == 0 && rename(dir, aside) < 0)
        rc = lib_err(err, COCOON_E_IO, "cannot remove %s: %s", dir, strerror(errno));
    if (rc == 0)
        util_rm_rf(aside);
    holders_free(&hs);
    free(all);
    lib_snap_unlock(slock);
    return rc;
}
