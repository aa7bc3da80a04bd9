/* libyaml's parser, loaded on first use (dynlib.h): only reading a cocoon.yaml needs it,
 * so a short CLI command or a program loading libcocoon.so never maps it. Call sym_NAME
 * where the code would call NAME, after dl_yaml_load succeeded. */
#ifndef COCOON_UTIL_DL_YAML_H
#define COCOON_UTIL_DL_YAML_H

#include <stddef.h>
#include <yaml.h>

#include "util/dynlib.h"

#define DL_YAML_SYMBOLS(X)                                                                                             \
    X(yaml_parser_initialize)                                                                                          \
    X(yaml_parser_set_input_string)                                                                                    \
    X(yaml_parser_parse)                                                                                               \
    X(yaml_parser_delete)                                                                                              \
    X(yaml_event_delete)

DL_YAML_SYMBOLS(DYNLIB_DECLARE)

/* 0 once libyaml is loaded; -1 with a message saying what to install. */
int dl_yaml_load(char *err, size_t errlen);

#endif
