/* `cocoon run`, `cocoon create` and `cocoon exec`: option parsing for a box and for a
 * command, and the run lifecycle: create, start, exec, then stop the box and keep it
 * (like docker), or remove it with --rm (ephemeral: removed whatever happened, even
 * when this process is killed); -d leaves it running instead. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

enum {
    OPT_IMAGE = 256,
    OPT_ROOTFS,
    OPT_CPUS,
    OPT_MEMORY,
    OPT_ENV,
    OPT_WORKDIR,
    OPT_USER,
    OPT_TIMEOUT,
    OPT_ACCEL,
    OPT_NAME,
    OPT_DISK,
    OPT_RM,
    OPT_HELP
};

static const struct option box_long[] = {
    {"image", required_argument, NULL, OPT_IMAGE},
    {"rootfs", required_argument, NULL, OPT_ROOTFS},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"accel", required_argument, NULL, OPT_ACCEL},
    {"name", required_argument, NULL, OPT_NAME},
    {"disk", required_argument, NULL, OPT_DISK},
    {"rm", no_argument, NULL, OPT_RM},
    {"detach", no_argument, NULL, 'd'},
    {"env", required_argument, NULL, OPT_ENV},
    {"workdir", required_argument, NULL, OPT_WORKDIR},
    {"user", required_argument, NULL, OPT_USER},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"interactive", no_argument, NULL, 'i'},
    {"tty", no_argument, NULL, 't'},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char run_help[] = "usage: cocoon run [OPTIONS] [IMAGE --] [--] [CMD [ARG...]]\n"
                               "\n"
                               "Runs CMD in a new box, then stops the box and keeps it (see `cocoon ls -a`), or\n"
                               "removes it with --rm. Exits with CMD's exit code (128+N when killed by signal N,\n"
                               "124 on --timeout, 125 when cocoon itself fails). Without CMD the image's default\n"
                               "command runs (/bin/sh).\n"
                               "\n"
                               "  --rm              remove the box afterwards (also when cocoon is killed)\n"
                               "  -d, --detach      start the box, print its id and leave it running (no CMD)\n"
                               "  --image NAME      image to boot (default: default); also `run IMAGE -- CMD`\n"
                               "  --rootfs DIR      use a host directory as the root file system instead\n"
                               "  --cpus N          virtual CPUs (default 1)\n"
                               "  --memory SIZE     memory: 512M, 1G or a number of MiB (default 512M)\n"
                               "  --accel A         auto, kvm or tcg (default auto)\n"
                               "  --name NAME       name the box\n"
                               "  --disk SIZE       virtual disk size, e.g. 10G (default and minimum: the image's)\n"
                               "  --env K=V         set an environment variable (repeatable)\n"
                               "  --workdir DIR     working directory of CMD (default /)\n"
                               "  --user U          user: name, uid or uid:gid (default root)\n"
                               "  --timeout S       kill CMD after S seconds\n"
                               "  -i, --interactive forward stdin even when it is a terminal\n"
                               "  -t, --tty         give CMD a terminal\n";

static const char create_help[] = "usage: cocoon create [OPTIONS] [IMAGE]\n"
                                  "\n"
                                  "Creates a persistent box and prints its id. Start it with `cocoon start`; what\n"
                                  "is written to its disk stays until `cocoon rm`.\n"
                                  "\n"
                                  "  --image NAME, --rootfs DIR, --cpus N, --memory SIZE, --accel A, --name NAME,\n"
                                  "  --disk SIZE (as for `cocoon run`)\n";

static const char exec_help[] = "usage: cocoon exec [OPTIONS] BOX [--] CMD [ARG...]\n"
                                "\n"
                                "Runs CMD in a running box and exits with its exit code.\n"
                                "\n"
                                "  --env K=V, --workdir DIR, --user U, --timeout S, -i, -t  (as for `cocoon run`)\n";

enum kind { KIND_RUN, KIND_CREATE, KIND_EXEC };

struct parsed {
    cocoon_box_options box;
    struct cli_cmd cmd;
    int rm, detach;
    int first_arg; /* index of the first operand */
};

static int is_box_opt(int c)
{
    return c == OPT_IMAGE || c == OPT_ROOTFS || c == OPT_CPUS || c == OPT_MEMORY || c == OPT_ACCEL || c == OPT_NAME ||
           c == OPT_DISK;
}

static int is_run_only(int c) { return c == OPT_RM || c == 'd'; }

/* 0 ok, 1 help printed, -1 bad usage (message printed). */
static int parse(enum kind k, int argc, char **argv, struct parsed *p)
{
    const char *help = k == KIND_RUN ? run_help : k == KIND_CREATE ? create_help : exec_help;
    memset(p, 0, sizeof(*p));
    optind = 1;
    opterr = 0;
    int c;
    /* "+": stop at the first operand, so `cocoon run ls -l` passes -l to ls. */
    while ((c = getopt_long(argc, argv, "+itd", box_long, NULL)) != -1) {
        if (c == OPT_HELP) {
            fputs(help, stdout);
            return 1;
        }
        if (c == '?') {
            if (optopt)
                cli_error("unknown option -%c (see `cocoon %s --help`)", optopt, argv[0]);
            else
                cli_error("unknown or incomplete option %s (see `cocoon %s --help`)", argv[optind - 1], argv[0]);
            return -1;
        }
        if (k != KIND_RUN && is_run_only(c)) {
            cli_error("%s applies to `cocoon run` only", argv[optind - 1]);
            return -1;
        }
        if (k == KIND_EXEC && is_box_opt(c)) {
            cli_error("%s applies to a new box, not to `cocoon exec`", argv[optind - 1]);
            return -1;
        }
        if (k == KIND_CREATE && !is_box_opt(c)) {
            cli_error("%s applies to a command, not to `cocoon create`", argv[optind - 1]);
            return -1;
        }
        switch (c) {
        case OPT_IMAGE: p->box.image = optarg; break;
        case OPT_ROOTFS: p->box.rootfs = optarg; break;
        case OPT_NAME: p->box.name = optarg; break;
        case OPT_RM: p->rm = 1; break;
        case 'd': p->detach = 1; break;
        case OPT_DISK:
            if (cli_parse_size(optarg, "--disk", &p->box.disk_size) < 0)
                return -1;
            break;
        case OPT_ACCEL: p->box.accel = optarg; break;
        case OPT_CPUS:
            if (cli_parse_uint(optarg, "--cpus", 1, 64, &p->box.cpus) < 0)
                return -1;
            break;
        case OPT_MEMORY:
            if (cli_parse_memory(optarg, &p->box.memory_mib) < 0)
                return -1;
            break;
        case OPT_ENV:
            if (cli_cmd_add_env(&p->cmd, optarg) < 0)
                return -1;
            break;
        case OPT_WORKDIR: p->cmd.workdir = optarg; break;
        case OPT_USER: p->cmd.user = optarg; break;
        case OPT_TIMEOUT:
            if (cli_parse_seconds(optarg, &p->cmd.timeout_ms) < 0)
                return -1;
            p->cmd.timeout_text = optarg;
            break;
        case 'i': p->cmd.interactive = 1; break;
        case 't': p->cmd.tty = 1; break;
        default: return -1;
        }
    }
    if (p->box.accel && strcmp(p->box.accel, "auto") && strcmp(p->box.accel, "kvm") && strcmp(p->box.accel, "tcg")) {
        cli_error("invalid --accel \"%s\": use auto, kvm or tcg", p->box.accel);
        return -1;
    }
    if (p->box.image && p->box.rootfs) {
        cli_error("--image and --rootfs cannot be used together");
        return -1;
    }
    p->first_arg = optind;
    return 0;
}

static const char *default_cmd[] = {"/bin/sh", NULL};

static void set_command(struct parsed *p, int argc, char **argv, int at)
{
    if (at < argc && !strcmp(argv[at], "--"))
        at++;
    p->cmd.argv = at < argc ? (const char **)argv + at : default_cmd;
}

/* After the command: an ephemeral box (--rm) is stopped and removed, any other is
 * stopped and kept. */
static int finish(cocoon_box *box, cocoon_runtime *rt, int rm, int code)
{
    cocoon_error err;
    if (box) {
        int rc = cocoon_box_stop(box, 5000, &err);
        if (rc == 0 && rm)
            rc = cocoon_box_remove(box, 1, &err);
        if (rc < 0) {
            cli_fail(&err);
            if (code == 0)
                code = CLI_EXIT_RUNTIME;
        }
        cocoon_box_close(box);
    }
    cocoon_runtime_close(rt);
    return code;
}

/* `run IMAGE -- CMD`: an operand followed by "--" names the image. */
static int take_image(struct parsed *p, int argc, char **argv)
{
    int at = p->first_arg;
    if (at > 0 && !strcmp(argv[at - 1], "--"))
        return 0; /* getopt ate a leading "--": all the rest is the command */
    if (at + 1 < argc && !strcmp(argv[at + 1], "--")) {
        if (p->box.image || p->box.rootfs) {
            cli_error("image \"%s\" given twice (operand and --image/--rootfs)", argv[at]);
            return -1;
        }
        p->box.image = argv[at];
        p->first_arg = at + 1;
    }
    return 0;
}

int cmd_run(int argc, char **argv)
{
    struct parsed p;
    int rc = parse(KIND_RUN, argc, argv, &p);
    if (rc == 0 && take_image(&p, argc, argv) < 0)
        rc = -1;
    if (rc != 0) {
        cli_cmd_free(&p.cmd);
        return rc > 0 ? 0 : CLI_EXIT_RUNTIME;
    }
    set_command(&p, argc, argv, p.first_arg);
    if (p.detach && p.cmd.argv != default_cmd) {
        cli_error("-d starts a box without running a command in it; use `cocoon exec BOX -- CMD` afterwards");
        cli_cmd_free(&p.cmd);
        return CLI_EXIT_RUNTIME;
    }
    p.box.ephemeral = p.rm;
    cli_signals_init();
    cocoon_runtime *rt;
    if ((rc = cli_open_runtime(&rt)) != 0) {
        cli_cmd_free(&p.cmd);
        return rc;
    }
    cocoon_error err;
    cocoon_box *box = NULL;
    int code;
    /* Attached: if this process dies the monitor stops the box (and removes it with --rm). */
    unsigned flags = p.detach ? COCOON_START_DETACHED : COCOON_START_ATTACHED;
    if (cocoon_box_create(rt, &p.box, &box, &err) < 0) {
        code = cli_fail(&err);
    } else if (cli_signals_interrupted()) {
        code = 128 + cli_signals_interrupted();
        p.rm = 1; /* never started: nothing worth keeping */
    } else if (cocoon_box_start_flags(box, flags, &err) < 0) {
        code = cli_fail(&err);
        p.rm = 1; /* a box that never booted is removed, not kept */
    } else if (p.detach) {
        printf("%s\n", cocoon_box_id(box));
        cocoon_box_close(box);
        cocoon_runtime_close(rt);
        cli_cmd_free(&p.cmd);
        return 0;
    } else if (cli_signals_interrupted()) {
        code = 128 + cli_signals_interrupted();
    } else {
        code = cli_exec_in_box(box, &p.cmd);
    }
    cli_cmd_free(&p.cmd);
    return finish(box, rt, p.rm, code);
}

int cmd_create(int argc, char **argv)
{
    struct parsed p;
    int rc = parse(KIND_CREATE, argc, argv, &p);
    cli_cmd_free(&p.cmd);
    if (rc != 0)
        return rc > 0 ? 0 : CLI_EXIT_RUNTIME;
    int at = p.first_arg;
    if (at < argc) {
        if (p.box.image || p.box.rootfs) {
            cli_error("image \"%s\" given twice (operand and --image/--rootfs)", argv[at]);
            return CLI_EXIT_RUNTIME;
        }
        p.box.image = argv[at++];
    }
    if (at < argc) {
        cli_error("unexpected argument \"%s\" (see `cocoon create --help`)", argv[at]);
        return CLI_EXIT_RUNTIME;
    }
    cocoon_runtime *rt;
    if ((rc = cli_open_runtime(&rt)) != 0)
        return rc;
    cocoon_error err;
    cocoon_box *box;
    if (cocoon_box_create(rt, &p.box, &box, &err) < 0) {
        cocoon_runtime_close(rt);
        return cli_fail(&err);
    }
    printf("%s\n", cocoon_box_id(box));
    cocoon_box_close(box);
    cocoon_runtime_close(rt);
    return 0;
}

int cmd_exec(int argc, char **argv)
{
    struct parsed p;
    int rc = parse(KIND_EXEC, argc, argv, &p);
    if (rc != 0) {
        cli_cmd_free(&p.cmd);
        return rc > 0 ? 0 : CLI_EXIT_RUNTIME;
    }
    int at = p.first_arg;
    if (at < argc && !strcmp(argv[at], "--"))
        at++;
    if (at >= argc) {
        cli_error("which box? usage: cocoon exec [OPTIONS] BOX [--] CMD [ARG...]");
        cli_cmd_free(&p.cmd);
        return CLI_EXIT_RUNTIME;
    }
    const char *name = argv[at++];
    if (at >= argc || (!strcmp(argv[at], "--") && at + 1 >= argc)) {
        cli_error("no command given: usage: cocoon exec [OPTIONS] BOX [--] CMD [ARG...]");
        cli_cmd_free(&p.cmd);
        return CLI_EXIT_RUNTIME;
    }
    set_command(&p, argc, argv, at);
    cli_signals_init();
    cocoon_runtime *rt;
    if ((rc = cli_open_runtime(&rt)) != 0) {
        cli_cmd_free(&p.cmd);
        return rc;
    }
    cocoon_error err;
    cocoon_box *box;
    int code;
    if (cocoon_box_open(rt, name, &box, &err) < 0) {
        code = cli_fail(&err);
    } else {
        code = cli_exec_in_box(box, &p.cmd);
        cocoon_box_close(box);
    }
    cli_cmd_free(&p.cmd);
    cocoon_runtime_close(rt);
    return code;
}
