/* `cocoon autostart`, and the same check before every other command: boxes whose main
 * process's policy is always or unless-stopped, running when the host went down, are
 * started again once per host boot (cocoon_autostart). One line per box on stderr. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char autostart_help[] =
    "usage: cocoon autostart [--if-rebooted]\n"
    "\n"
    "Starts the boxes whose main process has the restart policy always or unless-stopped and\n"
    "that were running when the host went down (a box a user stopped stays stopped). Every\n"
    "cocoon command does this by itself once after a reboot (it compares the host's boot id\n"
    "with the one recorded in COCOON_HOME); run it from a systemd unit to have services back\n"
    "without waiting for one (see the README). A box that fails to boot is tried 3 times.\n"
    "\n"
    "  --if-rebooted   do nothing unless the host rebooted since the last pass\n";

static void report(void *user, const char *id, const char *name, int ok, const char *message)
{
    const char *prefix = user;
    if (ok)
        fprintf(stderr, "cocoon: %sstarted box %s again (its restart policy)\n", prefix, name[0] ? name : id);
    else
        fprintf(stderr, "cocoon: %sbox %s did not start: %s\n", prefix, name[0] ? name : id, message);
}

void cli_autostart_if_rebooted(void)
{
    cocoon_runtime *rt;
    cocoon_error err;
    if (cocoon_runtime_open(NULL, &rt, &err) < 0)
        return; /* the command itself reports it */
    if (cocoon_autostart(rt, COCOON_AUTOSTART_IF_REBOOTED, report, "the host restarted: ", &err) < 0)
        fprintf(stderr, "cocoon: warning: starting boxes after the host's restart: %s\n", err.message);
    cocoon_runtime_close(rt);
}

int cmd_autostart(int argc, char **argv)
{
    int if_rebooted = 0;
    int rc = cli_simple_opts(argc, argv, "autostart", autostart_help, "if-rebooted", 0, &if_rebooted);
    if (rc >= 0)
        return rc;
    if (optind != argc)
        return cli_usage_error("autostart", "it takes no operands");
    cocoon_runtime *rt;
    if ((rc = cli_open_runtime(&rt)) != 0)
        return rc;
    cocoon_error err;
    rc = cocoon_autostart(rt, if_rebooted ? COCOON_AUTOSTART_IF_REBOOTED : 0, report, "", &err);
    cocoon_runtime_close(rt);
    return rc < 0 ? cli_fail(&err) : 0;
}
