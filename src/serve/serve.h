/* What the parts of `cocoon serve` share: the server's settings and counters, one HTTP
 * request as the handlers see it (route, query, body), and the ways a handler answers
 * (JSON, an error envelope, a stream from a pipe, a WebSocket upgrade). */
#ifndef COCOON_SERVE_H
#define COCOON_SERVE_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cocoon.h"
#include "serve/route.h"

#define SERVE_JSON_MAX (1u << 20) /* request bodies that are JSON */
#define SERVE_TOKEN_MAX 256
#define SERVE_IDLE_TIMEOUT_S 30 /* a connection without a request in progress */

struct MHD_Connection;
struct MHD_Response;

struct serve_settings {
    const char *home; /* NULL: libcocoon's default */
    int need_token;   /* the TCP listener wants the token (shown in /v1/config) */
    char token[SERVE_TOKEN_MAX];
    unsigned max_connections;
    uint64_t max_upload; /* bytes of a tar upload (files, image load) */
};

struct serve_stats {
    uint64_t requests, errors_4xx, errors_5xx;
    uint64_t execs_started, exec_errors;
    uint64_t boxes_created, boxes_failed, boxes_stopped; /* over the API, since the server started */
    uint64_t started_ns;
};

/* Per-box exec counters since the server started (metrics). */
struct serve_box_counters {
    uint64_t commands, errors, bytes_in, bytes_out; /* in: stdin sent; out: output received */
};
void serve_box_counters_get(const char *box_id, struct serve_box_counters *out);
void serve_box_count_exec(const char *box_id, int failed, uint64_t bytes_in, uint64_t bytes_out);

extern struct serve_settings serve_cfg;
extern struct serve_stats serve_counters;
extern pthread_mutex_t serve_counters_lock;

/* How a request body is taken: whole (JSON, bounded) or streamed to a consumer. */
typedef int (*serve_body_fn)(void *ctx, const char *data, size_t len); /* 0 or -1: stop */

struct req {
    struct MHD_Connection *conn;
    enum route_method method;
    const char *method_text;
    const char *url;
    struct route route;
    int need_token; /* the listener wants the bearer token */
    int tcp;        /* it came over TCP (not the unix socket) */
    int e2b;        /* the E2B-compatible front answers it (e2b.c) */
    uint64_t t0_ns;
    unsigned status; /* the answer's status, for the access log */
    int answered;
    char location[192]; /* a Location header for a 2xx answer, or "" */
    /* body */
    char *body;
    size_t body_len;
    int body_too_big;
    serve_body_fn body_fn; /* set by a handler's begin step to stream the body */
    void *body_ctx;
    int body_failed;
    /* state a handler keeps between MHD's calls (upload streaming) */
    void *handler_state;
    void (*handler_free)(void *state);
};

/* ---- answers (each returns 0, or -1 when the response could not be queued; the error
 * answers always return -1, so a check that answered stops its caller) ---- */
int serve_json(struct req *r, unsigned status, json_t *body); /* steals body */
int serve_error(struct req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A libcocoon error as the status and code that fit it. */
int serve_cocoon_error(struct req *r, const cocoon_error *err);
/* The envelope's "type" for an error code ("NotFoundError" for not_found...). */
const char *serve_error_type(const char *code, unsigned status);
int serve_empty(struct req *r, unsigned status);
int serve_text(struct req *r, unsigned status, const char *content_type, const char *data, size_t len);
/* Streams what fd yields until EOF (the response owns fd). */
int serve_stream_fd(struct req *r, unsigned status, const char *content_type, int fd);
/* Streams what fn produces: fn(ctx, buf, cap) returns bytes, 0 at the end, -1 on error
 * (the connection is then cut, which a client sees as a truncated body); done(ctx)
 * runs once the response is finished or abandoned by a client that went away. */
typedef long (*serve_produce_fn)(void *ctx, char *buf, size_t cap);
int serve_stream(struct req *r, unsigned status, const char *content_type, serve_produce_fn fn, void *ctx,
                 void (*done)(void *ctx));
const char *serve_query(struct req *r, const char *key);
const char *serve_header(struct req *r, const char *key);
/* "true"/"1" → 1, "false"/"0"/absent → 0, else -1. */
int serve_query_bool(struct req *r, const char *key);

/* ---- request bodies ---- */
/* The JSON object of the body ({} when empty). On failure answers 400 and returns NULL. */
json_t *serve_body_object(struct req *r);
/* Checks that obj has only the keys listed (NULL-terminated); answers 400 naming the
 * first other one. */
int serve_only_keys(struct req *r, json_t *obj, const char *const *keys);
/* Typed field readers: 0 and the value (or the default when absent or null), -1 after
 * answering 400 for a wrong type or range. */
int serve_get_string(struct req *r, json_t *obj, const char *key, size_t max, const char **out);
int serve_get_uint(struct req *r, json_t *obj, const char *key, uint64_t min, uint64_t max, uint64_t *out);
int serve_get_bool(struct req *r, json_t *obj, const char *key, int *out);
/* A number of seconds (integer or not) from 0 to max_s. */
int serve_get_seconds(struct req *r, json_t *obj, const char *key, double max_s, double *out);
/* An array of strings as a NULL-terminated vector (free with free(); the strings belong
 * to obj); *out NULL when absent. */
int serve_get_strings(struct req *r, json_t *obj, const char *key, size_t max_items, const char ***out);
/* An object of string values as "K=V" entries (free with serve_free_env). */
int serve_get_env(struct req *r, json_t *obj, const char *key, char ***out);
void serve_free_env(char **env);

/* ---- libcocoon per request ---- */
int serve_runtime(struct req *r, cocoon_runtime **rt); /* answers 500 on failure */
/* Opens the route's box; answers 404 and returns -1 when it does not exist. */
int serve_open_box(struct req *r, cocoon_runtime *rt, cocoon_box **box);
/* A runtime and the route's box (answered on failure), and their release. */
int serve_open_runtime_box(struct req *r, cocoon_runtime **rt, cocoon_box **box);
void serve_close_runtime_box(cocoon_runtime *rt, cocoon_box *box);
/* The same, booting the box when it is not running (BoxLite's lazy start). */
int serve_open_running_box(struct req *r, cocoon_runtime **rt, cocoon_box **box);
/* A libcocoon runtime with the server's settings (for threads without a request). */
int serve_runtime_open(cocoon_runtime **rt, cocoon_error *err);

void serve_iso_time(long long unix_time, char *out, size_t cap);
void serve_count(uint64_t *counter);

/* ---- handlers ---- */
int handle_config(struct req *r);
int handle_me(struct req *r);
int handle_openapi(struct req *r);
int handle_health(struct req *r);
int handle_metrics(struct req *r);
int handle_boxes(struct req *r); /* list, create */
int handle_box(struct req *r);   /* get, head, delete */
int handle_box_start(struct req *r);
int handle_box_stop(struct req *r);
int handle_box_metrics(struct req *r);
int handle_box_logs(struct req *r);
int handle_net_logs(struct req *r);
int handle_net_stats(struct req *r);
int handle_exec(struct req *r);
int handle_run(struct req *r);
int handle_code(struct req *r); /* run, contexts (code.c) */
int handle_execs(struct req *r);
int handle_exec_info(struct req *r); /* get, delete */
int handle_exec_signal(struct req *r);
int handle_exec_resize(struct req *r);
int handle_exec_stdin(struct req *r);
int handle_exec_attach(struct req *r);
int handle_exec_output(struct req *r);
int handle_files(struct req *r);
int handle_fs(struct req *r);         /* the fs/ routes (fsops.c) */
int handle_snapshots(struct req *r);  /* the snapshots/ routes and compact (snapshots.c) */
int handle_box_wait(struct req *r);   /* boxwait.c */
int handle_box_attach(struct req *r); /* mainattach.c: the main process over a WebSocket */
int handle_box_clone(struct req *r);  /* boxcopy.c: clone, export, import, fork */
int handle_box_fork(struct req *r);
int handle_box_export(struct req *r);
int handle_box_import(struct req *r);
/* A box's "health" field: its check and, while it runs, its state (boxwait.c). */
json_t *serve_health_json(const char *dir, int running);
/* The create body's "health": checked before the box is made, applied after. */
struct health_request {
    int present;
    const char **test; /* owned vector (strings belong to the body), or NULL with cmd */
    cocoon_health_options opts;
};
int health_request_parse(struct req *r, json_t *body, struct health_request *h);
int health_request_apply(struct req *r, cocoon_box *box, const struct health_request *h);
void health_request_free(struct health_request *h);
int handle_images(struct req *r);
int handle_image(struct req *r);
int handle_image_pull(struct req *r);
int handle_image_load(struct req *r);
/* A box's main process and detached execs (mainproc.c). */
int handle_detached_new(struct req *r);
int handle_detached(struct req *r); /* get, delete (kill) */
int handle_detached_logs(struct req *r);
/* The create body's main process: checked before the box is made, applied after. */
struct main_request {
    const char **command, **entrypoint; /* NULL-terminated (owned vectors), or NULL */
    const char *restart;
    int tty, open_stdin; /* for attachers (GET .../attach), as `run -d -t -i` */
};
int main_request_parse(struct req *r, json_t *body, struct main_request *m);
/* Sets the main process of a new box from m and the box's env/working_dir/user; answers
 * on failure. Nothing to do (0) when m asks for none. */
int main_request_apply(struct req *r, cocoon_box *box, const struct main_request *m);
void main_request_free(struct main_request *m);
/* The Box object's "main": the main process's status, or null. */
json_t *main_status_json(const cocoon_box_info *info);
int handle_mcp(struct req *r); /* mcp_http.c */
/* Ends every MCP session (their boxes are removed unless kept): at the server's stop. */
void mcp_http_shutdown(void);

/* Body streaming routes: called on the first call for the request (before any body
 * arrived) to set r->body_fn; the handler above then runs once the body is complete. */
int begin_files_upload(struct req *r);
int begin_image_load(struct req *r);
int begin_box_import(struct req *r);

/* The execution registry (execs.c). */
void execs_init(void);
void execs_shutdown(void);
unsigned execs_active(void);
/* The exec ids of a box that are running (for the Box's active_executions). */

/* The Box object of the API for one box. */
json_t *serve_box_json(const cocoon_box_info *info);
/* Answers with the Box object of box's current state (boxes.c). */
int serve_answer_box(struct req *r, cocoon_box *box, unsigned status);

#endif
