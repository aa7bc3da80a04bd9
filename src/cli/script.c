/* `cocoon script BOX NAME [ARGS...]`: runs a named script of the config file a box was
 * made from (its record, spec.json), with the box's env, workdir and user, streamed
 * output and the script's exit code. ARGS follow a list script's argv; a text script
 * (/bin/sh -c TEXT) gets them as "$@". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/confile.h"

static const char script_help[] =
    "usage: cocoon script BOX NAME [ARGS...]\n"
    "\n"
    "Runs the script NAME of the config file BOX was made from (`cocoon up` or `cocoon run\n"
    "--config`) in the running box, with the file's env, workdir and user, and exits with\n"
    "its exit code. ARGS are appended: to a list script's words, or as \"$@\" to a text\n"
    "script (run by /bin/sh -c).\n";

/* The script's words plus args: a text script ("/bin/sh", "-c", TEXT) becomes
 * /bin/sh -c 'TEXT "$@"' sh ARGS..., so the shell sees the args as its own. */
static const char **script_argv(json_t *words, char **args, int nargs, char **owned)
{
    size_t n = json_array_size(words);
    const char **argv = calloc(n + (size_t)nargs + 2, sizeof(*argv));
    if (!argv)
        return NULL;
    for (size_t i = 0; i < n; i++)
        argv[i] = json_string_value(json_array_get(words, i));
    *owned = NULL;
    if (nargs && n == 3 && !strcmp(argv[0], "/bin/sh") && !strcmp(argv[1], "-c")) {
        if (asprintf(owned, "%s \"$@\"", argv[2]) < 0) {
            free(argv);
            return NULL;
        }
        argv[2] = *owned;
        argv[n++] = "sh";
    }
    for (int i = 0; i < nargs; i++)
        argv[n++] = args[i];
    return argv;
}

static int run_script(cocoon_box *box, const char *name, char **args, int nargs)
{
    int damaged;
    json_t *spec = cli_box_spec(box, &damaged);
    json_t *scripts = json_object_get(json_object_get(spec, "box"), "scripts");
    json_t *words = json_object_get(scripts, name);
    int code = 0;
    if (!spec) {
        cli_error(damaged ? "box %s: its record of the config file it came from (spec.json) is damaged"
                          : "box %s was not made from a config file (`cocoon up`, `cocoon run --config`): it has no "
                            "scripts",
                  cocoon_box_name(box)[0] ? cocoon_box_name(box) : cocoon_box_id(box));
        return CLI_EXIT_RUNTIME;
    }
    if (!words) {
        char list[512] = "";
        const char *key;
        json_t *v;
        json_object_foreach(scripts, key, v)
        {
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", list[0] ? ", " : "", key);
        }
        cli_error("box %s has no script \"%s\" (%s%s)",
                  cocoon_box_name(box)[0] ? cocoon_box_name(box) : cocoon_box_id(box), name,
                  list[0] ? "its scripts: " : "it has no scripts in ",
                  list[0] ? list : json_string_value(json_object_get(spec, "file")));
        json_decref(spec);
        return CLI_EXIT_RUNTIME;
    }
    if (!cocoon_box_is_running(box)) {
        cli_error("box %s is not running (start it with `cocoon up %s` or `cocoon start %s`)", cocoon_box_name(box),
                  cocoon_box_name(box), cocoon_box_name(box));
        json_decref(spec);
        return CLI_EXIT_RUNTIME;
    }
    char *owned;
    const char **argv = script_argv(words, args, nargs, &owned);
    cocoon_command_options o;
    cocoon_command_options_init(&o);
    o.argv = argv;
    o.entrypoint = ""; /* the script runs as written, not behind the image's entrypoint */
    cocoon_command cmd = {0};
    cocoon_error err;
    if (!argv) {
        cli_error("out of memory");
        code = CLI_EXIT_RUNTIME;
    } else if (cocoon_box_command(box, &o, &cmd, &err) < 0) {
        code = cli_fail(&err);
    } else {
        struct cli_cmd c = {
            .argv = (const char **)cmd.argv, .env = (const char **)cmd.env, .workdir = cmd.cwd, .user = cmd.user};
        code = cli_exec_in_box(box, &c);
    }
    cocoon_command_free(&cmd);
    free(argv);
    free(owned);
    json_decref(spec);
    return code;
}

struct script_args {
    const char *name;
    char **args;
    int nargs;
};

static int script_in(cocoon_box *box, int i, void *arg)
{
    struct script_args *a = arg;
    return run_script(box, a->name, a->args, a->nargs);
}

int cmd_script(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(script_help, stdout);
        return 0;
    }
    if (argc < 3)
        return cli_usage_error("script", "which box and script? usage: cocoon script BOX NAME [ARGS...]");
    int at = 1;
    struct script_args a = {.name = argv[at + 1], .args = argv + at + 2, .nargs = argc - at - 2};
    if (a.nargs > 0 && !strcmp(a.args[0], "--")) {
        a.args++;
        a.nargs--;
    }
    cli_signals_init();
    return cli_each_box(&argv[at], 1, script_in, &a);
}
