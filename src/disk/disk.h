/* Box disks: a copy-on-write qcow2 overlay over a read-only image base, or an ext4
 * image built from a host directory (--rootfs). Callers only see these functions, so
 * the tools behind them (qemu-img, mke2fs today) can be replaced by native code. */
#ifndef COCOON_DISK_H
#define COCOON_DISK_H

#include "cocoon.h"

/* Creates a qcow2 file at path whose backing file is base (raw ext4, absolute path). */
int disk_create_overlay(const char *base, const char *path, cocoon_error *err);
/* Builds a sparse ext4 image at path holding a copy of the host directory dir. */
int disk_from_rootfs(const char *dir, const char *path, cocoon_error *err);

#endif
