/* Fuzz target: the input is a `docker save` or OCI tarball as a hostile author would
 * ship it (manifest.json, index.json, RepoTags, links between members). It is loaded
 * into a private temporary blob store, which is then removed. Refusals are fine; a
 * crash, a sanitizer report, or a name with a control character reported is not.
 * fuzz-sources: src/image/load.c src/image/manifest.c src/image/reference.c src/image/blobstore.c src/util/files.c
 * src/util/dl_archive.c src/util/dynlib.c
 * -larchive -ljansson
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "image/image.h"
#include "support/fuzzfile.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char store[64];
    snprintf(store, sizeof(store), "/tmp/cocoon-fuzz-load-%d", (int)getpid());
    char path[64], err[1024];
    int fd = fuzz_input_file("archive", data, size, path, sizeof(path));
    if (fd < 0)
        return 0;
    struct image_loaded *out = NULL;
    size_t n = 0;
    if (image_load(store, path, &out, &n, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < n; i++)
            for (const unsigned char *p = (const unsigned char *)out[i].name; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                    abort();
        free(out);
    }
    close(fd);
    util_rm_rf(store);
    return 0;
}
