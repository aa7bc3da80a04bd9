/* Fuzz target: a saved device state (kvm_devstate__load, virtio_mmio__load) loaded into a
 * fake machine on the fake host. A state is outside input (a snapshot file): whatever it
 * says, loading must refuse it with a message or give devices that work within guest
 * RAM, never crash or touch memory outside it. Input: [u8 devices][u16 n][n bytes of
 * guest RAM at RINGS (rings the state may point at)][the state]. Devices: bit 0 rng, 1
 * blk, 2 console, 3 net; bit 7 loads the rest into the rng transport alone. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvm/dev/host_fake.h"
#include "kvm/machine.h"
#include "kvm/snap.h"

#define BASE 0xd0000000ull
#define RAM (4u << 20)
#define RINGS 0x100000ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One disk for every run: a memfd reopened through /proc by virtio_blk__init. */
static const char *disk_path(void)
{
    static char path[64];
    if (!path[0]) {
        int fd = memfd_create("fuzz-devstate-disk", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
            return NULL;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    return path;
}

static void run(struct host_fake *f, struct kvm_machine *m, int set, const uint8_t *st, size_t n, int con[2],
                int net[2])
{
    struct dev_host *h = &f->host;
    char err[256];
    const char *disk = disk_path();
    if (uart__init(&m->uart, h, -1) < 0 || reset__init(&m->rst, h) < 0)
        return;
    if ((set & 1) && virtio_rng__init(&m->rng, h, BASE, 5) == 0)
        m->has_rng = 1;
    if ((set & 2) && disk) {
        m->has_blk = 1;
        if (virtio_blk__init(&m->blk, h, BASE + 0x1000, 6, disk, "raw", 0, err, sizeof(err)) < 0)
            return;
    }
    if ((set & 4) && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) == 0 &&
        virtio_console__init(&m->con, h, BASE + 0x2000, 7, con[0]) == 0)
        m->has_con = 1;
    if ((set & 8) && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, net) == 0) {
        const uint8_t mac[6] = {0x52, 0x54, 0, 1, 2, 3};
        m->has_net = 1;
        if (virtio_net__init(&m->net, h, BASE + 0x3000, 10, net[0], mac, err, sizeof(err)) < 0)
            return;
    }
    struct snap_r r;
    snap_r__init(&r, st, n);
    int rc;
    if (set & 0x80)
        rc = m->has_rng ? virtio_mmio__load(&m->rng.t, &r, err, sizeof(err)) : -1;
    else
        rc = kvm_devstate__load(m, &r, err, sizeof(err));
    if (rc == 0) {
        /* the restored devices at work: host bytes, a frame, the I/O thread's turn */
        static const uint8_t frame[] = {0, 0, 0, 14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
        if (m->has_con && write(con[1], "ping", 4) < 0)
            return;
        if (m->has_net && write(net[1], frame, sizeof(frame)) < 0)
            return;
        host_fake_poll(f);
        for (int q = 0; q < 6; q++) {
            uint32_t v = (uint32_t)q;
            host_fake_access(f, 0, BASE + 0x2000 + 0x50, &v, 4, 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct host_fake f;
    static struct kvm_machine m;
    if (size < 3)
        return 0;
    int set = data[0];
    size_t ram = (size_t)data[1] | (size_t)data[2] << 8;
    if (ram > size - 3)
        ram = size - 3;
    memset(&m, 0, sizeof(m));
    if (host_fake_init(&f, RAM) < 0)
        return 0;
    memcpy(f.mem.r[0].hva + RINGS, data + 3, ram);
    int con[2] = {-1, -1}, net[2] = {-1, -1};
    run(&f, &m, set, data + 3 + ram, size - 3 - ram, con, net);
    if (m.has_blk)
        virtio_blk__close(&m.blk);
    if (m.has_net)
        virtio_net__close(&m.net);
    for (int i = 0; i < 2; i++) {
        if (con[i] >= 0)
            close(con[i]);
        if (net[i] >= 0)
            close(net[i]);
    }
    host_fake_free(&f);
    return 0;
}
