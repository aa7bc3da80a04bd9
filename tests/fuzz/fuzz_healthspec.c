/* Fuzz target: a box's health.json (cocoon-vmm reads it before each start) and
 * health.state.json (libcocoon reads what the jailed monitor wrote, with the guest's
 * output in it) through health_spec_parse and health_state_parse, and the input as a
 * check's output through health_state_add. A spec that parses is within its bounds and
 * writes back to text that parses to the same text; a state that parses has at most
 * five results of at most 4 KiB; an added output is cut and printable. Any refusal is
 * fine; a crash, a leak or a sanitizer report is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boxcfg/healthspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct health_state st;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    if (health_state_parse((const char *)data, size, &st, err, sizeof(err)) > 0) {
        if (st.nlog > HEALTH_LOG_KEEP || !memchr(st.status, 0, sizeof(st.status)))
            abort();
        for (unsigned i = 0; i < st.nlog; i++)
            if (strlen(st.log[i].output) > HEALTH_OUTPUT_MAX || st.log[i].exit_code < -1 || st.log[i].exit_code > 255)
                abort();
    }
    health_state_add(&st, 1, 0, 0, (const char *)data, size);
    const struct health_result *r = &st.log[st.nlog - 1];
    size_t n = strlen(r->output);
    if (n > HEALTH_OUTPUT_MAX || n > size)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)r->output[i] < 0x20 && r->output[i] != '\n' && r->output[i] != '\t')
            abort();
    uint32_t ms;
    char text[64];
    memcpy(text, data, size < sizeof(text) - 1 ? size : sizeof(text) - 1);
    text[size < sizeof(text) - 1 ? size : sizeof(text) - 1] = 0;
    if (health_duration_parse(text, "d", &ms, err, sizeof(err)) == 0 && ms > HEALTH_DURATION_MAX_MS)
        abort();
    struct health_spec s, again;
    if (health_spec_parse((const char *)data, size, &s, err, sizeof(err)) < 0)
        return 0;
    if (health_spec_check(&s, err, sizeof(err)) < 0)
        abort();
    char *json = health_spec_json(&s);
    if (json) {
        if (health_spec_parse(json, strlen(json), &again, err, sizeof(err)) < 0)
            abort(); /* what we write, we read */
        char *json2 = health_spec_json(&again);
        if (json2 && strcmp(json, json2) != 0)
            abort();
        free(json2);
        health_spec_free(&again);
    }
    free(json);
    health_spec_free(&s);
    return 0;
}
