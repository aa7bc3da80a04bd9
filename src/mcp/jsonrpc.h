/* JSON-RPC 2.0 as MCP uses it: one message at a time (no batches), ids that are strings
 * or integers, params that are objects. Parsing classifies a message and names the
 * protocol fault of a bad one; the builders make the answers. Pure: no I/O. */
#ifndef COCOON_MCP_JSONRPC_H
#define COCOON_MCP_JSONRPC_H

#include <jansson.h>
#include <stddef.h>

#define JRPC_PARSE_ERROR (-32700)
#define JRPC_INVALID_REQUEST (-32600)
#define JRPC_METHOD_NOT_FOUND (-32601)
#define JRPC_INVALID_PARAMS (-32602)
#define JRPC_INTERNAL_ERROR (-32603)
#define JRPC_REQUEST_CANCELLED (-32800)
#define JRPC_SERVER_BUSY (-32000) /* a bound of the server was reached */

#define JRPC_ID_MAX 256     /* bytes of a string id */
#define JRPC_METHOD_MAX 128 /* bytes of a method name */

enum jrpc_kind { JRPC_REQUEST, JRPC_NOTIFICATION, JRPC_RESPONSE, JRPC_INVALID };

struct jrpc_msg {
    enum jrpc_kind kind;
    json_t *root;       /* owned; NULL when the text was not JSON */
    json_t *id;         /* borrowed from root: requests, responses, and invalid ones whose id could be read */
    const char *method; /* requests and notifications */
    json_t *params;     /* an object, or NULL when absent */
    int code;           /* JRPC_INVALID: the error to answer with */
    char error[256];    /* JRPC_INVALID: why, for the answer's message */
};

/* Classifies the len bytes of text (not NUL-terminated). Always fills *out (free it
 * with jrpc_msg_free) and returns out->kind. */
enum jrpc_kind jrpc_parse(const char *text, size_t len, struct jrpc_msg *out);
void jrpc_msg_free(struct jrpc_msg *m);

/* Answers. id may be NULL (an error about a message whose id is unknown: "id": null). */
json_t *jrpc_result(json_t *id, json_t *result); /* steals result */
json_t *jrpc_error(json_t *id, int code, const char *message);
json_t *jrpc_notification(const char *method, json_t *params); /* steals params */
/* Whether text, made by jrpc_dump, is a notification (not a response): decided by how
 * it starts, never by what a result contains. */
int jrpc_is_notification(const char *text, size_t len);
/* One line of compact JSON (no newline inside, none at the end), malloc'd; NULL on
 * failure. Steals msg. */
char *jrpc_dump(json_t *msg, size_t *len);

#endif
