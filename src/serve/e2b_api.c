/* The E2B control plane on `cocoon serve`: sandboxes as cocoon boxes (create from a
 * template name, connect, get, list with paging, set timeout, kill) and the table that
 * remembers what E2B adds to a box: its template, metadata, envVars, access token and
 * end of life. A reaper thread removes each box when its timeout passes. */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/e2b.h"
#include "serve/http.h"
#include "serve/serve.h"
#include "util/util.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define METADATA_MAX 64 /* keys; each key and value at most 1024 bytes */

struct sandbox {
    char id[16];
    char template_id[128];
    char token[65];
    json_t *metadata; /* object of strings */
    json_t *env;      /* object of strings */
    long long started_at, end_at;
    unsigned cpus, memory_mib;
    int removing; /* its box is being removed: no longer served */
    /* The box's handle, held for the sandbox's life: the box is ephemeral and attached
     * to the server, so sandboxes end with the server that remembers them. */
    cocoon_runtime *rt;
    cocoon_box *box;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t table_shrank = PTHREAD_COND_INITIALIZER; /* a sandbox left the table */
static struct sandbox *table[E2B_SANDBOXES_MAX];
static size_t table_len;
static pthread_once_t reaper_once = PTHREAD_ONCE_INIT;

static struct sandbox *find_locked(const char *id)
{
    for (size_t i = 0; i < table_len; i++)
        if (strcmp(table[i]->id, id) == 0 && !table[i]->removing)
            return table[i];
    return NULL;
}

static void sandbox_free(struct sandbox *s)
{
    if (!s)
        return;
    json_decref(s->metadata);
    json_decref(s->env);
    free(s);
}

/* Drops s from the table (the caller holds the lock). */
static void unlink_locked(struct sandbox *s)
{
    for (size_t i = 0; i < table_len; i++)
        if (table[i] == s) {
            memmove(&table[i], &table[i + 1], (table_len - i - 1) * sizeof(table[0]));
            table_len--;
            pthread_cond_broadcast(&table_shrank);
            return;
        }
}

/* The sandbox id once any removal of it under way has ended: a sandbox being removed
 * (killed, or its timeout passed) is answered "not found" only when its box is gone, so
 * that a client told 404 never sees the box any more. Waits at most E2B_SHUTDOWN_WAIT_S. */
static struct sandbox *find_settled_locked(const char *id)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += E2B_SHUTDOWN_WAIT_S;
    for (;;) {
        int being_removed = 0;
        for (size_t i = 0; i < table_len; i++)
            if (strcmp(table[i]->id, id) == 0) {
                if (!table[i]->removing)
                    return table[i];
                being_removed = 1;
            }
        if (!being_removed || pthread_cond_timedwait(&table_shrank, &table_lock, &until) != 0)
            return NULL;
    }
}

int e2b_sandbox_auth(const char *id, const char *token, int *known)
{
    pthread_mutex_lock(&table_lock);
    struct sandbox *s = find_locked(id);
    *known = s != NULL;
    int ok = s && strlen(token) == strlen(s->token) && CRYPTO_memcmp(token, s->token, strlen(s->token)) == 0;
    pthread_mutex_unlock(&table_lock);
    return ok;
}

char **e2b_sandbox_env(const char *id)
{
    pthread_mutex_lock(&table_lock);
    struct sandbox *s = find_locked(id);
    size_t n = s ? json_object_size(s->env) : 0;
    char **env = calloc(n + 1, sizeof(char *));
    const char *k;
    json_t *v;
    size_t i = 0;
    if (s && env)
        json_object_foreach(s->env, k, v)
        {
            size_t len = strlen(k) + strlen(json_string_value(v)) + 2;
            env[i] = malloc(len);
            if (env[i])
                snprintf(env[i++], len, "%s=%s", k, json_string_value(v));
        }
    pthread_mutex_unlock(&table_lock);
    return env;
}

/* Removes the box of a sandbox (through its own handle, whatever state it is in). */
static void remove_box(struct sandbox *s)
{
    cocoon_error err;
    e2b_procs_forget(s->id);
    if (s->box) {
        cocoon_box_remove(s->box, 1, &err);
        cocoon_box_close(s->box);
    }
    if (s->rt)
        cocoon_runtime_close(s->rt);
    s->box = NULL;
    s->rt = NULL;
}

/* The sandbox timeout is real: a box whose end of life passed is removed. The reaper
 * says when a removal is under way, so that a stopping server finishes it (a server
 * killed halfway through would leave an expired sandbox's box behind). */
static int reaper_removing, reaper_stopped;

/* An expired sandbox, marked as being removed; NULL when none. Under table_lock. */
static struct sandbox *take_expired_locked(long long now)
{
    for (size_t i = 0; i < table_len; i++)
        if (!table[i]->removing && table[i]->end_at <= now) {
            table[i]->removing = 1;
            return table[i];
        }
    return NULL;
}

static void reap(struct sandbox *victim)
{
    util_test_point("E2B_REAP");
    remove_box(victim);
    pthread_mutex_lock(&table_lock);
    unlink_locked(victim);
    pthread_mutex_unlock(&table_lock);
    sandbox_free(victim);
}

static void *reaper(void *arg)
{
    (void)arg;
    for (;;) {
        sleep(1);
        pthread_mutex_lock(&table_lock);
        struct sandbox *victim = reaper_stopped ? NULL : take_expired_locked(time(NULL));
        reaper_removing = victim != NULL;
        pthread_mutex_unlock(&table_lock);
        if (!victim)
            continue;
        reap(victim);
        pthread_mutex_lock(&table_lock);
        reaper_removing = 0;
        pthread_cond_broadcast(&table_shrank);
        pthread_mutex_unlock(&table_lock);
    }
    return NULL;
}

void e2b_shutdown(void)
{
    pthread_mutex_lock(&table_lock);
    reaper_stopped = 1;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += E2B_SHUTDOWN_WAIT_S;
    while (reaper_removing && pthread_cond_timedwait(&table_shrank, &table_lock, &until) == 0)
        ;
    /* Sandboxes whose timeout passed while nobody reaped them go now, as they would have. */
    struct sandbox *victim;
    while ((victim = take_expired_locked(time(NULL))) != NULL) {
        pthread_mutex_unlock(&table_lock);
        reap(victim);
        pthread_mutex_lock(&table_lock);
    }
    pthread_mutex_unlock(&table_lock);
}

static void reaper_start(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, reaper, NULL) == 0)
        pthread_detach(t);
}

/* ---- answers ---- */

static json_t *sandbox_json(const struct sandbox *s, int detail)
{
    char started[32], ends[32];
    serve_iso_time(s->started_at, started, sizeof(started));
    serve_iso_time(s->end_at, ends, sizeof(ends));
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:O}", "sandboxID", s->id, "templateID", s->template_id,
                  "clientID", "cocoon", "startedAt", started, "endAt", ends, "state", "running", "envdVersion",
                  E2B_ENVD_VERSION, "cpuCount", (int)s->cpus, "memoryMB", (int)s->memory_mib, "metadata", s->metadata);
    if (detail && j)
        json_object_set_new(j, "envdAccessToken", json_string(s->token));
    return j;
}

/* What create and connect answer: where and how to reach envd. */
static json_t *connection_json(const struct sandbox *s)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:n,s:n}", "sandboxID", s->id, "templateID", s->template_id, "clientID",
                     "cocoon", "envdVersion", E2B_ENVD_VERSION, "envdAccessToken", s->token, "domain",
                     "trafficAccessToken");
}

/* ---- create ---- */

static int string_object(struct req *r, json_t *b, const char *key, json_t **out)
{
    json_t *v = json_object_get(b, key);
    *out = json_object();
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v) || json_object_size(v) > METADATA_MAX)
        return e2b_error(r, 400, "invalid_argument", "\"%s\" must be an object of at most %d strings", key,
                         METADATA_MAX);
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        if (!json_is_string(x) || strlen(k) > 1024 || json_string_length(x) > 1024 || strchr(k, '=') || !k[0])
            return e2b_error(r, 400, "invalid_argument",
                             "\"%s\": every key (without '=') and value must be a string of at most 1024 bytes", key);
        json_object_set(*out, k, x);
    }
    return 0;
}

static int get_timeout(struct req *r, json_t *b, long long *out)
{
    json_t *v = json_object_get(b, "timeout");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > E2B_TIMEOUT_MAX_S)
        return e2b_error(r, 400, "invalid_argument", "\"timeout\" must be a number of seconds from 0 to %d",
                         E2B_TIMEOUT_MAX_S);
    *out = json_integer_value(v);
    return 0;
}

/* A box named template in the server's ./cocoon.yaml: its image, size and env. */
static json_t *box_config(const char *template_id)
{
    if (access("cocoon.yaml", R_OK) != 0)
        return NULL;
    char *text = NULL;
    cocoon_error err;
    if (cocoon_config_load("cocoon.yaml", &text, &err) < 0)
        return NULL;
    json_t *cfg = json_loads(text, 0, NULL);
    cocoon_free(text);
    json_t *boxes = json_object_get(cfg, "boxes"), *found = NULL, *b;
    size_t i;
    json_array_foreach(boxes, i, b)
    {
        if (json_is_string(json_object_get(b, "name")) &&
            strcmp(json_string_value(json_object_get(b, "name")), template_id) == 0)
            found = json_incref(b);
    }
    json_decref(cfg);
    return found;
}

static int image_exists(cocoon_runtime *rt, const char *name)
{
    cocoon_image_info info;
    cocoon_error err;
    char *config = NULL;
    int ok = cocoon_image_inspect(rt, name, &info, &config, &err) == 0;
    free(config);
    return ok;
}

static int create(struct req *r, json_t *b)
{
    const char *template_id = "base";
    json_t *t = json_object_get(b, "templateID");
    if (t && !json_is_null(t)) {
        if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) >= 128)
            return e2b_error(r, 400, "invalid_argument", "\"templateID\" must be a template name");
        template_id = json_string_value(t);
    }
    long long timeout = E2B_TIMEOUT_DEFAULT_S;
    json_t *metadata = NULL, *env = NULL;
    int rc = -1;
    if (get_timeout(r, b, &timeout) < 0 || string_object(r, b, "metadata", &metadata) < 0 ||
        string_object(r, b, "envVars", &env) < 0) {
        json_decref(metadata);
        json_decref(env);
        return -1;
    }
    cocoon_runtime *rt = NULL;
    cocoon_box *box = NULL;
    cocoon_error err;
    json_t *cfg = NULL;
    pthread_mutex_lock(&table_lock);
    size_t have = table_len;
    pthread_mutex_unlock(&table_lock);
    if (have >= E2B_SANDBOXES_MAX) {
        rc = e2b_error(r, 429, "resource_exhausted", "%d sandboxes are running on this server: kill some first",
                       E2B_SANDBOXES_MAX);
        goto out;
    }
    if (serve_runtime_open(&rt, &err) < 0) {
        rc = e2b_cocoon_error(r, &err);
        goto out;
    }
    cocoon_box_options o;
    cocoon_box_options_init(&o);
    /* base: the default image. code-interpreter-v1: our code-interpreter image when it
     * was built, else the default one. Any other name: a box of ./cocoon.yaml, else a
     * local image of that name. */
    if (strcmp(template_id, "code-interpreter-v1") == 0) {
        if (image_exists(rt, "code-interpreter"))
            o.image = "code-interpreter";
        else
            fprintf(stderr, "cocoon serve: E2B template code-interpreter-v1: there is no code-interpreter image "
                            "(make image), so the sandbox gets the default image\n");
    } else if (strcmp(template_id, "base") != 0) {
        cfg = box_config(template_id);
        /* Templates are local: an unknown name is not pulled from a registry. */
        if (!cfg && !image_exists(rt, template_id)) {
            rc = e2b_error(r, 404, "not_found",
                           "template %s: there is no image of that name (cocoon pull it first) and no box of that "
                           "name in the server's ./cocoon.yaml",
                           template_id);
            goto out;
        }
        const char *image = cfg ? json_string_value(json_object_get(cfg, "image")) : NULL;
        o.image = image && image[0] ? image : (cfg ? NULL : template_id);
        if (cfg) {
            o.cpus = (unsigned)json_integer_value(json_object_get(cfg, "cpus"));
            o.memory_mib = (unsigned)json_integer_value(json_object_get(cfg, "memory_mib"));
            json_t *cfg_env = json_object_get(cfg, "env");
            const char *k;
            json_t *v;
            json_object_foreach(cfg_env, k, v) if (json_is_string(v) && !json_object_get(env, k))
                json_object_set(env, k, v);
        }
    }
    json_t *net = json_object_get(b, "allow_internet_access");
    if (json_is_false(net))
        o.net = "none";
    o.ephemeral = 1;
    if (cocoon_box_create(rt, &o, &box, &err) < 0) {
        rc = err.code == COCOON_E_NOT_FOUND || err.code == COCOON_E_IO
                 ? e2b_error(r, 404, "not_found", "template %s: %s", template_id, err.message)
                 : e2b_cocoon_error(r, &err);
        goto out;
    }
    if (cocoon_box_start_flags(box, COCOON_START_ATTACHED, &err) < 0) {
        cocoon_error ignored;
        cocoon_box_remove(box, 1, &ignored);
        rc = e2b_cocoon_error(r, &err);
        goto out;
    }
    struct sandbox *s = calloc(1, sizeof(*s));
    unsigned char raw[32];
    cocoon_box_info info;
    if (!s || RAND_bytes(raw, sizeof(raw)) != 1 || cocoon_box_inspect(box, &info, &err) < 0) {
        free(s);
        cocoon_error ignored;
        cocoon_box_remove(box, 1, &ignored);
        rc = e2b_error(r, 500, "internal", "cannot register the sandbox");
        goto out;
    }
    snprintf(s->id, sizeof(s->id), "%s", cocoon_box_id(box));
    snprintf(s->template_id, sizeof(s->template_id), "%s", template_id);
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(s->token + 2 * i, 3, "%02x", raw[i]);
    s->metadata = metadata;
    s->env = env;
    metadata = env = NULL;
    s->started_at = time(NULL);
    s->end_at = s->started_at + timeout;
    s->cpus = info.cpus;
    s->memory_mib = info.memory_mib;
    s->rt = rt;
    s->box = box;
    pthread_mutex_lock(&table_lock);
    int full = table_len >= E2B_SANDBOXES_MAX; /* creates that raced past the first check */
    if (!full)
        table[table_len++] = s;
    json_t *answer = full ? NULL : connection_json(s);
    pthread_mutex_unlock(&table_lock);
    if (full) {
        s->rt = NULL;
        s->box = NULL;
        sandbox_free(s);
        cocoon_error ignored;
        cocoon_box_remove(box, 1, &ignored);
        rc = e2b_error(r, 429, "resource_exhausted", "%d sandboxes are running on this server: kill some first",
                       E2B_SANDBOXES_MAX);
        goto out;
    }
    pthread_once(&reaper_once, reaper_start);
    serve_count(&serve_counters.boxes_created);
    rt = NULL;
    box = NULL; /* the sandbox holds them */
    rc = serve_json(r, 201, answer);
out:
    json_decref(cfg);
    json_decref(metadata);
    json_decref(env);
    if (box)
        cocoon_box_close(box);
    if (rt)
        cocoon_runtime_close(rt);
    return rc;
}

/* ---- list ---- */

/* "k=v&k2=v2" (each part URL-encoded once more by the SDK): every pair must match. */
static int metadata_matches(const json_t *metadata, const char *query)
{
    if (!query || !query[0])
        return 1;
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", query);
    char *save = NULL;
    for (char *pair = strtok_r(buf, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (!eq)
            return 0;
        *eq = '\0';
        MHD_http_unescape(pair);
        MHD_http_unescape(eq + 1);
        const char *have = json_string_value(json_object_get(metadata, pair));
        if (!have || strcmp(have, eq + 1) != 0)
            return 0;
    }
    return 1;
}

static int list(struct req *r)
{
    const char *limit_text = serve_query(r, "limit");
    const char *after = serve_query(r, "nextToken");
    const char *state = serve_query(r, "state");
    const char *metadata = serve_query(r, "metadata");
    const char *template_id = serve_query(r, "template");
    long limit = limit_text ? strtol(limit_text, NULL, 10) : LIST_LIMIT_DEFAULT;
    if (limit < 1 || limit > LIST_LIMIT_MAX)
        return e2b_error(r, 400, "invalid_argument", "limit must be from 1 to %d", LIST_LIMIT_MAX);
    /* Every sandbox runs (cocoon does not pause them): a state filter without
     * "running" matches none. */
    int want_running = !state || !state[0] || strstr(state, "running");
    json_t *arr = json_array();
    char next[16] = "";
    pthread_mutex_lock(&table_lock);
    size_t i = 0;
    if (after && after[0]) {
        while (i < table_len && strcmp(table[i]->id, after) != 0)
            i++;
        i = i < table_len ? i + 1 : table_len;
    }
    for (; i < table_len && want_running; i++) {
        struct sandbox *s = table[i];
        if (s->removing || !metadata_matches(s->metadata, metadata) ||
            (template_id && template_id[0] && strcmp(template_id, s->template_id) != 0))
            continue;
        if ((long)json_array_size(arr) == limit) {
            snprintf(next, sizeof(next), "%s", table[i - 1]->id);
            break;
        }
        json_array_append_new(arr, sandbox_json(s, 0));
    }
    pthread_mutex_unlock(&table_lock);
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!text)
        return e2b_error(r, 500, "internal", "out of memory");
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return -1;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (next[0])
        MHD_add_response_header(resp, "x-next-token", next);
    return serve_queue_response(r, 200, resp);
}

/* ---- one sandbox ---- */

static int kill_sandbox(struct req *r, const char *id)
{
    pthread_mutex_lock(&table_lock);
    struct sandbox *s = find_settled_locked(id);
    if (s)
        s->removing = 1;
    pthread_mutex_unlock(&table_lock);
    if (!s)
        return e2b_error(r, 404, "not_found", "sandbox %s was not found", id);
    remove_box(s);
    pthread_mutex_lock(&table_lock);
    unlink_locked(s);
    pthread_mutex_unlock(&table_lock);
    sandbox_free(s);
    serve_count(&serve_counters.boxes_stopped);
    return serve_empty(r, 204);
}

/* A box removed behind the front's back (cocoon rm, the native API) ends its sandbox. */
static int box_gone(const char *id)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    cocoon_error err;
    if (serve_runtime_open(&rt, &err) < 0)
        return 0;
    int gone = cocoon_box_open(rt, id, &box, &err) < 0 && err.code == COCOON_E_NOT_FOUND;
    if (!gone)
        cocoon_box_close(box);
    cocoon_runtime_close(rt);
    return gone;
}

static int one(struct req *r, const char *id, const char *action, json_t *b)
{
    if (box_gone(id)) {
        pthread_mutex_lock(&table_lock);
        struct sandbox *s = find_locked(id);
        if (s)
            s->end_at = 0; /* the reaper drops it at once */
        pthread_mutex_unlock(&table_lock);
        return e2b_error(r, 404, "not_found", "sandbox %s was not found", id);
    }
    long long timeout = -1;
    if (b && get_timeout(r, b, &timeout) < 0)
        return -1;
    pthread_mutex_lock(&table_lock);
    struct sandbox *s = find_settled_locked(id);
    json_t *answer = NULL;
    int status = 200;
    if (s && strcmp(action, "get") == 0) {
        answer = sandbox_json(s, 1);
    } else if (s && strcmp(action, "timeout") == 0) {
        if (timeout >= 0)
            s->end_at = time(NULL) + timeout; /* E2B: from now, shorter or longer */
        status = 204;
    } else if (s && strcmp(action, "connect") == 0) {
        long long end = time(NULL) + (timeout >= 0 ? timeout : E2B_TIMEOUT_DEFAULT_S);
        if (end > s->end_at)
            s->end_at = end; /* connecting never shortens a sandbox's life */
        answer = connection_json(s);
    }
    pthread_mutex_unlock(&table_lock);
    if (!s)
        return e2b_error(r, 404, "not_found", "sandbox %s was not found", id);
    return status == 204 ? serve_empty(r, 204) : serve_json(r, status, answer);
}

/* /sandboxes/{id}[/action] or /v2/sandboxes/{id}/connect: the id, checked. */
static int take_id(const char *p, char *id, const char **rest)
{
    size_t n = strcspn(p, "/");
    if (n == 0 || n >= 16 || strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") < n)
        return -1;
    memcpy(id, p, n);
    id[n] = '\0';
    *rest = p + n;
    return 0;
}

int e2b_handle_api(struct req *r)
{
    const char *url = r->url;
    int v2 = strncmp(url, "/v2", 3) == 0;
    const char *p = url + (v2 ? 3 : 0) + strlen("/sandboxes");
    if (*p == '\0' || strcmp(p, "/") == 0) {
        if (r->method == M_GET)
            return list(r);
        if (r->method == M_POST && v2) {
            json_t *b = e2b_body(r);
            if (!b)
                return -1;
            int rc = create(r, b);
            json_decref(b);
            return rc;
        }
        return e2b_error(r, 405, "unimplemented", "%s is not allowed on %s", r->method_text, url);
    }
    char id[16];
    const char *rest;
    if (*p != '/' || take_id(p + 1, id, &rest) < 0)
        return e2b_error(r, 404, "not_found", "no such endpoint: %s", url);
    if (*rest == '\0' && !v2 && r->method == M_GET)
        return one(r, id, "get", NULL);
    if (*rest == '\0' && !v2 && r->method == M_DELETE)
        return kill_sandbox(r, id);
    const char *action = strcmp(rest, "/timeout") == 0 && !v2  ? "timeout"
                         : strcmp(rest, "/connect") == 0 && v2 ? "connect"
                                                               : NULL;
    if (!action || r->method != M_POST)
        return e2b_error(r, 404, "not_found",
                         "%s %s is not part of cocoon's E2B front (create, connect, get, list, timeout, kill are)",
                         r->method_text, url);
    json_t *b = e2b_body(r);
    if (!b)
        return -1;
    int rc = one(r, id, action, b);
    json_decref(b);
    return rc;
}
