/* The kvm backend's entry points: choosing the backend for a box, the child plan the
 * monitor spawns instead of QEMU, and the child itself (`cocoon-vmm --kvm-run DIR`),
 * which puts the machine together from config.json and runs it until the guest
 * resets, powers off or fails. */
#include "vmm/backend_kvm.h"

#include <errno.h>
#include <fcntl.h>
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
    int networked = cfg->net.mode != NET_MODE_NONE;
    host_probe_kvm(&probe);
    int forced = env_on("COCOON_FORCE_KVM");
    if (!strcmp(cfg->backend, "kvm")) {
        if (networked) {
            snprintf(err, errcap, "the kvm backend has no network device yet: use --vmm qemu or --net none");
            return -1;
        }
        if (probe.usable || forced) {
            snprintf(why, whycap, "kvm backend requested: %s", probe.usable ? probe.reason : "forced by COCOON_FORCE_KVM");
            return 0;
        }
        snprintf(err, errcap, "kvm backend unavailable: %s (use the qemu backend: --vmm qemu)", probe.reason);
        return -1;
    }
    if (networked) {
        /* The own VMM has no virtio-net yet: a box that asked for a network gets QEMU. */
        snprintf(cfg->backend, sizeof(cfg->backend), "qemu");
        snprintf(why, whycap, "auto: qemu backend (networking is on; the kvm backend has no network device yet)");
    } else if (probe.usable) {
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
    const char *args[] = { p->bin, "--kvm-run", box_dir };
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
    struct kvm_machine_opts o = {
        .mem_bytes = (uint64_t)cfg.memory_mib << 20,
        .cpus = cfg.cpus,
        .hide_xsave = env_on("COCOON_KVM_HIDE_XSAVE"),
        .kernel = cfg.kernel,
        .initrd = cfg.initrd[0] ? cfg.initrd : NULL,
        .cmdline = KVM_KERNEL_CMDLINE,
        .console_fd = con,
        .disk = cfg.disk,
        .disk_format = cfg.disk_format,
        .agent_fd = QEMU_AGENT_FD,
        .rng = 1,
    };
    if (cfg.cpus > KVM_VM_MAX_CPUS) {
        snprintf(err, sizeof(err), "%d vCPUs asked, the kvm backend has at most %d", cfg.cpus, KVM_VM_MAX_CPUS);
        return fail("%s", err);
    }
    int rc = 1;
    if (kvm_machine__create(&m, &o, err, sizeof(err)) < 0 || kvm_machine__start(&m, err, sizeof(err)) < 0) {
        fail("%s", err);
        kvm_machine__destroy(&m);
        return 1;
    }
    /* Exec to the vCPU threads entering KVM_RUN: wall time from our main() (the exec
     * itself is not counted), CPU time of the whole process since exec (bench/). */
    uint64_t t1 = util_now_ns(CLOCK_MONOTONIC), cpu = util_now_ns(CLOCK_PROCESS_CPUTIME_ID);
    vmm_log("kvm: %d vCPU(s), %d MiB, vCPUs started %.2f ms after exec (CPU %.2f ms); cmdline: %s", cfg.cpus,
            cfg.memory_mib, (double)(t1 - t0) / 1e6, (double)cpu / 1e6, m.cmdline);
    enum kvm_stop_reason why = kvm_machine__wait(&m, -1);
    if (why == VM_STOP_RESET) {
        vmm_log("kvm: guest stopped (%s)", m.vm.stop_detail[0] ? m.vm.stop_detail : "reset");
        rc = 0;
    } else {
        fprintf(stderr, "cocoon-vmm kvm: the VM stopped: %s: %s\n", kvm_vm__stop_name(why), m.vm.stop_detail);
    }
    kvm_machine__destroy(&m);
    close(con);
    return rc;
}
