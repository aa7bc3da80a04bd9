/* Internal calls of the code interpreter (code.c, code_runners.c). */
#ifndef COCOON_LIB_CODE_H
#define COCOON_LIB_CODE_H

#include "lib/internal.h"

#define CODE_CTX_DIR "/run/cocoon/code/ctx"
/* Exit statuses of the guest side: the relay found no context; the manager's answers. */
#define CODE_RELAY_NO_CONTEXT 69
#define CODE_MANAGE_USAGE 2
#define CODE_MANAGE_NOT_FOUND 3
#define CODE_MANAGE_UNSUPPORTED 4
/* What a manager call may print (a context list) */
#define CODE_MANAGE_OUT_MAX (1u << 20)

/* A context id names a directory in the guest: letters, digits, '-', '_', at most 64. */
int code_check_id(const char *id, cocoon_error *err);
int code_check_language(const char *language, cocoon_error *err);
/* Runs `python3 ctx.py manage ARGS...` in the box (writing the runners there first when
 * they are missing); *out (may be NULL) gets its stdout, NUL-terminated, malloc'd. */
int code_manage(cocoon_box *box, const char *const *args, char **out, cocoon_error *err);

#endif
