/* Box disks: a copy-on-write qcow2 overlay over a read-only image base, or an ext4
 * image built from a host directory (--rootfs). Callers only see these functions, so
 * the tools behind them (qemu-img, mke2fs today) can be replaced by native code. */
#ifndef COCOON_DISK_H
#define COCOON_DISK_H

#include "cocoon.h"

#include <stdint.h>

/* Creates a qcow2 file at path whose backing file is base (raw ext4, absolute path).
 * size: virtual size in bytes, 0 for the size of the base (never smaller). */
int disk_create_overlay(const char *base, const char *path, uint64_t size, cocoon_error *err);
/* Builds a sparse ext4 image at path holding a copy of the host directory dir, of at
 * least min_size bytes (0: sized to fit the tree with headroom). */
int disk_from_rootfs(const char *dir, const char *path, uint64_t min_size, cocoon_error *err);
/* Virtual size of a disk file (qcow2 header or raw file size). 0 and errno on failure. */
uint64_t disk_virtual_size(const char *path);

#endif
