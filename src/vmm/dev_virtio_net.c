/* virtio-net over cocoon's user-space network stack (see dev_virtio.h). Every length
 * the guest hands over is checked: a transmit chain shorter than the header or longer
 * than VNET_FRAME_MAX is dropped (counted), a receive chain too small for the header
 * and the frame gets the frame dropped, never a partial write past the chain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "net/net.h"
#include "vmm/dev_virtio.h"

#define F_MAC (1ull << 5)
#define F_STATUS (1ull << 16)
#define HDR_LEN 12 /* struct virtio_net_hdr_v1 (virtio 1.x: num_buffers always present) */
enum { Q_RX = 0, Q_TX = 1, NQ = 2 };

static void pending_drop_all(struct virtio_net *n)
{
    while (n->p_count) {
        free(n->pending[n->p_head].data);
        n->p_head = (n->p_head + 1) % VNET_PENDING_MAX;
        n->p_count--;
    }
}

/* Lock held: moves waiting frames into the driver's receive buffers. */
static void deliver(struct virtio_net *n)
{
    struct virtq *q = &n->t.q[Q_RX];
    struct virtq_chain ch;
    int used = 0;
    while (n->p_count && virtio_mmio__driver_ok(&n->t) && q->ready && !q->broken) {
        if (virtq__pop(q, &n->t.vm->mem, &ch) != 1)
            break;
        struct vnet_frame *f = &n->pending[n->p_head];
        uint8_t hdr[HDR_LEN] = {0};
        hdr[10] = 1; /* num_buffers */
        uint32_t len = 0;
        if (ch.wlen >= (uint64_t)HDR_LEN + f->len) {
            virtq_chain__write(&ch, 0, hdr, HDR_LEN);
            virtq_chain__write(&ch, HDR_LEN, f->data, f->len);
            len = HDR_LEN + f->len;
            n->rx_frames++;
        } else {
            n->rx_dropped++; /* the driver's buffer cannot hold it: the frame is lost */
        }
        virtq__push(q, ch.head, len);
        used = 1;
        free(f->data);
        n->p_head = (n->p_head + 1) % VNET_PENDING_MAX;
        n->p_count--;
    }
    if (used)
        virtio_mmio__signal_used(&n->t);
    virtio_mmio__check_broken(&n->t, Q_RX);
    if (n->congested && n->p_count < VNET_PENDING_HIGH / 2 && n->stack) {
        n->congested = 0;
        net_stack_link_ready(n->stack);
    }
}

/* The stack's output callback, lock held (it only runs inside stack calls made under
 * the transport lock). */
static int stack_out(void *user, const uint8_t *frame, size_t len)
{
    struct virtio_net *n = user;
    if (len == 0 || len > VNET_FRAME_MAX || n->p_count >= VNET_PENDING_MAX || !virtio_mmio__driver_ok(&n->t)) {
        n->rx_dropped++;
        return -1;
    }
    uint8_t *copy = malloc(len);
    if (!copy) {
        n->rx_dropped++;
        return -1;
    }
    memcpy(copy, frame, len);
    n->pending[(n->p_head + n->p_count) % VNET_PENDING_MAX] = (struct vnet_frame){(uint32_t)len, copy};
    n->p_count++;
    deliver(n);
    if (n->p_count >= VNET_PENDING_HIGH) {
        n->congested = 1;
        return 1;
    }
    return 0;
}

/* guest -> stack */
static void transmit(struct virtio_net *n)
{
    struct virtq *q = &n->t.q[Q_TX];
    struct virtq_chain ch;
    int used = 0, sent = 0;
    while (virtq__pop(q, &n->t.vm->mem, &ch) == 1) {
        if (ch.rlen < HDR_LEN || ch.rlen - HDR_LEN > VNET_FRAME_MAX || ch.rlen == HDR_LEN) {
            n->tx_dropped++;
        } else {
            size_t len = (size_t)(ch.rlen - HDR_LEN);
            if (virtq_chain__read(&ch, HDR_LEN, n->txbuf, len) == len && n->stack) {
                net_stack_input_frame(n->stack, n->txbuf, len);
                n->tx_frames++;
                sent = 1;
            } else {
                n->tx_dropped++;
            }
        }
        virtq__push(q, ch.head, 0);
        used = 1;
    }
    if (sent && n->stack)
        net_stack_flush(n->stack);
    if (used)
        virtio_mmio__signal_used(&n->t);
    virtio_mmio__check_broken(&n->t, Q_TX);
}

static void net_notify(struct virtio_mmio *t, uint32_t qi)
{
    struct virtio_net *n = t->dev;
    if (qi == Q_TX)
        transmit(n);
    else if (qi == Q_RX)
        deliver(n);
}

/* I/O thread: the stack's sockets and timers. */
static void on_stack_fd(void *ctx, uint32_t events)
{
    struct virtio_net *n = ctx;
    (void)events;
    pthread_mutex_lock(&n->t.lock);
    net_stack_on_fd_ready(n->stack);
    pthread_mutex_unlock(&n->t.lock);
}

void virtio_net__stats(struct virtio_net *n, struct net_stats *out)
{
    pthread_mutex_lock(&n->t.lock);
    *out = *net_stack_stats(n->stack);
    pthread_mutex_unlock(&n->t.lock);
}

static void net_reset(struct virtio_mmio *t)
{
    struct virtio_net *n = t->dev;
    pending_drop_all(n);
    if (n->congested && n->stack) {
        n->congested = 0;
        net_stack_link_ready(n->stack);
    }
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
};

int virtio_net__init(struct virtio_net *n, struct kvm_vm *vm, uint64_t base, int irq, const struct net_config *cfg,
                     char *err, size_t errcap)
{
    memset(n, 0, sizeof(*n));
    memcpy(n->mac, cfg->guest_mac, 6);
    n->io.fn = on_stack_fd;
    n->io.ctx = n;
    n->txbuf = malloc(VNET_FRAME_MAX);
    if (!n->txbuf) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    if (virtio_mmio__init(&n->t, vm, base, irq, &net_ops, n) < 0) {
        snprintf(err, errcap, "cannot place virtio-net");
        return -1;
    }
    n->stack = net_stack_new(cfg, stack_out, n, err, errcap);
    if (!n->stack)
        return -1;
    if (kvm_io__watch(vm, net_stack_fd(n->stack), EPOLLIN, &n->io) < 0) {
        snprintf(err, errcap, "cannot watch the network stack: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void virtio_net__close(struct virtio_net *n)
{
    if (n->stack)
        net_stack_free(n->stack);
    n->stack = NULL;
    pending_drop_all(n);
    free(n->txbuf);
    n->txbuf = NULL;
}
