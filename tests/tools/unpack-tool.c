/* Test driver for the layer merge: unpack-tool STORE OUT DIGEST... merges the layers
 * (blobs in STORE/blobs/sha256/<hex>, in the given order) into the ext4 file OUT via
 * image_unpack_ext4. Prints the error and exits 1 on failure. Built by
 * tests/integration/test_unpack_layers.py against build/lib/libcocoon.a. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "image/image.h"

int main(int argc, char **argv)
{
    if (argc < 3 || argc - 3 > IMAGE_MAX_LAYERS) {
        fprintf(stderr, "usage: unpack-tool STORE OUT [sha256:DIGEST...]\n");
        return 2;
    }
    static struct image_manifest_info info;
    info.nlayers = (size_t)(argc - 3);
    for (int i = 3; i < argc; i++)
        snprintf(info.layers[i - 3].digest, sizeof(info.layers[i - 3].digest), "%s", argv[i]);
    char err[1024] = "";
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = image_unpack_ext4(argv[1], &info, argv[2], err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rc < 0) {
        fprintf(stderr, "unpack-tool: %s\n", err);
        return 1;
    }
    printf("unpacked %zu layers into %s in %.3f s\n", info.nlayers, argv[2],
           (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
