/* Fuzz target: one line of a code-interpreter context's NDJSON answer, as the host checks
 * it (code_event_check, src/lib/code_events.c). An accepted line re-encodes to JSON that is
 * accepted again as the same kind; any refusal is fine; a crash, a leak or a sanitizer
 * report is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/code_events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    struct code_event ev, again;
    if (code_event_check((const char *)data, size, &ev, why, sizeof(why)) < 0) {
        if (!memchr(why, 0, sizeof(why)) || !why[0])
            abort(); /* a refusal always says why */
        return 0;
    }
    if (!ev.json || strlen(ev.json) != ev.len || memchr(ev.json, '\n', ev.len))
        abort(); /* what callers get is one line */
    if (code_event_check(ev.json, ev.len, &again, why, sizeof(why)) < 0 || again.kind != ev.kind ||
        again.execution_count != ev.execution_count || strcmp(again.json, ev.json) != 0)
        abort();
    free(again.json);
    free(ev.json);
    return 0;
}
