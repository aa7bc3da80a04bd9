/* GET .../executions/{id}/attach: the execution's streams over a WebSocket. */
#include "serve/serve.h"

int handle_exec_attach(struct req *r) { return serve_error(r, 501, "unsupported", "attach: not yet"); }
