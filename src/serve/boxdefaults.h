/* What a box created over the API carries for its execs (env, working directory, user)
 * and its labels: kept in the box's own directory (serve.json), so it goes with the box
 * and a box made by the CLI simply has none. */
#ifndef COCOON_SERVE_BOXDEFAULTS_H
#define COCOON_SERVE_BOXDEFAULTS_H

#include <jansson.h>

#include "cocoon.h"

struct box_defaults {
    json_t *env;    /* object of strings, or NULL */
    json_t *labels; /* object, or NULL */
    const char *working_dir, *user;
    json_t *root; /* what box_defaults_read loaded (owns the strings) */
};

/* 0 and *d filled (every field NULL when the box has none), -1 on a damaged file. */
int box_defaults_read(const char *box_dir, struct box_defaults *d);
void box_defaults_free(struct box_defaults *d);
int box_defaults_write(const char *box_dir, const struct box_defaults *d, cocoon_error *err);
/* The env of d as "K=V" entries followed by extra's (NULL-terminated; free the
 * vector and each entry). */
char **box_defaults_env(const struct box_defaults *d, char *const *extra);

#endif
