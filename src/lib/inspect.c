/* Looking at boxes: the list behind `cocoon ls` (rows of the state database joined with
 * the liveness of each box's monitor), one box's details behind `cocoon inspect`, and
 * its console log behind `cocoon logs`. Rows whose directory vanished (an ephemeral box
 * removed by its monitor after its creator died) are dropped here. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk/disk.h"
#include "util/util.h"

/* Fills info from config.json and the files of the box directory (no connection). */
static void fill_info(const char *dir, const struct box_config *c, cocoon_box_info *info)
{
    memset(info, 0, sizeof(*info));
    snprintf(info->id, sizeof(info->id), "%.*s", (int)sizeof(info->id) - 1, c->id);
    snprintf(info->name, sizeof(info->name), "%s", c->name);
    snprintf(info->image, sizeof(info->image), "%s", c->rootfs[0] ? "" : c->image);
    snprintf(info->image_id, sizeof(info->image_id), "%s", c->image_id);
    snprintf(info->rootfs, sizeof(info->rootfs), "%s", c->rootfs);
    info->created = c->created;
    info->ephemeral = c->ephemeral;
    info->cpus = c->cpus;
    info->memory_mib = c->memory_mib;
    snprintf(info->accel, sizeof(info->accel), "%s", box_accel_name(c->accel));
    snprintf(info->dir, sizeof(info->dir), "%s", dir);
    snprintf(info->kernel, sizeof(info->kernel), "%s", c->kernel);
    snprintf(info->initrd, sizeof(info->initrd), "%s", c->initrd);
    snprintf(info->disk_path, sizeof(info->disk_path), "%s", c->disk);
    snprintf(info->disk_format, sizeof(info->disk_format), "%s", c->disk_format);
    info->disk_size = disk_virtual_size(c->disk);
    struct stat st;
    if (stat(c->disk, &st) == 0)
        info->disk_used = (uint64_t)st.st_blocks * 512u;
    pid_t pid = 0;
    info->running = lib_box_running(dir, &pid);
    info->pid = (int)pid;
    snprintf(info->status, sizeof(info->status), "%s", info->running ? "running" : "stopped");
    info->ready_ms = -1;
    info->boot_ms = info->init_ms = -1;
}

int cocoon_box_list(cocoon_runtime *rt, cocoon_box_info **out, size_t *count, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !out || !count)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_list: NULL argument");
    *out = NULL;
    *count = 0;
    lib_box_gc(rt);
    struct state_box *rows;
    size_t n;
    if (state_box_list(rt->state, &rows, &n, err) < 0)
        return -1;
    cocoon_box_info *list = calloc(n ? n : 1, sizeof(*list));
    if (!list) {
        state_box_list_free(rows, n);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    struct box_config *c = malloc(sizeof(*c));
    if (!c) {
        free(list);
        state_box_list_free(rows, n);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char dir[LIB_PATH_MAX];
        if (lib_path(dir, sizeof(dir), "%s/boxes/%s", rt->home, rows[i].id) < 0)
            continue;
        if (!util_file_exists(dir)) {
            state_box_delete(rt->state, rows[i].id, NULL);
            continue;
        }
        if (lib_config_read(dir, c, NULL) < 0) {
            /* Being created right now (config.json comes last), or damaged: show the row. */
            memset(c, 0, sizeof(*c));
            snprintf(c->image, sizeof(c->image), "%s", rows[i].image_ref);
            c->created = rows[i].created_at;
        }
        snprintf(c->id, sizeof(c->id), "%s", rows[i].id);
        snprintf(c->name, sizeof(c->name), "%s", rows[i].name);
        snprintf(c->image_id, sizeof(c->image_id), "%s", rows[i].image_id);
        c->ephemeral = rows[i].ephemeral;
        fill_info(dir, c, &list[k++]);
    }
    free(c);
    state_box_list_free(rows, n);
    *out = list;
    *count = k;
    return 0;
}

void cocoon_box_list_free(cocoon_box_info *list) { free(list); }

int cocoon_box_inspect(cocoon_box *box, cocoon_box_info *info, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !info)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_inspect: NULL argument");
    struct box_config *c = malloc(sizeof(*c));
    if (!c)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (lib_config_read(box->dir, c, box->problem[0] ? NULL : err) < 0) {
        if (!box->problem[0]) {
            free(c);
            return -1;
        }
        memset(c, 0, sizeof(*c)); /* a damaged box: what its row says */
        snprintf(c->name, sizeof(c->name), "%s", box->name);
        c->ephemeral = box->ephemeral;
    }
    snprintf(c->id, sizeof(c->id), "%s", box->id);
    struct state_box row;
    if (state_box_get(box->rt->state, box->id, &row, NULL) == 0) {
        snprintf(c->name, sizeof(c->name), "%s", row.name);
        snprintf(c->image_id, sizeof(c->image_id), "%s", row.image_id);
        state_box_clear(&row);
    }
    fill_info(box->dir, c, info);
    free(c);
    if (info->running && (box->conn_ready || lib_ctl_connect(box, NULL) == 0)) {
        info->ready_ms = (int)box->hello.ready_ms;
        info->boot_ms = (long long)(box->hello.boot_ns / 1000000u);
        info->init_ms = (long long)(box->hello.init_ns / 1000000u);
    }
    return 0;
}
