/* Secret values on their way to a box's monitor (docs/security.md "Secrets"): kept in
 * memory by the handle that created the box, else read from the environment of the
 * process that starts it, and written into a pipe the monitor reads once at start.
 * They are never written to a file, the state database, argv or the environment of
 * the monitor. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
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

int lib_secrets_pipe(cocoon_box *b, int *fd_out, cocoon_error *err)
{
    *fd_out = -1;
    struct box_config *c = malloc(sizeof(*c));
    if (!c)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (lib_config_read(b->dir, c, err) < 0) {
        free(c);
        return -1;
    }
    int rc = 0, fds[2] = {-1, -1};
    char *buf = NULL;
    size_t off = 0;
    if (!c->net.nsecrets)
        goto out;
    buf = malloc(SECRETS_PIPE_MAX);
    if (!buf) {
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
    if (buf) {
        explicit_bzero(buf, SECRETS_PIPE_MAX);
        free(buf);
    }
    free(c);
    return rc;
}
