/* `cocoon snapshot create|ls|inspect|rm|restore|compact`, `cocoon export` and `cocoon import`:
 * disk snapshots of stopped boxes and boxes carried as one file, over the snapshot
 * and export functions of cocoon.h. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char snapshot_help[] =
    "usage: cocoon snapshot COMMAND ...\n"
    "\n"
    "Disk snapshots of boxes: the box's disk so far is kept read-only and the box goes on\n"
    "in a new layer over it. A running box is snapshotted live: its file system is synced\n"
    "and frozen and the VM paused for the switch (milliseconds).\n"
    "\n"
    "  create [--name NAME] BOX     snapshot a box's disk, stopped or running (prints the\n"
    "                               snapshot's name)\n"
    "  ls [--json] [BOX]            list snapshots (of BOX)\n"
    "  inspect [--json] SNAPSHOT    show a snapshot\n"
    "  rm SNAPSHOT...               remove snapshots (refused while a box or snapshot uses one)\n"
    "  restore BOX SNAPSHOT         put a stopped box back to a snapshot of it (what it wrote\n"
    "                               since is lost)\n"
    "  compact BOX                  merge a stopped box's disk layers into one over its image\n"
    "                               (its snapshots stay, no longer used by it)\n"
    "\n"
    "SNAPSHOT is an id, a unique id prefix or a name. A box stands on at most 14 snapshots;\n"
    "compact it to stand on none.\n";

static json_t *info_json(const cocoon_snapshot_info *s)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:I, s:I, s:I, s:i, s:i}", "id", s->id, "name", s->name, "box_id",
                     s->box_id, "box_name", s->box_name, "parent", s->parent[0] ? s->parent : NULL, "image", s->image,
                     "created", (json_int_t)s->created, "size", (json_int_t)s->size, "virtual_size",
                     (json_int_t)s->virtual_size, "depth", (int)s->depth, "users", (int)s->users);
}

static int json_flag(int argc, char **argv, const char *cmd, int *json)
{
    return cli_simple_opts(argc, argv, cmd, snapshot_help, "json", 0, json);
}

static int create_in(cocoon_box *box, int i, void *arg)
{
    (void)i;
    cocoon_snapshot_options o;
    cocoon_snapshot_options_init(&o);
    o.name = arg;
    cocoon_snapshot_info info;
    cocoon_error err;
    if (cocoon_snapshot_create(box, &o, &info, &err) < 0)
        return cli_fail(&err);
    printf("%s\n", info.name);
    return 0;
}

static int snap_create(int argc, char **argv)
{
    static const struct option lo[] = {{"name", required_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'}, {0}};
    const char *name = NULL;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(snapshot_help, stdout);
            return 0;
        }
        if (c != 'n')
            return cli_usage_error("snapshot create", "unknown option");
        name = optarg;
    }
    if (optind != argc - 1)
        return cli_usage_error("snapshot create", "give one box");
    return cli_each_box(argv + optind, 1, create_in, (void *)name);
}

static int snap_ls(int argc, char **argv)
{
    int json;
    int r = json_flag(argc, argv, "snapshot ls", &json);
    if (r >= 0)
        return r;
    if (argc - optind > 1)
        return cli_usage_error("snapshot ls", "give at most one box");
    cocoon_runtime *rt;
    if (cli_open_runtime(&rt) < 0)
        return CLI_EXIT_RUNTIME;
    cocoon_error err;
    cocoon_snapshot_info *list = NULL;
    size_t n = 0;
    int rc = 0;
    if (cocoon_snapshot_list(rt, optind < argc ? argv[optind] : NULL, &list, &n, &err) < 0) {
        rc = cli_fail(&err);
    } else if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            json_array_append_new(arr, info_json(&list[i]));
        rc = cli_print_json(arr);
    } else {
        printf("%-12s  %-24s  %-20s  %-8s  %-14s  %s\n", "ID", "NAME", "BOX", "SIZE", "CREATED", "USED BY");
        for (size_t i = 0; i < n; i++) {
            char size[32], ago[64];
            cli_human_bytes(list[i].size, size, sizeof(size));
            cli_ago(list[i].created, ago, sizeof(ago));
            printf("%-12s  %-24s  %-20s  %-8s  %-14s  %u\n", list[i].id, list[i].name,
                   list[i].box_name[0] ? list[i].box_name : list[i].box_id, size, ago, list[i].users);
        }
    }
    cocoon_snapshot_list_free(list);
    cocoon_runtime_close(rt);
    return rc;
}

static int snap_inspect(int argc, char **argv)
{
    int json;
    int r = json_flag(argc, argv, "snapshot inspect", &json);
    if (r >= 0)
        return r;
    if (optind != argc - 1)
        return cli_usage_error("snapshot inspect", "give one snapshot");
    cocoon_runtime *rt;
    if (cli_open_runtime(&rt) < 0)
        return CLI_EXIT_RUNTIME;
    cocoon_error err;
    cocoon_snapshot_info s;
    int rc = 0;
    if (cocoon_snapshot_inspect(rt, argv[optind], &s, &err) < 0) {
        rc = cli_fail(&err);
    } else if (json) {
        rc = cli_print_json(info_json(&s));
    } else {
        char size[32], vsize[32], ago[64];
        cli_human_bytes(s.size, size, sizeof(size));
        cli_human_bytes(s.virtual_size, vsize, sizeof(vsize));
        cli_ago(s.created, ago, sizeof(ago));
        printf("id:        %s\nname:      %s\nbox:       %s%s%s%s\nimage:     %s\ncreated:   %s\n", s.id, s.name,
               s.box_id, s.box_name[0] ? " (" : "", s.box_name, s.box_name[0] ? ")" : "", s.image, ago);
        printf("parent:    %s\ndepth:     %u\nsize:      %s (disk %s)\nused by:   %u\n",
               s.parent[0] ? s.parent : "(the image)", s.depth, size, vsize, s.users);
    }
    cocoon_runtime_close(rt);
    return rc;
}

static int snap_rm(int argc, char **argv)
{
    int r = cli_simple_opts(argc, argv, "snapshot rm", snapshot_help, NULL, 0, NULL);
    if (r >= 0)
        return r;
    if (optind >= argc)
        return cli_usage_error("snapshot rm", "give at least one snapshot");
    cocoon_runtime *rt;
    if (cli_open_runtime(&rt) < 0)
        return CLI_EXIT_RUNTIME;
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        cocoon_error err;
        if (cocoon_snapshot_remove(rt, argv[i], &err) < 0)
            rc = cli_fail(&err);
        else
            printf("%s\n", argv[i]);
    }
    cocoon_runtime_close(rt);
    return rc;
}

static int restore_in(cocoon_box *box, int i, void *arg)
{
    (void)i;
    cocoon_error err;
    return cocoon_snapshot_restore(box, arg, &err) < 0 ? cli_fail(&err) : 0;
}

static int snap_restore(int argc, char **argv)
{
    int r = cli_simple_opts(argc, argv, "snapshot restore", snapshot_help, NULL, 0, NULL);
    if (r >= 0)
        return r;
    if (optind != argc - 2)
        return cli_usage_error("snapshot restore", "give a box and a snapshot");
    return cli_each_box(argv + optind, 1, restore_in, argv[optind + 1]);
}

static int compact_in(cocoon_box *box, int i, void *arg)
{
    (void)i;
    (void)arg;
    cocoon_compact_options o;
    cocoon_compact_options_init(&o);
    cocoon_compact_info info;
    cocoon_error err;
    if (cocoon_box_compact(box, &o, &info, &err) < 0)
        return cli_fail(&err);
    char before[32], after[32];
    cli_human_bytes(info.bytes_before, before, sizeof(before));
    cli_human_bytes(info.bytes_after, after, sizeof(after));
    const char *name = cocoon_box_name(box);
    if (info.layers_before == info.layers_after) {
        printf("box %s%s%s%s: already one layer over its image (%s), nothing to do\n", cocoon_box_id(box),
               name[0] ? " (" : "", name, name[0] ? ")" : "", after);
        return 0;
    }
    printf("box %s%s%s%s: %u layers (%s) -> %u layer over its image (%s): %llu clusters of data, %llu of zeros\n",
           cocoon_box_id(box), name[0] ? " (" : "", name, name[0] ? ")" : "", info.layers_before, before,
           info.layers_after, after, (unsigned long long)info.data_clusters, (unsigned long long)info.zero_clusters);
    printf("no longer stands on %u snapshot%s:", info.nreleased, info.nreleased == 1 ? "" : "s");
    for (unsigned k = 0; k < info.nreleased; k++)
        printf(" %s", info.released[k]);
    printf("\n");
    return 0;
}

static int snap_compact(int argc, char **argv)
{
    int r = cli_simple_opts(argc, argv, "snapshot compact", snapshot_help, NULL, 0, NULL);
    if (r >= 0)
        return r;
    if (optind != argc - 1)
        return cli_usage_error("snapshot compact", "give one box");
    return cli_each_box(argv + optind, 1, compact_in, NULL);
}

int cmd_snapshot(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {{"create", snap_create},   {"ls", snap_ls}, {"list", snap_ls},
                {"inspect", snap_inspect}, {"rm", snap_rm}, {"restore", snap_restore},
                {"compact", snap_compact}, {NULL, NULL}};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(snapshot_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_RUNTIME : 0;
    }
    for (int i = 0; subs[i].name; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].fn(argc - 1, argv + 1);
    return cli_usage_error("snapshot", "unknown subcommand (create, ls, inspect, rm, restore, compact)");
}

static const char export_help[] = "usage: cocoon export BOX|SNAPSHOT FILE\n"
                                  "\n"
                                  "Writes a stopped box, or a snapshot, to FILE: a zstd-compressed tar holding its\n"
                                  "config, its disk (flattened, zero ranges left out) and a manifest with each\n"
                                  "member's sha256. `cocoon import FILE` makes a box of it here or elsewhere.\n";

int cmd_export(int argc, char **argv)
{
    int r = cli_simple_opts(argc, argv, "export", export_help, NULL, 0, NULL);
    if (r >= 0)
        return r;
    if (optind != argc - 2)
        return cli_usage_error("export", "give a box or snapshot and a file");
    cocoon_runtime *rt;
    if (cli_open_runtime(&rt) < 0)
        return CLI_EXIT_RUNTIME;
    cocoon_error err;
    int rc = cocoon_export(rt, argv[optind], argv[optind + 1], &err) < 0 ? cli_fail(&err) : 0;
    cocoon_runtime_close(rt);
    return rc;
}

static const char import_help[] = "usage: cocoon import [--name NAME] FILE\n"
                                  "\n"
                                  "Makes a new, stopped box from a file `cocoon export` wrote (prints its id). The\n"
                                  "archive is checked whole (format version, members, sizes, sha256) before the box\n"
                                  "appears; a refused archive leaves nothing behind.\n";

int cmd_import(int argc, char **argv)
{
    static const struct option lo[] = {{"name", required_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'}, {0}};
    cocoon_import_options o;
    cocoon_import_options_init(&o);
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(import_help, stdout);
            return 0;
        }
        if (c != 'n')
            return cli_usage_error("import", "unknown option");
        o.name = optarg;
    }
    if (optind != argc - 1)
        return cli_usage_error("import", "give one file");
    cocoon_runtime *rt;
    if (cli_open_runtime(&rt) < 0)
        return CLI_EXIT_RUNTIME;
    cocoon_error err;
    cocoon_box *box;
    int rc = 0;
    if (cocoon_import(rt, argv[optind], &o, &box, &err) < 0) {
        rc = cli_fail(&err);
    } else {
        printf("%s\n", cocoon_box_id(box));
        cocoon_box_close(box);
    }
    cocoon_runtime_close(rt);
    return rc;
}
