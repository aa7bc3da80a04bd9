/* A fuzzer's input as a file (fuzzfile.h). */
#include "support/fuzzfile.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int fuzz_input_file(const char *name, const uint8_t *data, size_t size, char *path, size_t cap)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

long fuzz_pieces_read(void *arg, void *buf, size_t cap)
{
    struct fuzz_pieces *m = arg;
    size_t k = m->len - m->off;
    size_t piece = 1 + (m->off * 7919) % 9000;
    if (k > piece)
        k = piece;
    if (k > cap)
        k = cap;
    if (k)
        memcpy(buf, m->p + m->off, k);
    m->off += k;
    return (long)k;
}
