/* The kvm child's main: puts the machine together from config.json and the monitor's
 * fds, runs it until the guest resets, powers off or fails, and says why it stopped.
 * It holds no host sockets: the network stack is the monitor's, reached over the link. */
#include "kvm/main.h"

#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boxcfg/config.h"
#include "jail/jail.h"
#include "kvm/machine.h"
#include "monitor/backend.h"
#include "util/log.h"
#include "util/util.h"

static int env_on(const char *name)
{
    const char *s = getenv(name);
    return s && *s && strcmp(s, "0") != 0;
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

int kvm_run_main(const char *box_dir, const char *cmdline)
{
    static struct box_config cfg;
    static struct kvm_machine m;
    char err[PATH_MAX * 2];
    uint64_t t0 = util_now_ns(CLOCK_MONOTONIC);
    signal(SIGPIPE, SIG_IGN); /* a channel the monitor closed is an error to handle, not a death */
    /* One malloc arena: glibc shrinking a thread's own arena reads
     * /proc/sys/vm/overcommit_memory the first time, an open our system call filter
     * forbids (seen when the I/O thread's allocations for a live snapshot's disk layer
     * were freed at exit). The main arena gives memory back with brk instead. */
    mallopt(M_ARENA_MAX, 1);
    if (box_config_load(box_dir, &cfg, err, sizeof(err)) < 0)
        return fail("%s", err);
    int has_net = cfg.net.mode != NET_MODE_NONE;
    if (fcntl(CHILD_AGENT_FD, F_GETFD) < 0 || fcntl(CHILD_CONSOLE_FD, F_GETFD) < 0 ||
        (has_net && fcntl(CHILD_NET_FD, F_GETFD) < 0))
        return fail("the monitor's channels (fds %d, %d and %d) are not open", CHILD_AGENT_FD, CHILD_NET_FD,
                    CHILD_CONSOLE_FD);
    util_set_cloexec(CHILD_AGENT_FD, 1);
    util_set_cloexec(CHILD_CONSOLE_FD, 1);
    if (has_net)
        util_set_cloexec(CHILD_NET_FD, 1);
    /* the monitor's control channel (QMP subset, control.h) and, for a fork, the full
     * snapshot to start from: present or not, as the monitor placed them */
    int control_fd = fcntl(CHILD_QMP_FD, F_GETFD) >= 0 ? CHILD_QMP_FD : -1;
    int restore_fd = fcntl(CHILD_INCOMING_FD, F_GETFD) >= 0 ? CHILD_INCOMING_FD : -1;
    if (control_fd >= 0)
        util_set_cloexec(control_fd, 1);
    if (restore_fd >= 0)
        util_set_cloexec(restore_fd, 1);
    if (cfg.cpus > KVM_VM_MAX_CPUS)
        return fail("%d vCPUs asked, the kvm backend has at most %d", cfg.cpus, KVM_VM_MAX_CPUS);
    struct kvm_machine_opts o = {
        .mem_bytes = (uint64_t)cfg.memory_mib << 20,
        .cpus = cfg.cpus,
        .hide_xsave = env_on("COCOON_KVM_HIDE_XSAVE"),
        .map_kernel = env_on("COCOON_KVM_MAP_KERNEL"),
        .no_hugepages = env_on("COCOON_KVM_NO_HUGEPAGES"),
        .kernel = cfg.kernel,
        .initrd = cfg.initrd[0] ? cfg.initrd : NULL,
        .cmdline = cmdline,
        .console_fd = CHILD_CONSOLE_FD,
        .disk = cfg.disk,
        .disk_format = cfg.disk_format,
        .agent_fd = CHILD_AGENT_FD,
        .rng = 1,
        .net_fd = has_net ? CHILD_NET_FD : -1,
        .ioeventfd = !env_on("COCOON_KVM_NO_IOEVENTFD"),
        .irqfd = !env_on("COCOON_KVM_NO_IRQFD"),
        .control_fd = control_fd,
        .restore_fd = restore_fd,
    };
    memcpy(o.mac, cfg.net.guest_mac, sizeof(o.mac));
    int jail = jail_wanted();
    int bad = kvm_machine__create(&m, &o, err, sizeof(err)) < 0 ||
              (jail && kvm_machine__lock_down(&m, 2, err, sizeof(err)) < 0) ||
              kvm_machine__start(&m, err, sizeof(err)) < 0;
    /* Exec to the vCPU threads entering KVM_RUN: wall time from our main() (the exec
     * itself is not counted), CPU time of the whole process since exec (bench/). Taken
     * before the roles' filters, which the main and I/O threads add while the guest
     * already runs: from here on the process's CPU time counts the guest's too. */
    uint64_t t1 = util_now_ns(CLOCK_MONOTONIC), cpu = util_now_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (bad || (jail && kvm_machine__lock_roles(&m, 2, err, sizeof(err)) < 0)) {
        fail("%s", err);
        kvm_machine__destroy(&m);
        return 1;
    }
    if (restore_fd >= 0) {
        close(restore_fd); /* the RAM mapping keeps the file */
        vmm_log("kvm: restored from a full snapshot in %.2f ms (%u saved MSRs not taken by this host)", m.restore_ms,
                m.vm.msrs_refused);
    }
    vmm_log("kvm: %d vCPU(s), %d MiB, vCPUs started %.2f ms after exec (CPU %.2f ms); kernel entered by %s, "
            "%.1f MiB of kernel and initrd mapped from their files; guest RAM at %p; ioeventfd: %d virtio queue(s), "
            "irqfd: %d device(s); "
            "cmdline: %s",
            cfg.cpus, cfg.memory_mib, (double)(t1 - t0) / 1e6, (double)cpu / 1e6,
            m.vm.restoring                 ? "a restore"
            : m.vm.boot.mode == BOOT_PVH32 ? "PVH"
                                           : "the bzImage 64-bit entry",
            (double)m.vm.mapped_bytes / 1048576.0, (void *)m.vm.mem.r[0].hva, m.ioeventfds, m.irqfds, m.cmdline);
    int rc = 1;
    enum kvm_stop_reason why = kvm_machine__wait(&m, -1);
    if (why == VM_STOP_RESET) {
        vmm_log("kvm: guest stopped (%s)", m.vm.stop_detail[0] ? m.vm.stop_detail : "reset");
        rc = 0;
    } else {
        fprintf(stderr, "cocoon-vmm kvm: the VM stopped: %s: %s\n", kvm_vm__stop_name(why), m.vm.stop_detail);
    }
    if (m.has_net)
        vmm_log("network link: %llu frames out, %llu in; dropped %llu out, %llu in",
                (unsigned long long)m.net.tx_frames, (unsigned long long)m.net.rx_frames,
                (unsigned long long)m.net.tx_dropped, (unsigned long long)m.net.rx_dropped);
    kvm_machine__destroy(&m);
    return rc;
}
