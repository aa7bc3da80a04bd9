/* A small QMP client for the monitor's QEMU child: one command at a time over a
 * socketpair QEMU was given at start, with a deadline, bounded line reads, and events
 * skipped. QEMU is less trusted than the monitor: everything it says is parsed by
 * qmp_parse_line, which bounds and checks it. */
#ifndef COCOON_MONITOR_QMP_H
#define COCOON_MONITOR_QMP_H

#include <stddef.h>

#include <jansson.h>

/* The longest QMP line accepted from QEMU (a query-migrate answer is well under 2 KiB;
 * query-block of a deep chain a few KiB). A longer one breaks the channel. */
#define QMP_LINE_MAX (64u * 1024u)

/* What a line from QEMU is. */
enum qmp_kind {
    QMP_BAD = -1,     /* not JSON, not an object, or none of the shapes below */
    QMP_GREETING = 0, /* {"QMP": {...}} */
    QMP_RETURN = 1,   /* {"return": ..., "id": ...} */
    QMP_ERROR = 2,    /* {"error": {"class": ..., "desc": ...}, "id": ...} */
    QMP_EVENT = 3     /* {"event": "NAME", ...} */
};

/* Parses one line (without its newline). For QMP_RETURN, *ret (when ret is not NULL)
 * gets a new reference to the return value; for QMP_ERROR, msg gets "Class: desc"
 * (printable ASCII, cut to cap); for QMP_EVENT, msg gets the event's name. *id gets the
 * reply's "id" when it is a non-negative integer, else -1. */
enum qmp_kind qmp_parse_line(const char *line, size_t len, json_t **ret, long long *id, char *msg, size_t cap);

struct qmp {
    int fd;           /* the monitor's end of the socketpair; -1: no QMP channel */
    const char *peer; /* who answers, for messages: "QEMU" (qmp_init's), or "the kvm VMM" */
    int negotiated, broken;
    long long next_id;
    char *buf; /* QMP_LINE_MAX + 1 bytes */
    size_t len;
};

void qmp_init(struct qmp *q, int fd);
void qmp_close(struct qmp *q);
/* Runs one command (args: an object or NULL, stolen) and waits for its answer at most
 * timeout_ms; the greeting and qmp_capabilities come first on the first call. A
 * command QEMU answers with an error returns -1 with "Class: desc" in err; a channel
 * that breaks (EOF, an over-long or bad line, the deadline) returns -1 and stays
 * broken. pass_fd >= 0 goes along with the command as SCM_RIGHTS (for getfd). On 0,
 * *ret (when not NULL) holds the return value (json_decref it). */
int qmp_command(struct qmp *q, const char *cmd, json_t *args, int pass_fd, json_t **ret, int timeout_ms, char *err,
                size_t cap);

#endif
