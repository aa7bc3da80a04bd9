/* Shared pieces of the `cocoon` command line: the subcommands, option parsing helpers,
 * running a command in a box with the docker-like stream and exit-code rules, and
 * forwarding of terminal signals to that command. */
#ifndef COCOON_CLI_H
#define COCOON_CLI_H

#include "cocoon.h"

/* Exit codes in docker's convention. */
#define CLI_EXIT_RUNTIME 125 /* cocoon itself failed */
#define CLI_EXIT_TIMEOUT 124

int cmd_run(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_restart(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_fs(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_images(int argc, char **argv);
int cmd_rmi(int argc, char **argv);
int cmd_login(int argc, char **argv);
int cmd_logout(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_mcp(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);
int cmd_script(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_clone(int argc, char **argv);
int cmd_fork(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_autostart(int argc, char **argv);
/* `cocoon exec --ls [--json] BOX` (execls.c), and the JSON of a detached exec list. */
int cli_exec_ls(int argc, char **argv);
struct json_t *cli_detached_json(const cocoon_detached_info *list, size_t n);
/* Starts boxes again once after a host reboot (autostart.c); quiet and cheap otherwise. */
void cli_autostart_if_rebooted(void);
int cmd_code(int argc, char **argv);
/* An image not here is pulled (with progress on a terminal); 0, or -1 after printing. */
int cli_pull_if_missing(cocoon_runtime *rt, const char *image);
/* Pulls ref (progress on a terminal unless quiet); announce: print digest and name on stdout. */
int cli_pull(cocoon_runtime *rt, const char *ref, int insecure, int quiet, int announce);

void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "cocoon: <message>" for a library error and returns CLI_EXIT_RUNTIME. */
int cli_fail(const cocoon_error *err);
/* Prints v indented on stdout and frees it (NULL: out of memory); 0 or CLI_EXIT_RUNTIME. */
struct json_t;
int cli_print_json(struct json_t *v);
int cli_open_runtime(cocoon_runtime **rt);
/* Opens the runtime, then each box named in names[0..n) in turn: runs fn on it (i: its
 * place in names) and closes it. Returns the exit code of the last failure (a box that
 * cannot be opened, or fn's nonzero return), or 0. */
typedef int (*cli_box_fn)(cocoon_box *box, int i, void *arg);
int cli_each_box(char **names, int n, cli_box_fn fn, void *arg);
/* "3 minutes ago": t (seconds since the epoch) in its largest whole unit. */
void cli_ago(long long t, char *out, size_t cap);
/* "TEXT (see `cocoon CMD --help`)" on stderr; returns CLI_EXIT_RUNTIME. */
int cli_usage_error(const char *cmd, const char *text);
/* Options of a command that takes --help and at most one flag (flag: its long name or
 * NULL; letter: its short form or 0). -1 once parsed (*set = the flag was given,
 * optind at the first operand); else the command's exit code: 0 after printing help,
 * or a usage error. */
int cli_simple_opts(int argc, char **argv, const char *cmd, const char *help, const char *flag, char letter, int *set);
/* Options of clone and fork: --name NAME, -n/--count COUNT (1..max), --help, and one
 * operand (what names it in the usage error). -1 once parsed (optind at the operand);
 * else the command's exit code. */
int cli_name_count_opts(int argc, char **argv, const char *cmd, const char *help, const char *what, unsigned max,
                        const char **name, unsigned *count);
/* Room for count box ids (what clone and fork print) and the runtime; -1 after saying
 * why (nothing left to free then). */
int cli_open_with_ids(unsigned count, char (**ids)[16], cocoon_runtime **rt);
/* "1.5GB", "200.0MB", "12B" (powers of 1000, as docker prints sizes). */
void cli_human_bytes(uint64_t b, char *out, size_t cap);
int cli_parse_memory(const char *s, unsigned *mib);
int cli_parse_uint(const char *s, const char *what, unsigned min, unsigned max, unsigned *out);
int cli_parse_seconds(const char *s, unsigned *ms);
/* "10G", "512M", "1.5g", "3221225472": bytes (K/M/G/T are powers of 1024). */
int cli_parse_size(const char *s, const char *what, uint64_t *bytes);

/* --health-* options of `run` and `create` (health.c). */
struct cli_health {
    cocoon_health_options o;
    int given; /* a --health-* option was given */
    int none;  /* --no-healthcheck */
};
/* One option by its long name without "--" ("health-interval"): 0, or -1 after printing why. */
int cli_health_option(struct cli_health *h, const char *name, const char *arg);
/* The box's health check as the options say; 0, or -1 after printing why. */
int cli_health_apply(cocoon_box *box, const struct cli_health *h);
/* The box's `healthcheck` of a config file (a normalized box, src/config); 0, or -1 after printing why. */
struct json_t;
int cli_health_from_spec(cocoon_box *box, struct json_t *spec_box);
int cmd_wait(int argc, char **argv);

/* What to run and how, shared by `run` and `exec`. */
struct cli_cmd {
    const char **argv;
    const char **env; /* NULL-terminated */
    size_t envc;
    const char *workdir, *user, *timeout_text;
    unsigned timeout_ms;
    int interactive, tty;
};
int cli_cmd_add_env(struct cli_cmd *c, const char *kv);
void cli_cmd_free(struct cli_cmd *c);
/* The exec options of a command (argv, env, workdir, user, timeout; not its terminal). */
void cli_exec_options(const struct cli_cmd *c, cocoon_exec_options *o);
/* Runs the command with our stdio, returns the exit code to use (0-255). */
int cli_exec_in_box(cocoon_box *box, const struct cli_cmd *c);

/* Signals: block SIGINT/SIGTERM/SIGHUP before any thread exists, then a helper thread
 * sigwaits them and forwards them to the current exec. */
void cli_signals_init(void);
void cli_signals_set_exec(cocoon_exec *ex);
void cli_signals_set_tty(int tty); /* the current exec has a terminal: forward SIGWINCH */
/* `cocoon attach`: signals go to the attachment (SIGWINCH resizes; the others detach,
 * or with sig_proxy are sent to the main process). NULL: back to execs. */
void cli_signals_set_attach(cocoon_attach *a, int sig_proxy);
/* Our terminal in raw mode until cli_tty_restore (every key goes to the box). */
void cli_tty_raw(void);
/* Puts the terminal back as it was before raw mode (safe to call any time). */
void cli_tty_restore(void);
/* The local terminal's size (stdin, else stdout); -1 when neither is a terminal. */
int cli_window_size(unsigned *rows, unsigned *cols);
int cli_signals_interrupted(void); /* the signal received while no exec ran, or 0 */

#endif
