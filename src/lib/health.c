/* A box's health check seen from libcocoon: health.json written for the monitor
 * (cocoon_box_set_health), health.state.json read back (cocoon_box_health_status), and
 * cocoon_box_wait, which sleeps on inotify events of the box directory between looks
 * at the box's files. The monitor's side is src/monitor/health.c. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "boxcfg/healthspec.h"
#include "image/image.h"
#include "util/util.h"

/* A look at the box's files even without an event: a monitor killed hard leaves no
 * file behind to tell us (its lock just goes). */
#define WAIT_RECHECK_MS 1000

void cocoon_health_options_init(cocoon_health_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
    opts->interval_ms = HEALTH_INTERVAL_DEFAULT_MS;
    opts->timeout_ms = HEALTH_TIMEOUT_DEFAULT_MS;
    opts->retries = HEALTH_RETRIES_DEFAULT;
}

void cocoon_health_status_init(cocoon_health_status *st)
{
    memset(st, 0, sizeof(*st));
    st->size = sizeof(*st);
}

int cocoon_box_set_health(cocoon_box *box, const cocoon_health_options *opts, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_set_health: NULL box");
    cocoon_health_options o;
    if (opts && LIB_OPTIONS(cocoon_health_options, o, opts, err) < 0)
        return -1;
    struct health_spec spec = {0};
    char why[512];
    const char *shell[] = {"/bin/sh", "-c", opts ? o.cmd : NULL, NULL};
    if (opts) {
        if (!o.test && (!o.cmd || !*o.cmd))
            return lib_err(err, COCOON_E_INVALID, "a health check needs a command (test or cmd)");
        spec.argv = (char **)(o.test ? o.test : shell);
        spec.interval_ms = o.interval_ms;
        spec.timeout_ms = o.timeout_ms;
        spec.start_period_ms = o.start_period_ms;
        spec.retries = o.retries;
        if (health_on_failure_parse(o.on_failure, &spec.on_failure, why, sizeof(why)) < 0 ||
            health_spec_check(&spec, why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_INVALID, "%s", why);
        for (size_t i = 0; spec.argv[i]; i++)
            if (strlen(spec.argv[i]) > PROTO_MAX_PAYLOAD / 2)
                return lib_err(err, COCOON_E_INVALID, "the health check's command is too long");
    }
    int dirfd = lib_box_dirfd(box, err);
    if (dirfd < 0)
        return -1;
    int rc = 0;
    if (!opts) {
        if (unlinkat(dirfd, "health.json", 0) < 0 && errno != ENOENT)
            rc = lib_err(err, COCOON_E_IO, "cannot remove %s/health.json: %s", box->dir, strerror(errno));
    } else if (health_spec_write(dirfd, &spec, why, sizeof(why)) < 0) {
        rc = lib_err(err, COCOON_E_IO, "box %s: %s", box->id, why);
    }
    close(dirfd);
    return rc;
}

/* docker's durations are nanoseconds, 0 for its default; ours have bounds of their
 * own, which an image's values are brought within rather than refused. */
static uint32_t image_ms(uint64_t ns, uint32_t dflt, uint32_t min)
{
    if (ns == 0)
        return dflt;
    uint64_t ms = ns / 1000000u;
    return ms < min ? min : ms > HEALTH_DURATION_MAX_MS ? HEALTH_DURATION_MAX_MS : (uint32_t)ms;
}

int lib_image_health_write(const char *dir, const char *config_json, cocoon_error *err)
{
    if (!config_json)
        return 0;
    struct image_config c;
    char why[512];
    if (image_config_parse(config_json, strlen(config_json), &c, why, sizeof(why)) < 0)
        return lib_err(err, COCOON_E_PROTOCOL, "the image's config is invalid: %s", why);
    char **t = c.health_test;
    const char *shell[] = {"/bin/sh", "-c", t && t[0] && t[1] ? t[1] : "", NULL};
    struct health_spec s = {0};
    if (t && t[0] && !strcmp(t[0], "CMD") && t[1])
        s.argv = t + 1;
    else if (t && t[0] && !strcmp(t[0], "CMD-SHELL") && t[1] && t[1][0])
        s.argv = (char **)shell;
    int rc = 0;
    if (s.argv) { /* else none, ["NONE"], or a form docker does not run either */
        s.interval_ms = image_ms(c.health_interval_ns, HEALTH_INTERVAL_DEFAULT_MS, HEALTH_DURATION_MIN_MS);
        s.timeout_ms = image_ms(c.health_timeout_ns, HEALTH_TIMEOUT_DEFAULT_MS, HEALTH_DURATION_MIN_MS);
        s.start_period_ms = image_ms(c.health_start_period_ns, 0, 0);
        s.retries = c.health_retries == 0                   ? HEALTH_RETRIES_DEFAULT
                    : c.health_retries > HEALTH_RETRIES_MAX ? HEALTH_RETRIES_MAX
                                                            : (unsigned)c.health_retries;
        int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
            rc = lib_err(err, COCOON_E_IO, "%s: %s", dir, strerror(errno));
        else if (health_spec_write(dirfd, &s, why, sizeof(why)) < 0)
            rc = lib_err(err, COCOON_E_IO, "the image's health check: %s", why);
        if (dirfd >= 0)
            close(dirfd);
    }
    image_config_free(&c);
    return rc;
}

static int fill(cocoon_box *box, int dirfd, cocoon_health_status *out, cocoon_error *err)
{
    struct health_spec spec;
    char why[512];
    int rc = health_spec_read(dirfd, &spec, why, sizeof(why));
    if (rc <= 0)
        return rc < 0 ? lib_err(err, COCOON_E_IO, "box %s: %s", box->id, why) : 0;
    out->present = 1;
    util_join_words(out->test, sizeof(out->test), spec.argv, HEALTH_ARGV_MAX);
    out->interval_ms = spec.interval_ms;
    out->timeout_ms = spec.timeout_ms;
    out->start_period_ms = spec.start_period_ms;
    out->retries = spec.retries;
    snprintf(out->on_failure, sizeof(out->on_failure), "%s", health_on_failure_name(spec.on_failure));
    health_spec_free(&spec);
    if (!lib_box_running(box->dir, NULL))
        return 0; /* what the last boot's checks said is no news about a stopped box */
    struct health_state *st = malloc(sizeof(*st));
    if (!st)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    rc = health_state_read(dirfd, st, why, sizeof(why));
    if (rc < 0) {
        free(st);
        return lib_err(err, COCOON_E_IO, "box %s: %s", box->id, why);
    }
    snprintf(out->status, sizeof(out->status), "%s", rc ? st->status : "starting");
    out->failing_streak = st->failing_streak;
    out->nlog = st->nlog;
    for (unsigned i = 0; i < st->nlog; i++) {
        out->log[i].exit_code = st->log[i].exit_code;
        out->log[i].start_ms = st->log[i].start_ms;
        out->log[i].end_ms = st->log[i].end_ms;
        snprintf(out->log[i].output, sizeof(out->log[i].output), "%s", st->log[i].output);
    }
    free(st);
    return 0;
}

static int fill_health(cocoon_box *box, int dirfd, void *full, cocoon_error *err)
{
    cocoon_health_status_init(full);
    return fill(box, dirfd, full, err);
}

int cocoon_box_health_status(cocoon_box *box, cocoon_health_status *st, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !st)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_health_status: NULL argument");
    return lib_status_get(st, sizeof(*st), "cocoon_health_status", fill_health, box, err);
}

/* One look: 1 when the condition holds (*code set for EXITED), 0 not yet, -1 error. */
static int condition_holds(cocoon_box *box, cocoon_wait_condition c, int *code, cocoon_error *err)
{
    int running = lib_box_running(box->dir, NULL);
    if (c == COCOON_WAIT_RUNNING)
        return running;
    if (c == COCOON_WAIT_HEALTHY) {
        cocoon_health_status h;
        cocoon_health_status_init(&h);
        if (cocoon_box_health_status(box, &h, err) < 0)
            return -1;
        if (!h.present)
            return lib_err(err, COCOON_E_INVALID, "box %s has no health check (see --health-cmd)", box->id);
        if (!running || !h.status[0])
            return lib_err(err, COCOON_E_STATE, "box %s is stopped, so it will not become healthy%s", box->id,
                           !strcmp(h.status, "unhealthy") ? " (it was unhealthy)" : "");
        return !strcmp(h.status, "healthy");
    }
    cocoon_main_status m;
    cocoon_main_status_init(&m);
    if (cocoon_box_main_status(box, &m, err) < 0)
        return -1;
    /* An end for good stops the box: waiting for that too lets `wait B && rm B` work. */
    if (running)
        return 0;
    if (m.present && !strcmp(m.state, "exited"))
        *code = m.exit_code < 0 ? 127 : m.exit_code;
    else
        *code = m.present && m.started_at ? 137 : 0; /* its end went unseen, or there was none */
    return 1;
}

int cocoon_box_wait(cocoon_box *box, cocoon_wait_condition condition, int timeout_ms, int *exit_code, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_wait: NULL box");
    if ((unsigned)condition > COCOON_WAIT_RUNNING)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_wait: unknown condition %d", (int)condition);
    int code = 0;
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (in < 0)
        return lib_err(err, COCOON_E_IO, "inotify: %s", strerror(errno));
    /* Watched before the first look, so that no change falls between the two. */
    if (inotify_add_watch(in, box->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_CREATE | IN_DELETE_SELF) < 0) {
        int e = errno;
        close(in);
        return lib_err(err, e == ENOENT ? COCOON_E_NOT_FOUND : COCOON_E_IO, "box %s: %s", box->id, strerror(e));
    }
    uint64_t deadline = timeout_ms >= 0 ? util_now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000u : 0;
    int rc;
    while ((rc = condition_holds(box, condition, &code, err)) == 0) {
        int wait_ms = WAIT_RECHECK_MS;
        if (timeout_ms >= 0) {
            uint64_t now = util_now_ns(CLOCK_MONOTONIC);
            if (now >= deadline) {
                rc = 2;
                break;
            }
            uint64_t left = (deadline - now + 999999u) / 1000000u;
            if (left < (uint64_t)wait_ms)
                wait_ms = (int)left;
        }
        struct pollfd p = {.fd = in, .events = POLLIN};
        if (poll(&p, 1, wait_ms) > 0) {
            char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            while (read(in, buf, sizeof(buf)) > 0) {
            } /* what changed does not matter: the next look reads it all */
        }
    }
    close(in);
    if (rc < 0)
        return -1;
    if (rc == 2)
        return 1;
    if (exit_code)
        *exit_code = condition == COCOON_WAIT_EXITED ? code : 0;
    return 0;
}
