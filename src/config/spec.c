/* spec.json in a box's directory: the config file a box was made from, by whom (`up`
 * or `run --config`) and its normalized spec. `cocoon up` compares digests with it,
 * `cocoon down` removes only boxes whose record names its file, `cocoon script` finds
 * the scripts there, and execs take the spec's env, workdir and user from it. It lives
 * with the box (removed with it, no schema change to cocoon.db). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "util/util.h"

#define SPEC_FILE_MAX (8u << 20) /* a spec comes from a file of at most 1 MiB (+ substitutions) */

int config_spec_write(const char *box_dir, const char *origin, const char *file, const json_t *box, char *err,
                      size_t errlen)
{
    json_t *root = json_pack("{s:i, s:s, s:s, s:O}", "version", 1, "origin", origin, "file", file, "box", box);
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/spec.json", box_dir);
    int rc = text && strlen(text) < SPEC_FILE_MAX ? util_write_file_atomic(path, text, strlen(text)) : -1;
    if (rc < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, text ? strerror(errno) : "out of memory");
    free(text);
    return rc;
}

json_t *config_spec_read(const char *box_dir, int *damaged)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/spec.json", box_dir);
    *damaged = 0;
    size_t len;
    char *text = util_read_file(path, SPEC_FILE_MAX, &len);
    if (!text) {
        *damaged = errno != ENOENT;
        return NULL;
    }
    json_t *root = json_loadb(text, len, 0, NULL);
    free(text);
    if (!json_is_object(root) || !json_is_string(json_object_get(root, "origin")) ||
        !json_is_string(json_object_get(root, "file")) || !json_is_object(json_object_get(root, "box"))) {
        json_decref(root);
        *damaged = 1;
        return NULL;
    }
    return root;
}
