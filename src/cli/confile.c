/* The config file in the CLI: finding it (-f FILE, else ./cocoon.yaml, else
 * ./cocoon.yml), loading it, turning one of its boxes into cocoon_box_options, the box
 * record (spec.json) of an open box, and `cocoon config`, which checks a file and
 * prints what it describes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/confile.h"

const char *cli_config_path(const char *given)
{
    if (given)
        return given;
    if (access("cocoon.yaml", F_OK) == 0 || access("cocoon.yml", F_OK) != 0)
        return "cocoon.yaml"; /* missing both: the error names the first */
    return "cocoon.yml";
}

json_t *cli_config_load(const char *path)
{
    char err[COCOON_ERROR_MAX];
    json_t *cfg = config_load_file(path, err, sizeof(err));
    if (!cfg)
        cli_error("%s", err);
    return cfg;
}

json_t *cli_config_box(json_t *cfg, const char *name)
{
    size_t i;
    json_t *box;
    json_array_foreach(json_object_get(cfg, "boxes"), i, box)
    {
        if (!strcmp(json_string_value(json_object_get(box, "name")), name))
            return box;
    }
    return NULL;
}

int cli_config_check_names(json_t *cfg, const char *path, char **names, int n)
{
    for (int i = 0; i < n; i++)
        if (!cli_config_box(cfg, names[i])) {
            cli_error("%s has no box \"%s\"", path, names[i]);
            return -1;
        }
    return 0;
}

int cli_config_selected(char **names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return 1;
    return n == 0;
}

static const char **strings_of(json_t *list)
{
    size_t n = json_array_size(list), i;
    const char **v = calloc(n + 1, sizeof(*v));
    json_t *item;
    json_array_foreach(list, i, item)
    {
        if (v)
            v[i] = json_string_value(item);
    }
    return v;
}

static const char *string_or_null(json_t *box, const char *key) { return json_string_value(json_object_get(box, key)); }

/* "secrets": [{"name", "hosts": [...] or null}] into lists->secrets; a secret without
 * hosts goes where the box's "allow DOMAIN" rules let it. */
static void config_secrets(json_t *secrets, struct cli_spec_lists *lists)
{
    lists->secrets = NULL;
    lists->secret_hosts = NULL;
    lists->secret_in = NULL;
    lists->secret_in_text = NULL;
    size_t n = json_array_size(secrets), i;
    if (!n)
        return;
    lists->secrets = calloc(n + 1, sizeof(*lists->secrets));
    lists->secret_hosts = calloc(n, 1024);
    lists->secret_in = calloc(n + 1, sizeof(*lists->secret_in));
    lists->secret_in_text = calloc(n, 128);
    if (!lists->secret_in_text) {
        free(lists->secret_in);
        lists->secret_in = NULL;
    }
    size_t nin = 0;
    if (!lists->secrets || !lists->secret_hosts)
        return;
    json_t *s;
    json_array_foreach(secrets, i, s)
    {
        char *h = lists->secret_hosts + i * 1024;
        size_t k, len = 0;
        json_t *x, *hosts = json_object_get(s, "hosts");
        json_array_foreach(hosts, k, x) len +=
            (size_t)snprintf(h + len, len < 1024 ? 1024 - len : 0, "%s%s", len ? "," : "", json_string_value(x));
        for (size_t r = 0; json_is_null(hosts) && lists->rules && lists->rules[r]; r++) {
            const char *rule = lists->rules[r];
            if (strncmp(rule, "allow ", 6) || strpbrk(rule + 6, "/:") ||
                !strpbrk(rule + 6, "abcdefghijklmnopqrstuvwxyz"))
                continue; /* a CIDR, a port or the host alias: no name to give a secret to */
            len += (size_t)snprintf(h + len, len < 1024 ? 1024 - len : 0, "%s%s", len ? "," : "", rule + 6);
        }
        lists->secrets[i].name = json_string_value(json_object_get(s, "name"));
        lists->secrets[i].hosts = h;
        /* "in": [WHERE...] as "NAME=WHERE,WHERE" */
        json_t *in = json_object_get(s, "in");
        if (json_array_size(in) && lists->secret_in) {
            char *spec = lists->secret_in_text + i * 128;
            len = (size_t)snprintf(spec, 128, "%s=", lists->secrets[i].name ? lists->secrets[i].name : "");
            json_array_foreach(in, k, x) len +=
                (size_t)snprintf(spec + len, len < 128 ? 128 - len : 0, "%s%s", k ? "," : "", json_string_value(x));
            lists->secret_in[nin++] = spec;
        }
    }
}

void cli_config_box_options(json_t *box, cocoon_box_options *o, struct cli_spec_lists *lists)
{
    json_t *net = json_object_get(box, "network");
    o->image = string_or_null(box, "image");
    o->rootfs = string_or_null(box, "rootfs");
    o->cpus = (unsigned)json_integer_value(json_object_get(box, "cpus"));
    o->memory_mib = (unsigned)json_integer_value(json_object_get(box, "memory_mib"));
    o->disk_size = (uint64_t)json_integer_value(json_object_get(box, "disk_bytes"));
    o->ephemeral = json_is_true(json_object_get(box, "ephemeral"));
    o->net = string_or_null(net, "mode");
    lists->rules = json_array_size(json_object_get(net, "rules")) ? strings_of(json_object_get(net, "rules")) : NULL;
    lists->ports = json_array_size(json_object_get(net, "ports")) ? strings_of(json_object_get(net, "ports")) : NULL;
    o->net_rules = lists->rules;
    o->net_ports = lists->ports;
    config_secrets(json_object_get(box, "secrets"), lists);
    o->secrets = lists->secrets;
    o->secret_violation = string_or_null(box, "secret_violation");
    o->secret_in = lists->secret_in;
}

void cli_spec_lists_free(struct cli_spec_lists *lists)
{
    free(lists->rules);
    free(lists->ports);
    free(lists->secrets);
    free(lists->secret_hosts);
    free(lists->secret_in);
    free(lists->secret_in_text);
    lists->secret_in = NULL;
    lists->secret_in_text = NULL;
    lists->rules = lists->ports = NULL;
    lists->secrets = NULL;
    lists->secret_hosts = NULL;
}

json_t *cli_box_spec(cocoon_box *box, int *damaged)
{
    cocoon_box_info info;
    cocoon_error err;
    *damaged = 0;
    if (cocoon_box_inspect(box, &info, &err) < 0) {
        *damaged = 1;
        return NULL;
    }
    return config_spec_read(info.dir, damaged);
}

int cli_box_spec_write(cocoon_box *box, const char *origin, json_t *cfg, json_t *spec_box)
{
    cocoon_box_info info;
    cocoon_error err;
    char why[COCOON_ERROR_MAX];
    if (cocoon_box_inspect(box, &info, &err) < 0)
        return cli_fail(&err), -1;
    if (config_spec_write(info.dir, origin, json_string_value(json_object_get(cfg, "file")), spec_box, why,
                          sizeof(why)) < 0) {
        cli_error("%s", why);
        return -1;
    }
    return 0;
}

/* ---- cocoon config ---- */

static const char config_help[] =
    "usage: cocoon config [-f FILE] [--json]\n"
    "\n"
    "Checks a config file (default ./cocoon.yaml, else ./cocoon.yml) and prints the boxes\n"
    "it describes; --json prints the normalized JSON the SDKs read (docs/config.md).\n"
    "Exits 1 when the file is refused, with FILE:LINE:COL and what is wrong.\n";

/* A word of an argv as a shell would need it: as is when plain, else single-quoted. */
static void print_word(const char *w)
{
    size_t plain = strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=@%+,-");
    if (*w && !w[plain]) {
        printf(" %s", w);
        return;
    }
    fputs(" '", stdout);
    for (; *w; w++)
        fputs(*w == '\'' ? "'\\''" : (char[]){*w, 0}, stdout);
    fputc('\'', stdout);
}

static void print_box(json_t *box)
{
    char size[64] = "", disk[64] = "";
    json_t *net = json_object_get(box, "network");
    const char *image = string_or_null(box, "image"), *rootfs = string_or_null(box, "rootfs");
    if (json_integer_value(json_object_get(box, "memory_mib")))
        snprintf(size, sizeof(size), "%lld MiB", (long long)json_integer_value(json_object_get(box, "memory_mib")));
    if (json_integer_value(json_object_get(box, "disk_bytes")))
        snprintf(disk, sizeof(disk), "%lld bytes", (long long)json_integer_value(json_object_get(box, "disk_bytes")));
    printf("%s\n", string_or_null(box, "name"));
    printf("  %-10s %s\n", rootfs ? "rootfs" : "image", rootfs ? rootfs : image ? image : "default");
    printf("  %-10s %lld\n", "cpus",
           json_integer_value(json_object_get(box, "cpus"))
               ? (long long)json_integer_value(json_object_get(box, "cpus"))
               : 1LL);
    printf("  %-10s %s\n", "memory", size[0] ? size : "512 MiB");
    printf("  %-10s %s\n", "disk", disk[0] ? disk : "the image's size");
    printf("  %-10s %s", "network", string_or_null(net, "mode") ? string_or_null(net, "mode") : "public");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(net, "rules"), i, v) printf(", %s", json_string_value(v));
    json_array_foreach(json_object_get(net, "ports"), i, v) printf(", port %s", json_string_value(v));
    printf("\n");
    const char *key;
    json_object_foreach(json_object_get(box, "env"), key, v)
        printf("  %-10s %s=%s\n", "env", key, json_string_value(v));
    if (string_or_null(box, "workdir"))
        printf("  %-10s %s\n", "workdir", string_or_null(box, "workdir"));
    if (string_or_null(box, "user"))
        printf("  %-10s %s\n", "user", string_or_null(box, "user"));
    if (json_is_true(json_object_get(box, "ephemeral")))
        printf("  %-10s %s\n", "ephemeral", "yes (removed when it stops)");
    json_t *command = json_object_get(box, "command");
    if (json_is_array(command)) {
        size_t w;
        json_t *word;
        printf("  %-10s", "command");
        json_array_foreach(command, w, word) print_word(json_string_value(word));
        if (string_or_null(box, "restart"))
            printf(" (restart %s)", string_or_null(box, "restart"));
        printf("\n");
    }
    json_object_foreach(json_object_get(box, "scripts"), key, v)
    {
        size_t w;
        json_t *word;
        const char *first = json_string_value(json_array_get(v, 0)), *second = json_string_value(json_array_get(v, 1));
        if (json_array_size(v) == 3 && !strcmp(first, "/bin/sh") && !strcmp(second, "-c")) {
            printf("  script     %s: %s", key, json_string_value(json_array_get(v, 2))); /* text, as written */
        } else {
            printf("  script     %s (argv):", key);
            json_array_foreach(v, w, word) print_word(json_string_value(word));
        }
        printf("\n");
    }
    printf("  %-10s %s\n", "digest", string_or_null(box, "digest"));
}

int cmd_config(int argc, char **argv)
{
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"file", required_argument, NULL, 'f'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    const char *file = NULL;
    int as_json = 0, c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "hf:", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(config_help, stdout);
            return 0;
        } else if (c == 'f') {
            file = optarg;
        } else if (c == 'j') {
            as_json = 1;
        } else {
            return cli_usage_error("config", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("config", "unexpected argument");
    const char *path = cli_config_path(file);
    json_t *cfg = cli_config_load(path);
    if (!cfg)
        return 1;
    if (as_json) {
        char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text)
            printf("%s\n", text);
        free(text);
    } else {
        printf("%s: %zu box%s\n", json_string_value(json_object_get(cfg, "file")),
               json_array_size(json_object_get(cfg, "boxes")),
               json_array_size(json_object_get(cfg, "boxes")) == 1 ? "" : "es");
        size_t i;
        json_t *box;
        json_array_foreach(json_object_get(cfg, "boxes"), i, box) print_box(box);
    }
    json_decref(cfg);
    return 0;
}
