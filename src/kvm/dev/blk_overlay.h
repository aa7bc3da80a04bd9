/* A live disk snapshot on the kvm backend (blk_overlay.c): the running virtio-blk
 * device goes on writing to a new qcow2 layer whose backing file is its current one. */
#ifndef COCOON_KVM_DEV_BLK_OVERLAY_H
#define COCOON_KVM_DEV_BLK_OVERLAY_H

#include <stddef.h>

#include "kvm/dev/virtio.h"

/* fd: the new layer, open read-write (ours from here on, closed on failure too); name
 * for messages. With every vCPU paused. -1 with err set, and the device unchanged. */
int virtio_blk__overlay(struct virtio_blk *b, int fd, const char *name, char *err, size_t errcap);

#endif
