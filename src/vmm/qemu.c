/* Builds and starts the QEMU microvm child. Paths that go through QEMU's option
 * parser have their commas doubled; files in the box directory are named relative to
 * it (the child runs there), so a long COCOON_HOME never reaches a length limit. */
#include "vmm/qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/util.h"

#define KERNEL_CMDLINE "console=ttyS0 quiet reboot=t panic=-1 tsc=reliable cocoon.root=/dev/vda cocoon.rootfstype=ext4"
/* Under TCG the emulated LAPIC timer is slow to calibrate, so TCG guests tick from the
 * PIT. Under KVM the LAPIC (TSC deadline) timer is the right one, and the PIT path
 * was seen to stall a guest after boot on nested SVM (no ticks: execs never ran). */
#define KERNEL_CMDLINE_TCG KERNEL_CMDLINE " nolapic_timer"

/* rtc=on: without a CMOS clock the guest kernel's first wall-clock read
 * (timekeeping_init -> mach_get_cmos_time -> mc146818_get_time(.., 1000)) polls the
 * absent chip's update-in-progress bit, which reads as set, for a whole second. */
#ifndef QEMU_MACHINE
#define QEMU_MACHINE "microvm,x-option-roms=off,rtc=on,acpi=off"
#endif

static int is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static int find_binary(char *out, size_t cap, char *err, size_t errcap)
{
    const char *forced = getenv("COCOON_QEMU");
    if (forced && *forced) {
        if (strchr(forced, '/')) {
            if (!is_executable(forced)) {
                snprintf(err, errcap, "QEMU not found: COCOON_QEMU=%s is not an executable file", forced);
                return -1;
            }
            snprintf(out, cap, "%s", forced);
            return 0;
        }
    }
    const char *name = forced && *forced ? forced : "qemu-system-x86_64";
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && (size_t)snprintf(out, cap, "%.*s/%s", (int)n, path, name) < cap && is_executable(out))
            return 0;
        path += n;
        if (*path == ':')
            path++;
    }
    snprintf(err, errcap, "QEMU not found: install qemu-system-x86 (apt-get install -y qemu-system-x86)%s%s",
             forced && *forced ? "; COCOON_QEMU names " : "", forced && *forced ? forced : "");
    return -1;
}

static int pick_accel(struct qemu_plan *p, const char *want, char *err, size_t errcap)
{
    struct host_kvm_probe probe;
    if (!strcmp(want, "tcg")) {
        snprintf(p->accel, sizeof(p->accel), "tcg");
        snprintf(p->accel_reason, sizeof(p->accel_reason), "tcg requested by the box config");
        return 0;
    }
    host_probe_kvm(&probe);
    if (probe.usable) {
        snprintf(p->accel, sizeof(p->accel), "kvm");
        snprintf(p->accel_reason, sizeof(p->accel_reason), "%s", probe.reason);
        return 0;
    }
    if (!strcmp(want, "kvm")) {
        snprintf(err, errcap, "accel \"kvm\" requested but KVM is not usable here: %s", probe.reason);
        return -1;
    }
    snprintf(p->accel, sizeof(p->accel), "tcg");
    snprintf(p->accel_reason, sizeof(p->accel_reason), "no usable KVM (%s): using TCG", probe.reason);
    return 0;
}

static int add(struct qemu_plan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add(struct qemu_plan *p, const char *fmt, ...)
{
    if (p->argc >= QEMU_MAX_ARGS)
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

/* QEMU's option syntax splits on ','; a literal comma is written ",,". */
static char *opt_escape(const char *s)
{
    size_t n = strlen(s), commas = 0;
    for (size_t i = 0; i < n; i++)
        commas += s[i] == ',';
    char *out = malloc(n + commas + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        *o++ = s[i];
        if (s[i] == ',')
            *o++ = ',';
    }
    *o = 0;
    return out;
}

/* A file inside the box directory is named relative to it (QEMU runs there). */
static const char *box_relative(const char *path, const char *box_dir)
{
    size_t n = strlen(box_dir);
    if (!strncmp(path, box_dir, n) && path[n] == '/' && path[n + 1] && !strchr(path + n + 1, '/'))
        return path + n + 1;
    return path;
}

static int build_argv(struct qemu_plan *p, const struct vmm_config *cfg, const char *box_dir)
{
    int kvm = !strcmp(p->accel, "kvm");
    char cmdline[256];
    uint32_t tsc_khz = kvm ? 0 : host_tsc_khz();
    /* A TCG guest's TSC is the host's: told its rate, the guest skips a calibration
     * that fails in half the boots under emulation (util/hosttsc.c). */
    if (tsc_khz)
        snprintf(cmdline, sizeof(cmdline), "%s tsc_early_khz=%u", KERNEL_CMDLINE_TCG, tsc_khz);
    else
        snprintf(cmdline, sizeof(cmdline), "%s", kvm ? KERNEL_CMDLINE : KERNEL_CMDLINE_TCG);
    char *disk = opt_escape(box_relative(cfg->disk, box_dir));
    if (!disk)
        return -1;
    int rc = 0;
    rc |= add(p, "%s", p->bin);
    rc |= add(p, "-M");
    rc |= add(p, "%s", QEMU_MACHINE);
    rc |= add(p, "-accel");
    rc |= add(p, "%s", kvm ? "kvm" : "tcg,thread=multi");
    rc |= add(p, "-cpu");
    rc |= add(p, "%s", kvm ? "host" : "max");
    rc |= add(p, "-smp");
    rc |= add(p, "%d", cfg->cpus);
    rc |= add(p, "-m");
    rc |= add(p, "%d", cfg->memory_mib);
    rc |= add(p, "-nodefaults");
    rc |= add(p, "-no-user-config");
    rc |= add(p, "-nographic");
    rc |= add(p, "-no-reboot");
    rc |= add(p, "-kernel");
    rc |= add(p, "%s", cfg->kernel);
    if (cfg->initrd[0]) {
        rc |= add(p, "-initrd");
        rc |= add(p, "%s", cfg->initrd);
    }
    rc |= add(p, "-append");
    if (cfg->net.mode != NET_MODE_NONE) {
        /* the agent configures eth0 from cocoon.net=ADDR/PREFIX,GATEWAY,DNS */
        const struct net_config *n = &cfg->net;
        rc |= add(p, "%s cocoon.net=%u.%u.%u.%u/%d,%u.%u.%u.%u,%u.%u.%u.%u", cmdline, n->guest_ip >> 24,
                  (n->guest_ip >> 16) & 255, (n->guest_ip >> 8) & 255, n->guest_ip & 255, n->prefix,
                  n->gateway_ip >> 24, (n->gateway_ip >> 16) & 255, (n->gateway_ip >> 8) & 255, n->gateway_ip & 255,
                  n->dns_ip >> 24, (n->dns_ip >> 16) & 255, (n->dns_ip >> 8) & 255, n->dns_ip & 255);
    } else {
        rc |= add(p, "%s", cmdline);
    }
    rc |= add(p, "-chardev");
    rc |= add(p, "file,id=con,path=console.log");
    rc |= add(p, "-serial");
    rc |= add(p, "chardev:con");
    rc |= add(p, "-drive");
    rc |= add(p, "id=root,file=%s,format=%s,if=none,cache=writeback,discard=unmap", disk, cfg->disk_format);
    rc |= add(p, "-device");
    rc |= add(p, "virtio-blk-device,drive=root");
    rc |= add(p, "-chardev");
    rc |= add(p, "socket,id=agent,fd=%d", QEMU_AGENT_FD);
    rc |= add(p, "-device");
    rc |= add(p, "virtio-serial-device");
    rc |= add(p, "-device");
    rc |= add(p, "virtserialport,chardev=agent,name=cocoon.agent");
    rc |= add(p, "-device");
    rc |= add(p, "virtio-rng-device");
    if (cfg->net.mode != NET_MODE_NONE) {
        const uint8_t *m = cfg->net.guest_mac;
        /* COCOON_BENCH_NETDEV (bench/net_bench.py only): another -netdev with id n0, e.g.
         * QEMU's user networking, to compare against; our stack then idles. */
        const char *bench = getenv("COCOON_BENCH_NETDEV");
        rc |= add(p, "-netdev");
        if (bench && *bench)
            rc |= add(p, "%s", bench);
        else
            rc |= add(p, "stream,id=n0,server=off,addr.type=fd,addr.str=%d", QEMU_NET_FD);
        rc |= add(p, "-device");
        rc |=
            add(p, "virtio-net-device,netdev=n0,mac=%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    }
    free(disk);
    return rc ? -1 : 0;
}

int qemu_plan_build(struct qemu_plan *p, const struct vmm_config *cfg, const char *box_dir, char *err, size_t errcap)
{
    memset(p, 0, sizeof(*p));
    p->net_fd = -1;
    if (find_binary(p->bin, sizeof(p->bin), err, errcap) < 0)
        return -1;
    if (pick_accel(p, cfg->accel, err, errcap) < 0)
        return -1;
    if (build_argv(p, cfg, box_dir) < 0) {
        snprintf(err, errcap, "cannot build the QEMU command line: out of memory");
        qemu_plan_free(p);
        return -1;
    }
    return 0;
}

void qemu_plan_free(struct qemu_plan *p)
{
    for (int i = 0; i < p->argc; i++)
        free(p->argv[i]);
    p->argc = 0;
    p->argv[0] = NULL;
}

void qemu_plan_describe(const struct qemu_plan *p, char *out, size_t cap)
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

/* Runs in the forked child: only async-signal-safe calls until execv. */
static void child_exec(const struct qemu_plan *p, pid_t parent, int dirfd, int agent_fd, int out_fd, int null_fd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    if (fchdir(dirfd) < 0)
        _exit(127);
    if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        _exit(127);
    int net_fd = p->net_fd, last = QEMU_AGENT_FD;
    if (net_fd == QEMU_AGENT_FD && (net_fd = fcntl(net_fd, F_DUPFD_CLOEXEC, 10)) < 0)
        _exit(127); /* moved out of the way of the agent's number */
    if (dup2(agent_fd, QEMU_AGENT_FD) < 0 || fcntl(QEMU_AGENT_FD, F_SETFD, 0) < 0)
        _exit(127);
    if (net_fd >= 0) {
        if (dup2(net_fd, QEMU_NET_FD) < 0 || fcntl(QEMU_NET_FD, F_SETFD, 0) < 0)
            _exit(127);
        last = QEMU_NET_FD;
    }
    if (syscall(SYS_close_range, last + 1, ~0u, 0) < 0) {
        for (int fd = last + 1; fd < 65536; fd++)
            close(fd);
    }
    execv(p->bin, p->argv);
    static const char msg[] = "cocoon-vmm: cannot execute QEMU\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(127);
}

pid_t qemu_spawn(const struct qemu_plan *p, int dirfd, int agent_fd, int out_fd, char *err, size_t errcap)
{
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        snprintf(err, errcap, "cannot open /dev/null: %s", strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child_exec(p, parent, dirfd, agent_fd, out_fd, null_fd);
    int saved = errno;
    close(null_fd);
    if (pid < 0) {
        snprintf(err, errcap, "cannot start QEMU: fork: %s", strerror(saved));
        return -1;
    }
    setpgid(pid, pid); /* also from the parent, so a kill of the group never races the child */
    return pid;
}
