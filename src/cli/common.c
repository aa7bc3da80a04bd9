/* Helpers shared by the subcommands: error and JSON printing, option value parsing
 * (sizes, counts, seconds) with messages that say what is accepted, and opening the
 * runtime. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "boxcfg/contract.h"
#include "cli/cli.h"
#include "util/util.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cocoon: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_print_json(json_t *v)
{
    char *s = v ? json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(v);
    if (!s) {
        cli_error("out of memory");
        return CLI_EXIT_RUNTIME;
    }
    puts(s);
    free(s);
    return 0;
}

int cli_fail(const cocoon_error *err)
{
    cli_error("%s", err->message[0] ? err->message : "unknown error");
    return CLI_EXIT_RUNTIME;
}

int cli_usage_error(const char *cmd, const char *text)
{
    cli_error("%s (see `cocoon %s --help`)", text, cmd);
    return CLI_EXIT_RUNTIME;
}

int cli_simple_opts(int argc, char **argv, const char *cmd, const char *help, const char *flag, char letter, int *set)
{
    /* without a flag its entry, name NULL, ends the table */
    const struct option lo[] = {{"help", no_argument, NULL, 'h'}, {flag, no_argument, NULL, 1}, {NULL, 0, NULL, 0}};
    char shorts[3] = {'h', letter, 0};
    if (set)
        *set = 0;
    /* 0: glibc starts afresh (its ordering too) and permutes: flags may follow the box
     * name, as docker users write them. Commands that run a command (run, exec, code,
     * cp) keep "+" so the command's own flags stay its own. */
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        if (flag && (c == 1 || (letter && c == letter))) {
            *set = 1;
            continue;
        }
        return cli_usage_error(cmd, "unknown option");
    }
    return -1;
}

int cli_name_count_opts(int argc, char **argv, const char *cmd, const char *help, const char *what, unsigned max,
                        const char **name, unsigned *count)
{
    static const struct option lo[] = {{"name", required_argument, NULL, 'N'},
                                       {"count", required_argument, NULL, 'n'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        if (c == 'N')
            *name = optarg;
        else if (c == 'n') {
            if (cli_parse_uint(optarg, "count", 1, max, count) < 0)
                return CLI_EXIT_RUNTIME;
        } else
            return cli_usage_error(cmd, "unknown option or missing value");
    }
    if (optind != argc - 1)
        return cli_usage_error(cmd, what);
    return -1;
}

int cli_open_with_ids(unsigned count, char (**ids)[16], cocoon_runtime **rt)
{
    *ids = calloc(count ? count : 1, sizeof(**ids));
    if (!*ids) {
        cli_error("out of memory");
        return -1;
    }
    if (cli_open_runtime(rt) < 0) {
        free(*ids);
        *ids = NULL;
        return -1;
    }
    return 0;
}

static void print_notice(void *user, const char *message) { fprintf(stderr, "cocoon: %s\n", message); }

int cli_open_runtime(cocoon_runtime **rt)
{
    cocoon_error err;
    if (cocoon_runtime_open(NULL, rt, &err) < 0)
        return cli_fail(&err);
    if (*cocoon_runtime_warning(*rt))
        fprintf(stderr, "cocoon: warning: %s\n", cocoon_runtime_warning(*rt));
    cocoon_runtime_set_notice(*rt, print_notice, NULL);
    return 0;
}

int cli_each_box(char **names, int n, cli_box_fn fn, void *arg)
{
    cocoon_runtime *rt;
    int rc = cli_open_runtime(&rt);
    if (rc)
        return rc;
    int code = 0;
    for (int i = 0; i < n; i++) {
        cocoon_error err;
        cocoon_box *box;
        if (cocoon_box_open(rt, names[i], &box, &err) < 0) {
            code = cli_fail(&err);
            continue;
        }
        rc = fn(box, i, arg);
        if (rc != 0)
            code = rc;
        cocoon_box_close(box);
    }
    cocoon_runtime_close(rt);
    return code;
}

void cli_ago(long long t, char *out, size_t cap)
{
    static const struct {
        long long seconds;
        const char *name;
    } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
    long long d = (long long)time(NULL) - t;
    if (d < 0)
        d = 0;
    size_t u = 0;
    while (units[u].seconds > d && units[u].seconds > 1)
        u++;
    long long k = d / units[u].seconds;
    snprintf(out, cap, "%lld %s%s ago", k, units[u].name, k == 1 ? "" : "s");
}

int cli_parse_uint(const char *s, const char *what, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max || s[0] == '-') {
        cli_error("invalid %s \"%s\": expected a whole number from %u to %u", what, s, min, max);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

int cli_parse_memory(const char *s, unsigned *mib)
{
    double bytes = 0;
    int unit = util_parse_scaled(s, 2, &bytes); /* MiB without a unit; M or G only */
    double total = bytes / (1024.0 * 1024);
    if (unit < 2 || unit > 3 || total < BOX_MEMORY_MIB_MIN || total > BOX_MEMORY_MIB_MAX) {
        cli_error("invalid --memory \"%s\": use a size like 512M or 1G, or a number of MiB (at least %u, at most 1T)",
                  s, BOX_MEMORY_MIB_MIN);
        return -1;
    }
    *mib = (unsigned)total;
    return 0;
}

int cli_parse_seconds(const char *s, unsigned *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v > 0) || v * 1000 > BOX_EXEC_TIMEOUT_MS_MAX) {
        cli_error("invalid --timeout \"%s\": expected a number of seconds greater than 0 and at most %u", s,
                  BOX_EXEC_TIMEOUT_MS_MAX / 1000);
        return -1;
    }
    *ms = (unsigned)(v * 1000 + 0.5);
    if (*ms == 0)
        *ms = 1;
    return 0;
}

int cli_parse_size(const char *s, const char *what, uint64_t *bytes)
{
    double total = 0;
    if (util_parse_scaled(s, 0, &total) < 0 || !(total >= 1) || total > (double)BOX_DISK_BYTES_MAX) {
        cli_error("invalid %s \"%s\": use a size like 10G or 512M (at most 64T)", what, s);
        return -1;
    }
    *bytes = (uint64_t)total;
    return 0;
}

int cli_cmd_add_env(struct cli_cmd *c, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        cli_error("invalid --env \"%s\": expected KEY=VALUE", kv);
        return -1;
    }
    const char **grown = realloc(c->env, (c->envc + 2) * sizeof(*grown));
    if (!grown) {
        cli_error("out of memory");
        return -1;
    }
    c->env = grown;
    c->env[c->envc++] = kv;
    c->env[c->envc] = NULL;
    return 0;
}

void cli_cmd_free(struct cli_cmd *c)
{
    free(c->env);
    c->env = NULL;
}

void cli_human_bytes(uint64_t b, char *out, size_t cap)
{
    if (b >= (1ull << 30))
        snprintf(out, cap, "%.2fGB", (double)b / 1e9);
    else if (b >= 1000000)
        snprintf(out, cap, "%.1fMB", (double)b / 1e6);
    else if (b >= 1000)
        snprintf(out, cap, "%.1fkB", (double)b / 1e3);
    else
        snprintf(out, cap, "%lluB", (unsigned long long)b);
}
