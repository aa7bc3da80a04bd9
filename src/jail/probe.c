/* What the jail can use on this host, for `cocoon doctor`: each namespace is tried in a
 * throwaway child process, seccomp is asked for, and the cgroup v2 delegation checked. */
#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/jail.h"

int jail_cgroup_self(char *buf, size_t cap, char *why, size_t whycap);

/* 1 when a child can unshare flags (after a user namespace when asked). */
static int try_unshare(int with_user, int flags)
{
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        if (with_user && unshare(CLONE_NEWUSER) < 0)
            _exit(1);
        _exit(flags && unshare(flags) < 0 ? 1 : 0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void jail_probe(struct jail_probe *p)
{
    memset(p, 0, sizeof(*p));
    int root = geteuid() == 0;
    p->userns = try_unshare(1, 0);
    int base = p->userns || !root;
    p->mountns = try_unshare(base && p->userns, CLONE_NEWNS);
    p->pidns = try_unshare(base && p->userns, CLONE_NEWPID);
    p->netns = try_unshare(base && p->userns, CLONE_NEWNET);
    p->seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
    char cg[4096], why[384] = "";
    p->cgroup2 = jail_cgroup_self(cg, sizeof(cg), why, sizeof(why)) == 0;
    snprintf(p->detail, sizeof(p->detail), "%s%s%s", p->userns ? "" : "user namespaces are not allowed here",
             !p->userns && !p->cgroup2 ? "; " : "", p->cgroup2 ? "" : why);
}
