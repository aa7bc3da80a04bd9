/* Fuzz target: what `cocoon serve` does with a request before any handler touches
 * libcocoon: the routing table (route_match, route_allow_text) on a method and a path,
 * and the JSON body checks of src/serve/body.c (serve_body_object, serve_only_keys and
 * the typed field readers) on a body, read as the create and exec handlers read theirs.
 * Input: one method byte, the path up to the first '\n', then the body. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/idempotency.h"
#include "serve/route.h"
#include "serve/serve.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static int id_chars_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len >= ROUTE_ID_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

static int ref_chars_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len >= ROUTE_REF_MAX || strstr(s, "//") || strstr(s, "/../") || strncmp(s, "../", 3) == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return 0;
    return 1;
}

/* Which routes carry which parameter: every route past R_BOX names a box except the
 * image routes, /mcp and POST /v1/boxes/import (a route added to route.h must be placed here too, or the
 * target aborts on its first match). */
static int route_has_box(enum route_id id)
{
    return id >= R_BOX && !(id >= R_IMAGES && id <= R_IMAGE) && id != R_MCP && id != R_BOX_IMPORT;
}
static int route_has_exec(enum route_id id) /* an execution, detached exec or code context */
{
    return (id >= R_EXEC && id <= R_EXEC_OUTPUT) || id == R_DETACH || id == R_DETACH_LOGS || id == R_CODE_CONTEXT ||
           id == R_CODE_CONTEXT_RESTART;
}
static int route_has_snapshot(enum route_id id) { return id == R_SNAPSHOT || id == R_SNAPSHOT_RESTORE; }

static void fuzz_route(enum route_method method, const char *path)
{
    struct route r, again;
    int rc = route_match(method, path, &r);
    check(route_match(method, path, &again) == rc && memcmp(&r, &again, sizeof(r)) == 0);
    if (r.id == R_NONE) {
        check(rc < 0 && r.allowed == 0 && !r.box[0] && !r.exec[0] && !r.image[0] && !r.snapshot[0]);
        return;
    }
    /* Found: the method decides between an answer and a 405 with an Allow header. */
    check(r.allowed != 0 && (r.allowed & ~(unsigned)(M_GET | M_HEAD | M_POST | M_PUT | M_DELETE)) == 0);
    check(rc == ((r.allowed & method) ? 0 : -1));
    check(memchr(r.box, '\0', sizeof(r.box)) && memchr(r.exec, '\0', sizeof(r.exec)) &&
          memchr(r.image, '\0', sizeof(r.image)) && memchr(r.snapshot, '\0', sizeof(r.snapshot)));
    /* Every parameter a handler gets was checked for its characters and length. */
    check(route_has_box(r.id) ? id_chars_ok(r.box) : !r.box[0]);
    check(route_has_exec(r.id) ? id_chars_ok(r.exec) : !r.exec[0]);
    check(route_has_snapshot(r.id) ? id_chars_ok(r.snapshot) : !r.snapshot[0]);
    check(r.id == R_IMAGE ? ref_chars_ok(r.image) : !r.image[0]);
    char allow[64], tiny[8];
    route_allow_text(r.allowed, allow, sizeof(allow));
    check(allow[0] && strlen(allow) < sizeof(allow));
    route_allow_text(r.allowed, tiny, sizeof(tiny));
    check(strlen(tiny) < sizeof(tiny));
    /* One trailing slash names the same resource. */
    size_t len = strlen(path);
    if (len && path[len - 1] != '/' && len < 4096) {
        char *slashed = malloc(len + 2);
        check(slashed != NULL);
        memcpy(slashed, path, len);
        memcpy(slashed + len, "/", 2);
        check(route_match(method, slashed, &again) == rc && memcmp(&r, &again, sizeof(r)) == 0);
        free(slashed);
    }
}

/* The request as body.c sees it: no connection, so every answer is refused by
 * libmicrohttpd and the readers' return values are all there is to check. */
static void fuzz_body(const char *body, size_t len)
{
    struct req r = {0};
    r.body = malloc(len + 1);
    check(r.body != NULL);
    memcpy(r.body, body, len);
    r.body[len] = '\0';
    r.body_len = len;
    json_t *obj = serve_body_object(&r);
    if (!obj) {
        free(r.body);
        return;
    }
    check(json_is_object(obj));
    static const char *const keys[] = {"name",         "image",   "cpus", "memory_mib", "env",
                                       "args",         "command", "user", "detach",     "stdin",
                                       "stdin_base64", "network", "cmd",  "tty",        NULL};
    int only = serve_only_keys(&r, obj, keys);
    const char *key;
    json_t *value;
    if (only == 0) {
        json_object_foreach(obj, key, value)
        {
            int known = 0;
            for (size_t i = 0; keys[i]; i++)
                known |= strcmp(keys[i], key) == 0;
            check(known);
        }
    }
    const char *s = NULL;
    if (serve_get_string(&r, obj, "name", 64, &s) == 0 && s)
        check(strlen(s) <= 64 && strlen(s) == json_string_length(json_object_get(obj, "name")));
    s = NULL;
    if (serve_get_string(&r, obj, "command", 65536, &s) == 0 && s)
        check(strlen(s) <= 65536);
    uint64_t u = 7;
    if (serve_get_uint(&r, obj, "cpus", 1, 64, &u) == 0)
        check(u >= 1 && u <= 64);
    u = 64;
    if (serve_get_uint(&r, obj, "memory_mib", 64, 1048576, &u) == 0)
        check(u >= 64 && u <= 1048576);
    u = 0;
    if (serve_get_uint(&r, obj, "image", 0, 1ull << 46, &u) == 0)
        check(u <= 1ull << 46);
    int b = 0;
    if (serve_get_bool(&r, obj, "detach", &b) == 0)
        check(b == 0 || b == 1);
    const char **list = NULL;
    if (serve_get_strings(&r, obj, "args", 256, &list) == 0 && list) {
        size_t n = 0;
        while (list[n])
            n++;
        check(n == json_array_size(json_object_get(obj, "args")) && n <= 256);
    }
    free(list);
    char **env = NULL;
    if (serve_get_env(&r, obj, "env", &env) == 0 && env) {
        for (size_t i = 0; env[i]; i++)
            check(env[i][0] != '=' && strchr(env[i], '='));
    }
    serve_free_env(env);
    /* stdin_base64 as POST /run decodes it, into a buffer of the size it allows. */
    const char *b64 = NULL;
    if (serve_get_string(&r, obj, "stdin_base64", SERVE_JSON_MAX, &b64) == 0 && b64) {
        size_t cap = strlen(b64) / 4 * 3 + 3, out_len = 0;
        char *out = malloc(cap);
        check(out != NULL);
        if (util_base64_decode(b64, strlen(b64), out, cap, &out_len) == 0)
            check(out_len < cap);
        free(out);
    }
    /* An Idempotency-Key claimed with this body: the same body finds the box it made,
     * another body is refused. */
    const char *idem = NULL;
    if (serve_get_string(&r, obj, "user", 300, &idem) == 0 && idem && *idem && strlen(idem) <= IDEMPOTENCY_KEY_MAX) {
        char box[64];
        int claim = idempotency_claim(idem, r.body, r.body_len, box, sizeof(box));
        if (claim == 0)
            idempotency_finish(idem, "0123456789ab");
        if (claim >= 0) {
            check(idempotency_claim(idem, r.body, r.body_len, box, sizeof(box)) == 1);
            check(strcmp(box, "0123456789ab") == 0);
            int same = r.body_len == 2 && memcmp(r.body, "{}", 2) == 0;
            check(idempotency_claim(idem, "{}", 2, box, sizeof(box)) == (same ? 1 : -1));
        }
    }
    json_decref(obj);
    free(r.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "get", ""};
    if (size < 1)
        return 0;
    const char *method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
    const char *rest = (const char *)data + 1;
    size_t rest_len = size - 1;
    const char *nl = memchr(rest, '\n', rest_len);
    size_t path_len = nl ? (size_t)(nl - rest) : rest_len;
    /* libmicrohttpd hands the handler a C string: the path ends at a NUL. */
    char *path = malloc(path_len + 1);
    check(path != NULL);
    memcpy(path, rest, path_len);
    path[path_len] = '\0';
    fuzz_route(route_method(method), path);
    free(path);
    if (nl)
        fuzz_body(nl + 1, rest_len - path_len - 1);
    return 0;
}
