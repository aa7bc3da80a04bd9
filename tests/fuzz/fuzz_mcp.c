/* Fuzz target: what the MCP server does with a client's message before a tool touches
 * libcocoon: JSON-RPC classification (src/mcp/jsonrpc.c) with its invariants, the
 * session's dispatch of the methods that need no box (initialize, ping, tools/list,
 * unknown ones, notifications), the schema check of tool arguments (src/mcp/tools.c)
 * against every tool, and the repair of text that is not UTF-8. Input: one message. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/internal.h"
#include "mcp/jsonrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static size_t answers;
static void count(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    check(len == strlen(text) && !memchr(text, '\n', len));
    json_t *back = json_loadb(text, len, 0, NULL);
    check(back && json_is_object(back));
    json_decref(back);
    answers++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct jrpc_msg m;
    enum jrpc_kind kind = jrpc_parse(text, size, &m);
    check(kind == m.kind);
    if (kind == JRPC_REQUEST || kind == JRPC_NOTIFICATION) {
        check(m.method && *m.method && strlen(m.method) <= JRPC_METHOD_MAX);
        check(!m.params || json_is_object(m.params));
    }
    if (kind == JRPC_REQUEST)
        check(json_is_integer(m.id) || (json_is_string(m.id) && json_string_length(m.id) <= JRPC_ID_MAX));
    if (kind == JRPC_INVALID)
        check(m.code <= -32000 && m.code >= -32768 && m.error[0]);
    if (kind == JRPC_REQUEST && m.params) {
        json_t *args = json_object_get(m.params, "arguments");
        char why[512];
        for (size_t i = 0; json_is_object(args) && i < mcp_tool_count; i++)
            if (mcp_check_args(&mcp_tools[i], args, why, sizeof(why)) < 0)
                check(why[0] != '\0');
    }
    int touches_boxes =
        m.method && (strncmp(m.method, "tools/call", 10) == 0 || strncmp(m.method, "resources/", 10) == 0);
    jrpc_msg_free(&m);

    /* The whole session path for what needs no box: a request gets exactly one answer. */
    if (!touches_boxes) {
        struct mcp_session *s = mcp_session_new("/nonexistent-cocoon-home", "stdio");
        static const char init[] = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":"
                                   "{\"protocolVersion\":\"2025-11-25\"}}";
        answers = 0;
        if (size & 1)
            mcp_session_handle(s, init, sizeof(init) - 1, count, NULL);
        size_t before = answers;
        int answered = mcp_session_handle(s, text, size, count, NULL);
        check(answers - before == (size_t)answered);
        mcp_session_end(s, NULL);
    }

    json_t *repaired = mcp_text(text, size);
    check(repaired && json_is_string(repaired));
    json_decref(repaired);
    return 0;
}
