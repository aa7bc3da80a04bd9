/* Decides whether /dev/kvm can run a stock Linux guest. Opening the device is not
 * enough: a PVM host exposes /dev/kvm without hardware VMX/SVM, and QEMU aborts on
 * it, so we also require the CPU flags the hardware path needs. */
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int cpu_has_hw_virt(void)
{
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return 0;
    char line[8192];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        found = strstr(line, " vmx") != NULL || strstr(line, " svm") != NULL;
        break;
    }
    fclose(f);
    return found;
}

void host_probe_kvm(struct host_kvm_probe *p)
{
    memset(p, 0, sizeof(*p));
    const char *forced = getenv("COCOON_FORCE_NO_KVM");
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(p->reason, sizeof(p->reason), "/dev/kvm cannot be opened (%s)", strerror(errno));
        return;
    }
    p->device = 1;
    int api = ioctl(fd, KVM_GET_API_VERSION, 0);
    close(fd);
    if (api != KVM_API_VERSION) {
        snprintf(p->reason, sizeof(p->reason), "/dev/kvm reports API version %d, expected %d", api, KVM_API_VERSION);
        return;
    }
    if (!cpu_has_hw_virt()) {
        snprintf(p->reason, sizeof(p->reason),
                 "/dev/kvm opens but the CPU shows no vmx/svm flag (an emulating KVM such as PVM): "
                 "a stock kernel cannot run on it");
        return;
    }
    if (forced && *forced && strcmp(forced, "0") != 0) {
        snprintf(p->reason, sizeof(p->reason), "disabled by COCOON_FORCE_NO_KVM");
        return;
    }
    p->usable = 1;
    snprintf(p->reason, sizeof(p->reason), "/dev/kvm with hardware virtualization");
}
