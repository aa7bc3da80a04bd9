/* Fuzz target: the input is the tar stream a hostile guest sends for `cocoon cp BOX:x
 * DIR`, extracted by the host's reader and policy (src/lib/tar_reader.c, extract.c)
 * into a private directory. Refusals are fine; a crash, a sanitizer report, or any of
 * these after a run is not: a name in DIR other than "x", a staging directory left, a
 * refused copy that left anything, a symlink in the copy pointing outside it, a
 * setuid/setgid/sticky bit, more file bytes than the bound. */
#include <dirent.h>
#include <limits.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/extract.h"
#include "lib/tar_reader.h"
#include "support/fuzzfile.h"
#include "support/tmpdir.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BYTES (64u << 10)

static char workdir[256], dest[300], copy[320];
static uint64_t seen_bytes;

static void cleanup(void)
{
    if (workdir[0])
        util_rm_rf(workdir);
}

/* Symlinks stay inside the copy, no special mode bits, bytes within the bound. */
static int check_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (st->st_mode & 07000)
        abort();
    if (S_ISREG(st->st_mode))
        seen_bytes += (uint64_t)st->st_size;
    if (S_ISLNK(st->st_mode)) {
        char target[4200], joined[8600];
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
            abort();
        target[n] = 0;
        if (target[0] == '/')
            abort();
        /* resolved lexically from the link's directory, it must stay under the copy */
        snprintf(joined, sizeof(joined), "%.*s/%s", (int)(strrchr(path, '/') - path), path, target);
        char *p = joined + strlen(copy), *save = NULL;
        int depth = 0;
        for (char *c = strtok_r(p, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
            if (!strcmp(c, ".."))
                depth--;
            else if (strcmp(c, "."))
                depth++;
            if (depth < 0)
                abort();
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!workdir[0]) {
        if (test_tmpdir(workdir, sizeof(workdir), "fuzz_cp_extract") < 0) {
            workdir[0] = 0;
            return 0;
        }
        snprintf(dest, sizeof(dest), "%s/d", workdir);
        snprintf(copy, sizeof(copy), "%s/x", dest);
        atexit(cleanup);
    }
    util_rm_rf(dest);
    if (mkdir(dest, 0755) < 0)
        return 0;
    struct fuzz_pieces m = {data, size, 0};
    struct tar_reader r;
    if (tar_reader_init(&r, fuzz_pieces_read, &m) < 0)
        return 0;
    struct extract_job job = {dest, "x", "x", MAX_BYTES, 2000, "B", "E", NULL, NULL};
    char warnings[1024];
    cocoon_error err = {0};
    int rc = extract_tar(&r, &job, warnings, sizeof(warnings), NULL, &err);
    tar_reader_free(&r);
    if (rc < 0 && (err.code == COCOON_OK || !err.message[0]))
        abort(); /* a refusal says why */
    DIR *d = opendir(dest);
    if (!d)
        abort();
    struct dirent *de;
    int names = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (strcmp(de->d_name, "x") || rc < 0)
            abort(); /* only the copy, and only when it succeeded */
        names++;
    }
    closedir(d);
    if (rc == 0 && names != 1)
        abort();
    seen_bytes = 0;
    if (rc == 0 && nftw(copy, check_one, 16, FTW_PHYS) != 0)
        abort();
    if (seen_bytes > MAX_BYTES)
        abort();
    return 0;
}
