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
    OPT_HELP,
    OPT_ENTRYPOINT,
    OPT_VMM,
    OPT_NET,
    OPT_ALLOW,
    OPT_DENY
};

static const struct option box_long[] = {
    {"image", required_argument, NULL, OPT_IMAGE},
    {"rootfs", required_argument, NULL, OPT_ROOTFS},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"memory", required_argument, NULL, OPT_MEMORY},
    {"accel", required_argument, NULL, OPT_ACCEL},
    {"vmm", required_argument, NULL, OPT_VMM},
    {"net", required_argument, NULL, OPT_NET},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"deny", required_argument, NULL, OPT_DENY},
    {"publish", required_argument, NULL, 'p'},
    {"name", required_argument, NULL, OPT_NAME},
    {"disk", required_argument, NULL, OPT_DISK},
    {"rm", no_argument, NULL, OPT_RM},
    {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
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

static const char run_help[] = "usage: cocoon run [OPTIONS] IMAGE [--] [CMD [ARG...]]\n"
                               "       cocoon run [OPTIONS] -- CMD [ARG...]     (the default image)\n"
                               "\n"
                               "Runs CMD in a new box, then stops the box and keeps it (see `cocoon ls -a`), or\n"
                               "removes it with --rm. Exits with CMD's exit code (128+N when killed by signal N,\n"
                               "124 on --timeout, 125 when cocoon itself fails). Without CMD the image's default\n"
                               "command runs (its Entrypoint and Cmd; /bin/sh when it has none). An image not\n"
                               "here is pulled first. The image's Env, WorkingDir and User apply unless --env,\n"
                               "--workdir or --user say otherwise.\n"
                               "\n"
                               "  --rm              remove the box afterwards (also when cocoon is killed)\n"
                               "  -d, --detach      start the box, print its id and leave it running (no CMD)\n"
                               "  --image NAME      image to boot (default: default); the same as the IMAGE operand\n"
                               "  --entrypoint CMD  run CMD (with the ARGs) instead of the image's entrypoint\n"
                               "  --rootfs DIR      use a host directory as the root file system instead\n"
                               "  --cpus N          virtual CPUs (default 1)\n"
                               "  --memory SIZE     memory: 512M, 1G or a number of MiB (default 512M)\n"
                               "  --accel A         auto, kvm or tcg (default auto)\n"
                               "  --vmm V           auto, kvm (our own VMM) or qemu (default auto: kvm where\n"
                               "                    /dev/kvm has hardware virtualization, else qemu)\n"
                               "  --name NAME       name the box\n"
                               "  --disk SIZE       virtual disk size, e.g. 10G (default and minimum: the image's)\n"
                               "  --net MODE        public (default: public internet only, through cocoon's\n"
                               "                    filtering stack), none (no network device) or open\n"
                               "                    (private ranges too: unsafe)\n"
                               "  --allow RULE      allow DOMAIN, *.DOMAIN, CIDR[:PORT][/tcp|/udp] or host:PORT\n"
                               "  --deny RULE       deny the same; rules are checked in order, first match wins\n"
                               "  -p, --publish [IP:]HOST_PORT:GUEST_PORT[/udp]  forward a host port into the box\n"
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
                                  "  --disk SIZE, --vmm V, --net MODE, --allow RULE, --deny RULE, -p PORTS\n"
                                  "  (as for `cocoon run`)\n";

static const char exec_help[] = "usage: cocoon exec [OPTIONS] BOX [--] CMD [ARG...]\n"
                                "\n"
                                "Runs CMD in a running box and exits with its exit code (128+N when killed by\n"
                                "signal N, 124 on --timeout, 125 when cocoon itself fails). Many execs may run\n"
                                "at once. stdin is forwarded when it is not a terminal, or with -i.\n"
                                "\n"
                                "  --env K=V, --workdir DIR, --user U, --timeout S  (as for `cocoon run`)\n"
                                "  -i, --interactive forward stdin even when it is a terminal\n"
                                "  -t, --tty         give CMD a terminal; with -i our terminal is raw meanwhile\n"
                                "                    (keys, Ctrl-C included, go to CMD; window size follows)\n"
                                "Ctrl-C, SIGTERM and SIGHUP sent to cocoon are forwarded to CMD's process group;\n"
                                "a second Ctrl-C within 2 s kills it. See also `cocoon kill`.\n";

enum kind { KIND_RUN, KIND_CREATE, KIND_EXEC };

struct parsed {
    cocoon_box_options box;
    struct cli_cmd cmd;
    int rm, detach;
    int first_arg; /* index of the first operand */
    const char *entrypoint;
    int has_cmd;              /* a command was given (else the image's default) */
    cocoon_image_config icfg; /* of the box's image; owns strings cmd points to */
    const char **argv_buf;    /* the command built from the image config */
};

static int is_box_opt(int c)
{
    return c == OPT_IMAGE || c == OPT_ROOTFS || c == OPT_CPUS || c == OPT_MEMORY || c == OPT_ACCEL || c == OPT_NAME ||
           c == OPT_DISK || c == OPT_VMM || c == OPT_NET || c == OPT_ALLOW || c == OPT_DENY || c == 'p';
}

static int is_run_only(int c) { return c == OPT_RM || c == 'd' || c == OPT_ENTRYPOINT; }

/* 0 ok, 1 help printed, -1 bad usage (message printed). */
static int parse(enum kind k, int argc, char **argv, struct parsed *p)
{
    const char *help = k == KIND_RUN ? run_help : k == KIND_CREATE ? create_help : exec_help;
    memset(p, 0, sizeof(*p));
    optind = 1;
    opterr = 0;
    int c;
    /* "+": stop at the first operand, so `cocoon run ls -l` passes -l to ls. */
    /* rules keep their command-line order across --allow and --deny */
    static char rule_text[64][272];
    static const char *rules[65], *ports[33];
    size_t nrules = 0, nports = 0;
    while ((c = getopt_long(argc, argv, "+itdp:", box_long, NULL)) != -1) {
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
        case OPT_ENTRYPOINT: p->entrypoint = optarg; break;
        case 'd': p->detach = 1; break;
        case OPT_DISK:
            if (cli_parse_size(optarg, "--disk", &p->box.disk_size) < 0)
                return -1;
            break;
        case OPT_ACCEL: p->box.accel = optarg; break;
        case OPT_VMM: p->box.vmm = optarg; break;
        case OPT_NET: p->box.net = optarg; break;
        case OPT_ALLOW:
        case OPT_DENY:
            if (nrules >= 64 || strlen(optarg) > 256) {
                cli_error("too many or too long network rules (at most 64)");
                return -1;
            }
            snprintf(rule_text[nrules], sizeof(rule_text[0]), "%s %s", c == OPT_ALLOW ? "allow" : "deny", optarg);
            rules[nrules] = rule_text[nrules];
            rules[++nrules] = NULL;
            p->box.net_rules = rules;
            break;
        case 'p':
            if (nports >= 32) {
                cli_error("too many published ports (at most 32)");
                return -1;
            }
            ports[nports++] = optarg;
            ports[nports] = NULL;
            p->box.net_ports = ports;
            break;
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
    if (p->box.vmm && strcmp(p->box.vmm, "auto") && strcmp(p->box.vmm, "kvm") && strcmp(p->box.vmm, "qemu")) {
        cli_error("invalid --vmm \"%s\": use auto, kvm or qemu", p->box.vmm);
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
    p->has_cmd = at < argc;
    p->cmd.argv = at < argc ? (const char **)argv + at : default_cmd;
}

static void parsed_free(struct parsed *p)
{
    cli_cmd_free(&p->cmd);
    cocoon_image_config_free(&p->icfg);
    free(p->argv_buf);
    p->argv_buf = NULL;
}

static size_t strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

/* The image config of the box, docker's way: its Env under --env, its WorkingDir and
 * User unless given; for `run` also the command: --entrypoint or the image's
 * Entrypoint, followed by CMD or (no CMD) the image's Cmd. */
static int apply_image_config(cocoon_runtime *rt, cocoon_box *box, struct parsed *p, int set_argv)
{
    cocoon_box_info *info = malloc(sizeof(*info));
    cocoon_error err;
    if (!info) {
        cli_error("out of memory");
        return -1;
    }
    int rc = cocoon_box_inspect(box, info, &err);
    if (rc == 0 && info->image_id[0])
        rc = cocoon_image_config_get(rt, info->image_id, &p->icfg, &err);
    free(info);
    if (rc < 0) {
        cli_fail(&err);
        return -1;
    }
    const cocoon_image_config *c = &p->icfg;
    size_t nimg = strv_len(c->env);
    if (nimg) {
        const char **env = calloc(nimg + p->cmd.envc + 1, sizeof(*env));
        if (!env) {
            cli_error("out of memory");
            return -1;
        }
        size_t n = 0;
        for (size_t i = 0; i < nimg; i++) {
            size_t klen = strcspn(c->env[i], "=");
            int overridden = 0;
            for (size_t j = 0; j < p->cmd.envc && !overridden; j++)
                overridden = !strncmp(p->cmd.env[j], c->env[i], klen) && p->cmd.env[j][klen] == '=';
            if (!overridden)
                env[n++] = c->env[i];
        }
        for (size_t j = 0; j < p->cmd.envc; j++)
            env[n++] = p->cmd.env[j];
        free(p->cmd.env);
        p->cmd.env = env;
        p->cmd.envc = n;
    }
    if (!p->cmd.workdir && c->working_dir && c->working_dir[0])
        p->cmd.workdir = c->working_dir;
    if (!p->cmd.user && c->user && c->user[0])
        p->cmd.user = c->user;
    if (!set_argv)
        return 0;
    /* --entrypoint replaces the image's Entrypoint and drops its Cmd (as docker does). */
    char *ep_buf[2] = {(char *)p->entrypoint, NULL};
    char *const *ep = p->entrypoint ? (p->entrypoint[0] ? ep_buf : NULL) : c->entrypoint;
    char *const *args = p->has_cmd ? (char *const *)p->cmd.argv : p->entrypoint ? NULL : c->cmd;
    size_t ne = strv_len(ep), na = strv_len(args);
    if (ne + na == 0)
        return 0; /* the default: /bin/sh */
    p->argv_buf = calloc(ne + na + 1, sizeof(*p->argv_buf));
    if (!p->argv_buf) {
        cli_error("out of memory");
        return -1;
    }
    for (size_t i = 0; i < ne; i++)
        p->argv_buf[i] = ep[i];
    for (size_t i = 0; i < na; i++)
        p->argv_buf[ne + i] = args[i];
    p->cmd.argv = p->argv_buf;
    return 0;
}

/* `run IMAGE` / `create IMAGE` of an image that is not here: pulled now, with the
 * progress display, rather than quietly inside cocoon_box_create. */
static int pull_if_missing(cocoon_runtime *rt, const char *image)
{
    if (!image || !strcmp(image, "default"))
        return 0;
    cocoon_image_info info;
    cocoon_error err;
    if (cocoon_image_inspect(rt, image, &info, NULL, &err) == 0 || err.code != COCOON_E_NOT_FOUND)
        return 0; /* other errors are reported by create */
    fprintf(stderr, "Unable to find image '%s' locally\n", image);
    return cli_pull(rt, image, 0, 0, 0) == 0 ? 0 : -1;
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

/* docker's rule: the first operand is the IMAGE and the rest is the command, unless
 * --image/--rootfs named the root already or the operands start after "--" (then all
 * of them are the command, in the default image). */
static int take_image(struct parsed *p, int argc, char **argv)
{
    int at = p->first_arg;
    if (at > 0 && !strcmp(argv[at - 1], "--"))
        return 0; /* getopt ate a leading "--": all the rest is the command */
    if (at >= argc || p->box.image || p->box.rootfs)
        return 0;
    p->box.image = argv[at];
    p->first_arg = at + 1;
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
    if (p.detach && (p.has_cmd || p.entrypoint)) {
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
    if (pull_if_missing(rt, p.box.image) < 0) {
        code = CLI_EXIT_RUNTIME;
    } else if (cocoon_box_create(rt, &p.box, &box, &err) < 0) {
        code = cli_fail(&err);
    } else if (!p.detach && apply_image_config(rt, box, &p, 1) < 0) {
        code = CLI_EXIT_RUNTIME;
        p.rm = 1; /* never started: nothing worth keeping */
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
        parsed_free(&p);
        return 0;
    } else if (cli_signals_interrupted()) {
        code = 128 + cli_signals_interrupted();
    } else {
        code = cli_exec_in_box(box, &p.cmd);
    }
    parsed_free(&p);
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
    if (pull_if_missing(rt, p.box.image) < 0) {
        cocoon_runtime_close(rt);
        return CLI_EXIT_RUNTIME;
    }
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
        code = apply_image_config(rt, box, &p, 0) < 0 ? CLI_EXIT_RUNTIME : cli_exec_in_box(box, &p.cmd);
        cocoon_box_close(box);
    }
    parsed_free(&p);
    cocoon_runtime_close(rt);
    return code;
}
