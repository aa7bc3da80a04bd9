/* Box lifecycle on disk: create (id, directory, state row, disk, config.json), open by
 * id, name or id prefix, remove, and the handle itself. The state database is the
 * index (names are claimed there, atomically); the directory holds the files. Running
 * the monitor is in monitor.c. A create that fails leaves nothing behind. */
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
    b->rt = rt;
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

static int check_file(const char *path, const char *what, cocoon_error *err)
{
    if (util_file_exists(path))
        return 0;
    return lib_err(err, COCOON_E_NOT_FOUND, "%s not found at %s: run `make guest`", what, path);
}

static int make_disk(const cocoon_box_options *o, const struct state_image *img, const struct lib_box_config *c,
                     cocoon_error *err)
{
    if (o->rootfs)
        return disk_from_rootfs(c->rootfs, c->disk, o->disk_size, err);
    return disk_create_overlay(img->base_path, c->disk, o->disk_size, err);
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
static int prepare(cocoon_runtime *rt, const cocoon_box_options *o, struct lib_box_config *c, struct state_image *img,
                   cocoon_error *err)
{
    memset(c, 0, sizeof(*c));
    memset(img, 0, sizeof(*img));
    if (o->name && *o->name) {
        if (!valid_box_name(o->name))
            return lib_err(err, COCOON_E_INVALID, "invalid box name \"%s\": up to 64 letters, digits, '.', '_' or '-'",
                           o->name);
        /* Checked early so a taken name costs no disk work; the insert decides races. */
        struct state_box other;
        if (state_box_find(rt->state, o->name, &other, NULL) == 0 && !strcmp(other.name, o->name)) {
            state_box_clear(&other);
            return lib_err(err, COCOON_E_STATE, "box name \"%s\" is already in use by box %s", o->name, other.id);
        }
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
    const char *vmm = o->vmm && *o->vmm ? o->vmm : "auto";
    if (strcmp(vmm, "auto") && strcmp(vmm, "kvm") && strcmp(vmm, "qemu"))
        return lib_err(err, COCOON_E_INVALID, "unknown vmm \"%s\": use auto, kvm or qemu", vmm);
    const char *force = getenv("COCOON_FORCE_KVM"); /* tests: the nested lane's /dev/kvm */
    if (!strcmp(vmm, "kvm") && !(force && *force && strcmp(force, "0"))) {
        struct host_kvm_probe kp;
        host_probe_kvm(&kp);
        if (!kp.usable)
            return lib_err(err, COCOON_E_UNSUPPORTED, "kvm backend unavailable: %s (use --vmm qemu)", kp.reason);
    }
    snprintf(c->backend, sizeof(c->backend), "%s", vmm);
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
    c->disk_size = o->disk_size;
    return lib_net_options(o, c, err);
}

/* Undoes a half-made box: files first, then the row (a row without a directory is
 * garbage any reader may also collect). */
static void discard(cocoon_runtime *rt, const char *dir, const char *id, int have_row)
{
    util_rm_rf(dir);
    if (have_row)
        state_box_delete(rt->state, id, NULL);
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
    struct state_image img;
    if (prepare(rt, o, &c, &img, err) < 0) {
        state_image_clear(&img);
        return -1;
    }
    state_image_clear(&img); /* only the scalar fields are used from here on */

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
    if (lib_path(c.disk, sizeof(c.disk), "%s/%s", dir, o->rootfs ? "rootfs.ext4" : "disk.qcow2") < 0) {
        discard(rt, dir, c.id, 0);
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    }
    struct state_box row;
    memset(&row, 0, sizeof(row));
    snprintf(row.id, sizeof(row.id), "%s", c.id);
    snprintf(row.name, sizeof(row.name), "%s", c.name);
    snprintf(row.image_ref, sizeof(row.image_ref), "%s", c.image);
    snprintf(row.image_id, sizeof(row.image_id), "%s", c.image_id);
    row.created_at = c.created;
    row.ephemeral = c.ephemeral;
    row.config_json = lib_config_json(&c);
    if (!row.config_json) {
        discard(rt, dir, c.id, 0);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    int rc = state_box_insert(rt->state, &row, err);
    state_box_clear(&row);
    if (rc < 0) {
        discard(rt, dir, c.id, 0);
        return -1;
    }
    /* Re-fetch the image: its base must be the one recorded with the row. */
    struct state_image base;
    memset(&base, 0, sizeof(base));
    if (!o->rootfs && state_image_get_by_id(rt->state, c.image_id, &base, err) < 0) {
        discard(rt, dir, c.id, 1);
        return -1;
    }
    rc = make_disk(o, &base, &c, err);
    state_image_clear(&base);
    if (rc < 0 || lib_config_write(dir, &c, err) < 0) {
        discard(rt, dir, c.id, 1);
        return -1;
    }
    cocoon_box *b = box_alloc(rt, &c, dir);
    if (!b) {
        discard(rt, dir, c.id, 1);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    *out = b;
    return 0;
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
    char id[16];
    snprintf(id, sizeof(id), "%s", row.id);
    state_box_clear(&row);
    char dir[LIB_PATH_MAX];
    if (lib_path(dir, sizeof(dir), "%s/boxes/%s", rt->home, id) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    struct lib_box_config c;
    if (!util_file_exists(dir)) {
        /* Its directory went away (an ephemeral box removed by its monitor). */
        state_box_delete(rt->state, id, NULL);
        return lib_err(err, COCOON_E_NOT_FOUND, "no box with id or name \"%s\" (box %s was removed)", id_or_name, id);
    }
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

const char *cocoon_box_name(const cocoon_box *box) { return box ? box->name : ""; }

int cocoon_box_ready_ms(const cocoon_box *box) { return box ? box->ready_ms : 0; }

int cocoon_box_remove(cocoon_box *box, int force, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_remove: NULL box");
    if (lib_vmm_pid(box) > 0) {
        if (!force)
            return lib_err(err, COCOON_E_STATE,
                           "box %s%s%s%s is running: stop it first (cocoon stop) or force the removal (cocoon rm -f)",
                           box->id, box->name[0] ? " (" : "", box->name, box->name[0] ? ")" : "");
        if (lib_box_stop_only(box, 0, err) < 0 && lib_vmm_pid(box) > 0)
            return -1;
    }
    lib_ctl_close(box);
    if (box->lifeline_fd >= 0) {
        close(box->lifeline_fd);
        box->lifeline_fd = -1;
    }
    if (util_rm_rf(box->dir) < 0)
        return lib_err(err, COCOON_E_IO, "cannot remove %s: %s", box->dir, strerror(errno));
    return state_box_delete(box->rt->state, box->id, err);
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
