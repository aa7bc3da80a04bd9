/* The `cocoon` command: dispatches subcommands and prints help and version. Every
 * subcommand is a thin layer over include/cocoon.h; stdout carries only command
 * output (or the data a subcommand was asked for), diagnostics go to stderr. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/proto.h"

#ifndef COCOON_GIT_REV
#define COCOON_GIT_REV "unknown"
#endif

static const char usage[] =
    "usage: cocoon COMMAND [OPTIONS]\n"
    "\n"
    "Run commands in microVM sandboxes (\"boxes\").\n"
    "\n"
    "commands:\n"
    "  run [OPTIONS] IMAGE [CMD...]    run a command (default: the image's) in a new box\n"
    "  run [OPTIONS] -- CMD [ARG...]   the same in the default image (--rm: remove it after)\n"
    "  run -d [--restart P] IMAGE|-- CMD  start a box serving CMD (its main process) and return\n"
    "  create [OPTIONS] [IMAGE]        create a box (prints its id)\n"
    "  start BOX...                    boot boxes\n"
    "  exec [OPTIONS] BOX -- CMD...    run a command in a running box (-d: leave it running)\n"
    "  attach [--detach-keys K] BOX    connect this terminal to a box's main process (-it boxes)\n"
    "  kill [--exec ID] [-s SIG] BOX   signal commands running in a box (--list: show them)\n"
    "  stop [--timeout S] BOX...       shut boxes down\n"
    "  restart [--timeout S] BOX...    stop and start boxes\n"
    "  rm [-f] BOX...                  remove boxes (-f: stop running ones first)\n"
    "  ls [-a] [--json]                list running boxes (-a: all)\n"
    "  wait [--condition C] BOX...     wait for boxes' main processes to end (prints the exit\n"
    "                                  code), or until they are healthy or running\n"
    "  inspect [--json] BOX...         show a box's configuration and state\n"
    "  logs [-f] [--tail N] [-t] BOX   show the output of a box's main process (--exec ID: of a\n"
    "                                  detached exec; --console: the console; --net: network log)\n"
    "  cp SRC DEST                     copy files: HOST_PATH BOX:PATH or BOX:PATH HOST_PATH\n"
    "  fs ls|stat|mkdir|rm|mv BOX PATH list, inspect, make, remove or rename files in a running box\n"
    "  stats [--json] BOX              show a running box's cpu, memory, disk, processes\n"
    "  code [OPTIONS] BOX CODE|-       run code in a stateful Python/JavaScript/bash context\n"
    "  code context ls|create|restart|rm  manage a box's code contexts\n"
    "  pull [--insecure] [-q] REF      fetch an image from a registry\n"
    "  login [-u USER] REGISTRY        store registry credentials (logout REGISTRY: forget them)\n"
    "  load FILE|DIR                   load a docker save tarball or an OCI layout\n"
    "  images [--json]                 list images\n"
    "  rmi IMAGE...                    remove images\n"
    "  image prune|inspect|ls|rm       manage images\n"
    "  snapshot create|ls|inspect|rm|restore|compact  disk snapshots (live for running boxes)\n"
    "  export BOX|SNAPSHOT FILE        write a stopped box or a snapshot to one archive\n"
    "  import [--name N] FILE          make a new box from an exported archive\n"
    "  clone [--name N] [-n COUNT] BOX|SNAPSHOT  new boxes on a copy-on-write copy of a disk\n"
    "  fork [--name N] [-n COUNT] BOX  new running boxes that go on from a running box's state\n"
    "  up [-f FILE] [--recreate] [NAME...]  create and start the boxes of cocoon.yaml\n"
    "  down [-f FILE] [--keep] [NAME...]    stop and remove them (--keep: only stop)\n"
    "  script BOX NAME [ARGS...]       run a script of the config file BOX was made from\n"
    "  config [-f FILE] [--json]       check a config file and print what it describes\n"
    "  autostart                       start the boxes that were serving before a host reboot\n"
    "  serve [--listen HOST:PORT]      serve the HTTP API (BoxLite's Box API v1 shape; see --help)\n"
    "  mcp                             serve MCP (Model Context Protocol) on stdin/stdout for an agent\n"
    "  doctor [--fix] [--json]         check this host and the state (--fix: clean up)\n"
    "  version                         print the version\n"
    "  help [COMMAND]                  show help\n"
    "\n"
    "BOX is an id, a unique id prefix or a name.\n"
    "`cocoon COMMAND --help` shows the options of a command.\n"
    "Environment: COCOON_HOME (state, default ~/.local/share/cocoon), COCOON_SHARE_DIR,\n"
    "COCOON_VMM, COCOON_QEMU, COCOON_KERNEL, COCOON_INITRD,\n"
    "COCOON_INSECURE_REGISTRIES (host[:port],... reachable over plain HTTP).\n";

static int cmd_version(int argc, char **argv)
{
    printf("cocoon %s (git %s, protocol %d)\n", cocoon_version(), COCOON_GIT_REV, PROTO_VERSION);
    return 0;
}

struct command {
    const char *name;
    int (*fn)(int, char **);
};

static const struct command commands[] = {
    {"run", cmd_run},         {"exec", cmd_exec},
    {"create", cmd_create},   {"start", cmd_start},
    {"stop", cmd_stop},       {"rm", cmd_rm},
    {"doctor", cmd_doctor},   {"version", cmd_version},
    {"restart", cmd_restart}, {"ls", cmd_ls},
    {"ps", cmd_ls},           {"inspect", cmd_inspect},
    {"pull", cmd_pull},       {"load", cmd_load},
    {"images", cmd_images},   {"rmi", cmd_rmi},
    {"image", cmd_image},     {"kill", cmd_kill},
    {"cp", cmd_cp},           {"stats", cmd_stats},
    {"logs", cmd_logs},       {"login", cmd_login},
    {"logout", cmd_logout},   {"serve", cmd_serve},
    {"config", cmd_config},   {"up", cmd_up},
    {"down", cmd_down},       {"script", cmd_script},
    {"fs", cmd_fs},           {"snapshot", cmd_snapshot},
    {"export", cmd_export},   {"import", cmd_import},
    {"mcp", cmd_mcp},         {"wait", cmd_wait},
    {"code", cmd_code},       {"clone", cmd_clone},
    {"fork", cmd_fork},       {NULL, NULL},
};
/* Commands of the services work (attach.c, autostart.c), apart from the table above. */
static const struct command service_commands[] = {
    {"attach", cmd_attach},
    {"autostart", cmd_autostart},
    {NULL, NULL},
};

static const struct command *find_command(const char *name)
{
    for (const struct command *c = commands; c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    for (const struct command *c = service_commands; c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--version") || !strcmp(name, "-V"))
        name = "version";
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        const struct command *c = argc > 2 && strcmp(name, "help") == 0 ? find_command(argv[2]) : NULL;
        if (c) {
            char *args[] = {argv[2], "--help", NULL};
            return c->fn(2, args);
        }
        fputs(usage, stdout);
        return 0;
    }
    /* After a host reboot, services come back before the first command runs (serve does
     * it itself; autostart is the explicit form). */
    if (strcmp(name, "version") && strcmp(name, "autostart") && strcmp(name, "serve"))
        cli_autostart_if_rebooted();
    const struct command *c = find_command(name);
    if (c)
        return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "cocoon: unknown command \"%s\" (see `cocoon help`)\n", name);
    return 2;
}
