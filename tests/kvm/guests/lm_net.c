/* 64-bit micro-guest for virtio-net (0xd0003000): reads the MAC from the config space,
 * sends an ARP request for the gateway 10.0.2.2 through the transmit queue and waits
 * for the network stack's reply on the receive queue; then a short transmit frame
 * (dropped, device still fine) and malformed transmit rings (address outside RAM, huge
 * length, descriptor loop), each of which must put the device in DEVICE_NEEDS_RESET
 * without crashing the VMM, and a working ARP exchange again after a device reset.
 * Prints "ok NAME" / "FAIL NAME" lines and "DONE <ok> <fail>". */
#include "virtq.h"

#define NET 0xd0003000ul
#define QRX 0x300000ul /* desc +0, avail +0x1000, used +0x2000 */
#define QTX 0x340000ul
#define RXBUF 0x400000ul /* 16 x 2 KiB */
#define TXBUF 0x500000ul
#define QSIZE 16
#define NRX 8

static int memcmp_(const void *a, const void *b, u64 n)
{
    const u8 *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

static inline u32 rd(u32 off) { return *(volatile u32 *)(NET + off); }
static inline void wr(u32 off, u32 v) { *(volatile u32 *)(NET + off) = v; }
static inline u8 rd8(u32 off) { return *(volatile u8 *)(NET + off); }

static volatile struct desc *desc(u64 q) { return (volatile struct desc *)q; }
static volatile u16 *avail(u64 q) { return (volatile u16 *)(q + 0x1000); }
static volatile u16 *used(u64 q) { return (volatile u16 *)(q + 0x2000); }
static u16 aidx[2];
static u8 mac[6];

static void queue_setup(u32 qi, u64 q)
{
    memset((void *)q, 0, 0x3000);
    aidx[qi] = 0;
    wr(0x30, qi);
    wr(0x38, QSIZE);
    wr(0x80, (u32)q);
    wr(0x84, 0);
    wr(0x90, (u32)(q + 0x1000));
    wr(0x94, 0);
    wr(0xa0, (u32)(q + 0x2000));
    wr(0xa4, 0);
    wr(0x44, 1);
}
static void submit(u32 qi, u64 q, u16 head)
{
    avail(q)[2 + (aidx[qi] % QSIZE)] = head;
    __asm__ volatile("" ::: "memory");
    avail(q)[1] = ++aidx[qi];
    wr(0x50, qi);
}
static int needs_reset(void) { return (rd(0x70) & 0x40) != 0; }
/* With ioeventfd the device works on the VMM's I/O thread after the notify write
 * returns: results are polled for (bounded), never assumed synchronous. */
static int wait_for(volatile u16 *idx, u16 want)
{
    for (long spin = 0; spin < 100000000 && *idx != want; spin++)
        __asm__ volatile("pause");
    return *idx == want;
}
static int wait_reset(void)
{
    for (long spin = 0; spin < 20000000 && !needs_reset(); spin++)
        __asm__ volatile("pause");
    return needs_reset();
}

static int dev_setup(void)
{
    wr(0x70, 0);
    wr(0x70, 1 | 2);
    if (rd(0x08) != 1)
        return -1;
    wr(0x14, 0);
    u32 lo = rd(0x10);
    wr(0x24, 0);
    wr(0x20, lo & (1u << 5)); /* MAC only */
    wr(0x24, 1);
    wr(0x20, 1); /* VERSION_1 */
    wr(0x70, 1 | 2 | 8);
    if (!(rd(0x70) & 8) || !(lo & (1u << 5)))
        return -2;
    for (int i = 0; i < 6; i++)
        mac[i] = rd8(0x100 + (u32)i);
    queue_setup(0, QRX);
    queue_setup(1, QTX);
    wr(0x70, 1 | 2 | 8 | 4);
    for (u16 i = 0; i < NRX; i++) {
        desc(QRX)[i] = (struct desc){RXBUF + 2048ul * i, 2048, WRITE, 0};
        avail(QRX)[2 + i] = i;
    }
    avail(QRX)[1] = aidx[0] = NRX;
    wr(0x50, 0);
    return 0;
}

static u32 arp_request(u8 *f)
{
    memset(f, 0, 12); /* virtio_net_hdr_v1 */
    u8 *e = f + 12;
    memset(e, 0xff, 6);
    memcpy(e + 6, mac, 6);
    e[12] = 0x08, e[13] = 0x06;
    u8 *a = e + 14;
    static const u8 fixed[8] = {0, 1, 8, 0, 6, 4, 0, 1};
    memcpy(a, fixed, 8);
    memcpy(a + 8, mac, 6);
    a[14] = 10, a[15] = 0, a[16] = 2, a[17] = 15; /* sender 10.0.2.15 */
    memset(a + 18, 0, 6);
    a[24] = 10, a[25] = 0, a[26] = 2, a[27] = 2; /* target: the gateway */
    return 12 + 14 + 28;
}

/* ARP request out, reply back: 1 when the reply names the gateway's MAC. */
static int arp_exchange(void)
{
    u16 before = used(QRX)[1];
    u32 len = arp_request((u8 *)TXBUF);
    u16 h = aidx[1] % QSIZE;
    desc(QTX)[h] = (struct desc){TXBUF, len, 0, 0};
    submit(1, QTX, h);
    if (!wait_for(&used(QRX)[1], (u16)(before + 1)))
        return 0;
    volatile u32 *ue = (volatile u32 *)(QRX + 0x2000 + 4 + 8 * (before % QSIZE));
    u32 id = ue[0], ulen = ue[1];
    const u8 *r = (const u8 *)(RXBUF + 2048ul * id);
    const u8 *e = r + 12, *a = e + 14;
    static const u8 gw[6] = {0x52, 0x54, 0x00, 0xc0, 0xc0, 0x02};
    int ok = ulen >= 12 + 14 + 28 && r[10] == 1 && !memcmp_(e, mac, 6) && e[12] == 8 && e[13] == 6 && a[7] == 2 &&
             !memcmp_(a + 8, gw, 6) && a[14] == 10 && a[15] == 0 && a[16] == 2 && a[17] == 2;
    /* give the buffer back */
    avail(QRX)[2 + (aidx[0] % QSIZE)] = (u16)id;
    avail(QRX)[1] = ++aidx[0];
    wr(0x50, 0);
    return ok && wait_for(&used(QTX)[1], aidx[1]);
}

static void bad_tx(const char *name, int kind)
{
    dev_setup();
    u16 h = 0;
    if (kind == 0)
        desc(QTX)[0] = (struct desc){0x7fff00000000ul, 64, 0, 0}; /* outside guest RAM */
    else if (kind == 1)
        desc(QTX)[0] = (struct desc){TXBUF, 0xfffffff0u, 0, 0}; /* huge length */
    else {
        desc(QTX)[0] = (struct desc){TXBUF, 64, NEXT, 1}; /* loop */
        desc(QTX)[1] = (struct desc){TXBUF, 64, NEXT, 0};
    }
    submit(1, QTX, h);
    check(wait_reset() && used(QTX)[1] == 0, name);
}

int main(void)
{
    check(rd(0x00) == 0x74726976 && rd(0x04) == 2 && rd(0x08) == 1, "virtio-net id");
    check(dev_setup() == 0, "virtio-net setup");
    check(mac[0] == 0x52 && mac[1] == 0x54 && mac[5] == 0x0f, "mac from config");
    check(rd8(0x106) == 1, "link up");
    check(arp_exchange(), "arp reply from the gateway");
    /* a frame shorter than the header: dropped, the device keeps working */
    u16 h = aidx[1] % QSIZE;
    desc(QTX)[h] = (struct desc){TXBUF, 4, 0, 0};
    submit(1, QTX, h);
    check(wait_for(&used(QTX)[1], aidx[1]) && !needs_reset(), "short frame dropped");
    check(arp_exchange(), "arp again");
    bad_tx("bad tx address", 0);
    bad_tx("bad tx huge length", 1);
    bad_tx("bad tx descriptor loop", 2);
    check(dev_setup() == 0 && arp_exchange(), "arp after reset");
    return done_();
}
