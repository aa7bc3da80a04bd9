/* Switching a running virtio-blk to a new top layer (blk_overlay.h): the old top is
 * flushed and becomes the read-only backing image of the new one; requests served
 * after the switch land in the new layer. The process opens no file: the new layer
 * arrives as an fd. */
#include "kvm/dev/blk_overlay.h"

#include <stdio.h>
#include <unistd.h>

#include "disk/qcow2.h"

int virtio_blk__overlay(struct virtio_blk *b, int fd, const char *name, char *err, size_t errcap)
{
    if (!b->qcow || b->read_only) {
        close(fd);
        snprintf(err, errcap, "the box's disk is %s: live snapshots need a writable qcow2 disk",
                 b->read_only ? "read-only" : "a raw file");
        return -1;
    }
    pthread_mutex_lock(&b->t.lock);
    struct qcow2 *top = qcow2_open_over(fd, name, b->qcow, err, errcap);
    if (top)
        b->qcow = top;
    pthread_mutex_unlock(&b->t.lock);
    return top ? 0 : -1;
}
