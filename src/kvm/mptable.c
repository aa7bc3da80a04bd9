/* The Intel MultiProcessor table (MP spec 1.4) that tells a Linux guest without
 * ACPI how many CPUs there are and where the I/O APIC is: a floating pointer and a
 * configuration table in the reserved area at BOOT_EBDA_START, found by the kernel's
 * scan of the EBDA (X86_MPPARSE). Same layout as Firecracker's and kvmtool's. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "kvm/boot.h"

#define MPC_SIG "PCMP"
#define MPF_SIG "_MP_"
#define APIC_VERSION 0x14
#define IOAPIC_VERSION 0x11
#define IOAPIC_ADDR 0xfec00000u
#define LAPIC_ADDR 0xfee00000u
#define IOAPIC_PINS 24

struct mpf {
    char sig[4];
    uint32_t physptr;
    uint8_t length, specification, checksum, feature1, feature2, feature3, feature4, feature5;
} __attribute__((packed));

struct mpc {
    char sig[4];
    uint16_t length;
    uint8_t spec, checksum;
    char oem[8], productid[12];
    uint32_t oemptr;
    uint16_t oemsize, oemcount;
    uint32_t lapic;
    uint32_t reserved;
} __attribute__((packed));

struct mpc_cpu {
    uint8_t type, apicid, apicver, cpuflag;
    uint32_t cpufeature, featureflag, reserved[2];
} __attribute__((packed));

struct mpc_bus {
    uint8_t type, busid;
    char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
    uint8_t type, apicid, apicver, flags;
    uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
    uint8_t type, irqtype;
    uint16_t irqflag;
    uint8_t srcbus, srcbusirq, dstapic, dstirq;
} __attribute__((packed));

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };

static uint8_t checksum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return (uint8_t)(0 - s);
}

static size_t table_size(int ncpus)
{
    return sizeof(struct mpf) + sizeof(struct mpc) + (size_t)ncpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
           sizeof(struct mpc_ioapic) + (IOAPIC_PINS + 2) * sizeof(struct mpc_intsrc);
}

int kvm_boot__mptable(struct kvm_vm *vm, int ncpus, char *err, size_t errcap)
{
    size_t size = table_size(ncpus);
    if (ncpus < 1 || ncpus > 254 || BOOT_EBDA_START + size > BOOT_HIGH_START) {
        snprintf(err, errcap, "an MP table cannot describe %d CPUs", ncpus);
        return -1;
    }
    uint8_t *base = guest_mem__ptr(&vm->mem, BOOT_EBDA_START, size);
    if (!base) {
        snprintf(err, errcap, "guest memory too small for the MP table");
        return -1;
    }
    memset(base, 0, size);
    struct mpf *f = (struct mpf *)base;
    uint8_t *tbl = base + sizeof(*f), *p = tbl + sizeof(struct mpc);
    uint8_t ioapic_id = (uint8_t)ncpus;
    for (int i = 0; i < ncpus; i++) {
        struct mpc_cpu c = {.type = MP_PROCESSOR,
                            .apicid = (uint8_t)i,
                            .apicver = APIC_VERSION,
                            .cpuflag = (uint8_t)(1 | (i == 0 ? 2 : 0)), /* enabled, boot processor */
                            .cpufeature = 0x600,
                            .featureflag = 0x201}; /* family 6; FPU, APIC */
        memcpy(p, &c, sizeof(c));
        p += sizeof(c);
    }
    struct mpc_bus bus = {.type = MP_BUS, .busid = 0};
    memcpy(bus.bustype, "ISA   ", 6);
    memcpy(p, &bus, sizeof(bus));
    p += sizeof(bus);
    struct mpc_ioapic io = {
        .type = MP_IOAPIC, .apicid = ioapic_id, .apicver = IOAPIC_VERSION, .flags = 1, .apicaddr = IOAPIC_ADDR};
    memcpy(p, &io, sizeof(io));
    p += sizeof(io);
    /* Every ISA IRQ line goes to the I/O APIC pin of the same number (as KVM wires its
     * in-kernel irqchip); the virtio-mmio devices sit on lines 5 and up. */
    for (int i = 0; i < IOAPIC_PINS; i++) {
        struct mpc_intsrc s = {.type = MP_INTSRC,
                               .irqtype = MP_INT,
                               .srcbus = 0,
                               .srcbusirq = (uint8_t)i,
                               .dstapic = ioapic_id,
                               .dstirq = (uint8_t)i};
        memcpy(p, &s, sizeof(s));
        p += sizeof(s);
    }
    struct mpc_intsrc lint0 = {.type = MP_LINTSRC, .irqtype = MP_EXTINT, .dstapic = 0xff, .dstirq = 0};
    struct mpc_intsrc lint1 = {.type = MP_LINTSRC, .irqtype = MP_NMI, .dstapic = 0xff, .dstirq = 1};
    memcpy(p, &lint0, sizeof(lint0));
    p += sizeof(lint0);
    memcpy(p, &lint1, sizeof(lint1));
    p += sizeof(lint1);

    struct mpc h = {.length = (uint16_t)(p - tbl), .spec = 4, .lapic = LAPIC_ADDR};
    memcpy(h.sig, MPC_SIG, 4);
    memcpy(h.oem, "COCOON  ", 8);
    memcpy(h.productid, "MICROVM     ", 12);
    memcpy(tbl, &h, sizeof(h));
    tbl[offsetof(struct mpc, checksum)] = checksum(tbl, h.length);

    memcpy(f->sig, MPF_SIG, 4);
    f->physptr = (uint32_t)(BOOT_EBDA_START + sizeof(*f));
    f->length = 1; /* in 16-byte units */
    f->specification = 4;
    f->checksum = checksum(base, sizeof(*f));
    return 0;
}
