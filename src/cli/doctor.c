/* `cocoon doctor [--fix]`: a readable report of what this host offers (KVM or TCG, QEMU,
 * the guest kernel, initramfs and default image, cocoon-vmm) and, when a box cannot
 * run, the command that fixes it; then the state check of $COCOON_HOME (what killed
 * commands left, what is damaged), which --fix also cleans up. Exit 0 when a box can
 * run and nothing in the state needs a person, 1 otherwise. */
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

/* The state check's findings, printed as they come (text) or gathered (JSON). */
struct findings {
    int json, fix;
    int left;    /* problems a person must act on, and garbage left in place by --fix */
    int garbage; /* garbage left (without --fix) */
    int printed;
    json_t *list;
};

static void on_finding(void *user, const cocoon_check_finding *f)
{
    struct findings *fs = user;
    int needs_person = f->kind == COCOON_CHECK_PROBLEM || (f->kind == COCOON_CHECK_GARBAGE && fs->fix && !f->fixed);
    fs->left += needs_person;
    fs->garbage += f->kind == COCOON_CHECK_GARBAGE && !f->fixed;
    if (fs->json) {
        static const char *const kinds[] = {"info", "garbage", "problem"};
        json_array_append_new(fs->list, json_pack("{s:s, s:b, s:s, s:s}", "kind", kinds[f->kind % 3], "fixed", f->fixed,
                                                  "what", f->what, "action", f->action));
        return;
    }
    const char *tag = f->kind == COCOON_CHECK_INFO ? "note" : f->fixed ? "fixed" : needs_person ? "MISS" : "left";
    printf("  %-5s %s%s%s\n", tag, f->what, f->action[0] ? ": " : "", f->action);
    fs->printed++;
}

static int print_json(const cocoon_host_info *h, int ok, struct findings *fs)
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
    json_object_set_new(o, "state", json_pack("{s:o, s:i}", "findings", fs->list, "left", fs->left));
    fs->list = NULL;
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s)
        puts(s);
    free(s);
    return ok && !fs->left ? 0 : 1;
}

int cmd_doctor(int argc, char **argv)
{
    static const char help[] = "usage: cocoon doctor [--fix] [--json]\n\n"
                               "Checks that this host can run boxes and says what to fix, then checks the state in\n"
                               "$COCOON_HOME: what killed or interrupted commands left, and what is damaged.\n"
                               "  --fix   remove what they left (never a box's or an image's data)\n"
                               "  --json  the report as JSON\n";
    static const struct option lo[] = {
        {"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, 'j'}, {"fix", no_argument, NULL, 'f'}, {0}};
    struct findings fs = {0};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        if (c == 'j')
            fs.json = 1;
        else if (c == 'f')
            fs.fix = 1;
        else
            return cli_usage_error("doctor", "unknown option");
    }
    if (optind != argc)
        return cli_usage_error("doctor", "no operands expected");
    cocoon_runtime *rt;
    int rc = cli_open_runtime(&rt);
    if (rc)
        return rc;
    cocoon_host_info h;
    cocoon_error err;
    if (cocoon_host_probe(rt, &h, &err) < 0) {
        cocoon_runtime_close(rt);
        return cli_fail(&err);
    }
    int qemu_ok = h.qemu_path[0] && h.qemu_version[0];
    int ok = qemu_ok && h.kernel_present && h.initrd_present && h.default_image_present && h.vmm_present;
    if (fs.json) {
        fs.list = json_array();
        int checked = cocoon_state_check(rt, fs.fix ? COCOON_CHECK_FIX : 0, on_finding, &fs, &err);
        cocoon_runtime_close(rt);
        if (checked < 0) {
            json_decref(fs.list);
            return cli_fail(&err);
        }
        return print_json(&h, ok, &fs);
    }

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
    printf("\nstate%s\n", fs.fix ? " (fixing)" : "");
    fflush(stdout);
    int checked = cocoon_state_check(rt, fs.fix ? COCOON_CHECK_FIX : 0, on_finding, &fs, &err);
    cocoon_runtime_close(rt);
    if (checked < 0)
        return cli_fail(&err);
    if (!fs.printed)
        printf("  ok    nothing left behind by interrupted commands, nothing damaged\n");
    else if (fs.garbage && !fs.fix)
        printf("  run `cocoon doctor --fix` to remove what interrupted commands left\n");
    printf("\n");
    if (ok) {
        printf("ready: boxes can run here (backend %s, accel %s)\n", h.backend, h.accel);
        if (fs.left)
            printf("but %d thing%s in the state need%s you: see above\n", fs.left, fs.left == 1 ? "" : "s",
                   fs.left == 1 ? "s" : "");
        return fs.left ? 1 : 0;
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
