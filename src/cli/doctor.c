/* `cocoon doctor`: a readable report of what this host offers (KVM or TCG, QEMU, the
 * guest kernel, initramfs and default image, cocoon-vmm) and, when a box cannot run,
 * the command that fixes it. Exit 0 when a box can run, 1 otherwise. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void line(const char *what, int ok, const char *detail)
{
    printf("  %-14s %-4s %s\n", what, ok ? "ok" : "MISS", detail);
}

static int print_json(const cocoon_host_info *h, int ok)
{
    json_t *o = json_pack(
        "{s:b, s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:s, s:b, s:s, s:b, s:s, s:b}", "kvm_device",
        h->kvm_device, "kvm_usable", h->kvm_usable, "kvm_reason", h->kvm_reason, "backend", h->backend, "accel",
        h->accel, "accel_reason", h->accel_reason, "qemu_path", h->qemu_path, "qemu_version", h->qemu_version,
        "kernel_path", h->kernel_path, "kernel_present", h->kernel_present, "initrd_path", h->initrd_path,
        "initrd_present", h->initrd_present, "default_image_path", h->default_image_path, "default_image_present",
        h->default_image_present, "vmm_path", h->vmm_path, "vmm_present", h->vmm_present, "home", h->home, "ready", ok);
    if (!o)
        return 1;
    json_object_set_new(o, "backend_reason", json_string(h->backend_reason));
    json_t *j =
        json_pack("{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:s}", "on", h->jail_on, "user_namespace", h->jail_userns,
                  "mount_namespace", h->jail_mountns, "pid_namespace", h->jail_pidns, "net_namespace", h->jail_netns,
                  "seccomp", h->jail_seccomp, "cgroup_v2", h->jail_cgroup2, "detail", h->jail_detail);
    if (j)
        json_object_set_new(o, "jail", j);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s)
        puts(s);
    free(s);
    return ok ? 0 : 1;
}

int cmd_doctor(int argc, char **argv)
{
    int json;
    int rc = cli_simple_opts(argc, argv, "doctor",
                             "usage: cocoon doctor [--json]\n\nChecks that this host can run boxes and says what to "
                             "fix.\n",
                             "json", 0, &json);
    if (rc >= 0)
        return rc;
    cocoon_runtime *rt;
    rc = cli_open_runtime(&rt);
    if (rc)
        return rc;
    cocoon_host_info h;
    cocoon_error err;
    if (cocoon_host_probe(rt, &h, &err) < 0) {
        cocoon_runtime_close(rt);
        return cli_fail(&err);
    }
    cocoon_runtime_close(rt);
    int qemu_ok = h.qemu_path[0] && h.qemu_version[0];
    int ok = qemu_ok && h.kernel_present && h.initrd_present && h.default_image_present && h.vmm_present;
    if (json)
        return print_json(&h, ok);

    char buf[1200];
    printf("cocoon %s\n\n", cocoon_version());
    printf("virtualization\n");
    line("/dev/kvm", h.kvm_device, h.kvm_device ? "present" : "absent");
    line("kvm usable", h.kvm_usable, h.kvm_reason);
    snprintf(buf, sizeof(buf), "%s (%s)", h.backend, h.backend_reason);
    printf("  %-14s %-4s %s\n", "backend", "", buf);
    snprintf(buf, sizeof(buf), "%s (%s)", h.accel, h.accel_reason);
    printf("  %-14s %-4s %s\n", "accel", "", buf);
    snprintf(buf, sizeof(buf), "%s%s%s", h.qemu_path[0] ? h.qemu_path : "qemu-system-x86_64 not found",
             h.qemu_version[0] ? ", version " : (h.qemu_path[0] ? " (does not run)" : ""), h.qemu_version);
    line("qemu", qemu_ok, buf);
    printf("\nfiles\n");
    line("kernel", h.kernel_present, h.kernel_path);
    line("initramfs", h.initrd_present, h.initrd_path);
    line("default image", h.default_image_present, h.default_image_path);
    line("cocoon-vmm", h.vmm_present, h.vmm_path);
    printf("  %-14s %-4s %s\n", "home", "", h.home);
    printf("\njail of box processes%s\n", h.jail_on ? "" : " (off: COCOON_JAIL=0)");
    line("user ns", h.jail_userns,
         h.jail_userns ? "the monitor and VMM hold no capability outside the box"
                       : "unprivileged user namespaces are off: no private root");
    line("mount ns", h.jail_mountns, "an empty root with only the box's files");
    line("pid ns", h.jail_pidns, "the VMM sees no other process");
    line("net ns", h.jail_netns, "the VMM has no network (the monitor relays the box's)");
    line("seccomp", h.jail_seccomp, "system calls filtered per role");
    line("cgroup v2", h.jail_cgroup2, h.jail_cgroup2 ? "a cgroup per box: memory.max and pids.max" : h.jail_detail);
    printf("\n");
    if (ok) {
        printf("ready: boxes can run here (backend %s, accel %s)\n", h.backend, h.accel);
        return 0;
    }
    printf("not ready:\n");
    if (!qemu_ok)
        printf("  - QEMU is missing: apt-get install -y qemu-system-x86 (or set COCOON_QEMU)\n");
    if (!h.kernel_present || !h.default_image_present)
        printf("  - guest kernel or default image missing: run `make guest`\n");
    if (!h.initrd_present)
        printf("  - initramfs missing: run `make agent` (or `make`)\n");
    if (!h.vmm_present)
        printf("  - cocoon-vmm missing: run `make host` (or set COCOON_VMM)\n");
    return 1;
}
