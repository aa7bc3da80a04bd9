/* Saved state of the kvm backend's devices (kvm_devstate__save/load and each model's
 * save/load) on the fake host: a device driven into a non-trivial state is saved, a
 * fresh device over a copy of guest RAM loads it, and the driver carries on (held chains
 * popped again, used indexes continuing). Broken states (truncated, bad sizes, rings
 * outside RAM, another disk, another device set) are refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "kvm/dev/virtio.h"
#include "kvm/machine.h"
#include "kvm/snap.h"
#include "support/vdrv.h"

#define BASE 0xd0000000ull
#define RAM (4u << 20)
#define RINGS 0x100000ull
#define DATA 0x200000ull
#define DISK_BYTES (1u << 20)

enum { C_RX0 = 0, C_TX0 = 1, C_CRX = 2, C_CTX = 3, C_RX1 = 4, C_TX1 = 5 };

/* A second host whose RAM is a copy of the first's: the restored process. */
static void clone_host(struct host_fake *to, const struct host_fake *from)
{
    assert_int_equal(host_fake_init(to, RAM), 0);
    memcpy(to->mem.r[0].hva, from->mem.r[0].hva, RAM);
}

/* The same driver, now talking to the device on another host. */
static struct vdrv moved(const struct vdrv *d, struct host_fake *f)
{
    struct vdrv n = *d;
    n.f = f;
    return n;
}

static uint16_t used_idx(struct vdrv *d, int q)
{
    uint16_t idx;
    memcpy(&idx, vdrv_mem(d, d->q[q].used + 2, 2), 2);
    return idx;
}

static void send_ctrl(struct vdrv *d, uint32_t slot, uint32_t port, uint16_t event, uint16_t value)
{
    uint8_t m[8];
    memcpy(m, &port, 4);
    memcpy(m + 4, &event, 2);
    memcpy(m + 6, &value, 2);
    memcpy(vdrv_mem(d, DATA + 0x2000 + 8u * slot, 8), m, 8);
    struct vdrv_buf b = {DATA + 0x2000 + 8u * slot, 8, 0};
    vdrv_add(d, C_CTX, &b, 1);
    vdrv_notify(d, C_CTX);
}

static void make_disk(char *path, uint32_t bytes)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, bytes), 0);
    close(fd);
}

/* ---- virtio-console ---- */

/* A console with the port open, two control messages pending (no buffer for them), a
 * held receive chain and a held transmit chain (the socket full, nothing written). */
static void console_busy(struct host_fake *f, struct virtio_console *c, struct vdrv *d, int sv[2])
{
    assert_int_equal(host_fake_init(f, RAM), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(virtio_console__init(c, &f->host, BASE, 5, sv[0]), 0);
    assert_int_equal(vdrv_init(d, f, BASE, 6, 8, RINGS), 0);
    struct vdrv_buf crx = {DATA + 0x1000, 64, 1};
    vdrv_add(d, C_CRX, &crx, 1);
    vdrv_notify(d, C_CRX);
    send_ctrl(d, 0, 0, 0, 1); /* DEVICE_READY: DEVICE_ADD takes the one buffer */
    send_ctrl(d, 1, 1, 3, 1); /* PORT_READY: PORT_NAME and PORT_OPEN wait */
    send_ctrl(d, 2, 1, 6, 1); /* PORT_OPEN from the guest */
    assert_true(c->guest_open);
    assert_int_equal(c->nctrl, 2);

    struct vdrv_buf rx = {DATA, 256, 1};
    vdrv_add(d, C_RX1, &rx, 1);
    vdrv_notify(d, C_RX1);
    assert_true(c->rx_have);

    char junk[4096];
    memset(junk, 'j', sizeof(junk));
    while (write(sv[0], junk, sizeof(junk)) > 0) /* fill the socket: the next send waits */
        ;
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    memcpy(vdrv_mem(d, DATA + 0x3000, 6), "frame!", 6);
    struct vdrv_buf tx = {DATA + 0x3000, 6, 0};
    vdrv_add(d, C_TX1, &tx, 1);
    vdrv_notify(d, C_TX1);
    assert_true(c->tx_have);
    assert_int_equal(c->tx_off, 0);
}

/* Saves c, then loads the state into c2: a console of a new host g (a clone of f) on a
 * new socket pair tv; r is left at the end of what the load read. */
static void console_reload(struct virtio_console *c, struct host_fake *f, struct virtio_console *c2,
                           struct host_fake *g, int tv[2], struct snap_w *w, struct snap_r *r)
{
    char err[256] = "";
    snap_w__init(w);
    assert_int_equal(virtio_console__save(c, w, err, sizeof(err)), 0);
    clone_host(g, f);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, tv), 0);
    assert_int_equal(virtio_console__init(c2, &g->host, BASE, 5, tv[0]), 0);
    snap_r__init(r, w->buf, w->len);
    assert_int_equal(virtio_console__load(c2, r, err, sizeof(err)), 0);
}

static void test_console_continues_after_restore(void **state)
{
    (void)state;
    struct host_fake f, g;
    static struct virtio_console c, c2;
    struct vdrv d;
    int sv[2], tv[2];
    console_busy(&f, &c, &d, sv);
    struct snap_w w;
    struct snap_r r;
    console_reload(&c, &f, &c2, &g, tv, &w, &r);
    assert_int_equal(r.off, r.len);
    struct vdrv d2 = moved(&d, &g);
    assert_true(c2.guest_open);
    assert_int_equal(c2.nctrl, 2);
    assert_int_equal(g.level[5], 1); /* the unacknowledged interrupt, raised again */

    /* the held transmit chain was popped again and sent on the new socket */
    char got[16];
    assert_int_equal(recv(tv[1], got, sizeof(got), MSG_DONTWAIT), 6);
    assert_memory_equal(got, "frame!", 6);
    uint32_t id, len;
    assert_int_equal(vdrv_used(&d2, C_TX1, &id, &len), 1);

    /* the held receive chain was popped again; the new socket is watched for input */
    assert_true(c2.rx_have);
    assert_true(c2.want & EPOLLIN);
    assert_int_equal(write(tv[1], "hello", 5), 5);
    assert_true(host_fake_poll(&g) >= 1);
    assert_int_equal(vdrv_used(&d2, C_RX1, &id, &len), 1);
    assert_int_equal(id, 0);
    assert_int_equal(len, 5);
    assert_memory_equal(vdrv_mem(&d2, DATA, 5), "hello", 5);
    assert_int_equal(used_idx(&d2, C_RX1), 1);

    /* the pending control messages arrive once the driver gives buffers */
    for (uint32_t i = 0; i < 2; i++) {
        struct vdrv_buf b = {DATA + 0x1100 + 64u * i, 64, 1};
        vdrv_add(&d2, C_CRX, &b, 1);
    }
    vdrv_notify(&d2, C_CRX);
    assert_int_equal(used_idx(&d2, C_CRX), 3);
    assert_int_equal(c2.nctrl, 0);
    assert_memory_equal(vdrv_mem(&d2, DATA + 0x1100 + 8, 12), "cocoon.agent", 12);

    snap_w__free(&w);
    close(sv[0]);
    close(sv[1]);
    close(tv[0]);
    close(tv[1]);
    host_fake_free(&f);
    host_fake_free(&g);
}

static void test_console_mid_frame_refuses_to_save(void **state)
{
    (void)state;
    struct host_fake f;
    static struct virtio_console c;
    struct vdrv d;
    int sv[2];
    char err[256] = "";
    console_busy(&f, &c, &d, sv);
    c.tx_off = 3; /* the first bytes of the frame left already */
    struct snap_w w;
    snap_w__init(&w);
    assert_int_equal(virtio_console__save(&c, &w, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "mid-frame; try again"));
    snap_w__free(&w);
    close(sv[0]);
    close(sv[1]);
    host_fake_free(&f);
}

/* A console whose host side was gone when saved: the new socket is announced. */
static void test_console_tells_the_guest_its_new_host_side(void **state)
{
    (void)state;
    struct host_fake f, g;
    static struct virtio_console c, c2;
    struct vdrv d;
    int sv[2], tv[2];
    console_busy(&f, &c, &d, sv);
    c.host_closed = 1;
    struct snap_w w;
    struct snap_r r;
    console_reload(&c, &f, &c2, &g, tv, &w, &r);
    assert_int_equal(c2.nctrl, 3);
    uint16_t ev, val;
    memcpy(&ev, c2.ctrl[2] + 4, 2);
    memcpy(&val, c2.ctrl[2] + 6, 2);
    assert_int_equal(ev, 6); /* PORT_OPEN 1 */
    assert_int_equal(val, 1);
    snap_w__free(&w);
    close(sv[0]);
    close(sv[1]);
    close(tv[0]);
    close(tv[1]);
    host_fake_free(&f);
    host_fake_free(&g);
}

/* ---- virtio-blk ---- */

static void blk_add(struct vdrv *d, uint32_t type, uint64_t sector, uint32_t len)
{
    uint8_t hdr[16] = {0};
    memcpy(hdr, &type, 4);
    memcpy(hdr + 8, &sector, 8);
    memcpy(vdrv_mem(d, DATA, 16), hdr, 16);
    *(uint8_t *)vdrv_mem(d, DATA + 0x3000, 1) = 0xee;
    struct vdrv_buf b[3] = {{DATA, 16, 0}, {DATA + 0x1000, len, type == 0}, {DATA + 0x3000, 1, 1}};
    vdrv_add(d, 0, b, 3);
}

static uint8_t blk_request(struct vdrv *d, uint32_t type, uint64_t sector, uint32_t len)
{
    blk_add(d, type, sector, len);
    vdrv_notify(d, 0);
    uint32_t id, used;
    assert_int_equal(vdrv_used(d, 0, &id, &used), 1);
    return *(uint8_t *)vdrv_mem(d, DATA + 0x3000, 1);
}

static void test_blk_serves_after_restore_and_checks_the_disk(void **state)
{
    (void)state;
    struct host_fake f, g;
    static struct virtio_blk b, b2;
    struct vdrv d;
    char path[] = "/tmp/cocoon-test-devsnap-XXXXXX", other[] = "/tmp/cocoon-test-devsnap-XXXXXX", err[256];
    make_disk(path, DISK_BYTES);
    make_disk(other, 2 * DISK_BYTES);
    assert_int_equal(host_fake_init(&f, RAM), 0);
    assert_int_equal(virtio_blk__init(&b, &f.host, BASE, 6, path, "raw", 0, err, sizeof(err)), 0);
    assert_int_equal(vdrv_init(&d, &f, BASE, 1, 16, RINGS), 0);
    memset(vdrv_mem(&d, DATA + 0x1000, 512), 0x5a, 512);
    assert_int_equal(blk_request(&d, 1, 3, 512), 0);
    blk_add(&d, 0, 3, 512); /* a read made available, its notification lost with the old process */
    memset(vdrv_mem(&d, DATA + 0x1000, 512), 0, 512);

    struct snap_w w;
    snap_w__init(&w);
    assert_int_equal(virtio_blk__save(&b, &w, err, sizeof(err)), 0);
    clone_host(&g, &f);
    struct snap_r r;

    /* another disk size: refused */
    assert_int_equal(virtio_blk__init(&b2, &g.host, BASE, 6, other, "raw", 0, err, sizeof(err)), 0);
    snap_r__init(&r, w.buf, w.len);
    assert_int_equal(virtio_blk__load(&b2, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "bytes"));
    virtio_blk__close(&b2);
    host_fake_free(&g);

    /* read-only where it was writable: refused (the driver negotiated discard) */
    clone_host(&g, &f);
    assert_int_equal(virtio_blk__init(&b2, &g.host, BASE, 6, path, "raw", 1, err, sizeof(err)), 0);
    snap_r__init(&r, w.buf, w.len);
    assert_int_equal(virtio_blk__load(&b2, &r, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    virtio_blk__close(&b2);
    host_fake_free(&g);

    clone_host(&g, &f);
    assert_int_equal(virtio_blk__init(&b2, &g.host, BASE, 6, path, "raw", 0, err, sizeof(err)), 0);
    snap_r__init(&r, w.buf, w.len);
    assert_int_equal(virtio_blk__load(&b2, &r, err, sizeof(err)), 0);
    struct vdrv d2 = moved(&d, &g);
    uint32_t id, len;
    assert_int_equal(vdrv_used(&d2, 0, &id, &len), 1); /* served at load */
    assert_int_equal(len, 513);
    uint8_t want[512];
    memset(want, 0x5a, sizeof(want));
    assert_memory_equal(vdrv_mem(&d2, DATA + 0x1000, 512), want, 512);
    assert_int_equal(blk_request(&d2, 4, 0, 0), 0); /* a flush, notified */
    assert_int_equal(used_idx(&d2, 0), 3);

    snap_w__free(&w);
    virtio_blk__close(&b);
    virtio_blk__close(&b2);
    unlink(path);
    unlink(other);
    host_fake_free(&f);
    host_fake_free(&g);
}

/* The restoring process opens the qcow2 image while the saving one still has it open:
 * the save wrote the metadata of the guest's writes first. */
static void test_blk_save_writes_qcow2_metadata(void **state)
{
    (void)state;
    struct host_fake f, g;
    static struct virtio_blk b, b2;
    struct vdrv d;
    char dir[] = "/tmp/cocoon-test-devsnap-XXXXXX", path[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/disk.qcow2", dir);
    assert_int_equal(qcow2_create(path, DISK_BYTES, NULL, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(host_fake_init(&f, RAM), 0);
    assert_int_equal(virtio_blk__init(&b, &f.host, BASE, 6, path, "qcow2", 0, err, sizeof(err)), 0);
    assert_int_equal(vdrv_init(&d, &f, BASE, 1, 16, RINGS), 0);
    memset(vdrv_mem(&d, DATA + 0x1000, 512), 0x77, 512);
    assert_int_equal(blk_request(&d, 1, 100, 512), 0);
    struct snap_w w;
    snap_w__init(&w);
    assert_int_equal(virtio_blk__save(&b, &w, err, sizeof(err)), 0);

    clone_host(&g, &f);
    assert_int_equal(virtio_blk__init(&b2, &g.host, BASE, 6, path, "qcow2", 0, err, sizeof(err)), 0);
    struct snap_r r;
    snap_r__init(&r, w.buf, w.len);
    assert_int_equal(virtio_blk__load(&b2, &r, err, sizeof(err)), 0);
    struct vdrv d2 = moved(&d, &g);
    memset(vdrv_mem(&d2, DATA + 0x1000, 512), 0, 512);
    assert_int_equal(blk_request(&d2, 0, 100, 512), 0);
    uint8_t want[512];
    memset(want, 0x77, sizeof(want));
    assert_memory_equal(vdrv_mem(&d2, DATA + 0x1000, 512), want, 512);
    snap_w__free(&w);
    virtio_blk__close(&b2);
    virtio_blk__close(&b);
    unlink(path);
    rmdir(dir);
    host_fake_free(&f);
    host_fake_free(&g);
}

/* ---- virtio-rng, virtio-net, legacy devices ---- */

static void test_rng_continues_and_refuses_bad_queues(void **state)
{
    (void)state;
    struct host_fake f, g;
    static struct virtio_rng rng, rng2;
    struct vdrv d;
    char err[256];
    assert_int_equal(host_fake_init(&f, RAM), 0);
    assert_int_equal(virtio_rng__init(&rng, &f.host, BASE, 5), 0);
    assert_int_equal(vdrv_init(&d, &f, BASE, 1, 8, RINGS), 0);
    struct vdrv_buf b = {DATA, 64, 1};
    vdrv_add(&d, 0, &b, 1);
    vdrv_notify(&d, 0);
    struct snap_w w;
    snap_w__init(&w);
    assert_int_equal(virtio_rng__save(&rng, &w, err, sizeof(err)), 0);

    clone_host(&g, &f);
    assert_int_equal(virtio_rng__init(&rng2, &g.host, BASE, 5), 0);
    struct snap_r r;
    snap_r__init(&r, w.buf, w.len);
    assert_int_equal(virtio_rng__load(&rng2, &r, err, sizeof(err)), 0);
    struct vdrv d2 = moved(&d, &g);
    uint32_t id, len;
    assert_int_equal(vdrv_used(&d2, 0, &id, &len), 1); /* the entry from before */
    vdrv_add(&d2, 0, &b, 1);
    vdrv_notify(&d2, 0);
    assert_int_equal(vdrv_used(&d2, 0, &id, &len), 1);
    assert_int_equal(len, 64);
    assert_int_equal(used_idx(&d2, 0), 2);
    host_fake_free(&g);

    /* The transport's layout: 9 u32 and a u64, then per queue size u16, ready, indirect,
     * broken u8, num, last_avail, used_idx u16, desc, avail, used u64. */
    const size_t q0 = 44, num = q0 + 5, desc = q0 + 11, feat = 36;
    struct {
        size_t off, n;
        uint64_t v;
        const char *want;
    } bad[] = {
        {q0, 2, 3, "power of two"},
        {num, 2, 3, "power of two"},
        {q0, 2, 512, "power of two"},
        {desc, 8, RAM - 16, "outside"},
        {desc, 8, ~0ull - 15, "outside"},
        {desc, 8, RINGS + 1, "misaligned"},
        {feat, 8, 1ull << 31, "not all offered"},
        {q0 + 2, 1, 2, "neither 0 nor 1"},
        {4, 4, 1, "virtio device"},
        {0, 4, 9, "version"},
        {12, 4, 0x100, "status"},
        {28, 4, 4, "interrupt status"},
        {q0 + 7, 4, 0x00640064, "does not match"}, /* last_avail = used_idx = 100, avail idx 1 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *s = malloc(w.len);
        memcpy(s, w.buf, w.len);
        for (size_t k = 0; k < bad[i].n; k++)
            s[bad[i].off + k] = (uint8_t)(bad[i].v >> (8 * k));
        clone_host(&g, &f);
        assert_int_equal(virtio_rng__init(&rng2, &g.host, BASE, 5), 0);
        snap_r__init(&r, s, w.len);
        err[0] = 0;
        assert_int_equal(virtio_rng__load(&rng2, &r, err, sizeof(err)), -1);
        if (!strstr(err, bad[i].want))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, bad[i].want);
        host_fake_free(&g);
        free(s);
    }
    snap_w__free(&w);
    host_fake_free(&f);
}

static void test_net_continues_with_the_new_mac(void **state)
{
    (void)state;
    struct host_fake f, g;
    static struct virtio_net n, n2;
    struct vdrv d;
    int sv[2], tv[2];
    char err[256];
    const uint8_t mac[6] = {0x52, 0x54, 0, 1, 2, 3}, mac2[6] = {0x52, 0x54, 0, 9, 9, 9};
    assert_int_equal(host_fake_init(&f, RAM), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(virtio_net__init(&n, &f.host, BASE, 10, sv[0], mac, err, sizeof(err)), 0);
    assert_int_equal(vdrv_init(&d, &f, BASE, 2, 16, RINGS), 0);
    struct vdrv_buf rx = {DATA + 0x10000, 2048, 1};
    vdrv_add(&d, 0, &rx, 1);
    vdrv_notify(&d, 0);
    /* half a frame from the link: buffered, dropped by the save */
    uint8_t frame[4 + 100];
    uint32_t be = htonl(100);
    memcpy(frame, &be, 4);
    memset(frame + 4, 0xab, 100);
    assert_int_equal(send(sv[1], frame, 50, 0), 50);
    host_fake_poll(&f);
    assert_int_equal(n.ilen, 50);
    struct snap_w w;
    snap_w__init(&w);
    assert_int_equal(virtio_net__save(&n, &w, err, sizeof(err)), 0);

    clone_host(&g, &f);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, tv), 0);
    assert_int_equal(virtio_net__init(&n2, &g.host, BASE, 10, tv[0], mac2, err, sizeof(err)), 0);
    struct snap_r r;
    snap_r__init(&r, w.buf, w.len);
    assert_int_equal(virtio_net__load(&n2, &r, err, sizeof(err)), 0);
    struct vdrv d2 = moved(&d, &g);
    assert_int_equal(n2.ilen, 0);
    uint8_t cfg[6];
    for (uint32_t i = 0; i < 6; i++) {
        uint8_t v;
        host_fake_access(&g, 0, BASE + VR_CONFIG + i, &v, 1, 0);
        cfg[i] = v;
    }
    assert_memory_equal(cfg, mac2, 6);
    assert_int_equal(send(tv[1], frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
    host_fake_poll(&g);
    uint32_t id, len;
    assert_int_equal(vdrv_used(&d2, 0, &id, &len), 1);
    assert_int_equal(len, 112);
    assert_memory_equal((uint8_t *)vdrv_mem(&d2, DATA + 0x10000 + 12, 100), frame + 4, 100);
    snap_w__free(&w);
    virtio_net__close(&n);
    virtio_net__close(&n2);
    close(sv[0]);
    close(sv[1]);
    close(tv[0]);
    close(tv[1]);
    host_fake_free(&f);
    host_fake_free(&g);
}

static void pio_w(struct host_fake *f, uint64_t port, uint8_t v) { host_fake_access(f, 1, port, &v, 1, 1); }
static uint8_t pio_r(struct host_fake *f, uint64_t port)
{
    uint8_t v = 0;
    host_fake_access(f, 1, port, &v, 1, 0);
    return v;
}

static void test_uart_and_reset_registers(void **state)
{
    (void)state;
    struct host_fake f, g;
    static struct uart u, u2;
    static struct reset_dev rs, rs2;
    char err[256];
    assert_int_equal(host_fake_init(&f, RAM), 0);
    assert_int_equal(uart__init(&u, &f.host, -1), 0);
    assert_int_equal(reset__init(&rs, &f.host), 0);
    pio_w(&f, 0x3fb, 0x80); /* DLAB */
    pio_w(&f, 0x3f8, 1);
    pio_w(&f, 0x3f9, 0);
    pio_w(&f, 0x3fb, 0x03);
    pio_w(&f, 0x3f9, 0x02); /* THRE interrupt on: pending at once */
    pio_w(&f, 0x3ff, 0x42);
    pio_w(&f, 0xcf9, 0x02);
    assert_int_equal(f.level[4], 1);
    struct snap_w w;
    snap_w__init(&w);
    assert_int_equal(uart__save(&u, &w, err, sizeof(err)), 0);
    assert_int_equal(reset__save(&rs, &w, err, sizeof(err)), 0);

    clone_host(&g, &f);
    assert_int_equal(uart__init(&u2, &g.host, -1), 0);
    assert_int_equal(reset__init(&rs2, &g.host), 0);
    struct snap_r r;
    snap_r__init(&r, w.buf, w.len);
    assert_int_equal(uart__load(&u2, &r, err, sizeof(err)), 0);
    assert_int_equal(reset__load(&rs2, &r, err, sizeof(err)), 0);
    assert_int_equal(r.off, r.len);
    assert_int_equal(g.level[4], 1); /* the pending THRE interrupt */
    assert_int_equal(pio_r(&g, 0x3ff), 0x42);
    assert_int_equal(pio_r(&g, 0x3fb), 0x03);
    assert_int_equal(pio_r(&g, 0x3fa) & 0x0f, 0x02); /* IIR: THRE, which acknowledges it */
    assert_int_equal(g.level[4], 0);
    assert_int_equal(pio_r(&g, 0xcf9), 0x02);

    /* out-of-range registers and short streams */
    uint8_t badu[9] = {0xf0}, badr = 0x04;
    snap_r__init(&r, badu, sizeof(badu));
    assert_int_equal(uart__load(&u2, &r, err, sizeof(err)), -1);
    snap_r__init(&r, badu, 8);
    assert_int_equal(uart__load(&u2, &r, err, sizeof(err)), -1);
    snap_r__init(&r, &badr, 1);
    assert_int_equal(reset__load(&rs2, &r, err, sizeof(err)), -1);
    snap_r__init(&r, &badr, 0);
    assert_int_equal(reset__load(&rs2, &r, err, sizeof(err)), -1);
    snap_w__free(&w);
    host_fake_free(&f);
    host_fake_free(&g);
}

/* ---- the whole machine ---- */

enum { HAS_RNG = 1, HAS_BLK = 2, HAS_CON = 4, HAS_NET = 8, HAS_ALL = 15 };

struct rig {
    struct host_fake f;
    struct kvm_machine m;
    int con[2], net[2];
};

static struct rig *rig_new(const struct host_fake *ram, int set, const char *disk, uint64_t disk_ro)
{
    struct rig *g = calloc(1, sizeof(*g));
    char err[256];
    assert_non_null(g);
    g->con[0] = g->con[1] = g->net[0] = g->net[1] = -1;
    if (ram)
        clone_host(&g->f, ram);
    else
        assert_int_equal(host_fake_init(&g->f, RAM), 0);
    struct kvm_machine *m = &g->m;
    struct dev_host *h = &g->f.host;
    assert_int_equal(uart__init(&m->uart, h, -1), 0);
    assert_int_equal(reset__init(&m->rst, h), 0);
    if (set & HAS_RNG) {
        assert_int_equal(virtio_rng__init(&m->rng, h, BASE, 5), 0);
        m->has_rng = 1;
    }
    if (set & HAS_BLK) {
        assert_int_equal(virtio_blk__init(&m->blk, h, BASE + 0x1000, 6, disk, "raw", (int)disk_ro, err, sizeof(err)),
                         0);
        m->has_blk = 1;
    }
    if (set & HAS_CON) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, g->con), 0);
        assert_int_equal(virtio_console__init(&m->con, h, BASE + 0x2000, 7, g->con[0]), 0);
        m->has_con = 1;
    }
    if (set & HAS_NET) {
        const uint8_t mac[6] = {0x52, 0x54, 0, 1, 2, 3};
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, g->net), 0);
        assert_int_equal(virtio_net__init(&m->net, h, BASE + 0x3000, 10, g->net[0], mac, err, sizeof(err)), 0);
        m->has_net = 1;
    }
    return g;
}

static void rig_free(struct rig *g)
{
    if (g->m.has_blk)
        virtio_blk__close(&g->m.blk);
    if (g->m.has_net)
        virtio_net__close(&g->m.net);
    for (int i = 0; i < 2; i++) {
        if (g->con[i] >= 0)
            close(g->con[i]);
        if (g->net[i] >= 0)
            close(g->net[i]);
    }
    host_fake_free(&g->f);
    free(g);
}

/* Every device in use: queues on, a console port open with a held chain. */
static struct rig *rig_busy(const char *disk)
{
    struct rig *g = rig_new(NULL, HAS_ALL, disk, 0);
    struct vdrv d;
    assert_int_equal(vdrv_init(&d, &g->f, BASE, 1, 8, RINGS), 0);
    struct vdrv_buf b = {DATA, 32, 1};
    vdrv_add(&d, 0, &b, 1);
    vdrv_notify(&d, 0);
    assert_int_equal(vdrv_init(&d, &g->f, BASE + 0x1000, 1, 8, RINGS + 0x10000), 0);
    assert_int_equal(vdrv_init(&d, &g->f, BASE + 0x3000, 2, 8, RINGS + 0x20000), 0);
    assert_int_equal(vdrv_init(&d, &g->f, BASE + 0x2000, 6, 8, RINGS + 0x40000), 0);
    send_ctrl(&d, 0, 1, 6, 1);
    struct vdrv_buf rx = {DATA + 0x8000, 128, 1};
    vdrv_add(&d, C_RX1, &rx, 1);
    vdrv_notify(&d, C_RX1);
    assert_true(g->m.con.rx_have);
    return g;
}

static int load_bytes(const uint8_t *p, size_t n, const struct host_fake *ram, const char *disk, int set, char *err,
                      size_t errcap)
{
    struct rig *g = rig_new(ram, set, disk, 0);
    struct snap_r r;
    snap_r__init(&r, p, n);
    err[0] = 0;
    int rc = kvm_devstate__load(&g->m, &r, err, errcap);
    rig_free(g);
    return rc;
}

static void test_machine_state_round_trip_and_refusals(void **state)
{
    (void)state;
    char disk[] = "/tmp/cocoon-test-devsnap-XXXXXX", err[256];
    make_disk(disk, DISK_BYTES);
    struct rig *a = rig_busy(disk);
    struct snap_w w;
    snap_w__init(&w);
    assert_int_equal(kvm_devstate__save(&a->m, &w, err, sizeof(err)), 0);
    struct snap_r r;
    snap_r__init(&r, w.buf, w.len);
    struct snap_r devs;
    assert_int_equal(snap_r__section(&r, KVM_SNAP_TAG_DEVS, &devs), 0);

    /* round trip, with another section before it in the stream */
    struct snap_w w2;
    snap_w__init(&w2);
    size_t mark = snap_w__begin(&w2, SNAP_TAG('o', 't', 'h', 'r'));
    snap_w__u32(&w2, 7);
    snap_w__end(&w2, mark);
    snap_w__bytes(&w2, w.buf, w.len);
    struct rig *b = rig_new(&a->f, HAS_ALL, disk, 0);
    snap_r__init(&r, w2.buf, w2.len);
    assert_int_equal(kvm_devstate__load(&b->m, &r, err, sizeof(err)), 0);
    assert_true(b->m.con.guest_open);
    assert_true(b->m.con.rx_have); /* popped again */
    assert_int_equal(write(b->con[1], "hi", 2), 2);
    host_fake_poll(&b->f);
    assert_false(b->m.con.rx_have);
    rig_free(b);
    snap_w__free(&w2);

    /* another set of devices */
    assert_int_equal(load_bytes(w.buf, w.len, &a->f, disk, HAS_ALL & ~HAS_NET, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "virtio-net (a network) and this box has none"));
    assert_int_equal(load_bytes(w.buf, w.len, &a->f, disk, HAS_RNG | HAS_CON, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "this box has none"));

    /* no DEVS section, and the stream cut at every length */
    assert_int_equal(load_bytes(NULL, 0, &a->f, disk, HAS_ALL, err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
    for (size_t n = 0; n < w.len; n++) {
        assert_int_equal(load_bytes(w.buf, n, &a->f, disk, HAS_ALL, err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
    }
    /* the DEVS body cut at every length, its header saying so: every device's reader
     * meets the end somewhere inside */
    for (size_t n = 0; n < devs.len; n++) {
        struct snap_w t;
        snap_w__init(&t);
        size_t m = snap_w__begin(&t, KVM_SNAP_TAG_DEVS);
        snap_w__bytes(&t, devs.p, n);
        snap_w__end(&t, m);
        if (load_bytes(t.buf, t.len, &a->f, disk, HAS_ALL, err, sizeof(err)) != -1)
            fail_msg("a DEVS body cut at %zu of %zu bytes was accepted", n, devs.len);
        assert_true(strlen(err) > 0);
        snap_w__free(&t);
    }
    /* each device's own section cut at every length, the section lengths consistent */
    struct snap_r walk = devs;
    walk.off = 8;
    uint32_t tag;
    struct snap_r sub;
    int sections = 0;
    while (snap_r__next(&walk, &tag, &sub) == 1) {
        sections++;
        for (size_t n = 0; n < sub.len; n++) {
            struct snap_w t;
            snap_w__init(&t);
            size_t m = snap_w__begin(&t, KVM_SNAP_TAG_DEVS);
            snap_w__bytes(&t, devs.p, 8);
            size_t prefix = sub.p - devs.p; /* the sections before this one, whole */
            snap_w__bytes(&t, devs.p + 8, prefix - 8 - 8);
            size_t s = snap_w__begin(&t, tag);
            snap_w__bytes(&t, sub.p, n);
            snap_w__end(&t, s);
            snap_w__bytes(&t, sub.p + sub.len, devs.len - prefix - sub.len);
            snap_w__end(&t, m);
            if (load_bytes(t.buf, t.len, &a->f, disk, HAS_ALL, err, sizeof(err)) != -1)
                fail_msg("section 0x%08x cut at %zu of %zu bytes was accepted", tag, n, sub.len);
            assert_true(strlen(err) > 0);
            snap_w__free(&t);
        }
    }
    assert_int_equal(sections, 6);

    /* a disk of another size */
    char big[] = "/tmp/cocoon-test-devsnap-XXXXXX";
    make_disk(big, 2 * DISK_BYTES);
    assert_int_equal(load_bytes(w.buf, w.len, &a->f, big, HAS_ALL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "virtio-blk"));
    unlink(big);

    /* a save mid-frame is refused */
    a->m.con.tx_have = 1;
    a->m.con.tx_chain.gen = a->m.con.t.q[C_TX1].gen;
    a->m.con.tx_off = 1;
    struct snap_w w3;
    snap_w__init(&w3);
    assert_int_equal(kvm_devstate__save(&a->m, &w3, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "mid-frame"));
    snap_w__free(&w3);

    snap_w__free(&w);
    rig_free(a);
    unlink(disk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_console_continues_after_restore),
        cmocka_unit_test(test_console_mid_frame_refuses_to_save),
        cmocka_unit_test(test_console_tells_the_guest_its_new_host_side),
        cmocka_unit_test(test_blk_serves_after_restore_and_checks_the_disk),
        cmocka_unit_test(test_blk_save_writes_qcow2_metadata),
        cmocka_unit_test(test_rng_continues_and_refuses_bad_queues),
        cmocka_unit_test(test_net_continues_with_the_new_mac),
        cmocka_unit_test(test_uart_and_reset_registers),
        cmocka_unit_test(test_machine_state_round_trip_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
