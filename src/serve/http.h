/* The libmicrohttpd side of the server, for main.c and the handlers that need the
 * connection itself (the WebSocket upgrade, watching for a client that went away). */
#ifndef COCOON_SERVE_HTTP_H
#define COCOON_SERVE_HTTP_H

#include <microhttpd.h>
#include <stdio.h>

struct req;

MHD_AccessHandlerCallback serve_access_handler(void);
MHD_RequestCompletedCallback serve_completed_handler(void);
/* Access log lines (time, method, path, status, duration) go to f; NULL: none. */
void serve_set_access_log(FILE *f);
/* The client's socket (to notice it hanging up while a handler waits), or -1. */
int serve_client_fd(struct req *r);
/* Queues a response built by the caller (consumed either way). */
int serve_queue_response(struct req *r, unsigned status, struct MHD_Response *resp);

#endif
