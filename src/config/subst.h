/* ${NAME} substitution in a config file's values (subst.c). */
#ifndef COCOON_CONFIG_SUBST_H
#define COCOON_CONFIG_SUBST_H

#include <stddef.h>

#include "config/config.h"

/* in (len bytes) with ${NAME}, ${NAME:-default} and $$ replaced: a malloc'd string of
 * *out_len bytes (at most CONFIG_VALUE_MAX), or NULL with the reason in why. *budget is
 * what substitutions may still add to the whole file; it shrinks by what this adds. */
char *config_subst(const char *in, size_t len, size_t *out_len, size_t *budget, char *why, size_t whylen);

#endif
