/* `cocoon serve`: runs cocoon-serve, the HTTP API server, which lives in its own program
 * next to this one so that its libraries (libmicrohttpd, TLS) never load for the short
 * commands. $COCOON_SERVE names another one (tests). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

int cmd_serve(int argc, char **argv)
{
    char path[PATH_MAX];
    const char *env = getenv("COCOON_SERVE");
    if (env && *env) {
        snprintf(path, sizeof(path), "%s", env);
    } else {
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
        if (n <= 0) {
            fprintf(stderr, "cocoon serve: cannot find this program's directory: %s\n", strerror(errno));
            return 1;
        }
        path[n] = '\0';
        char *slash = strrchr(path, '/');
        snprintf(slash ? slash + 1 : path, 32, "cocoon-serve");
    }
    argv[0] = "cocoon serve";
    execv(path, argv);
    fprintf(stderr,
            "cocoon serve: cannot run %s: %s (is cocoon installed whole? `make install` puts it next to cocoon)\n",
            path, strerror(errno));
    return 1;
}
