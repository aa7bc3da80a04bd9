/* The attach WebSockets' shared parts: the upgrade check and 101 answer, the bytes that
 * followed the request, and the client's control messages (stdin_eof, resize, signal). */
#include "serve/ws_attach.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/http.h"
#include "serve/serve.h"

int ws_attach_check(struct req *r, char accept[WS_ACCEPT_SIZE], const char *without_ws)
{
    struct ws_upgrade_request up = {.method = r->method_text,
                                    .upgrade = serve_header(r, "Upgrade"),
                                    .connection = serve_header(r, "Connection"),
                                    .version = serve_header(r, "Sec-WebSocket-Version"),
                                    .key = serve_header(r, "Sec-WebSocket-Key")};
    const char *why = NULL;
    int status = ws_upgrade_check(&up, accept, &why);
    if (status != 0)
        return serve_error(r, (unsigned)status, "invalid_argument", "attach is a WebSocket: %s (%s)",
                           why ? why : "not an upgrade request", without_ws);
    return 0;
}

int ws_attach_answer(struct req *r, const char *accept, MHD_UpgradeHandler on_upgrade, void *cls)
{
    struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, cls);
    if (!resp)
        return serve_error(r, 503, "resource_exhausted", "cannot set up the WebSocket");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
    return serve_queue_response(r, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
}

int ws_attach_copy_extra(const char *extra_in, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!len)
        return 0;
    *out = malloc(len);
    if (!*out)
        return -1;
    memcpy(*out, extra_in, len);
    *out_len = len;
    return 0;
}

int ws_control_parse(const void *data, size_t len, struct ws_control *out, char *why, size_t cap)
{
    json_error_t jerr;
    json_t *j = json_loadb(data, len, 0, &jerr);
    const char *type = json_string_value(json_object_get(j, "type"));
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if (!type) {
        rc = -1;
        snprintf(why, cap, "a text message must be a JSON object with a \"type\"");
    } else if (strcmp(type, "stdin_eof") == 0) {
        out->type = WS_CONTROL_STDIN_EOF;
    } else if (strcmp(type, "resize") == 0) {
        json_int_t cols = json_integer_value(json_object_get(j, "cols"));
        json_int_t rows = json_integer_value(json_object_get(j, "rows"));
        if (cols < 1 || cols > 65535 || rows < 1 || rows > 65535) {
            rc = -1;
            snprintf(why, cap, "resize needs cols and rows from 1 to 65535");
        } else {
            out->type = WS_CONTROL_RESIZE;
            out->rows = (unsigned)rows;
            out->cols = (unsigned)cols;
        }
    } else if (strcmp(type, "signal") == 0) {
        json_t *v = json_object_get(j, "sig");
        if (!v)
            v = json_object_get(j, "signal");
        json_int_t sig = json_integer_value(v);
        if (sig < 1 || sig > 64) {
            rc = -1;
            snprintf(why, cap, "signal needs \"sig\" from 1 to 64");
        } else {
            out->type = WS_CONTROL_SIGNAL;
            out->sig = (int)sig;
        }
    } else {
        rc = -1;
        snprintf(why, cap, "unknown message type \"%.60s\"", type);
    }
    json_decref(j);
    return rc;
}
