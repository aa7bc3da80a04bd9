/* Box lifecycle on disk: create (id, directory, state row, disk, config.json), open by
 * id, name or id prefix, remove, and the handle itself. The state database is the
 * index (names are claimed there, atomically); the directory holds the files. Running
 * the monitor is in monitor.c. A box's row appears only once its directory is
 * complete, and goes before its directory does: a create or rm that fails or is
 * killed leaves nothing visible, and what it leaves on disk is collected (gc.c). */
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

#include "disk/disk.h"
#include "jail/jail.h"
#include "util/util.h"

static int new_id(char out[16], cocoon_error *err)
{
    unsigned char r[6];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return lib_err(err, COCOON_E_IO, "getrandom failed: %s", strerror(errno));
    for (int i = 0; i < 6; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

static cocoon_box *box_alloc(cocoon_runtime *rt, const struct box_config *c, const char *dir)
{
    cocoon_box *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->rt = rt;
    snprintf(b->id, sizeof(b->id), "%.*s", (int)sizeof(b->id) - 1, c->id);
    snprintf(b->name, sizeof(b->name), "%s", c->name);
    snprintf(b->dir, sizeof(b->dir), "%s", dir);
    snprintf(b->vmm_path, sizeof(b->vmm_path), "%s", rt->vmm_path);
    b->ephemeral = c->ephemeral;
    b->boot_timeout_ms = c->boot_timeout_ms ? c->boot_timeout_ms : BOX_BOOT_TIMEOUT_MS_DEFAULT;
    b->lifeline_fd = -1;
    b->ctl_fd = -1;
    b->next_stream = 1;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    return b;
}

static int check_file(const char *path, const char *what, cocoon_error *err)
{
    if (util_file_exists(path))
        return 0;
    return lib_err(err, COCOON_E_NOT_FOUND, "%s not found at %s: run `make guest`", what, path);
}

/* The box's disk, made at path (the box's temporary directory). */
static int make_disk(const struct state_image *img, const struct box_config *c, const char *path, cocoon_error *err)
{
    if (c->rootfs[0])
        return disk_from_rootfs(c->rootfs, path, c->disk_size, err);
    return disk_create_overlay(img->base_path, path, c->disk_size, err);
}

static void human_size(uint64_t b, char *out, size_t cap)
{
    if (b >= (1ull << 30))
        snprintf(out, cap, "%.1f GiB", (double)b / (1ull << 30));
    else
        snprintf(out, cap, "%.0f MiB", (double)b / (1ull << 20));
}

/* Everything that can be checked without touching the disk, so a bad option never
 * leaves a half-made box. */
static int prepare(cocoon_runtime *rt, const cocoon_box_options *o, struct box_config *c, struct state_image *img,
                   cocoon_error *err)
{
    memset(img, 0, sizeof(*img));
    if (lib_config_from_options(o, c, err) < 0)
        return -1;
    if (c->name[0]) {
        /* Checked early so a taken name costs no disk work; the insert decides races. */
        struct state_box other;
        if (state_box_find(rt->state, c->name, &other, NULL) == 0 && !strcmp(other.name, c->name)) {
            state_box_clear(&other);
            return lib_err(err, COCOON_E_STATE, "box name \"%s\" is already in use by box %s", c->name, other.id);
        }
    }
    const char *force = getenv("COCOON_FORCE_KVM"); /* tests: the nested lane's /dev/kvm */
    if (c->backend == BOX_BACKEND_KVM && !(force && *force && strcmp(force, "0"))) {
        struct host_kvm_probe kp;
        host_probe_kvm(&kp);
        if (!kp.usable)
            return lib_err(err, COCOON_E_UNSUPPORTED, "kvm backend unavailable: %s (use --vmm qemu)", kp.reason);
    }
    c->created = (long long)time(NULL);

    char kernel[LIB_PATH_MAX], initrd[LIB_PATH_MAX];
    if (lib_kernel_paths(rt, o->kernel, o->initrd, kernel, initrd, sizeof(kernel)) < 0)
        return lib_err(err, COCOON_E_INVALID, "kernel or initramfs path too long");
    if (check_file(kernel, "guest kernel", err) < 0 || check_file(initrd, "guest initramfs", err) < 0)
        return -1;
    if (!realpath(kernel, c->kernel) || !realpath(initrd, c->initrd))
        return lib_err(err, COCOON_E_IO, "cannot resolve the kernel or initramfs path: %s", strerror(errno));
    if (o->rootfs) {
        struct stat st;
        if (stat(o->rootfs, &st) < 0)
            return lib_err(err, COCOON_E_NOT_FOUND, "rootfs directory %s: %s", o->rootfs, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return lib_err(err, COCOON_E_INVALID, "rootfs %s is not a directory", o->rootfs);
        if (!realpath(o->rootfs, c->rootfs))
            return lib_err(err, COCOON_E_NOT_FOUND, "rootfs directory %s: %s", o->rootfs, strerror(errno));
        snprintf(c->disk_format, sizeof(c->disk_format), "raw");
    } else {
        snprintf(c->image, sizeof(c->image), "%s", o->image && *o->image ? o->image : "default");
        if (lib_image_lookup_or_pull(rt, c->image, img, err) < 0)
            return -1;
        snprintf(c->image_id, sizeof(c->image_id), "%s", img->id);
        if (img->name[0] && !strncmp(img->id, "sha256:", 7))
            snprintf(c->image, sizeof(c->image), "%.*s", (int)sizeof(c->image) - 1, img->name); /* canonical */
        snprintf(c->disk_format, sizeof(c->disk_format), "qcow2");
        if (o->disk_size && o->disk_size < img->size) {
            char want[32], min[32];
            human_size(o->disk_size, want, sizeof(want));
            human_size(img->size, min, sizeof(min));
            return lib_err(err, COCOON_E_INVALID,
                           "disk size %s is smaller than image %s (%s): give at least %llu bytes (%s)", want, c->image,
                           min, (unsigned long long)img->size, min);
        }
    }
    return 0;
}

/* A new box id and its building directory boxes/.creating-<id>, locked: the lock's fd,
 * or -1 with err. dir receives the final path boxes/<id>. */
int lib_box_begin(cocoon_runtime *rt, char id[16], char *dir, char *tmp, size_t cap, cocoon_error *err)
{
    /* The collector never sees the directory before its lock is taken (gc.c). */
    int gc = lib_gc_lock(rt, LOCK_SH);
    for (int tries = 0;; tries++) {
        int rc = new_id(id, err);
        if (rc == 0 && (lib_path(dir, cap, "%s/boxes/%s", rt->home, id) < 0 ||
                        lib_path(tmp, cap, "%s/boxes/.creating-%s", rt->home, id) < 0))
            rc = lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long: %s", rt->home);
        errno = EEXIST;
        if (rc == 0 && !util_file_exists(dir) && mkdir(tmp, 0700) == 0)
            break;
        if (rc == 0 && (errno != EEXIST || tries > 8))
            rc = lib_err(err, COCOON_E_IO, "cannot create box directory %s: %s", tmp, strerror(errno));
        if (rc < 0) {
            lib_gc_unlock(gc);
            return -1;
        }
    }
    int lock = lib_box_lock(tmp);
    int lock_errno = errno;
    lib_gc_unlock(gc);
    if (lock < 0) {
        util_rm_rf(tmp);
        return lib_err(err, COCOON_E_IO, "cannot lock the new box directory %s: %s", tmp, strerror(lock_errno));
    }
    return lock;
}

int lib_box_publish(const char *tmp, const char *dir, const struct box_config *c, cocoon_error *err)
{
    if (lib_config_write(tmp, c, err) < 0)
        return -1;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) < 0)
        return lib_err(err, COCOON_E_IO, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
    return 0;
}

int lib_box_insert_row(cocoon_runtime *rt, const struct box_config *c, cocoon_error *err)
{
    struct state_box row;
    memset(&row, 0, sizeof(row));
    snprintf(row.id, sizeof(row.id), "%.*s", (int)sizeof(row.id) - 1, c->id); /* 12 hex digits */
    snprintf(row.name, sizeof(row.name), "%s", c->name);
    snprintf(row.image_ref, sizeof(row.image_ref), "%s", c->image);
    snprintf(row.image_id, sizeof(row.image_id), "%s", c->image_id);
    row.created_at = c->created;
    row.ephemeral = c->ephemeral;
    row.config_json = box_config_json(c);
    int rc = row.config_json ? state_box_insert(rt->state, &row, err) : lib_err(err, COCOON_E_NOMEM, "out of memory");
    state_box_clear(&row);
    return rc;
}

/* A box is built in boxes/.creating-<id> (disk, config.json) under the box lock,
 * renamed to boxes/<id>, and only then given its row: the row, which makes the box
 * visible and claims its name, always finds a complete directory. */
static int create(cocoon_runtime *rt, const cocoon_box_options *o, struct box_config *c, cocoon_box **out,
                  cocoon_error *err)
{
    struct state_image img;
    if (prepare(rt, o, c, &img, err) < 0) {
        state_image_clear(&img);
        return -1;
    }
    state_image_clear(&img); /* only the scalar fields are used from here on */
    lib_box_gc(rt);

    char dir[LIB_PATH_MAX], tmp[LIB_PATH_MAX];
    int lock = lib_box_begin(rt, c->id, dir, tmp, sizeof(dir), err);
    if (lock < 0)
        return -1;
    util_test_point("CREATE_BUILD");
    /* config.json names the final paths; the disk is made at its temporary one. */
    const char *disk_name = c->rootfs[0] ? "rootfs.ext4" : "disk.qcow2";
    char disk_at_tmp[LIB_PATH_MAX];
    int rc = lib_path(c->disk, sizeof(c->disk), "%s/%s", dir, disk_name);
    if (rc == 0)
        rc = lib_path(disk_at_tmp, sizeof(disk_at_tmp), "%s/%s", tmp, disk_name);
    if (rc < 0)
        rc = lib_err(err, COCOON_E_INVALID, "box path too long");
    struct state_image base;
    memset(&base, 0, sizeof(base));
    if (rc == 0 && !c->rootfs[0])
        rc = state_image_get_by_id(rt->state, c->image_id, &base, err);
    if (rc == 0)
        rc = make_disk(&base, c, disk_at_tmp, err);
    if (rc == 0 && !c->rootfs[0])
        rc = lib_image_health_write(tmp, base.config_json, err);
    state_image_clear(&base);
    util_test_point("CREATE_DISK");
    if (rc == 0)
        rc = lib_box_publish(tmp, dir, c, err);
    if (rc < 0) {
        util_rm_rf(tmp);
        close(lock);
        return -1;
    }
    util_test_point("CREATE_PUBLISH");
    rc = lib_box_insert_row(rt, c, err);
    cocoon_box *b = rc == 0 ? box_alloc(rt, c, dir) : NULL;
    if (!b) {
        if (rc == 0) {
            state_box_delete(rt->state, c->id, NULL);
            lib_err(err, COCOON_E_NOMEM, "out of memory");
        }
        util_rm_rf(dir); /* the lock is still ours: nothing can have started here */
        close(lock);
        return -1;
    }
    util_test_point("CREATE_ROW");
    close(lock);
    if (lib_secrets_keep(b, o->secrets, err) < 0) {
        cocoon_box_close(b);
        return -1;
    }
    *out = b;
    return 0;
}

void cocoon_box_options_init(cocoon_box_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

int cocoon_box_create(cocoon_runtime *rt, const cocoon_box_options *opts, cocoon_box **out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_create: NULL argument");
    *out = NULL;
    cocoon_box_options o;
    if (LIB_OPTIONS(cocoon_box_options, o, opts, err) < 0)
        return -1;
    struct box_config *c = malloc(sizeof(*c)); /* large: the network rules, four paths */
    if (!c)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    /* From the image lookup to the row that pins the image, a prune (which holds the
     * store's lock exclusively) must not remove the image under the new box. */
    int store = o.rootfs ? -1 : lib_store_lock(rt, LOCK_SH, err);
    int rc = o.rootfs || store >= 0 ? create(rt, &o, c, out, err) : -1;
    lib_store_unlock(store);
    free(c);
    return rc;
}

/* What is wrong with a box directory that cannot start, in words, or "" . */
static void diagnose(const char *dir, const char *why, char *out, size_t cap)
{
    char disk[LIB_PATH_MAX];
    struct stat st;
    int has_disk = (lib_path(disk, sizeof(disk), "%s/disk.qcow2", dir) == 0 && stat(disk, &st) == 0) ||
                   (lib_path(disk, sizeof(disk), "%s/rootfs.ext4", dir) == 0 && stat(disk, &st) == 0);
    snprintf(out, cap, "%.300s; %s", why,
             has_disk ? "its disk may be partial (an interrupted create)" : "it has no disk (an interrupted create)");
}

int cocoon_box_open(cocoon_runtime *rt, const char *id_or_name, cocoon_box **out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !out || !id_or_name)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_open: NULL argument");
    *out = NULL;
    struct state_box row;
    if (state_box_find(rt->state, id_or_name, &row, err) < 0)
        return -1;
    char dir[LIB_PATH_MAX];
    if (lib_path(dir, sizeof(dir), "%s/boxes/%s", rt->home, row.id) < 0) {
        state_box_clear(&row);
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    }
    if (!util_file_exists(dir)) {
        /* Its directory went away (an ephemeral box removed by its monitor). */
        char id[16];
        snprintf(id, sizeof(id), "%s", row.id);
        state_box_clear(&row);
        state_box_delete(rt->state, id, NULL);
        return lib_err(err, COCOON_E_NOT_FOUND, "no box with id or name \"%s\" (box %s was removed)", id_or_name, id);
    }
    struct box_config *c = malloc(sizeof(*c));
    if (!c) {
        state_box_clear(&row);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    cocoon_error why;
    char problem[sizeof(((cocoon_box *)0)->problem)] = "";
    if (lib_config_read(dir, c, &why) < 0) {
        /* Still a box: it can be inspected by its row and removed. */
        memset(c, 0, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", row.name);
        snprintf(c->image, sizeof(c->image), "%s", row.image_ref);
        c->ephemeral = row.ephemeral;
        c->created = row.created_at;
        diagnose(dir, why.message, problem, sizeof(problem));
    }
    snprintf(c->id, sizeof(c->id), "%s", row.id); /* the directory name is the truth */
    state_box_clear(&row);
    cocoon_box *b = box_alloc(rt, c, dir);
    free(c);
    if (!b)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    snprintf(b->problem, sizeof(b->problem), "%s", problem);
    *out = b;
    return 0;
}

const char *cocoon_box_id(const cocoon_box *box) { return box ? box->id : ""; }

const char *cocoon_box_name(const cocoon_box *box) { return box ? box->name : ""; }

int cocoon_box_ready_ms(const cocoon_box *box) { return box ? box->ready_ms : 0; }

const char *cocoon_box_problem(const cocoon_box *box) { return box ? box->problem : ""; }

/* The box lock is held by a process that is not a proven monitor: a monitor that has
 * not written its pid yet, or another command (a create finishing, an rm). */
static int busy(const cocoon_box *box, cocoon_error *err)
{
    return lib_err(err, COCOON_E_STATE,
                   "box %s is running or busy (its monitor is starting, or another cocoon command is removing it): "
                   "try again",
                   box->id);
}

int cocoon_box_remove(cocoon_box *box, int force, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_remove: NULL box");
    struct lib_monitor m;
    int state = lib_monitor_probe(box->dir, &m);
    lib_monitor_done(&m);
    if (state == LIB_MON_STARTING && !force)
        return busy(box, err);
    if (state != LIB_MON_STOPPED) {
        if (!force)
            return lib_err(err, COCOON_E_STATE,
                           "box %s%s%s%s is running: stop it first (cocoon stop) or force the removal (cocoon rm -f)",
                           box->id, box->name[0] ? " (" : "", box->name, box->name[0] ? ")" : "");
        if (lib_box_stop_only(box, 0, err) < 0)
            return -1;
    }
    lib_ctl_close(box);
    if (box->lifeline_fd >= 0) {
        close(box->lifeline_fd);
        box->lifeline_fd = -1;
    }
    return lib_box_destroy(box, err);
}

/* Under the box lock: the row goes first (the box and its name are gone at once), then
 * the directory is moved aside to boxes/.removing-<id> and deleted. Killed at any
 * point, what is left has no row and no lock holder, and is collected (gc.c); a
 * monitor that was starting in the directory sees it moved and gives up. */
int lib_box_destroy(cocoon_box *box, cocoon_error *err)
{
    int lock = lib_box_lock(box->dir);
    if (lock < 0) {
        int e = errno;
        if (e == ENOENT) { /* no directory: its monitor removed it (ephemeral), or a racing rm */
            jail_cgroup_remove(box->id);
            return state_box_delete(box->rt->state, box->id, err);
        }
        if (e != EWOULDBLOCK)
            return lib_err(err, COCOON_E_IO, "cannot lock %s/vmm.pid: %s", box->dir, strerror(e));
        struct lib_monitor m;
        int state = lib_monitor_probe(box->dir, &m);
        lib_monitor_done(&m);
        if (state == LIB_MON_RUNNING)
            return lib_err(err, COCOON_E_STATE, "box %s is running: stop it first", box->id);
        return busy(box, err);
    }
    util_test_point("RM_LOCKED");
    if (state_box_delete(box->rt->state, box->id, err) < 0) {
        close(lock);
        return -1;
    }
    util_test_point("RM_UNLISTED");
    /* The tree loses its lock file as it goes: the collector stays out until it is gone. */
    int gc = lib_gc_lock(box->rt, LOCK_SH);
    char aside[LIB_PATH_MAX];
    const char *doomed = box->dir;
    if (lib_path(aside, sizeof(aside), "%s/boxes/.removing-%s", box->rt->home, box->id) == 0 &&
        renameat2(AT_FDCWD, box->dir, AT_FDCWD, aside, RENAME_NOREPLACE) == 0)
        doomed = aside;
    util_test_point("RM_RENAMED");
    int rc = util_rm_rf(doomed), e = errno;
    lib_gc_unlock(gc);
    close(lock);
    jail_cgroup_remove(box->id);
    if (rc < 0)
        return lib_err(err, COCOON_E_IO,
                       "box %s is removed, but some of its files in %s could not be deleted: %s (`cocoon doctor --fix` "
                       "retries)",
                       box->id, doomed, strerror(e));
    return 0;
}

void cocoon_box_close(cocoon_box *box)
{
    if (!box)
        return;
    lib_exec_detach_all(box);
    lib_ctl_close(box);
    if (box->lifeline_fd >= 0)
        close(box->lifeline_fd);
    pthread_mutex_destroy(&box->lock);
    pthread_cond_destroy(&box->cond);
    lib_secrets_forget(box);
    free(box);
}
