/* Test hooks at named points of cocoon's processes (listed in docs/internals.md), so a
 * test hits a race window or a crash point by name instead of by timing. Unset, a
 * point costs two getenv calls; nothing else in cocoon reads these variables. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

static unsigned crash_hits; /* times this process reached the crash point */

/* COCOON_TEST_CRASH_AT=POINT or POINT:N names point (the Nth time it is reached, 1st
 * by default)? */
static int crash_here(const char *point)
{
    const char *v = getenv("COCOON_TEST_CRASH_AT");
    if (!v || !*v)
        return 0;
    size_t n = strlen(point);
    if (strncmp(v, point, n) != 0 || (v[n] != 0 && v[n] != ':'))
        return 0;
    long nth = v[n] == ':' ? strtol(v + n + 1, NULL, 10) : 1;
    return __atomic_add_fetch(&crash_hits, 1, __ATOMIC_SEQ_CST) == (unsigned long)(nth > 0 ? nth : 1);
}

void util_test_point(const char *point)
{
    if (crash_here(point)) {
        kill(getpid(), SIGKILL); /* no cleanup of any kind runs: that is the point */
        _exit(137);
    }
    char name[64];
    snprintf(name, sizeof(name), "COCOON_TEST_DELAY_%s", point);
    const char *v = getenv(name);
    long ms = v ? strtol(v, NULL, 10) : 0;
    if (ms <= 0 || ms > 600000)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}
