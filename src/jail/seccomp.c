/* System call filters per role (jail.h), built with libseccomp. Allow lists: what is
 * not named is refused. A refused call raises SIGSYS; the handler writes one line
 * naming the call to the report fd and ends the process with JAIL_SECCOMP_EXIT, so the
 * box stops with a reason instead of a mystery. Arguments are checked where that is
 * what makes a call safe: socket families, ioctl request numbers, no executable
 * memory, signals only to ourselves and our child. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jail/jail.h"

/* libseccomp's SCMP_A0..A5 build a struct scmp_arg_cmp from a compound literal that
 * leaves datum_b out for plain comparisons; clang warns on every use. The field is
 * zero either way, as the library means. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* Names for the SIGSYS report, resolved before the filter is loaded (the handler may not
 * allocate). */
#define MAX_NR 512
static const char *names[MAX_NR];
static int report_fd = 2;
static const char *role_name = "?";

static void put(char *buf, size_t cap, size_t *n, const char *s)
{
    while (*s && *n + 1 < cap)
        buf[(*n)++] = *s++;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)uc;
    char line[256], num[16];
    size_t n = 0;
    int nr = si->si_syscall, k = 0;
    unsigned v = nr < 0 ? 0 : (unsigned)nr;
    char tmp[16];
    do
        tmp[k++] = (char)('0' + v % 10);
    while ((v /= 10) && k < 15);
    for (int i = 0; i < k; i++)
        num[i] = tmp[k - 1 - i];
    num[k] = 0;
    put(line, sizeof(line), &n, "cocoon-vmm: the ");
    put(line, sizeof(line), &n, role_name);
    put(line, sizeof(line), &n, " made a forbidden system call: ");
    put(line, sizeof(line), &n, nr >= 0 && nr < MAX_NR && names[nr] ? names[nr] : "?");
    put(line, sizeof(line), &n, " (");
    put(line, sizeof(line), &n, num);
    /* where: the calling instruction, for addr2line on the binary (a bug report's lead) */
    char at[2 + 16 + 1] = "0x";
    uintptr_t a = (uintptr_t)si->si_call_addr;
    for (int i = 0; i < 16; i++)
        at[2 + i] = "0123456789abcdef"[(a >> (60 - 4 * i)) & 0xf];
    at[18] = 0;
    put(line, sizeof(line), &n, " at ");
    put(line, sizeof(line), &n, at);
    put(line, sizeof(line), &n, "); the box is stopped (seccomp)\n");
    ssize_t w = write(report_fd, line, n);
    (void)w;
    _exit(JAIL_SECCOMP_EXIT);
}

static int install_handler(int fd, const char *role)
{
    /* once: a filter stacked on another one (the kvm VMM's roles) needs no second pass
     * over the numbers that have no name */
    static int names_resolved;
    for (int nr = 0; nr < MAX_NR && !names_resolved; nr++)
        names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr); /* kept: the handler reads them */
    names_resolved = 1;
    report_fd = fd;
    role_name = role;
    /* The C library loads the time zone (/etc/localtime) on its first gmtime_r or
     * localtime_r, the first log line's timestamp: done now, before opens are refused,
     * and once (tzset() retries a missing file, and a filter stacked on another one
     * must not open anything). */
    static int tz_loaded;
    if (!tz_loaded) {
        tzset();
        tz_loaded = 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGSYS, &sa, NULL);
}

#define ALLOW(name) seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(name), 0)

/* What every role needs: memory (never executable), time, threads' futexes, closing,
 * plain reads and writes on descriptors it already holds, its own signals, exit. */
static int allow_common(scmp_filter_ctx ctx)
{
    int rc = 0;
    static const int plain[] = {
        SCMP_SYS(read),
        SCMP_SYS(write),
        SCMP_SYS(readv),
        SCMP_SYS(writev),
        SCMP_SYS(pread64),
        SCMP_SYS(pwrite64),
        SCMP_SYS(preadv),
        SCMP_SYS(pwritev),
        SCMP_SYS(close),
        SCMP_SYS(fstat),
        SCMP_SYS(newfstatat),
        SCMP_SYS(statx),
        SCMP_SYS(lseek),
        SCMP_SYS(brk),
        SCMP_SYS(munmap),
        SCMP_SYS(mremap),
        SCMP_SYS(madvise),
        SCMP_SYS(futex),
        SCMP_SYS(clock_gettime),
        SCMP_SYS(clock_nanosleep),
        SCMP_SYS(nanosleep),
        SCMP_SYS(gettimeofday),
        SCMP_SYS(getpid),
        SCMP_SYS(gettid),
        SCMP_SYS(getuid),
        SCMP_SYS(geteuid),
        SCMP_SYS(getgid),
        SCMP_SYS(getegid),
        SCMP_SYS(rt_sigreturn),
        SCMP_SYS(rt_sigprocmask),
        SCMP_SYS(rt_sigaction),
        SCMP_SYS(sigaltstack),
        SCMP_SYS(exit),
        SCMP_SYS(exit_group),
        SCMP_SYS(restart_syscall),
        SCMP_SYS(sched_yield),
        SCMP_SYS(getrandom),
        SCMP_SYS(epoll_wait),
        SCMP_SYS(epoll_pwait),
        SCMP_SYS(epoll_ctl),
        SCMP_SYS(poll),
        SCMP_SYS(ppoll),
        SCMP_SYS(fcntl),
        SCMP_SYS(dup),
        SCMP_SYS(dup3),
        SCMP_SYS(sendmsg),
        SCMP_SYS(recvmsg),
        SCMP_SYS(sendto),
        SCMP_SYS(recvfrom),
        SCMP_SYS(fdatasync),
        SCMP_SYS(fsync),
        SCMP_SYS(fallocate),
        SCMP_SYS(ftruncate),
        SCMP_SYS(getrlimit),
        SCMP_SYS(prlimit64),
        SCMP_SYS(sched_getaffinity),
        SCMP_SYS(rseq),
        SCMP_SYS(set_robust_list),
        SCMP_SYS(membarrier),
        SCMP_SYS(uname),
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, plain[i], 0);
    /* memory: never writable and executable, never made executable later */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    /* signals: to this process only (threads kick each other with tgkill) */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
#if defined(__SANITIZE_ADDRESS__)
    /* The sanitizer runtime: its reports and, at exit, LeakSanitizer, which stops the
     * process's threads with a ptrace helper thread. Sanitizer builds only. */
    static const int san[] = {SCMP_SYS(open),     SCMP_SYS(getdents),   SCMP_SYS(openat),
                              SCMP_SYS(readlink), SCMP_SYS(readlinkat), SCMP_SYS(ptrace),
                              SCMP_SYS(clone),    SCMP_SYS(clone3),     SCMP_SYS(prctl),
                              SCMP_SYS(wait4),    SCMP_SYS(getppid),    SCMP_SYS(sched_setaffinity),
                              SCMP_SYS(mlock),    SCMP_SYS(getdents64), SCMP_SYS(setrlimit),
                              SCMP_SYS(pipe2),    SCMP_SYS(ioctl)};
    for (size_t i = 0; i < sizeof(san) / sizeof(san[0]); i++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, san[i], 0);
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 0);
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 0);
#endif
    return rc;
}

/* The monitor: its event loop, the control socket, the agent channel, the network
 * stack's host sockets (IPv4/IPv6 only), its logs in the box directory (rotation), and
 * the child it started (signals, reaping). No exec, no new processes. */
static int allow_monitor(scmp_filter_ctx ctx, pid_t child)
{
    int rc = 0;
    static const int plain[] = {
        SCMP_SYS(accept4),     SCMP_SYS(connect),         SCMP_SYS(bind),
        SCMP_SYS(listen),      SCMP_SYS(getsockopt),      SCMP_SYS(setsockopt),
        SCMP_SYS(getsockname), SCMP_SYS(getpeername),     SCMP_SYS(shutdown),
        SCMP_SYS(openat),      SCMP_SYS(renameat),        SCMP_SYS(renameat2),
        SCMP_SYS(unlinkat),    SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
        SCMP_SYS(wait4),       SCMP_SYS(waitid),          SCMP_SYS(sendmmsg),
        SCMP_SYS(recvmmsg),    SCMP_SYS(pipe2),
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, plain[i], 0);
    static const int families[] = {AF_INET, AF_INET6, AF_UNIX};
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
        rc |=
            seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, FIONREAD));
    if (child > 0) { /* the child and its process group */
        /* pid_t is 32 bits: the C library's kill() leaves the register's upper half
         * zero, so -child must be compared as 32 bits, never sign-extended to 64. */
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)child));
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)-child));
    }
    return rc;
}

/* The kvm VMM: KVM's run loop and the ioctls a running machine uses (interrupt lines,
 * irqfd and ioeventfd teardown, reading its state for a snapshot), eventfd writes
 * (irqfd, wake-ups), and device I/O on descriptors opened before the filter or passed
 * by the monitor. No file opens, no sockets, no new processes. */
static int allow_kvm(scmp_filter_ctx ctx)
{
    int rc = 0;
    static const unsigned long ioctls[] = {
        KVM_RUN, KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_SIGNAL_MASK,
        /* a full snapshot of the paused machine (kvm/cpustate.c): reads only */
        KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_FPU, KVM_GET_XSAVE, KVM_GET_XCRS, KVM_GET_MSRS, KVM_GET_MP_STATE,
        KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_GET_DEBUGREGS, KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_CLOCK};
    for (size_t i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]); i++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, ioctls[i]));
    rc |= ALLOW(eventfd2);
    rc |= ALLOW(mincore); /* a capture of a restored machine skips what it never touched (kvm/snapfile.c) */
    /* threads (the vCPUs start after the filter), and nothing else: clone3's flags are
     * out of a filter's reach, so it fails as unknown and the C library falls back */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
    /* threads add their role's filter on top (filters only ever narrow) */
    rc |= ALLOW(seccomp);
    return rc;
}

int jail_seccomp(enum jail_role role, int fd, pid_t allow_pid, char *err, size_t cap)
{
    static const char *const role_names[] = {"monitor", "kvm VMM", "kvm VMM"};
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx) {
        snprintf(err, cap, "seccomp: cannot create a filter");
        return -1;
    }
    int rc = 0;
    if (role == JAIL_ROLE_KVM_IO) {
        /* a second filter on top of the kvm one: everything but KVM_RUN */
        seccomp_release(ctx);
        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx) {
            snprintf(err, cap, "seccomp: cannot create a filter");
            return -1;
        }
        rc = seccomp_rule_add(ctx, SCMP_ACT_TRAP, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, KVM_RUN));
        /* no_new_privs is set already, and the filter below allows no prctl but
         * PR_SET_NAME: libseccomp must not set it again while loading this one */
        rc |= seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    } else {
        rc = allow_common(ctx) | (role == JAIL_ROLE_MONITOR ? allow_monitor(ctx, allow_pid) : allow_kvm(ctx));
        if (role == JAIL_ROLE_KVM)
            rc |= seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1); /* every thread of the VMM at once */
    }
    if (rc == 0 && install_handler(fd, role_names[role]) < 0)
        rc = -errno;
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc) {
        snprintf(err, cap, "seccomp: cannot load the %s filter: %s", role_names[role], strerror(rc < 0 ? -rc : rc));
        return -1;
    }
    return 0;
}
