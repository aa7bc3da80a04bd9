/* What runs in a box: docker's rules for combining an image's config (Entrypoint, Cmd,
 * Env, WorkingDir, User) with what a caller asked for, in one place, so the CLI, the
 * REST server and the SDKs cannot drift apart on them. */
#include "lib/internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const default_command[] = {"/bin/sh", NULL};

void cocoon_command_options_init(cocoon_command_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

static size_t strv_len(const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

char **lib_strv_join(const char *const *a, const char *const *b)
{
    size_t na = strv_len(a), nb = strv_len(b);
    char **out = calloc(na + nb + 1, sizeof(*out));
    for (size_t i = 0; out && i < na + nb; i++)
        if (!(out[i] = strdup(i < na ? a[i] : b[i - na]))) {
            lib_strv_free(out);
            return NULL;
        }
    return out;
}

void lib_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* 1 when env sets the variable that entry (K=V, or a bare K) names. */
static int env_sets(const char *const *env, const char *entry)
{
    size_t klen = strcspn(entry, "=");
    for (size_t i = 0; env && env[i]; i++)
        if (!strncmp(env[i], entry, klen) && env[i][klen] == '=')
            return 1;
    return 0;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int cocoon_image_command(const cocoon_image_config *image, const cocoon_command_options *opts, cocoon_command *out,
                         cocoon_error *err)
{
    lib_err_clear(err);
    if (!out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_image_command: NULL argument");
    memset(out, 0, sizeof(*out));
    cocoon_command_options o;
    if (LIB_OPTIONS(cocoon_command_options, o, opts, err) < 0)
        return -1;
    static const cocoon_image_config no_config;
    const cocoon_image_config *img = image ? image : &no_config;

    /* An entrypoint asked for replaces the image's and drops its Cmd ("": none at all). */
    const char *given_entrypoint[] = {o.entrypoint, NULL};
    const char *const *entrypoint =
        o.entrypoint ? (o.entrypoint[0] ? given_entrypoint : NULL) : (const char *const *)img->entrypoint;
    const char *const *args = strv_len(o.argv) ? o.argv : o.entrypoint ? NULL : (const char *const *)img->cmd;
    if (!strv_len(entrypoint) && !strv_len(args))
        entrypoint = default_command;
    out->argv = lib_strv_join(entrypoint, args);

    /* The image's variables the caller does not set, then the caller's. */
    size_t nimg = strv_len((const char *const *)img->env);
    const char **kept = calloc(nimg + 1, sizeof(*kept));
    for (size_t i = 0, n = 0; kept && i < nimg; i++)
        if (!env_sets(o.env, img->env[i]))
            kept[n++] = img->env[i];
    out->env = kept ? lib_strv_join(kept, o.env) : NULL;
    free(kept);

    const char *cwd = o.cwd ? o.cwd : img->working_dir && img->working_dir[0] ? img->working_dir : NULL;
    const char *user = o.user ? o.user : img->user && img->user[0] ? img->user : NULL;
    out->cwd = dup_or_null(cwd);
    out->user = dup_or_null(user);
    if (!out->argv || !out->env || (cwd && !out->cwd) || (user && !out->user)) {
        cocoon_command_free(out);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    return 0;
}

int cocoon_box_command(cocoon_box *box, const cocoon_command_options *opts, cocoon_command *out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_command: NULL argument");
    memset(out, 0, sizeof(*out));
    struct state_box row;
    if (state_box_get(box->rt->state, box->id, &row, err) < 0)
        return -1;
    cocoon_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    int rc = row.image_id[0] ? cocoon_image_config_get(box->rt, row.image_id, &cfg, err) : 0; /* "": a rootfs */
    state_box_clear(&row);
    if (rc == 0)
        rc = lib_config_spec_layer(box, &cfg, err); /* a box from a config file: its env, workdir, user */
    if (rc == 0)
        rc = cocoon_image_command(&cfg, opts, out, err);
    cocoon_image_config_free(&cfg);
    return rc;
}

void cocoon_command_free(cocoon_command *cmd)
{
    if (!cmd)
        return;
    lib_strv_free(cmd->argv);
    lib_strv_free(cmd->env);
    free(cmd->cwd);
    free(cmd->user);
    memset(cmd, 0, sizeof(*cmd));
}
