/* The qemu backend: QEMU's microvm with the same kernel, disk and channels. Paths that
 * go through QEMU's option parser have their commas doubled; files in the box directory
 * are named relative to it (the child runs there), so a long COCOON_HOME never reaches
 * a length limit. */
#include "monitor/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "jail/jail.h"
#include "util/util.h"

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

static int pick_accel(struct child_plan *p, const struct box_config *cfg, char *err, size_t errcap)
{
    struct host_kvm_probe probe;
    if (find_binary(p->bin, sizeof(p->bin), err, errcap) < 0)
        return -1;
    if (cfg->accel == BOX_ACCEL_TCG) {
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
    if (cfg->accel == BOX_ACCEL_KVM) {
        snprintf(err, errcap, "accel \"kvm\" requested but KVM is not usable here: %s", probe.reason);
        return -1;
    }
    snprintf(p->accel, sizeof(p->accel), "tcg");
    snprintf(p->accel_reason, sizeof(p->accel_reason), "no usable KVM (%s): using TCG", probe.reason);
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

/* ",file.locking=off,backing.file.locking=off,..." for the disk and every file under it.
 * The box lock already keeps a second writer out; QEMU's own image locks would make a
 * fork's capture fail to resume the box (livesnap.c): a migration's end drops the
 * locks and `cont` takes them again, while the fork's children (other QEMUs) read the
 * same backing files and forbid writers. */
static void locking_off(const struct box_config *cfg, char *out, size_t cap)
{
    int levels = 0;
    out[0] = 0;
    if (!strcmp(cfg->disk_format, "qcow2")) {
        char why[256];
        const char *chain[QCOW2_MAX_CHAIN];
        struct qcow2 *q = qcow2_open(cfg->disk, 0, why, sizeof(why));
        if (q) {
            levels = qcow2_chain_paths(q, chain, QCOW2_MAX_CHAIN);
            qcow2_close(q, NULL, 0);
        }
    }
    size_t o = 0;
    for (int i = 0; i <= levels; i++) {
        char one[QCOW2_MAX_CHAIN * 8 + 32];
        size_t l = 0;
        one[l++] = ',';
        for (int j = 0; j < i && l + 8 < sizeof(one); j++, l += 8)
            memcpy(one + l, "backing.", 8);
        l += (size_t)snprintf(one + l, sizeof(one) - l, "file.locking=off");
        if (l >= sizeof(one))
            break;
        if (o + l >= cap)
            break;
        memcpy(out + o, one, l + 1);
        o += l;
    }
}

static int build_argv(struct child_plan *p, const struct box_config *cfg, const char *box_dir, const char *cmdline,
                      char *err, size_t errcap)
{
    int kvm = !strcmp(p->accel, "kvm");
    char *disk = opt_escape(box_relative(cfg->disk, box_dir));
    if (!disk) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    int rc = 0;
    rc |= child_plan_add(p, "%s", p->bin);
    rc |= child_plan_add(p, "-M");
    rc |= child_plan_add(p, "%s", QEMU_MACHINE);
    rc |= child_plan_add(p, "-accel");
    rc |= child_plan_add(p, "%s", kvm ? "kvm" : "tcg,thread=multi");
    rc |= child_plan_add(p, "-cpu");
    rc |= child_plan_add(p, "%s", kvm ? "host" : "max");
    rc |= child_plan_add(p, "-smp");
    rc |= child_plan_add(p, "%d", cfg->cpus);
    rc |= child_plan_add(p, "-m");
    rc |= child_plan_add(p, "%d", cfg->memory_mib);
    rc |= child_plan_add(p, "-nodefaults");
    rc |= child_plan_add(p, "-no-user-config");
    rc |= child_plan_add(p, "-nographic");
    rc |= child_plan_add(p, "-no-reboot");
    rc |= child_plan_add(p, "-kernel");
    rc |= child_plan_add(p, "%s", cfg->kernel);
    if (cfg->initrd[0]) {
        rc |= child_plan_add(p, "-initrd");
        rc |= child_plan_add(p, "%s", cfg->initrd);
    }
    rc |= child_plan_add(p, "-append");
    rc |= child_plan_add(p, "%s", cmdline);
    /* the console is a pipe (console_log.c): QEMU's file chardev writes to it, opened
     * through an fd set (append: a pipe cannot be truncated) */
    rc |= child_plan_add(p, "-add-fd");
    rc |= child_plan_add(p, "fd=%d,set=%d", CHILD_CONSOLE_FD, CHILD_CONSOLE_FD);
    rc |= child_plan_add(p, "-chardev");
    rc |= child_plan_add(p, "file,id=con,path=/dev/fdset/%d,append=on", CHILD_CONSOLE_FD);
    rc |= child_plan_add(p, "-serial");
    rc |= child_plan_add(p, "chardev:con");
    rc |= child_plan_add(p, "-drive");
    /* werror/rerror=report: a host I/O error (a full disk under the box) reaches the
     * guest as EIO. QEMU's default (enospc) would pause the VM, and every command in
     * it would hang with no way to end it. */
    char locks[QCOW2_MAX_CHAIN * 24 + 32];
    locking_off(cfg, locks, sizeof(locks));
    rc |= child_plan_add(
        p, "id=root,file=%s,format=%s,if=none,cache=writeback,discard=unmap,werror=report,rerror=report%s", disk,
        cfg->disk_format, locks);
    rc |= child_plan_add(p, "-device");
    rc |= child_plan_add(p, "virtio-blk-device,drive=root");
    rc |= child_plan_add(p, "-chardev");
    rc |= child_plan_add(p, "socket,id=agent,fd=%d", CHILD_AGENT_FD);
    rc |= child_plan_add(p, "-device");
    rc |= child_plan_add(p, "virtio-serial-device");
    rc |= child_plan_add(p, "-device");
    rc |= child_plan_add(p, "virtserialport,chardev=agent,name=cocoon.agent");
    rc |= child_plan_add(p, "-device");
    rc |= child_plan_add(p, "virtio-rng-device");
    /* QMP on a socket the monitor made (qmp.c): live snapshots */
    rc |= child_plan_add(p, "-chardev");
    rc |= child_plan_add(p, "socket,id=qmp,fd=%d", CHILD_QMP_FD);
    rc |= child_plan_add(p, "-mon");
    rc |= child_plan_add(p, "chardev=qmp,mode=control");
    if (jail_wanted()) {
        /* QEMU's own system call filter, on top of the jail it runs in */
        rc |= child_plan_add(p, "-sandbox");
        rc |= child_plan_add(p, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
    }
    if (cfg->net.mode != NET_MODE_NONE) {
        const uint8_t *m = cfg->net.guest_mac;
        /* COCOON_BENCH_NETDEV (bench/net_bench.py only): another -netdev with id n0, e.g.
         * QEMU's user networking, to compare against; our stack then idles. */
        const char *bench = getenv("COCOON_BENCH_NETDEV");
        rc |= child_plan_add(p, "-netdev");
        if (bench && *bench)
            rc |= child_plan_add(p, "%s", bench);
        else
            rc |= child_plan_add(p, "stream,id=n0,server=off,addr.type=fd,addr.str=%d", CHILD_NET_FD);
        rc |= child_plan_add(p, "-device");
        rc |= child_plan_add(p, "virtio-net-device,netdev=n0,mac=%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
                             m[4], m[5]);
    }
    free(disk);
    if (rc)
        snprintf(err, errcap, "cannot build the QEMU command line: out of memory");
    return rc ? -1 : 0;
}

const struct backend backend_qemu = {
    .name = "qemu",
    .child = "QEMU",
    .reboot = 't', /* reboot(RB_AUTOBOOT) with -no-reboot: QEMU exits at once */
    .accel = pick_accel,
    .plan = build_argv,
};
