/* `cocoon login` and `cocoon logout`: registry credentials for pulls. The password
 * comes from stdin (--password-stdin) or, on a terminal, from a prompt without echo;
 * never from the command line, where other users could read it in ps. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

static const char login_usage[] = "usage: cocoon login [-u USER] [--password-stdin] REGISTRY\n\n"
                                  "Stores credentials for REGISTRY (e.g. ghcr.io, localhost:5000, docker.io) in\n"
                                  "$COCOON_HOME/auth.json (mode 0600); pulls from it then authenticate.\n\n"
                                  "  -u, --username USER   the user name (asked for on a terminal if missing)\n"
                                  "  --password-stdin      read the password from standard input\n";

/* Reads one line into buf without its newline; echo is off when asked and on a tty. */
static int read_line(const char *prompt, int hide, char *buf, size_t cap)
{
    int tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (prompt && tty)
        fputs(prompt, stderr);
    if (hide && tty && tcgetattr(STDIN_FILENO, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    } else {
        hide = 0;
    }
    int ok = fgets(buf, (int)cap, stdin) != NULL;
    if (hide) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!ok)
        return -1;
    buf[strcspn(buf, "\r\n")] = 0;
    return 0;
}

int cmd_login(int argc, char **argv)
{
    static const struct option opts[] = {{"username", required_argument, NULL, 'u'},
                                         {"password-stdin", no_argument, NULL, 'P'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    char user[256] = "", password[1024] = "";
    int from_stdin = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+u:h", opts, NULL)) != -1) {
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
    if (!user[0] && (from_stdin || read_line("Username: ", 0, user, sizeof(user)) < 0 || !user[0])) {
        fputs("cocoon: a user name is needed (-u USER)\n", stderr);
        return 2;
    }
    if (read_line(from_stdin ? NULL : "Password: ", 1, password, sizeof(password)) < 0 || !password[0]) {
        fputs("cocoon: no password given\n", stderr);
        return 2;
    }
    cocoon_runtime *rt;
    if (cli_open_runtime(&rt) < 0)
        return CLI_EXIT_RUNTIME;
    cocoon_error err;
    int rc = cocoon_registry_login(rt, registry, user, password, &err);
    memset(password, 0, sizeof(password));
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
    if (cli_open_runtime(&rt) < 0)
        return CLI_EXIT_RUNTIME;
    cocoon_error err;
    int rc = cocoon_registry_logout(rt, argv[1], &err);
    cocoon_runtime_close(rt);
    if (rc < 0)
        return cli_fail(&err);
    printf("Removed login for %s\n", argv[1]);
    return 0;
}
