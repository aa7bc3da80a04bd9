/* Keeps the guest's wall clock on the host's. CONFIG sets it at boot; every EXEC
 * carries the host's clock too, so a guest that fell behind while the host slept (or
 * while the box was paused or restored) is corrected before the command runs. */
#include "agent.h"

#include <errno.h>
#include <string.h>
#include <time.h>

void clock_follow_host(uint64_t host_ns, uint64_t tolerance_ns)
{
    if (host_ns == 0)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t guest_ns = (uint64_t)now.tv_sec * NS_PER_SEC + (uint64_t)now.tv_nsec;
    uint64_t off = guest_ns > host_ns ? guest_ns - host_ns : host_ns - guest_ns;
    if (tolerance_ns && off <= tolerance_ns)
        return;
    struct timespec ts = {.tv_sec = (time_t)(host_ns / NS_PER_SEC), .tv_nsec = (long)(host_ns % NS_PER_SEC)};
    if (clock_settime(CLOCK_REALTIME, &ts) != 0)
        agent_log("set clock: %s", strerror(errno));
    else if (tolerance_ns)
        agent_log("clock was %llu ms off the host's: corrected", (unsigned long long)(off / 1000000u));
}
