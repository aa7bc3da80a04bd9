/* `cocoon clone`: new boxes from a stopped box or a snapshot, each a copy-on-write
 * layer over the snapshot's read-only layer (cocoon_box_clone). Prints the new ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char clone_help[] = "usage: cocoon clone [--name NAME] [-n COUNT] BOX|SNAPSHOT\n"
                                 "\n"
                                 "Makes new, stopped boxes whose disks start as BOX's (which must be stopped) or\n"
                                 "SNAPSHOT's, and prints their ids, one a line. The disks are copy-on-write: a clone\n"
                                 "costs a few hundred KiB until it writes, and no clone sees another's writes.\n"
                                 "Cloning a box freezes its disk into a snapshot first (or reuses the one it stands\n"
                                 "on when nothing was written since); that snapshot is in use, and cannot be\n"
                                 "removed, while clones stand on it. Each clone gets a new id, name and hostname,\n"
                                 "and the source's settings, health check and main process.\n"
                                 "\n"
                                 "  --name NAME   the clone's name; with -n, NAME-1 .. NAME-COUNT\n"
                                 "                (default: SOURCE-clone-K, the smallest free K)\n"
                                 "  -n COUNT      make COUNT clones at once (1-256); all or none are made\n";

int cmd_clone(int argc, char **argv)
{
    cocoon_clone_options o;
    cocoon_clone_options_init(&o);
    int parsed = cli_name_count_opts(argc, argv, "clone", clone_help, "give one box or snapshot", COCOON_CLONE_MAX,
                                     &o.name, &o.count);
    if (parsed >= 0)
        return parsed;
    unsigned count = o.count ? o.count : 1;
    char(*ids)[16];
    cocoon_runtime *rt;
    if (cli_open_with_ids(count, &ids, &rt) < 0)
        return CLI_EXIT_RUNTIME;
    cocoon_error err;
    int rc = 0;
    if (cocoon_box_clone(rt, argv[optind], &o, ids, NULL, &err) < 0)
        rc = cli_fail(&err);
    else
        for (unsigned i = 0; i < count; i++)
            printf("%s\n", ids[i]);
    cocoon_runtime_close(rt);
    free(ids);
    return rc;
}
