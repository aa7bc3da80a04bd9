/* `cocoon up` and `cocoon down`: the boxes of a config file brought to what the file
 * says, in the file's order. up is idempotent: an unchanged running box is left alone,
 * a stopped one started, a changed one reported (recreated only with --recreate). A box
 * remembers the file it was made from (spec.json), so neither command touches a box of
 * the same name made otherwise. up stops at the first failure, leaving the boxes before
 * it as they are. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/confile.h"

struct up_ctx {
    cocoon_runtime *rt;
    json_t *cfg;
    const char *path; /* as given, for messages */
    int recreate;
    int changed; /* boxes left unchanged although the file changed them */
};

/* The box of that exact name (cocoon_box_open also takes id prefixes), or NULL. */
static cocoon_box *open_named(cocoon_runtime *rt, const char *name, cocoon_error *err)
{
    cocoon_box *box;
    if (cocoon_box_open(rt, name, &box, err) < 0)
        return NULL;
    if (strcmp(cocoon_box_name(box), name)) {
        cocoon_box_close(box);
        err->code = COCOON_E_NOT_FOUND;
        return NULL;
    }
    return box;
}

/* 1 when the record says `up` made the box from this very file. */
static int made_by_up_from(json_t *spec, json_t *cfg)
{
    return spec && !strcmp(json_string_value(json_object_get(spec, "origin")), CONFIG_ORIGIN_UP) &&
           json_equal(json_object_get(spec, "file"), json_object_get(cfg, "file"));
}

static void not_ours(const char *name, json_t *spec, int damaged, const char *verb)
{
    if (damaged)
        cli_error("%s: its record of how it was made (spec.json) is damaged; %s refused (remove it with `cocoon rm -f "
                  "%s`)",
                  name, verb, name);
    else if (!spec)
        cli_error(
            "%s: a box of that name exists and was not made by `cocoon up`; %s refused (remove it with `cocoon rm "
            "-f %s`, or rename the box in the file)",
            name, verb, name);
    else
        cli_error(
            "%s: a box of that name was made by `cocoon %s` from %s; %s refused (remove it with `cocoon rm -f %s`, "
            "or rename the box in the file)",
            name, json_string_value(json_object_get(spec, "origin")), json_string_value(json_object_get(spec, "file")),
            verb, name);
}

/* The box's `command` (and `restart`) of the file as its main process, with the box's
 * env, workdir and user (spec.json, already written) and its image's. */
static int set_main_from_spec(cocoon_box *box, json_t *spec_box)
{
    json_t *command = json_object_get(spec_box, "command");
    if (!json_is_array(command))
        return 0;
    size_t n = json_array_size(command);
    const char **argv = calloc(n + 1, sizeof(*argv));
    if (!argv)
        return -1;
    for (size_t i = 0; i < n; i++)
        argv[i] = json_string_value(json_array_get(command, i));
    cocoon_command_options o;
    cocoon_command_options_init(&o);
    o.argv = argv;
    cocoon_command cmd;
    cocoon_error err;
    int rc = cocoon_box_command(box, &o, &cmd, &err);
    free(argv);
    if (rc == 0) {
        rc = cocoon_box_set_main(box, &cmd, json_string_value(json_object_get(spec_box, "restart")), &err);
        cocoon_command_free(&cmd);
    }
    return rc < 0 ? cli_fail(&err), -1 : 0;
}

/* Creates, records and starts the box; a box that does not come up is removed, so the
 * next `up` starts over. */
static int create_box(struct up_ctx *u, json_t *spec_box, const char *name)
{
    cocoon_box_options o;
    cocoon_box_options_init(&o);
    struct cli_spec_lists lists;
    cli_config_box_options(spec_box, &o, &lists);
    o.name = name;
    cocoon_error err;
    cocoon_box *box = NULL;
    int rc = cli_pull_if_missing(u->rt, o.image);
    if (rc == 0 && cocoon_box_create(u->rt, &o, &box, &err) < 0)
        rc = cli_fail(&err);
    cli_spec_lists_free(&lists);
    if (rc == 0 && cli_box_spec_write(box, CONFIG_ORIGIN_UP, u->cfg, spec_box) < 0)
        rc = CLI_EXIT_RUNTIME;
    if (rc == 0 && set_main_from_spec(box, spec_box) < 0)
        rc = CLI_EXIT_RUNTIME;
    if (rc == 0 && cli_health_from_spec(box, spec_box) < 0)
        rc = CLI_EXIT_RUNTIME;
    if (rc == 0 && cocoon_box_start_flags(box, COCOON_START_DETACHED, &err) < 0)
        rc = cli_fail(&err);
    if (rc != 0 && box && cocoon_box_remove(box, 1, &err) < 0)
        cli_fail(&err);
    if (box)
        cocoon_box_close(box);
    return rc ? CLI_EXIT_RUNTIME : 0;
}

static int up_one(struct up_ctx *u, json_t *spec_box)
{
    const char *name = json_string_value(json_object_get(spec_box, "name"));
    cocoon_error err;
    cocoon_box *box = open_named(u->rt, name, &err);
    if (!box && err.code != COCOON_E_NOT_FOUND)
        return cli_fail(&err);
    if (!box) {
        if (create_box(u, spec_box, name) != 0)
            return CLI_EXIT_RUNTIME;
        printf("%s: created and started\n", name);
        return 0;
    }
    int damaged, rc = 0;
    json_t *spec = cli_box_spec(box, &damaged);
    json_t *old = json_object_get(spec, "box");
    if (!made_by_up_from(spec, u->cfg)) {
        not_ours(name, spec, damaged, "up");
        rc = CLI_EXIT_RUNTIME;
    } else if (!json_equal(json_object_get(old, "digest"), json_object_get(spec_box, "digest"))) {
        char diff[1024];
        config_box_diff(old, spec_box, diff, sizeof(diff));
        if (!u->recreate) {
            printf("%s: changed (%s); run `cocoon up --recreate %s`\n", name, diff[0] ? diff : "spec", name);
            u->changed++;
        } else if (cocoon_box_remove(box, 1, &err) < 0) {
            rc = cli_fail(&err);
        } else {
            cocoon_box_close(box);
            box = NULL;
            rc = create_box(u, spec_box, name);
            if (rc == 0)
                printf("%s: recreated (%s)\n", name, diff[0] ? diff : "spec");
        }
    } else {
        /* Same spec; the scripts may still have changed: the record follows the file. */
        if (!json_equal(old, spec_box) && cli_box_spec_write(box, CONFIG_ORIGIN_UP, u->cfg, spec_box) < 0)
            rc = CLI_EXIT_RUNTIME;
        else if (cocoon_box_is_running(box))
            printf("%s: up to date\n", name);
        else if (cocoon_box_start_flags(box, COCOON_START_DETACHED, &err) < 0)
            rc = cli_fail(&err);
        else
            printf("%s: started\n", name);
    }
    json_decref(spec);
    if (box)
        cocoon_box_close(box);
    return rc;
}

static const char up_help[] = "usage: cocoon up [-f FILE] [--recreate] [NAME...]\n"
                              "\n"
                              "Creates and starts the boxes of a config file (default ./cocoon.yaml, else\n"
                              "./cocoon.yml; docs/config.md), or the NAMEd ones, in the file's order. A box that is\n"
                              "running with the file's spec is left alone, a stopped one is started, and one whose\n"
                              "spec changed in the file is reported and left as it is unless --recreate (which\n"
                              "removes it, disk included, and creates it again). A box of the same name not made\n"
                              "by `up` from this file is refused. Stops at the first failure; the boxes before it\n"
                              "stay up. Exits 0 when every box matches the file, 1 when a changed box was left as\n"
                              "it is, 125 on a failure.\n";

static const char down_help[] = "usage: cocoon down [-f FILE] [--keep] [NAME...]\n"
                                "\n"
                                "Stops and removes the boxes `cocoon up` made from a config file (or the NAMEd\n"
                                "ones), in the reverse of the file's order; --keep only stops them. A box of the\n"
                                "same name made otherwise is refused and left alone.\n";

/* -f FILE and one flag; -1 when parsed (names from optind), else an exit code. */
static int parse_opts(int argc, char **argv, const char *cmd, const char *help, const char *flag, const char **file,
                      int *set)
{
    const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                {"file", required_argument, NULL, 'f'},
                                {flag, no_argument, NULL, 1},
                                {NULL, 0, NULL, 0}};
    optind = 0;
    opterr = 0;
    int c;
    *file = NULL;
    *set = 0;
    while ((c = getopt_long(argc, argv, "hf:", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        } else if (c == 'f') {
            *file = optarg;
        } else if (c == 1) {
            *set = 1;
        } else {
            return cli_usage_error(cmd, "unknown option");
        }
    }
    return -1;
}

int cmd_up(int argc, char **argv)
{
    struct up_ctx u = {0};
    const char *file;
    int rc = parse_opts(argc, argv, "up", up_help, "recreate", &file, &u.recreate);
    if (rc >= 0)
        return rc;
    char **names = argv + optind;
    int n = argc - optind;
    u.path = cli_config_path(file);
    if (!(u.cfg = cli_config_load(u.path)))
        return CLI_EXIT_RUNTIME;
    if (cli_config_check_names(u.cfg, u.path, names, n) < 0) {
        json_decref(u.cfg);
        return CLI_EXIT_RUNTIME;
    }
    if ((rc = cli_open_runtime(&u.rt)) != 0) {
        json_decref(u.cfg);
        return rc;
    }
    size_t i;
    json_t *box;
    int code = 0;
    json_array_foreach(json_object_get(u.cfg, "boxes"), i, box)
    {
        const char *name = json_string_value(json_object_get(box, "name"));
        if (!cli_config_selected(names, n, name))
            continue;
        if (up_one(&u, box) != 0) {
            cli_error("up stopped at %s; the boxes before it are left as they are", name);
            code = CLI_EXIT_RUNTIME;
            break;
        }
    }
    cocoon_runtime_close(u.rt);
    json_decref(u.cfg);
    return code ? code : u.changed ? 1 : 0;
}

static int down_one(cocoon_runtime *rt, json_t *cfg, const char *name, int keep)
{
    cocoon_error err;
    cocoon_box *box = open_named(rt, name, &err);
    if (!box && err.code == COCOON_E_NOT_FOUND) {
        printf("%s: not there\n", name);
        return 0;
    }
    if (!box)
        return cli_fail(&err);
    int damaged, rc = 0;
    json_t *spec = cli_box_spec(box, &damaged);
    if (!made_by_up_from(spec, cfg)) {
        not_ours(name, spec, damaged, "down");
        rc = CLI_EXIT_RUNTIME;
    } else if (keep) {
        int was_running = cocoon_box_is_running(box);
        if (cocoon_box_stop(box, 0, &err) < 0)
            rc = cli_fail(&err);
        else
            printf("%s: %s\n", name, was_running ? "stopped" : "already stopped");
    } else if (cocoon_box_remove(box, 1, &err) < 0) {
        rc = cli_fail(&err);
    } else {
        printf("%s: removed\n", name);
    }
    json_decref(spec);
    cocoon_box_close(box);
    return rc;
}

int cmd_down(int argc, char **argv)
{
    const char *file;
    int keep;
    int rc = parse_opts(argc, argv, "down", down_help, "keep", &file, &keep);
    if (rc >= 0)
        return rc;
    char **names = argv + optind;
    int n = argc - optind;
    const char *path = cli_config_path(file);
    json_t *cfg = cli_config_load(path);
    if (!cfg)
        return CLI_EXIT_RUNTIME;
    cocoon_runtime *rt = NULL;
    if (cli_config_check_names(cfg, path, names, n) < 0) {
        json_decref(cfg);
        return CLI_EXIT_RUNTIME;
    }
    if ((rc = cli_open_runtime(&rt)) != 0) {
        json_decref(cfg);
        return rc;
    }
    json_t *boxes = json_object_get(cfg, "boxes");
    int code = 0;
    for (size_t i = json_array_size(boxes); i-- > 0;) {
        const char *name = json_string_value(json_object_get(json_array_get(boxes, i), "name"));
        if (cli_config_selected(names, n, name) && down_one(rt, cfg, name, keep) != 0)
            code = CLI_EXIT_RUNTIME;
    }
    cocoon_runtime_close(rt);
    json_decref(cfg);
    return code;
}
