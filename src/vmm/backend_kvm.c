/* The kvm backend's entry points: choosing the backend for a box, the child plan the
 * monitor spawns instead of QEMU, and the child itself (`cocoon-vmm --kvm-run DIR`),
 * which puts the machine together from config.json and runs it until the guest
 * resets, powers off or fails. */
#include "vmm/backend_kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"
#include "vmm/kvm_machine.h"
#include "vmm/log.h"
#include "vmm/net_stats.h"

/* The kvm backend's command line: like the QEMU one (qemu.c) but with the LAPIC
 * timer (a real in-kernel LAPIC calibrates fast) and reboot=k: the guest's reboot (the
 * agent's power-off) arrives as an i8042 reset, so a real triple fault stays an error.
 * virtio_mmio.device= entries are appended by kvm_machine.c. */
#define KVM_KERNEL_CMDLINE                                                                                             \
    "console=ttyS0 quiet reboot=k panic=-1 tsc=reliable cocoon.root=/dev/vda cocoon.rootfstype=ext4"

static int env_on(const char *name)
{
    const char *s = getenv(name);
    return s && *s && strcmp(s, "0") != 0;
}

int kvm_run_choose_backend(struct vmm_config *cfg, char *why, size_t whycap, char *err, size_t errcap)
{
    struct host_kvm_probe probe;
    if (!strcmp(cfg->backend, "qemu")) {
        snprintf(why, whycap, "qemu backend requested by the box config");
        return 0;
    }
    if (!strcmp(cfg->backend, "auto") && !strcmp(cfg->accel, "tcg")) {
        snprintf(cfg->backend, sizeof(cfg->backend), "qemu");
        snprintf(why, whycap, "accel tcg requested: qemu backend");
        return 0;
    }
    host_probe_kvm(&probe);
    int forced = env_on("COCOON_FORCE_KVM");
    if (!strcmp(cfg->backend, "kvm")) {
        if (probe.usable || forced) {
            snprintf(why, whycap, "kvm backend requested: %s",
                     probe.usable ? probe.reason : "forced by COCOON_FORCE_KVM");
            return 0;
        }
        snprintf(err, errcap, "kvm backend unavailable: %s (use the qemu backend: --vmm qemu)", probe.reason);
        return -1;
    }
    /* networking is no reason to pick QEMU: the kvm child runs virtio-net and the stack */
    if (probe.usable) {
        snprintf(cfg->backend, sizeof(cfg->backend), "kvm");
        snprintf(why, whycap, "auto: kvm backend (%s)", probe.reason);
    } else {
        snprintf(cfg->backend, sizeof(cfg->backend), "qemu");
        snprintf(why, whycap, "auto: qemu backend (%s)", probe.reason);
    }
    return 0;
}

int kvm_run_plan(struct qemu_plan *p, const struct vmm_config *cfg, const char *box_dir, const char *why, char *err,
                 size_t errcap)
{
    (void)cfg;
    memset(p, 0, sizeof(*p));
    ssize_t n = readlink("/proc/self/exe", p->bin, sizeof(p->bin) - 1);
    if (n <= 0 || (size_t)n >= sizeof(p->bin) - 1) {
        snprintf(err, errcap, "cannot find the cocoon-vmm binary (/proc/self/exe): %s", strerror(errno));
        return -1;
    }
    p->bin[n] = 0;
    snprintf(p->accel, sizeof(p->accel), "kvm");
    snprintf(p->accel_reason, sizeof(p->accel_reason), "%s", why);
    const char *args[] = {p->bin, "--kvm-run", box_dir};
    for (int i = 0; i < 3; i++) {
        p->argv[i] = strdup(args[i]);
        if (!p->argv[i]) {
            qemu_plan_free(p);
            snprintf(err, errcap, "out of memory");
            return -1;
        }
        p->argc = i + 1;
    }
    p->argv[p->argc] = NULL;
    return 0;
}

static void ip4(char *buf, size_t cap, uint32_t ip)
{
    snprintf(buf, cap, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    char msg[PATH_MAX * 2 + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "cocoon-vmm kvm: %s\n", msg);
    return 1;
}

int kvm_run_main(const char *box_dir)
{
    static struct vmm_config cfg;
    static struct kvm_machine m;
    char err[PATH_MAX * 2];
    uint64_t t0 = util_now_ns(CLOCK_MONOTONIC);
    if (vmm_config_load(box_dir, &cfg, err, sizeof(err)) < 0)
        return fail("%s", err);
    if (fcntl(QEMU_AGENT_FD, F_GETFD) < 0)
        return fail("the agent channel (fd %d) is not open", QEMU_AGENT_FD);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/console.log", box_dir);
    int con = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (con < 0)
        return fail("cannot open %s: %s", path, strerror(errno));
    util_set_cloexec(QEMU_AGENT_FD, 1);
    /* Networking: the stack lives in this process, behind virtio-net (the monitor
     * runs none for a kvm box); the agent configures eth0 from cocoon.net= as with QEMU. */
    static struct net_config net;
    static char cmdline[1024];
    int net_log = -1, box_dirfd = -1;
    snprintf(cmdline, sizeof(cmdline), "%s", KVM_KERNEL_CMDLINE);
    if (cfg.net.mode != NET_MODE_NONE) {
        char a[16], g[16], d[16];
        net = cfg.net;
        snprintf(path, sizeof(path), "%s/net.log", box_dir);
        net_log = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        box_dirfd = open(box_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* to rotate net.log */
        net_config_log(&net, net_log, box_dirfd);
        net_config_upstream_from_env(&net);
        ip4(a, sizeof(a), net.guest_ip);
        ip4(g, sizeof(g), net.gateway_ip);
        ip4(d, sizeof(d), net.dns_ip);
        snprintf(cmdline, sizeof(cmdline), "%s cocoon.net=%s/%d,%s,%s", KVM_KERNEL_CMDLINE, a, net.prefix, g, d);
        vmm_log("network: mode %s, %d rule(s), %d published port(s), %d upstream resolver(s) (virtio-net)",
                net_mode_name(net.mode), net.nrules, net.nports, net.nupstreams);
    }
    struct kvm_machine_opts o = {
        .mem_bytes = (uint64_t)cfg.memory_mib << 20,
        .cpus = cfg.cpus,
        .hide_xsave = env_on("COCOON_KVM_HIDE_XSAVE"),
        .map_kernel = env_on("COCOON_KVM_MAP_KERNEL"),
        .no_hugepages = env_on("COCOON_KVM_NO_HUGEPAGES"),
        .kernel = cfg.kernel,
        .initrd = cfg.initrd[0] ? cfg.initrd : NULL,
        .cmdline = cmdline,
        .console_fd = con,
        .disk = cfg.disk,
        .disk_format = cfg.disk_format,
        .agent_fd = QEMU_AGENT_FD,
        .rng = 1,
        .net = cfg.net.mode != NET_MODE_NONE ? &net : NULL,
        .ioeventfd = !env_on("COCOON_KVM_NO_IOEVENTFD"),
        .irqfd = !env_on("COCOON_KVM_NO_IRQFD"),
    };
    if (cfg.cpus > KVM_VM_MAX_CPUS) {
        snprintf(err, sizeof(err), "%d vCPUs asked, the kvm backend has at most %d", cfg.cpus, KVM_VM_MAX_CPUS);
        return fail("%s", err);
    }
    int rc = 1;
    if (kvm_machine__create(&m, &o, err, sizeof(err)) < 0 || kvm_machine__start(&m, err, sizeof(err)) < 0) {
        fail("%s", err);
        kvm_machine__destroy(&m);
        if (net_log >= 0)
            close(net_log);
        if (box_dirfd >= 0)
            close(box_dirfd);
        return 1;
    }
    /* Exec to the vCPU threads entering KVM_RUN: wall time from our main() (the exec
     * itself is not counted), CPU time of the whole process since exec (bench/). */
    uint64_t t1 = util_now_ns(CLOCK_MONOTONIC), cpu = util_now_ns(CLOCK_PROCESS_CPUTIME_ID);
    vmm_log("kvm: %d vCPU(s), %d MiB, vCPUs started %.2f ms after exec (CPU %.2f ms); kernel entered by %s, "
            "%.1f MiB mapped from its file; guest RAM at %p; ioeventfd: %d virtio queue(s), irqfd: %d device(s); "
            "cmdline: %s",
            cfg.cpus, cfg.memory_mib, (double)(t1 - t0) / 1e6, (double)cpu / 1e6,
            m.vm.boot.mode == BOOT_PVH32 ? "PVH" : "the bzImage 64-bit entry", (double)m.vm.mapped_bytes / 1048576.0,
            (void *)m.vm.mem.r[0].hva, m.ioeventfds, m.irqfds, m.cmdline);
    /* net.stats.json for `cocoon stats`, as the monitor writes it for a QEMU box: at
     * most once a second, when the counters changed, and once more at the end */
    int stats = m.has_net && box_dirfd >= 0;
    struct net_stats written = {0}, now;
    for (;;) {
        int stopped = kvm_machine__poll_stop(&m, stats ? 1000 : -1);
        if (stats) {
            virtio_net__stats(&m.net, &now);
            if ((stopped || memcmp(&now, &written, sizeof(now))) && net_stats_write(box_dirfd, cfg.net.mode, &now) == 0)
                written = now;
        }
        if (stopped)
            break;
    }
    enum kvm_stop_reason why = kvm_machine__wait(&m, -1);
    if (why == VM_STOP_RESET) {
        vmm_log("kvm: guest stopped (%s)", m.vm.stop_detail[0] ? m.vm.stop_detail : "reset");
        rc = 0;
    } else {
        fprintf(stderr, "cocoon-vmm kvm: the VM stopped: %s: %s\n", kvm_vm__stop_name(why), m.vm.stop_detail);
    }
    if (m.has_net)
        vmm_log("network: %llu frames to the stack, %llu to the guest; dropped %llu out, %llu in",
                (unsigned long long)m.net.tx_frames, (unsigned long long)m.net.rx_frames,
                (unsigned long long)m.net.tx_dropped, (unsigned long long)m.net.rx_dropped);
    kvm_machine__destroy(&m);
    close(con);
    if (net_log >= 0)
        close(net_log);
    if (box_dirfd >= 0)
        close(box_dirfd);
    return rc;
}
