/* cocoon-vmm: the per-box monitor process. Sets up the box directory's files, starts
 * the backend's VMM child with the agent channel, the network link and the console,
 * runs the event loop, and cleans up after the guest is gone. The start contract with
 * libcocoon is in docs/internals.md. `cocoon-vmm --kvm-run` is the kvm backend's child. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kvm/main.h"
#include "monitor/console_log.h"
#include "monitor/jail_probe.h"
#include "monitor/attach.h"
#include "monitor/detached.h"
#include "monitor/jail_setup.h"
#include "monitor/livesnap.h"
#include "monitor/health.h"
#include "monitor/mainproc.h"
#include "monitor/monitor.h"
#include "monitor/mux.h"
#include "monitor/net_glue.h"
#include "util/log.h"
#include "util/util.h"

#define AGENT_OUT_LIMIT (16u * 1024 * 1024)

static void usage(FILE *f)
{
    fprintf(f, "usage: cocoon-vmm --box-dir DIR [--ready-fd N] [--lifeline-fd N] [--secrets-fd N]\n"
               "(--secrets-fd: NAME=VALUE lines of the box's secrets, read once at start, never stored)\n"
               "\n"
               "Runs one cocoon box: starts its microVM from DIR/config.json, serves\n"
               "DIR/ctl.sock, and stops the guest on SHUTDOWN, SIGTERM or when the lifeline fd\n"
               "closes. Writes \"ok <ready_ms>\" or \"error <message>\" to the ready fd.\n"
               "Normally started by libcocoon, not by hand.\n");
}

static int parse_fd(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 1 << 20 || fcntl((int)v, F_GETFD) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* Descriptors the caller leaked to us would stay open for the box's whole life (a
 * caller's captured stdout pipe would never see EOF), so everything but stdio and the
 * two fds we were given is closed first. */
static void close_inherited(int keep1, int keep2, int keep3)
{
    int keep[3] = {keep1, keep2, keep3};
    for (int i = 0; i < 3; i++) /* sorted */
        for (int k = i + 1; k < 3; k++)
            if (keep[k] < keep[i]) {
                int x = keep[i];
                keep[i] = keep[k];
                keep[k] = x;
            }
    int from = 3;
    for (int i = 0; i < 3; i++) {
        if (keep[i] < from)
            continue;
        if (keep[i] > from)
            syscall(SYS_close_range, from, keep[i] - 1, 0);
        from = keep[i] + 1;
    }
    syscall(SYS_close_range, from, ~0u, 0);
}

/* Once vmm.log is open, stdout/stderr go there too (unless a person is watching). */
static void redirect_stdio(int log)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        close(null);
    }
    if (!isatty(2))
        dup2(log, 2);
}

/* Our fd numbers 0-2 must be taken, or a socket landing there would become the child's stdio. */
static void ensure_stdio(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int n = open("/dev/null", O_RDWR);
        if (n >= 0 && n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
}

/* vmm.pid holds our pid under an exclusive lock for our whole life, so a second
 * monitor for the same box fails here instead of fighting over the files.
 * PID_LOCK_HELD: another monitor runs the box (its files are not ours to remove). */
enum { PID_LOCK_HELD = -2 };
static int lock_pid_file(struct vmm *v, char *err, size_t cap)
{
    /* A monitor that exits removes vmm.pid before it lets go of the lock: the file we
     * locked may be that one, already unlinked. Locked and still the file at the path,
     * or try again (a few times: each retry means another monitor just finished). */
    for (int tries = 0;; tries++) {
        v->pid_fd = openat(v->dirfd, "vmm.pid", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (v->pid_fd < 0) {
            snprintf(err, cap, "cannot create %s/vmm.pid: %s", v->box_dir, strerror(errno));
            return -1;
        }
        if (flock(v->pid_fd, LOCK_EX | LOCK_NB) < 0) {
            char other[32] = "";
            ssize_t n = pread(v->pid_fd, other, sizeof(other) - 1, 0);
            other[n > 0 ? n : 0] = 0;
            other[strcspn(other, "\n")] = 0;
            snprintf(err, cap, "box %s is already running (cocoon-vmm pid %s)", v->box_dir, other[0] ? other : "?");
            close(v->pid_fd);
            v->pid_fd = -1;
            return PID_LOCK_HELD;
        }
        struct stat held, now;
        if (fstat(v->pid_fd, &held) == 0 && fstatat(v->dirfd, "vmm.pid", &now, AT_SYMLINK_NOFOLLOW) == 0 &&
            held.st_ino == now.st_ino && held.st_dev == now.st_dev)
            break;
        close(v->pid_fd);
        v->pid_fd = -1;
        if (tries == 8) {
            snprintf(err, cap, "box %s: vmm.pid keeps being replaced while we lock it", v->box_dir);
            return -1;
        }
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(v->pid_fd, 0) < 0 || pwrite(v->pid_fd, buf, (size_t)n, 0) != n) {
        snprintf(err, cap, "cannot write %s/vmm.pid: %s", v->box_dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Each guest connection holds a host socket: the soft RLIMIT_NOFILE is raised to what
 * the network's caps and the monitor's own reserve need, within the hard limit. The
 * stack (in this process, whatever the backend) fits its caps under whatever that
 * gives (net_stack_new); the VMM child inherits the limit. */
static void raise_nofile(const struct vmm *v)
{
    struct rlimit rl;
    if (v->cfg.net.mode == NET_MODE_NONE || getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = net_config_fds_wanted(&v->cfg.net);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
            vmm_log("cannot raise RLIMIT_NOFILE: %s", strerror(errno));
    }
    vmm_log("descriptors: RLIMIT_NOFILE %llu (hard %llu), the network wants %llu", (unsigned long long)rl.rlim_cur,
            (unsigned long long)rl.rlim_max, (unsigned long long)want);
}

static int bind_ctl(struct vmm *v, char *err, size_t cap)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (util_unix_path(v->dirfd, "ctl.sock", v->ctl_path, sizeof(v->ctl_path)) < 0) {
        snprintf(err, cap, "ctl.sock path does not fit a unix socket address");
        return -1;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", v->ctl_path);
    v->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (v->listen_fd < 0) {
        snprintf(err, cap, "socket: %s", strerror(errno));
        return -1;
    }
    unlinkat(v->dirfd, "ctl.sock", 0); /* stale from a monitor that died: we hold the pid lock */
    mode_t old = umask(077);
    int rc = bind(v->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || listen(v->listen_fd, 128) < 0) {
        snprintf(err, cap, "cannot listen on %s/ctl.sock: %s", v->box_dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int setup_loop(struct vmm *v, char *err, size_t cap)
{
    v->w_signal.kind = W_SIGNAL;
    v->w_timer.kind = W_TIMER;
    v->w_agent.kind = W_AGENT;
    v->w_listen.kind = W_LISTEN;
    v->w_lifeline.kind = W_LIFELINE;
    v->w_child_out.kind = W_CHILD_OUT;
    v->epfd = epoll_create1(EPOLL_CLOEXEC);
    v->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (v->epfd < 0 || v->timerfd < 0) {
        snprintf(err, cap, "epoll/timerfd: %s", strerror(errno));
        return -1;
    }
    if (vmm_watch(v, v->sigfd, EPOLLIN, &v->w_signal) < 0 || vmm_watch(v, v->timerfd, EPOLLIN, &v->w_timer) < 0 ||
        (v->lifeline_fd >= 0 && vmm_watch(v, v->lifeline_fd, EPOLLIN, &v->w_lifeline) < 0)) {
        snprintf(err, cap, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Starts the VMM child with its channels: the agent's socketpair, the network link
 * (net_glue.c) and the console (console_log.c). */
static int start_child(struct vmm *v, char *err, size_t cap)
{
    int sv[2], outp[2];
    struct child_fds fds = {.agent = -1, .net = -1, .console = -1, .qmp = -1, .incoming = v->restore_fd};
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
        snprintf(err, cap, "cannot create the agent channel: %s", strerror(errno));
        return -1;
    }
    { /* QMP: QEMU's, or the kvm VMM's subset of it (src/kvm/control.h) */
        int qv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qv) < 0) {
            snprintf(err, cap, "cannot create the QMP channel: %s", strerror(errno));
            close(sv[0]);
            close(sv[1]);
            close(outp[0]);
            close(outp[1]);
            return -1;
        }
        qmp_init(&v->qmp, qv[0]);
        v->qmp.peer = v->backend->child;
        fds.qmp = qv[1];
        if (livesnap_open(v) < 0)
            vmm_log("live snapshots are not available: cannot create their timer");
    }
    /* a live snapshot the monitor did not finish (livesnap.c) left its new layer */
    int scan = openat(v->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = scan >= 0 ? fdopendir(scan) : NULL;
    for (struct dirent *e; d && (e = readdir(d));)
        if (livesnap_next_name_ok(e->d_name))
            unlinkat(v->dirfd, e->d_name, 0);
    if (d)
        closedir(d);
    else if (scan >= 0)
        close(scan);
    unlinkat(v->dirfd, LIVESNAP_MEMORY, 0);
    v->agent_fd = sv[0];
    v->child_out_fd = outp[0];
    fds.agent = sv[1];
    fds.out = outp[1];
    int rc = -1;
    /* everything that reads the host (the resolver's configuration, interface addresses)
     * happens before the jail hides it */
    static struct jail_plan jp;
    static struct jail_state js;
    if (console_log_open(v, &fds.console, err, cap) < 0 || net_glue_prepare(v, &fds.net, err, cap) < 0 ||
        net_glue_start(v, err, cap) < 0 || jail_setup_plan(v, &jp, err, cap) < 0 ||
        jail_setup_enter(v, &jp, &js, err, cap) < 0)
        goto out;
    fds.jail = jp.enabled;
    fds.fsize = jp.child_fsize;
    char line[8192];
    child_plan_describe(&v->plan, line, sizeof(line));
    vmm_log("backend %s, accelerator %s: %s", v->backend->name, v->plan.accel, v->plan.accel_reason);
    vmm_log("starting %s", line);
    v->t_spawn = util_now_ns(CLOCK_MONOTONIC);
    v->child_pid = child_spawn(&v->plan, v->dirfd, &fds, err, cap);
    util_set_nonblock(v->agent_fd, 1);
    util_set_nonblock(v->child_out_fd, 1);
    if (proto_conn_init(&v->agent, v->agent_fd, AGENT_OUT_LIMIT) < 0) {
        snprintf(err, cap, "out of memory");
        goto out;
    }
    if (v->child_pid < 0)
        goto out;
    vmm_log("%s: pid %d", v->backend->child, (int)v->child_pid);
    if (jail_setup_lock(v, &jp, err, cap) < 0)
        goto out;
    if (vmm_watch(v, v->agent_fd, EPOLLIN, &v->w_agent) < 0 ||
        vmm_watch(v, v->child_out_fd, EPOLLIN, &v->w_child_out) < 0) {
        snprintf(err, cap, "epoll_ctl: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    /* the child has its ends now (or never will) */
    close(fds.agent);
    close(fds.out);
    if (fds.qmp >= 0)
        close(fds.qmp);
    if (v->restore_fd >= 0) {
        close(v->restore_fd);
        v->restore_fd = -1;
    }
    if (fds.console >= 0)
        close(fds.console);
    if (fds.net >= 0)
        close(fds.net);
    return rc;
}

static int open_box_dir(struct vmm *v, const char *dir, int to_log, char *err, size_t cap)
{
    if (!realpath(dir, v->box_dir)) {
        snprintf(err, cap, "box directory %s: %s", dir, strerror(errno));
        return -1;
    }
    v->dirfd = open(v->box_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (v->dirfd < 0) {
        snprintf(err, cap, "box directory %s: %s", v->box_dir, strerror(errno));
        return -1;
    }
    v->parent_dirfd = openat(v->dirfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!to_log) /* a probe: its output is for the person who ran it */
        return 0;
    int log = vmm_log_open(v->dirfd, "vmm.log");
    if (log < 0) {
        snprintf(err, cap, "cannot open %s/vmm.log: %s", v->box_dir, strerror(errno));
        return -1;
    }
    redirect_stdio(log);
    return 0;
}

static int block_signals(struct vmm *v)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    v->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return v->sigfd < 0 ? -1 : 0;
}

static void cleanup(struct vmm *v, int own_files)
{
    net_glue_free(v);
    mainproc_close(v);
    health_close(v);
    detached_close(v);
    attach_close(v);
    console_log_close(v);
    mux_free(v->mux);
    v->mux = NULL;
    if (v->listen_fd >= 0)
        close(v->listen_fd);
    if (v->agent_fd >= 0)
        close(v->agent_fd);
    proto_conn_free(&v->agent);
    if (v->child_out_fd >= 0)
        close(v->child_out_fd);
    qmp_close(&v->qmp);
    livesnap_close(v);
    free(v->held);
    if (own_files && v->dirfd >= 0) {
        unlinkat(v->dirfd, "ctl.sock", 0);
        unlinkat(v->dirfd, "vmm.pid", 0);
    }
    if (own_files && v->lifeline_gone && v->cfg.ephemeral) {
        vmm_log("removing the ephemeral box %s", v->box_dir);
        /* In the jail the box directory is a mount point: its contents go through the
         * path, the directory itself through the parent opened before the jail. */
        const char *name = strrchr(v->box_dir, '/');
        if (util_rm_rf(v->box_dir) < 0) {
            int first = errno;
            if (!name || v->parent_dirfd < 0 || unlinkat(v->parent_dirfd, name + 1, AT_REMOVEDIR) < 0)
                vmm_log("cannot remove %s: %s (then %s)", v->box_dir, strerror(first), strerror(errno));
        }
    } else {
        vmm_log("cocoon-vmm exits with status %d", v->failed ? 1 : 0);
    }
    child_plan_free(&v->plan);
    if (v->pid_fd >= 0)
        close(v->pid_fd);
    vmm_log_set_fd(2); /* closes vmm.log */
    int fds[] = {v->epfd, v->sigfd, v->timerfd, v->dirfd, v->parent_dirfd, v->ready_fd, v->lifeline_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* The probe needs what a starting monitor has (box directory, config, child plan)
 * without the monitor's files (vmm.pid, ctl.sock) or a VM. */
static int jail_probe_run(struct vmm *v, const char *dir, const char *attack)
{
    char err[PATH_MAX * 2] = "";
    if (open_box_dir(v, dir, 0, err, sizeof(err)) < 0 || box_config_load(v->box_dir, &v->cfg, err, sizeof(err)) < 0 ||
        !(v->backend = backend_choose(&v->cfg, err, sizeof(err), err, sizeof(err))) ||
        child_plan_build(&v->plan, v->backend, &v->cfg, v->box_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "cocoon-vmm --jail-probe: %s\n", err);
        child_plan_free(&v->plan);
        free(v);
        return 2;
    }
    int rc = jail_probe_main(v, attack, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "cocoon-vmm --jail-probe: %s\n", err);
    child_plan_free(&v->plan);
    free(v);
    return rc < 0 ? 2 : rc;
}

/* Fails the start before the child runs: the message goes to the log and the ready fd. */
static int early_error(struct vmm *v, const char *msg)
{
    v->failed = 1;
    vmm_log("cannot start: %s", msg);
    if (vmm_log_fd() != 2 && isatty(2))
        fprintf(stderr, "cocoon-vmm: %s\n", msg);
    vmm_ready_line(v, "error %s", msg);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"box-dir", required_argument, NULL, 'd'},
                                         {"ready-fd", required_argument, NULL, 'r'},
                                         {"lifeline-fd", required_argument, NULL, 'l'},
                                         {"secrets-fd", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"jail-probe", required_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    ensure_stdio();
    if (argc == 4 && !strcmp(argv[1], "--kvm-run"))
        return kvm_run_main(argv[2], argv[3]); /* the kvm backend's child (src/kvm/main.c) */
    struct vmm *v = calloc(1, sizeof(*v));
    if (!v)
        return 1;
    v->t_start = util_now_ns(CLOCK_MONOTONIC);
    v->ready_fd = v->lifeline_fd = v->secrets_fd = v->dirfd = v->parent_dirfd = v->pid_fd = v->epfd = v->sigfd =
        v->timerfd = -1;
    v->listen_fd = v->agent_fd = v->child_out_fd = -1;
    qmp_init(&v->qmp, -1);
    v->restore_fd = -1;
    const char *dir = NULL, *probe = NULL;
    int c, rc = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'j': probe = optarg; break;
        case 'r':
        case 'l':
        case 's':
            if (parse_fd(optarg, c == 'r' ? &v->ready_fd : c == 'l' ? &v->lifeline_fd : &v->secrets_fd) < 0) {
                fprintf(stderr, "cocoon-vmm: --%s %s is not an open file descriptor\n",
                        c == 'r'   ? "ready-fd"
                        : c == 'l' ? "lifeline-fd"
                                   : "secrets-fd",
                        optarg);
                free(v);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            free(v);
            return 0;
        case 'V':
            printf("cocoon-vmm %s (%s)\n", COCOON_VERSION, COCOON_GIT_REV);
            free(v);
            return 0;
        default:
            usage(stderr);
            free(v);
            return 2;
        }
    }
    if (probe) /* --jail-probe DIR [ATTACK]: the jail of box DIR seen from inside */
        return jail_probe_run(v, probe, optind < argc ? argv[optind] : NULL);
    if (!dir || optind != argc) {
        usage(stderr);
        free(v);
        return 2;
    }
    close_inherited(v->ready_fd, v->lifeline_fd, v->secrets_fd);
    if (v->secrets_fd >= 0)
        util_set_cloexec(v->secrets_fd, 1);
    if (v->ready_fd >= 0)
        util_set_cloexec(v->ready_fd, 1);
    if (v->lifeline_fd >= 0) {
        util_set_cloexec(v->lifeline_fd, 1);
        util_set_nonblock(v->lifeline_fd, 1);
    }
    char err[PATH_MAX * 2] = "";
    int own_files = 0;
    if (block_signals(v) < 0) {
        snprintf(err, sizeof(err), "signalfd: %s", strerror(errno));
        rc = early_error(v, err);
        goto out;
    }
    if (open_box_dir(v, dir, 1, err, sizeof(err)) < 0) {
        rc = early_error(v, err);
        goto out;
    }
    setsid(); /* no terminal signals: a detached box outlives the shell that made it */
    if (chdir("/") < 0)
        vmm_log("chdir /: %s", strerror(errno));
    vmm_log("cocoon-vmm %s starting for %s", COCOON_VERSION, v->box_dir);
    util_test_point("MONITOR_OPENED");
    int lk = lock_pid_file(v, err, sizeof(err));
    if (lk < 0) {
        rc = early_error(v, err);
        goto out;
    }
    own_files = 1;
    util_test_point("MONITOR_LOCKED");
    char cfgerr[PATH_MAX * 2];
    char backend_why[320] = "";
    if (box_config_load(v->box_dir, &v->cfg, cfgerr, sizeof(cfgerr)) < 0 ||
        !(v->backend = backend_choose(&v->cfg, backend_why, sizeof(backend_why), cfgerr, sizeof(cfgerr))) ||
        child_plan_build(&v->plan, v->backend, &v->cfg, v->box_dir, cfgerr, sizeof(cfgerr)) < 0) {
        rc = early_error(v, cfgerr);
        goto out;
    }
    vmm_log("%s", backend_why);
    livesnap_restore_prepare(v);
    if (mainproc_open(v, cfgerr, sizeof(cfgerr)) < 0 || health_open(v, cfgerr, sizeof(cfgerr)) < 0 ||
        detached_open(v, cfgerr, sizeof(cfgerr)) < 0) {
        rc = early_error(v, cfgerr);
        goto out;
    }
    raise_nofile(v);
    v->mux = mux_new(v);
    if (!v->mux || setup_loop(v, err, sizeof(err)) < 0 || bind_ctl(v, err, sizeof(err)) < 0 ||
        start_child(v, err, sizeof(err)) < 0) {
        if (!err[0])
            snprintf(err, sizeof(err), "out of memory");
        rc = early_error(v, err);
        goto out;
    }
    util_test_point("MONITOR_CHILD");
    vmm_arm_timer(v, v->cfg.boot_timeout_ms);
    v->state = ST_BOOTING;
    if (v->restoring && livesnap_restore_begin(v, err, sizeof(err)) < 0)
        handshake_fail(v, "the fork could not be restored from its memory snapshot: %s", err);
    if (vmm_run(v) < 0)
        v->failed = 1;
    util_test_point("MONITOR_EXIT");
    rc = v->failed ? 1 : 0;
out:
    child_kill(v);
    cleanup(v, own_files);
    free(v);
    return rc;
}
