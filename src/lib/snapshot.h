/* Snapshots inside libcocoon (snapshot.c): the lock, paths and records that export
 * and import share with the snapshot commands. */
#ifndef COCOON_LIB_SNAPSHOT_H
#define COCOON_LIB_SNAPSHOT_H

#include "lib/internal.h"
#include "lib/snaprec.h"

/* $COCOON_HOME/snapshots/.lock: create, restore and rm hold it LOCK_EX, export of a
 * snapshot LOCK_SH. The fd, or -1 with err. */
int lib_snap_lock(cocoon_runtime *rt, int how, cocoon_error *err);
void lib_snap_unlock(int fd);
/* snapshots/<id> (file NULL) or snapshots/<id>/<file>. */
int lib_snap_path(cocoon_runtime *rt, const char *id, const char *file, char *out, size_t cap);
/* The snapshot whose layer is path (snapshots/<id>/disk.qcow2): its id, or "". */
void lib_snap_of_path(cocoon_runtime *rt, const char *path, char id[16]);
/* Every committed snapshot, oldest first (free the array). */
int lib_snap_all(cocoon_runtime *rt, struct snap_record **out, size_t *count, cocoon_error *err);
/* By id, name or unique id prefix. */
int lib_snap_find(cocoon_runtime *rt, const char *id_or_name, struct snap_record *out, cocoon_error *err);
/* What interrupted snapshot commands left, each reported to fn (path, removed) and
 * removed when remove is set (only under LOCK_EX); their count. lib_snap_gc: removes. */
unsigned lib_snap_garbage(cocoon_runtime *rt, int remove, void (*fn)(void *, const char *, int), void *arg);
void lib_snap_gc(cocoon_runtime *rt);
/* The box lock of a stopped box, or -1 with a message saying why not ("stop it before
 * <doing>"). */
int lib_snap_lock_stopped(cocoon_box *box, const char *doing, cocoon_error *err);
/* lib_snap_lock_stopped, then the box's config read into c and its disk checked to be
 * qcow2 (else COCOON_E_UNSUPPORTED: "box ID has a raw disk (made with --rootfs): <raw_why>").
 * The lock, or -1 (not held) with err. */
int lib_snap_lock_qcow2(cocoon_box *box, const char *doing, const char *raw_why, struct box_config *c,
                        cocoon_error *err);
/* With the box lock and snapshots/.lock (LOCK_EX) held: the snapshot clones of the box
 * stand on. The one its disk already stands on when its top layer is empty (*made 0),
 * else a new snapshot of it (*made 1). */
int lib_snap_for_clone(cocoon_box *box, const struct box_config *c, struct snap_record *out, int *made,
                       cocoon_error *err);
/* A live snapshot of a running box (qemu backend), with its memory and device state in
 * snapshots/<id>/memory.state when memory is set (a fork's capture). Takes the locks. */
int lib_snap_create_live(cocoon_box *box, int memory, struct snap_record *out, cocoon_error *err);
/* A fork's memory and device state in its snapshot's directory. */
#define LIB_SNAP_MEMORY "memory.state"

#endif
