/* The MCP methods: the lifecycle (initialize with version negotiation, initialized,
 * ping), tools/list and tools/call, resources, cancellation; and the routing of one
 * message to them with the JSON-RPC error a protocol fault gets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon.h"
#include "mcp/internal.h"
#include "mcp/jsonrpc.h"

const char *const mcp_protocol_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", NULL};

static const char instructions[] =
    "cocoon runs code in microVM sandboxes (boxes). Create a box with box_create (it boots and is ready for exec), "
    "run commands with exec (or exec_start/exec_output for long ones), move files with file_read/file_write, and "
    "remove it with box_remove. Boxes you create are removed when this session ends unless created with keep: true.";

static void send(mcp_emit_fn emit, void *ctx, json_t *msg)
{
    size_t len;
    char *text = jrpc_dump(msg, &len);
    if (text && emit)
        emit(ctx, text, len);
    free(text);
}

static json_t *do_initialize(struct mcp_session *s, json_t *params, int *code, char *why, size_t cap)
{
    json_t *asked = params ? json_object_get(params, "protocolVersion") : NULL;
    if (!json_is_string(asked)) {
        *code = JRPC_INVALID_PARAMS;
        snprintf(why, cap, "initialize needs params.protocolVersion (a string such as \"%s\")",
                 mcp_protocol_versions[0]);
        return NULL;
    }
    /* The spec: answer the client's revision when we speak it, else our latest (the
     * client then decides whether it can go on). */
    const char *chosen = mcp_protocol_versions[0];
    for (size_t i = 0; mcp_protocol_versions[i]; i++)
        if (strcmp(json_string_value(asked), mcp_protocol_versions[i]) == 0)
            chosen = mcp_protocol_versions[i];
    pthread_mutex_lock(&s->lock);
    snprintf(s->protocol, sizeof(s->protocol), "%s", chosen);
    s->initialized = 1;
    pthread_mutex_unlock(&s->lock);
    return json_pack("{s:s, s:{s:{s:b}, s:{s:b, s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion", chosen,
                     "capabilities", "tools", "listChanged", 0, "resources", "subscribe", 0, "listChanged", 0,
                     "serverInfo", "name", "cocoon", "title", "cocoon microVM sandboxes", "version", cocoon_version(),
                     "instructions", instructions);
}

static json_t *do_tools_list(void)
{
    json_t *tools = json_array();
    for (size_t i = 0; i < mcp_tool_count; i++) {
        const struct tool *t = &mcp_tools[i];
        json_t *one = json_pack("{s:s, s:s, s:s, s:o}", "name", t->name, "title", t->title, "description",
                                t->description, "inputSchema", mcp_tool_schema(t));
        json_t *output = mcp_tool_output_schema(t);
        if (one && output)
            json_object_set_new(one, "outputSchema", output);
        else
            json_decref(output);
        json_array_append_new(tools, one);
    }
    return json_pack("{s:o}", "tools", tools);
}

static json_t *do_tools_call(struct mcp_call *c, json_t *params, int *code, char *why, size_t cap)
{
    json_t *name = params ? json_object_get(params, "name") : NULL;
    if (!json_is_string(name)) {
        *code = JRPC_INVALID_PARAMS;
        snprintf(why, cap, "tools/call needs params.name, the tool's name (tools/list lists them)");
        return NULL;
    }
    const struct tool *t = mcp_tool_find(json_string_value(name));
    if (!t) {
        *code = JRPC_INVALID_PARAMS;
        snprintf(why, cap, "unknown tool \"%.128s\" (tools/list lists the %zu tools)", json_string_value(name),
                 mcp_tool_count);
        return NULL;
    }
    json_t *args = json_object_get(params, "arguments");
    json_t *empty = NULL;
    if (!args || json_is_null(args))
        args = empty = json_object();
    char bad[512];
    json_t *result;
    if (!json_is_object(args))
        result = tool_error("the arguments of %s must be an object", t->name);
    else if (mcp_check_args(t, args, bad, sizeof(bad)) < 0)
        result = tool_error("invalid arguments for %s: %s", t->name, bad);
    else
        result = mcp_tool_run(t, c, args);
    json_decref(empty);
    return result ? result : tool_error("%s failed: out of memory", t->name);
}

static json_t *do_resource_read(struct mcp_session *s, json_t *params, int *code, char *why, size_t cap)
{
    json_t *uri = params ? json_object_get(params, "uri") : NULL;
    if (!json_is_string(uri)) {
        *code = JRPC_INVALID_PARAMS;
        snprintf(why, cap, "resources/read needs params.uri");
        return NULL;
    }
    return mcp_resource_read(s, json_string_value(uri), code, why, cap);
}

static void answer_request(struct mcp_session *s, struct jrpc_msg *m, mcp_emit_fn emit, void *ctx)
{
    struct mcp_call call = {.s = s, .id = m->id, .emit = emit, .emit_ctx = ctx};
    json_t *meta = m->params ? json_object_get(m->params, "_meta") : NULL;
    json_t *token = meta ? json_object_get(meta, "progressToken") : NULL;
    if (json_is_string(token) || json_is_integer(token))
        call.progress_token = token;
    int code = JRPC_INTERNAL_ERROR;
    char why[512] = "out of memory";
    json_t *result = NULL;
    const char *method = m->method;

    if (strcmp(method, "initialize") == 0) {
        send(emit, ctx,
             (result = do_initialize(s, m->params, &code, why, sizeof(why))) ? jrpc_result(m->id, result)
                                                                             : jrpc_error(m->id, code, why));
        return;
    }
    if (strcmp(method, "ping") == 0) {
        send(emit, ctx, jrpc_result(m->id, json_object()));
        return;
    }
    if (!s->initialized) {
        send(emit, ctx,
             jrpc_error(m->id, JRPC_INVALID_REQUEST, "the session is not initialized: send initialize first"));
        return;
    }
    if (session_call_begin(s, &call) < 0) {
        if (s->ending)
            snprintf(why, sizeof(why), "the session is ending");
        else
            snprintf(why, sizeof(why), "%d requests of this session are being answered (the bound): wait for one",
                     MCP_INFLIGHT_MAX);
        send(emit, ctx, jrpc_error(m->id, JRPC_SERVER_BUSY, why));
        return;
    }
    if (strcmp(method, "tools/list") == 0)
        result = do_tools_list();
    else if (strcmp(method, "tools/call") == 0)
        result = do_tools_call(&call, m->params, &code, why, sizeof(why));
    else if (strcmp(method, "resources/list") == 0)
        result = mcp_resources_list(s);
    else if (strcmp(method, "resources/templates/list") == 0)
        result = mcp_resource_templates();
    else if (strcmp(method, "resources/read") == 0)
        result = do_resource_read(s, m->params, &code, why, sizeof(why));
    else {
        code = JRPC_METHOD_NOT_FOUND;
        snprintf(why, sizeof(why), "method not found: %.128s", method);
    }
    int cancelled = call_cancelled(&call);
    int stdio = strcmp(s->transport, "stdio") == 0;
    session_call_end(s, &call);
    /* A cancelled request gets no answer (the client forgot it), on stdio; over HTTP the
     * POST still needs one. */
    if (cancelled && stdio) {
        json_decref(result);
        return;
    }
    if (cancelled) {
        json_decref(result);
        send(emit, ctx, jrpc_error(m->id, JRPC_REQUEST_CANCELLED, "the request was cancelled"));
        return;
    }
    send(emit, ctx, result ? jrpc_result(m->id, result) : jrpc_error(m->id, code, why));
}

static void take_notification(struct mcp_session *s, struct jrpc_msg *m)
{
    if (strcmp(m->method, "notifications/cancelled") == 0) {
        json_t *id = m->params ? json_object_get(m->params, "requestId") : NULL;
        if (id)
            session_cancel(s, id);
    }
    /* notifications/initialized and others need nothing; unknown ones are ignored. */
}

int mcp_session_handle(struct mcp_session *s, const char *text, size_t len, mcp_emit_fn emit, void *ctx)
{
    struct jrpc_msg m;
    if (len > MCP_MESSAGE_MAX) {
        char why[128];
        snprintf(why, sizeof(why), "the message is larger than %u bytes, the bound", MCP_MESSAGE_MAX);
        send(emit, ctx, jrpc_error(NULL, JRPC_INVALID_REQUEST, why));
        return 1;
    }
    int answered = 0;
    switch (jrpc_parse(text, len, &m)) {
    case JRPC_REQUEST:
        answer_request(s, &m, emit, ctx);
        answered = 1;
        break;
    case JRPC_NOTIFICATION: take_notification(s, &m); break;
    case JRPC_RESPONSE: break; /* the server sends no requests: nothing waits for one */
    case JRPC_INVALID:
        send(emit, ctx, jrpc_error(m.id, m.code, m.error));
        answered = 1;
        break;
    }
    jrpc_msg_free(&m);
    return answered;
}

static int peek(const char *text, size_t len, const char *method)
{
    struct jrpc_msg m;
    int yes = jrpc_parse(text, len, &m) == JRPC_REQUEST && (!method || strcmp(m.method, method) == 0);
    jrpc_msg_free(&m);
    return yes;
}

int mcp_message_is_request(const char *text, size_t len) { return len <= MCP_MESSAGE_MAX && peek(text, len, NULL); }
int mcp_message_is_initialize(const char *text, size_t len)
{
    return len <= MCP_MESSAGE_MAX && peek(text, len, "initialize");
}
