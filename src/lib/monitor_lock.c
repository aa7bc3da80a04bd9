/* Whether a box's monitor lives, decided by the lock it holds: cocoon-vmm keeps an
 * exclusive flock on DIR/vmm.pid for its whole life and writes its pid there. Only that
 * lock says a box runs (never a pid alone, never a command line), and a monitor is
 * killed only through a pidfd of a process proven to hold the lock. */
#include "lib/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

static int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* 1 when process pid has an open file description of (dev, ino) carrying an exclusive
 * flock: /proc/PID/fdinfo/N lists the locks held through that descriptor. */
static int holds_flock(pid_t pid, dev_t dev, ino_t ino)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || strlen(e->d_name) > 12)
            continue;
        char fdpath[320];
        struct stat st;
        snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%s", (int)pid, e->d_name);
        if (stat(fdpath, &st) < 0 || st.st_dev != dev || st.st_ino != ino)
            continue;
        snprintf(fdpath, sizeof(fdpath), "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
        char *info = util_read_file(fdpath, 65536, NULL);
        for (char *line = info; line && *line && !found;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = 0;
            found = !strncmp(line, "lock:", 5) && strstr(line, " FLOCK ") && strstr(line, " WRITE ");
            line = nl ? nl + 1 : NULL;
        }
        free(info);
    }
    closedir(d);
    return found;
}

void lib_monitor_done(struct lib_monitor *m)
{
    if (m->pidfd >= 0)
        close(m->pidfd);
    m->pidfd = -1;
}

int lib_monitor_probe(const char *dir, struct lib_monitor *m)
{
    m->state = LIB_MON_STOPPED;
    m->pid = 0;
    m->pidfd = -1;
    char path[LIB_PATH_MAX];
    if (lib_path(path, sizeof(path), "%s/vmm.pid", dir) < 0)
        return m->state;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return m->state;
    struct stat st;
    char text[32];
    ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? pread(fd, text, sizeof(text) - 1, 0) : -1;
    if (n < 0) {
        close(fd);
        return m->state;
    }
    text[n] = 0;
    long pid = strtol(text, NULL, 10);
    if (pid > 1 && pid < (1L << 30)) {
        /* The pidfd first, the proof second: if the pid is recycled after this, the
         * pidfd still names the process that was checked (and a signal fails). */
        int pidfd = pidfd_open_((pid_t)pid);
        if (pidfd >= 0 && holds_flock((pid_t)pid, st.st_dev, st.st_ino)) {
            m->state = LIB_MON_RUNNING;
            m->pid = (pid_t)pid;
            m->pidfd = pidfd;
            close(fd);
            return m->state;
        }
        if (pidfd >= 0)
            close(pidfd);
    }
    /* No proven holder: a monitor may be between taking the lock and writing its pid.
     * A shared probe fails exactly when someone holds the exclusive lock. */
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK)
        m->state = LIB_MON_STARTING;
    close(fd); /* drops the probe's lock, if it got one */
    return m->state;
}

int lib_box_running(const char *dir, pid_t *pid)
{
    struct lib_monitor m;
    int state = lib_monitor_probe(dir, &m);
    if (pid)
        *pid = m.pid;
    lib_monitor_done(&m);
    return state != LIB_MON_STOPPED;
}

int lib_monitor_wait_gone(const char *dir, unsigned ms)
{
    for (unsigned waited = 0;; waited += 10) {
        if (!lib_box_running(dir, NULL))
            return 0;
        if (waited >= ms)
            return -1;
        lib_sleep_ms(10);
    }
}

int lib_monitor_kill(const char *dir, struct lib_monitor *m, unsigned ms)
{
    if (m->state != LIB_MON_RUNNING || m->pidfd < 0)
        return -1;
    if (syscall(SYS_pidfd_send_signal, m->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
        return -1;
    struct pollfd p = {m->pidfd, POLLIN, 0};
    while (poll(&p, 1, (int)ms) < 0 && errno == EINTR)
        ;
    /* Its files close as it exits: the lock is free once it is gone. */
    return lib_monitor_wait_gone(dir, ms);
}

int lib_box_lock(const char *dir)
{
    char path[LIB_PATH_MAX];
    if (lib_path(path, sizeof(path), "%s/vmm.pid", dir) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}
