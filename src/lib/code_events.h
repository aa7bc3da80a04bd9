/* The host's check of one code-interpreter event line from the guest (code_events.c):
 * shared by cocoon_code_run, its unit test and its fuzz target. */
#ifndef COCOON_LIB_CODE_EVENTS_H
#define COCOON_LIB_CODE_EVENTS_H

#include <stddef.h>

/* One event line may hold a PNG of up to ~12 MiB (16 MiB of base64 and JSON). */
#define CODE_EVENT_LINE_MAX (16u * 1024u * 1024u)
/* One stdout/stderr event's text: the guest sends at most 32 KiB; some slack for escapes. */
#define CODE_EVENT_TEXT_MAX (256u * 1024u)

enum code_event_kind { CODE_EV_STDOUT, CODE_EV_STDERR, CODE_EV_RESULT, CODE_EV_ERROR, CODE_EV_END };

struct code_event {
    enum code_event_kind kind;
    char *json; /* the event re-encoded compactly (malloc'd): what callers get */
    size_t len;
    long long execution_count; /* CODE_EV_END */
};

/* Checks line (len bytes, no newline) against the event shapes of cocoon.h: an object
 * with a known "type", only the keys that type has, each of its type (strings valid
 * UTF-8 without NUL, "png"/"jpeg" base64, "json" an object or array). 0 and *ev filled,
 * or -1 with why (cap bytes) saying what was wrong. Free ev->json with free(). */
int code_event_check(const char *line, size_t len, struct code_event *ev, char *why, size_t cap);

#endif
