/* Unit tests of the seccomp filters (src/jail/seccomp.c) as the C library calls the
 * kernel: the monitor must be able to kill its VMM child and the child's process group
 * (every hard stop depends on it), and nobody else; the kvm VMM's threads must be able
 * to add their role's filter on top of the process's. Each case runs in a forked
 * process, since a filter cannot be removed. (The sanitizer build allows prctl for its
 * runtime, so the stacking case can only fail in a plain build.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/jail.h"
#include "util/log.h"

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

static pid_t runner; /* the test runner: not the filtered process's to signal */

static void kill_a_stranger(pid_t child)
{
    kill(child, SIGKILL);
    kill(runner, 0);
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
    runner = getpid();
    int status = under_monitor_filter(kill_a_stranger);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), JAIL_SECCOMP_EXIT);
}

/* The kvm VMM's filters as its threads install them, then a log line (the first one
 * may come after the filters). */
static void test_kvm_filters_stack_and_log(void **state)
{
    pid_t p = fork();
    if (p == 0) {
        char err[256];
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        /* as in the jail: no /etc/localtime (the C library then looks for it anew at
         * every tzset) */
        unsetenv("TZ");
        if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
            mount("tmpfs", "/etc", "tmpfs", 0, NULL);
        if (jail_seccomp(JAIL_ROLE_KVM, 2, 0, err, sizeof(err)) < 0 ||
            jail_seccomp(JAIL_ROLE_KVM_IO, 2, 0, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            _exit(2);
        }
        /* the first log line after the filter: its timestamp must not load the time zone */
        vmm_log_set_fd(null_fd);
        vmm_log("a line from a filtered thread");
        _exit(0);
    }
    int status = 0;
    waitpid(p, &status, 0);
    assert_true(WIFEXITED(status));
    /* JAIL_SECCOMP_EXIT: loading the second filter made a call the first forbids */
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monitor_may_kill_its_child_and_group),
        cmocka_unit_test(test_monitor_may_not_signal_others),
        cmocka_unit_test(test_kvm_filters_stack_and_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
