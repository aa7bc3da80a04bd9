/* The command an exec tool runs: argv or a shell command, with the box's recorded env,
 * working directory and user (serve.json, as the REST API keeps them) and the call's
 * own, resolved by the box's image config as `cocoon exec` does. */
#include <stdlib.h>
#include <string.h>

#include "mcp/command.h"
#include "serve/boxdefaults.h"

int mcp_command(cocoon_box *box, json_t *args, cocoon_command *out, json_t **fail)
{
    const char **argv = arg_strv(args, "argv");
    const char *shell = arg_str(args, "command", NULL);
    if ((argv != NULL) == (shell != NULL)) {
        free(argv);
        *fail = tool_error("give either argv (a list: [\"ls\", \"-l\"]) or command (a shell line: \"ls -l | wc\")");
        return -1;
    }
    const char *sh_argv[] = {"/bin/sh", "-c", shell, NULL};
    cocoon_error err;
    cocoon_box_info info;
    struct box_defaults d = {0};
    if (cocoon_box_inspect(box, &info, &err) == 0)
        box_defaults_read(info.dir, &d);
    char **extra = arg_env(args, "env");
    char **env = box_defaults_env(&d, extra);
    mcp_free_env(extra);
    cocoon_command_options co;
    cocoon_command_options_init(&co);
    co.argv = shell ? sh_argv : argv;
    co.entrypoint = "";
    co.env = (const char *const *)env;
    co.cwd = arg_str(args, "cwd", d.working_dir);
    co.user = arg_str(args, "user", d.user);
    int rc = cocoon_box_command(box, &co, out, &err);
    if (rc < 0)
        *fail = tool_cocoon_error("cannot prepare the command", &err);
    mcp_free_env(env);
    box_defaults_free(&d);
    free(argv);
    return rc;
}

void mcp_exec_options(const cocoon_command *cmd, cocoon_exec_options *o)
{
    cocoon_exec_options_init(o);
    o->argv = (const char *const *)cmd->argv;
    o->env = (const char *const *)cmd->env;
    o->cwd = cmd->cwd;
    o->user = cmd->user;
}
