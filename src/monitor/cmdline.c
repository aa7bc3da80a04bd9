/* The guest kernel's command line, the same for both backends but for the reboot path
 * and the TCG-only clock flags. The kvm backend's VMM appends its virtio_mmio.device=
 * entries; QEMU's microvm adds its own. */
#include "monitor/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static void ip4(char *buf, size_t cap, uint32_t ip)
{
    snprintf(buf, cap, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

int kernel_cmdline(char *out, size_t cap, const struct backend *b, const struct box_config *cfg, const char *accel)
{
    size_t n = 0;
    int w = snprintf(out, cap,
                     "console=ttyS0 quiet reboot=%c panic=-1 tsc=reliable cocoon.root=/dev/vda "
                     "cocoon.rootfstype=ext4",
                     b->reboot);
    if (w < 0 || (size_t)w >= cap)
        return -1;
    n = (size_t)w;
    if (!strcmp(accel, "tcg")) {
        /* Under TCG the emulated LAPIC timer is slow to calibrate, so the guest ticks
         * from the PIT (under KVM the LAPIC's TSC deadline timer is the right one: a
         * PIT-ticking guest was seen to stall after boot on nested SVM). A TCG
         * guest's TSC is the host's: told its rate, the guest skips a calibration that
         * fails in about half the boots under emulation (util/hosttsc.c). */
        uint32_t khz = host_tsc_khz();
        w = khz ? snprintf(out + n, cap - n, " nolapic_timer tsc_early_khz=%u", khz)
                : snprintf(out + n, cap - n, " nolapic_timer");
        if (w < 0 || (size_t)w >= cap - n)
            return -1;
        n += (size_t)w;
    }
    /* Benchmarks: the agent logs the phases of every exec (src/agent/trace.c). */
    const char *trace = getenv("COCOON_AGENT_TRACE");
    if (trace && !strcmp(trace, "1")) {
        w = snprintf(out + n, cap - n, " cocoon.trace=exec");
        if (w < 0 || (size_t)w >= cap - n)
            return -1;
        n += (size_t)w;
    }
    if (cfg->net.mode != NET_MODE_NONE) {
        /* the agent configures eth0 from cocoon.net=ADDR/PREFIX,GATEWAY,DNS */
        char a[16], g[16], d[16];
        ip4(a, sizeof(a), cfg->net.guest_ip);
        ip4(g, sizeof(g), cfg->net.gateway_ip);
        ip4(d, sizeof(d), cfg->net.dns_ip);
        w = snprintf(out + n, cap - n, " cocoon.net=%s/%d,%s,%s", a, cfg->net.prefix, g, d);
        if (w < 0 || (size_t)w >= cap - n)
            return -1;
    }
    return 0;
}
