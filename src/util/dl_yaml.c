/* libyaml's event parser as the cocoon.yaml reader uses it, loaded on first use
 * (dl_yaml.h). */
#include "util/dl_yaml.h"

DL_YAML_SYMBOLS(DYNLIB_DEFINE)

static const struct dynlib_symbol symbols[] = {DL_YAML_SYMBOLS(DYNLIB_ENTRY)};

/* libyaml has kept the soname libyaml-0.so.2 since 0.1.x (Debian's libyaml-0-2). */
static struct dynlib libyaml =
    DYNLIB_INIT("libyaml-0.so.2", "reading a config file (cocoon.yaml)", "libyaml-0-2", symbols);

int dl_yaml_load(char *err, size_t errlen) { return dynlib_load(&libyaml, err, errlen); }
