/* The MCP server of cocoon, independent of its transport: a session takes one
 * JSON-RPC message at a time and sends answers and notifications through the
 * transport's emit function. `cocoon mcp` (stdio) and /mcp of `cocoon serve`
 * (Streamable HTTP) drive it. */
#ifndef COCOON_MCP_H
#define COCOON_MCP_H

#include <stddef.h>

/* Bounds on what a client may send or make the server hold. */
#define MCP_MESSAGE_MAX (8u << 20)      /* bytes of one JSON-RPC message (file_write carries base64) */
#define MCP_INFLIGHT_MAX 16             /* requests of one session being answered at once */
#define MCP_LONGCMD_RUNNING_MAX 16      /* exec_start commands running at once per session */
#define MCP_LONGCMD_KEPT_MAX 64         /* exec_start commands remembered per session (finished ones go first) */
#define MCP_LONGCMD_BUFFER (512u << 10) /* output kept per stream of a long command (older bytes dropped) */
#define MCP_SESSION_BOXES_MAX 64        /* boxes one session may create (and must remove at its end) */
#define MCP_HTTP_SESSIONS_MAX 64        /* sessions open at once on /mcp */

/* The protocol revisions this server speaks, newest first. */
extern const char *const mcp_protocol_versions[];

struct mcp_session;

/* A transport's way of sending one message: text is one line of compact JSON (no
 * newline). Called from any thread of the session; the transport serialises. */
typedef void (*mcp_emit_fn)(void *ctx, const char *text, size_t len);

/* home: the runtime's state directory (NULL: libcocoon's default). transport: "stdio"
 * or "http" (shown in logs). NULL when out of memory. */
struct mcp_session *mcp_session_new(const char *home, const char *transport);
/* Handles one message. Answers (and notifications made while handling it) go to emit;
 * a notification or a client's response gets no answer. Blocks while a tool runs: a
 * transport that must keep reading calls it from another thread (see
 * mcp_message_is_request). Returns 1 when the message was a request that was answered,
 * 0 otherwise. */
int mcp_session_handle(struct mcp_session *s, const char *text, size_t len, mcp_emit_fn emit, void *ctx);
/* Whether text is a request with an id (worth a thread of its own), without handling it. */
int mcp_message_is_request(const char *text, size_t len);
/* Whether text is an initialize request (HTTP: the one message allowed without a session). */
int mcp_message_is_initialize(const char *text, size_t len);
/* Requests being answered right now (a session with one is not idle). */
unsigned mcp_session_busy(struct mcp_session *s);
/* The session's protocol revision once initialized, else "". */
const char *mcp_session_protocol(struct mcp_session *s);
/* Refuses new calls and cancels the running ones (their execs are killed); returns at
 * once. A transport calls it, waits until its threads left mcp_session_handle, then
 * calls mcp_session_end. */
void mcp_session_interrupt(struct mcp_session *s);
/* Ends the session (no thread may be in mcp_session_handle): interrupts its running calls and long commands, waits for
 * them, removes the boxes it created unless they were created with keep, and frees it. Progress lines go to log (may be
 * NULL). */
void mcp_session_end(struct mcp_session *s, void (*log)(const char *line));

/* `cocoon mcp`: newline-delimited JSON-RPC on stdin/stdout until EOF, logs on stderr. */
int mcp_stdio_run(const char *home);

#endif
