/* Starts one command: pipes or a pty, a new session, the requested user, env and
 * working directory. Failures in the child before exec travel back through a
 * close-on-exec pipe so the host gets a real errno and message, not just exit 127. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum child_stage { ST_PTY = 1, ST_CREDS, ST_CHDIR, ST_EXEC };
struct child_report {
    int stage;
    int err;
};

static rlim_t base_nofile = 1024;

void spawn_set_base_nofile(unsigned long soft) { base_nofile = (rlim_t)soft; }

static int env_has(char **env, const char *key)
{
    size_t k = strlen(key);
    for (; *env; env++)
        if (strncmp(*env, key, k) == 0 && (*env)[k] == '=')
            return 1;
    return 0;
}

struct env_extra {
    char home[300];
    char host[100];
};

/* The EXEC env plus what a login would have set; strings stay owned by m and x. */
static char **build_env(const struct proto_exec *m, const struct user_cred *c, struct env_extra *x)
{
    char *const *box = trust_env(); /* the box's own variables (BOX_TRUST) */
    size_t nbox = 0;
    while (box[nbox])
        nbox++;
    char **env = calloc(m->envc + nbox + 5, sizeof(char *));
    if (!env)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < m->envc; i++)
        env[n++] = m->env[i];
    for (size_t i = 0; i < nbox; i++) {
        size_t k = (size_t)(strchr(box[i], '=') - box[i]);
        char key[256];
        if (k >= sizeof(key))
            continue;
        memcpy(key, box[i], k);
        key[k] = 0;
        if (!env_has(m->env, key))
            env[n++] = box[i];
    }
    if (!env_has(m->env, "PATH"))
        env[n++] = DEFAULT_PATH;
    if (!env_has(m->env, "HOME")) {
        snprintf(x->home, sizeof(x->home), "HOME=%s", c->home);
        env[n++] = x->home;
    }
    char name[65] = "";
    /* "(none)" is the kernel's placeholder when CONFIG named no host. */
    if (!env_has(m->env, "HOSTNAME") && gethostname(name, sizeof(name) - 1) == 0 && name[0] &&
        strcmp(name, "(none)") != 0) {
        snprintf(x->host, sizeof(x->host), "HOSTNAME=%s", name);
        env[n++] = x->host;
    }
    if (m->tty && !env_has(m->env, "TERM"))
        env[n++] = "TERM=xterm";
    env[n] = NULL;
    return env;
}

static _Noreturn void child_fail(int report_fd, int stage)
{
    struct child_report rep = {stage, errno};
    ssize_t w = write(report_fd, &rep, sizeof(rep));
    (void)w;
    _exit(rep.err == ENOENT ? 127 : 126);
}

struct child_plan {
    const struct proto_exec *m;
    const struct user_cred *cred;
    char **env;
    const char *slave; /* pty slave path, or NULL for pipes */
    int in_r, out_w, err_w, report_w;
};

/* Everything here is a system call or a write to the child's own stack: the child may
 * share the agent's memory (cgroup_vfork). */
static _Noreturn void child_main(const struct child_plan *p)
{
    /* PID 1 blocks and ignores signals; a command must start with defaults. */
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid(); /* its own session and process group: SIGNAL and timeouts hit the whole tree */

    if (p->slave) {
        int s = open(p->slave, O_RDWR);
        if (s < 0 || ioctl(s, TIOCSCTTY, 0) != 0)
            child_fail(p->report_w, ST_PTY);
        if (dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0)
            child_fail(p->report_w, ST_PTY);
        if (s > 2)
            close(s);
    } else if (dup2(p->in_r, 0) < 0 || dup2(p->out_w, 1) < 0 || dup2(p->err_w, 2) < 0) {
        child_fail(p->report_w, ST_PTY);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != base_nofile) {
        rl.rlim_cur = base_nofile;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (setgroups((size_t)p->cred->ngroups, p->cred->groups) != 0 || setgid(p->cred->gid) != 0 ||
        setuid(p->cred->uid) != 0)
        child_fail(p->report_w, ST_CREDS);
    if (chdir(p->m->cwd[0] ? p->m->cwd : "/") != 0)
        child_fail(p->report_w, ST_CHDIR);
    /* environ is the command's (spawn_exec set it): execvp searches its PATH. */
    execvp(p->m->argv[0], p->m->argv);
    child_fail(p->report_w, ST_EXEC);
}

static int child_start(void *plan) { child_main(plan); }

/* Messages read like `exec "foo": No such file or directory`. */
static void fail(struct spawn_result *r, int code, const char *op, const char *what)
{
    r->err_code = code;
    if (what)
        snprintf(r->message, sizeof(r->message), "%s \"%.300s\": %s", op, what, strerror(code));
    else
        snprintf(r->message, sizeof(r->message), "%s: %s", op, strerror(code));
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int open_pty(const struct proto_exec *m, char *slave, size_t cap)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return -1;
    if (grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, slave, cap) != 0) {
        int e = errno;
        close(master);
        errno = e;
        return -1;
    }
    struct winsize ws = {.ws_row = (unsigned short)(m->rows ? m->rows : 24),
                         .ws_col = (unsigned short)(m->cols ? m->cols : 80)};
    ioctl(master, TIOCSWINSZ, &ws);
    return master;
}

void spawn_exec(const struct proto_exec *m, struct spawn_result *r, struct exec_trace *trace)
{
    memset(r, 0, sizeof(*r));
    r->pid = -1;
    r->in_fd = r->out_fd = r->err_fd = r->pty_fd = r->out_hold = r->err_hold = -1;
    r->cg.fd = r->cg.events_fd = -1;

    struct user_cred cred;
    if (user_resolve(m->user, &cred, r->message, sizeof(r->message)) != 0) {
        r->err_code = EINVAL;
        return;
    }
    struct env_extra extra;
    char **env = build_env(m, &cred, &extra);
    if (!env) {
        fail(r, ENOMEM, "environment", NULL);
        return;
    }
    trace_mark(trace, TRACE_USER);

    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
    char slave[128];
    struct child_plan plan = {.m = m, .cred = &cred, .env = env, .slave = NULL};
    if (m->tty) {
        r->pty_fd = open_pty(m, slave, sizeof(slave));
        if (r->pty_fd < 0) {
            fail(r, errno, "pty", NULL);
            goto out;
        }
        plan.slave = slave;
    } else if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        fail(r, errno, "pipe", NULL);
        goto out;
    }
    if (pipe2(rep, O_CLOEXEC) != 0) {
        fail(r, errno, "pipe", NULL);
        goto out;
    }
    plan.in_r = in[0];
    plan.out_w = out[1];
    plan.err_w = err[1];
    plan.report_w = rep[1];
    trace_mark(trace, TRACE_PIPES);

    /* The child shares the agent's memory until it execs (cgroup_vfork): it may write
     * nothing of the agent's, so the command's environment is put in place here, for
     * execvp's PATH search and the program, and taken back once the child is gone. */
    char **agent_env = environ;
    environ = env;
    pid_t pid = cgroup_vfork(&r->cg, child_start, &plan);
    environ = agent_env;
    if (pid < 0) {
        fail(r, errno, "fork", NULL);
        goto out;
    }
    r->pid = pid;
    trace_mark(trace, TRACE_FORKED);
    close_fd(&rep[1]);
    struct child_report cr;
    ssize_t got;
    do
        got = read(rep[0], &cr, sizeof(cr));
    while (got < 0 && errno == EINTR);
    trace_mark(trace, TRACE_EXECED);
    if (got == (ssize_t)sizeof(cr)) {
        switch (cr.stage) {
        case ST_PTY: fail(r, cr.err, "pty", slave); break;
        case ST_CREDS: fail(r, cr.err, "set user", m->user[0] ? m->user : "root"); break;
        case ST_CHDIR: fail(r, cr.err, "chdir", m->cwd[0] ? m->cwd : "/"); break;
        default: fail(r, cr.err, "exec", m->argv[0]); break;
        }
        goto out;
    }
    /* Running: keep the parent's ends, non-blocking for the poll loop. */
    if (m->tty) {
        r->out_fd = r->pty_fd;
        r->in_fd = fcntl(r->pty_fd, F_DUPFD_CLOEXEC, 3); /* closed alone at STDIN_EOF */
        fcntl(r->pty_fd, F_SETFL, O_NONBLOCK | O_RDWR);
        r->pty_fd = -1;
    } else {
        r->in_fd = in[1];
        r->out_fd = out[0];
        r->err_fd = err[0];
        r->out_hold = out[1];
        r->err_hold = err[1];
        in[1] = out[0] = err[0] = out[1] = err[1] = -1;
        fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
        fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
        fcntl(r->err_fd, F_SETFL, O_NONBLOCK);
    }
out:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&err[i]);
        close_fd(&rep[i]);
    }
    if (r->err_code)
        close_fd(&r->pty_fd);
    free(env);
}
