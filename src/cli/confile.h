/* The config file's helpers shared by `cocoon config`, `up`, `down`, `script` and
 * `run --config` (confile.c). */
#ifndef COCOON_CLI_CONFILE_H
#define COCOON_CLI_CONFILE_H

#include <jansson.h>

#include "cocoon.h"
#include "config/config.h"

/* given (-f), else ./cocoon.yaml, else ./cocoon.yml. */
const char *cli_config_path(const char *given);
/* The normalized JSON, or NULL after printing FILE:LINE:COL: why. */
json_t *cli_config_load(const char *path);
/* The box named name in the file, or NULL. */
json_t *cli_config_box(json_t *cfg, const char *name);
/* -1 (printed) when a name is not a box of the file. */
int cli_config_check_names(json_t *cfg, const char *path, char **names, int n);
/* 1 when name is among names[0..n), or n is 0 (every box). */
int cli_config_selected(char **names, int n, const char *name);

/* A box's spec as cocoon_box_options (name aside); the strings stay the JSON's. */
struct cli_spec_lists {
    const char **rules, **ports;
    cocoon_secret *secrets; /* from "secrets" (hosts NULL there: the allow rules' domains) */
    char *secret_hosts;
    const char **secret_in; /* "NAME=query,body" for the secrets with "in" */
    char *secret_in_text;
};
void cli_config_box_options(json_t *box, cocoon_box_options *o, struct cli_spec_lists *lists);
void cli_spec_lists_free(struct cli_spec_lists *lists);
/* The box's record of the file it was made from (NULL: none; *damaged: unreadable). */
json_t *cli_box_spec(cocoon_box *box, int *damaged);
/* Records that the box was made from cfg's spec_box by origin (CONFIG_ORIGIN_*). */
int cli_box_spec_write(cocoon_box *box, const char *origin, json_t *cfg, json_t *spec_box);

#endif
