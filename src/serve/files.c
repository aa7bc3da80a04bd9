/* File routes of `cocoon serve`: a tar archive into a directory of the box (PUT) and a
 * tar archive of a path out of it (GET). */
#include "serve/serve.h"

int begin_files_upload(struct req *r) { return 0; }

int handle_files(struct req *r) { return serve_error(r, 501, "unsupported", "files: not yet"); }
