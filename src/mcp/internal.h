/* What the files of the MCP server share: a session's state, one tool call in flight,
 * the tool table, and the helpers tools answer with. */
#ifndef COCOON_MCP_INTERNAL_H
#define COCOON_MCP_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "cocoon.h"
#include "mcp/mcp.h"

struct longcmd;

struct mcp_call {
    struct mcp_session *s;
    json_t *id;             /* the request's id (a reference) */
    json_t *progress_token; /* params._meta.progressToken, or NULL */
    mcp_emit_fn emit;
    void *emit_ctx;
    int cancelled;     /* notifications/cancelled named it (under s->lock) */
    cocoon_exec *exec; /* the exec it waits for, killed on cancel (under s->lock) */
    int slot;
};

struct session_box {
    char id[16];
    int keep;
};

struct mcp_session {
    pthread_mutex_t lock;
    char *home;
    char transport[8];
    int initialized;
    char protocol[16];
    struct mcp_call *calls[MCP_INFLIGHT_MAX];
    unsigned busy;
    pthread_cond_t idle; /* busy dropped */
    struct session_box boxes[MCP_SESSION_BOXES_MAX];
    size_t nboxes;
    struct longcmd *cmds[MCP_LONGCMD_KEPT_MAX];
    int next_cmd_id;
    int ending;
};

/* A tool: its result (a CallToolResult object) for already schema-checked args. Most
 * tools work on one box (args.box, opened for them) or on the runtime; a few need
 * neither (long commands keep their own handles). Exactly one function is set. */
typedef json_t *(*tool_fn)(struct mcp_call *c, json_t *args);
typedef json_t *(*runtime_tool_fn)(struct mcp_call *c, json_t *args, cocoon_runtime *rt);
typedef json_t *(*box_tool_fn)(struct mcp_call *c, json_t *args, cocoon_box *box);
struct tool {
    const char *name;
    const char *title;
    const char *description;
    const char *input_schema; /* JSON with ' for " (descriptions use no apostrophes) */
    tool_fn fn;
    runtime_tool_fn runtime_fn;
    box_tool_fn box_fn;
};
/* Runs t with what it needs opened (the runtime, the box). */
json_t *mcp_tool_run(const struct tool *t, struct mcp_call *c, json_t *args);
extern const struct tool mcp_tools[];
extern const size_t mcp_tool_count;
const struct tool *mcp_tool_find(const char *name);
/* The schema of a tool as JSON (a new reference), cached. */
json_t *mcp_tool_schema(const struct tool *t);
/* Its outputSchema (a new reference), or NULL for a tool without one. */
json_t *mcp_tool_output_schema(const struct tool *t);
/* Checks args against the tool's schema's top level: required keys, no unknown ones,
 * types, integer ranges and enums. 0, or -1 with why. */
int mcp_check_args(const struct tool *t, json_t *args, char *why, size_t cap);

/* ---- results ---- */
json_t *tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A cocoon error as a tool error, with what was being done and a hint that fits. */
json_t *tool_cocoon_error(const char *doing, const cocoon_error *err);
/* structured (stolen) as structuredContent and as the text content. */
json_t *tool_ok(json_t *structured);
/* Text that may not be UTF-8 as a JSON string (bad bytes become U+FFFD). */
json_t *mcp_text(const char *data, size_t len);

/* ---- arguments (already checked against the schema: only absent values fall back) ---- */
const char *arg_str(json_t *args, const char *key, const char *def);
long long arg_int(json_t *args, const char *key, long long def);
int arg_bool(json_t *args, const char *key, int def);
/* An array of strings as a NULL-terminated vector (free with free()); NULL when absent. */
const char **arg_strv(json_t *args, const char *key);
/* An object of strings as "K=V" entries (free with mcp_free_env); NULL when absent. */
char **arg_env(json_t *args, const char *key);
void mcp_free_env(char **env);

/* ---- the runtime and boxes ---- */
int mcp_runtime(struct mcp_session *s, cocoon_runtime **rt, cocoon_error *err);
/* Opens args.box; on failure *fail is the tool error to return. */
int mcp_open_box(struct mcp_call *c, json_t *args, cocoon_runtime **rt, cocoon_box **box, json_t **fail);
void mcp_close_box(cocoon_runtime *rt, cocoon_box *box);
/* Records a box the session created (removed at its end unless keep). */
int session_add_box(struct mcp_session *s, const char *id, int keep);
void session_forget_box(struct mcp_session *s, const char *id);
/* 1 when the session holds MCP_SESSION_BOXES_MAX boxes (it may create no more). */
int session_boxes_full(struct mcp_session *s);

/* Calls in flight (session.c): begin fails when MCP_INFLIGHT_MAX are or the session ends. */
int session_call_begin(struct mcp_session *s, struct mcp_call *c);
void session_call_end(struct mcp_session *s, struct mcp_call *c);
/* notifications/cancelled: marks the call with that request id and kills its exec. */
int session_cancel(struct mcp_session *s, json_t *request_id);

/* The exec a call waits for (cancel kills it); returns 1 when the call was cancelled already. */
int call_set_exec(struct mcp_call *c, cocoon_exec *ex);
int call_cancelled(struct mcp_call *c);
void call_progress(struct mcp_call *c, double done, double total, const char *message);

/* ---- long commands (longcmd.c) ---- */
void longcmd_end_all(struct mcp_session *s);

/* ---- tools (by file) ---- */
json_t *tool_box_create(struct mcp_call *c, json_t *args, cocoon_runtime *rt);
json_t *tool_box_list(struct mcp_call *c, json_t *args, cocoon_runtime *rt);
json_t *tool_box_inspect(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_box_start(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_box_stop(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_box_remove(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_box_stats(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_box_logs(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_net_log(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_image_pull(struct mcp_call *c, json_t *args, cocoon_runtime *rt);
json_t *tool_image_list(struct mcp_call *c, json_t *args, cocoon_runtime *rt);
json_t *tool_exec(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_run_code(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_exec_start(struct mcp_call *c, json_t *args);
json_t *tool_exec_output(struct mcp_call *c, json_t *args);
json_t *tool_exec_write_stdin(struct mcp_call *c, json_t *args);
json_t *tool_exec_signal(struct mcp_call *c, json_t *args);
json_t *tool_file_read(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_file_write(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_file_list(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_file_stat(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_file_mkdir(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_file_remove(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_copy_to_box(struct mcp_call *c, json_t *args);
json_t *tool_copy_from_box(struct mcp_call *c, json_t *args);
json_t *tool_snapshot_create(struct mcp_call *c, json_t *args, cocoon_box *box);
json_t *tool_snapshot_list(struct mcp_call *c, json_t *args, cocoon_runtime *rt);
json_t *tool_snapshot_restore(struct mcp_call *c, json_t *args);
json_t *tool_snapshot_remove(struct mcp_call *c, json_t *args, cocoon_runtime *rt);
json_t *tool_box_export(struct mcp_call *c, json_t *args);
json_t *tool_box_import(struct mcp_call *c, json_t *args);
json_t *tool_box_clone(struct mcp_call *c, json_t *args);

/* Resources (resources.c): the result of resources/list, templates/list and read, or
 * NULL with a JSON-RPC error code and message. */
json_t *mcp_resources_list(struct mcp_session *s);
json_t *mcp_resource_templates(void);
json_t *mcp_resource_read(struct mcp_session *s, const char *uri, int *code, char *why, size_t cap);

/* Box and image objects shared by tools and resources. */
json_t *mcp_box_json(const cocoon_box_info *info);
json_t *mcp_image_json(const cocoon_image_info *info);
json_t *mcp_snapshot_json(const cocoon_snapshot_info *info);

/* Host paths for copies (hostpath.c): resolves path inside the allowlist
 * COCOON_MCP_HOST_PATHS. for_write: the path may not exist yet (its parent must).
 * 0 with the resolved path, or -1 with a message saying what to do. */
int mcp_host_path(const char *path, int for_write, char *out, size_t cap, char *why, size_t why_cap);

#endif
