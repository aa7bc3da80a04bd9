/* `cocoon fork`: one capture of a running box (disk and memory), new running boxes
 * that go on from it (cocoon_box_fork, qemu backend). Prints the new ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char fork_help[] =
    "usage: cocoon fork [--name NAME] [-n COUNT] BOX\n"
    "\n"
    "Captures the running BOX once (its file system is synced and frozen, the VM paused,\n"
    "its disk snapshotted and its memory saved; then it goes on) and starts COUNT new\n"
    "boxes that continue from that moment: processes, open files and memory as they were.\n"
    "Prints their ids, one a line. Each child has its own id, name, hostname and disk\n"
    "layer; its clock is set and its random generator reseeded; the parent's open network\n"
    "connections and exec sessions are not carried over (its processes run on). The\n"
    "capture is a snapshot (`cocoon snapshot ls`), in use while children stand on it.\n"
    "Both backends: on the kvm backend children map the saved RAM and share its pages until\n"
    "they write them; on the qemu backend each child's QEMU reads the whole saved RAM.\n"
    "\n"
    "  --name NAME   the children's names: NAME-1 .. NAME-COUNT (NAME with one child)\n"
    "                (default: <snapshot>-fork-K)\n"
    "  -n COUNT      children to start (1-64)\n";

int cmd_fork(int argc, char **argv)
{
    cocoon_fork_options o;
    cocoon_fork_options_init(&o);
    int parsed =
        cli_name_count_opts(argc, argv, "fork", fork_help, "give one running box", COCOON_FORK_MAX, &o.name, &o.count);
    if (parsed >= 0)
        return parsed;
    unsigned count = o.count ? o.count : 1;
    char(*ids)[16];
    cocoon_runtime *rt;
    if (cli_open_with_ids(count, &ids, &rt) < 0)
        return CLI_EXIT_RUNTIME;
    cocoon_error err;
    cocoon_box *box = NULL;
    int rc = 0;
    if (cocoon_box_open(rt, argv[optind], &box, &err) < 0 || cocoon_box_fork(box, &o, ids, NULL, &err) < 0)
        rc = cli_fail(&err);
    if (rc == 0 || err.code == COCOON_E_VMM)
        for (unsigned i = 0; i < count; i++)
            if (ids[i][0])
                printf("%s\n", ids[i]);
    if (box)
        cocoon_box_close(box);
    cocoon_runtime_close(rt);
    free(ids);
    return rc;
}
