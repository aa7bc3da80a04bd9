/* The command of an exec tool call (argv or shell command, env, cwd, user) resolved for
 * a box, and the exec options that run it. */
#ifndef COCOON_MCP_COMMAND_H
#define COCOON_MCP_COMMAND_H

#include "mcp/internal.h"

/* 0 with *out (free with cocoon_command_free), or -1 with *fail the tool error. */
int mcp_command(cocoon_box *box, json_t *args, cocoon_command *out, json_t **fail);
/* Options running cmd (which must outlive them); stdio and callbacks are the caller's. */
void mcp_exec_options(const cocoon_command *cmd, cocoon_exec_options *o);

#endif
