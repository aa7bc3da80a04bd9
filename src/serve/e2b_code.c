/* The E2B code interpreter's endpoints (port 49999) on cocoon's code interpreter:
 * POST /execute streams cocoon_code_run's events, which already have E2B's shapes, as
 * newline-delimited JSON; /contexts creates, lists, removes and restarts contexts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/e2b.h"
#include "serve/serve.h"
#include "serve/worker.h"
#include "util/fd.h"

struct run_job {
    cocoon_runtime *rt;
    cocoon_box *box;
    char *code, *context, *language;
    char **env;
};

static void job_free(void *p)
{
    struct run_job *j = p;
    serve_close_runtime_box(j->rt, j->box);
    free(j->code);
    free(j->context);
    free(j->language);
    serve_free_env(j->env);
    free(j);
}

/* One event, one line; a reader that left interrupts the run. */
static int on_event(const char *json, size_t len, void *ctx)
{
    int fd = (int)(intptr_t)ctx;
    return util_write_all(fd, json, len) < 0 || util_write_all(fd, "\n", 1) < 0;
}

static void run(void *arg, int fd)
{
    struct run_job *j = arg;
    cocoon_code_options o;
    cocoon_code_options_init(&o);
    o.language = j->context ? NULL : j->language;
    o.context = j->context;
    o.env = (const char *const *)j->env;
    o.on_event = on_event;
    o.ctx = (void *)(intptr_t)fd;
    cocoon_error err;
    if (cocoon_code_run(j->box, j->code, &o, &err) < 0) {
        /* The response has begun: the failure is the run's error event. */
        json_t *ev = json_pack("{s:s,s:s,s:s,s:s}", "type", "error", "name",
                               err.code == COCOON_E_UNSUPPORTED ? "UnsupportedError"
                               : err.code == COCOON_E_NOT_FOUND ? "ContextNotFoundError"
                                                                : "CocoonError",
                               "value", err.message, "traceback", "");
        char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        json_decref(ev);
        if (text)
            on_event(text, strlen(text), (void *)(intptr_t)fd);
        free(text);
    }
}

static char *opt_string(json_t *b, const char *key)
{
    const char *s = json_string_value(json_object_get(b, key));
    return s && s[0] ? strdup(s) : NULL;
}

static int execute(struct req *r, json_t *b)
{
    const char *code = json_string_value(json_object_get(b, "code"));
    if (!code)
        return e2b_error(r, 400, "invalid_argument", "\"code\" (a string) is required");
    json_t *envs = json_object_get(b, "env_vars");
    if (envs && !json_is_null(envs) && !json_is_object(envs))
        return e2b_error(r, 400, "invalid_argument", "\"env_vars\" must be an object of strings");
    struct run_job *j = calloc(1, sizeof(*j));
    if (!j)
        return e2b_error(r, 503, "resource_exhausted", "out of memory");
    j->env = calloc(json_object_size(envs) + 1, sizeof(char *));
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(envs, k, v)
    {
        if (!json_is_string(v) || !k[0] || strchr(k, '=')) {
            j->box = NULL;
            serve_free_env(j->env);
            free(j);
            return e2b_error(r, 400, "invalid_argument", "\"env_vars\" must map names (without '=') to strings");
        }
        size_t sz = strlen(k) + json_string_length(v) + 2;
        if (j->env && (j->env[n] = malloc(sz)) != NULL)
            snprintf(j->env[n++], sz, "%s=%s", k, json_string_value(v));
    }
    j->code = strdup(code);
    j->context = opt_string(b, "context_id");
    j->language = opt_string(b, "language");
    if (!j->env || !j->code || e2b_open_box(r, &j->rt, &j->box) < 0) {
        int answered = r->answered;
        free(j->code);
        free(j->context);
        free(j->language);
        serve_free_env(j->env);
        free(j);
        return answered ? -1 : e2b_error(r, 503, "resource_exhausted", "out of memory");
    }
    int fd = worker_pipe(run, j, job_free);
    if (fd < 0) {
        job_free(j);
        return e2b_error(r, 503, "resource_exhausted", "cannot start a thread for the run");
    }
    return serve_stream_fd(r, 200, "application/x-ndjson", fd);
}

/* A JSON text libcocoon made, answered as it is. */
static int answer_json_text(struct req *r, char *text)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!j)
        return e2b_error(r, 500, "internal", "the code interpreter answered something that is not JSON");
    return serve_json(r, 200, j);
}

static int contexts(struct req *r, cocoon_box *box, json_t *b)
{
    const char *url = r->url + strlen("/contexts");
    cocoon_error err;
    char *out = NULL;
    if (*url == '\0' && r->method == M_POST) {
        const char *language = json_string_value(json_object_get(b, "language"));
        const char *cwd = json_string_value(json_object_get(b, "cwd"));
        if (cocoon_code_context_create(box, language, cwd, &out, &err) < 0)
            return e2b_cocoon_error(r, &err);
        return answer_json_text(r, out);
    }
    if (*url == '\0' && r->method == M_GET) {
        if (cocoon_code_context_list(box, &out, &err) < 0)
            return e2b_cocoon_error(r, &err);
        return answer_json_text(r, out);
    }
    if (*url != '/' || !url[1])
        return e2b_error(r, 404, "not_found", "no such endpoint: %s", r->url);
    char id[128];
    size_t n = strcspn(url + 1, "/");
    if (n >= sizeof(id))
        return e2b_error(r, 404, "not_found", "no such context");
    memcpy(id, url + 1, n);
    id[n] = '\0';
    const char *rest = url + 1 + n;
    int rc;
    if (*rest == '\0' && r->method == M_DELETE)
        rc = cocoon_code_context_remove(box, id, &err);
    else if (strcmp(rest, "/restart") == 0 && r->method == M_POST)
        rc = cocoon_code_context_restart(box, id, &err);
    else
        return e2b_error(r, 404, "not_found", "no such endpoint: %s %s", r->method_text, r->url);
    return rc < 0 ? e2b_cocoon_error(r, &err) : serve_empty(r, 204);
}

int e2b_handle_code(struct req *r)
{
    if (strcmp(r->url, "/health") == 0)
        return serve_empty(r, 204);
    json_t *b = e2b_body(r);
    if (!b)
        return -1;
    int rc;
    if (strcmp(r->url, "/execute") == 0 && r->method == M_POST) {
        rc = execute(r, b);
    } else if (strncmp(r->url, "/contexts", 9) == 0) {
        cocoon_runtime *rt;
        cocoon_box *box;
        rc = e2b_open_box(r, &rt, &box);
        if (rc == 0) {
            rc = contexts(r, box, b);
            serve_close_runtime_box(rt, box);
        }
    } else {
        rc = e2b_error(r, 404, "not_found", "the code interpreter has no endpoint %s %s", r->method_text, r->url);
    }
    json_decref(b);
    return rc;
}
