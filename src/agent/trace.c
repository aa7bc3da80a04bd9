/* Where an exec's time goes inside the guest, for benchmarks: with `cocoon.trace=exec`
 * on the kernel command line (the monitor adds it when COCOON_AGENT_TRACE=1 is in its
 * environment) the agent stamps each phase of every exec and, once it ended, appends
 * one line to TRACE_FILE with the microseconds from reading its EXEC to each. A file on
 * the guest's /run tmpfs, not the console: the emulated serial port takes milliseconds
 * per line, which would land on the next exec. Off (the default) it costs a flag test
 * per phase. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Lines stop once the file holds this much (guest memory: /run is a tmpfs). */
#define TRACE_MAX_BYTES (4u << 20)

int agent_trace;
static int trace_fd = -1;
static size_t trace_written;

static const char *const phase_names[TRACE_PHASES] = {
    [TRACE_RECEIVED] = "recv",   [TRACE_DECODED] = "decode", [TRACE_USER] = "user",         [TRACE_PIPES] = "pipes",
    [TRACE_FORKED] = "fork",     [TRACE_EXECED] = "execve",  [TRACE_STARTED] = "started",   [TRACE_REAPED] = "reaped",
    [TRACE_DRAINED] = "drained", [TRACE_EXIT] = "exit",      [TRACE_RELEASED] = "released",
};

void trace_begin(struct exec_trace *t, uint64_t received, const char *argv0)
{
    if (!agent_trace)
        return;
    t->at[TRACE_RECEIVED] = received;
    const char *slash = strrchr(argv0, '/');
    const char *name = slash && slash[1] ? slash + 1 : argv0;
    /* Printable and without spaces, so the line stays one field per value. */
    size_t n = 0;
    for (; name[n] && n < sizeof(t->program) - 1; n++)
        t->program[n] = name[n] > ' ' && name[n] < 127 && name[n] != '=' ? name[n] : '?';
    t->program[n] = 0;
}

void trace_mark(struct exec_trace *t, enum trace_phase p)
{
    if (agent_trace && t)
        t->at[p] = clock_ns(CLOCK_MONOTONIC);
}

void trace_report(uint32_t stream, const struct exec_trace *t)
{
    if (!agent_trace || !t || !t->at[TRACE_RECEIVED])
        return;
    /* "exec S PROGRAM decode=U user=U ..." (µs after the EXEC was read, so phases that
     * may come in either order, such as reaped and drained, read plainly); phases never
     * stamped are left out. */
    char line[600];
    size_t n = (size_t)snprintf(line, sizeof(line), "exec %u %s", stream, t->program[0] ? t->program : "?");
    for (int p = TRACE_RECEIVED + 1; p < TRACE_PHASES && n < sizeof(line); p++) {
        if (!t->at[p])
            continue;
        uint64_t d = t->at[p] >= t->at[TRACE_RECEIVED] ? t->at[p] - t->at[TRACE_RECEIVED] : 0;
        n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%llu", phase_names[p], (unsigned long long)(d / 1000));
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    if (trace_written + n > TRACE_MAX_BYTES) {
        agent_log("trace: %s holds %u bytes: no more lines", TRACE_FILE, TRACE_MAX_BYTES);
        agent_trace = 0;
        return;
    }
    if (trace_fd < 0) {
        /* Not through a symlink, nor blocked by a FIFO a command may have put there. */
        trace_fd = open(TRACE_FILE, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
        if (trace_fd < 0) {
            agent_log("trace: %s: %s (tracing off)", TRACE_FILE, strerror(errno));
            agent_trace = 0;
            return;
        }
    }
    ssize_t w = write(trace_fd, line, n);
    trace_written += w > 0 ? (size_t)w : 0;
}
