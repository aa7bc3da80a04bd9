/* The config file in the public API: cocoon_config_load hands callers (the CLI, the
 * SDKs) the normalized JSON of a cocoon.yaml, and a box made from such a file runs its
 * commands with the file's env, workdir and user on top of its image's (spec.json in
 * the box's directory, src/config/spec.c). */
#include "lib/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int cocoon_config_load(const char *path, char **json_out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!path || !json_out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_config_load: NULL argument");
    *json_out = NULL;
    char why[COCOON_ERROR_MAX];
    json_t *cfg = config_load_file(path, why, sizeof(why));
    if (!cfg)
        return lib_err(err, strstr(why, "No such file") ? COCOON_E_NOT_FOUND : COCOON_E_INVALID, "%s", why);
    *json_out = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(cfg);
    return *json_out ? 0 : lib_err(err, COCOON_E_NOMEM, "out of memory");
}

void cocoon_free(void *p) { free(p); }

static char *dup_string(json_t *v) { return json_is_string(v) ? strdup(json_string_value(v)) : NULL; }

/* 1 when the "K=V" entry kv sets a variable of env (an object). */
static int set_by(json_t *env, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t n = eq ? (size_t)(eq - kv) : strlen(kv);
    const char *key;
    json_t *v;
    json_object_foreach(env, key, v)
    {
        if (strlen(key) == n && !strncmp(key, kv, n))
            return 1;
    }
    return 0;
}

int lib_config_spec_layer(const cocoon_box *box, cocoon_image_config *cfg, cocoon_error *err)
{
    int damaged;
    json_t *spec = config_spec_read(box->dir, &damaged);
    if (!spec)
        return damaged ? lib_err(err, COCOON_E_IO, "%s/spec.json (what the box was made from) is damaged", box->dir)
                       : 0;
    json_t *b = json_object_get(spec, "box"), *env = json_object_get(b, "env");
    int rc = 0;
    if (json_is_object(env) && json_object_size(env)) {
        size_t n = 0, total = json_object_size(env);
        for (size_t i = 0; cfg->env && cfg->env[i]; i++)
            total++;
        char **merged = calloc(total + 1, sizeof(*merged));
        for (size_t i = 0; merged && cfg->env && cfg->env[i]; i++)
            if (!set_by(env, cfg->env[i]))
                merged[n++] = strdup(cfg->env[i]);
        const char *key;
        json_t *v;
        json_object_foreach(env, key, v)
        {
            if (merged && asprintf(&merged[n], "%s=%s", key, json_string_value(v) ? json_string_value(v) : "") >= 0)
                n++;
        }
        if (merged) {
            lib_strv_free(cfg->env);
            cfg->env = merged;
        } else {
            rc = lib_err(err, COCOON_E_NOMEM, "out of memory");
        }
    }
    char *workdir = dup_string(json_object_get(b, "workdir")), *user = dup_string(json_object_get(b, "user"));
    if (workdir) {
        free(cfg->working_dir);
        cfg->working_dir = workdir;
    }
    if (user) {
        free(cfg->user);
        cfg->user = user;
    }
    json_decref(spec);
    return rc;
}
