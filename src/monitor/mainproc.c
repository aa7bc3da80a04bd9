/* The main process of a box (mainproc.h): the monitor opens it as an exec of its own
 * (mux_open_own), writes what it prints to main.log as timestamped lines, records each
 * start and end in main.state.json, and on its end either restarts it after a back-off
 * (the monitor's timer, free while the box runs) or stops the box. */
#include "monitor/mainproc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "boxcfg/mainspec.h"
#include "monitor/monitor.h"
#include "monitor/mux.h"
#include "util/log.h"
#include "util/rotlog.h"
#include "util/util.h"

struct mainproc {
    struct main_spec spec;
    struct rotlog log;
    int log_open;
    struct main_state st;
    uint32_t stream;       /* the agent's stream id while it runs, else 0 */
    uint64_t started_ns;   /* CLOCK_MONOTONIC at the last start */
    unsigned quick_deaths; /* ends in a row that came before MAIN_BACKOFF_RESET_MS */
    char line[2][MAIN_LOG_LINE_MAX];
    size_t line_len[2];
};

static uint64_t main_log_max_bytes(void)
{
    const char *e = getenv("COCOON_MAIN_LOG_MAX");
    char *end;
    unsigned long long v = e && *e ? strtoull(e, &end, 10) : 0;
    if (!v || *end)
        return MAIN_LOG_DEFAULT_BYTES;
    return v < MAIN_LOG_MIN_BYTES ? MAIN_LOG_MIN_BYTES : v;
}

int mainproc_present(const struct vmm *v) { return v->main != NULL; }

int mainproc_open(struct vmm *v, char *err, size_t cap)
{
    struct main_spec spec;
    char why[512];
    int rc = main_spec_read(v->dirfd, &spec, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, cap, "the main process: %s", why);
        return -1;
    }
    unlinkat(v->dirfd, "main.state.json", 0); /* a new boot: nothing has run yet */
    if (rc == 0)
        return 0;
    struct mainproc *mp = calloc(1, sizeof(*mp));
    if (!mp) {
        main_spec_free(&spec);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    mp->spec = spec;
    mp->st.exit_code = -1;
    snprintf(mp->st.state, sizeof(mp->st.state), "starting");
    /* Kept across boots, as docker keeps a container's log: `logs` shows earlier runs. */
    if (rotlog_open(&mp->log, v->dirfd, "main.log", main_log_max_bytes(), 0) < 0) {
        snprintf(err, cap, "cannot open %s/main.log: %s", v->box_dir, strerror(errno));
        main_spec_free(&mp->spec);
        free(mp);
        return -1;
    }
    mp->log_open = 1;
    v->main = mp;
    main_state_write(v->dirfd, &mp->st);
    return 0;
}

static void save_state(struct vmm *v)
{
    if (main_state_write(v->dirfd, &v->main->st) < 0)
        vmm_log("cannot write main.state.json: %s", strerror(errno));
}

/* One record of main.log: "2026-12-03T14:40:00.123456Z stdout TEXT\n". */
static void log_record(struct mainproc *mp, int err_stream, const char *text, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char head[64];
    int hn =
        snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, err_stream ? "stderr" : "stdout");
    char *rec = malloc((size_t)hn + n + 1);
    if (!rec)
        return;
    memcpy(rec, head, (size_t)hn);
    memcpy(rec + hn, text, n);
    rec[(size_t)hn + n] = '\n';
    rotlog_write(&mp->log, rec, (size_t)hn + n + 1); /* one write: a record is never split by a rotation */
    free(rec);
}

static void log_output(struct mainproc *mp, int s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' || mp->line_len[s] == sizeof(mp->line[s])) {
            log_record(mp, s, mp->line[s], mp->line_len[s]);
            mp->line_len[s] = 0;
            if (p[i] == '\n')
                continue;
        }
        mp->line[s][mp->line_len[s]++] = (char)p[i];
    }
}

static void log_flush(struct mainproc *mp)
{
    for (int s = 0; s < 2; s++)
        if (mp->line_len[s]) {
            log_record(mp, s, mp->line[s], mp->line_len[s]);
            mp->line_len[s] = 0;
        }
}

void mainproc_start(struct vmm *v)
{
    struct mainproc *mp = v->main;
    if (!mp || mp->stream || v->state != ST_RUNNING)
        return;
    struct proto_exec ex = {0};
    ex.argv = mp->spec.argv;
    while (ex.argv[ex.argc])
        ex.argc++;
    ex.env = mp->spec.env;
    while (ex.env[ex.envc])
        ex.envc++;
    snprintf(ex.cwd, sizeof(ex.cwd), "%s", mp->spec.workdir);
    snprintf(ex.user, sizeof(ex.user), "%s", mp->spec.user);
    ex.rows = 24;
    ex.cols = 80;
    ex.window = PROTO_DEFAULT_WINDOW;
    ex.realtime_ns = util_now_ns(CLOCK_REALTIME);
    if (mp->st.finished_at) /* not the first run of this boot */
        mp->st.restarts++;
    mp->stream = mux_open_own(v->mux, &ex);
    mp->started_ns = util_now_ns(CLOCK_MONOTONIC);
    mp->st.started_at = (long long)time(NULL);
    mp->st.finished_at = 0;
    mp->st.next_restart_ms = 0;
    mp->st.pid = 0;
    mp->st.exit_code = -1;
    mp->st.signal = 0;
    mp->st.error[0] = 0;
    if (!mp->stream) {
        vmm_fatal(v, "cannot start the main process: its command does not fit a frame or out of memory");
        return;
    }
    snprintf(mp->st.state, sizeof(mp->st.state), "starting");
    vmm_log("main process: starting %s (run %u)", mp->spec.argv[0], mp->st.restarts + 1);
    save_state(v);
}

/* 1 when the policy wants another run after this end. */
static int wants_restart(const struct mainproc *mp)
{
    int failed = mp->st.exit_code != 0 || mp->st.signal != 0;
    switch (mp->spec.restart) {
    case MAIN_RESTART_NO: return 0;
    case MAIN_RESTART_ON_FAILURE: return failed && (!mp->spec.max_retries || mp->st.restarts < mp->spec.max_retries);
    case MAIN_RESTART_ALWAYS:
    case MAIN_RESTART_UNLESS_STOPPED: return 1;
    }
    return 0;
}

static void ended(struct vmm *v, int code, int sig, const char *error)
{
    struct mainproc *mp = v->main;
    mp->stream = 0;
    log_flush(mp);
    mp->st.exit_code = code;
    mp->st.signal = sig;
    mp->st.pid = 0;
    mp->st.finished_at = (long long)time(NULL);
    snprintf(mp->st.error, sizeof(mp->st.error), "%s", error ? error : "");
    snprintf(mp->st.state, sizeof(mp->st.state), "exited");
    if (error)
        log_record(mp, 1, error, strlen(error));
    vmm_log("main process: exited with %s %d%s%s", sig ? "signal" : "code", sig ? sig : code, error ? ": " : "",
            error ? error : "");
    if (v->state != ST_RUNNING) { /* the box is stopping: nothing restarts */
        save_state(v);
        return;
    }
    if (!wants_restart(mp)) {
        save_state(v);
        vmm_event(v, EV_MAIN_EXIT, "the main process exited", 0);
        return;
    }
    uint64_t ran_ms = (util_now_ns(CLOCK_MONOTONIC) - mp->started_ns) / 1000000u;
    mp->quick_deaths = ran_ms >= MAIN_BACKOFF_RESET_MS ? 1 : mp->quick_deaths + 1;
    uint32_t delay = main_backoff_ms(mp->quick_deaths);
    mp->st.next_restart_ms = (long long)(util_now_ns(CLOCK_REALTIME) / 1000000u) + delay;
    snprintf(mp->st.state, sizeof(mp->st.state), "restarting");
    vmm_log("main process: restarting in %u ms", delay);
    save_state(v);
    vmm_arm_timer(v, delay);
}

void mainproc_on_frame(struct vmm *v, uint32_t stream, const struct proto_header *h, const uint8_t *p)
{
    struct mainproc *mp = v->main;
    if (!mp || stream != mp->stream)
        return;
    struct proto_started st;
    struct proto_exit ex;
    struct proto_error_msg em;
    switch (h->type) {
    case PROTO_STARTED:
        if (proto_decode_started(p, h->len, &st) == PROTO_OK)
            mp->st.pid = (int)st.pid;
        snprintf(mp->st.state, sizeof(mp->st.state), "running");
        save_state(v);
        break;
    case PROTO_STDOUT:
    case PROTO_STDERR: log_output(mp, h->type == PROTO_STDERR, p, h->len); break;
    case PROTO_EXIT:
        if (proto_decode_exit(p, h->len, &ex) == PROTO_OK)
            ended(v, ex.signal ? 128 + (int)ex.signal : ex.code, (int)ex.signal, NULL);
        break;
    case PROTO_ERROR:
        if (proto_decode_error(p, h->len, &em) != PROTO_OK)
            break;
        if (mp->st.pid == 0 && strcmp(mp->st.state, "running")) { /* it never ran */
            char why[sizeof(em.message) + 64];
            snprintf(why, sizeof(why), "cannot start the main process: %s", em.message);
            ended(v, em.code == ENOENT ? 127 : 126, 0, why);
        } else {
            vmm_log_guest("main process: the agent reported: %s", em.message);
        }
        break;
    default: break;
    }
}

void mainproc_close(struct vmm *v)
{
    struct mainproc *mp = v->main;
    if (!mp)
        return;
    log_flush(mp);
    if (strcmp(mp->st.state, "exited")) { /* still running, or waiting for its restart */
        snprintf(mp->st.state, sizeof(mp->st.state), "stopped");
        mp->st.pid = 0;
        mp->st.next_restart_ms = 0;
        mp->st.finished_at = (long long)time(NULL);
        save_state(v);
    }
    if (mp->log_open)
        rotlog_close(&mp->log);
    main_spec_free(&mp->spec);
    free(mp);
    v->main = NULL;
}
