/* `cocoon-vmm --jail-probe DIR ATTACK`: the jail a monitor of box DIR would run in,
 * entered by the same code (jail_setup.c), then looked at from inside: what it reaches,
 * what it holds, and one forbidden act (ATTACK), which must end the process with the
 * seccomp report naming the call. For tests and `cocoon doctor`; it starts no VM.
 * Prints "jail-probe NAME: ok|FAIL DETAIL" lines, one per look. */
#include "monitor/jail_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "monitor/jail_setup.h"
#include "util/log.h"

static int fails;

static void report(const char *name, int ok, const char *detail)
{
    printf("jail-probe %s: %s%s%s\n", name, ok ? "ok" : "FAIL", detail[0] ? " " : "", detail);
    fflush(stdout);
    fails += !ok;
}

/* Checks made after the locks, before the filter: they need capget and prctl. */
static void look_at_privileges(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    char d[128];
    int caps = syscall(SYS_capget, &hdr, data) == 0 &&
               (data[0].effective | data[0].permitted | data[1].effective | data[1].permitted) == 0;
    snprintf(d, sizeof(d), "(effective and permitted sets empty)");
    report("no-capabilities", caps, d);
    report("no-new-privs", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "");
}

static void look_at_files(const struct vmm *v)
{
    char d[PATH_MAX + 64];
    int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    snprintf(d, sizeof(d), "(open /etc/passwd: %s)", fd < 0 ? strerror(errno) : "opened");
    report("host-files-hidden", fd < 0, d);
    if (fd >= 0)
        close(fd);
    fd = open(v->cfg.kernel, O_RDONLY | O_CLOEXEC);
    snprintf(d, sizeof(d), "(the box's kernel %s: %s)", v->cfg.kernel, fd < 0 ? strerror(errno) : "readable");
    report("box-files-reachable", fd >= 0, d);
    if (fd >= 0)
        close(fd);
    fd = openat(v->dirfd, "jail-probe.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    report("box-dir-writable", fd >= 0, fd < 0 ? strerror(errno) : "");
    if (fd >= 0) {
        close(fd);
        unlinkat(v->dirfd, "jail-probe.tmp", 0);
    }
    fd = open("/usr/bin/jail-probe.tmp", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    snprintf(d, sizeof(d), "(create in /usr/bin: %s)", fd < 0 ? strerror(errno) : "created");
    report("system-dirs-read-only", fd < 0, d);
    if (fd >= 0)
        close(fd);
}

/* The forbidden act; the filter must end the process before the line after it. */
static void attack(const char *what)
{
    printf("jail-probe attack %s: trying\n", what);
    fflush(stdout);
    if (!strcmp(what, "exec")) {
        char *const argv[] = {"/bin/sh", "-c", "echo escaped", NULL};
        execv("/bin/sh", argv);
    } else if (!strcmp(what, "open-by-handle")) { /* the classic container breakout */
        struct {
            struct file_handle h;
            unsigned char bytes[8];
        } fh = {.h = {.handle_bytes = 8, .handle_type = 1}};
        syscall(SYS_open_by_handle_at, AT_FDCWD, &fh.h, O_RDONLY);
    } else if (!strcmp(what, "unshare")) {
        syscall(SYS_unshare, CLONE_NEWUSER);
    } else if (!strcmp(what, "netlink")) {
        socket(AF_NETLINK, SOCK_RAW, 0);
    } else if (!strcmp(what, "mount")) {
        syscall(SYS_mount, "none", "/", "tmpfs", 0, NULL);
    } else {
        printf("jail-probe attack %s: unknown (exec, open-by-handle, unshare, netlink, mount)\n", what);
        return;
    }
    printf("jail-probe attack %s: FAIL the call returned (%s)\n", what, strerror(errno));
}

int jail_probe_main(struct vmm *v, const char *what, char *err, size_t cap)
{
    static struct jail_plan jp;
    static struct jail_state js;
    if (jail_setup_plan(v, &jp, err, cap) < 0 || jail_setup_enter(v, &jp, &js, err, cap) < 0)
        return -1;
    if (!jp.enabled) {
        snprintf(err, cap, "the jail is off (COCOON_JAIL=0)");
        return -1;
    }
    char d[600];
    snprintf(d, sizeof(d), "(user %d, mount %d, ipc %d, uts %d%s%s)", js.userns, js.mountns, js.ipcns, js.utsns,
             js.why_not[0] ? "; " : "", js.why_not);
    report("namespaces", js.mountns, d);
    report("pivoted-root", js.pivoted, "");
    if (jail_lock(jp.monitor_fsize, err, cap) < 0)
        return -1;
    look_at_privileges();
    if (jail_seccomp(JAIL_ROLE_MONITOR, 1, 0, err, cap) < 0)
        return -1;
    look_at_files(v);
    if (what && *what)
        attack(what);
    return fails ? 1 : 0;
}
