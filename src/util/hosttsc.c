/* The host's TSC frequency, for guests that cannot measure it themselves. Under TCG a
 * guest's TSC is the host's, but the guest kernel's PIT calibration fails in about half
 * of the boots (emulation jitter): it then spends ~250 ms calibrating a delay loop and
 * runs on a jiffies clock. Told the frequency (tsc_early_khz=), it never calibrates. */
#include "util/util.h"

#include <cpuid.h>
#include <time.h>
#include <x86intrin.h>

/* An invariant TSC ticks at one rate whatever the CPU's power state (CPUID
 * 0x80000007 EDX bit 8); without it a measured rate means nothing a second later. */
static int tsc_is_invariant(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000000, &a, &b, &c, &d) || a < 0x80000007)
        return 0;
    __get_cpuid(0x80000007, &a, &b, &c, &d);
    return (d >> 8) & 1;
}

static uint64_t raw_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One (time, tsc) pair, taken where the two reads are closest together: a pair
 * split by an interrupt or a preemption is thrown away. */
static void sample(uint64_t *ns, uint64_t *tsc)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 8; i++) {
        uint64_t t0 = raw_ns();
        uint64_t c = __rdtsc();
        uint64_t t1 = raw_ns();
        if (t1 - t0 < best) {
            best = t1 - t0;
            *ns = t0 + (t1 - t0) / 2;
            *tsc = c;
        }
    }
}

uint32_t host_tsc_khz(void)
{
    static uint32_t cached;
    if (cached || !tsc_is_invariant())
        return cached;
    uint64_t ns0, tsc0, ns1, tsc1;
    sample(&ns0, &tsc0);
    /* 2 ms: the reads cost tens of ns, so the rate is good to a few parts in 10^5; the
     * agent corrects the guest's wall clock on every exec anyway */
    do
        sample(&ns1, &tsc1);
    while (ns1 - ns0 < 2000000u);
    uint64_t khz = (tsc1 - tsc0) * 1000000u / (ns1 - ns0);
    cached = khz > 0 && khz < UINT32_MAX ? (uint32_t)khz : 0;
    return cached;
}
