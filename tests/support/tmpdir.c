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
