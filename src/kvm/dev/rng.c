/* virtio-rng: every buffer the driver offers on queue 0 is filled (all of its
 * writable bytes, capped per request) from the host's getrandom(2). */
#include <stdio.h>
#include <sys/random.h>

#include "kvm/dev/virtio.h"
#include "kvm/snap.h"

#define RNG_MAX_PER_REQ 4096

static uint32_t fill(struct virtio_mmio *t, struct virtq_chain *c)
{
    struct virtio_rng *r = t->dev;
    uint32_t done = 0;
    for (uint32_t k = c->nr; k < c->nr + c->nw && done < RNG_MAX_PER_REQ; k++) {
        uint32_t want = c->seg[k].len < RNG_MAX_PER_REQ - done ? c->seg[k].len : RNG_MAX_PER_REQ - done;
        ssize_t n = getrandom(c->seg[k].p, want, 0);
        if (n <= 0)
            break;
        done += (uint32_t)n;
        if ((uint32_t)n < want)
            break;
    }
    r->bytes += done;
    return done;
}

static void rng_notify(struct virtio_mmio *t, uint32_t qi)
{
    if (qi == 0)
        virtio_mmio__serve(t, 0, fill);
}

static const struct virtio_dev_ops rng_ops = {
    .name = "virtio-rng",
    .device_id = 4,
    .num_queues = 1,
    .notify = rng_notify,
};

int virtio_rng__init(struct virtio_rng *r, struct dev_host *host, uint64_t base, int irq)
{
    r->bytes = 0;
    return virtio_mmio__init(&r->t, host, base, irq, &rng_ops, r);
}

/* Saved state: the transport only (buffers are filled within a notification, no chain
 * is ever held). */
int virtio_rng__save(struct virtio_rng *r, struct snap_w *w, char *err, size_t errcap)
{
    if (virtio_mmio__save(&r->t, w) < 0) {
        snprintf(err, errcap, "virtio-rng: the saved state is out of room");
        return -1;
    }
    return 0;
}

int virtio_rng__load(struct virtio_rng *r, struct snap_r *sr, char *err, size_t errcap)
{
    return virtio_mmio__load(&r->t, sr, err, errcap);
}
