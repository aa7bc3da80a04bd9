/* An exec request of the API (POST /exec and /run) turned into libcocoon's terms: the
 * command resolved against the image and the box's create-time defaults. */
#ifndef COCOON_SERVE_EXECS_H
#define COCOON_SERVE_EXECS_H

#include <jansson.h>

#include "cocoon.h"
#include "serve/xreg.h"

struct req;

struct exec_request {
    json_t *body;
    cocoon_command cmd;
    char command[512];
    int tty, detach, has_stdin;
    unsigned timeout_ms, rows, cols;
    size_t max_output;
    char *stdin_data;
    size_t stdin_len;
};

/* Reads and checks the body; answers 400 and returns -1 when it is wrong. */
int exec_request_parse(struct req *r, cocoon_box *box, struct exec_request *x);
void exec_request_options(const struct exec_request *x, cocoon_exec_options *o);
void exec_request_free(struct exec_request *x);
/* The route's execution (a reference: xreg_put it), or NULL after answering 404. */
struct xentry *exec_from_route(struct req *r);
/* ExecutionInfo of the API. */
json_t *exec_info_json(struct xentry *e);

#endif
