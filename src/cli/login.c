/* `cocoon login` and `cocoon logout`: registry credentials for pulls. The password
 * comes from stdin (--password-stdin) or, on a terminal, from a prompt without echo;
 * never from the command line, where other users could read it in ps. Up to 64 KiB
 * (tokens are long); the terminal gets its echo back even when Ctrl-C ends the prompt. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

static const char login_usage[] = "usage: cocoon login [-u USER] [--password-stdin] REGISTRY\n\n"
                                  "Stores credentials for REGISTRY (e.g. ghcr.io, localhost:5000, docker.io) in\n"
                                  "$COCOON_HOME/auth.json (mode 0600); pulls from it then authenticate.\n\n"
                                  "  -u, --username USER   the user name (asked for on a terminal if missing)\n"
                                  "  --password-stdin      read the password from standard input\n";

/* Longest password (or token) accepted: what the library stores (its "user:password"
 * limit); a longer one is an error, never silently cut. */
#define PASSWORD_MAX (64u << 10)

/* The terminal as it was before echo went off, put back by a signal too. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_quiet;

static void restore_tty(void)
{
    if (tty_quiet) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
        tty_quiet = 0;
    }
}

static void on_signal(int sig)
{
    restore_tty(); /* tcsetattr is async-signal-safe */
    ssize_t w = write(STDERR_FILENO, "\n", 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Reads one line (without its newline) of at most max bytes into a malloc'd string,
 * with echo off when asked and on a terminal. NULL at EOF; *too_long set (and NULL)
 * when the line is longer than max. */
static char *read_line(const char *prompt, int hide, size_t max, int *too_long)
{
    *too_long = 0;
    int tty = isatty(STDIN_FILENO);
    if (prompt && tty)
        fputs(prompt, stderr);
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
    struct sigaction sa, old[5];
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    if (hide && tty && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
        for (int i = 0; i < 5; i++)
            sigaction(sigs[i], &sa, &old[i]);
        struct termios quiet = saved_tty;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tty_quiet = 1;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    } else {
        hide = 0;
    }
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    int c = EOF;
    while (buf && (c = getchar()) != EOF && c != '\n') {
        if (len == max) {
            *too_long = 1;
            continue; /* read the rest of the line, keep none of it */
        }
        if (len + 1 == cap) {
            char *g = realloc(buf, cap * 2);
            if (!g)
                break;
            buf = g;
            cap *= 2;
        }
        buf[len++] = (char)c;
    }
    if (hide) {
        restore_tty();
        for (int i = 0; i < 5; i++)
            sigaction(sigs[i], &old[i], NULL);
        fputc('\n', stderr);
    }
    if (!buf || *too_long || (c == EOF && len == 0)) {
        if (buf)
            explicit_bzero(buf, cap);
        free(buf);
        return NULL;
    }
    if (len && buf[len - 1] == '\r')
        len--;
    buf[len] = 0;
    return buf;
}

int cmd_login(int argc, char **argv)
{
    static const struct option opts[] = {{"username", required_argument, NULL, 'u'},
                                         {"password-stdin", no_argument, NULL, 'P'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    char user[256] = "";
    int from_stdin = 0, c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "u:h", opts, NULL)) != -1) {
        if (c == 'u')
            snprintf(user, sizeof(user), "%s", optarg);
        else if (c == 'P')
            from_stdin = 1;
        else {
            fputs(login_usage, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1) {
        fputs(login_usage, stderr);
        return 2;
    }
    const char *registry = argv[optind];
    if (!from_stdin && !isatty(STDIN_FILENO)) {
        fputs("cocoon: no terminal to ask for the password: use --password-stdin\n", stderr);
        return 2;
    }
    int too_long = 0;
    if (!user[0] && !from_stdin) {
        char *typed = read_line("Username: ", 0, sizeof(user) - 1, &too_long);
        if (typed)
            snprintf(user, sizeof(user), "%s", typed);
        free(typed);
    }
    if (!user[0]) {
        fputs(too_long ? "cocoon: the user name is longer than 255 bytes\n"
                       : "cocoon: a user name is needed (-u USER)\n",
              stderr);
        return 2;
    }
    char *password = read_line(from_stdin ? NULL : "Password: ", 1, PASSWORD_MAX, &too_long);
    if (too_long) {
        fprintf(stderr, "cocoon: the password is longer than %u bytes; nothing was stored\n", PASSWORD_MAX);
        return 2;
    }
    if (!password || !password[0]) {
        free(password);
        fputs("cocoon: no password given\n", stderr);
        return 2;
    }
    cocoon_runtime *rt;
    if (cli_open_runtime(&rt) != 0) {
        explicit_bzero(password, strlen(password));
        free(password);
        return CLI_EXIT_RUNTIME;
    }
    cocoon_error err;
    int rc = cocoon_registry_login(rt, registry, user, password, &err);
    explicit_bzero(password, strlen(password));
    free(password);
    cocoon_runtime_close(rt);
    if (rc < 0)
        return cli_fail(&err);
    printf("Login stored for %s\n", registry);
    return 0;
}

int cmd_logout(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fputs("usage: cocoon logout REGISTRY\n", argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
        return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    cocoon_runtime *rt;
    if (cli_open_runtime(&rt) != 0)
        return CLI_EXIT_RUNTIME;
    cocoon_error err;
    int rc = cocoon_registry_logout(rt, argv[1], &err);
    cocoon_runtime_close(rt);
    if (rc < 0)
        return cli_fail(&err);
    printf("Removed login for %s\n", argv[1]);
    return 0;
}
