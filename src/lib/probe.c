/* cocoon_host_probe: what this host can run, for `cocoon doctor` and for callers
 * that want to explain a failure before trying a boot (KVM or TCG, QEMU, and the
 * guest files a box needs). */
#include "lib/internal.h"

#include "jail/jail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/util.h"

/* Bounded copy; a path too long for the report is cut, which doctor makes visible. */
static void copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void qemu_version(const char *qemu, char *out, size_t cap)
{
    char buf[1024];
    const char *argv[] = {qemu, "--version", NULL};
    int st = lib_run(argv, buf, sizeof(buf));
    out[0] = 0;
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return;
    /* "QEMU emulator version 7.2.22 (Debian ...)": keep what follows "version ". */
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = 0;
    const char *v = strstr(buf, "version ");
    copy(out, cap, v ? v + 8 : buf);
}

int cocoon_host_probe(cocoon_runtime *rt, cocoon_host_info *info, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !info)
        return lib_err(err, COCOON_E_INVALID, "cocoon_host_probe: NULL argument");
    memset(info, 0, sizeof(*info));
    struct host_kvm_probe kvm;
    host_probe_kvm(&kvm);
    struct jail_probe jail;
    jail_probe(&jail);
    info->jail_on = jail_wanted();
    info->jail_userns = jail.userns;
    info->jail_mountns = jail.mountns;
    info->jail_pidns = jail.pidns;
    info->jail_netns = jail.netns;
    info->jail_seccomp = jail.seccomp;
    info->jail_cgroup2 = jail.cgroup2;
    copy(info->jail_detail, sizeof(info->jail_detail), jail.detail);
    info->kvm_device = kvm.device;
    info->kvm_usable = kvm.usable;
    copy(info->kvm_reason, sizeof(info->kvm_reason), kvm.reason);
    if (kvm.usable) {
        copy(info->backend, sizeof(info->backend), "kvm");
        copy(info->backend_reason, sizeof(info->backend_reason),
             "our own VMM on /dev/kvm (hardware virtualization); --vmm qemu to use QEMU");
    } else {
        copy(info->backend, sizeof(info->backend), "qemu");
        copy(info->backend_reason, sizeof(info->backend_reason),
             "KVM cannot run a stock kernel here (see kvm usable); --vmm kvm is refused");
    }
    if (kvm.usable) {
        copy(info->accel, sizeof(info->accel), "kvm");
        copy(info->accel_reason, sizeof(info->accel_reason), "KVM is usable");
    } else {
        copy(info->accel, sizeof(info->accel), "tcg");
        copy(info->accel_reason, sizeof(info->accel_reason),
             "KVM is not usable here: QEMU emulates the CPU (TCG), boots take seconds");
    }

    const char *q = getenv("COCOON_QEMU");
    char path[LIB_PATH_MAX];
    if (q && *q)
        copy(path, sizeof(path), q);
    else if (lib_which("qemu-system-x86_64", path, sizeof(path)) < 0)
        path[0] = 0;
    copy(info->qemu_path, sizeof(info->qemu_path), path);
    if (path[0])
        qemu_version(path, info->qemu_version, sizeof(info->qemu_version));

    char kernel[LIB_PATH_MAX], initrd[LIB_PATH_MAX], image[LIB_PATH_MAX];
    if (lib_kernel_paths(rt, NULL, NULL, kernel, initrd, sizeof(kernel)) == 0) {
        copy(info->kernel_path, sizeof(info->kernel_path), kernel);
        copy(info->initrd_path, sizeof(info->initrd_path), initrd);
        info->kernel_present = util_file_exists(kernel);
        info->initrd_present = util_file_exists(initrd);
    }
    lib_path(image, sizeof(image), "%s/images/default.ext4", rt->share_dir);
    copy(info->default_image_path, sizeof(info->default_image_path), image);
    info->default_image_present = util_file_exists(image);
    copy(info->home, sizeof(info->home), rt->home);
    copy(info->vmm_path, sizeof(info->vmm_path), rt->vmm_path);
    info->vmm_present = access(rt->vmm_path, X_OK) == 0;
    return 0;
}
