/* New processes for the agent, born in a given cgroup (clone3 CLONE_INTO_CGROUP): like
 * fork(), or like vfork() for a child that only sets itself up and execs. The vfork
 * kind shares the agent's memory instead of copying its page tables and then taking a
 * copy-on-write fault for every page either side writes: about 1.4 ms per command
 * under TCG. It needs a few instructions of assembly (the child starts on a stack of
 * its own), so it exists for x86_64 and aarch64; elsewhere it reports ENOSYS. */
#include "agent/agent.h"

#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The vfork child's stack: execvp's path search and the child's setup need a few KiB. */
#define CHILD_STACK (256u * 1024u)
#define GUARD_PAGE 4096u

static void fill_args(struct clone_args *args, int cgroup_fd)
{
    memset(args, 0, sizeof(*args));
    args->exit_signal = SIGCHLD;
    if (cgroup_fd >= 0) {
        args->flags = CLONE_INTO_CGROUP;
        args->cgroup = (uint64_t)cgroup_fd;
    }
}

/* Raw clone3 with fork's semantics: the agent is single-threaded, so no lock of libc's
 * is held across it. */
pid_t clone_fork(int cgroup_fd)
{
    if (cgroup_fd < 0)
        return fork();
    struct clone_args args;
    fill_args(&args, cgroup_fd);
    return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

#if defined(__x86_64__) || defined(__aarch64__)

/* The stack, mapped once with a guard page below it. One is enough: the agent sleeps
 * while a vfork child runs, and the child leaves it when it execs or exits. */
static void *child_stack(void)
{
    static uint8_t *base;
    if (!base) {
        void *m = mmap(NULL, CHILD_STACK + GUARD_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                       -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        if (mprotect(m, GUARD_PAGE, PROT_NONE) != 0) {
            munmap(m, CHILD_STACK + GUARD_PAGE);
            return NULL;
        }
        base = (uint8_t *)m + GUARD_PAGE;
    }
    return base;
}

/* clone3 leaves the child on the new stack right after the system call, so the child's
 * side must not touch the frame it came from: it calls fn(arg) from registers the
 * kernel preserved and exits with its result. */
__attribute__((noinline)) static long clone3_call(struct clone_args *args, int (*fn)(void *), void *arg)
{
#if defined(__x86_64__)
    register long rax __asm__("rax") = SYS_clone3;
    register long rdi __asm__("rdi") = (long)args;
    register long rsi __asm__("rsi") = (long)sizeof(*args);
    register long r12 __asm__("r12") = (long)fn;
    register long r13 __asm__("r13") = (long)arg;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xor %%ebp, %%ebp\n\t" /* the child: an empty call chain on its own stack */
                     "mov %%r13, %%rdi\n\t"
                     "call *%%r12\n\t"
                     "mov %%eax, %%edi\n\t"
                     "mov %[exit_nr], %%eax\n\t"
                     "syscall\n\t"
                     "hlt\n\t"
                     "1:\n\t"
                     : "+r"(rax)
                     : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13), [exit_nr] "i"(SYS_exit)
                     : "rcx", "r11", "memory", "cc");
    return rax;
#else
    register long x8 __asm__("x8") = SYS_clone3;
    register long x0 __asm__("x0") = (long)args;
    register long x1 __asm__("x1") = (long)sizeof(*args);
    register long x19 __asm__("x19") = (long)fn;
    register long x20 __asm__("x20") = (long)arg;
    __asm__ volatile("svc #0\n\t"
                     "cbnz x0, 1f\n\t"
                     "mov x29, xzr\n\t" /* the child: an empty call chain on its own stack */
                     "mov x30, xzr\n\t"
                     "mov x0, x20\n\t"
                     "blr x19\n\t"
                     "mov x8, %[exit_nr]\n\t"
                     "svc #0\n\t"
                     "brk #0\n\t"
                     "1:\n\t"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x19), "r"(x20), [exit_nr] "i"(SYS_exit)
                     : "memory", "cc");
    return x0;
#endif
}

pid_t clone_vfork(int cgroup_fd, int (*fn)(void *), void *arg)
{
    uint8_t *stack = child_stack();
    if (!stack)
        return -1; /* errno from mmap */
    struct clone_args args;
    fill_args(&args, cgroup_fd);
    args.flags |= CLONE_VM | CLONE_VFORK;
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = CHILD_STACK;
    long rc = clone3_call(&args, fn, arg);
    if (rc < 0) {
        errno = (int)-rc;
        return -1;
    }
    return (pid_t)rc;
}

#else

pid_t clone_vfork(int cgroup_fd, int (*fn)(void *), void *arg)
{
    (void)cgroup_fd, (void)fn, (void)arg;
    errno = ENOSYS;
    return -1;
}

#endif
