/* Unit tests of the monitor's seccomp filter (src/jail/seccomp.c) as the C library
 * calls the kernel: the monitor must be able to kill its VMM child and the child's
 * process group (every hard stop depends on it), and nobody else. Each case runs in a
 * forked process, since a filter cannot be removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/jail.h"

/* A stand-in for the VMM child: the leader of its own process group, like QEMU. */
static pid_t spawn_child(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        for (;;)
            pause();
    }
    setpgid(pid, pid);
    return pid;
}

/* Runs fn under the monitor's filter in a fresh process; its wait status. */
static int under_monitor_filter(void (*fn)(pid_t child))
{
    pid_t p = fork();
    if (p == 0) {
        pid_t child = spawn_child();
        char err[256];
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (jail_seccomp(JAIL_ROLE_MONITOR, 2, child, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            kill(child, SIGKILL);
            _exit(2);
        }
        fn(child);
        _exit(0);
    }
    int status = 0;
    waitpid(p, &status, 0);
    return status;
}

static void kill_group_and_child(pid_t child)
{
    /* the monitor's kill sequence (lifecycle.c child_kill): the group first */
    if (kill(-child, SIGKILL) != 0 || kill(child, SIGKILL) != 0)
        _exit(3);
    int st;
    waitpid(child, &st, 0);
}

static void kill_a_stranger(pid_t child)
{
    kill(child, SIGKILL);
    kill(getppid(), 0); /* the test runner: not ours to signal */
}

static void test_monitor_may_kill_its_child_and_group(void **state)
{
    int status = under_monitor_filter(kill_group_and_child);
    assert_true(WIFEXITED(status));
    /* JAIL_SECCOMP_EXIT here means kill(-pgid) was refused by the filter */
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_monitor_may_not_signal_others(void **state)
{
    int status = under_monitor_filter(kill_a_stranger);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), JAIL_SECCOMP_EXIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monitor_may_kill_its_child_and_group),
        cmocka_unit_test(test_monitor_may_not_signal_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
