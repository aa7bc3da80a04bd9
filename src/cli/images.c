/* Image commands: `cocoon pull`, `load`, `images`, `rmi` and `cocoon image
 * ls|pull|load|rm|prune|inspect`, over the image API of include/cocoon.h. Pull
 * progress (per layer and total) is drawn on stderr when it is a terminal. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/util.h"

/* As docker images says it: "just now" under a minute. */
static void ago(long long t, char *out, size_t cap)
{
    if ((long long)time(NULL) - t < 60)
        snprintf(out, cap, "%s", "just now");
    else
        cli_ago(t, out, cap);
}

/* "sha256:0123456789ab..." -> "0123456789ab"; "local:default" as it is. */
static const char *short_id(const char *id, char *out, size_t cap)
{
    if (!strncmp(id, "sha256:", 7))
        snprintf(out, cap, "%.12s", id + 7);
    else
        snprintf(out, cap, "%s", id);
    return out;
}

/* ---- progress ---- */

#define PROGRESS_MAX_LAYERS 64

struct progress {
    struct {
        char digest[80];
        uint64_t done, total;
    } layer[PROGRESS_MAX_LAYERS];
    int n, drawn;
    uint64_t last_ns;
};

static void progress_draw(struct progress *p)
{
    if (p->drawn)
        fprintf(stderr, "\033[%dA", p->drawn);
    uint64_t done = 0, total = 0;
    for (int i = 0; i < p->n; i++) {
        char a[32], b[32];
        cli_human_bytes(p->layer[i].done, a, sizeof(a));
        cli_human_bytes(p->layer[i].total, b, sizeof(b));
        const char *d = p->layer[i].digest;
        fprintf(stderr, "\r\033[K%.12s: %s %s/%s\n", !strncmp(d, "sha256:", 7) ? d + 7 : d,
                p->layer[i].done >= p->layer[i].total ? "done       " : "downloading", a, b);
        done += p->layer[i].done;
        total += p->layer[i].total;
    }
    char a[32], b[32];
    cli_human_bytes(done, a, sizeof(a));
    cli_human_bytes(total, b, sizeof(b));
    fprintf(stderr, "\r\033[Ktotal: %s/%s\n", a, b);
    p->drawn = p->n + 1;
    fflush(stderr);
}

static void on_progress(void *user, const char *digest, uint64_t done, uint64_t total)
{
    struct progress *p = user;
    int i;
    for (i = 0; i < p->n; i++)
        if (!strcmp(p->layer[i].digest, digest))
            break;
    if (i == p->n) {
        if (p->n == PROGRESS_MAX_LAYERS)
            return;
        snprintf(p->layer[p->n++].digest, sizeof(p->layer[0].digest), "%s", digest);
    }
    p->layer[i].done = done;
    p->layer[i].total = total;
    uint64_t now = util_now_ns(CLOCK_MONOTONIC);
    if (done >= total || now - p->last_ns > 100000000ull) {
        p->last_ns = now;
        progress_draw(p);
    }
}

/* Pulls ref with progress on a terminal unless quiet; prints the result on stdout
 * unless announce is 0. */
int cli_pull(cocoon_runtime *rt, const char *ref, int insecure, int quiet, int announce)
{
    cocoon_pull_options o;
    cocoon_pull_options_init(&o);
    o.insecure = insecure;
    o.quiet = quiet || !isatty(2);
    struct progress *p = calloc(1, sizeof(*p));
    if (!p) {
        cli_error("out of memory");
        return CLI_EXIT_RUNTIME;
    }
    if (!o.quiet) {
        o.progress = on_progress;
        o.user_data = p;
        fprintf(stderr, "pulling %s\n", ref);
    }
    cocoon_image_info info;
    cocoon_error err;
    int rc = cocoon_image_pull(rt, ref, &o, &info, &err);
    free(p);
    if (rc < 0)
        return cli_fail(&err);
    if (announce) {
        printf("Digest: %s\n%s\n", info.id, info.name);
    } else if (!o.quiet) {
        fprintf(stderr, "pulled %s (%s)\n", info.name, info.id);
    }
    return 0;
}

/* ---- commands ---- */

static const char pull_help[] = "usage: cocoon pull [--insecure] [-q|--quiet] REF\n"
                                "\n"
                                "Fetches an image (layers already here are not fetched again), checks every\n"
                                "digest and makes its disk base. REF: python:3.12, ghcr.io/org/tool:tag,\n"
                                "localhost:5000/x@sha256:... Prints the digest and the canonical reference.\n"
                                "\n"
                                "  --insecure   allow plain HTTP to this registry (or list hosts in\n"
                                "               COCOON_INSECURE_REGISTRIES=host:port,...)\n"
                                "  -q, --quiet  no progress display (also when stderr is not a terminal)\n";

int cmd_pull(int argc, char **argv)
{
    static const struct option longs[] = {
        {"insecure", no_argument, NULL, 'k'}, {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'}, {0}};
    int insecure = 0, quiet = 0, c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "qh", longs, NULL)) != -1) {
        switch (c) {
        case 'k': insecure = 1; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(pull_help, stdout); return 0;
        default: cli_error("unknown option %s (see `cocoon pull --help`)", argv[optind - 1]); return CLI_EXIT_RUNTIME;
        }
    }
    if (optind + 1 != argc) {
        cli_error("usage: cocoon pull [--insecure] [--quiet] REF");
        return CLI_EXIT_RUNTIME;
    }
    cocoon_runtime *rt;
    int rc = cli_open_runtime(&rt);
    if (rc)
        return rc;
    rc = cli_pull(rt, argv[optind], insecure, quiet, 1);
    cocoon_runtime_close(rt);
    return rc;
}

/* Opens the runtime, lists images (those loaded from load_path, or with NULL all that
 * are here) and hands them to show. Returns the exit code. */
static int show_images(const char *load_path, void (*show)(const cocoon_image_info *list, size_t n, void *arg),
                       void *arg)
{
    cocoon_runtime *rt;
    int rc = cli_open_runtime(&rt);
    if (rc)
        return rc;
    cocoon_image_info *list;
    size_t n;
    cocoon_error err;
    if ((load_path ? cocoon_image_load(rt, load_path, &list, &n, &err) : cocoon_image_list(rt, &list, &n, &err)) < 0) {
        rc = cli_fail(&err);
    } else {
        show(list, n, arg);
        cocoon_image_list_free(list);
    }
    cocoon_runtime_close(rt);
    return rc;
}

static void print_loaded(const cocoon_image_info *list, size_t n, void *unused)
{
    for (size_t i = 0; i < n; i++)
        printf("Loaded image: %s (%s)\n", list[i].name[0] ? list[i].name : "<untagged>", list[i].id);
}

int cmd_load(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: cocoon load [-i] FILE|DIR\n\nLoads the images of a `docker save` tarball or an OCI layout "
                 "(directory or tarball).");
            return 0;
        }
        if ((!strcmp(argv[i], "-i") || !strcmp(argv[i], "--input")) && i + 1 < argc)
            path = argv[++i];
        else if (argv[i][0] == '-' || path) {
            cli_error("usage: cocoon load [-i] FILE|DIR");
            return CLI_EXIT_RUNTIME;
        } else
            path = argv[i];
    }
    if (!path) {
        cli_error("usage: cocoon load [-i] FILE|DIR");
        return CLI_EXIT_RUNTIME;
    }
    return show_images(path, print_loaded, NULL);
}

static json_t *info_json(const cocoon_image_info *m)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:b}", "id", m->id, "name", m->name, "repository",
                     m->repository, "tag", m->tag, "config_digest", m->config_digest, "base_path", m->base_path, "size",
                     (json_int_t)m->size, "created", (json_int_t)m->created, "boxes", (int)m->boxes, "pulled",
                     m->pulled);
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(j);
}

struct listing {
    int json, quiet;
};

static void print_images(const cocoon_image_info *list, size_t n, void *arg)
{
    const struct listing *o = arg;
    if (o->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, info_json(&list[i]));
        print_json(a);
    } else {
        if (!o->quiet)
            printf("%-40s  %-16s  %-14s  %-9s  %s\n", "REPOSITORY", "TAG", "ID", "SIZE", "CREATED");
        for (size_t i = 0; i < n; i++) {
            char id[520], size[32], when[64];
            short_id(list[i].id, id, sizeof(id));
            if (o->quiet) {
                printf("%s\n", id);
                continue;
            }
            cli_human_bytes(list[i].size, size, sizeof(size));
            ago(list[i].created, when, sizeof(when));
            const char *tag = list[i].tag[0] ? list[i].tag : list[i].pulled ? "<none>" : "(built-in)";
            printf("%-40s  %-16s  %-14s  %-9s  %s\n", list[i].repository[0] ? list[i].repository : "<none>", tag, id,
                   size, when);
        }
    }
}

int cmd_images(int argc, char **argv)
{
    struct listing o = {0, 0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            o.json = 1;
        else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet"))
            o.quiet = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: cocoon images [--json] [-q]\n\nLists images: pulled, loaded, and built-in ones used so far.");
            return 0;
        } else {
            cli_error("unexpected argument \"%s\" (see `cocoon images --help`)", argv[i]);
            return CLI_EXIT_RUNTIME;
        }
    }
    return show_images(NULL, print_images, &o);
}

/* The start of a command on the IMAGE... operands argv[first..]: --help (as argv[1]),
 * the usage error without operands, then the runtime. -1 with *rt open to go on, else
 * the exit code. */
static int open_for_images(int argc, char **argv, int first, const char *usage, const char *about, cocoon_runtime **rt)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("%s\n\n%s\n", usage, about);
        return 0;
    }
    if (first >= argc) {
        cli_error("%s", usage);
        return CLI_EXIT_RUNTIME;
    }
    int rc = cli_open_runtime(rt);
    return rc ? rc : -1;
}

int cmd_rmi(int argc, char **argv)
{
    int first = 1;
    cocoon_runtime *rt;
    int rc = open_for_images(argc, argv, first, "usage: cocoon rmi IMAGE...",
                             "Removes image names; an image goes with its last name, or when given by\n"
                             "id (refused while a box uses it: remove the box first).",
                             &rt);
    if (rc >= 0)
        return rc;
    rc = 0;
    for (int i = first; i < argc; i++) {
        cocoon_error err;
        cocoon_image_info info;
        if (cocoon_image_inspect(rt, argv[i], &info, NULL, &err) < 0 || cocoon_image_remove(rt, argv[i], &err) < 0) {
            cli_fail(&err);
            rc = 1;
            continue;
        }
        if (info.name[0])
            printf("Untagged: %s\n", info.name);
        /* The image goes with its last name only (or when given by id). */
        cocoon_image_info after;
        if (cocoon_image_inspect(rt, info.id, &after, NULL, &err) < 0 && err.code == COCOON_E_NOT_FOUND)
            printf("Deleted: %s\n", info.id);
    }
    cocoon_runtime_close(rt);
    return rc;
}

static int image_prune(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: cocoon image prune\n\nRemoves every image no box uses, and the blobs and bases no image "
                 "needs.");
            return 0;
        } else if (strcmp(argv[i], "-f") && strcmp(argv[i], "--force") && strcmp(argv[i], "-a") &&
                   strcmp(argv[i], "--all")) {
            cli_error("unexpected argument \"%s\" (see `cocoon image prune --help`)", argv[i]);
            return CLI_EXIT_RUNTIME;
        }
    cocoon_runtime *rt;
    int rc = cli_open_runtime(&rt);
    if (rc)
        return rc;
    size_t removed;
    uint64_t freed;
    cocoon_error err;
    if (cocoon_image_prune(rt, &removed, &freed, &err) < 0)
        rc = cli_fail(&err);
    else {
        char b[32];
        cli_human_bytes(freed, b, sizeof(b));
        printf("Deleted images: %zu\nTotal reclaimed space: %s\n", removed, b);
    }
    cocoon_runtime_close(rt);
    return rc;
}

static int image_inspect(int argc, char **argv)
{
    int first = 1;
    if (argc > 1 && !strcmp(argv[1], "--json"))
        first = 2; /* the output is JSON anyway */
    cocoon_runtime *rt;
    int rc = open_for_images(argc, argv, first, "usage: cocoon image inspect IMAGE...",
                             "Prints images as JSON, with their OCI config.", &rt);
    if (rc >= 0)
        return rc;
    rc = 0;
    json_t *a = json_array();
    for (int i = first; i < argc; i++) {
        cocoon_image_info info;
        char *cfg = NULL;
        cocoon_error err;
        if (cocoon_image_inspect(rt, argv[i], &info, &cfg, &err) < 0) {
            cli_fail(&err);
            rc = 1;
            continue;
        }
        json_t *o = info_json(&info);
        json_t *c = cfg ? json_loads(cfg, 0, NULL) : NULL;
        json_object_set_new(o, "config", c ? c : json_null());
        free(cfg);
        json_array_append_new(a, o);
    }
    print_json(a);
    cocoon_runtime_close(rt);
    return rc;
}

static const char image_help[] = "usage: cocoon image COMMAND\n"
                                 "\n"
                                 "  ls [--json]             list images (as `cocoon images`)\n"
                                 "  pull [OPTIONS] REF      fetch an image (as `cocoon pull`)\n"
                                 "  load FILE|DIR           load a docker save tarball or an OCI layout\n"
                                 "  rm IMAGE...             remove images (as `cocoon rmi`)\n"
                                 "  prune                   remove images no box uses, and unneeded blobs\n"
                                 "  inspect IMAGE...        show images and their config as JSON\n";

int cmd_image(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(image_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_RUNTIME : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "ls") || !strcmp(sub, "list"))
        return cmd_images(argc - 1, argv + 1);
    if (!strcmp(sub, "pull"))
        return cmd_pull(argc - 1, argv + 1);
    if (!strcmp(sub, "load"))
        return cmd_load(argc - 1, argv + 1);
    if (!strcmp(sub, "rm"))
        return cmd_rmi(argc - 1, argv + 1);
    if (!strcmp(sub, "prune"))
        return image_prune(argc - 1, argv + 1);
    if (!strcmp(sub, "inspect"))
        return image_inspect(argc - 1, argv + 1);
    cli_error("unknown image command \"%s\" (see `cocoon image --help`)", sub);
    return CLI_EXIT_RUNTIME;
}
