/* Timestamped log lines for vmm.log. Each line is one write(2) on an O_APPEND fd so
 * lines from QEMU's relayed stderr and our own never interleave mid-line. */
#include "util/log.h"
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/rotlog.h"

static int log_fd = 2;
static struct rotlog rot; /* vmm.log, when opened with vmm_log_open */
static int rotating;

void vmm_log_set_fd(int fd)
{
    if (rotating && fd != rot.fd) {
        rotlog_close(&rot);
        rotating = 0;
    }
    log_fd = fd;
}

uint64_t vmm_log_max_bytes(void)
{
    const char *e = getenv("COCOON_VMM_LOG_MAX");
    char *end;
    unsigned long long v = e && *e ? strtoull(e, &end, 10) : 0;
    if (!v || *end)
        return VMM_LOG_DEFAULT_BYTES;
    return v < 4096 ? 4096 : v;
}

int vmm_log_open(int dirfd, const char *name)
{
    if (rotlog_open(&rot, dirfd, name, vmm_log_max_bytes(), 0) < 0)
        return -1;
    rotating = 1;
    log_fd = rot.fd;
    return log_fd;
}

int vmm_log_fd(void) { return log_fd; }

static void vlog(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void vlog(const char *fmt, va_list ap)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ [%d] ", ts.tv_nsec / 1000000, (int)getpid());
    /* Messages may carry a guest's text: escaped, it can neither start a line of its
     * own (a forged entry) nor reach a terminal as control sequences. */
    char msg[2048];
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (m < 0)
        m = 0;
    util_escape_text(line + n, sizeof(line) - n - 1, msg, (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1);
    n += strlen(line + n);
    line[n++] = '\n';
    if (rotating) {
        rotlog_write(&rot, line, n);
        return;
    }
    ssize_t w = write(log_fd, line, n);
    (void)w;
}

void vmm_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void vmm_log_guest(const char *fmt, ...)
{
    static unsigned count;
    if (count > VMM_LOG_GUEST_MAX)
        return;
    if (count++ == VMM_LOG_GUEST_MAX) {
        vmm_log("the guest caused %d log lines: further ones are suppressed", VMM_LOG_GUEST_MAX);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}
