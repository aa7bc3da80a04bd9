/* The E2B-compatible front of `cocoon serve`: what the E2B SDKs send (the control plane
 * under /sandboxes and /v2/sandboxes, envd's Connect services and /files on port 49983,
 * the code interpreter on port 49999), routed by the E2b-Sandbox-Id/-Port headers on
 * the server's one base URL. Shared by the e2b_*.c files. */
#ifndef COCOON_SERVE_E2B_H
#define COCOON_SERVE_E2B_H

#include <jansson.h>
#include <stddef.h>

#include "cocoon.h"

struct req;

#define E2B_ENVD_PORT 49983
#define E2B_CODE_PORT 49999
#define E2B_ENVD_VERSION "0.5.7"   /* what the SDK checks features against */
#define E2B_MESSAGE_MAX (1u << 20) /* one Connect message (the server's JSON body bound) */
#define E2B_PROCS_MAX 64           /* processes remembered per sandbox (running or not yet read) */
#define E2B_SANDBOXES_MAX 256      /* sandboxes the server keeps */
#define E2B_FILE_MAX (64u << 20)   /* bytes of one /files read or upload (held in memory) */
#define E2B_UPLOAD_FILES_MAX 256   /* files in one multipart upload */
#define E2B_TIMEOUT_DEFAULT_S 300  /* E2B's default sandbox lifetime */
#define E2B_TIMEOUT_MAX_S 86400    /* E2B's longest */
#define E2B_LIST_DEPTH_MAX 16      /* ListDir depth */
#define E2B_LIST_ENTRIES_MAX 100000
#define E2B_WATCH_POLL_MS 500       /* WatchDir lists the directory at most this often */
#define E2B_WATCH_ENTRIES_MAX 10000 /* entries a watch follows */

/* ---- the Connect protocol's envelopes (pure: the fuzzer drives them) ---- */
#define CONNECT_FLAG_COMPRESSED 1u
#define CONNECT_FLAG_END 2u
struct connect_frame {
    unsigned flags;
    const char *data;
    size_t len;
};
/* The envelope at buf[*off..len): 1 with *f (and *off past it), 0 at the end of buf,
 * -1 with msg for a cut, compressed or oversized one (bound: E2B_MESSAGE_MAX). */
int connect_frame_next(const char *buf, size_t len, size_t *off, struct connect_frame *f, char *msg, size_t cap);
/* [flags][length u32 BE][data] in a malloc'd buffer. */
char *connect_frame_encode(unsigned flags, const char *data, size_t len, size_t *out_len);
/* A stream's last message and its end ({}): the two envelopes in one buffer. */
char *connect_frames_last(const char *data, size_t len, size_t *out_len);
/* The request message as a JSON object: the body itself (unary, application/json) or
 * its one envelope (a server-streaming call, application/connect+json). NULL with msg. */
json_t *connect_request_message(const char *body, size_t len, int enveloped, char *msg, size_t cap);
/* The HTTP status Connect gives an error code ("not_found" → 404). */
unsigned connect_http_status(const char *code);

/* A stopping server: finishes the sandbox removal under way (at most
 * E2B_SHUTDOWN_WAIT_S) and removes the sandboxes whose timeout has passed. */
#define E2B_SHUTDOWN_WAIT_S 60
void e2b_shutdown(void);

/* ---- request glue (e2b.c) ---- */
/* The request is E2B's: a sandbox header, or a control-plane path. */
int e2b_claims(struct req *r);
/* First call: authenticates (api_key_ok: the server's token was given) and decides how
 * the body is taken. Answers on failure. */
int e2b_begin(struct req *r, int api_key_ok);
int e2b_handle(struct req *r);
/* Per-request state of an upload, freed with the request. */
void e2b_set_upload(struct req *r, void *upload, void (*upload_free)(void *upload));
void *e2b_upload(struct req *r);

/* How errors are answered: the API's {code:int,message}, Connect's unary and stream
 * errors, the code interpreter's text. */
enum e2b_style { E2B_STYLE_API, E2B_STYLE_UNARY, E2B_STYLE_STREAM, E2B_STYLE_TEXT };
void e2b_set_style(struct req *r, enum e2b_style style);
/* Answers an error in the request's style; always -1. code: Connect's name. */
int e2b_error(struct req *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int e2b_cocoon_error(struct req *r, const cocoon_error *err);
/* The request's message: its JSON body, or the one envelope of a streaming call.
 * Answers 400 and returns NULL when it is not a JSON object. */
json_t *e2b_body(struct req *r);
/* The sandbox of the request (its box id) after checking its access token. */
const char *e2b_sandbox_id(struct req *r);
/* The request's username (HTTP Basic user or ?username=), NULL: root. */
const char *e2b_username(struct req *r);
/* An absolute guest path: relative ones are under the user's home. */
int e2b_abs_path(struct req *r, const char *path, char *out, size_t cap);
/* The client of a streamed answer closed its side (the SDKs abort a stream they are
 * done with): a producer waiting for events checks it (fd: serve_client_fd). */
int e2b_client_left(int fd);
/* The sandbox's box, running (booted if it was stopped). Answers on failure. */
int e2b_open_box(struct req *r, cocoon_runtime **rt, cocoon_box **box);

/* ---- the sandbox table (e2b_api.c) ---- */
int e2b_handle_api(struct req *r); /* /sandboxes, /v2/sandboxes */
/* 1 when id is a live sandbox whose access token is token (constant time). */
int e2b_sandbox_auth(const char *id, const char *token, int *known);
/* The sandbox's envVars as NULL-terminated "K=V" (free with serve_free_env). */
char **e2b_sandbox_env(const char *id);

/* ---- processes (e2b_process.c): the sandbox's E2B pids ---- */
int e2b_handle_process(struct req *r, const char *method);
void e2b_procs_forget(const char *sandbox_id);
/* ---- files (e2b_fs.c) ---- */
int e2b_handle_filesystem(struct req *r, const char *method);
int e2b_handle_files(struct req *r);
int e2b_begin_upload(struct req *r);
/* WatchDir (e2b_watch.c), by polling: the guest has no inotify service. */
int e2b_watch_dir(struct req *r);
/* ---- code interpreter (e2b_code.c) ---- */
int e2b_handle_code(struct req *r);

#endif
