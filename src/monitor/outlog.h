/* The log of a command the monitor runs itself (the main process, detached execs):
 * its stdout and stderr as lines with their time, "TIME stdout|stderr TEXT", in a file
 * of the box directory rotated like the console (util/rotlog.c). */
#ifndef COCOON_MONITOR_OUTLOG_H
#define COCOON_MONITOR_OUTLOG_H

#include <stddef.h>
#include <stdint.h>

#include "boxcfg/mainspec.h"
#include "util/rotlog.h"

/* Above this a log becomes NAME.1: at most about twice this per log.
 * COCOON_MAIN_LOG_MAX=BYTES in the monitor's environment changes it. */
#define OUTLOG_DEFAULT_BYTES (4u * 1024 * 1024)
#define OUTLOG_MIN_BYTES 4096u

struct outlog {
    struct rotlog log;
    char line[2][MAIN_LOG_LINE_MAX]; /* the partial line of stdout, of stderr */
    size_t len[2];
};

/* Opens dirfd/name for appending (kept when `fresh` is 0). -1 with errno. */
int outlog_open(struct outlog *o, int dirfd, const char *name, int fresh);
/* Output of the command: stream 0 stdout, 1 stderr. */
void outlog_write(struct outlog *o, int stream, const uint8_t *p, size_t n);
/* One line of our own (a start failure), on stderr. */
void outlog_note(struct outlog *o, const char *text);
/* Writes what is left of unfinished lines. */
void outlog_flush(struct outlog *o);
void outlog_close(struct outlog *o);

#endif
