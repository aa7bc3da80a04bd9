/* `cocoon fs ls|stat|mkdir|rm|mv`: file operations on a running box (cocoon_file_stat,
 * _list, _mkdir, _remove, _move). Names from the guest are escaped before they reach
 * the terminal; --json prints the FileInfo objects of the REST API. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "lib/fsops_json.h"
#include "util/util.h"

static const char fs_usage[] =
    "usage: cocoon fs COMMAND [OPTIONS] BOX PATH [PATH2]\n"
    "\n"
    "File operations in a running box (PATH: an absolute path in the box):\n"
    "  ls [--json] BOX PATH            list a directory: mode, size, modification time (UTC), name\n"
    "  stat [--json] BOX PATH          show one path (a final symlink is shown, not followed)\n"
    "  mkdir [-p] [-m MODE] BOX PATH   make a directory (-p: with its parents, an existing one is\n"
    "                                  fine; MODE in octal, default 755)\n"
    "  rm [-r] BOX PATH                remove a file, symlink or empty directory (-r: a whole tree,\n"
    "                                  never following a symlink, at most 256 levels deep)\n"
    "  mv [-n] BOX FROM TO             rename inside the box (-n: refuse an existing TO)\n"
    "\n"
    "--json prints FileInfo objects (ls: {\"entries\": [...]}), as `cocoon serve` answers.\n"
    "A listing holds at most 100000 entries.\n";

struct fs_args {
    const char *sub;
    const char *path, *path2;
    int json, flag;
    unsigned mode;
};

static void mode_text(char out[11], const cocoon_file_info *fi)
{
    static const char types[] = "?-dlo";
    const char *rwx = "rwxrwxrwx";
    out[0] = fi->type >= 1 && fi->type <= 4 ? types[fi->type] : '?';
    if (out[0] == 'o')
        out[0] = '?';
    for (int i = 0; i < 9; i++)
        out[1 + i] = (fi->mode & (0400u >> i)) ? rwx[i] : '-';
    if (fi->mode & 04000)
        out[3] = out[3] == 'x' ? 's' : 'S';
    if (fi->mode & 02000)
        out[6] = out[6] == 'x' ? 's' : 'S';
    if (fi->mode & 01000)
        out[9] = out[9] == 'x' ? 't' : 'T';
    out[10] = 0;
}

static void print_line(const cocoon_file_info *fi)
{
    char mode[11], when[32], name[1100], target[4200];
    mode_text(mode, fi);
    time_t t = (time_t)fi->mtime;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(when, sizeof(when), "?");
    util_escape_text(name, sizeof(name), fi->name, strlen(fi->name));
    printf("%s %12" PRIu64 " %s %s", mode, fi->size, when, name);
    if (fi->type == COCOON_FILE_SYMLINK)
        printf(" -> %s", util_escape_text(target, sizeof(target), fi->link_target, strlen(fi->link_target)));
    putchar('\n');
}

static int print_json(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!s) {
        cli_error("out of memory");
        return CLI_EXIT_RUNTIME;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

static int fs_ls(cocoon_box *box, const struct fs_args *a)
{
    cocoon_error err;
    cocoon_file_info *list;
    size_t n;
    if (cocoon_file_list(box, a->path, &list, &n, &err) < 0)
        return cli_fail(&err);
    int rc = 0;
    if (a->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            char path[4400];
            lib_file_join(path, sizeof(path), a->path, list[i].name);
            if (json_array_append_new(arr, lib_file_info_json(&list[i], path)) < 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        rc = print_json(arr ? json_pack("{s:o}", "entries", arr) : NULL);
    } else {
        for (size_t i = 0; i < n; i++)
            print_line(&list[i]);
    }
    cocoon_file_list_free(list);
    return rc;
}

static int fs_run(cocoon_box *box, int i, void *arg)
{
    const struct fs_args *a = arg;
    cocoon_error err;
    cocoon_file_info fi;
    int rc = 0;
    if (!strcmp(a->sub, "ls"))
        return fs_ls(box, a);
    if (!strcmp(a->sub, "stat")) {
        if (cocoon_file_stat(box, a->path, &fi, &err) < 0)
            return cli_fail(&err);
        if (a->json)
            return print_json(lib_file_info_json(&fi, a->path));
        print_line(&fi);
        return 0;
    }
    if (!strcmp(a->sub, "mkdir"))
        rc = cocoon_file_mkdir(box, a->path, a->mode, a->flag ? COCOON_MKDIR_PARENTS : 0, &err);
    else if (!strcmp(a->sub, "rm"))
        rc = cocoon_file_remove(box, a->path, a->flag ? COCOON_REMOVE_RECURSIVE : 0, &err);
    else
        rc = cocoon_file_move(box, a->path, a->path2, a->flag ? COCOON_MOVE_NO_REPLACE : 0, &err);
    return rc < 0 ? cli_fail(&err) : 0;
}

int cmd_fs(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(fs_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct fs_args a = {.sub = argv[1]};
    /* the one option letter each subcommand takes, besides --json (ls, stat) and -m (mkdir) */
    const char *letters = !strcmp(a.sub, "mkdir") ? "hpm:"
                          : !strcmp(a.sub, "rm")  ? "hrR"
                          : !strcmp(a.sub, "mv")  ? "hn"
                                                  : "h";
    if (strcmp(a.sub, "ls") && strcmp(a.sub, "stat") && strcmp(a.sub, "mkdir") && strcmp(a.sub, "rm") &&
        strcmp(a.sub, "mv")) {
        cli_error("fs: unknown command \"%s\" (see `cocoon fs --help`)", a.sub);
        return 2;
    }
    int json_ok = !strcmp(a.sub, "ls") || !strcmp(a.sub, "stat");
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"parents", no_argument, NULL, 'p'},
                                       {"mode", required_argument, NULL, 'm'},
                                       {"recursive", no_argument, NULL, 'r'},
                                       {"no-clobber", no_argument, NULL, 'n'},
                                       {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc - 1, argv + 1, letters, lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(fs_usage, stdout);
            return 0;
        } else if (c == 'j' && json_ok) {
            a.json = 1;
        } else if (c == 'm' && !strcmp(a.sub, "mkdir")) {
            char *end;
            unsigned long m = strtoul(optarg, &end, 8);
            if (!*optarg || *end || m > 07777) {
                cli_error("fs mkdir: -m takes an octal mode up to 7777, not \"%s\"", optarg);
                return 2;
            }
            a.mode = (unsigned)m;
        } else if ((c == 'p' && !strcmp(a.sub, "mkdir")) || ((c == 'r' || c == 'R') && !strcmp(a.sub, "rm")) ||
                   (c == 'n' && !strcmp(a.sub, "mv"))) {
            a.flag = 1;
        } else {
            cli_error("fs %s: unknown option %s (see `cocoon fs --help`)", a.sub, argv[optind]);
            return 2;
        }
    }
    int want = !strcmp(a.sub, "mv") ? 3 : 2, have = argc - 1 - optind;
    if (have != want) {
        cli_error("fs %s: expected BOX %s, got %d argument%s (see `cocoon fs --help`)", a.sub,
                  want == 3 ? "FROM TO" : "PATH", have, have == 1 ? "" : "s");
        return 2;
    }
    char **rest = argv + 1 + optind;
    a.path = rest[1];
    a.path2 = want == 3 ? rest[2] : NULL;
    return cli_each_box(rest, 1, fs_run, &a);
}
