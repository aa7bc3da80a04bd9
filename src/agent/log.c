/* Console logging and the two ways PID 1 may end: a fatal boot error or an orderly
 * power-off. Both end in reboot(): the kernel runs with reboot=t and QEMU with
 * -no-reboot, so the VM exits and the host reads the console tail for the reason. */
#include "agent/agent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 2, 0))) static void vlog(const char *prefix, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "cocoon-agent: %s", prefix);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line so lines from the kernel and from us do not interleave. */
    ssize_t w;
    do
        w = write(STDERR_FILENO, line, len);
    while (w < 0 && errno == EINTR);
}

void agent_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

_Noreturn void agent_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("fatal: ", fmt, ap);
    va_end(ap);
    sync();
    reboot(RB_AUTOBOOT);
    for (;;)
        pause(); /* reboot cannot fail for PID 1 with CAP_SYS_BOOT; never exit (panic) */
}

_Noreturn void agent_reboot(void)
{
    sync();
    /* A read-only root means the ext4 journal is clean when the next boot of this
     * box mounts the disk again. EBUSY is possible if something still holds a file
     * open for writing; sync() above already made the data durable. */
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0)
        agent_log("remount / read-only: %s", strerror(errno));
    reboot(RB_AUTOBOOT);
    for (;;)
        pause();
}
