/* Fuzz target: a box's main.json (cocoon-vmm reads it before each start) and
 * main.state.json (libcocoon reads what the jailed monitor wrote) through
 * main_spec_parse and main_state_parse. A spec that parses has a command within the
 * bounds and writes back to text that parses to the same text; a state that parses has
 * its numbers in range. The same bytes as a `logs --since` word (util_parse_since: the
 * CLI's option and the server's ?since=) give a time from 1970 on or a refusal with a
 * message. Any refusal is fine; a crash, a leak or a sanitizer report is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boxcfg/mainspec.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    char word[80];
    if (size < sizeof(word)) {
        memcpy(word, data, size);
        word[size] = '\0';
        long long us = -1;
        err[0] = '\0';
        int r = util_parse_since(word, 1764770400LL * 1000000, &us, err, sizeof(err));
        if ((r == 0 && us < 0) || (r < 0 && !err[0]))
            abort();
    }
    struct main_state st;
    if (main_state_parse((const char *)data, size, &st, err, sizeof(err)) > 0 &&
        (st.exit_code < -1 || st.exit_code > 255 || st.signal < 0 || st.signal > 64 || !memchr(st.state, 0, 16)))
        abort();
    struct main_spec s, again;
    if (main_spec_parse((const char *)data, size, &s, err, sizeof(err)) < 0)
        return 0;
    size_t argc = 0;
    while (s.argv[argc])
        argc++;
    if (argc < 1 || argc > MAIN_ARGV_MAX || !s.env || s.restart > MAIN_RESTART_UNLESS_STOPPED ||
        s.max_retries > MAIN_RETRIES_MAX)
        abort();
    char *text = main_spec_json(&s);
    if (text) {
        if (main_spec_parse(text, strlen(text), &again, err, sizeof(err)) < 0)
            abort(); /* what we write, we read */
        char *text2 = main_spec_json(&again);
        if (text2 && strcmp(text, text2) != 0)
            abort();
        free(text2);
        main_spec_free(&again);
    }
    free(text);
    main_spec_free(&s);
    return 0;
}
