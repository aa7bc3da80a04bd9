/* Fuzz target: bytes as an attach WebSocket client's text message (src/serve/ws_attach.c
 * ws_control_parse): parsed or refused with a reason, never out of its bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/ws_attach.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_control c;
    char why[128];
    why[0] = 0;
    if (ws_control_parse(data, size, &c, why, sizeof(why)) < 0) {
        if (!why[0] || strlen(why) >= sizeof(why))
            abort(); /* a refusal always says why */
        return 0;
    }
    if (c.type == WS_CONTROL_RESIZE && (c.rows < 1 || c.rows > 65535 || c.cols < 1 || c.cols > 65535))
        abort();
    if (c.type == WS_CONTROL_SIGNAL && (c.sig < 1 || c.sig > 64))
        abort();
    return 0;
}
