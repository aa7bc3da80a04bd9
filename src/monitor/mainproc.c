/* The main process of a box (mainproc.h): the monitor opens it as an exec of its own
 * (mux_open_own), writes what it prints to main.log as timestamped lines (outlog.c), records each
 * start and end in main.state.json, and on its end either restarts it after a back-off
 * (the monitor's timer, free while the box runs) or stops the box. */
#include "monitor/mainproc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "boxcfg/mainspec.h"
#include "monitor/attach.h"
#include "monitor/health.h"
#include "monitor/monitor.h"
#include "monitor/mux.h"
#include "monitor/outlog.h"
#include "util/log.h"
#include "util/util.h"

#define MAIN_EARLY_STDIN_MAX (64u * 1024u)   /* attacher input held until STARTED */
#define MAIN_EARLY_STDIN_CHUNK (16u * 1024u) /* per STDIN frame when it goes */

struct mainproc {
    struct main_spec spec;
    struct outlog log;
    int log_open;
    struct main_state st;
    uint32_t stream;       /* the agent's stream id while it runs, else 0 */
    uint64_t started_ns;   /* CLOCK_MONOTONIC at the last start */
    unsigned quick_deaths; /* ends in a row that came before MAIN_BACKOFF_RESET_MS */
    uint64_t stdin_credit; /* stdin bytes the agent takes now (STARTED's window plus its CREDITs) */
    int started;           /* the agent said STARTED for this run: stdin goes straight to it */
    /* Attacher input that came before STARTED (an attach right after `run -d`): the agent
     * grants no window until then, so it waits here, bounded, and goes at STARTED. */
    uint8_t early_stdin[MAIN_EARLY_STDIN_MAX];
    size_t early_len;
};

int mainproc_present(const struct vmm *v) { return v->main != NULL; }

int mainproc_kill(struct vmm *v)
{
    if (!v->main || !v->main->stream)
        return 0;
    vmm_log("main process: killed, the box is unhealthy");
    mux_signal_own(v->mux, v->main->stream, SIGKILL);
    return 1;
}

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
    if (outlog_open(&mp->log, v->dirfd, "main.log", OUTLOG_MAIN, 0) < 0) {
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
    ex.tty = mp->spec.tty ? 1u : 0u;
    ex.rows = 24;
    ex.cols = 80;
    ex.window = PROTO_DEFAULT_WINDOW;
    ex.realtime_ns = util_now_ns(CLOCK_REALTIME);
    if (mp->st.finished_at) /* not the first run of this boot */
        mp->st.restarts++;
    /* With -i its stdin stays open for attachers; with -t a terminal has no EOF to send
     * (the agent would type ^D into it). */
    mp->stream = mp->spec.open_stdin || mp->spec.tty ? mux_open_own_stdin(v->mux, &ex) : mux_open_own(v->mux, &ex);
    mp->stdin_credit = 0;
    mp->started = 0;
    mp->early_len = 0;
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
    if (mp->st.restarts)
        health_main_restarted(v);
    vmm_log("main process: starting %s (run %u)", mp->spec.argv[0], mp->st.restarts + 1);
    save_state(v);
}

/* The input that waited for STARTED, within the window the agent just granted (what
 * does not fit is dropped, as input past the window always is). */
static void send_early_stdin(struct vmm *v, struct mainproc *mp)
{
    size_t n = mp->early_len < mp->stdin_credit ? mp->early_len : (size_t)mp->stdin_credit;
    if (n < mp->early_len)
        vmm_log("main process: %zu bytes of early attacher input dropped: past its stdin window", mp->early_len - n);
    for (size_t off = 0; off < n;) {
        size_t chunk = n - off < MAIN_EARLY_STDIN_CHUNK ? n - off : MAIN_EARLY_STDIN_CHUNK;
        vmm_send_agent(v, v->agent_w.buf,
                       proto_encode_data(&v->agent_w, mp->stream, PROTO_STDIN, mp->early_stdin + off, chunk));
        off += chunk;
    }
    mp->stdin_credit -= n;
    mp->early_len = 0;
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
    outlog_flush(&mp->log);
    mp->st.exit_code = code;
    mp->st.signal = sig;
    mp->st.pid = 0;
    mp->st.finished_at = (long long)time(NULL);
    snprintf(mp->st.error, sizeof(mp->st.error), "%s", error ? error : "");
    snprintf(mp->st.state, sizeof(mp->st.state), "exited");
    if (error)
        outlog_note(&mp->log, error);
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

int mainproc_on_frame(struct vmm *v, uint32_t stream, const struct proto_header *h, const uint8_t *p)
{
    struct mainproc *mp = v->main;
    if (!mp || stream != mp->stream)
        return 0;
    struct proto_started st;
    struct proto_exit ex;
    struct proto_error_msg em;
    switch (h->type) {
    case PROTO_STARTED:
        if (proto_decode_started(p, h->len, &st) == PROTO_OK) {
            mp->st.pid = (int)st.pid;
            mp->stdin_credit = st.window;
        }
        mp->started = 1;
        send_early_stdin(v, mp);
        snprintf(mp->st.state, sizeof(mp->st.state), "running");
        save_state(v);
        break;
    case PROTO_STDOUT:
    case PROTO_STDERR:
        outlog_write(&mp->log, h->type == PROTO_STDERR, p, h->len);
        attach_output(v, h->type, p, h->len);
        break;
    case PROTO_CREDIT: {
        uint32_t more;
        if (proto_decode_u32_field(p, h->len, PT_BYTES, &more) == PROTO_OK && mp->stdin_credit + more <= UINT32_MAX)
            mp->stdin_credit += more;
        break;
    }
    case PROTO_EXIT:
        if (proto_decode_exit(p, h->len, &ex) == PROTO_OK) {
            attach_main_ended(v, ex.signal ? 0 : ex.code, (int)ex.signal);
            ended(v, ex.signal ? 128 + (int)ex.signal : ex.code, (int)ex.signal, NULL);
        }
        break;
    case PROTO_ERROR:
        if (proto_decode_error(p, h->len, &em) != PROTO_OK)
            break;
        if (mp->st.pid == 0 && strcmp(mp->st.state, "running")) { /* it never ran */
            char why[sizeof(em.message) + 64];
            snprintf(why, sizeof(why), "cannot start the main process: %s", em.message);
            attach_main_ended(v, em.code == ENOENT ? 127 : 126, 0);
            ended(v, em.code == ENOENT ? 127 : 126, 0, why);
        } else {
            vmm_log_guest("main process: the agent reported: %s", em.message);
        }
        break;
    default: break;
    }
    return 1;
}

int mainproc_io(const struct vmm *v, struct mainproc_io *io, char *msg, size_t cap)
{
    const struct mainproc *mp = v->main;
    memset(io, 0, sizeof(*io));
    if (!mp) {
        snprintf(msg, cap, "the box has no main process (start one with `cocoon run -d IMAGE CMD`)");
        return -1;
    }
    if (!mp->stream || v->state != ST_RUNNING) {
        if (!strcmp(mp->st.state, "restarting"))
            snprintf(msg, cap, "the main process is waiting to restart (it exited with %s %d)",
                     mp->st.signal ? "signal" : "code", mp->st.signal ? mp->st.signal : mp->st.exit_code);
        else
            snprintf(msg, cap, "the main process is not running (%s)", mp->st.state);
        return -1;
    }
    io->stream = mp->stream;
    io->pid = mp->st.pid;
    io->tty = mp->spec.tty;
    io->open_stdin = mp->spec.open_stdin;
    return 0;
}

int mainproc_stdin(struct vmm *v, const uint8_t *p, size_t n)
{
    struct mainproc *mp = v->main;
    if (!mp || !mp->stream || !mp->spec.open_stdin)
        return -1;
    if (!mp->started) {
        if (n > sizeof(mp->early_stdin) - mp->early_len)
            return -1;
        memcpy(mp->early_stdin + mp->early_len, p, n);
        mp->early_len += n;
        return 0;
    }
    if (n > mp->stdin_credit)
        return -1;
    mp->stdin_credit -= n;
    vmm_send_agent(v, v->agent_w.buf, proto_encode_data(&v->agent_w, mp->stream, PROTO_STDIN, p, n));
    return 0;
}

void mainproc_close(struct vmm *v)
{
    struct mainproc *mp = v->main;
    if (!mp)
        return;
    if (strcmp(mp->st.state, "exited")) { /* still running, or waiting for its restart */
        snprintf(mp->st.state, sizeof(mp->st.state), "stopped");
        mp->st.pid = 0;
        mp->st.next_restart_ms = 0;
        mp->st.finished_at = (long long)time(NULL);
        save_state(v);
    }
    if (mp->log_open)
        outlog_close(&mp->log);
    main_spec_free(&mp->spec);
    free(mp);
    v->main = NULL;
}
