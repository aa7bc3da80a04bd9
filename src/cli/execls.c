/* `cocoon exec --ls BOX`: the detached execs of a box (`exec -d`), running and finished,
 * with their state and exit code, from the records the monitor keeps (the newest 32
 * finished ones until the box's next start). Also their part of `inspect`. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void state_text(const cocoon_detached_info *x, char *out, size_t cap)
{
    char when[64];
    cli_ago(x->finished_at, when, sizeof(when));
    if (!strcmp(x->state, "exited") && x->signal)
        snprintf(out, cap, "killed (signal %d) %s", x->signal, when);
    else if (!strcmp(x->state, "exited"))
        snprintf(out, cap, "exited (%d) %s", x->exit_code, when);
    else
        snprintf(out, cap, "%s", x->state);
}

static int list_in(cocoon_box *box, int i, void *arg)
{
    (void)i;
    int json = *(int *)arg;
    cocoon_detached_info *list;
    size_t n;
    cocoon_error err;
    if (cocoon_box_detached_execs(box, &list, &n, &err) < 0)
        return cli_fail(&err);
    if (json) {
        int rc = cli_print_json(cli_detached_json(list, n));
        free(list);
        return rc;
    }
    printf("%-8s %-28s %s\n", "ID", "STATE", "COMMAND");
    for (size_t j = 0; j < n; j++) {
        char st[96];
        state_text(&list[j], st, sizeof(st));
        printf("%-8d %-28s %s\n", list[j].id, st, list[j].command);
    }
    free(list);
    return 0;
}

json_t *cli_detached_json(const cocoon_detached_info *list, size_t n)
{
    json_t *a = json_array();
    for (size_t j = 0; a && j < n; j++) {
        const cocoon_detached_info *x = &list[j];
        json_array_append_new(
            a, json_pack("{s:i, s:s, s:s, s:o, s:o, s:I, s:o}", "id", x->id, "command", x->command, "state", x->state,
                         "exit_code", x->exit_code >= 0 ? json_integer(x->exit_code) : json_null(), "signal",
                         x->signal ? json_integer(x->signal) : json_null(), "started_at", (json_int_t)x->started_at,
                         "finished_at", x->finished_at ? json_integer(x->finished_at) : json_null()));
    }
    return a;
}

int cli_exec_ls(int argc, char **argv)
{
    /* argv: exec --ls [--json] BOX */
    int json = argc == 4 && !strcmp(argv[2], "--json");
    if (argc != 3 + json)
        return cli_usage_error("exec", "usage: cocoon exec --ls [--json] BOX");
    return cli_each_box(argv + 2 + json, 1, list_in, &json);
}
