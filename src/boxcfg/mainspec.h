/* A box's main process (DIR/main.json, written by libcocoon, read by cocoon-vmm) and
 * what became of it (DIR/main.state.json, written by cocoon-vmm, read by libcocoon):
 * the command, its restart policy and the back-off between restarts, in one place. */
#ifndef COCOON_BOXCFG_MAINSPEC_H
#define COCOON_BOXCFG_MAINSPEC_H

#include <stddef.h>
#include <stdint.h>

/* Both files are small; anything larger is not one of ours. */
#define MAIN_SPEC_FILE_MAX (1u << 20)
#define MAIN_STATE_FILE_MAX 8192u
#define MAIN_ARGV_MAX 4096u
#define MAIN_ENV_MAX 4096u
#define MAIN_RETRIES_MAX 1000000u
/* main.log: a line of output longer than this is logged in pieces of this size. */
#define MAIN_LOG_LINE_MAX 16384u

/* Back-off between restarts: 1 s doubling to at most 60 s; a run of at least 10 s
 * resets it (a service that ran for a while and crashed is retried at once-ish). */
#define MAIN_BACKOFF_FIRST_MS 1000u
#define MAIN_BACKOFF_MAX_MS 60000u
#define MAIN_BACKOFF_RESET_MS 10000u

enum main_restart { MAIN_RESTART_NO, MAIN_RESTART_ON_FAILURE, MAIN_RESTART_ALWAYS, MAIN_RESTART_UNLESS_STOPPED };

struct main_spec {
    char **argv; /* NULL-terminated, owned, at least one entry */
    char **env;  /* NULL-terminated, owned */
    char workdir[4096];
    char user[256];
    enum main_restart restart;
    unsigned max_retries; /* on-failure:N; 0: no limit */
    int tty;              /* "tty": it runs on a terminal (`run -d -t`) */
    int open_stdin;       /* "stdin": its stdin stays open for attachers (`run -d -i`) */
};

/* "no", "on-failure", "on-failure:N" (N 1..MAIN_RETRIES_MAX), "always", "unless-stopped".
 * -1 with a message in err. */
int main_restart_parse(const char *text, enum main_restart *out, unsigned *max_retries, char *err, size_t cap);
/* "on-failure:5", "always": what the policy is called */
void main_restart_format(enum main_restart r, unsigned max_retries, char *out, size_t cap);
/* The delay before restart number n (1 for the first). */
uint32_t main_backoff_ms(unsigned n);

/* The spec's JSON text (malloc'd) or NULL when out of memory. */
char *main_spec_json(const struct main_spec *s);
/* Parses and checks main.json text; -1 with a message in err. Free with main_spec_free. */
int main_spec_parse(const char *text, size_t len, struct main_spec *s, char *err, size_t cap);
/* dirfd/main.json: 1 read, 0 absent (no main process), -1 with a message. */
int main_spec_read(int dirfd, struct main_spec *s, char *err, size_t cap);
/* Writes dirfd/main.json atomically (replaced by rename). -1 with a message. */
int main_spec_write(int dirfd, const struct main_spec *s, char *err, size_t cap);
void main_spec_free(struct main_spec *s);

/* What became of the main process. */
struct main_state {
    char state[16];            /* starting, running, restarting, exited, stopped */
    int pid;                   /* in the guest, while running */
    int exit_code, signal;     /* of the last run (exit_code -1: unknown) */
    char error[256];           /* the last run could not start: why */
    long long started_at;      /* unix time of the last start, 0 never */
    long long finished_at;     /* unix time of the last end, 0 while running */
    long long next_restart_ms; /* unix time in ms of the next try while restarting, else 0 */
    unsigned restarts;         /* restarts so far in this boot */
    char command[256];         /* a detached exec's argv joined by spaces, clipped ("" for the main process) */
};
/* "main.state.json": written by rename, so a reader never sees half of it. */
int main_state_write(int dirfd, const struct main_state *st);
/* The same record under another name (a detached exec's execs/<pid>.json). */
int main_state_write_as(int dirfd, const char *name, const struct main_state *st);
/* 1 read, 0 absent, -1 damaged (message in err). */
int main_state_parse(const char *text, size_t len, struct main_state *st, char *err, size_t cap);
int main_state_read(int dirfd, struct main_state *st, char *err, size_t cap);
int main_state_read_as(int dirfd, const char *name, struct main_state *st, char *err, size_t cap);
/* A run whose monitor is gone (the box is not running) cannot still run: one the
 * record shows as not ended becomes "stopped", without pid or next try. */
void main_state_settle(struct main_state *st, int box_running);

/* Small files of ours in a box directory (main.json, health.json and their states):
 * read whole (NULL with errno: ENOENT absent, EFBIG above max), and replaced by rename
 * so that a reader sees the old file or the new one. */
char *boxfile_read_at(int dirfd, const char *name, size_t max, size_t *len);
int boxfile_write_at(int dirfd, const char *name, const char *text, size_t len);

#endif
