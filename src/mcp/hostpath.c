/* The host paths copy_to_box and copy_from_box may touch: only under the directories of
 * COCOON_MCP_HOST_PATHS (colon-separated), compared after realpath, so a symlink (or
 * "..") leading out of an allowed directory is refused; none set refuses every copy. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"

#define HOST_PATHS_MAX 32

static int under(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/')
        return 1;
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* realpath of path; for a path that does not exist yet (a copy's destination), realpath
 * of its parent plus its last component, which must be a plain name. */
static int resolve(const char *path, int for_write, char *out, size_t cap, char *why, size_t why_cap)
{
    char resolved[PATH_MAX];
    if (path[0] != '/') {
        snprintf(why, why_cap, "host paths must be absolute: %s", path);
        return -1;
    }
    if (realpath(path, resolved)) {
        snprintf(out, cap, "%s", resolved);
        return 0;
    }
    if (errno != ENOENT || !for_write) {
        snprintf(why, why_cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", path);
    char *slash = strrchr(parent, '/');
    const char *name = path + (slash - parent) + 1;
    *slash = '\0';
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(why, why_cap, "%s: not a file name", path);
        return -1;
    }
    if (!realpath(parent[0] ? parent : "/", resolved)) {
        snprintf(why, why_cap, "%s: %s", parent[0] ? parent : "/", strerror(errno));
        return -1;
    }
    if ((size_t)snprintf(out, cap, "%s/%s", strcmp(resolved, "/") == 0 ? "" : resolved, name) >= cap) {
        snprintf(why, why_cap, "%s: path too long", path);
        return -1;
    }
    return 0;
}

int mcp_host_path(const char *path, int for_write, char *out, size_t cap, char *why, size_t why_cap)
{
    const char *list = getenv("COCOON_MCP_HOST_PATHS");
    if (!list || !*list) {
        snprintf(why, why_cap,
                 "copies to and from host paths are off: the server's operator allows directories by starting "
                 "cocoon mcp (or cocoon serve) with COCOON_MCP_HOST_PATHS=/dir1:/dir2; use file_read and "
                 "file_write to move content without host paths");
        return -1;
    }
    if (resolve(path, for_write, out, cap, why, why_cap) < 0)
        return -1;
    char copy[PATH_MAX * 2];
    snprintf(copy, sizeof(copy), "%s", list);
    char *save = NULL;
    int n = 0;
    for (char *dir = strtok_r(copy, ":", &save); dir && n < HOST_PATHS_MAX; dir = strtok_r(NULL, ":", &save), n++) {
        char root[PATH_MAX];
        if (dir[0] == '/' && realpath(dir, root) && under(out, root))
            return 0;
    }
    snprintf(why, why_cap,
             "host path %s (resolved: %s) is outside the directories allowed by COCOON_MCP_HOST_PATHS (%.1024s); "
             "symlinks leading out of them are refused too",
             path, out, list);
    return -1;
}
