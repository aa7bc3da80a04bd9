/* Fuzz target: the input is one layer blob (tar, maybe gzip/zstd compressed) as a
 * hostile image author would ship it. It is merged into a fresh ext4 file in a
 * private temporary directory, which is then removed. Refusals are fine; a crash, a
 * sanitizer report, or a file left behind on failure is not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/unpack_int.h"
#include "support/tmpdir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char workdir[128];

static void cleanup(void)
{
    if (workdir[0]) {
        char p[256];
        snprintf(p, sizeof(p), "%s/layer", workdir);
        unlink(p);
        snprintf(p, sizeof(p), "%s/out.ext4", workdir);
        unlink(p);
        rmdir(workdir);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!workdir[0]) {
        if (test_tmpdir(workdir, sizeof(workdir), "fuzz_tar") < 0) {
            workdir[0] = 0;
            return 0;
        }
        atexit(cleanup);
    }
    char layer[256], out[256];
    snprintf(layer, sizeof(layer), "%s/layer", workdir);
    snprintf(out, sizeof(out), "%s/out.ext4", workdir);
    int fd = open(layer, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    if (done != size)
        return 0;

    const char *digests[1] = {"sha256:fuzz"};
    const char *paths[1] = {layer};
    char err[1024];
    int rc = unpack_layers_ext4(1, digests, paths, out, err, sizeof(err));
    struct stat st;
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", out, (long)getpid());
    if (stat(tmp, &st) == 0 || (rc < 0 && stat(out, &st) == 0))
        abort(); /* a failure must leave nothing behind, a success no temp file */
    if (rc < 0 && strlen(err) == 0)
        abort(); /* and must say why */
    unlink(out);
    return 0;
}
