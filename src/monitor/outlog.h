/* The log of a command the monitor runs itself (the main process, detached execs):
 * its stdout and stderr as lines with their time, "TIME stdout|stderr TEXT", in a file
 * of the box directory rotated like the console (util/rotlog.c). */
#ifndef COCOON_MONITOR_OUTLOG_H
#define COCOON_MONITOR_OUTLOG_H

#include <stddef.h>
#include <stdint.h>

#include "boxcfg/mainspec.h"
#include "util/rotlog.h"

/* Above its bound a log becomes NAME.1: at most about twice the bound per log. The main
 * process's is 4 MiB (COCOON_MAIN_LOG_MAX=BYTES in the monitor's environment changes
 * it), a detached exec's 1 MiB (COCOON_EXEC_LOG_MAX): a box may keep many of those. */
#define OUTLOG_MAIN_BYTES (4u * 1024 * 1024)
#define OUTLOG_EXEC_BYTES (1u * 1024 * 1024)
#define OUTLOG_MIN_BYTES 4096u
enum outlog_kind { OUTLOG_MAIN, OUTLOG_EXEC };

struct outlog {
    struct rotlog log;
    char line[2][MAIN_LOG_LINE_MAX]; /* the partial line of stdout, of stderr */
    size_t len[2];
};

/* Opens dirfd/name for appending (kept when `fresh` is 0), with the bound of its kind.
 * -1 with errno. */
int outlog_open(struct outlog *o, int dirfd, const char *name, enum outlog_kind kind, int fresh);
/* Output of the command: stream 0 stdout, 1 stderr. */
void outlog_write(struct outlog *o, int stream, const uint8_t *p, size_t n);
/* One line of our own (a start failure), on stderr. */
void outlog_note(struct outlog *o, const char *text);
/* Writes what is left of unfinished lines. */
void outlog_flush(struct outlog *o);
void outlog_close(struct outlog *o);

#endif
