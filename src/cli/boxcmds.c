/* `cocoon start`, `stop`, `restart` and `rm`: box lifecycle commands over the library, each
 * taking box ids or names. They print nothing on success except what docker prints
 * (the ids), so scripts can chain them. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static int do_start(cocoon_box *box, int i, void *arg)
{
    cocoon_error err;
    if (cocoon_box_start(box, &err) < 0)
        return cli_fail(&err);
    printf("%s\n", cocoon_box_id(box));
    return 0;
}

int cmd_start(int argc, char **argv)
{
    int rc = cli_simple_opts(argc, argv, "start",
                             "usage: cocoon start BOX...\n\nBoots boxes and waits until they are ready; prints "
                             "their ids.\n",
                             NULL, 0, NULL);
    if (rc >= 0)
        return rc;
    if (optind >= argc)
        return cli_usage_error("start", "which box?");
    return cli_each_box(argv + optind, argc - optind, do_start, NULL);
}

struct stop_args {
    unsigned timeout_ms;
    int restart;
};

static int do_stop(cocoon_box *box, int i, void *arg)
{
    const struct stop_args *a = arg;
    cocoon_error err;
    if ((a->restart ? cocoon_box_restart : cocoon_box_stop)(box, a->timeout_ms, &err) < 0)
        return cli_fail(&err);
    printf("%s\n", cocoon_box_id(box));
    return 0;
}

static int stop_like(int argc, char **argv, int restart)
{
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"timeout", required_argument, NULL, 'T'},
                                       {"time", required_argument, NULL, 'T'},
                                       {NULL, 0, NULL, 0}};
    const char *cmd = restart ? "restart" : "stop";
    struct stop_args a = {.timeout_ms = 10000, .restart = restart};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "ht:", lo, NULL)) != -1) {
        if (c == 'h') {
            printf("usage: cocoon %s [--timeout S] BOX...\n\n%s cleanly; after S seconds (default 10) a box "
                   "that has not shut down is killed.\n",
                   cmd, restart ? "Stops boxes and starts them again" : "Shuts boxes down");
            return 0;
        }
        if (c == 'T' || c == 't') {
            if (cli_parse_seconds(optarg, &a.timeout_ms) < 0)
                return CLI_EXIT_RUNTIME;
            continue;
        }
        return cli_usage_error(cmd, "unknown option");
    }
    if (optind >= argc)
        return cli_usage_error(cmd, "which box?");
    return cli_each_box(argv + optind, argc - optind, do_stop, &a);
}

int cmd_stop(int argc, char **argv) { return stop_like(argc, argv, 0); }

int cmd_restart(int argc, char **argv) { return stop_like(argc, argv, 1); }

static int do_rm(cocoon_box *box, int i, void *arg)
{
    cocoon_error err;
    char id[16], problem[512];
    snprintf(id, sizeof(id), "%s", cocoon_box_id(box));
    snprintf(problem, sizeof(problem), "%s", cocoon_box_problem(box));
    if (cocoon_box_remove(box, *(int *)arg, &err) < 0)
        return cli_fail(&err);
    if (problem[0])
        fprintf(stderr, "cocoon: removed damaged box %s (%s): its directory and state row are gone\n", id, problem);
    printf("%s\n", id);
    return 0;
}

int cmd_rm(int argc, char **argv)
{
    int force;
    int rc = cli_simple_opts(argc, argv, "rm",
                             "usage: cocoon rm [-f] BOX...\n\nRemoves boxes and their disks. -f, --force: stop "
                             "running boxes first.\n",
                             "force", 'f', &force);
    if (rc >= 0)
        return rc;
    if (optind >= argc)
        return cli_usage_error("rm", "which box?");
    return cli_each_box(argv + optind, argc - optind, do_rm, &force);
}
