/* A box's health check (DIR/health.json, written by libcocoon, read by cocoon-vmm) and
 * its results (DIR/health.state.json, written by cocoon-vmm, read by libcocoon): the
 * check's command and timing, its durations' text form, and the last results. */
#ifndef COCOON_BOXCFG_HEALTHSPEC_H
#define COCOON_BOXCFG_HEALTHSPEC_H

#include <stddef.h>
#include <stdint.h>

/* docker's defaults */
#define HEALTH_INTERVAL_DEFAULT_MS 30000u
#define HEALTH_TIMEOUT_DEFAULT_MS 30000u
#define HEALTH_RETRIES_DEFAULT 3u
/* A check more often than each second, or a timeout below it, is a busy loop in the
 * guest; a day is the longest duration that means anything here. */
#define HEALTH_DURATION_MIN_MS 1000u
#define HEALTH_DURATION_MAX_MS (24u * 3600u * 1000u)
#define HEALTH_RETRIES_MAX 1000u
#define HEALTH_ARGV_MAX 1024u
#define HEALTH_SPEC_FILE_MAX (256u * 1024u)
/* Of each check's output, the first 4 KiB are kept (docker keeps as much); the last
 * HEALTH_LOG_KEEP results are. The state file holds no more than that, escaped. */
#define HEALTH_OUTPUT_MAX 4096u
#define HEALTH_LOG_KEEP 5u
#define HEALTH_STATE_FILE_MAX (64u * 1024u)

/* What happens when the box becomes unhealthy: nothing (docker's way), the main
 * process is killed (its restart policy then applies), or the box stops. */
enum health_on_failure { HEALTH_ON_FAILURE_NONE, HEALTH_ON_FAILURE_RESTART, HEALTH_ON_FAILURE_STOP };

struct health_spec {
    char **argv; /* NULL-terminated, owned, at least one entry: run as an exec in the guest */
    uint32_t interval_ms, timeout_ms, start_period_ms;
    unsigned retries; /* failures in a row that make it unhealthy, 1..HEALTH_RETRIES_MAX */
    enum health_on_failure on_failure;
};

/* "30s", "1m30s", "500ms", "2h", "1.5s", or a bare number of seconds; at most
 * HEALTH_DURATION_MAX_MS. -1 with a message naming `what` in err. */
int health_duration_parse(const char *text, const char *what, uint32_t *ms, char *err, size_t cap);
/* "30s", "1m30s", "1.5s", "0s" */
void health_duration_format(uint32_t ms, char *out, size_t cap);
/* "none", "restart", "stop" (NULL or empty: none). */
int health_on_failure_parse(const char *text, enum health_on_failure *out, char *err, size_t cap);
const char *health_on_failure_name(enum health_on_failure f);

/* The spec's bounds (interval and timeout at least 1 s, retries 1..MAX): -1 with a message. */
int health_spec_check(const struct health_spec *s, char *err, size_t cap);
/* The spec's JSON text (malloc'd) or NULL when out of memory. */
char *health_spec_json(const struct health_spec *s);
/* Parses and checks health.json text; -1 with a message. Free with health_spec_free. */
int health_spec_parse(const char *text, size_t len, struct health_spec *s, char *err, size_t cap);
/* dirfd/health.json: 1 read, 0 absent (no check), -1 with a message. */
int health_spec_read(int dirfd, struct health_spec *s, char *err, size_t cap);
/* Written by rename; -1 with a message. */
int health_spec_write(int dirfd, const struct health_spec *s, char *err, size_t cap);
void health_spec_free(struct health_spec *s);

struct health_result {
    int exit_code;      /* the check's; -1 when it timed out or could not start */
    long long start_ms; /* unix time in ms */
    long long end_ms;
    char output[HEALTH_OUTPUT_MAX + 1]; /* cut to HEALTH_OUTPUT_MAX, NUL-terminated, valid UTF-8 */
};

struct health_state {
    char status[16];         /* starting, healthy, unhealthy */
    unsigned failing_streak; /* failures in a row */
    unsigned nlog;           /* results in log, oldest first */
    struct health_result log[HEALTH_LOG_KEEP];
};

/* Adds a result (the oldest goes when HEALTH_LOG_KEEP are kept). Its output (n bytes,
 * from the guest) is cut to HEALTH_OUTPUT_MAX and made printable UTF-8. */
void health_state_add(struct health_state *st, int exit_code, long long start_ms, long long end_ms, const char *output,
                      size_t n);
/* "health.state.json", written by rename. -1 with errno. */
int health_state_write(int dirfd, const struct health_state *st);
/* 1 read, -1 damaged (message in err). */
int health_state_parse(const char *text, size_t len, struct health_state *st, char *err, size_t cap);
/* 1 read, 0 absent, -1 damaged or unreadable (message in err). */
int health_state_read(int dirfd, struct health_state *st, char *err, size_t cap);

#endif
