/* `cocoon mcp`: the MCP server over stdio, for an MCP client that starts it as a
 * subprocess (src/mcp does the work). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "mcp/mcp.h"

int cmd_mcp(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: cocoon mcp\n\n"
                   "Serves the Model Context Protocol on stdin/stdout (newline-delimited JSON-RPC) for an MCP\n"
                   "client that runs it as a subprocess; logs go to stderr. Boxes a session creates are removed\n"
                   "when stdin closes unless created with keep: true. COCOON_MCP_HOST_PATHS=/dir1:/dir2 allows\n"
                   "copy_to_box/copy_from_box under those host directories (none by default).\n");
            return 0;
        }
        fprintf(stderr, "cocoon mcp: unknown argument %s (see cocoon mcp --help)\n", argv[i]);
        return 2;
    }
    return mcp_stdio_run(NULL);
}
