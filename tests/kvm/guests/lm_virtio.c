/* 64-bit micro-guest: MMIO and port exits, then virtio-rng and virtio-blk driven
 * through the virtio-mmio registers with valid rings (data checked) and with
 * malformed ones (loops, bad addresses, huge lengths, long chains, bad indirect
 * tables), each of which must leave the device in DEVICE_NEEDS_RESET, never crash
 * the VMM; then the console, and its queue resized under a held chain. Prints
 * "ok NAME" / "FAIL NAME" lines and "DONE <ok> <fail>". */
#include "virtq.h"

#define RNG 0xd0000000ul
#define BLK 0xd0001000ul
#define QMEM 0x300000ul /* desc at +0, avail at +0x1000, used at +0x2000 */
#define BUF 0x400000ul
#define IND 0x500000ul
#define QSIZE 256

static inline u32 rd(u64 base, u32 off) { return *(volatile u32 *)(base + off); }
static inline void wr(u64 base, u32 off, u32 v) { *(volatile u32 *)(base + off) = v; }

static volatile struct desc *const D = (struct desc *)QMEM;
static volatile u16 *const AVAIL = (u16 *)(QMEM + 0x1000);
static volatile u16 *const USED = (u16 *)(QMEM + 0x2000);
static u16 avail_idx;

/* Resets the device, negotiates VERSION_1 (+ INDIRECT_DESC) and enables queue 0. */
static int dev_setup(u64 base, u32 qsize)
{
    wr(base, 0x70, 0);
    wr(base, 0x70, 1 | 2);
    wr(base, 0x14, 1);
    u32 hi = rd(base, 0x10);
    wr(base, 0x14, 0);
    u32 lo = rd(base, 0x10);
    wr(base, 0x24, 0);
    wr(base, 0x20, lo & (1u << 28));
    wr(base, 0x24, 1);
    wr(base, 0x20, hi & 1);
    wr(base, 0x70, 1 | 2 | 8);
    if (!(rd(base, 0x70) & 8))
        return -1;
    memset((void *)QMEM, 0, 0x3000);
    avail_idx = 0;
    wr(base, 0x30, 0);
    if (rd(base, 0x34) < qsize)
        return -2;
    wr(base, 0x38, qsize);
    wr(base, 0x80, (u32)QMEM);
    wr(base, 0x84, 0);
    wr(base, 0x90, (u32)(QMEM + 0x1000));
    wr(base, 0x94, 0);
    wr(base, 0xa0, (u32)(QMEM + 0x2000));
    wr(base, 0xa4, 0);
    wr(base, 0x44, 1);
    if (rd(base, 0x44) != 1)
        return -3;
    wr(base, 0x70, 1 | 2 | 8 | 4);
    return 0;
}

static void submit(u64 base, u16 head, u32 qsize)
{
    AVAIL[2 + (avail_idx % qsize)] = head;
    __asm__ volatile("" ::: "memory");
    AVAIL[1] = ++avail_idx;
    wr(base, 0x50, 0);
}
static u16 used_idx(void) { return USED[1]; }
static u32 used_len(u16 i) { return *(volatile u32 *)(QMEM + 0x2000 + 4 + 8 * (i % QSIZE) + 4); }
static int needs_reset(u64 base) { return (rd(base, 0x70) & 0x40) != 0; }

static void test_exits(void)
{
    check(rd(RNG, 0) == 0x74726976, "mmio magic");
    check(rd(RNG, 4) == 2, "mmio version 2");
    check(rd(RNG, 8) == 4 && rd(BLK, 8) == 2, "mmio device ids");
    check(rd(0xd0008000ul, 0) == 0xffffffffu, "unassigned mmio reads ones");
    check(inb(0x2f8) == 0xff, "unassigned port reads ones");
    check((inb(0x3fd) & 0x60) == 0x60, "uart lsr");
}

static void test_rng(void)
{
    check(dev_setup(RNG, 8) == 0, "rng setup");
    u8 *b = (u8 *)BUF;
    memset(b, 0, 64);
    D[0] = (struct desc){BUF, 64, WRITE, 0};
    submit(RNG, 0, 8);
    int nz = 0;
    for (int i = 0; i < 64; i++)
        nz += b[i] != 0;
    check(used_idx() == 1 && used_len(0) == 64 && nz > 32, "rng fills buffer");
    check(rd(RNG, 0x60) & 1, "rng interrupt status");
    wr(RNG, 0x64, 1);
    check(rd(RNG, 0x60) == 0, "rng interrupt ack");
}

struct blkhdr {
    u32 type, reserved;
    u64 sector;
};
#define HDR (BUF + 0x0)
#define STATUS (BUF + 0x100)
#define DATA (BUF + 0x1000)
#define DATA2 (BUF + 0x2000)

static u8 blk_req(u32 type, u64 sector, u64 data, u32 len, int data_write)
{
    *(volatile struct blkhdr *)HDR = (struct blkhdr){type, 0, sector};
    *(volatile u8 *)STATUS = 0xee;
    D[0] = (struct desc){HDR, 16, NEXT, 1};
    if (len) {
        D[1] = (struct desc){data, len, (u16)(NEXT | (data_write ? WRITE : 0)), 2};
        D[2] = (struct desc){STATUS, 1, WRITE, 0};
    } else {
        D[1] = (struct desc){STATUS, 1, WRITE, 0};
    }
    submit(BLK, 0, QSIZE);
    return *(volatile u8 *)STATUS;
}

static void test_blk_valid(void)
{
    check(dev_setup(BLK, QSIZE) == 0, "blk setup");
    u64 cap = (u64)rd(BLK, 0x100) | ((u64)rd(BLK, 0x104) << 32);
    check(cap == 2048, "blk capacity 1 MiB");
    u8 *w = (u8 *)DATA, *r = (u8 *)DATA2;
    for (int i = 0; i < 1024; i++)
        w[i] = (u8)(i * 7 + 3);
    check(blk_req(1, 3, DATA, 1024, 0) == 0, "blk write 2 sectors");
    memset(r, 0, 1024);
    check(blk_req(0, 3, DATA2, 1024, 1) == 0, "blk read 2 sectors");
    int same = 1;
    for (int i = 0; i < 1024; i++)
        same &= r[i] == w[i];
    check(same, "blk data round trip");
    check(used_len((u16)(used_idx() - 1)) == 1025, "blk used length");
    check(blk_req(0, 0, DATA2, 512, 1) == 0 && r[0] == 'C' && r[1] == 'O', "blk reads the image");
    check(blk_req(4, 0, 0, 0, 0) == 0, "blk flush");
    memset(r, 0, 32);
    check(blk_req(8, 0, DATA2, 20, 1) == 0 && r[0] == 'c' && r[6] == '-', "blk get id");
    check(blk_req(0, 2047, DATA2, 1024, 1) == 1, "blk read past the end fails");
    check(blk_req(0, ~0ul, DATA2, 512, 1) == 1, "blk huge sector fails");
    check(blk_req(1, 0, DATA, 100, 0) == 1, "blk partial sector fails");
    check(blk_req(77, 0, DATA2, 512, 1) == 2, "blk unknown type unsupported");
    check(!needs_reset(BLK), "blk still healthy after bad requests");
    /* a read through an indirect table */
    volatile struct desc *ind = (struct desc *)IND;
    *(volatile struct blkhdr *)HDR = (struct blkhdr){0, 0, 3};
    ind[0] = (struct desc){HDR, 16, NEXT, 1};
    ind[1] = (struct desc){DATA2, 1024, NEXT | WRITE, 2};
    ind[2] = (struct desc){STATUS, 1, WRITE, 0};
    memset(r, 0, 1024);
    *(volatile u8 *)STATUS = 0xee;
    D[5] = (struct desc){IND, 48, INDIRECT, 0};
    submit(BLK, 5, QSIZE);
    same = *(volatile u8 *)STATUS == 0;
    for (int i = 0; i < 1024; i++)
        same &= r[i] == w[i];
    check(same, "blk indirect read");
    /* a chain with no writable status byte is returned untouched */
    u16 before = used_idx();
    D[0] = (struct desc){HDR, 16, 0, 0};
    submit(BLK, 0, QSIZE);
    check(used_idx() == (u16)(before + 1) && used_len(before) == 0 && !needs_reset(BLK), "blk no status byte");
}

/* Each case builds a bad chain at head 0 and expects DEVICE_NEEDS_RESET with no
 * used entry; then the device is reset for the next case. */
static void bad_case(const char *name, void (*build)(void))
{
    dev_setup(BLK, QSIZE);
    *(volatile struct blkhdr *)HDR = (struct blkhdr){0, 0, 0};
    build();
    u16 before = used_idx();
    if (avail_idx == 0)
        submit(BLK, 0, QSIZE);
    else
        wr(BLK, 0x50, 0);
    check(needs_reset(BLK) && used_idx() == before, name);
    wr(BLK, 0x64, 3);
}
static void b_loop(void)
{
    D[0] = (struct desc){HDR, 16, NEXT, 1};
    D[1] = (struct desc){DATA, 512, NEXT | WRITE, 2};
    D[2] = (struct desc){STATUS, 1, NEXT | WRITE, 1};
}
static void b_self_loop(void) { D[0] = (struct desc){HDR, 16, NEXT, 0}; }
static void b_oob_addr(void)
{
    D[0] = (struct desc){HDR, 16, NEXT, 1};
    D[1] = (struct desc){0x7fff00000000ul, 512, WRITE, 0};
}
static void b_mmio_addr(void)
{
    D[0] = (struct desc){HDR, 16, NEXT, 1};
    D[1] = (struct desc){0xd0001000ul, 512, WRITE, 0};
}
static void b_huge_len(void)
{
    D[0] = (struct desc){HDR, 16, NEXT, 1};
    D[1] = (struct desc){DATA, 0xffffffffu, WRITE, 0};
}
static void b_end_of_ram(void)
{
    D[0] = (struct desc){HDR, 16, NEXT, 1};
    D[1] = (struct desc){(64ul << 20) - 8, 16, WRITE, 0};
}
static void b_wrap(void)
{
    D[0] = (struct desc){HDR, 16, NEXT, 1};
    D[1] = (struct desc){~0ul - 4, 16, WRITE, 0};
}
static void b_long_chain(void)
{
    for (int i = 0; i < 200; i++)
        D[i] = (struct desc){DATA + (u64)i, 1, (u16)(i < 199 ? NEXT : 0) | (i ? WRITE : 0), (u16)(i + 1)};
}
static void b_next_oob(void) { D[0] = (struct desc){HDR, 16, NEXT, 300}; }
static void b_head_oob(void)
{
    AVAIL[2] = 999;
    AVAIL[1] = ++avail_idx;
}
static void b_avail_jump(void)
{
    D[0] = (struct desc){HDR, 16, 0, 0};
    avail_idx = 1000;
    AVAIL[1] = avail_idx;
}
static void b_read_after_write(void)
{
    D[0] = (struct desc){STATUS, 1, NEXT | WRITE, 1};
    D[1] = (struct desc){HDR, 16, 0, 0};
}
static void b_ind_len(void) { D[0] = (struct desc){IND, 40, INDIRECT, 0}; }
static void b_ind_oob(void) { D[0] = (struct desc){0x7ff000000000ul, 48, INDIRECT, 0}; }
static void b_ind_huge(void) { D[0] = (struct desc){IND, 16 * 4096, INDIRECT, 0}; }
static void b_ind_nested(void)
{
    volatile struct desc *ind = (struct desc *)IND;
    ind[0] = (struct desc){IND + 0x100, 32, INDIRECT, 0};
    D[0] = (struct desc){IND, 16, INDIRECT, 0};
}
static void b_ind_next(void)
{
    D[0] = (struct desc){IND, 16, INDIRECT | NEXT, 1};
    D[1] = (struct desc){STATUS, 1, WRITE, 0};
}
static void b_ind_loop(void)
{
    volatile struct desc *ind = (struct desc *)IND;
    ind[0] = (struct desc){HDR, 16, NEXT, 1};
    ind[1] = (struct desc){STATUS, 1, NEXT | WRITE, 0};
    D[0] = (struct desc){IND, 32, INDIRECT, 0};
}
static void b_ind_next_oob(void)
{
    volatile struct desc *ind = (struct desc *)IND;
    ind[0] = (struct desc){HDR, 16, NEXT, 2};
    D[0] = (struct desc){IND, 32, INDIRECT, 0};
}

static void test_ring_layout(void)
{
    /* rings outside RAM or misaligned: QueueReady stays 0 */
    wr(BLK, 0x70, 0);
    wr(BLK, 0x70, 1 | 2);
    wr(BLK, 0x24, 1);
    wr(BLK, 0x20, 1);
    wr(BLK, 0x70, 1 | 2 | 8);
    wr(BLK, 0x30, 0);
    wr(BLK, 0x38, 8);
    wr(BLK, 0x80, 0x10000000);
    wr(BLK, 0x84, 0x7f);
    wr(BLK, 0x90, (u32)(QMEM + 0x1000));
    wr(BLK, 0xa0, (u32)(QMEM + 0x2000));
    wr(BLK, 0x44, 1);
    check(rd(BLK, 0x44) == 0, "ring outside memory refused");
    wr(BLK, 0x80, (u32)QMEM + 8);
    wr(BLK, 0x84, 0);
    wr(BLK, 0x44, 1);
    check(rd(BLK, 0x44) == 0, "misaligned ring refused");
    wr(BLK, 0x80, (u32)QMEM);
    wr(BLK, 0x38, 12);
    wr(BLK, 0x44, 1);
    check(rd(BLK, 0x44) == 0, "queue size not a power of two refused");
    wr(BLK, 0x38, 1024);
    wr(BLK, 0x44, 1);
    check(rd(BLK, 0x44) == 0, "queue size above max refused");
    wr(BLK, 0x70, 0);
    /* features without VERSION_1 are refused */
    wr(BLK, 0x70, 1 | 2);
    wr(BLK, 0x24, 1);
    wr(BLK, 0x20, 0);
    wr(BLK, 0x70, 1 | 2 | 8);
    check(!(rd(BLK, 0x70) & 8), "legacy driver refused");
    /* odd-sized accesses to registers read zero, do nothing */
    check(*(volatile u8 *)(BLK + 0) == 0 && *(volatile u16 *)(BLK + 2) == 0, "narrow register reads");
    check(rd(BLK, 0x100 + 60) == 0, "config read past end");
}

/* virtio-console multiport: the control handshake must announce port 1 named
 * "cocoon.agent", and bytes sent on it come back (the runner echoes them). */
#define CON 0xd0002000ul
#define CQ(i) (0x600000ul + (u64)(i)*0x3000)
#define CBUF 0x700000ul
static u16 cavail[6], cused[6];

static void cq_add(int qi, u16 head, u64 addr, u32 len, u16 flags)
{
    volatile struct desc *d = (struct desc *)CQ(qi);
    volatile u16 *av = (u16 *)(CQ(qi) + 0x1000);
    d[head] = (struct desc){addr, len, flags, 0};
    av[2 + cavail[qi] % 8] = head;
    __asm__ volatile("" ::: "memory");
    av[1] = ++cavail[qi];
}
static int cq_used(int qi, u32 *len)
{
    volatile u16 *u = (u16 *)(CQ(qi) + 0x2000);
    if (u[1] == cused[qi])
        return -1;
    volatile u32 *e = (u32 *)(CQ(qi) + 0x2000 + 4 + 8 * (cused[qi] % 8));
    cused[qi]++;
    if (len)
        *len = e[1];
    return (int)e[0];
}
static void ctrl_send(u32 id, u16 ev, u16 val)
{
    volatile u8 *m = (u8 *)(CBUF + 0x8000);
    *(volatile u32 *)m = id;
    *(volatile u16 *)(m + 4) = ev;
    *(volatile u16 *)(m + 6) = val;
    cq_add(3, 0, CBUF + 0x8000, 8, 0);
    wr(CON, 0x50, 3);
}
static int ctrl_recv(u16 *ev, u32 *id, char *name)
{
    u32 len;
    int h = cq_used(2, &len);
    if (h < 0 || h > 3)
        return -1;
    volatile u8 *m = (u8 *)(CBUF + 0x100 * (u64)h);
    *id = *(volatile u32 *)m;
    *ev = *(volatile u16 *)(m + 4);
    for (u32 i = 8; i < len && i < 40; i++)
        name[i - 8] = (char)m[i];
    if (len >= 8 && len < 40)
        name[len - 8] = 0;
    cq_add(2, (u16)h, CBUF + 0x100 * (u64)h, 64, WRITE); /* recycle */
    wr(CON, 0x50, 2);
    return 0;
}

static void test_console(void)
{
    if (rd(CON, 8) != 3) {
        puts_("console absent\n");
        return;
    }
    wr(CON, 0x70, 0);
    wr(CON, 0x70, 3);
    wr(CON, 0x24, 0);
    wr(CON, 0x20, 2); /* MULTIPORT */
    wr(CON, 0x24, 1);
    wr(CON, 0x20, 1);
    wr(CON, 0x70, 11);
    memset((void *)CQ(0), 0, 6 * 0x3000);
    for (int qi = 0; qi < 6; qi++) {
        wr(CON, 0x30, (u32)qi);
        wr(CON, 0x38, 8);
        wr(CON, 0x80, (u32)CQ(qi));
        wr(CON, 0x90, (u32)(CQ(qi) + 0x1000));
        wr(CON, 0xa0, (u32)(CQ(qi) + 0x2000));
        wr(CON, 0x44, 1);
    }
    wr(CON, 0x70, 15);
    check(rd(CON, 0x100 + 4) == 2, "console max_nr_ports");
    for (int i = 0; i < 4; i++)
        cq_add(2, (u16)i, CBUF + 0x100 * (u64)i, 64, WRITE);
    wr(CON, 0x50, 2);
    ctrl_send(0, 0, 1); /* DEVICE_READY */
    u16 ev = 0xffff;
    u32 id = 0;
    char name[40] = {0};
    check(ctrl_recv(&ev, &id, name) == 0 && ev == 1 && id == 1, "console DEVICE_ADD port 1");
    ctrl_send(1, 3, 1); /* PORT_READY */
    int got_name = 0, got_open = 0;
    for (int i = 0; i < 4; i++) {
        if (ctrl_recv(&ev, &id, name) < 0)
            break;
        if (ev == 7 && id == 1) {
            const char *want = "cocoon.agent";
            got_name = 1;
            for (int k = 0; want[k]; k++)
                got_name &= name[k] == want[k];
        }
        if (ev == 6 && id == 1)
            got_open = 1;
    }
    check(got_name, "console PORT_NAME cocoon.agent");
    check(got_open, "console host PORT_OPEN");
    ctrl_send(1, 6, 1); /* the guest opens the port */
    volatile char *rx = (char *)(CBUF + 0x4000), *tx = (char *)(CBUF + 0x5000);
    memset((void *)rx, 0, 64);
    cq_add(4, 0, CBUF + 0x4000, 64, WRITE);
    wr(CON, 0x50, 4);
    const char *msg = "hello agent";
    for (int k = 0; k < 11; k++)
        tx[k] = msg[k];
    cq_add(5, 0, CBUF + 0x5000, 11, 0);
    wr(CON, 0x50, 5);
    u32 len = 0;
    check(cq_used(5, &len) == 0, "console tx returned");
    int h = -1;
    for (long spin = 0; spin < 2000000000l && h < 0; spin++)
        h = cq_used(4, &len);
    int same = h == 0 && len == 11;
    for (int k = 0; same && k < 11; k++)
        same &= rx[k] == msg[k];
    check(same, "console echo round trip");
}

/* The review's finding on the kvm backend: the console holds a popped receive chain
 * while it waits for host bytes; the guest turns that queue off and gives it a larger
 * QueueNum. A device that then pushed the held chain with the new size wrote its used
 * entry up to ~2 KiB past the ring (used_idx % 256 entries of 8 bytes), here past the
 * end of guest RAM (64 MiB), at an index the guest steered there with 20 earlier round
 * trips. The VMM must drop the
 * chain, survive, and work again once the queue is set up properly. */
#define RAM_TOP (64ul << 20)
#define TOP_USED (RAM_TOP - 72) /* 6 + 8 * 8 bytes: the used ring of size 8, the last in RAM */

static void rx1_setup(u64 used_gpa)
{
    wr(CON, 0x30, 4);
    wr(CON, 0x44, 0);
    memset((void *)CQ(4), 0, 0x2000);
    memset((void *)used_gpa, 0, 72);
    wr(CON, 0x38, 8);
    wr(CON, 0x80, (u32)CQ(4));
    wr(CON, 0x90, (u32)(CQ(4) + 0x1000));
    wr(CON, 0xa0, (u32)used_gpa);
    wr(CON, 0xa4, (u32)(used_gpa >> 32));
    wr(CON, 0x44, 1);
    cavail[4] = cused[4] = 0;
}

static int rx1_wait(u64 used_gpa, long spins)
{
    volatile u16 *u = (u16 *)used_gpa;
    for (long spin = 0; spin < spins; spin++)
        if (u[1] != cused[4]) {
            cused[4] = u[1];
            return 0;
        }
    return -1;
}

static void echo_one(char ch)
{
    volatile char *tx = (char *)(CBUF + 0x5000);
    tx[0] = ch;
    cq_add(5, 0, CBUF + 0x5000, 1, 0);
    wr(CON, 0x50, 5);
}

static void test_console_resize_held_chain(void)
{
    if (rd(CON, 8) != 3)
        return;
    rx1_setup(TOP_USED);
    int rounds = 0;
    for (; rounds < 20; rounds++) {
        cq_add(4, 0, CBUF + 0x4000, 64, WRITE);
        wr(CON, 0x50, 4);
        echo_one('a');
        if (rx1_wait(TOP_USED, 200000000l) < 0)
            break;
    }
    check(rounds == 20, "console 20 round trips with the ring at the top of RAM");
    cq_add(4, 0, CBUF + 0x4000, 64, WRITE); /* held by the device: no host bytes yet */
    wr(CON, 0x50, 4);
    wr(CON, 0x30, 4);
    wr(CON, 0x44, 0);   /* QueueReady = 0 */
    wr(CON, 0x38, 256); /* a QueueNum the ring was never laid out for */
    echo_one('b');      /* host bytes arrive for the held chain */
    u32 len;
    for (long spin = 0; spin < 200000000l && cq_used(5, &len) < 0; spin++)
        ;
    for (volatile long spin = 0; spin < 100000l; spin++) /* the echo reaches the device (~0.5 s here) */
        ;
    check(rd(CON, 0x44) == 0, "console queue stays off after QueueNum changed");
    wr(CON, 0x38, 0); /* and QueueNum 0 is refused, not divided by */
    wr(CON, 0x44, 1);
    check(rd(CON, 0x44) == 0, "console QueueNum 0 refused");
    rx1_setup(CQ(4) + 0x2000);
    cq_add(4, 0, CBUF + 0x4000, 64, WRITE);
    wr(CON, 0x50, 4);
    check(rx1_wait(CQ(4) + 0x2000, 2000000000l) == 0 && *(volatile char *)(CBUF + 0x4000) == 'b',
          "console works after the resize (the byte waited)");
}

int main(void)
{
    puts_("long mode guest up\n");
    test_exits();
    test_rng();
    test_blk_valid();
    test_ring_layout();
    bad_case("bad descriptor loop", b_loop);
    bad_case("bad self loop", b_self_loop);
    bad_case("bad address outside ram", b_oob_addr);
    bad_case("bad address in mmio", b_mmio_addr);
    bad_case("bad huge length", b_huge_len);
    bad_case("bad buffer past end of ram", b_end_of_ram);
    bad_case("bad address wraps", b_wrap);
    bad_case("bad chain too long", b_long_chain);
    bad_case("bad next index", b_next_oob);
    bad_case("bad head index", b_head_oob);
    bad_case("bad avail index jump", b_avail_jump);
    bad_case("bad readable after writable", b_read_after_write);
    bad_case("bad indirect length", b_ind_len);
    bad_case("bad indirect address", b_ind_oob);
    bad_case("bad indirect too big", b_ind_huge);
    bad_case("bad nested indirect", b_ind_nested);
    bad_case("bad indirect with next", b_ind_next);
    bad_case("bad indirect loop", b_ind_loop);
    bad_case("bad indirect next index", b_ind_next_oob);
    /* after all that the device works again after a reset */
    test_blk_valid();
    test_console();
    test_console_resize_held_chain();
    return done_();
}
