/* Scratch directories for unit tests and fuzzers: made under $TMPDIR (or /tmp), named
 * after their user, removed with util_rm_rf (src/util) when done. */
#ifndef COCOON_TESTS_TMPDIR_H
#define COCOON_TESTS_TMPDIR_H

#include <stddef.h>

/* Makes a new directory "<$TMPDIR or /tmp>/<prefix>.XXXXXX" and writes its path into
 * out[cap]. 0, or -1 (with errno set) when it cannot be made or its name does not fit. */
int test_tmpdir(char *out, size_t cap, const char *prefix);

/* "dir/name" in one of four rotating buffers, so that a call may name several paths. */
const char *test_tmp_path(const char *dir, const char *name);

#endif
