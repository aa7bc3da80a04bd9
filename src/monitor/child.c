/* The guest's child process, whatever the backend: its plan (accelerator, kernel
 * command line, argv) and starting it so that it dies with the monitor and sees only
 * the descriptors meant for it. */
#include "monitor/backend.h"

#include "jail/jail.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int child_plan_add(struct child_plan *p, const char *fmt, ...)
{
    if (p->argc >= CHILD_MAX_ARGS)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&p->argv[p->argc], fmt, ap);
    va_end(ap);
    if (rc < 0) {
        p->argv[p->argc] = NULL;
        return -1;
    }
    p->argc++;
    p->argv[p->argc] = NULL;
    return 0;
}

int child_plan_build(struct child_plan *p, const struct backend *b, const struct box_config *cfg, const char *box_dir,
                     char *err, size_t errcap)
{
    char cmdline[KERNEL_CMDLINE_MAX];
    memset(p, 0, sizeof(*p));
    if (b->accel(p, cfg, err, errcap) < 0)
        return -1;
    if (kernel_cmdline(cmdline, sizeof(cmdline), b, cfg, p->accel) < 0) {
        snprintf(err, errcap, "the kernel command line does not fit in %d bytes", KERNEL_CMDLINE_MAX);
        return -1;
    }
    if (b->plan(p, cfg, box_dir, cmdline, err, errcap) < 0) {
        child_plan_free(p);
        return -1;
    }
    return 0;
}

void child_plan_free(struct child_plan *p)
{
    for (int i = 0; i < p->argc; i++)
        free(p->argv[i]);
    p->argc = 0;
    p->argv[0] = NULL;
}

void child_plan_describe(const struct child_plan *p, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < p->argc && o < cap; i++) {
        int quote = strchr(p->argv[i], ' ') != NULL;
        int n = snprintf(out + o, cap - o, "%s%s%s%s", i ? " " : "", quote ? "'" : "", p->argv[i], quote ? "'" : "");
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

/* Runs in the forked child: only async-signal-safe calls until execv. Every source fd
 * is first moved above the targets, so no dup2 overwrites a source not yet placed. */
static void child_exec(const struct child_plan *p, pid_t parent, int dirfd, const struct child_fds *fds, int null_fd,
                       const int alive[2])
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    close(alive[1]);
    util_test_point("CHILD_ARM");
    /* A parent that died before the death signal was armed is seen afterwards: by
     * getppid() without a PID namespace; inside one getppid() says 0 whoever the parent
     * is, but the parent's end of the pipe is closed then. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || (getppid() != parent && getppid() != 0))
        _exit(127);
    struct pollfd pf = {.fd = alive[0], .events = POLLIN};
    if (poll(&pf, 1, 0) != 0)
        _exit(127); /* POLLHUP: the monitor is gone (it never writes to the pipe) */
    close(alive[0]);
    if (fchdir(dirfd) < 0)
        _exit(127);
    int src[5] = {fds->agent, fds->net, fds->console, fds->qmp, fds->incoming},
        dst[5] = {CHILD_AGENT_FD, CHILD_NET_FD, CHILD_CONSOLE_FD, CHILD_QMP_FD, CHILD_INCOMING_FD};
    for (int i = 0; i < 5; i++)
        if (src[i] >= 0 && (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 16)) < 0)
            _exit(127);
    int out = fcntl(fds->out, F_DUPFD_CLOEXEC, 16);
    if (out < 0 || dup2(null_fd, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(127);
    for (int i = 0; i < 5; i++)
        if (src[i] >= 0 && (dup2(src[i], dst[i]) < 0 || fcntl(dst[i], F_SETFD, 0) < 0))
            _exit(127);
    if (syscall(SYS_close_range, CHILD_INCOMING_FD + 1, ~0u, 0) < 0) {
        for (int fd = CHILD_INCOMING_FD + 1; fd < 65536; fd++)
            close(fd);
    }
    if (src[1] < 0)
        close(CHILD_NET_FD); /* no network: the number stays free */
    if (src[3] < 0)
        close(CHILD_QMP_FD);
    if (src[4] < 0)
        close(CHILD_INCOMING_FD);
    if (fds->jail && jail_child(fds->fsize) < 0)
        _exit(126);
    execv(p->bin, p->argv);
    static const char msg[] = "cocoon-vmm: cannot execute the VMM\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(127);
}

pid_t child_spawn(const struct child_plan *p, int dirfd, const struct child_fds *fds, char *err, size_t errcap)
{
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        snprintf(err, errcap, "cannot open /dev/null: %s", strerror(errno));
        return -1;
    }
    /* The monitor keeps the write end for its whole life (one per monitor, closed only
     * when the next child is spawned): its closing tells a child the monitor is gone. */
    static int alive_w = -1;
    int alive[2];
    if (pipe2(alive, O_CLOEXEC) < 0) {
        snprintf(err, errcap, "cannot start the VMM: pipe: %s", strerror(errno));
        close(null_fd);
        return -1;
    }
    if (alive_w >= 0)
        close(alive_w);
    alive_w = alive[1];
    pid_t parent = getpid();
    /* In the jail the child starts in a PID namespace of its own (it sees no other
     * process); only the child: later children of the monitor stay in its namespace. */
    pid_t pid = fds->jail ? (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, 0) : -1;
    if (pid < 0)
        pid = fork(); /* no PID namespace here (or no jail) */
    if (pid == 0)
        child_exec(p, parent, dirfd, fds, null_fd, alive);
    int saved = errno;
    close(null_fd);
    close(alive[0]);
    if (pid < 0) {
        snprintf(err, errcap, "cannot start the VMM: fork: %s", strerror(saved));
        return -1;
    }
    setpgid(pid, pid); /* also from the parent, so a kill of the group never races the child */
    return pid;
}
