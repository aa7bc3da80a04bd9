/* Request bodies spooled to a private temporary file ($COCOON_HOME/tmp, removed when the
 * request ends), bounded by --max-upload: for uploads a consumer must read more than
 * once or as a file (image archives, file trees into a box). */
#ifndef COCOON_SERVE_SPOOL_H
#define COCOON_SERVE_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "cocoon.h"

struct req;

struct spool {
    char path[COCOON_PATH_MAX];
    int fd;
    uint64_t size;
    int too_big, failed;
};

/* A new private file $COCOON_HOME/tmp/<prefix>-XXXXXX (path receives its name): its fd,
 * or -1 with errno. */
int spool_tmp_file(const char *prefix, char *path, size_t cap);
/* The body-streaming step: sets the request up to spool its body (answers 500 on failure). */
int spool_begin(struct req *r);
/* After the body: the spool, or NULL after answering 413 (too big), 507 (the disk
 * failed) or 400 (empty: what names what was expected). */
struct spool *spool_done(struct req *r, const char *what);

#endif
