/* What the two attach WebSockets (an execution's, attach.c; a box's main process,
 * mainattach.c) share: the upgrade check and answer, and the client's text messages. */
#ifndef COCOON_SERVE_WS_ATTACH_H
#define COCOON_SERVE_WS_ATTACH_H

#include <microhttpd.h>
#include <stddef.h>

#include "serve/ws.h"

struct req;

/* Checks r is a WebSocket upgrade: 0 with its Sec-WebSocket-Accept in accept, or -1
 * after answering why (without_ws says what to use instead). */
int ws_attach_check(struct req *r, char accept[WS_ACCEPT_SIZE], const char *without_ws);
/* Answers 101 with the upgrade; on_upgrade gets cls. -1 when that failed: on_upgrade
 * will not run, cls is the caller's to free. */
int ws_attach_answer(struct req *r, const char *accept, MHD_UpgradeHandler on_upgrade, void *cls);
/* Copies the bytes that came right behind the request (a session owns them): 0, or -1
 * when out of memory (nothing copied). */
int ws_attach_copy_extra(const char *extra_in, size_t len, uint8_t **out, size_t *out_len);

enum ws_control_type { WS_CONTROL_STDIN_EOF, WS_CONTROL_RESIZE, WS_CONTROL_SIGNAL };
struct ws_control {
    enum ws_control_type type;
    unsigned rows, cols; /* resize: 1 to 65535 */
    int sig;             /* signal: 1 to 64 */
};
/* A client's text message ({"type":"stdin_eof"|"resize"|"signal",...}): 0, or -1 with
 * why (for an error frame). */
int ws_control_parse(const void *data, size_t len, struct ws_control *out, char *why, size_t cap);

#endif
