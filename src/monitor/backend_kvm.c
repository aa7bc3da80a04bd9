/* The kvm backend seen from the monitor, and the choice between the backends. The child
 * is cocoon-vmm itself re-executed as `cocoon-vmm --kvm-run DIR CMDLINE` (src/kvm/main.c),
 * with the agent channel on fd 3 and the network link on fd 4 like QEMU's. */
#include "monitor/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

static int env_on(const char *name)
{
    const char *s = getenv(name);
    return s && *s && strcmp(s, "0") != 0;
}

const struct backend *backend_choose(struct box_config *cfg, char *why, size_t whycap, char *err, size_t errcap)
{
    struct host_kvm_probe probe;
    if (cfg->backend == BOX_BACKEND_QEMU) {
        snprintf(why, whycap, "qemu backend requested by the box config");
        return &backend_qemu;
    }
    if (cfg->backend == BOX_BACKEND_AUTO && cfg->accel == BOX_ACCEL_TCG) {
        cfg->backend = BOX_BACKEND_QEMU;
        snprintf(why, whycap, "accel tcg requested: qemu backend");
        return &backend_qemu;
    }
    host_probe_kvm(&probe);
    int forced = env_on("COCOON_FORCE_KVM");
    if (cfg->backend == BOX_BACKEND_KVM) {
        if (probe.usable || forced) {
            snprintf(why, whycap, "kvm backend requested: %s",
                     probe.usable ? probe.reason : "forced by COCOON_FORCE_KVM");
            return &backend_kvm;
        }
        snprintf(err, errcap, "kvm backend unavailable: %s (use the qemu backend: --vmm qemu)", probe.reason);
        return NULL;
    }
    if (probe.usable) {
        cfg->backend = BOX_BACKEND_KVM;
        snprintf(why, whycap, "auto: kvm backend (%s)", probe.reason);
        return &backend_kvm;
    }
    cfg->backend = BOX_BACKEND_QEMU;
    snprintf(why, whycap, "auto: qemu backend (%s)", probe.reason);
    return &backend_qemu;
}

/* The kvm backend runs on /dev/kvm or not at all (backend_choose checked it). */
static int kvm_accel(struct child_plan *p, const struct box_config *cfg, char *err, size_t errcap)
{
    (void)cfg;
    ssize_t n = readlink("/proc/self/exe", p->bin, sizeof(p->bin) - 1);
    if (n <= 0 || (size_t)n >= sizeof(p->bin) - 1) {
        snprintf(err, errcap, "cannot find the cocoon-vmm binary (/proc/self/exe): %s", strerror(errno));
        return -1;
    }
    p->bin[n] = 0;
    snprintf(p->accel, sizeof(p->accel), "kvm");
    snprintf(p->accel_reason, sizeof(p->accel_reason), "our own VMM on /dev/kvm");
    return 0;
}

static int kvm_plan(struct child_plan *p, const struct box_config *cfg, const char *box_dir, const char *cmdline,
                    char *err, size_t errcap)
{
    (void)cfg;
    if (child_plan_add(p, "%s", p->bin) < 0 || child_plan_add(p, "--kvm-run") < 0 ||
        child_plan_add(p, "%s", box_dir) < 0 || child_plan_add(p, "%s", cmdline) < 0) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    return 0;
}

const struct backend backend_kvm = {
    .name = "kvm",
    .child = "the kvm VMM",
    /* reboot=k: the guest's power-off arrives as an i8042 reset, so a real triple fault
     * stays an error */
    .reboot = 'k',
    .accel = kvm_accel,
    .plan = kvm_plan,
};
