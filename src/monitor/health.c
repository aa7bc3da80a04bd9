/* The box's health check (health.h): an exec of the monitor's own (mux_open_own) on a
 * timerfd of its own, so that it never competes with the lifecycle's timer. One check
 * runs at a time; one past its timeout is killed, counted as failed and forgotten, and
 * while it is still dying no other starts (at most two streams are ever in use). */
#include "monitor/health.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "boxcfg/healthspec.h"
#include "monitor/mainproc.h"
#include "monitor/monitor.h"
#include "monitor/mux.h"
#include "util/log.h"
#include "util/util.h"

struct health {
    struct health_spec spec;
    struct health_state st;
    int timer_fd;
    struct watch w;
    int watched;
    uint32_t stream;                /* the running check's agent stream, 0 when none runs */
    uint32_t abandoned;             /* a check killed at its timeout that has not ended yet */
    int started, abandoned_started; /* the guest said STARTED (an ERROR after it is not the end) */
    long long run_start_ms;         /* unix time in ms of the running check's start */
    uint64_t period_end_ns;         /* CLOCK_MONOTONIC: failures before this do not count */
    size_t outlen;
    char out[HEALTH_OUTPUT_MAX];
};

static long long now_ms(void) { return (long long)(util_now_ns(CLOCK_REALTIME) / 1000000u); }

static void arm(struct health *h, uint32_t ms)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
    if (ms == 0)
        its.it_value.tv_nsec = 1; /* 0 would disarm it */
    timerfd_settime(h->timer_fd, 0, &its, NULL);
}

static void save(struct vmm *v)
{
    if (health_state_write(v->dirfd, &v->health->st) < 0)
        vmm_log("cannot write health.state.json: %s", strerror(errno));
}

int health_open(struct vmm *v, char *err, size_t cap)
{
    struct health_spec spec;
    char why[512];
    int rc = health_spec_read(v->dirfd, &spec, why, sizeof(why));
    unlinkat(v->dirfd, "health.state.json", 0); /* a new boot: nothing was checked yet */
    if (rc < 0) {
        snprintf(err, cap, "the health check: %s", why);
        return -1;
    }
    if (rc == 0)
        return 0;
    struct health *h = calloc(1, sizeof(*h));
    if (!h || (h->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
        snprintf(err, cap, "cannot make the health check's timer: %s", h ? strerror(errno) : "out of memory");
        health_spec_free(&spec);
        free(h);
        return -1;
    }
    h->spec = spec;
    h->w.kind = W_HEALTH;
    snprintf(h->st.status, sizeof(h->st.status), "starting");
    v->health = h;
    save(v);
    return 0;
}

void health_start(struct vmm *v)
{
    struct health *h = v->health;
    if (!h)
        return;
    if (!h->watched && vmm_watch(v, h->timer_fd, EPOLLIN, &h->w) < 0) {
        vmm_log("cannot watch the health check's timer: %s; no health checks", strerror(errno));
        return;
    }
    h->watched = 1;
    h->period_end_ns = util_now_ns(CLOCK_MONOTONIC) + (uint64_t)h->spec.start_period_ms * 1000000u;
    arm(h, h->spec.interval_ms);
}

void health_main_restarted(struct vmm *v)
{
    struct health *h = v->health;
    if (!h || !h->watched)
        return;
    h->period_end_ns = util_now_ns(CLOCK_MONOTONIC) + (uint64_t)h->spec.start_period_ms * 1000000u;
}

/* What a result does to the state, and the action on becoming unhealthy. */
static void record(struct vmm *v, int exit_code, const char *output, size_t n)
{
    struct health *h = v->health;
    health_state_add(&h->st, exit_code, h->run_start_ms, now_ms(), output, n);
    int was_unhealthy = !strcmp(h->st.status, "unhealthy");
    if (exit_code == 0) {
        h->st.failing_streak = 0;
        snprintf(h->st.status, sizeof(h->st.status), "healthy");
    } else if (util_now_ns(CLOCK_MONOTONIC) >= h->period_end_ns || !strcmp(h->st.status, "healthy")) {
        /* docker's rule: in the start period only a success counts, until the first one */
        h->st.failing_streak++;
        if (h->st.failing_streak >= h->spec.retries)
            snprintf(h->st.status, sizeof(h->st.status), "unhealthy");
    }
    save(v);
    arm(h, h->spec.interval_ms);
    if (was_unhealthy || strcmp(h->st.status, "unhealthy"))
        return;
    vmm_log("health check: unhealthy after %u failures in a row", h->st.failing_streak);
    if (h->spec.on_failure == HEALTH_ON_FAILURE_STOP) {
        vmm_event(v, EV_UNHEALTHY, "the box became unhealthy (--health-on-failure stop)", 0);
    } else if (h->spec.on_failure == HEALTH_ON_FAILURE_RESTART && mainproc_kill(v)) {
        /* its restart policy decides what comes next; the check starts over meanwhile */
        h->st.failing_streak = 0;
        snprintf(h->st.status, sizeof(h->st.status), "starting");
        save(v);
    }
}

static void begin_check(struct vmm *v)
{
    struct health *h = v->health;
    struct proto_exec ex = {0};
    ex.argv = h->spec.argv;
    while (ex.argv[ex.argc])
        ex.argc++;
    ex.rows = 24;
    ex.cols = 80;
    ex.window = PROTO_DEFAULT_WINDOW;
    ex.realtime_ns = util_now_ns(CLOCK_REALTIME);
    h->run_start_ms = now_ms();
    h->outlen = 0;
    h->started = 0;
    h->stream = mux_open_own(v->mux, &ex);
    if (!h->stream) {
        static const char msg[] = "the check could not be sent to the guest (too large, or out of memory)";
        record(v, -1, msg, sizeof(msg) - 1);
        return;
    }
    arm(h, h->spec.timeout_ms);
}

void health_on_timer(struct vmm *v)
{
    struct health *h = v->health;
    uint64_t ticks;
    if (!h || read(h->timer_fd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks) || v->state != ST_RUNNING)
        return;
    char msg[128];
    if (h->stream) { /* past its timeout */
        mux_signal_own(v->mux, h->stream, SIGKILL);
        h->abandoned = h->stream;
        h->abandoned_started = h->started;
        h->stream = 0;
        char d[32];
        health_duration_format(h->spec.timeout_ms, d, sizeof(d));
        int n = snprintf(msg, sizeof(msg), "the check timed out after %s and was killed", d);
        record(v, -1, msg, (size_t)n);
    } else if (h->abandoned) {
        h->run_start_ms = now_ms();
        int n = snprintf(msg, sizeof(msg), "the last check, killed at its timeout, has not ended yet");
        record(v, -1, msg, (size_t)n);
    } else {
        begin_check(v);
    }
}

int health_on_frame(struct vmm *v, uint32_t stream, const struct proto_header *hd, const uint8_t *p)
{
    struct health *h = v->health;
    if (!h || !stream || (stream != h->stream && stream != h->abandoned))
        return 0;
    if (stream == h->abandoned) {
        if (hd->type == PROTO_STARTED)
            h->abandoned_started = 1;
        if (hd->type == PROTO_EXIT || (hd->type == PROTO_ERROR && !h->abandoned_started))
            h->abandoned = 0;
        return 1;
    }
    struct proto_exit ex;
    struct proto_error_msg em;
    switch (hd->type) {
    case PROTO_STARTED: h->started = 1; break;
    case PROTO_STDOUT:
    case PROTO_STDERR:
        if (h->outlen < sizeof(h->out)) {
            size_t n = hd->len < sizeof(h->out) - h->outlen ? hd->len : sizeof(h->out) - h->outlen;
            memcpy(h->out + h->outlen, p, n);
            h->outlen += n;
        }
        break;
    case PROTO_EXIT:
        h->stream = 0;
        if (proto_decode_exit(p, hd->len, &ex) == PROTO_OK)
            record(v, ex.signal ? 128 + (int)(ex.signal & 127) : ex.code > 255 ? 255 : (int)ex.code, h->out, h->outlen);
        else
            record(v, -1, h->out, h->outlen);
        break;
    case PROTO_ERROR:
        if (h->started) {
            vmm_log_guest("health check: the agent reported an error for a running check");
            break;
        }
        h->stream = 0;
        if (proto_decode_error(p, hd->len, &em) == PROTO_OK) {
            char why[sizeof(em.message) + 40];
            int n = snprintf(why, sizeof(why), "cannot run the check: %s", em.message);
            record(v, -1, why, n < 0 ? 0 : (size_t)n < sizeof(why) ? (size_t)n : sizeof(why) - 1);
        } else {
            record(v, -1, "", 0);
        }
        break;
    default: break;
    }
    return 1;
}

void health_close(struct vmm *v)
{
    struct health *h = v->health;
    if (!h)
        return;
    if (h->watched)
        vmm_unwatch(v, h->timer_fd);
    close(h->timer_fd);
    health_spec_free(&h->spec);
    free(h);
    v->health = NULL;
}
