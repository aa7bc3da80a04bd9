/* serve.json in a box's directory: the env, working directory, user and labels given
 * at create, which every exec over the API starts from. */
#include "serve/boxdefaults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define DEFAULTS_MAX (4u << 20)

int box_defaults_read(const char *box_dir, struct box_defaults *d)
{
    memset(d, 0, sizeof(*d));
    char path[COCOON_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/serve.json", box_dir);
    if (!util_file_exists(path))
        return 0;
    json_error_t jerr;
    d->root = json_load_file(path, 0, &jerr);
    if (!json_is_object(d->root)) {
        json_decref(d->root);
        d->root = NULL;
        return -1;
    }
    json_t *v = json_object_get(d->root, "env");
    d->env = json_is_object(v) ? v : NULL;
    v = json_object_get(d->root, "labels");
    d->labels = json_is_object(v) ? v : NULL;
    d->working_dir = json_string_value(json_object_get(d->root, "working_dir"));
    d->user = json_string_value(json_object_get(d->root, "user"));
    return 0;
}

void box_defaults_free(struct box_defaults *d)
{
    json_decref(d->root);
    memset(d, 0, sizeof(*d));
}

int box_defaults_write(const char *box_dir, const struct box_defaults *d, cocoon_error *err)
{
    json_t *root = json_object();
    if (d->env)
        json_object_set(root, "env", d->env);
    if (d->labels)
        json_object_set(root, "labels", d->labels);
    if (d->working_dir)
        json_object_set_new(root, "working_dir", json_string(d->working_dir));
    if (d->user)
        json_object_set_new(root, "user", json_string(d->user));
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    char path[COCOON_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/serve.json", box_dir);
    int rc = text && strlen(text) < DEFAULTS_MAX ? util_write_file_atomic(path, text, strlen(text)) : -1;
    free(text);
    if (rc < 0 && err) {
        err->code = COCOON_E_IO;
        snprintf(err->message, sizeof(err->message), "cannot write %.2000s", path);
    }
    return rc;
}

char **box_defaults_env(const struct box_defaults *d, char *const *extra)
{
    size_t n = d->env ? json_object_size(d->env) : 0, m = 0;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof(*env));
    if (!env)
        return NULL;
    size_t i = 0;
    const char *key;
    json_t *value;
    if (d->env) {
        json_object_foreach(d->env, key, value)
        {
            if (!json_is_string(value) || asprintf(&env[i], "%s=%s", key, json_string_value(value)) < 0) {
                env[i] = NULL;
                continue;
            }
            i++;
        }
    }
    for (size_t k = 0; k < m; k++) {
        env[i] = strdup(extra[k]);
        if (env[i])
            i++;
    }
    env[i] = NULL;
    return env;
}
