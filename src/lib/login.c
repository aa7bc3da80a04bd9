/* Registry credentials: `cocoon login` and `logout` keep them in $COCOON_HOME/auth.json,
 * in the docker config.json format the registry client reads ({"auths": {"HOST":
 * {"auth": base64(user:password)}}}), written atomically with mode 0600. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/registry_int.h"

/* "docker.io" and bare Docker Hub names are stored under the key docker uses. */
static const char *registry_key(const char *registry)
{
    if (!strcmp(registry, "docker.io") || !strcmp(registry, "index.docker.io") ||
        !strcmp(registry, "registry-1.docker.io"))
        return "https://index.docker.io/v1/";
    return registry;
}

static int valid_registry(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > 255)
        return 0;
    for (const char *p = r; *p; p++)
        if (!(*p == '.' || *p == '-' || *p == ':' || *p == '[' || *p == ']' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    return 1;
}

static json_t *load_auths(const char *path, cocoon_error *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return errno == ENOENT ? json_object() : (lib_err(err, COCOON_E_IO, "%s: %s", path, strerror(errno)), NULL);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        lib_err(err, COCOON_E_INVALID, "credentials file %s is not a JSON object (%s): fix or delete it", path,
                je.text);
        return NULL;
    }
    return root;
}

/* Written to a 0600 temp file and renamed: the credentials are never readable by
 * others, not even for a moment, and a reader never sees half a file. */
static int save_auths(const char *path, json_t *root, cocoon_error *err)
{
    char tmp[LIB_PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return lib_err(err, COCOON_E_IO, "cannot write %s: %s", tmp, strerror(errno));
    int rc = json_dumpfd(root, fd, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (rc == 0 && (fsync(fd) < 0 || close(fd) < 0))
        rc = -1;
    else if (rc != 0)
        close(fd);
    if (rc != 0 || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return lib_err(err, COCOON_E_IO, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

int cocoon_registry_login(cocoon_runtime *rt, const char *registry, const char *user, const char *password,
                          cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !registry || !user || !password)
        return lib_err(err, COCOON_E_INVALID, "cocoon_registry_login: NULL argument");
    if (!valid_registry(registry))
        return lib_err(err, COCOON_E_INVALID, "\"%s\" is not a registry host (e.g. ghcr.io or localhost:5000)",
                       registry);
    if (!*user || strchr(user, ':'))
        return lib_err(err, COCOON_E_INVALID, "the user name must be non-empty and contain no ':'");
    if (!*password)
        return lib_err(err, COCOON_E_INVALID, "the password is empty");
    size_t len = strlen(user) + 1 + strlen(password);
    if (len > REG_SECRET_MAX)
        return lib_err(err, COCOON_E_INVALID,
                       "the user name and password are %zu bytes together, more than the %u "
                       "cocoon accepts",
                       len, REG_SECRET_MAX);
    char path[LIB_PATH_MAX];
    if (lib_path(path, sizeof(path), "%s/auth.json", rt->home) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    char *up = malloc(len + 1), *b64 = malloc(REG_BASIC_MAX);
    int ok = up && b64 && snprintf(up, len + 1, "%s:%s", user, password) == (int)len &&
             reg_base64(up, len, b64, REG_BASIC_MAX) == 0;
    if (up)
        explicit_bzero(up, len + 1);
    free(up);
    json_t *root = ok ? load_auths(path, err) : NULL;
    if (!root) {
        if (b64)
            explicit_bzero(b64, REG_BASIC_MAX);
        free(b64);
        return ok ? -1 : lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    json_t *auths = json_object_get(root, "auths");
    if (!json_is_object(auths)) {
        auths = json_object();
        json_object_set_new(root, "auths", auths);
    }
    json_object_set_new(auths, registry_key(registry), json_pack("{s:s}", "auth", b64));
    int rc = save_auths(path, root, err);
    json_decref(root);
    explicit_bzero(b64, REG_BASIC_MAX);
    free(b64);
    return rc;
}

int cocoon_registry_logout(cocoon_runtime *rt, const char *registry, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !registry)
        return lib_err(err, COCOON_E_INVALID, "cocoon_registry_logout: NULL argument");
    char path[LIB_PATH_MAX];
    if (lib_path(path, sizeof(path), "%s/auth.json", rt->home) < 0)
        return lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    json_t *root = load_auths(path, err);
    if (!root)
        return -1;
    json_t *auths = json_object_get(root, "auths");
    int rc;
    if (!json_is_object(auths) || json_object_del(auths, registry_key(registry)) != 0)
        rc = lib_err(err, COCOON_E_NOT_FOUND, "not logged in to %s", registry);
    else
        rc = save_auths(path, root, err);
    json_decref(root);
    return rc;
}
