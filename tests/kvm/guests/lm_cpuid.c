/* CPUID micro-guest: run with --cpus 2 on the BSP, checks the kvm backend's CPUID
 * template (src/vmm/kvm_cpuid.c) as a guest sees it: hypervisor bit and signature,
 * APIC id and vCPU count, no thermal/PMU leaves, the brand string, and a topology of
 * two single-thread cores in whatever cache and AMD topology leaves KVM offers. */
#include "guest.h"

static void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

int main(void)
{
    u32 a, b, c, d, max, xmax;
    cpuid(0, 0, &max, &b, &c, &d);
    cpuid(0x80000000u, 0, &xmax, &b, &c, &d);
    cpuid(1, 0, &a, &b, &c, &d);
    check(c & (1u << 31), "hypervisor bit");
    check((b >> 24) == 0 && ((b >> 16) & 0xff) == 2, "leaf 1: APIC id 0 of 2 vCPUs");
    cpuid(0x40000000u, 0, &a, &b, &c, &d);
    check(b == 0x4b4d564b && c == 0x564b4d56 && d == 0x4d, "KVMKVMKVM signature");
    cpuid(6, 0, &a, &b, &c, &d);
    check(max < 6 || (a | b | c | d) == 0, "leaf 6 empty");
    cpuid(0xa, 0, &a, &b, &c, &d);
    check(max < 0xa || (a | b | c | d) == 0, "leaf 0xa empty (no PMU)");
    if (xmax >= 0x80000004u) {
        u32 w[12];
        for (u32 i = 0; i < 3; i++)
            cpuid(0x80000002u + i, 0, &w[4 * i], &w[4 * i + 1], &w[4 * i + 2], &w[4 * i + 3]);
        const char *brand = (const char *)w, *want = "cocoon virtual CPU";
        int same = 1;
        for (int i = 0; want[i] || brand[i]; i++)
            same &= brand[i] == want[i];
        check(same, "brand string");
    }
    int caches = 0, bad = 0;
    for (u32 leaf = 4; leaf; leaf = leaf == 4 ? 0x8000001du : 0) {
        if ((leaf == 4 && max < 4) || (leaf == 0x8000001du && xmax < 0x8000001du))
            continue;
        for (u32 sub = 0; sub < 8; sub++) {
            cpuid(leaf, sub, &a, &b, &c, &d);
            if (!(a & 0x1f))
                break;
            caches++;
            u32 level = (a >> 5) & 7, sharing = (a >> 14) & 0xfff;
            bad += sharing != (level >= 3 ? 1u : 0u);
            if (leaf == 4)
                bad += (a >> 26) != 1;
        }
    }
    puts_("caches described: ");
    putdec((u64)caches);
    putc_('\n');
    check(!bad, "cache leaves: sharing and cores match 2 vCPUs");
    if (xmax >= 0x80000008u) {
        cpuid(0x80000008u, 0, &a, &b, &c, &d);
        check((c & 0xff) == 1 && ((c >> 12) & 0xf) == 0, "0x80000008: 2 cores");
    }
    if (xmax >= 0x8000001eu) {
        cpuid(0x8000001eu, 0, &a, &b, &c, &d);
        check(a == 0 && (b & 0xffff) == 0 && c == 0, "0x8000001e: core 0, node 0");
    }
    return done_();
}
