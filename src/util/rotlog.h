/* A log file in a directory that is rotated rather than capped: above `max` bytes,
 * NAME becomes NAME.1 (replacing the previous one) and a fresh NAME starts, so the
 * newest lines are kept and the pair never holds much more than 2 * max. */
#ifndef COCOON_UTIL_ROTLOG_H
#define COCOON_UTIL_ROTLOG_H

#include <stddef.h>
#include <stdint.h>

struct rotlog {
    int dirfd; /* not owned */
    char name[64];
    int fd;
    uint64_t size, max;
    uint64_t rotations, dropped; /* bytes not written: rotation failed, or the disk */
    int stopped;                 /* a log that cannot rotate must not grow without bound */
};

/* Opens dirfd/name for appending (truncated when `fresh`, and NAME.1 removed). -1 with
 * errno when it cannot be created. */
int rotlog_open(struct rotlog *l, int dirfd, const char *name, uint64_t max, int fresh);
/* Appends n bytes, rotating first when they would pass max. Never fails loudly: what
 * cannot be written is counted in l->dropped. */
void rotlog_write(struct rotlog *l, const void *buf, size_t n);
void rotlog_close(struct rotlog *l);
/* The rotation itself, for a log kept open by someone else: renames dirfd/name to
 * name.1 and makes fd (keeping its number, by dup3) a fresh dirfd/name. -1 when that
 * fails; fd is then unchanged. */
int rotlog_rotate(int dirfd, const char *name, int fd);

#endif
