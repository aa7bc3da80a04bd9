/* `cocoon snapshot compact BOX` (cocoon.h "compacting"): a stopped box's top layer and
 * the snapshot layers under it merged by qcow2_merge into one new layer over the image
 * (or imported base), built as disk.compact in the box's directory, made durable, then
 * renamed over disk.qcow2: a kill before the rename leaves the old chain (and a
 * disk.compact the next compact removes), after it the compacted one. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "lib/snapshot.h"
#include "util/util.h"

void cocoon_compact_options_init(cocoon_compact_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

static uint64_t host_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* With the box lock and snapshots/.lock held. */
static int compact_locked(cocoon_box *box, cocoon_compact_info *info, cocoon_error *err)
{
    char disk[LIB_PATH_MAX], tmp[LIB_PATH_MAX], why[512];
    if (lib_path(disk, sizeof(disk), "%s/disk.qcow2", box->dir) < 0 ||
        lib_path(tmp, sizeof(tmp), "%s/disk.compact", box->dir) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    unlink(tmp); /* left by a compact that was killed */
    struct qcow2 *q = qcow2_open(disk, 0, why, sizeof(why));
    if (!q)
        return lib_err(err, COCOON_E_IO, "cannot read box %s's disk: %s", box->id, why);
    const char *chain[QCOW2_MAX_CHAIN];
    int n = qcow2_chain_paths(q, chain, QCOW2_MAX_CHAIN);
    info->bytes_before = host_bytes(disk);
    /* The snapshot layers right under the top; the first other file is the base. */
    int levels = 0;
    while (levels < n && levels < COCOON_SNAPSHOT_DEPTH_MAX) {
        char id[16];
        lib_snap_of_path(box->rt, chain[levels], id);
        if (!id[0])
            break;
        snprintf(info->released[levels], sizeof(info->released[levels]), "%s", id);
        info->bytes_before += host_bytes(chain[levels]);
        levels++;
    }
    info->layers_before = (unsigned)levels + 1;
    info->layers_after = 1;
    if (levels == 0) { /* nothing to merge */
        info->bytes_after = info->bytes_before;
        qcow2_close(q, NULL, 0);
        return 0;
    }
    struct qcow2_merge_result mr;
    int rc = qcow2_merge(q, levels, tmp, &mr, why, sizeof(why));
    qcow2_close(q, NULL, 0);
    if (rc < 0) {
        unlink(tmp);
        return lib_err(err, COCOON_E_IO, "cannot compact box %s's disk: %s", box->id, why);
    }
    chmod(tmp, 0644); /* as create makes a box disk */
    util_test_point("COMPACT_BUILT");
    if (rename(tmp, disk) < 0) {
        int e = errno;
        unlink(tmp);
        return lib_err(err, COCOON_E_IO, "cannot replace %s: %s", disk, strerror(e));
    }
    int dfd = open(box->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    util_test_point("COMPACT_RENAMED");
    info->nreleased = (unsigned)levels;
    info->bytes_after = host_bytes(disk);
    info->data_clusters = mr.data_clusters;
    info->zero_clusters = mr.zero_clusters;
    return 0;
}

int cocoon_box_compact(cocoon_box *box, const cocoon_compact_options *opts, cocoon_compact_info *out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_compact: NULL box");
    cocoon_compact_options o;
    if (LIB_OPTIONS(cocoon_compact_options, o, opts, err) < 0)
        return -1;
    if (box->problem[0])
        return lib_err(err, COCOON_E_STATE, "box %s cannot be compacted: %s", box->id, box->problem);
    struct box_config *c = malloc(sizeof(*c));
    if (!c)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    int lock = lib_snap_lock_qcow2(box, "compacting its disk", "it has no layers to compact", c, err);
    free(c);
    /* Shared: snapshots cannot be removed or collected while their layers are read. */
    int slock = lock >= 0 ? lib_snap_lock(box->rt, LOCK_SH, err) : -1;
    cocoon_compact_info info;
    memset(&info, 0, sizeof(info));
    int rc = slock >= 0 ? compact_locked(box, &info, err) : -1;
    lib_snap_unlock(slock);
    if (lock >= 0)
        close(lock);
    if (rc == 0 && out)
        *out = info;
    return rc;
}
