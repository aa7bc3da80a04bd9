/* A box's health check in its JSON (the "health" field) and POST /v1/boxes/{id}/wait:
 * blocks this connection's thread in cocoon_box_wait until the box's main process
 * ends, the box is healthy or runs, or the timeout (at most an hour) passes. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boxcfg/healthspec.h"
#include "serve/serve.h"

#define WAIT_MAX_S 3600

/* The last result only: a box list stays small (the whole log is `cocoon inspect`'s). */
static json_t *last_result(const struct health_state *st)
{
    if (!st->nlog)
        return json_null();
    const struct health_result *r = &st->log[st->nlog - 1];
    return json_pack("{s:i, s:I, s:I, s:s}", "exit_code", r->exit_code, "start_ms", (json_int_t)r->start_ms, "end_ms",
                     (json_int_t)r->end_ms, "output", r->output);
}

json_t *serve_health_json(const char *dir, int running)
{
    int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return json_null();
    struct health_spec spec;
    struct health_state *st = calloc(1, sizeof(*st));
    char why[512];
    json_t *h = json_null();
    if (st && health_spec_read(dirfd, &spec, why, sizeof(why)) == 1) {
        int have = running && health_state_read(dirfd, st, why, sizeof(why)) == 1;
        char test[256];
        size_t n = 0;
        test[0] = 0;
        for (size_t i = 0; spec.argv[i] && n + 1 < sizeof(test); i++)
            n += (size_t)snprintf(test + n, sizeof(test) - n, "%s%s", i ? " " : "", spec.argv[i]);
        json_decref(h);
        h = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:o, s:I, s:o}", "test", test, "interval_ms",
                      (json_int_t)spec.interval_ms, "timeout_ms", (json_int_t)spec.timeout_ms, "start_period_ms",
                      (json_int_t)spec.start_period_ms, "retries", (json_int_t)spec.retries, "on_failure",
                      health_on_failure_name(spec.on_failure), "status",
                      have      ? json_string(st->status)
                      : running ? json_string("starting")
                                : json_null(),
                      "failing_streak", (json_int_t)(have ? st->failing_streak : 0), "last",
                      have ? last_result(st) : json_null());
        health_spec_free(&spec);
    }
    free(st);
    close(dirfd);
    return h ? h : json_null();
}

#define HEALTH_DURATION_MAX_S (24 * 3600)

void health_request_free(struct health_request *h)
{
    free(h->test);
    memset(h, 0, sizeof(*h));
}

static int get_ms(struct req *r, json_t *o, const char *key, unsigned *ms)
{
    double s = -1;
    if (serve_get_seconds(r, o, key, HEALTH_DURATION_MAX_S, &s) < 0)
        return -1;
    if (s >= 0)
        *ms = (unsigned)(s * 1000.0);
    return 0;
}

int health_request_parse(struct req *r, json_t *b, struct health_request *h)
{
    memset(h, 0, sizeof(*h));
    cocoon_health_options_init(&h->opts);
    json_t *o = json_object_get(b, "health");
    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return serve_error(r, 400, "invalid_argument", "field \"health\" must be an object (test or cmd, ...)");
    static const char *const keys[] = {"test",    "cmd",        "interval_seconds",     "timeout_seconds",
                                       "retries", "on_failure", "start_period_seconds", NULL};
    uint64_t retries = 0;
    if (serve_only_keys(r, o, keys) < 0 || serve_get_strings(r, o, "test", 256, &h->test) < 0 ||
        serve_get_string(r, o, "cmd", 4000, &h->opts.cmd) < 0 ||
        get_ms(r, o, "interval_seconds", &h->opts.interval_ms) < 0 ||
        get_ms(r, o, "timeout_seconds", &h->opts.timeout_ms) < 0 ||
        get_ms(r, o, "start_period_seconds", &h->opts.start_period_ms) < 0 ||
        serve_get_uint(r, o, "retries", 1, 1000, &retries) < 0 ||
        serve_get_string(r, o, "on_failure", 16, &h->opts.on_failure) < 0)
        return -1;
    if (h->test && !h->test[0]) {
        free(h->test);
        h->test = NULL;
    }
    if (!h->test == !h->opts.cmd)
        return serve_error(r, 400, "invalid_argument",
                           "field \"health\" needs either \"test\" (an argv) or \"cmd\" (shell text)");
    if (retries)
        h->opts.retries = (unsigned)retries;
    h->opts.test = h->test;
    h->present = 1;
    return 0;
}

int health_request_apply(struct req *r, cocoon_box *box, const struct health_request *h)
{
    cocoon_error err;
    if (h->present && cocoon_box_set_health(box, &h->opts, &err) < 0)
        return serve_cocoon_error(r, &err); /* bad durations or on_failure: a 400 */
    return 0;
}

int handle_box_wait(struct req *r)
{
    json_t *b = serve_body_object(r);
    if (!b)
        return -1;
    static const char *const keys[] = {"condition", "timeout_seconds", NULL};
    const char *cond_text = NULL;
    double timeout_s = WAIT_MAX_S;
    if (serve_only_keys(r, b, keys) < 0 || serve_get_string(r, b, "condition", 16, &cond_text) < 0 ||
        serve_get_seconds(r, b, "timeout_seconds", WAIT_MAX_S, &timeout_s) < 0) {
        json_decref(b);
        return -1;
    }
    cocoon_wait_condition cond = COCOON_WAIT_EXITED;
    const char *name = cond_text ? cond_text : "exited";
    if (!strcmp(name, "healthy"))
        cond = COCOON_WAIT_HEALTHY;
    else if (!strcmp(name, "running"))
        cond = COCOON_WAIT_RUNNING;
    else if (strcmp(name, "exited")) {
        json_decref(b);
        return serve_error(r, 400, "invalid_argument", "condition must be exited, healthy or running");
    }
    name = cond == COCOON_WAIT_HEALTHY ? "healthy" : cond == COCOON_WAIT_RUNNING ? "running" : "exited";
    json_decref(b);
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    cocoon_error err;
    int code = 0;
    int rc = cocoon_box_wait(box, cond, (int)(timeout_s * 1000.0), &code, &err);
    serve_close_runtime_box(rt, box);
    if (rc < 0)
        return serve_cocoon_error(r, &err);
    if (rc == 1)
        return serve_error(r, 408, "timeout", "the box was not %s within %g s",
                           cond == COCOON_WAIT_EXITED ? "stopped, nor its main process ended," : name, timeout_s);
    json_t *answer = json_pack("{s:s, s:o}", "condition", name, "exit_code",
                               cond == COCOON_WAIT_EXITED ? json_integer(code) : json_null());
    if (!answer)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    return serve_json(r, 200, answer);
}
