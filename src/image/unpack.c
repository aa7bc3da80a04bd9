/* image_unpack_ext4: finds an image's layer blobs in the store and merges them into
 * one ext4 base (unpack_merge.c does the merge, from blob paths). */
#include <stdio.h>
#include <stdlib.h>

#include "image/image.h"
#include "image/unpack_int.h"

int image_unpack_ext4(const char *images_dir, const struct image_manifest_info *info, const char *out_path, char *err,
                      size_t errlen)
{
    if (!info || info->nlayers > IMAGE_MAX_LAYERS) {
        snprintf(err, errlen, "bad manifest: %zu layers", info ? info->nlayers : (size_t)0);
        return -1;
    }
    size_t n = info->nlayers;
    char(*paths)[4096] = calloc(n ? n : 1, sizeof(*paths));
    const char **pp = calloc(n ? n : 1, sizeof(*pp));
    const char **dd = calloc(n ? n : 1, sizeof(*dd));
    int rc = -1;
    if (!paths || !pp || !dd) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (image_blob_path(images_dir, info->layers[i].digest, paths[i], sizeof(paths[i])) < 0) {
            snprintf(err, errlen, "layer %.80s: not a valid digest or not in the store", info->layers[i].digest);
            goto out;
        }
        pp[i] = paths[i];
        dd[i] = info->layers[i].digest;
    }
    rc = unpack_layers_ext4(n, dd, pp, out_path, err, errlen);
out:
    free(paths);
    free(pp);
    free(dd);
    return rc;
}
