/* Secret values on their way to a box's monitor (docs/security.md "Secrets"): kept in
 * memory by the handle that created the box, else read from the environment of the
 * process that starts it, and written into a pipe the monitor reads once at start.
 * They are never written to a file, the state database, argv or the environment of
 * the monitor. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRETS_PIPE_MAX 60000u /* below a pipe's 64 KiB: written before the monitor runs */

void lib_secrets_forget(cocoon_box *b)
{
    if (b->secret_lines) {
        explicit_bzero(b->secret_lines, b->secret_len);
        free(b->secret_lines);
    }
    b->secret_lines = NULL;
    b->secret_len = 0;
}

int lib_secrets_keep(cocoon_box *b, const cocoon_secret *s, cocoon_error *err)
{
    size_t len = 0;
    for (size_t i = 0; s && s[i].name; i++)
        if (s[i].value)
            len += strlen(s[i].name) + strlen(s[i].value) + 2;
    if (!len)
        return 0;
    char *p = malloc(len + 1);
    if (!p)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    size_t off = 0;
    for (size_t i = 0; s[i].name; i++)
        if (s[i].value)
            off += (size_t)snprintf(p + off, len + 1 - off, "%s=%s\n", s[i].name, s[i].value);
    lib_secrets_forget(b);
    b->secret_lines = p;
    b->secret_len = off;
    return 0;
}

/* The value the handle keeps for name, as a pointer into its lines and a length. */
static const char *kept(const cocoon_box *b, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *p = b->secret_lines, *end = p ? p + b->secret_len : NULL;
    while (p && p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            break;
        if ((size_t)(e - p) > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            *len = (size_t)(e - p - nl - 1);
            return p + nl + 1;
        }
        p = e + 1;
    }
    return NULL;
}

extern char **environ;

/* A secret's value from its file: one trailing line end dropped; -1 with errno. */
static int read_value_file(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return -1;
    }
    if (n && buf[n - 1] == '\n')
        n--;
    if (n && buf[n - 1] == '\r')
        n--;
    buf[n] = 0;
    *len = (size_t)n;
    return 0;
}

void lib_secrets_env_free(char **env) { free(env); }

/* environ without the secrets' own variables (names: the box's secrets). */
static char **env_without(const struct net_config *n)
{
    size_t count = 0;
    while (environ[count])
        count++;
    char **env = calloc(count + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; env && i < count; i++) {
        int drop = 0;
        for (int s = 0; s < n->nsecrets && !drop; s++) {
            size_t nl = strlen(n->secrets[s].name);
            drop = !strncmp(environ[i], n->secrets[s].name, nl) && environ[i][nl] == '=';
        }
        if (!drop)
            env[k++] = environ[i];
    }
    return env;
}

int lib_secrets_pipe(cocoon_box *b, int *fd_out, char ***env_out, cocoon_error *err)
{
    *fd_out = -1;
    *env_out = NULL;
    struct box_config *c = malloc(sizeof(*c));
    if (!c)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (lib_config_read(b->dir, c, err) < 0) {
        free(c);
        return -1;
    }
    int rc = 0, fds[2] = {-1, -1};
    char *buf = NULL, *filebuf = NULL; /* on the heap: threads start boxes at once, and it is wiped */
    size_t off = 0;
    if (!c->net.nsecrets)
        goto out;
    buf = malloc(SECRETS_PIPE_MAX);
    *env_out = env_without(&c->net);
    if (!buf || !*env_out) {
        rc = lib_err(err, COCOON_E_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < c->net.nsecrets; i++) {
        const char *name = c->net.secrets[i].name;
        size_t vl = 0;
        const char *v = kept(b, name, &vl);
        if (!v && (v = getenv(name)))
            vl = strlen(v);
        char why[160];
        if (!v && c->net.secrets[i].file[0]) {
            if (!filebuf && !(filebuf = malloc(NET_SECRET_VALUE_MAX + 2))) {
                rc = lib_err(err, COCOON_E_NOMEM, "out of memory");
                goto out;
            }
            if (read_value_file(c->net.secrets[i].file, filebuf, NET_SECRET_VALUE_MAX + 2, &vl) < 0) {
                rc = lib_err(err, COCOON_E_INVALID, "secret %s: cannot read %s: %s", name, c->net.secrets[i].file,
                             strerror(errno));
                goto out;
            }
            v = filebuf;
        }
        if (!v) {
            rc = lib_err(err, COCOON_E_INVALID,
                         "box %s needs the value of its secret %s: set %s in the environment of the start (values "
                         "are never stored)",
                         b->id, name, name);
            goto out;
        }
        if (!net_secret_value_ok(v, vl, why, sizeof(why))) {
            rc = lib_err(err, COCOON_E_INVALID, "secret %s: %s", name, why);
            goto out;
        }
        if (off + strlen(name) + vl + 2 > SECRETS_PIPE_MAX) {
            rc = lib_err(err, COCOON_E_INVALID, "the box's secrets are too large in all (at most %u bytes)",
                         SECRETS_PIPE_MAX);
            goto out;
        }
        off += (size_t)snprintf(buf + off, SECRETS_PIPE_MAX - off, "%s=", name);
        memcpy(buf + off, v, vl);
        off += vl;
        buf[off++] = '\n';
    }
    if (pipe2(fds, O_CLOEXEC) < 0) {
        rc = lib_err(err, COCOON_E_IO, "pipe: %s", strerror(errno));
        goto out;
    }
    for (size_t w = 0; w < off;) {
        ssize_t n = write(fds[1], buf + w, off - w);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = lib_err(err, COCOON_E_IO, "cannot hand the secrets to the monitor: %s", strerror(errno));
            close(fds[0]);
            fds[0] = -1;
            break;
        }
        w += (size_t)n;
    }
    close(fds[1]);
    *fd_out = fds[0];
out:
    if (filebuf) {
        explicit_bzero(filebuf, NET_SECRET_VALUE_MAX + 2);
        free(filebuf);
    }
    if (rc < 0) {
        free(*env_out);
        *env_out = NULL;
    }
    if (buf) {
        explicit_bzero(buf, SECRETS_PIPE_MAX);
        free(buf);
    }
    free(c);
    return rc;
}

int cocoon_box_tls_json(cocoon_box *box, char **json_out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !json_out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_tls_json: NULL argument");
    *json_out = NULL;
    struct box_config *c = malloc(sizeof(*c));
    if (!c)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (lib_config_read(box->dir, c, err) < 0) {
        free(c);
        return -1;
    }
    const struct net_config *n = &c->net;
    json_t *root = json_pack("{s:[], s:[], s:[], s:[]}", "tls_intercept", "tls_bypass", "secrets", "header_rules");
    for (int i = 0; root && i < n->ntls_bypass; i++)
        json_array_append_new(json_object_get(root, "tls_bypass"), json_string(n->tls_bypass[i]));
    for (int i = 0; root && i < n->ntls_intercept; i++)
        json_array_append_new(json_object_get(root, "tls_intercept"), json_string(n->tls_intercept[i]));
    for (int i = 0; root && i < n->nsecrets; i++) {
        json_t *hosts = json_array();
        for (int k = 0; hosts && k < n->secrets[i].nhosts; k++)
            json_array_append_new(hosts, json_string(n->secrets[i].hosts[k]));
        json_array_append_new(json_object_get(root, "secrets"),
                              json_pack("{s:s, s:o, s:s}", "name", n->secrets[i].name, "hosts", hosts, "placeholder",
                                        n->secrets[i].placeholder));
    }
    for (int i = 0; root && i < n->nheader_rules; i++)
        json_array_append_new(json_object_get(root, "header_rules"), json_string(n->header_rules[i].text));
    free(c);
    *json_out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return *json_out ? 0 : lib_err(err, COCOON_E_NOMEM, "out of memory");
}
