/* A fuzzer's input as a file, for code under test that opens a path: the bytes go into
 * an anonymous memory file, named by its /proc/self/fd path. */
#ifndef COCOON_TESTS_FUZZFILE_H
#define COCOON_TESTS_FUZZFILE_H

#include <stddef.h>
#include <stdint.h>

/* Writes data[0..size) to a new memory file named name and its path into path[cap].
 * Returns its fd (the caller closes it), or -1. */
int fuzz_input_file(const char *name, const uint8_t *data, size_t size, char *path, size_t cap);

#endif
