/* The layer merge from blob paths: pass 1 builds the merged tree from the tar headers
 * (unpack_tree.c), pass 2 formats and fills the ext4 file (ext4_write.c). Output goes
 * to OUT.tmp.<pid> and is renamed into place only when complete, so a failure never
 * leaves anything at OUT. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/image.h"
#include "image/unpack_int.h"

int unpack_layers_ext4(size_t nlayers, const char *const *digests, const char *const *blob_paths, const char *out_path,
                       char *err, size_t errlen)
{
    if (nlayers > IMAGE_MAX_LAYERS) {
        snprintf(err, errlen, "too many layers (%zu)", nlayers);
        return -1;
    }
    struct unpack_tree t;
    if (unpack_tree_init(&t, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < nlayers; i++) {
        /* layers are numbered from 1 in the tree: 0 means "never named" */
        if (unpack_tree_add_layer(&t, (int)i + 1, digests[i], blob_paths[i], err, errlen) < 0) {
            unpack_tree_free(&t);
            return -1;
        }
    }
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", out_path, (long)getpid()) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "output path too long");
        unpack_tree_free(&t);
        return -1;
    }
    unlink(tmp); /* a leftover of an earlier process with our pid */
    int rc = ext4_write_tree(&t, nlayers, digests, blob_paths, tmp, err, errlen);
    unpack_tree_free(&t);
    if (rc == 0) {
        int fd = open(tmp, O_RDWR | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0) {
            snprintf(err, errlen, "syncing %s: %s", tmp, strerror(errno));
            rc = -1;
        }
        if (fd >= 0)
            close(fd);
    }
    if (rc == 0 && rename(tmp, out_path) < 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, out_path, strerror(errno));
        rc = -1;
    }
    if (rc < 0)
        unlink(tmp);
    return rc;
}
