/* `cocoon kill`: signals commands running in a box, whichever client started them
 * (another `cocoon exec`, the server, a program using the library). Exec ids are the
 * guest pids `cocoon kill --list BOX` shows; without --exec every running exec is
 * signalled. The default signal is KILL, as for `docker kill`. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"

static const char kill_help[] = "usage: cocoon kill [OPTIONS] BOX\n"
                                "\n"
                                "Sends a signal to commands running in BOX (to each one's whole process group).\n"
                                "\n"
                                "  --exec ID          only the exec with this id (see --list); default: all of them\n"
                                "  -s, --signal SIG   signal name or number: TERM, SIGINT, 9... (default KILL)\n"
                                "  --list             print the running execs (ID and command) instead\n";

/* "TERM", "SIGTERM", "term" or "15". */
static int parse_signal(const char *s, int *out)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (*s && !*end) {
        if (n < 1 || n > 64)
            return -1;
        *out = (int)n;
        return 0;
    }
    if (!strncasecmp(s, "SIG", 3))
        s += 3;
    for (int i = 1; i < 32; i++) {
        const char *name = sigabbrev_np(i);
        if (name && !strcasecmp(name, s)) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

enum { OPT_EXEC = 256, OPT_LIST, OPT_HELP };

struct kill_args {
    int list, signo;
    unsigned id; /* 0: every exec */
    const char *name;
};

static int kill_in(cocoon_box *box, int i, void *arg)
{
    const struct kill_args *k = arg;
    cocoon_error err;
    if (k->list) {
        cocoon_exec_info *execs;
        size_t n;
        if (cocoon_box_list_execs(box, &execs, &n, &err) < 0)
            return cli_fail(&err);
        printf("%-8s %s\n", "ID", "COMMAND");
        for (size_t j = 0; j < n; j++)
            printf("%-8d %s\n", execs[j].id, execs[j].command);
        free(execs);
        return 0;
    }
    size_t hit;
    if (cocoon_box_signal_exec(box, (int)k->id, k->signo, &hit, &err) < 0)
        return cli_fail(&err);
    if (hit == 0)
        cli_error("no command is running in box %s", k->name);
    return 0;
}

int cmd_kill(int argc, char **argv)
{
    static const struct option longs[] = {
        {"exec", required_argument, NULL, OPT_EXEC},
        {"signal", required_argument, NULL, 's'},
        {"list", no_argument, NULL, OPT_LIST},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct kill_args k = {.signo = SIGKILL};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "s:", longs, NULL)) != -1) {
        switch (c) {
        case OPT_HELP: fputs(kill_help, stdout); return 0;
        case OPT_LIST: k.list = 1; break;
        case OPT_EXEC:
            if (cli_parse_uint(optarg, "--exec", 2, 0x7fffffff, &k.id) < 0)
                return CLI_EXIT_RUNTIME;
            break;
        case 's':
            if (parse_signal(optarg, &k.signo) < 0) {
                cli_error("unknown signal \"%s\" (a name like TERM or a number 1-64)", optarg);
                return CLI_EXIT_RUNTIME;
            }
            break;
        default:
            cli_error("unknown or incomplete option %s (see `cocoon kill --help`)", argv[optind - 1]);
            return CLI_EXIT_RUNTIME;
        }
    }
    if (optind + 1 != argc) {
        cli_error(optind >= argc ? "which box? usage: cocoon kill [OPTIONS] BOX"
                                 : "one box at a time: usage: cocoon kill [OPTIONS] BOX");
        return CLI_EXIT_RUNTIME;
    }
    k.name = argv[optind];
    return cli_each_box(argv + optind, 1, kill_in, &k);
}
