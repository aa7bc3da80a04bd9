/* virtio-console with the multiport feature: one port (id 1, "cocoon.agent") whose
 * bytes are relayed to and from a stream socket by the I/O thread. Port 0 (the
 * console port) is never added: the kernel console is the 8250 UART. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>

#include "kvm/dev/virtio.h"
#include "kvm/snap.h"
#include "util/log.h"

#define F_MULTIPORT (1ull << 1)
enum { Q_RX0 = 0, Q_TX0 = 1, Q_CRX = 2, Q_CTX = 3, Q_RX1 = 4, Q_TX1 = 5, NQ = 6 };
enum { DEVICE_READY = 0, DEVICE_ADD = 1, PORT_READY = 3, CONSOLE_PORT = 4, PORT_OPEN = 6, PORT_NAME = 7 };

static void queue_ctrl(struct virtio_console *c, uint32_t id, uint16_t event, uint16_t value, const char *name)
{
    if (c->nctrl >= VCON_CTRL_PENDING)
        return;
    uint8_t *m = c->ctrl[c->nctrl];
    memcpy(m, &id, 4);
    memcpy(m + 4, &event, 2);
    memcpy(m + 6, &value, 2);
    size_t n = 8;
    if (name) {
        memcpy(m + 8, name, strlen(name)); /* fits: names are shorter than 16 */
        n += strlen(name);
    }
    c->ctrl_len[c->nctrl++] = (uint32_t)n;
}

static void flush_ctrl(struct virtio_console *c)
{
    struct virtq *q = &c->t.q[Q_CRX];
    struct virtq_chain ch;
    int used = 0;
    while (c->nctrl > 0 && virtq__pop(q, c->t.host->mem, &ch) == 1) {
        size_t n = virtq_chain__write(&ch, 0, c->ctrl[0], c->ctrl_len[0]);
        virtq__push(q, &ch, (uint32_t)n);
        used = 1;
        c->nctrl--;
        memmove(c->ctrl[0], c->ctrl[1], sizeof(c->ctrl[0]) * (size_t)c->nctrl);
        memmove(c->ctrl_len, c->ctrl_len + 1, sizeof(c->ctrl_len[0]) * (size_t)c->nctrl);
    }
    if (used)
        virtio_mmio__signal_used(&c->t);
    virtio_mmio__check_broken(&c->t, Q_CRX);
}

static void rearm(struct virtio_console *c)
{
    uint32_t want = 0;
    if (virtio_mmio__driver_ok(&c->t) && !c->host_closed) {
        if (c->guest_open && (c->rx_have || virtq__has_avail(&c->t.q[Q_RX1])))
            want |= EPOLLIN;
        if (c->tx_have)
            want |= EPOLLOUT;
    }
    if (want != c->want && c->fd >= 0 && c->t.host->ops->rewatch(c->t.host, c->fd, want, &c->io) == 0)
        c->want = want;
}

static void host_gone(struct virtio_console *c)
{
    if (c->host_closed)
        return;
    c->host_closed = 1;
    queue_ctrl(c, VCON_AGENT_PORT, PORT_OPEN, 0, NULL);
    flush_ctrl(c);
}

/* host -> guest */
static void pump_rx(struct virtio_console *c)
{
    struct virtq *q = &c->t.q[Q_RX1];
    while (c->guest_open && !c->host_closed) {
        if (!c->rx_have) {
            if (virtq__pop(q, c->t.host->mem, &c->rx_chain) != 1)
                break;
            c->rx_have = 1;
        }
        struct iovec iov[VIRTQ_MAX_SEGS];
        int n = 0;
        for (uint32_t k = c->rx_chain.nr; k < c->rx_chain.nr + c->rx_chain.nw; k++)
            iov[n++] = (struct iovec){c->rx_chain.seg[k].p, c->rx_chain.seg[k].len};
        if (n == 0) { /* no writable bytes: give it back empty */
            virtq__push(q, &c->rx_chain, 0);
            c->rx_have = 0;
            virtio_mmio__signal_used(&c->t);
            continue;
        }
        ssize_t r = readv(c->fd, iov, n);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (r <= 0) {
            host_gone(c);
            break;
        }
        c->rx_bytes += (uint64_t)r;
        virtq__push(q, &c->rx_chain, (uint32_t)r);
        c->rx_have = 0;
        virtio_mmio__signal_used(&c->t);
    }
    virtio_mmio__check_broken(&c->t, Q_RX1);
}

/* guest -> host */
static void pump_tx(struct virtio_console *c)
{
    struct virtq *q = &c->t.q[Q_TX1];
    for (;;) {
        if (!c->tx_have) {
            if (virtq__pop(q, c->t.host->mem, &c->tx_chain) != 1)
                break;
            c->tx_have = 1;
            c->tx_off = 0;
        }
        struct iovec iov[VIRTQ_MAX_SEGS];
        int n = 0;
        uint64_t skip = c->tx_off;
        for (uint32_t k = 0; k < c->tx_chain.nr; k++) {
            uint64_t len = c->tx_chain.seg[k].len;
            if (skip >= len) {
                skip -= len;
                continue;
            }
            iov[n++] = (struct iovec){c->tx_chain.seg[k].p + skip, (size_t)(len - skip)};
            skip = 0;
        }
        if (n > 0 && !c->host_closed) {
            /* sendmsg, not writev: a peer that went away must not SIGPIPE the VMM */
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
            ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (w < 0)
                host_gone(c);
            else {
                c->tx_off += (uint64_t)w;
                c->tx_bytes += (uint64_t)w;
                if (c->tx_off < c->tx_chain.rlen)
                    continue;
            }
        }
        virtq__push(q, &c->tx_chain, 0); /* all written (or dropped: nobody listens) */
        c->tx_have = 0;
        virtio_mmio__signal_used(&c->t);
    }
    virtio_mmio__check_broken(&c->t, Q_TX1);
}

static void on_ctrl_msg(struct virtio_console *c, uint32_t id, uint16_t event, uint16_t value)
{
    c->ctrl_msgs++;
    switch (event) {
    case DEVICE_READY:
        if (value == 1)
            queue_ctrl(c, VCON_AGENT_PORT, DEVICE_ADD, 0, NULL);
        break;
    case PORT_READY:
        if (id == VCON_AGENT_PORT && value == 1) {
            queue_ctrl(c, VCON_AGENT_PORT, PORT_NAME, 1, VCON_AGENT_NAME);
            if (!c->host_closed)
                queue_ctrl(c, VCON_AGENT_PORT, PORT_OPEN, 1, NULL);
        }
        break;
    case PORT_OPEN:
        if (id == VCON_AGENT_PORT)
            c->guest_open = value != 0;
        break;
    default: break;
    }
}

static uint32_t read_ctrl_msg(struct virtio_mmio *t, struct virtq_chain *ch)
{
    uint8_t m[8];
    if (virtq_chain__read(ch, 0, m, 8) == 8) {
        uint32_t id;
        uint16_t ev, val;
        memcpy(&id, m, 4);
        memcpy(&ev, m + 4, 2);
        memcpy(&val, m + 6, 2);
        on_ctrl_msg(t->dev, id, ev, val);
    }
    return 0;
}

static void ctrl_tx(struct virtio_console *c)
{
    virtio_mmio__serve(&c->t, Q_CTX, read_ctrl_msg);
    if (virtio_mmio__check_broken(&c->t, Q_CTX))
        return;
    flush_ctrl(c);
    pump_rx(c);
}

static void con_notify(struct virtio_mmio *t, uint32_t qi)
{
    struct virtio_console *c = t->dev;
    switch (qi) {
    case Q_CRX: flush_ctrl(c); break;
    case Q_CTX: ctrl_tx(c); break;
    case Q_RX1: pump_rx(c); break;
    case Q_TX1: pump_tx(c); break;
    default: break; /* port 0 is never added */
    }
    rearm(c);
}

static void on_fd(void *ctx, uint32_t events)
{
    struct virtio_console *c = ctx;
    pthread_mutex_lock(&c->t.lock);
    if (virtio_mmio__driver_ok(&c->t)) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            pump_tx(c);
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            pump_rx(c);
    }
    rearm(c);
    pthread_mutex_unlock(&c->t.lock);
}

static void con_reset(struct virtio_mmio *t)
{
    struct virtio_console *c = t->dev;
    c->guest_open = c->rx_have = c->tx_have = 0;
    c->nctrl = 0;
    rearm(c);
}

/* The driver turned a queue off: a chain held from it is gone with it. */
static void con_queue_off(struct virtio_mmio *t, uint32_t qi)
{
    struct virtio_console *c = t->dev;
    if (qi == Q_RX1)
        c->rx_have = 0;
    else if (qi == Q_TX1)
        c->tx_have = 0;
    rearm(c);
}

static void con_config(struct virtio_mmio *t, uint32_t off, uint8_t *data, uint32_t len, int is_write)
{
    uint8_t cfg[12] = {0};
    uint32_t ports = 2;
    if (is_write)
        return;
    memcpy(cfg + 4, &ports, 4); /* cols, rows = 0; max_nr_ports = 2; emerg_wr = 0 */
    if (off <= sizeof(cfg) && len <= sizeof(cfg) - off)
        memcpy(data, cfg + off, len);
}

static const struct virtio_dev_ops con_ops = {
    .name = "virtio-console",
    .device_id = 3,
    .num_queues = NQ,
    .features = F_MULTIPORT,
    .config_len = 12,
    .config_rw = con_config,
    .notify = con_notify,
    .reset = con_reset,
    .queue_off = con_queue_off,
};

int virtio_console__init(struct virtio_console *c, struct dev_host *host, uint64_t base, int irq, int fd)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->io.fn = on_fd;
    c->io.ctx = c;
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || host->ops->watch(host, fd, 0, &c->io) < 0)
            return -1;
    } else {
        c->host_closed = 1;
    }
    return virtio_mmio__init(&c->t, host, base, irq, &con_ops, c);
}

/* Saved state. The held chains are host pointers: each is the one its queue popped
 * last (pump_rx and pump_tx pop only when they hold none), so it is handed back to the
 * avail ring instead (last_avail saved one lower) and popped again after the restore.
 * A transmit chain partly written cannot be: its first bytes already left on the old
 * socket, the restored device would send them twice into the agent's frame stream. */
static int held(const struct virtio_console *c, int have, const struct virtq_chain *ch, uint32_t qi)
{
    const struct virtq *q = &c->t.q[qi];
    return have && q->ready && ch->gen == q->gen;
}

int virtio_console__save(struct virtio_console *c, struct snap_w *w, char *err, size_t errcap)
{
    pthread_mutex_lock(&c->t.lock);
    int rx = held(c, c->rx_have, &c->rx_chain, Q_RX1), tx = held(c, c->tx_have, &c->tx_chain, Q_TX1);
    if (tx && c->tx_off > 0) {
        pthread_mutex_unlock(&c->t.lock);
        snprintf(err, errcap, "the agent channel is mid-frame; try again");
        return -1;
    }
    virtio_mmio__save_held(&c->t, w, (rx ? 1u << Q_RX1 : 0) | (tx ? 1u << Q_TX1 : 0));
    snap_w__u8(w, (uint8_t)(c->guest_open != 0));
    snap_w__u8(w, (uint8_t)(c->host_closed != 0)); /* what the guest was told, see load */
    snap_w__u32(w, (uint32_t)c->nctrl);
    for (int i = 0; i < c->nctrl; i++) {
        snap_w__u32(w, c->ctrl_len[i]);
        snap_w__bytes(w, c->ctrl[i], c->ctrl_len[i]);
    }
    pthread_mutex_unlock(&c->t.lock);
    if (w->oom) {
        snprintf(err, errcap, "virtio-console: the saved state is out of room");
        return -1;
    }
    return 0;
}

static int load_held(struct virtio_console *c, struct snap_r *r)
{
    if (virtio_mmio__load_held(&c->t, r) < 0)
        return -1;
    uint8_t open = snap_r__u8(r), was_closed = snap_r__u8(r);
    uint32_t n = snap_r__u32(r);
    if (r->bad)
        return -1;
    if (open > 1 || was_closed > 1)
        return snap_r__fail(r, "virtio-console: a port flag is neither 0 nor 1");
    if (n > VCON_CTRL_PENDING)
        return snap_r__fail(r, "virtio-console: %u control messages pending, at most %d", n, VCON_CTRL_PENDING);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = snap_r__u32(r);
        if (r->bad)
            return -1;
        if (len < 8 || len > sizeof(c->ctrl[0]))
            return snap_r__fail(r, "virtio-console: a control message of %u bytes", len);
        if (snap_r__bytes(r, c->ctrl[i], len) < 0)
            return -1;
        c->ctrl_len[i] = len;
    }
    c->nctrl = (int)n;
    c->guest_open = open;
    c->rx_have = c->tx_have = 0;
    c->tx_off = 0;
    /* The agent socket is this process's own: when its state differs from what the
     * guest was last told, tell it (PORT_OPEN for a port it does not know yet is
     * ignored by the driver; PORT_READY then says the truth). */
    if (was_closed != (c->host_closed != 0))
        queue_ctrl(c, VCON_AGENT_PORT, PORT_OPEN, c->host_closed ? 0 : 1, NULL);
    return 0;
}

int virtio_console__load(struct virtio_console *c, struct snap_r *r, char *err, size_t errcap)
{
    pthread_mutex_lock(&c->t.lock);
    int rc = load_held(c, r);
    if (rc == 0) {
        virtio_mmio__resume_held(&c->t); /* also flushes the control messages */
        rearm(c);                        /* watch the new agent socket as the restored state needs */
    }
    pthread_mutex_unlock(&c->t.lock);
    if (rc < 0)
        snprintf(err, errcap, "%s", r->why);
    return rc;
}
