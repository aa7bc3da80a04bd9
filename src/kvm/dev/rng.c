/* virtio-rng: every buffer the driver offers on queue 0 is filled (all of its
 * writable bytes, capped per request) from the host's getrandom(2). */
#include <sys/random.h>

#include "kvm/dev/virtio.h"

#define RNG_MAX_PER_REQ 4096

static void rng_notify(struct virtio_mmio *t, uint32_t qi)
{
    struct virtio_rng *r = t->dev;
    struct virtq *q = &t->q[0];
    struct virtq_chain c;
    int used = 0;
    if (qi != 0)
        return;
    while (virtq__pop(q, t->host->mem, &c) == 1) {
        uint32_t done = 0;
        for (uint32_t k = c.nr; k < c.nr + c.nw && done < RNG_MAX_PER_REQ; k++) {
            uint32_t want = c.seg[k].len < RNG_MAX_PER_REQ - done ? c.seg[k].len : RNG_MAX_PER_REQ - done;
            ssize_t n = getrandom(c.seg[k].p, want, 0);
            if (n <= 0)
                break;
            done += (uint32_t)n;
            if ((uint32_t)n < want)
                break;
        }
        r->bytes += done;
        virtq__push(q, &c, done);
        used = 1;
    }
    if (used)
        virtio_mmio__signal_used(t);
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
