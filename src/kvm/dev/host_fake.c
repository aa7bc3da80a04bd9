/* The fake device host (host_fake.h). Single-threaded: the test is the vCPU and the
 * I/O thread, so every run is repeatable. */
#include "kvm/dev/host_fake.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

static struct host_fake *fake_of(struct dev_host *h) { return (struct host_fake *)h; }

static int map(struct dev_host *h, int pio, uint64_t base, uint64_t len, dev_access_fn fn, void *dev)
{
    struct host_fake *f = fake_of(h);
    if (f->nranges >= HOST_FAKE_RANGES || len == 0 || base + len < base)
        return -1;
    for (int i = 0; i < f->nranges; i++) {
        struct host_fake_range *r = &f->ranges[i];
        if (r->pio == pio && base < r->base + r->len && r->base < base + len)
            return -1;
    }
    f->ranges[f->nranges++] = (struct host_fake_range){base, len, fn, dev, pio};
    return 0;
}

static int map_mmio(struct dev_host *h, uint64_t base, uint64_t len, dev_access_fn fn, void *dev)
{
    return map(h, 0, base, len, fn, dev);
}

static int map_pio(struct dev_host *h, uint64_t base, uint64_t len, dev_access_fn fn, void *dev)
{
    return map(h, 1, base, len, fn, dev);
}

static void irq_line(struct dev_host *h, int gsi, int level)
{
    struct host_fake *f = fake_of(h);
    if (gsi < 0 || gsi >= HOST_FAKE_GSIS)
        return;
    if (level && !f->level[gsi])
        f->edges++;
    f->level[gsi] = level != 0;
}

static struct host_fake_watch *find_watch(struct host_fake *f, int fd)
{
    for (int i = 0; i < f->nwatches; i++)
        if (f->watches[i].fd == fd)
            return &f->watches[i];
    return NULL;
}

static int watch(struct dev_host *h, int fd, uint32_t events, struct dev_io_entry *e)
{
    struct host_fake *f = fake_of(h);
    if (find_watch(f, fd) || f->nwatches >= HOST_FAKE_WATCHES)
        return -1;
    f->watches[f->nwatches++] = (struct host_fake_watch){fd, events, e};
    return 0;
}

static int rewatch(struct dev_host *h, int fd, uint32_t events, struct dev_io_entry *e)
{
    struct host_fake_watch *w = find_watch(fake_of(h), fd);
    if (!w)
        return -1;
    w->events = events;
    w->e = e;
    return 0;
}

static void unwatch(struct dev_host *h, int fd)
{
    struct host_fake *f = fake_of(h);
    struct host_fake_watch *w = find_watch(f, fd);
    if (w)
        *w = f->watches[--f->nwatches];
}

static void reset(struct dev_host *h, const char *why)
{
    (void)why;
    fake_of(h)->resets++;
}

static const struct dev_host_ops fake_ops = {
    .map_mmio = map_mmio,
    .map_pio = map_pio,
    .irq_line = irq_line,
    .watch = watch,
    .rewatch = rewatch,
    .unwatch = unwatch,
    .reset = reset,
};

int host_fake_init(struct host_fake *f, uint64_t mem_bytes)
{
    memset(f, 0, sizeof(*f));
    uint8_t *ram = calloc(1, mem_bytes ? mem_bytes : 1);
    if (!ram)
        return -1;
    f->mem.n = 1;
    f->mem.r[0] = (struct guest_region){.gpa = 0, .size = mem_bytes, .hva = ram};
    f->host.ops = &fake_ops;
    f->host.mem = &f->mem;
    return 0;
}

void host_fake_free(struct host_fake *f)
{
    free(f->mem.r[0].hva);
    f->mem.r[0].hva = NULL;
}

int host_fake_access(struct host_fake *f, int pio, uint64_t addr, void *data, uint32_t len, int is_write)
{
    for (int i = 0; i < f->nranges; i++) {
        struct host_fake_range *r = &f->ranges[i];
        if (r->pio == pio && addr >= r->base && addr - r->base < r->len && len <= r->len - (addr - r->base)) {
            r->fn(r->dev, addr - r->base, data, len, is_write);
            return 0;
        }
    }
    if (!is_write)
        memset(data, 0xff, len);
    return -1;
}

int host_fake_poll(struct host_fake *f)
{
    struct pollfd p[HOST_FAKE_WATCHES];
    int n = f->nwatches, ran = 0;
    if (n <= 0 || n > HOST_FAKE_WATCHES)
        return 0;
    for (int i = 0; i < n; i++)
        p[i] = (struct pollfd){.fd = f->watches[i].fd, .events = (short)f->watches[i].events};
    if (poll(p, (nfds_t)n, 0) <= 0)
        return 0;
    for (int i = 0; i < n; i++) {
        if (!p[i].revents)
            continue;
        struct host_fake_watch *w = find_watch(f, p[i].fd);
        if (w && w->e) {
            w->e->fn(w->e->ctx, (uint32_t)p[i].revents);
            ran++;
        }
    }
    return ran;
}
