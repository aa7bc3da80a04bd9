/* virtio-net over the monitor's network link (see virtio.h): guest frames go out on the
 * link fd as [4-byte big-endian length][frame], frames from the link go into the
 * driver's receive buffers. Every length is checked: a transmit chain shorter than the
 * header or longer than VNET_FRAME_MAX is dropped (counted), a receive chain too small
 * for the header and the frame gets the frame dropped, never a partial write past the
 * chain; a length from the link over VNET_FRAME_MAX ends the link. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvm/dev/virtio.h"
#include "kvm/snap.h"
#include "util/log.h"

#define F_MAC (1ull << 5)
#define F_STATUS (1ull << 16)
#define HDR_LEN 12 /* struct virtio_net_hdr_v1 (virtio 1.x: num_buffers always present) */
#define LEN_BYTES 4
enum { Q_RX = 0, Q_TX = 1, NQ = 2 };

/* Lock held: the epoll interest follows what the device can do now. */
static void rearm(struct virtio_net *n)
{
    uint32_t want = 0;
    if (n->fd >= 0 && !n->link_closed) {
        if (!n->rx_blocked && n->ilen < VNET_IN_CAP)
            want |= EPOLLIN;
        if (n->ooff < n->olen)
            want |= EPOLLOUT;
    }
    if (want != n->want && n->fd >= 0 && n->t.host->ops->rewatch(n->t.host, n->fd, want, &n->io) == 0)
        n->want = want;
}

static void link_gone(struct virtio_net *n, const char *why)
{
    if (n->link_closed)
        return;
    n->link_closed = 1;
    vmm_log_guest("virtio-net: the network link closed (%s)", why);
}

/* Lock held: frames waiting in the inbound buffer go to the driver's receive buffers.
 * Without a buffer the frame waits (rx_blocked: the link is not read, so the monitor's
 * queue fills and its stack slows down); with the driver not running it is dropped. */
static void deliver(struct virtio_net *n)
{
    struct virtq *q = &n->t.q[Q_RX];
    size_t off = 0;
    int used = 0;
    n->rx_blocked = 0;
    while (n->ilen - off >= LEN_BYTES) {
        uint32_t be;
        memcpy(&be, n->ibuf + off, LEN_BYTES);
        uint32_t len = ntohl(be);
        if (len == 0 || len > VNET_FRAME_MAX) {
            link_gone(n, "a frame length out of range");
            off = n->ilen;
            break;
        }
        if (n->ilen - off < LEN_BYTES + (size_t)len)
            break;
        const uint8_t *frame = n->ibuf + off + LEN_BYTES;
        if (virtio_mmio__driver_ok(&n->t) && q->ready && !q->broken) {
            struct virtq_chain ch;
            if (virtq__pop(q, n->t.host->mem, &ch) != 1) {
                n->rx_blocked = 1; /* wait for buffers: the driver notifies RX */
                break;
            }
            uint8_t hdr[HDR_LEN] = {0};
            hdr[10] = 1; /* num_buffers */
            uint32_t wrote = 0;
            if (ch.wlen >= (uint64_t)HDR_LEN + len) {
                virtq_chain__write(&ch, 0, hdr, HDR_LEN);
                virtq_chain__write(&ch, HDR_LEN, frame, len);
                wrote = HDR_LEN + len;
                n->rx_frames++;
            } else {
                n->rx_dropped++; /* the driver's buffer cannot hold it: the frame is lost */
            }
            virtq__push(q, &ch, wrote);
            used = 1;
        } else {
            n->rx_dropped++; /* the link is down for a driver that is not running */
        }
        off += LEN_BYTES + len;
    }
    if (off) {
        memmove(n->ibuf, n->ibuf + off, n->ilen - off);
        n->ilen -= off;
    }
    if (used)
        virtio_mmio__signal_used(&n->t);
    virtio_mmio__check_broken(&n->t, Q_RX);
}

/* What a non-blocking recv or send on the link returned: the bytes moved, 0 to try
 * again (EINTR), or -1 to stop: nothing more for now, or the link is gone (said). */
static ssize_t link_result(struct virtio_net *n, ssize_t r)
{
    if (r > 0)
        return r;
    if (r < 0 && errno == EINTR)
        return 0;
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
        link_gone(n, r == 0 ? "end of file" : strerror(errno));
    return -1;
}

static void read_link(struct virtio_net *n)
{
    while (!n->rx_blocked && !n->link_closed && n->ilen < VNET_IN_CAP) {
        ssize_t r = link_result(n, recv(n->fd, n->ibuf + n->ilen, VNET_IN_CAP - n->ilen, MSG_DONTWAIT));
        if (r < 0)
            break;
        if (r > 0) {
            n->ilen += (size_t)r;
            deliver(n);
        }
    }
}

static void flush_link(struct virtio_net *n)
{
    while (n->ooff < n->olen && !n->link_closed) {
        ssize_t w = link_result(n, send(n->fd, n->obuf + n->ooff, n->olen - n->ooff, MSG_DONTWAIT | MSG_NOSIGNAL));
        if (w < 0)
            break; /* the buffer is kept unless the link is gone */
        n->ooff += (size_t)w;
    }
    if (n->ooff == n->olen || n->link_closed)
        n->ooff = n->olen = 0;
}

/* guest -> link. While the outbound buffer cannot take a whole frame the transmit queue
 * waits (the driver's TX ring fills: backpressure reaches the guest's sockets). */
static void transmit(struct virtio_net *n)
{
    struct virtq *q = &n->t.q[Q_TX];
    struct virtq_chain ch;
    int used = 0;
    for (;;) {
        if (n->ooff && n->olen + LEN_BYTES + VNET_FRAME_MAX > VNET_OUT_CAP) {
            memmove(n->obuf, n->obuf + n->ooff, n->olen - n->ooff);
            n->olen -= n->ooff;
            n->ooff = 0;
        }
        if (n->olen + LEN_BYTES + VNET_FRAME_MAX > VNET_OUT_CAP)
            break;
        if (virtq__pop(q, n->t.host->mem, &ch) != 1)
            break;
        if (ch.rlen <= HDR_LEN || ch.rlen - HDR_LEN > VNET_FRAME_MAX || n->link_closed) {
            n->tx_dropped++;
        } else {
            uint32_t len = (uint32_t)(ch.rlen - HDR_LEN);
            if (virtq_chain__read(&ch, HDR_LEN, n->obuf + n->olen + LEN_BYTES, len) == len) {
                uint32_t be = htonl(len);
                memcpy(n->obuf + n->olen, &be, LEN_BYTES);
                n->olen += LEN_BYTES + len;
                n->tx_frames++;
            } else {
                n->tx_dropped++;
            }
        }
        virtq__push(q, &ch, 0);
        used = 1;
    }
    flush_link(n);
    if (used)
        virtio_mmio__signal_used(&n->t);
    virtio_mmio__check_broken(&n->t, Q_TX);
}

static void net_notify(struct virtio_mmio *t, uint32_t qi)
{
    struct virtio_net *n = t->dev;
    if (qi == Q_TX) {
        transmit(n);
    } else if (qi == Q_RX) {
        deliver(n);
        read_link(n);
    }
    rearm(n);
}

/* I/O thread: the link is readable or writable again. */
static void on_link(void *ctx, uint32_t events)
{
    struct virtio_net *n = ctx;
    pthread_mutex_lock(&n->t.lock);
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        flush_link(n);
        if (virtio_mmio__driver_ok(&n->t))
            transmit(n);
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        read_link(n);
    rearm(n);
    pthread_mutex_unlock(&n->t.lock);
}

static void net_reset(struct virtio_mmio *t)
{
    struct virtio_net *n = t->dev;
    n->rx_blocked = 0; /* waiting frames are dropped by deliver while the driver is down */
    deliver(n);
    rearm(n);
}

static void net_queue_off(struct virtio_mmio *t, uint32_t qi)
{
    (void)qi;
    net_reset(t);
}

static void net_config_rw(struct virtio_mmio *t, uint32_t off, uint8_t *data, uint32_t len, int is_write)
{
    struct virtio_net *n = t->dev;
    uint8_t cfg[8] = {0};
    if (is_write)
        return; /* the MAC is the host's choice (no VIRTIO_NET_F_CTRL_MAC_ADDR) */
    memcpy(cfg, n->mac, 6);
    cfg[6] = 1; /* status: VIRTIO_NET_S_LINK_UP */
    if (off <= sizeof(cfg) && len <= sizeof(cfg) - off)
        memcpy(data, cfg + off, len);
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net",
    .device_id = 1,
    .num_queues = NQ,
    .features = F_MAC | F_STATUS,
    .config_len = 8,
    .config_rw = net_config_rw,
    .notify = net_notify,
    .reset = net_reset,
    .queue_off = net_queue_off,
};

int virtio_net__init(struct virtio_net *n, struct dev_host *host, uint64_t base, int irq, int fd, const uint8_t mac[6],
                     char *err, size_t errcap)
{
    memset(n, 0, sizeof(*n));
    n->fd = fd;
    memcpy(n->mac, mac, 6);
    n->io.fn = on_link;
    n->io.ctx = n;
    n->ibuf = malloc(VNET_IN_CAP);
    n->obuf = malloc(VNET_OUT_CAP);
    if (!n->ibuf || !n->obuf) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(err, errcap, "the network link: %s", strerror(errno));
        return -1;
    }
    if (virtio_mmio__init(&n->t, host, base, irq, &net_ops, n) < 0) {
        snprintf(err, errcap, "cannot place virtio-net");
        return -1;
    }
    if (host->ops->watch(host, fd, 0, &n->io) < 0) {
        snprintf(err, errcap, "cannot watch the network link: %s", strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&n->t.lock);
    rearm(n);
    pthread_mutex_unlock(&n->t.lock);
    return 0;
}

void virtio_net__close(struct virtio_net *n)
{
    free(n->ibuf);
    free(n->obuf);
    n->ibuf = n->obuf = NULL;
}

/* Saved state: the transport only. Frames are popped and pushed within one call, so no
 * chain is held. Frames buffered between the link and the rings are dropped (the
 * parent's connections are not carried over), the link's state is the new process's,
 * and the MAC is the new configuration's: a fork gets a MAC of its own. */
int virtio_net__save(struct virtio_net *n, struct snap_w *w, char *err, size_t errcap)
{
    if (virtio_mmio__save(&n->t, w) < 0) {
        snprintf(err, errcap, "virtio-net: the saved state is out of room");
        return -1;
    }
    return 0;
}

int virtio_net__load(struct virtio_net *n, struct snap_r *r, char *err, size_t errcap)
{
    pthread_mutex_lock(&n->t.lock);
    int rc = virtio_mmio__load_held(&n->t, r);
    if (rc == 0) {
        n->olen = n->ooff = n->ilen = 0;
        n->rx_blocked = 0;
        virtio_mmio__resume_held(&n->t);
        rearm(n);
    }
    pthread_mutex_unlock(&n->t.lock);
    if (rc < 0)
        snprintf(err, errcap, "%s", r->why);
    return rc;
}
