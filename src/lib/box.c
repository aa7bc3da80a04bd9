/* Box lifecycle on disk: create (id, directory, disk, config.json), open by id or
 * name, remove, and the handle itself. Running the monitor is in monitor.c. A create
 * that fails leaves nothing behind. */
#include "lib/internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk/disk.h"
#include "util/util.h"

static int valid_box_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '-' || s[0] == '.')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int new_id(char out[16], cocoon_error *err)
{
    unsigned char r[6];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return lib_err(err, COCOON_E_IO, "getrandom failed: %s", strerror(errno));
    for (int i = 0; i < 6; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

static cocoon_box *box_alloc(cocoon_runtime *rt, const struct lib_box_config *c, const char *dir)
{
    cocoon_box *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    snprintf(b->id, sizeof(b->id), "%s", c->id);
    snprintf(b->name, sizeof(b->name), "%s", c->name);
    snprintf(b->dir, sizeof(b->dir), "%s", dir);
    snprintf(b->vmm_path, sizeof(b->vmm_path), "%s", rt->vmm_path);
    b->ephemeral = c->ephemeral;
    b->boot_timeout_ms = c->boot_timeout_ms ? c->boot_timeout_ms : 60000;
    b->lifeline_fd = -1;
    b->ctl_fd = -1;
    b->next_stream = 1;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    return b;
}

/* Finds the box directory whose config.json has this name. 0 and id when found. */
static int find_by_name(cocoon_runtime *rt, const char *name, char id[16])
{
    char boxes[LIB_PATH_MAX];
    if (lib_path(boxes, sizeof(boxes), "%s/boxes", rt->home) < 0)
        return -1;
    DIR *d = opendir(boxes);
    if (!d)
        return -1;
    struct dirent *e;
    int found = -1;
    while (found < 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char dir[LIB_PATH_MAX];
        struct lib_box_config c;
        if (lib_path(dir, sizeof(dir), "%s/%s", boxes, e->d_name) < 0 || lib_config_read(dir, &c, NULL) < 0)
            continue;
        if (c.name[0] && !strcmp(c.name, name)) {
            snprintf(id, 16, "%s", c.id);
            found = 0;
        }
    }
    closedir(d);
    return found;
}

static int check_file(const char *path, const char *what, cocoon_error *err)
{
    if (util_file_exists(path))
        return 0;
    return lib_err(err, COCOON_E_NOT_FOUND, "%s not found at %s: run `make guest`", what, path);
}

static int make_disk(cocoon_runtime *rt, const cocoon_box_options *o, const char *dir, struct lib_box_config *c,
                     cocoon_error *err)
{
    if (o->rootfs) {
        char real[LIB_PATH_MAX];
        if (!realpath(o->rootfs, real))
            return lib_err(err, COCOON_E_NOT_FOUND, "rootfs directory %s: %s", o->rootfs, strerror(errno));
        snprintf(c->rootfs, sizeof(c->rootfs), "%s", real);
        snprintf(c->disk_format, sizeof(c->disk_format), "raw");
        if (lib_path(c->disk, sizeof(c->disk), "%s/rootfs.ext4", dir) < 0)
            return lib_err(err, COCOON_E_INVALID, "box path too long");
        return disk_from_rootfs(real, c->disk, err);
    }
    char base[LIB_PATH_MAX], real[LIB_PATH_MAX];
    if (lib_image_resolve(rt, c->image, base, sizeof(base), err) < 0)
        return -1;
    if (!realpath(base, real))
        return lib_err(err, COCOON_E_NOT_FOUND, "image %s: %s", base, strerror(errno));
    snprintf(c->disk_format, sizeof(c->disk_format), "qcow2");
    if (lib_path(c->disk, sizeof(c->disk), "%s/disk.qcow2", dir) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    return disk_create_overlay(real, c->disk, err);
}

/* Everything that can be checked without touching the disk, so a bad option never
 * leaves a half-made box. */
static int prepare(cocoon_runtime *rt, const cocoon_box_options *o, struct lib_box_config *c, cocoon_error *err)
{
    memset(c, 0, sizeof(*c));
    if (o->name && *o->name) {
        if (!valid_box_name(o->name))
            return lib_err(err, COCOON_E_INVALID, "invalid box name \"%s\": up to 64 letters, digits, '.', '_' or '-'",
                           o->name);
        char other[16];
        if (find_by_name(rt, o->name, other) == 0)
            return lib_err(err, COCOON_E_STATE, "a box named \"%s\" already exists (id %s)", o->name, other);
        snprintf(c->name, sizeof(c->name), "%s", o->name);
    }
    if (o->rootfs && o->image)
        return lib_err(err, COCOON_E_INVALID, "give either an image or a rootfs directory, not both");
    if (o->cpus > 64)
        return lib_err(err, COCOON_E_INVALID, "cpus must be between 1 and 64 (got %u)", o->cpus);
    if (o->memory_mib && (o->memory_mib < 64 || o->memory_mib > 1024 * 1024))
        return lib_err(err, COCOON_E_INVALID, "memory must be between 64 MiB and 1 TiB (got %u MiB)", o->memory_mib);
    const char *accel = o->accel && *o->accel ? o->accel : "auto";
    if (strcmp(accel, "auto") && strcmp(accel, "kvm") && strcmp(accel, "tcg"))
        return lib_err(err, COCOON_E_INVALID, "unknown accelerator \"%s\": use auto, kvm or tcg", accel);
    snprintf(c->accel, sizeof(c->accel), "%s", accel);
    c->cpus = o->cpus ? o->cpus : 1;
    c->memory_mib = o->memory_mib ? o->memory_mib : 512;
    c->boot_timeout_ms = o->boot_timeout_ms ? o->boot_timeout_ms : 60000;
    c->ephemeral = o->ephemeral != 0;
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
    } else {
        snprintf(c->image, sizeof(c->image), "%s", o->image && *o->image ? o->image : "default");
        char base[LIB_PATH_MAX];
        if (lib_image_resolve(rt, c->image, base, sizeof(base), err) < 0)
            return -1;
    }
    return 0;
}

int cocoon_box_create(cocoon_runtime *rt, const cocoon_box_options *opts, cocoon_box **out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_create: NULL argument");
    *out = NULL;
    cocoon_box_options dflt = {0};
    const cocoon_box_options *o = opts ? opts : &dflt;
    struct lib_box_config c;
    if (prepare(rt, o, &c, err) < 0)
        return -1;

    char dir[LIB_PATH_MAX];
    for (int tries = 0;; tries++) {
        if (new_id(c.id, err) < 0)
            return -1;
        if (lib_path(dir, sizeof(dir), "%s/boxes/%s", rt->home, c.id) < 0)
            return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long: %s", rt->home);
        if (mkdir(dir, 0700) == 0)
            break;
        if (errno != EEXIST || tries > 8)
            return lib_err(err, COCOON_E_IO, "cannot create box directory %s: %s", dir, strerror(errno));
    }
    if (make_disk(rt, o, dir, &c, err) < 0 || lib_config_write(dir, &c, err) < 0) {
        util_rm_rf(dir);
        return -1;
    }
    cocoon_box *b = box_alloc(rt, &c, dir);
    if (!b) {
        util_rm_rf(dir);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    *out = b;
    return 0;
}

static int is_box_id(const char *s)
{
    if (strlen(s) != 12)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

int cocoon_box_open(cocoon_runtime *rt, const char *id_or_name, cocoon_box **out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !out || !id_or_name)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_open: NULL argument");
    *out = NULL;
    char id[16] = "";
    char dir[LIB_PATH_MAX];
    if (is_box_id(id_or_name)) {
        snprintf(id, sizeof(id), "%s", id_or_name);
        if (lib_path(dir, sizeof(dir), "%s/boxes/%s", rt->home, id) < 0 || !util_file_exists(dir))
            id[0] = 0;
    }
    if (!id[0] && find_by_name(rt, id_or_name, id) < 0)
        return lib_err(err, COCOON_E_NOT_FOUND, "no box with id or name \"%s\"", id_or_name);
    if (lib_path(dir, sizeof(dir), "%s/boxes/%s", rt->home, id) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    struct lib_box_config c;
    if (lib_config_read(dir, &c, err) < 0)
        return -1;
    snprintf(c.id, sizeof(c.id), "%s", id); /* the directory name is the truth */
    cocoon_box *b = box_alloc(rt, &c, dir);
    if (!b)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    *out = b;
    return 0;
}

const char *cocoon_box_id(const cocoon_box *box) { return box ? box->id : ""; }

int cocoon_box_ready_ms(const cocoon_box *box) { return box ? box->ready_ms : 0; }

int cocoon_box_remove(cocoon_box *box, int force, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_remove: NULL box");
    if (lib_vmm_pid(box) > 0) {
        if (!force)
            return lib_err(err, COCOON_E_STATE, "box %s is running; stop it first or use force", box->id);
        if (cocoon_box_stop(box, 0, err) < 0 && lib_vmm_pid(box) > 0)
            return -1;
    }
    lib_ctl_close(box);
    if (box->lifeline_fd >= 0) {
        close(box->lifeline_fd);
        box->lifeline_fd = -1;
    }
    if (util_rm_rf(box->dir) < 0)
        return lib_err(err, COCOON_E_IO, "cannot remove %s: %s", box->dir, strerror(errno));
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
    free(box);
}
