/* Where an exec's time goes inside the guest, for benchmarks: with `cocoon.trace=exec`
 * on the kernel command line (the monitor adds it when COCOON_AGENT_TRACE=1 is in its
 * environment) the agent stamps each phase of every exec and, once it ended,
 * logs one line to the console with the microseconds from reading its EXEC to each.
 * Off (the default) it costs a flag test per phase. */
#include "agent/agent.h"

#include <stdio.h>
#include <string.h>

int agent_trace;

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
    /* "trace exec S PROGRAM decode=U user=U ..." (µs after the EXEC was read, so phases
     * that may come in either order, such as reaped and drained, read plainly); phases
     * never stamped are left out. */
    char line[600];
    size_t n = (size_t)snprintf(line, sizeof(line), "trace exec %u %s", stream, t->program[0] ? t->program : "?");
    for (int p = TRACE_RECEIVED + 1; p < TRACE_PHASES && n < sizeof(line); p++) {
        if (!t->at[p])
            continue;
        uint64_t d = t->at[p] >= t->at[TRACE_RECEIVED] ? t->at[p] - t->at[TRACE_RECEIVED] : 0;
        n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%llu", phase_names[p], (unsigned long long)(d / 1000));
    }
    agent_log("%s", line);
}
