/* JSON-RPC 2.0 framing for the MCP server: classifies one message (request,
 * notification, a client's response, or a protocol fault with its error code) and
 * builds results, errors and notifications. The text is the client's: every field is
 * checked for its type and length before use. */
#include "mcp/jsonrpc.h"

#include <stdio.h>
#include <string.h>

static enum jrpc_kind invalid(struct jrpc_msg *m, int code, const char *why)
{
    m->kind = JRPC_INVALID;
    m->code = code;
    snprintf(m->error, sizeof(m->error), "%s", why);
    return m->kind;
}

/* MCP ids: a string or an integer, never null (JSON-RPC allows null; MCP does not). */
static int id_ok(json_t *id)
{
    if (json_is_integer(id))
        return 1;
    return json_is_string(id) && json_string_length(id) <= JRPC_ID_MAX;
}

enum jrpc_kind jrpc_parse(const char *text, size_t len, struct jrpc_msg *m)
{
    memset(m, 0, sizeof(*m));
    json_error_t jerr;
    m->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!m->root) {
        char why[256];
        snprintf(why, sizeof(why), "parse error: %.200s (at byte %d)", jerr.text, jerr.position);
        return invalid(m, JRPC_PARSE_ERROR, why);
    }
    if (json_is_array(m->root))
        return invalid(m, JRPC_INVALID_REQUEST,
                       "batches are not supported (MCP removed JSON-RPC batching in 2025-06-18): send one message "
                       "at a time");
    if (!json_is_object(m->root))
        return invalid(m, JRPC_INVALID_REQUEST, "a message must be a JSON object");
    json_t *id = json_object_get(m->root, "id");
    if (id && id_ok(id))
        m->id = id;
    json_t *version = json_object_get(m->root, "jsonrpc");
    if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0)
        return invalid(m, JRPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"");
    if (id && !m->id)
        return invalid(m, JRPC_INVALID_REQUEST, "\"id\" must be a string (at most 256 bytes) or an integer, not null");
    json_t *method = json_object_get(m->root, "method");
    if (!method) {
        if (m->id && (json_object_get(m->root, "result") || json_object_get(m->root, "error"))) {
            m->kind = JRPC_RESPONSE;
            return m->kind;
        }
        return invalid(m, JRPC_INVALID_REQUEST, "a message needs a \"method\" (or is a response with an \"id\")");
    }
    if (!json_is_string(method) || json_string_length(method) == 0 || json_string_length(method) > JRPC_METHOD_MAX ||
        strlen(json_string_value(method)) != json_string_length(method))
        return invalid(m, JRPC_INVALID_REQUEST, "\"method\" must be a non-empty string of at most 128 bytes");
    m->method = json_string_value(method);
    json_t *params = json_object_get(m->root, "params");
    if (params && !json_is_null(params)) {
        if (!json_is_object(params))
            return invalid(m, m->id ? JRPC_INVALID_PARAMS : JRPC_INVALID_REQUEST, "\"params\" must be an object");
        m->params = params;
    }
    m->kind = m->id ? JRPC_REQUEST : JRPC_NOTIFICATION;
    return m->kind;
}

void jrpc_msg_free(struct jrpc_msg *m)
{
    json_decref(m->root);
    memset(m, 0, sizeof(*m));
}

static json_t *envelope(json_t *id)
{
    json_t *msg = json_object();
    json_object_set_new(msg, "jsonrpc", json_string("2.0"));
    json_object_set(msg, "id", id ? id : json_null());
    return msg;
}

json_t *jrpc_result(json_t *id, json_t *result)
{
    json_t *msg = envelope(id);
    json_object_set_new(msg, "result", result ? result : json_object());
    return msg;
}

json_t *jrpc_error(json_t *id, int code, const char *message)
{
    json_t *msg = envelope(id);
    json_t *e = json_object();
    json_object_set_new(e, "code", json_integer(code));
    json_t *text = json_string(message);
    json_object_set_new(e, "message", text ? text : json_string("(message not UTF-8)"));
    json_object_set_new(msg, "error", e);
    return msg;
}

json_t *jrpc_notification(const char *method, json_t *params)
{
    json_t *msg = json_object();
    json_object_set_new(msg, "jsonrpc", json_string("2.0"));
    json_object_set_new(msg, "method", json_string(method));
    if (params)
        json_object_set_new(msg, "params", params);
    return msg;
}

char *jrpc_dump(json_t *msg, size_t *len)
{
    /* Compact jansson output escapes control characters in strings: no raw newline. */
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (text && len)
        *len = strlen(text);
    return text;
}

int jrpc_is_notification(const char *text, size_t len)
{
    /* jansson keeps insertion order: a notification is {"jsonrpc":"2.0","method":...,
     * a response {"jsonrpc":"2.0","id":... */
    static const char prefix[] = "{\"jsonrpc\":\"2.0\",\"method\":";
    return len >= sizeof(prefix) - 1 && memcmp(text, prefix, sizeof(prefix) - 1) == 0;
}
