/* Reading a config file from start to end: the file (bounded), its absolute path and
 * directory (a relative rootfs is relative to the file), YAML, schema, normalized JSON. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "util/util.h"

json_t *config_load_text(const char *text, size_t len, const char *file, const char *abs_path, char *err, size_t errlen)
{
    struct cfg_node *root;
    if (cfg_yaml_read(text, len, file, &root, err, errlen) < 0)
        return NULL;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", abs_path);
    json_t *out = cfg_normalize(root, file, abs_path, dirname(dir), err, errlen);
    cfg_node_free(root);
    return out;
}

json_t *config_load_file(const char *path, char *err, size_t errlen)
{
    /* O_NONBLOCK: a FIFO given as the file must not hang the open */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    close(fd);
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return NULL;
    }
    if ((unsigned long long)st.st_size > CONFIG_FILE_MAX) {
        snprintf(err, errlen, "%s: %lld bytes: a config file may have at most %u bytes", path, (long long)st.st_size,
                 CONFIG_FILE_MAX);
        return NULL;
    }
    size_t len;
    char *text = util_read_file(path, CONFIG_FILE_MAX, &len);
    if (!text) {
        snprintf(err, errlen, "%s: %s", path, errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
        return NULL;
    }
    char abs_path[PATH_MAX];
    if (!realpath(path, abs_path)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(text);
        return NULL;
    }
    json_t *out = config_load_text(text, len, path, abs_path, err, errlen);
    free(text);
    return out;
}
