/* `cocoon run`, `cocoon create` and `cocoon exec`: option parsing for a box and for a
 * command, and the run lifecycle: create, start, exec, then stop the box and keep it
 * (like docker), or remove it with --rm (ephemeral: removed whatever happened, even
 * when this process is killed); -d leaves it running instead. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boxcfg/contract.h"
#include "cli/cli.h"
#include "cli/confile.h"

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
    OPT_DENY,
    OPT_CONFIG,
    OPT_RESTART,
    OPT_HEALTH_CMD,
    OPT_HEALTH_INTERVAL,
    OPT_HEALTH_TIMEOUT,
    OPT_HEALTH_RETRIES,
    OPT_HEALTH_START_PERIOD,
    OPT_HEALTH_ON_FAILURE,
    OPT_NO_HEALTHCHECK,
    OPT_TLS_INTERCEPT,
    OPT_TLS_CA,
    OPT_TLS_BYPASS,
    OPT_SECRET,
    OPT_SECRET_HOST,
    OPT_HEADER_RULE,
    OPT_SECRET_VIOLATION,
    OPT_SECRET_IN
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
    {"tls-intercept", required_argument, NULL, OPT_TLS_INTERCEPT},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-bypass", required_argument, NULL, OPT_TLS_BYPASS},
    {"secret", required_argument, NULL, OPT_SECRET},
    {"secret-host", required_argument, NULL, OPT_SECRET_HOST},
    {"header-rule", required_argument, NULL, OPT_HEADER_RULE},
    {"secret-violation", required_argument, NULL, OPT_SECRET_VIOLATION},
    {"secret-in", required_argument, NULL, OPT_SECRET_IN},
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
    {"config", required_argument, NULL, OPT_CONFIG},
    {"restart", required_argument, NULL, OPT_RESTART},
    {"health-cmd", required_argument, NULL, OPT_HEALTH_CMD},
    {"health-interval", required_argument, NULL, OPT_HEALTH_INTERVAL},
    {"health-timeout", required_argument, NULL, OPT_HEALTH_TIMEOUT},
    {"health-retries", required_argument, NULL, OPT_HEALTH_RETRIES},
    {"health-start-period", required_argument, NULL, OPT_HEALTH_START_PERIOD},
    {"health-on-failure", required_argument, NULL, OPT_HEALTH_ON_FAILURE},
    {"no-healthcheck", no_argument, NULL, OPT_NO_HEALTHCHECK},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char run_help[] = "usage: cocoon run [OPTIONS] IMAGE [--] [CMD [ARG...]]\n"
                               "       cocoon run [OPTIONS] -- CMD [ARG...]     (the default image)\n"
                               "       cocoon run --config FILE [OPTIONS] NAME [-- CMD [ARG...]]  (box NAME of FILE)\n"
                               "\n"
                               "Runs CMD in a new box, then stops the box and keeps it (see `cocoon ls -a`), or\n"
                               "removes it with --rm. Exits with CMD's exit code (128+N when killed by signal N,\n"
                               "124 on --timeout, 125 when cocoon itself fails). Without CMD the image's default\n"
                               "command runs (its Entrypoint and Cmd; /bin/sh when it has none). An image not\n"
                               "here is pulled first. The image's Env, WorkingDir and User apply unless --env,\n"
                               "--workdir or --user say otherwise.\n"
                               "\n"
                               "  --config FILE     a new box made as box NAME of the config file FILE says\n"
                               "                    (docs/config.md; its env, workdir and user apply too);\n"
                               "                    unnamed unless --name; no other box option but --vmm\n"
                               "                    and --accel\n"
                               "  --rm              remove the box afterwards (also when cocoon is killed)\n"
                               "  -d, --detach      start the box with CMD (or the image's Entrypoint/Cmd) as its\n"
                               "                    main process, print the box's id and return; the box stops\n"
                               "                    when it ends (see `cocoon logs`, `cocoon ls`). Without CMD\n"
                               "                    and an image with no command: a box that just runs\n"
                               "  --restart POLICY  with -d: no (default), on-failure[:N], always or\n"
                               "                    unless-stopped; restarts back off from 1 s to 60 s\n"
                               "  --health-cmd CMD  a health check: CMD runs in the box with /bin/sh -c every\n"
                               "                    interval; exit 0 is healthy (see `cocoon ls`, `cocoon wait`)\n"
                               "  --health-interval DUR, --health-timeout DUR  between checks, and the longest a\n"
                               "                    check may take before it is killed (30s each; at least 1s)\n"
                               "  --health-retries N  failures in a row that make the box unhealthy (3)\n"
                               "  --health-start-period DUR  failures this long after the start do not count (0s)\n"
                               "  --health-on-failure A  none (default: only report), restart (kill the main\n"
                               "                    process: its restart policy applies) or stop (the box)\n"
                               "  --no-healthcheck  no health check, not even the image's\n"
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
                               "  --tls-intercept HOST  end TLS to HOST (or *.DOMAIN) in cocoon with a certificate\n"
                               "                    of the box's own CA (trusted inside the box) and re-originate\n"
                               "                    it, verified, to the real host (repeatable)\n"
                               "  --tls-ca FILE     PEM CAs trusted for intercepted upstreams besides the host's\n"
                               "  --secret NAME[=@file:PATH]  the box's $NAME holds a placeholder; cocoon puts the\n"
                               "                    value (from our $NAME, or the file) in its place in HTTPS\n"
                               "                    request headers to the secret's hosts only (never stored:\n"
                               "                    `cocoon start` reads $NAME again)\n"
                               "  --secret-host NAME=HOST[,HOST...]  where secret NAME may go (*.DOMAIN too)\n"
                               "  --secret-in NAME=headers,query,body  where else secret NAME's value may go:\n"
                               "                    the query (percent-encoded), the body (length rewritten)\n"
                               "  --tls-bypass HOST a box with secrets intercepts TLS to every host but these\n"
                               "  --header-rule HOST:Name=Value  set this header on HTTPS requests to HOST\n"
                               "                    ({{NAME}} in Value: secret NAME's value)\n"
                               "  --secret-violation A  a placeholder going where it may not is refused and the\n"
                               "                    connection closed; A: block (counted only), block-and-log\n"
                               "                    (default: also in net.log), block-and-stop-box (the box stops)\n"
                               "  --env K=V         set an environment variable (repeatable)\n"
                               "  --workdir DIR     working directory of CMD (default /)\n"
                               "  --user U          user: name, uid or uid:gid (default root)\n"
                               "  --timeout S       kill CMD after S seconds\n"
                               "  -i, --interactive forward stdin even when it is a terminal; with -d: keep the\n"
                               "                    main process's stdin open for `cocoon attach`\n"
                               "  -t, --tty         give CMD a terminal (with -d: the main process's, see\n"
                               "                    `cocoon attach`)\n";

static const char create_help[] = "usage: cocoon create [OPTIONS] [IMAGE]\n"
                                  "\n"
                                  "Creates a persistent box and prints its id. Start it with `cocoon start`; what\n"
                                  "is written to its disk stays until `cocoon rm`.\n"
                                  "\n"
                                  "  --image NAME, --rootfs DIR, --cpus N, --memory SIZE, --accel A, --name NAME,\n"
                                  "  --disk SIZE, --vmm V, --net MODE, --allow RULE, --deny RULE, -p PORTS,\n"
                                  "  --secret NAME, --secret-host NAME=HOSTS, --header-rule RULE, --tls-intercept\n"
                                  "  HOST, --tls-bypass HOST, --tls-ca FILE, --secret-in NAME=WHERE,\n"
                                  "  --secret-violation A  (as for\n"
                                  "  `cocoon run`; a secret's value is read again from $NAME at every start)\n"
                                  "  --health-cmd CMD, --health-interval DUR, --health-timeout DUR,\n"
                                  "  --health-retries N, --health-start-period DUR, --health-on-failure A,\n"
                                  "  --no-healthcheck  (as for `cocoon run`: checked while the box runs)\n";

static const char exec_help[] = "usage: cocoon exec [OPTIONS] BOX [--] CMD [ARG...]\n"
                                "\n"
                                "Runs CMD in a running box and exits with its exit code (128+N when killed by\n"
                                "signal N, 124 on --timeout, 125 when cocoon itself fails). Many execs may run\n"
                                "at once. stdin is forwarded when it is not a terminal, or with -i.\n"
                                "\n"
                                "  --env K=V, --workdir DIR, --user U, --timeout S  (as for `cocoon run`)\n"
                                "  -d, --detach      the box runs CMD without us: prints its id (its pid in the\n"
                                "                    box) and returns; see `cocoon logs --exec ID BOX`,\n"
                                "                    `cocoon kill --exec ID BOX`; `cocoon exec --ls BOX` lists\n"
                                "                    them with their state and exit code\n"
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
    const char *restart; /* --restart */
    int first_arg;       /* index of the first operand */
    const char *entrypoint;
    int has_cmd;              /* a command was given (else the image's default) */
    cocoon_command resolved;  /* cmd with the image's config applied; owns what cmd points to */
    const char *config;       /* --config FILE */
    const char *box_opt;      /* the first option given that shapes the box (other than --name) */
    struct cli_health health; /* --health-* */
    const char **config_argv; /* the config file box's command, when no command was given */
};

static int is_health_opt(int c) { return c >= OPT_HEALTH_CMD && c <= OPT_NO_HEALTHCHECK; }

static int is_box_opt(int c)
{
    return c == OPT_IMAGE || c == OPT_ROOTFS || c == OPT_CPUS || c == OPT_MEMORY || c == OPT_ACCEL || c == OPT_NAME ||
           c == OPT_DISK || c == OPT_VMM || c == OPT_NET || c == OPT_ALLOW || c == OPT_DENY || c == 'p' ||
           c == OPT_TLS_INTERCEPT || c == OPT_TLS_CA || c == OPT_TLS_BYPASS || c == OPT_SECRET ||
           c == OPT_SECRET_HOST || c == OPT_HEADER_RULE || c == OPT_SECRET_VIOLATION || c == OPT_SECRET_IN;
}

/* "--cpus" for OPT_CPUS: how an option is named in a message, whatever form was typed. */
static const char *long_name(int c)
{
    static char buf[64];
    for (const struct option *o = box_long; o->name; o++)
        if (o->val == c) {
            snprintf(buf, sizeof(buf), "--%s", o->name);
            return buf;
        }
    return "an option";
}

static int is_run_only(int c)
{
    return c == OPT_RM || c == 'd' || c == OPT_ENTRYPOINT || c == OPT_CONFIG || c == OPT_RESTART;
}

/* The absolute path of secret name's file (read at each start: the value is never
 * stored); NULL with a message printed when it cannot be read now. */
static const char *cli_secret_file(const char *name, const char *path)
{
    static char paths[NET_MAX_SECRETS][PATH_MAX];
    static int n;
    if (n >= NET_MAX_SECRETS || !realpath(path, paths[n]) || access(paths[n], R_OK) < 0) {
        cli_error("--secret %s=@file:%s: %s", name, path, strerror(errno));
        return NULL;
    }
    return paths[n++];
}

/* 0 ok, 1 help printed, -1 bad usage (message printed). */
static int parse(enum kind k, int argc, char **argv, struct parsed *p)
{
    const char *help = k == KIND_RUN ? run_help : k == KIND_CREATE ? create_help : exec_help;
    memset(p, 0, sizeof(*p));
    cocoon_box_options_init(&p->box);
    optind = 1;
    opterr = 0;
    int c;
    /* "+": stop at the first operand, so `cocoon run ls -l` passes -l to ls. */
    /* rules keep their command-line order across --allow and --deny */
    static char rule_text[BOX_NET_RULES_MAX][NET_RULE_TEXT + 16];
    static const char *rules[BOX_NET_RULES_MAX + 1], *ports[BOX_NET_PORTS_MAX + 1];
    static const char *tls_hosts[NET_MAX_TLS_HOSTS + 1], *header_rules[NET_MAX_HEADER_RULES + 1];
    static cocoon_secret secrets[NET_MAX_SECRETS + 1];
    static const char *bypass[NET_MAX_TLS_HOSTS + 1], *secret_in[NET_MAX_SECRETS + 1];
    size_t nbypass = 0, nsecret_in = 0;
    static char secret_names[NET_MAX_SECRETS][NET_SECRET_NAME], secret_hosts[NET_MAX_SECRETS][1024];
    static const char *secret_host_specs[NET_MAX_SECRETS * NET_SECRET_HOSTS];
    size_t nrules = 0, nports = 0, ntls = 0, nsecrets = 0, nsecret_hosts = 0, nheader = 0;
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
        if (k != KIND_RUN && is_run_only(c) && !(k == KIND_EXEC && c == 'd')) {
            cli_error("%s applies to `cocoon run` only", argv[optind - 1]);
            return -1;
        }
        if (k == KIND_EXEC && is_health_opt(c)) {
            cli_error("%s applies to a new box (`cocoon run`, `cocoon create`)", argv[optind - 1]);
            return -1;
        }
        if (is_health_opt(c)) {
            if (cli_health_option(&p->health, long_name(c) + 2, optarg) < 0)
                return -1;
            continue;
        }
        if (k == KIND_EXEC && is_box_opt(c)) {
            cli_error("%s applies to a new box, not to `cocoon exec`", argv[optind - 1]);
            return -1;
        }
        if (k == KIND_CREATE && !is_box_opt(c)) {
            cli_error("%s applies to a command, not to `cocoon create`", argv[optind - 1]);
            return -1;
        }
        /* with --config the file shapes the box; its name and how it runs stay free */
        if (is_box_opt(c) && c != OPT_NAME && c != OPT_VMM && c != OPT_ACCEL && !p->box_opt)
            p->box_opt = long_name(c);
        switch (c) {
        case OPT_CONFIG: p->config = optarg; break;
        case OPT_IMAGE: p->box.image = optarg; break;
        case OPT_ROOTFS: p->box.rootfs = optarg; break;
        case OPT_NAME: p->box.name = optarg; break;
        case OPT_RM: p->rm = 1; break;
        case OPT_ENTRYPOINT: p->entrypoint = optarg; break;
        case 'd': p->detach = 1; break;
        case OPT_RESTART: p->restart = optarg; break;
        case OPT_DISK:
            if (cli_parse_size(optarg, "--disk", &p->box.disk_size) < 0)
                return -1;
            break;
        case OPT_ACCEL: p->box.accel = optarg; break;
        case OPT_VMM: p->box.vmm = optarg; break;
        case OPT_NET: p->box.net = optarg; break;
        case OPT_ALLOW:
        case OPT_DENY:
            if (nrules >= BOX_NET_RULES_MAX || strlen(optarg) > NET_RULE_TEXT) {
                cli_error("too many or too long network rules (at most %d)", BOX_NET_RULES_MAX);
                return -1;
            }
            snprintf(rule_text[nrules], sizeof(rule_text[0]), "%s %s", c == OPT_ALLOW ? "allow" : "deny", optarg);
            rules[nrules] = rule_text[nrules];
            rules[++nrules] = NULL;
            p->box.net_rules = rules;
            break;
        case OPT_SECRET: {
            if (nsecrets >= NET_MAX_SECRETS) {
                cli_error("too many secrets (at most %d)", NET_MAX_SECRETS);
                return -1;
            }
            const char *eq = strchr(optarg, '=');
            size_t nl = eq ? (size_t)(eq - optarg) : strlen(optarg);
            if (nl == 0 || nl >= NET_SECRET_NAME || (eq && strncmp(eq + 1, "@file:", 6))) {
                cli_error("--secret %s: use --secret NAME (the value from $NAME) or --secret NAME=@file:PATH; a "
                          "value is never given on the command line",
                          eq ? "NAME=..." : optarg);
                return -1;
            }
            memcpy(secret_names[nsecrets], optarg, nl);
            secret_names[nsecrets][nl] = 0;
            secrets[nsecrets].name = secret_names[nsecrets];
            if (eq && !(secrets[nsecrets].file = cli_secret_file(secret_names[nsecrets], eq + 7)))
                return -1;
            secrets[++nsecrets].name = NULL;
            p->box.secrets = secrets;
            break;
        }
        case OPT_SECRET_HOST:
            if (nsecret_hosts >= sizeof(secret_host_specs) / sizeof(secret_host_specs[0])) {
                cli_error("too many --secret-host options");
                return -1;
            }
            secret_host_specs[nsecret_hosts++] = optarg;
            break;
        case OPT_HEADER_RULE:
            if (nheader >= NET_MAX_HEADER_RULES) {
                cli_error("too many header rules (at most %d)", NET_MAX_HEADER_RULES);
                return -1;
            }
            header_rules[nheader++] = optarg;
            header_rules[nheader] = NULL;
            p->box.header_rules = header_rules;
            break;
        case OPT_SECRET_IN:
            if (nsecret_in >= NET_MAX_SECRETS) {
                cli_error("too many --secret-in options (at most %d)", NET_MAX_SECRETS);
                return -1;
            }
            secret_in[nsecret_in++] = optarg;
            secret_in[nsecret_in] = NULL;
            p->box.secret_in = secret_in;
            break;
        case OPT_SECRET_VIOLATION: {
            int action;
            char why[160];
            if (net_secret_violation_parse(optarg, &action, why, sizeof(why)) < 0) {
                cli_error("--secret-violation: %s", why);
                return -1;
            }
            p->box.secret_violation = optarg;
            break;
        }
        case OPT_TLS_BYPASS:
            if (nbypass >= NET_MAX_TLS_HOSTS) {
                cli_error("too many --tls-bypass hosts (at most %d)", NET_MAX_TLS_HOSTS);
                return -1;
            }
            bypass[nbypass++] = optarg;
            bypass[nbypass] = NULL;
            p->box.tls_bypass = bypass;
            break;
        case OPT_TLS_INTERCEPT:
            if (ntls >= NET_MAX_TLS_HOSTS) {
                cli_error("too many --tls-intercept hosts (at most %d)", NET_MAX_TLS_HOSTS);
                return -1;
            }
            tls_hosts[ntls++] = optarg;
            tls_hosts[ntls] = NULL;
            p->box.tls_intercept = tls_hosts;
            break;
        case OPT_TLS_CA: {
            static char ca_path[PATH_MAX];
            if (!realpath(optarg, ca_path)) {
                cli_error("--tls-ca %s: %s", optarg, strerror(errno));
                return -1;
            }
            p->box.tls_ca = ca_path;
            break;
        }
        case 'p':
            if (nports >= BOX_NET_PORTS_MAX) {
                cli_error("too many published ports (at most %d)", BOX_NET_PORTS_MAX);
                return -1;
            }
            ports[nports++] = optarg;
            ports[nports] = NULL;
            p->box.net_ports = ports;
            break;
        case OPT_CPUS:
            if (cli_parse_uint(optarg, "--cpus", BOX_CPUS_MIN, BOX_CPUS_MAX, &p->box.cpus) < 0)
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
    enum box_accel accel;
    enum box_backend backend;
    enum net_mode mode;
    if (p->box.accel && box_accel_parse(p->box.accel, &accel) < 0) {
        cli_error("invalid --accel \"%s\": use %s", p->box.accel, box_accel_choices());
        return -1;
    }
    if (p->box.vmm && box_backend_parse(p->box.vmm, &backend) < 0) {
        cli_error("invalid --vmm \"%s\": use %s", p->box.vmm, box_backend_choices());
        return -1;
    }
    if (p->box.net && box_net_mode_parse(p->box.net, &mode) < 0) {
        cli_error("invalid --net \"%s\": use %s", p->box.net, box_net_mode_choices());
        return -1;
    }
    if (p->box.image && p->box.rootfs) {
        cli_error("--image and --rootfs cannot be used together");
        return -1;
    }
    /* --secret-host NAME=HOSTS, in any order with --secret NAME */
    for (size_t i = 0; i < nsecret_hosts; i++) {
        const char *eq = strchr(secret_host_specs[i], '=');
        size_t at = nsecrets;
        for (size_t j = 0; eq && j < nsecrets; j++)
            if (strlen(secret_names[j]) == (size_t)(eq - secret_host_specs[i]) &&
                !strncmp(secret_names[j], secret_host_specs[i], (size_t)(eq - secret_host_specs[i])))
                at = j;
        if (at == nsecrets) {
            cli_error("--secret-host %s: use NAME=HOST[,HOST...] for a secret given with --secret NAME",
                      secret_host_specs[i]);
            return -1;
        }
        size_t have = strlen(secret_hosts[at]);
        if (have + strlen(eq + 1) + 2 > sizeof(secret_hosts[at])) {
            cli_error("--secret-host %s: too many hosts", secret_host_specs[i]);
            return -1;
        }
        snprintf(secret_hosts[at] + have, sizeof(secret_hosts[at]) - have, "%s%s", have ? "," : "", eq + 1);
        secrets[at].hosts = secret_hosts[at];
    }
    p->first_arg = optind;
    return 0;
}

static void set_command(struct parsed *p, int argc, char **argv, int at)
{
    if (at < argc && !strcmp(argv[at], "--"))
        at++;
    p->has_cmd = at < argc;
    p->cmd.argv = at < argc ? (const char **)argv + at : NULL; /* NULL: the image's (apply_image_config) */
}

static void parsed_free(struct parsed *p)
{
    if (p->cmd.env == (const char **)p->resolved.env)
        p->cmd.env = NULL; /* the resolved command's own list */
    cli_cmd_free(&p->cmd);
    cocoon_command_free(&p->resolved);
    free(p->config_argv);
}

/* The box's image config applied to the command, docker's way (cocoon_box_command):
 * for `run` the command too (--entrypoint, CMD or the image's); for `exec` the command
 * runs as given, with the image's Env, WorkingDir and User under --env, --workdir and
 * --user. */
static int apply_image_config(cocoon_box *box, struct parsed *p, int run)
{
    cocoon_command_options o;
    cocoon_command_options_init(&o);
    o.argv = p->has_cmd ? p->cmd.argv : NULL;
    o.entrypoint = run ? p->entrypoint : "";
    o.env = p->cmd.env;
    o.cwd = p->cmd.workdir;
    o.user = p->cmd.user;
    cocoon_error err;
    if (cocoon_box_command(box, &o, &p->resolved, &err) < 0) {
        cli_fail(&err);
        return -1;
    }
    p->cmd.argv = (const char **)p->resolved.argv;
    p->cmd.workdir = p->resolved.cwd;
    p->cmd.user = p->resolved.user;
    free(p->cmd.env); /* its strings are argv's; the resolved copy replaces the list */
    p->cmd.env = (const char **)p->resolved.env;
    p->cmd.envc = 0;
    while (p->cmd.env[p->cmd.envc])
        p->cmd.envc++;
    return 0;
}

/* 1 when the box's image names a command of its own (Entrypoint or Cmd). */
static int image_has_command(cocoon_runtime *rt, cocoon_box *box)
{
    cocoon_box_info info;
    cocoon_image_config cfg;
    cocoon_error err;
    memset(&cfg, 0, sizeof(cfg));
    if (cocoon_box_inspect(box, &info, &err) < 0 || !info.image_id[0] ||
        cocoon_image_config_get(rt, info.image_id, &cfg, &err) < 0)
        return 0;
    int has = (cfg.entrypoint && cfg.entrypoint[0]) || (cfg.cmd && cfg.cmd[0]);
    cocoon_image_config_free(&cfg);
    return has;
}

/* `run -d`: CMD, or the image's own command, becomes the box's main process. An image
 * without one (the default image) gives a box that just runs, as `run -d` always did. */
static int set_main(cocoon_runtime *rt, cocoon_box *box, struct parsed *p)
{
    if (!p->has_cmd && !p->entrypoint && !image_has_command(rt, box)) {
        if (p->cmd.tty || p->cmd.interactive) {
            cli_error("%s with -d needs a main process: give a command (`cocoon run -d -it -- sh`)",
                      p->cmd.tty ? "-t" : "-i");
            return -1;
        }
        if (p->restart) {
            cli_error("--restart needs a main process: give a command (`cocoon run -d --restart always -- CMD`)");
            return -1;
        }
        return 0;
    }
    if (p->rm) {
        cli_error("--rm does not apply to a detached main process (-d) yet: the box is kept, stopped, when it ends");
        return -1;
    }
    if (apply_image_config(box, p, 1) < 0)
        return -1;
    cocoon_error err;
    if (cocoon_box_set_main(box, &p->resolved, p->restart, &err) < 0 ||
        ((p->cmd.tty || p->cmd.interactive) &&
         cocoon_box_set_main_stdio(box, p->cmd.tty, p->cmd.interactive, &err) < 0)) {
        cli_fail(&err);
        return -1;
    }
    return 0;
}

/* `run IMAGE` / `create IMAGE` of an image that is not here: pulled now, with the
 * progress display, rather than quietly inside cocoon_box_create. */
int cli_pull_if_missing(cocoon_runtime *rt, const char *image)
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

/* --config FILE NAME: the box is NAME of FILE (its options from the file, the rest of
 * the operands the command). 0, or -1 after printing why. */
static int from_config(struct parsed *p, int argc, char **argv, json_t **cfg, json_t **spec_box,
                       struct cli_spec_lists *lists)
{
    if (p->box_opt) {
        cli_error("%s cannot be used with --config: the file describes the box", p->box_opt);
        return -1;
    }
    int at = p->first_arg;
    if (at >= argc || !strcmp(argv[at], "--")) {
        cli_error("which box of %s? usage: cocoon run --config FILE NAME [-- CMD...]", p->config);
        return -1;
    }
    if (!(*cfg = cli_config_load(p->config)))
        return -1;
    if (!(*spec_box = cli_config_box(*cfg, argv[at]))) {
        cli_error("%s has no box \"%s\"", p->config, argv[at]);
        return -1;
    }
    const char *name = p->box.name;
    cli_config_box_options(*spec_box, &p->box, lists);
    p->box.name = name;
    p->rm = p->rm || p->box.ephemeral;
    p->first_arg = at + 1;
    return 0;
}

/* `run --config FILE NAME` without a command: the box's own `command`, if it has one
 * (an argv, or /bin/sh -c TEXT), in place of the image's. */
static int config_command(struct parsed *p, json_t *spec_box)
{
    json_t *command = json_object_get(spec_box, "command");
    if (!json_is_array(command))
        return 0;
    size_t n = json_array_size(command);
    if (!(p->config_argv = calloc(n + 1, sizeof(*p->config_argv)))) {
        cli_error("out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        p->config_argv[i] = json_string_value(json_array_get(command, i));
    p->cmd.argv = p->config_argv;
    p->has_cmd = 1;
    return 0;
}

int cmd_run(int argc, char **argv)
{
    struct parsed p;
    int rc = parse(KIND_RUN, argc, argv, &p);
    json_t *cfg = NULL, *spec_box = NULL;
    struct cli_spec_lists lists = {0};
    if (rc == 0 && p.config)
        rc = from_config(&p, argc, argv, &cfg, &spec_box, &lists);
    else if (rc == 0 && take_image(&p, argc, argv) < 0)
        rc = -1;
    if (rc != 0) {
        cli_cmd_free(&p.cmd);
        json_decref(cfg);
        return rc > 0 ? 0 : CLI_EXIT_RUNTIME;
    }
    set_command(&p, argc, argv, p.first_arg);
    if (spec_box && p.detach && !p.restart)
        p.restart = json_string_value(json_object_get(spec_box, "restart")); /* NULL: none */
    if (spec_box && !p.has_cmd && config_command(&p, spec_box) < 0) {
        parsed_free(&p);
        json_decref(cfg);
        return CLI_EXIT_RUNTIME;
    }
    const char *bad = !p.detach ? (p.restart ? "--restart" : NULL) : p.cmd.timeout_ms ? "--timeout" : NULL;
    if (bad) {
        cli_error(p.detach ? "%s does not apply to a detached main process (-d)" : "%s applies with -d only", bad);
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
    if (cli_pull_if_missing(rt, p.box.image) < 0) {
        code = CLI_EXIT_RUNTIME;
    } else if (cocoon_box_create(rt, &p.box, &box, &err) < 0) {
        code = cli_fail(&err);
    } else if (spec_box && cli_box_spec_write(box, CONFIG_ORIGIN_RUN, cfg, spec_box) < 0) {
        code = CLI_EXIT_RUNTIME;
        p.rm = 1; /* never started: nothing worth keeping */
    } else if (p.detach && set_main(rt, box, &p) < 0) {
        code = CLI_EXIT_RUNTIME;
        p.rm = 1; /* never started: nothing worth keeping */
    } else if (spec_box && !p.health.given && !p.health.none && cli_health_from_spec(box, spec_box) < 0) {
        code = CLI_EXIT_RUNTIME;
        p.rm = 1; /* never started: nothing worth keeping */
    } else if (cli_health_apply(box, &p.health) < 0) {
        code = CLI_EXIT_RUNTIME;
        p.rm = 1; /* never started: nothing worth keeping */
    } else if (!p.detach && apply_image_config(box, &p, 1) < 0) {
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
        cli_spec_lists_free(&lists);
        json_decref(cfg);
        return 0;
    } else if (cli_signals_interrupted()) {
        code = 128 + cli_signals_interrupted();
    } else {
        code = cli_exec_in_box(box, &p.cmd);
    }
    parsed_free(&p);
    cli_spec_lists_free(&lists);
    json_decref(cfg);
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
    if (cli_pull_if_missing(rt, p.box.image) < 0) {
        cocoon_runtime_close(rt);
        return CLI_EXIT_RUNTIME;
    }
    if (cocoon_box_create(rt, &p.box, &box, &err) < 0) {
        cocoon_runtime_close(rt);
        return cli_fail(&err);
    }
    if (cli_health_apply(box, &p.health) < 0) {
        if (cocoon_box_remove(box, 1, &err) < 0)
            cli_fail(&err);
        cocoon_box_close(box);
        cocoon_runtime_close(rt);
        return CLI_EXIT_RUNTIME;
    }
    printf("%s\n", cocoon_box_id(box));
    cocoon_box_close(box);
    cocoon_runtime_close(rt);
    return 0;
}

/* `exec -d`: the box's monitor runs the command and keeps its output; its id is printed. */
static int exec_detached(cocoon_box *box, const struct cli_cmd *c)
{
    cocoon_exec_options o;
    cli_exec_options(c, &o);
    int id;
    cocoon_error err;
    if (cocoon_exec_detached(box, &o, &id, &err) < 0)
        return cli_fail(&err);
    printf("%d\n", id);
    return 0;
}

static int exec_in(cocoon_box *box, int i, void *parsed)
{
    (void)i;
    struct parsed *p = parsed;
    if (apply_image_config(box, p, 0) < 0)
        return CLI_EXIT_RUNTIME;
    return p->detach ? exec_detached(box, &p->cmd) : cli_exec_in_box(box, &p->cmd);
}

int cmd_exec(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--ls"))
        return cli_exec_ls(argc, argv);
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
    char *name = argv[at++];
    if (at >= argc || (!strcmp(argv[at], "--") && at + 1 >= argc)) {
        cli_error("no command given: usage: cocoon exec [OPTIONS] BOX [--] CMD [ARG...]");
        cli_cmd_free(&p.cmd);
        return CLI_EXIT_RUNTIME;
    }
    set_command(&p, argc, argv, at);
    if (p.detach && (p.cmd.tty || p.cmd.interactive)) {
        cli_error("%s does not apply to a detached exec (-d): it has no stdin and no terminal",
                  p.cmd.tty ? "-t" : "-i");
        parsed_free(&p);
        return CLI_EXIT_RUNTIME;
    }
    cli_signals_init();
    int code = cli_each_box(&name, 1, exec_in, &p);
    parsed_free(&p);
    return code;
}
