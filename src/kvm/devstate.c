/* The device part of a kvm machine's saved state: one "DEVS" section holding the set of
 * devices the machine has and one section per device (its model's save/load, kvm/dev).
 * A state is restored only into a machine with the same set of devices. */
#include <stdio.h>
#include <string.h>

#include "kvm/machine.h"
#include "kvm/snap.h"

#define DEVS_VERSION 1
enum { D_UART, D_RESET, D_RNG, D_BLK, D_CON, D_NET, D_COUNT };

/* name: what a device is called in a message; model: how its own messages start */
static const struct {
    uint32_t tag;
    const char *name, *model;
} devs[D_COUNT] = {
    [D_UART] = {KVM_SNAP_TAG_UART, "the serial port", "uart"},
    [D_RESET] = {KVM_SNAP_TAG_RESET, "the reset ports", "reset"},
    [D_RNG] = {KVM_SNAP_TAG_RNG, "virtio-rng", "virtio-rng"},
    [D_BLK] = {KVM_SNAP_TAG_BLK, "virtio-blk (a disk)", "virtio-blk"},
    [D_CON] = {KVM_SNAP_TAG_CON, "virtio-console", "virtio-console"},
    [D_NET] = {KVM_SNAP_TAG_NET, "virtio-net (a network)", "virtio-net"},
};

static uint32_t present(const struct kvm_machine *m)
{
    return 1u << D_UART | 1u << D_RESET | (m->has_rng ? 1u << D_RNG : 0) | (m->has_blk ? 1u << D_BLK : 0) |
           (m->has_con ? 1u << D_CON : 0) | (m->has_net ? 1u << D_NET : 0);
}

static int save_one(struct kvm_machine *m, int d, struct snap_w *w, char *err, size_t errcap)
{
    switch (d) {
    case D_UART: return uart__save(&m->uart, w, err, errcap);
    case D_RESET: return reset__save(&m->rst, w, err, errcap);
    case D_RNG: return virtio_rng__save(&m->rng, w, err, errcap);
    case D_BLK: return virtio_blk__save(&m->blk, w, err, errcap);
    case D_CON: return virtio_console__save(&m->con, w, err, errcap);
    case D_NET: return virtio_net__save(&m->net, w, err, errcap);
    }
    return -1;
}

static int load_one(struct kvm_machine *m, int d, struct snap_r *r, char *err, size_t errcap)
{
    switch (d) {
    case D_UART: return uart__load(&m->uart, r, err, errcap);
    case D_RESET: return reset__load(&m->rst, r, err, errcap);
    case D_RNG: return virtio_rng__load(&m->rng, r, err, errcap);
    case D_BLK: return virtio_blk__load(&m->blk, r, err, errcap);
    case D_CON: return virtio_console__load(&m->con, r, err, errcap);
    case D_NET: return virtio_net__load(&m->net, r, err, errcap);
    }
    return -1;
}

int kvm_devstate__save(struct kvm_machine *m, struct snap_w *w, char *err, size_t errcap)
{
    uint32_t set = present(m);
    size_t outer = snap_w__begin(w, KVM_SNAP_TAG_DEVS);
    snap_w__u32(w, DEVS_VERSION);
    snap_w__u32(w, set);
    for (int d = 0; d < D_COUNT; d++) {
        if (!(set & 1u << d))
            continue;
        size_t mark = snap_w__begin(w, devs[d].tag);
        if (save_one(m, d, w, err, errcap) < 0)
            return -1;
        snap_w__end(w, mark);
    }
    snap_w__end(w, outer);
    if (w->oom) {
        snprintf(err, errcap, "the device state does not fit the saved state (out of memory or over %u bytes)",
                 SNAP_MAX_BYTES);
        return -1;
    }
    return 0;
}

static int fail(char *err, size_t errcap, const char *what, const char *why)
{
    snprintf(err, errcap, "the saved device state %s%s", what, why);
    return -1;
}

/* Names the first device in one set and not in the other. */
static int set_mismatch(uint32_t saved, uint32_t here, char *err, size_t errcap)
{
    for (int d = 0; d < D_COUNT; d++) {
        uint32_t bit = 1u << d;
        if ((saved & bit) && !(here & bit)) {
            snprintf(err, errcap, "the saved state has %s and this box has none", devs[d].name);
            return -1;
        }
        if (!(saved & bit) && (here & bit)) {
            snprintf(err, errcap, "this box has %s and the saved state has none", devs[d].name);
            return -1;
        }
    }
    snprintf(err, errcap, "the saved state names devices this build does not know (0x%x)", saved);
    return -1;
}

int kvm_devstate__load(struct kvm_machine *m, struct snap_r *r, char *err, size_t errcap)
{
    struct snap_r body;
    if (snap_r__section(r, KVM_SNAP_TAG_DEVS, &body) < 0)
        return fail(err, errcap, "is missing", " (no DEVS section)");
    uint32_t version = snap_r__u32(&body), saved = snap_r__u32(&body), here = present(m);
    if (body.bad)
        return fail(err, errcap, "is cut short: ", body.why);
    if (version != DEVS_VERSION) {
        snprintf(err, errcap, "the saved device state is version %u, this build reads %u", version, DEVS_VERSION);
        return -1;
    }
    if (saved != here)
        return set_mismatch(saved, here, err, errcap);
    uint32_t seen = 0, tag;
    struct snap_r sub;
    int rc;
    while ((rc = snap_r__next(&body, &tag, &sub)) == 1) {
        int d = 0;
        while (d < D_COUNT && devs[d].tag != tag)
            d++;
        if (d == D_COUNT || !(here & 1u << d) || (seen & 1u << d)) {
            snprintf(err, errcap, "the saved device state has an unexpected section 0x%08x", tag);
            return -1;
        }
        seen |= 1u << d;
        if (load_one(m, d, &sub, err, errcap) < 0) {
            if (strncmp(err, devs[d].model, strlen(devs[d].model))) { /* say which device */
                char why[256];
                snprintf(why, sizeof(why), "%s", err);
                snprintf(err, errcap, "%s: %s", devs[d].model, why);
            }
            return -1;
        }
        if (sub.off != sub.len) {
            snprintf(err, errcap, "the saved state of %s has %zu bytes too many", devs[d].name, sub.len - sub.off);
            return -1;
        }
    }
    if (rc < 0)
        return fail(err, errcap, "is malformed: ", body.why);
    if (seen != here) {
        for (int d = 0; d < D_COUNT; d++)
            if ((here & ~seen) & 1u << d) {
                snprintf(err, errcap, "the saved device state lacks the section of %s", devs[d].name);
                break;
            }
        return -1;
    }
    return 0;
}
