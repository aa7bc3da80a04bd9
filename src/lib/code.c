/* The code interpreter's public calls (cocoon.h, "code interpreter"). Interface placeholder:
 * the guest side lands with the code-interpreter work; until then every call says so
 * rather than pretending. */
#include "lib/internal.h"

#include <string.h>

void cocoon_code_options_init(cocoon_code_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

static int not_yet(cocoon_error *err)
{
    return lib_err(err, COCOON_E_UNSUPPORTED, "the code interpreter is not available in this build of libcocoon");
}

int cocoon_code_run(cocoon_box *box, const char *code, const cocoon_code_options *opts, cocoon_error *err)
{
    (void)box, (void)code, (void)opts;
    return not_yet(err);
}

int cocoon_code_context_create(cocoon_box *box, const char *language, const char *cwd, char **json_out,
                               cocoon_error *err)
{
    (void)box, (void)language, (void)cwd, (void)json_out;
    return not_yet(err);
}

int cocoon_code_context_list(cocoon_box *box, char **json_out, cocoon_error *err)
{
    (void)box, (void)json_out;
    return not_yet(err);
}

int cocoon_code_context_restart(cocoon_box *box, const char *id, cocoon_error *err)
{
    (void)box, (void)id;
    return not_yet(err);
}

int cocoon_code_context_remove(cocoon_box *box, const char *id, cocoon_error *err)
{
    (void)box, (void)id;
    return not_yet(err);
}
