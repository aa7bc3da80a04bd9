/* The monitor's use of the jail (src/jail): what a box's VMM child must find inside it
 * (kernel, initrd, the disk's whole backing chain, its binary, /dev/kvm), how large the
 * files it writes may grow, and the order of the steps around starting the child. */
#include "monitor/jail_setup.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "disk/qcow2.h"
#include "monitor/console_log.h"
#include "util/log.h"

/* Slack on top of a disk's virtual size for qcow2 metadata (L2 and refcount tables are
 * well under 1/32 of the data) and for the logs the monitor rotates. */
#define DISK_SLACK(size) ((size) / 32 + (64ull << 20))
#define MONITOR_FSIZE (64ull << 20)
#define MEMORY_FILE_SLACK (32ull << 20)

static int under_system_dir(const char *path)
{
    static const char *const dirs[] = {"/usr/", "/lib/", "/lib64/", "/bin/", "/sbin/"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (!strncmp(path, dirs[i], strlen(dirs[i])))
            return 1;
    return 0;
}

/* The disk and every file below it (read-only), and the largest the disk may grow. */
static int add_disk_chain(struct jail_plan *p, const struct box_config *cfg, char *err, size_t cap)
{
    if (strcmp(cfg->disk_format, "qcow2") != 0) {
        p->child_fsize = RLIM_INFINITY; /* raw: the file is as large as it will ever be */
        return 0;
    }
    char qerr[512];
    struct qcow2 *q = qcow2_open(cfg->disk, 0, qerr, sizeof(qerr));
    if (!q) {
        snprintf(err, cap, "cannot read the disk %s: %s", cfg->disk, qerr);
        return -1;
    }
    const char *chain[QCOW2_MAX_CHAIN];
    int n = qcow2_chain_paths(q, chain, QCOW2_MAX_CHAIN), rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = jail_plan_add(p, chain[i], 0, 0);
    uint64_t size = qcow2_virtual_size(q);
    p->child_fsize = size + DISK_SLACK(size);
    /* a fork's capture writes the guest's RAM to memory.state, plus the device state
     * (QEMU's stream) or our header, state and alignment (src/kvm/snapfile.h) */
    uint64_t mem_file = ((uint64_t)cfg->memory_mib << 20) + MEMORY_FILE_SLACK;
    if (p->child_fsize < mem_file)
        p->child_fsize = mem_file;
    qcow2_close(q, NULL, 0);
    if (rc < 0)
        snprintf(err, cap, "the disk's backing chain is too long for the jail");
    return rc;
}

/* The monitor writes only its rotated logs: a file of its may not grow past the largest
 * rotation bound, plus one write. */
static uint64_t monitor_fsize(void)
{
    uint64_t m = MONITOR_FSIZE, c = console_log_max_bytes() + (1u << 20), l = vmm_log_max_bytes() + (1u << 20);
    const char *e = getenv("COCOON_NET_LOG_MAX");
    uint64_t n = e && *e ? strtoull(e, NULL, 10) + (1u << 20) : 0;
    m = c > m ? c : m;
    m = l > m ? l : m;
    return n > m ? n : m;
}

int jail_setup_plan(struct vmm *v, struct jail_plan *p, char *err, size_t cap)
{
    jail_plan_init(p, v->box_dir, v->cfg.id, (uint64_t)v->cfg.memory_mib << 20);
    p->monitor_fsize = monitor_fsize();
    if (!p->enabled)
        return 0;
    int kvm = !strcmp(v->plan.accel, "kvm");
    if (jail_plan_add(p, v->cfg.kernel, 0, 0) < 0 || (v->cfg.initrd[0] && jail_plan_add(p, v->cfg.initrd, 0, 0) < 0) ||
        (!under_system_dir(v->plan.bin) && jail_plan_add(p, v->plan.bin, 0, 0) < 0) ||
        (kvm && jail_plan_add(p, "/dev/kvm", 1, 1) < 0) || jail_plan_add_system(p) < 0) {
        snprintf(err, cap, "the jail cannot hold the box's files");
        return -1;
    }
    return add_disk_chain(p, &v->cfg, err, cap);
}

int jail_setup_enter(struct vmm *v, struct jail_plan *p, struct jail_state *st, char *err, size_t cap)
{
    signal(SIGXFSZ, SIG_IGN); /* a write past RLIMIT_FSIZE fails (EFBIG) instead of killing */
    if (jail_enter(p, st, err, cap) < 0)
        return -1;
    if (!p->enabled) {
        vmm_log("jail: off (COCOON_JAIL=0)");
        return 0;
    }
    vmm_log("jail: namespaces user %s, mount %s, pid %s, ipc %s, uts %s; root %s; cgroup %s%s%s",
            st->userns ? "yes" : "no", st->mountns ? "yes" : "no", st->pidns ? "yes" : "no", st->ipcns ? "yes" : "no",
            st->utsns ? "yes" : "no", st->pivoted ? "the box directory only" : "the host's",
            st->cgroup ? st->cgroup_path : "none", st->why_not[0] ? "; not available: " : "", st->why_not);
    return 0;
}

int jail_setup_lock(struct vmm *v, const struct jail_plan *p, char *err, size_t cap)
{
    if (!p->enabled)
        return 0;
    if (jail_lock(p->monitor_fsize, err, cap) < 0 ||
        jail_seccomp(JAIL_ROLE_MONITOR, vmm_log_fd(), v->child_pid, err, cap) < 0)
        return -1;
    vmm_log("jail: the monitor holds no capability, runs with no_new_privs and its seccomp filter");
    return 0;
}
