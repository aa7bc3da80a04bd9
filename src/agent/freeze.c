/* Quiescing the guest for a live snapshot: FREEZE syncs and freezes the root file
 * system (FIFREEZE) so the disk layer the host cuts off is clean; THAW (a FREEZE of 0
 * ms) undoes it. The agent thaws by itself when the deadline the host gave passes, so
 * a host that dies mid-snapshot never leaves the guest's file system frozen. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/random.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int root_ioctl(unsigned long req)
{
    int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = ioctl(fd, req, 0);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

void freeze_thaw(struct agent *a)
{
    if (root_ioctl(FITHAW) < 0 && errno != EINVAL) /* EINVAL: it was not frozen */
        agent_log("thawing the root file system: %s", strerror(errno));
    a->thaw_at = 0;
    a->muted = 0;
}

void freeze_on_request(struct agent *a, const uint8_t *p, size_t n, uint64_t now)
{
    uint32_t ms, flags;
    struct proto_frozen f;
    memset(&f, 0, sizeof(f));
    if (proto_decode_freeze(p, n, &ms, &flags) != PROTO_OK) {
        session_send_error(a, PROTO_STREAM_SESSION, EINVAL, "malformed FREEZE");
        return;
    }
    if (ms == 0) {
        freeze_thaw(a);
        session_send(a, proto_encode_frozen(&agent_w, &f));
        return;
    }
    sync();
    if (root_ioctl(FIFREEZE) < 0 && errno != EBUSY) { /* EBUSY: frozen already (by us) */
        f.code = (uint32_t)errno;
        snprintf(f.message, sizeof(f.message), "cannot freeze the root file system: %s", strerror(errno));
        agent_log("%s", f.message);
    } else {
        f.mode = 1;
        a->thaw_at = now + (uint64_t)ms * NS_PER_MS;
    }
    session_send(a, proto_encode_frozen(&agent_w, &f));
    if (f.mode && (flags & PROTO_FREEZE_MUTE))
        a->muted = 1; /* FROZEN is the last frame before the memory is captured */
}

/* The new box must not share the parent's (or a sibling's) random stream: the host's
 * seed is credited and the CRNG reseeded from it at once. */
static void reseed(const uint64_t seed[4])
{
    struct {
        struct rand_pool_info info;
        uint32_t buf[8];
    } pool;
    pool.info.entropy_count = 256;
    pool.info.buf_size = 32;
    memcpy(pool.buf, seed, 32);
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        agent_log("reseeding the RNG: /dev/urandom: %s", strerror(errno));
        return;
    }
    if (ioctl(fd, RNDADDENTROPY, &pool) < 0) {
        agent_log("reseeding the RNG: RNDADDENTROPY: %s", strerror(errno));
        if (write(fd, seed, 32) < 0) /* mixed in, not credited */
            agent_log("reseeding the RNG: write: %s", strerror(errno));
    }
    if (ioctl(fd, RNDRESEEDCRNG) < 0)
        agent_log("reseeding the RNG: RNDRESEEDCRNG: %s", strerror(errno));
    close(fd);
    memset(&pool, 0, sizeof(pool));
}

void freeze_on_restored(struct agent *a, const uint8_t *p, size_t n)
{
    struct proto_restored r;
    if (proto_decode_restored(p, n, &r) != PROTO_OK) {
        session_send_error(a, PROTO_STREAM_SESSION, EINVAL, "malformed RESTORED");
        return;
    }
    /* The child must not serve anything with its parent's clock or RNG: both come
     * first. Thawing the file system and writing /etc/hosts cost disk writes (into a
     * fresh layer: slow) and follow READY, overlapping the host's way to the first
     * request; this loop reads no request before they are done. */
    clock_follow_host(r.realtime_ns, 0);
    reseed(r.seed);
    memset(r.seed, 0, sizeof(r.seed));
    if (r.hostname[0] && sethostname(r.hostname, strlen(r.hostname)) != 0)
        agent_log("sethostname %s: %s", r.hostname, strerror(errno));
    size_t forgotten = exec_forget_all(a);
    a->muted = 0;
    if (a->phase == PHASE_HANDSHAKE)
        a->phase = PHASE_SERVING;
    struct proto_ready rd = {.boot_ns = clock_ns(CLOCK_BOOTTIME), .init_ns = a->init_ns};
    session_send(a, proto_encode_ready(&agent_w, &rd));
    freeze_thaw(a); /* before /etc/hosts is written */
    if (r.hostname[0])
        guestcfg_apply(r.hostname);
    agent_log("restored from a snapshot: clock stepped, RNG reseeded, %zu exec stream(s) of the parent forgotten",
              forgotten);
}

uint64_t freeze_tick(struct agent *a, uint64_t now)
{
    if (!a->thaw_at)
        return 0;
    if (now < a->thaw_at)
        return a->thaw_at;
    agent_log("the host did not thaw the root file system in time: thawing it");
    freeze_thaw(a);
    return 0;
}
