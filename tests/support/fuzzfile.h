/* A fuzzer's input as a file, for code under test that opens a path (the bytes go into
 * an anonymous memory file, named by its /proc/self/fd path), or as a stream read in
 * uneven pieces. */
#ifndef COCOON_TESTS_FUZZFILE_H
#define COCOON_TESTS_FUZZFILE_H

#include <stddef.h>
#include <stdint.h>

/* Writes data[0..size) to a new memory file named name and its path into path[cap].
 * Returns its fd (the caller closes it), or -1. */
int fuzz_input_file(const char *name, const uint8_t *data, size_t size, char *path, size_t cap);

/* The input handed out in uneven pieces, the way a network or a guest's frames deliver
 * a stream: fuzz_pieces_read is a read callback (tar_read_fn's shape) over p[0..len). */
struct fuzz_pieces {
    const uint8_t *p;
    size_t len, off;
};
long fuzz_pieces_read(void *arg, void *buf, size_t cap);

#endif
