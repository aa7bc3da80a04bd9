/* The kvm backend's virtio devices driven whole through the fake host (no /dev/kvm):
 * register handshake, queues, host-side fds. Includes the regression for a queue turned
 * off and resized while the console held a chain from it (the device then wrote a used
 * ring of the new size: past guest RAM, at a place the guest chose). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvm/dev/virtio.h"
#include "support/vdrv.h"

#define BASE 0xd0000000ull
#define RAM (4u << 20)
#define RINGS 0x100000ull
#define DATA 0x200000ull

enum { C_RX0 = 0, C_TX0 = 1, C_CRX = 2, C_CTX = 3, C_RX1 = 4, C_TX1 = 5 };

static uint16_t used_idx(struct vdrv *d, int q)
{
    uint16_t idx;
    memcpy(&idx, vdrv_mem(d, d->q[q].used + 2, 2), 2);
    return idx;
}

/* The driver's side of the multiport handshake: the agent port opened by the guest. */
static void console_open_port(struct vdrv *d)
{
    for (int i = 0; i < 4; i++) {
        struct vdrv_buf b = {DATA + 0x1000 + 64u * (uint32_t)i, 64, 1};
        vdrv_add(d, C_CRX, &b, 1);
    }
    vdrv_notify(d, C_CRX);
    uint8_t msgs[2][8] = {{0}, {0}};
    uint32_t port = 1;
    uint16_t ready = 0, open = 6, one = 1;
    memcpy(msgs[0] + 4, &ready, 2); /* DEVICE_READY 1 */
    memcpy(msgs[0] + 6, &one, 2);
    memcpy(msgs[1], &port, 4); /* PORT_OPEN port 1, 1 */
    memcpy(msgs[1] + 4, &open, 2);
    memcpy(msgs[1] + 6, &one, 2);
    for (int i = 0; i < 2; i++) {
        memcpy(vdrv_mem(d, DATA + 0x2000 + 8u * (uint32_t)i, 8), msgs[i], 8);
        struct vdrv_buf b = {DATA + 0x2000 + 8u * (uint32_t)i, 8, 0};
        vdrv_add(d, C_CTX, &b, 1);
    }
    vdrv_notify(d, C_CTX);
}

static void test_console_queue_resized_while_holding_a_chain(void **state)
{
    (void)state;
    struct host_fake f;
    static struct virtio_console con;
    struct vdrv d;
    int sv[2];
    assert_int_equal(host_fake_init(&f, RAM), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(virtio_console__init(&con, &f.host, BASE, 5, sv[0]), 0);
    assert_int_equal(vdrv_init(&d, &f, BASE, 6, 8, RINGS), 0);
    console_open_port(&d);
    assert_true(con.guest_open);

    /* a receive buffer the device pops and holds: no host bytes yet */
    struct vdrv_buf rx = {DATA, 256, 1};
    vdrv_add(&d, C_RX1, &rx, 1);
    vdrv_notify(&d, C_RX1);
    assert_true(con.rx_have);

    /* the guest turns the queue off and gives it a size its rings do not have */
    vdrv_write(&d, VR_QUEUE_SEL, C_RX1);
    vdrv_write(&d, VR_QUEUE_READY, 0);
    vdrv_write(&d, VR_QUEUE_NUM, 256);
    assert_int_equal(write(sv[1], "hello", 5), 5);
    host_fake_poll(&f);
    assert_int_equal(used_idx(&d, C_RX1), 0); /* nothing pushed into the old or a new ring */
    assert_false(con.rx_have);

    /* QueueNum 0 is refused at QueueReady (it was a division by zero) */
    vdrv_write(&d, VR_QUEUE_NUM, 0);
    vdrv_write(&d, VR_QUEUE_READY, 1);
    assert_int_equal(vdrv_read(&d, VR_QUEUE_READY), 0);
    host_fake_poll(&f);

    /* the device still works after a reset and a fresh start */
    assert_int_equal(vdrv_init(&d, &f, BASE, 6, 8, RINGS), 0);
    console_open_port(&d);
    vdrv_add(&d, C_RX1, &rx, 1);
    vdrv_notify(&d, C_RX1);
    host_fake_poll(&f);
    uint32_t id, len;
    assert_int_equal(vdrv_used(&d, C_RX1, &id, &len), 1);
    assert_int_equal(len, 5); /* the bytes sent while the queue was off, delivered now */
    assert_memory_equal(vdrv_mem(&d, DATA, 5), "hello", 5);
    close(sv[0]);
    close(sv[1]);
    host_fake_free(&f);
}

static void test_net_frames_both_ways_over_the_link(void **state)
{
    (void)state;
    struct host_fake f;
    static struct virtio_net n;
    struct vdrv d;
    int sv[2];
    char err[256];
    const uint8_t mac[6] = {0x52, 0x54, 0, 1, 2, 3};
    assert_int_equal(host_fake_init(&f, RAM), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(virtio_net__init(&n, &f.host, BASE, 10, sv[0], mac, err, sizeof(err)), 0);
    assert_int_equal(vdrv_init(&d, &f, BASE, 2, 16, RINGS), 0);

    /* guest -> link: [4-byte length][frame], the 12-byte virtio header stripped */
    uint8_t *tx = vdrv_mem(&d, DATA, 12 + 60);
    memset(tx, 0, 12);
    for (int i = 0; i < 60; i++)
        tx[12 + i] = (uint8_t)i;
    struct vdrv_buf b = {DATA, 72, 0};
    vdrv_add(&d, 1, &b, 1);
    vdrv_notify(&d, 1);
    uint8_t got[128];
    assert_int_equal(recv(sv[1], got, sizeof(got), MSG_DONTWAIT), 64);
    uint32_t be;
    memcpy(&be, got, 4);
    assert_int_equal(ntohl(be), 60);
    assert_memory_equal(got + 4, tx + 12, 60);

    /* link -> guest */
    struct vdrv_buf rx = {DATA + 0x10000, 2048, 1};
    vdrv_add(&d, 0, &rx, 1);
    vdrv_notify(&d, 0);
    uint8_t frame[4 + 100];
    be = htonl(100);
    memcpy(frame, &be, 4);
    memset(frame + 4, 0xab, 100);
    assert_int_equal(send(sv[1], frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
    host_fake_poll(&f);
    uint32_t id, len;
    assert_int_equal(vdrv_used(&d, 0, &id, &len), 1);
    assert_int_equal(len, 112);
    assert_memory_equal((uint8_t *)vdrv_mem(&d, DATA + 0x10000 + 12, 100), frame + 4, 100);

    /* a buffer too small for the frame: the frame is dropped, counted */
    struct vdrv_buf small = {DATA + 0x20000, 50, 1};
    vdrv_add(&d, 0, &small, 1);
    vdrv_notify(&d, 0);
    assert_int_equal(send(sv[1], frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
    host_fake_poll(&f);
    assert_int_equal(vdrv_used(&d, 0, &id, &len), 1);
    assert_int_equal(len, 0);
    assert_int_equal(n.rx_dropped, 1);

    /* a length beyond any frame ends the link, nothing else */
    be = htonl(1u << 20);
    assert_int_equal(send(sv[1], &be, 4, 0), 4);
    host_fake_poll(&f);
    assert_true(n.link_closed);
    virtio_net__close(&n);
    close(sv[0]);
    close(sv[1]);
    host_fake_free(&f);
}

static uint8_t blk_request(struct vdrv *d, uint32_t type, uint64_t sector, uint32_t len)
{
    uint8_t hdr[16] = {0};
    memcpy(hdr, &type, 4);
    memcpy(hdr + 8, &sector, 8);
    memcpy(vdrv_mem(d, DATA, 16), hdr, 16);
    *(uint8_t *)vdrv_mem(d, DATA + 0x3000, 1) = 0xee;
    struct vdrv_buf b[3] = {{DATA, 16, 0}, {DATA + 0x1000, len, type == 0}, {DATA + 0x3000, 1, 1}};
    vdrv_add(d, 0, b, 3);
    vdrv_notify(d, 0);
    uint32_t id, used;
    assert_int_equal(vdrv_used(d, 0, &id, &used), 1);
    return *(uint8_t *)vdrv_mem(d, DATA + 0x3000, 1);
}

static void test_blk_reads_writes_and_refuses_out_of_range(void **state)
{
    (void)state;
    struct host_fake f;
    static struct virtio_blk blk;
    struct vdrv d;
    char path[] = "/tmp/cocoon-test-blk-XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    close(fd);
    assert_int_equal(host_fake_init(&f, RAM), 0);
    assert_int_equal(virtio_blk__init(&blk, &f.host, BASE, 6, path, "raw", 0, err, sizeof(err)), 0);
    assert_int_equal(vdrv_init(&d, &f, BASE, 1, 16, RINGS), 0);
    memset(vdrv_mem(&d, DATA + 0x1000, 512), 0x5a, 512);
    assert_int_equal(blk_request(&d, 1, 3, 512), 0); /* write sector 3 */
    memset(vdrv_mem(&d, DATA + 0x1000, 512), 0, 512);
    assert_int_equal(blk_request(&d, 0, 3, 512), 0); /* read it back */
    uint8_t want[512];
    memset(want, 0x5a, sizeof(want));
    assert_memory_equal(vdrv_mem(&d, DATA + 0x1000, 512), want, 512);
    assert_int_equal(blk_request(&d, 0, 1ull << 40, 512), 1); /* past the disk: IOERR */
    assert_int_equal(blk_request(&d, 0, 2047, 1024), 1);      /* straddles the end */
    virtio_mmio__close(&blk.t);
    virtio_blk__close(&blk);
    unlink(path);
    host_fake_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_console_queue_resized_while_holding_a_chain),
        cmocka_unit_test(test_net_frames_both_ways_over_the_link),
        cmocka_unit_test(test_blk_reads_writes_and_refuses_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
