/* Scratch directories for tests (tmpdir.h). */
#include "support/tmpdir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int test_tmpdir(char *out, size_t cap, const char *prefix)
{
    const char *base = getenv("TMPDIR");
    int n = snprintf(out, cap, "%s/%s.XXXXXX", base && *base ? base : "/tmp", prefix);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(out) ? 0 : -1;
}

const char *test_tmp_path(const char *dir, const char *name)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}
