/* A cocoon_file_info as the JSON object `cocoon fs --json` prints and `cocoon serve`
 * answers (docs/openapi.yaml, FileInfo): one writer for both. */
#ifndef COCOON_LIB_FSOPS_JSON_H
#define COCOON_LIB_FSOPS_JSON_H

#include <jansson.h>

#include "cocoon.h"

/* path: where the entry is (for an entry of a list: the directory's path joined with
 * its name). Names that are not UTF-8 are given escaped (\xHH). NULL when out of memory. */
json_t *lib_file_info_json(const cocoon_file_info *fi, const char *path);
/* dir + "/" + name without doubling a slash, into out (cut at cap). */
void lib_file_join(char *out, size_t cap, const char *dir, const char *name);
/* "file", "directory", "symlink" or "other". */
const char *lib_file_type_name(int type);

#endif
