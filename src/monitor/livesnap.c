/* Live snapshots on both backends (livesnap.h, docs/internals.md "Live snapshots"):
 * QEMU's QMP, or the kvm VMM's subset of it (src/kvm/control.h), where step 2's layer
 * switch is one x-cocoon-disk-overlay on an fd and step 2b's memory is our own file. libcocoon has published
 * snapshots/<id>/ with a second link to the box's disk.qcow2 (not committed yet) and made disk.next-<id>.qcow2 in the
 * box directory, whose backing file is that layer. Here:
 *   1. FREEZE to the agent (sync + FIFREEZE, thawed by the agent itself at a deadline);
 *   2. QMP stop; blockdev-add of disk.next-<id>.qcow2 with no backing; blockdev-snapshot
 *      puts it over the running top, which becomes its backing node;
 *   3. disk.next-<id>.qcow2 is renamed over disk.qcow2: the commit (the old layer keeps
 *      only the snapshot's link);
 *   4. QMP cont, THAW, and the answer.
 * A monitor killed before 3 takes QEMU with it before the guest wrote to the new layer
 * (it was paused): the box's disk is the old layer, the snapshot uncommitted. The QMP
 * commands are synchronous (each answers in milliseconds); the event loop waits. */
#include "monitor/livesnap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "monitor/monitor.h"
#include "monitor/mux.h"
#include "util/log.h"
#include "util/util.h"

#define FREEZE_DEFAULT_MS 30000u
#define FROZEN_WAIT_MS 10000u /* the agent's answer to FREEZE: a sync may take long under load */
#define QMP_TIMEOUT_MS 10000
#define MIGRATE_MAX_MS 600000 /* writing the guest's RAM to a file: seconds per GiB under TCG */

struct livesnap {
    struct watch w; /* W_LIVESNAP: the wait for FROZEN */
    int timer_fd;
    uint64_t client; /* serial of the client that asked */
    int waiting;     /* FREEZE sent, FROZEN awaited */
    int memory;      /* a fork's capture: memory and device state too (memory.next) */
    char next[64];   /* the new layer's file: disk.next-<snapshot id>.qcow2 */
    unsigned nodes;  /* node names made so far */
};

static struct proto_writer reply_w;

int livesnap_open(struct vmm *v)
{
    struct livesnap *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    s->w.kind = W_LIVESNAP;
    s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->timer_fd < 0 || vmm_watch(v, s->timer_fd, EPOLLIN, &s->w) < 0) {
        if (s->timer_fd >= 0)
            close(s->timer_fd);
        free(s);
        return -1;
    }
    v->livesnap = s;
    return 0;
}

void livesnap_close(struct vmm *v)
{
    struct livesnap *s = v->livesnap;
    if (!s)
        return;
    vmm_unwatch(v, s->timer_fd);
    close(s->timer_fd);
    free(s);
    v->livesnap = NULL;
}

static void arm(struct livesnap *s, unsigned ms)
{
    struct itimerspec it = {.it_value = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000}};
    timerfd_settime(s->timer_fd, 0, &it, NULL);
}

static void answer_error(struct vmm *v, uint64_t client, int code, const char *msg)
{
    vmm_log("live snapshot failed: %s", msg);
    size_t len = proto_encode_error(&reply_w, 0, (uint32_t)code, msg);
    if (len)
        mux_send_to(v->mux, client, reply_w.buf, len);
}

static void thaw(struct vmm *v)
{
    size_t len = proto_encode_freeze(&v->agent_w, 0, 0);
    if (len)
        vmm_send_agent(v, v->agent_w.buf, len);
}

/* QMP with the monitor's log line on failure. */
static int qmp(struct vmm *v, const char *cmd, json_t *args, char *err, size_t cap)
{
    if (qmp_command(&v->qmp, cmd, args, -1, NULL, QMP_TIMEOUT_MS, err, cap) < 0) {
        vmm_log("QMP %s: %s", cmd, err);
        return -1;
    }
    return 0;
}

/* The guest's memory and device state into memory.next (a link libcocoon made to the
 * snapshot's memory.state): QEMU 7.2 has no file: migration, so the file goes to QEMU
 * over the QMP socket (getfd) and the migration writes to that fd; done when
 * query-migrate says completed. QEMU stays paused throughout. */
static int capture_memory(struct vmm *v, char *err, size_t cap)
{
    int fd = openat(v->dirfd, LIVESNAP_MEMORY, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, cap, "cannot open %s: %s", LIVESNAP_MEMORY, strerror(errno));
        return -1;
    }
    int rc =
        qmp_command(&v->qmp, "getfd", json_pack("{s:s}", "fdname", "cocoonmem"), fd, NULL, QMP_TIMEOUT_MS, err, cap);
    if (rc == 0)
        qmp(v, "migrate-set-parameters", json_pack("{s:I}", "max-bandwidth", (json_int_t)1 << 40), err, cap);
    /* QEMU answers at once and works in the background; the kvm VMM answers when the
     * file is written */
    if (rc == 0 && qmp_command(&v->qmp, "migrate", json_pack("{s:s}", "uri", "fd:cocoonmem"), -1, NULL,
                               v->backend == &backend_kvm ? MIGRATE_MAX_MS : QMP_TIMEOUT_MS, err, cap) < 0) {
        vmm_log("QMP migrate: %s", err);
        rc = -1;
    }
    uint64_t deadline = util_now_ns(CLOCK_MONOTONIC) + (uint64_t)MIGRATE_MAX_MS * 1000000u;
    while (rc == 0) {
        json_t *ret = NULL;
        if ((rc = qmp_command(&v->qmp, "query-migrate", NULL, -1, &ret, QMP_TIMEOUT_MS, err, cap)) < 0)
            break;
        const char *st = json_string_value(json_object_get(ret, "status"));
        char status[32];
        snprintf(status, sizeof(status), "%s", st ? st : "?");
        json_t *e = json_object_get(ret, "error-desc");
        if (!strcmp(status, "completed")) {
            json_decref(ret);
            break;
        }
        if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
            snprintf(err, cap, "%s could not save the memory: %.300s", v->backend->child,
                     json_is_string(e) ? json_string_value(e) : status);
            rc = -1;
        } else if (util_now_ns(CLOCK_MONOTONIC) > deadline) {
            snprintf(err, cap, "saving the memory took longer than %d s", MIGRATE_MAX_MS / 1000);
            qmp(v, "migrate_cancel", NULL, err + strlen(err), 0);
            rc = -1;
        }
        json_decref(ret);
        if (rc == 0)
            usleep(20000);
    }
    if (rc == 0 && fdatasync(fd) < 0) {
        snprintf(err, cap, "cannot sync %s: %s", LIVESNAP_MEMORY, strerror(errno));
        rc = -1;
    }
    close(fd);
    return rc;
}

/* The kvm VMM opens no files: the new layer goes to it as an fd, and it puts the layer
 * over its disk (src/kvm/dev/blk_overlay.c). */
static int kvm_overlay(struct vmm *v, const char *next, char *err, size_t cap)
{
    int fd = openat(v->dirfd, next, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, cap, "cannot open %s: %s", next, strerror(errno));
        return -1;
    }
    int rc =
        qmp_command(&v->qmp, "getfd", json_pack("{s:s}", "fdname", "cocoondisk"), fd, NULL, QMP_TIMEOUT_MS, err, cap);
    close(fd);
    if (rc == 0)
        rc = qmp(v, "x-cocoon-disk-overlay", json_pack("{s:s}", "fdname", "cocoondisk"), err, cap);
    return rc;
}

/* Steps 2 to 4. quiesced: the guest's file system is frozen; note: why not. */
static void switch_layer(struct vmm *v, int quiesced, const char *note)
{
    struct livesnap *s = v->livesnap;
    uint64_t client = s->client;
    s->waiting = 0;
    arm(s, 0);
    char err[600], node[32];
    snprintf(node, sizeof(node), "livesnap%u", ++s->nodes);
    int paused = 0, added = 0, rc = -1;
    uint64_t t0 = util_now_ns(CLOCK_MONOTONIC);
    util_test_point("LIVESNAP_FROZEN");
    if (qmp(v, "stop", NULL, err, sizeof(err)) < 0)
        goto out;
    paused = 1;
    if (v->backend == &backend_kvm) {
        if (kvm_overlay(v, s->next, err, sizeof(err)) < 0)
            goto out;
    } else {
        json_t *add =
            json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:n}", "driver", "qcow2", "node-name", node, "discard",
                      "unmap", "file", "driver", "file", "filename", s->next, "discard", "unmap", "backing");
        if (qmp(v, "blockdev-add", add, err, sizeof(err)) < 0)
            goto out;
        added = 1;
        if (qmp(v, "blockdev-snapshot", json_pack("{s:s, s:s}", "node", "root", "overlay", node), err, sizeof(err)) < 0)
            goto out;
        added = 0; /* in use now: never deleted */
    }
    util_test_point("LIVESNAP_SWITCHED");
    if (s->memory) {
        uint64_t tm = util_now_ns(CLOCK_MONOTONIC);
        if (capture_memory(v, err, sizeof(err)) < 0) {
            /* QEMU writes the new layer now: it stays, and the snapshot stays uncommitted
             * (the box's disk.qcow2 is the old layer until the box next starts...) */
            answer_error(v, client, EIO, err);
            vmm_fatal(v, "live snapshot: %s", err);
            return;
        }
        vmm_log("live snapshot: memory and device state saved in %llu ms",
                (unsigned long long)((util_now_ns(CLOCK_MONOTONIC) - tm) / 1000000u));
        util_test_point("LIVESNAP_MEMORY");
    }
    if (renameat(v->dirfd, s->next, v->dirfd, "disk.qcow2") < 0) {
        /* QEMU writes the new layer, the box's file names the old: the box cannot go on */
        snprintf(err, sizeof(err), "cannot rename %s to disk.qcow2: %s", s->next, strerror(errno));
        answer_error(v, client, EIO, err);
        vmm_fatal(v, "live snapshot: %s", err);
        return;
    }
    int dfd = openat(v->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    util_test_point("LIVESNAP_COMMITTED");
    rc = 0;
out:
    if (added) {
        char e2[600];
        qmp(v, "blockdev-del", json_pack("{s:s}", "node-name", node), e2, sizeof(e2));
    }
    char e3[600];
    if (paused && qmp(v, "cont", NULL, e3, sizeof(e3)) < 0) {
        if (rc == 0) { /* committed: the snapshot is whole, only the box cannot go on */
            struct proto_snapshot a = {.code = 0};
            snprintf(a.message, sizeof(a.message), "the snapshot was taken, but %s did not resume the box",
                     v->backend->child);
            size_t len = proto_encode_vmm_snapshot(&reply_w, &a);
            if (len)
                mux_send_to(v->mux, client, reply_w.buf, len);
        } else {
            char why[160];
            snprintf(why, sizeof(why), "%s did not resume the box after a failed snapshot", v->backend->child);
            answer_error(v, client, EIO, why);
        }
        vmm_fatal(v, "live snapshot: the box could not be resumed: %s", e3);
        return;
    }
    thaw(v); /* also undoes a freeze the agent did after we stopped waiting */
    vmm_hold_agent(v, 0);
    if (rc < 0) {
        answer_error(v, client, EIO, err);
        return;
    }
    unsigned ms = (unsigned)((util_now_ns(CLOCK_MONOTONIC) - t0) / 1000000u);
    vmm_log("live snapshot: the disk goes on in a new layer (paused %u ms, %s%s)", ms,
            quiesced ? "file system quiesced" : "not quiesced: ", quiesced ? "" : note);
    struct proto_snapshot a = {.code = (uint32_t)quiesced};
    snprintf(a.message, sizeof(a.message), "%s", quiesced ? "" : note);
    size_t len = proto_encode_vmm_snapshot(&reply_w, &a);
    if (len)
        mux_send_to(v->mux, client, reply_w.buf, len);
}

int livesnap_request(struct vmm *v, uint64_t serial, const struct proto_snapshot *req, int *code, char *err, size_t cap)
{
    struct stat st;
    *code = EINVAL;
    if (v->qmp.fd < 0) {
        *code = EOPNOTSUPP;
        snprintf(err, cap,
                 "box %s runs on the %s backend, which cannot snapshot a running box: stop it first (cocoon stop), "
                 "then take the snapshot",
                 v->cfg.id, v->backend->name);
        return -1;
    }
    if (v->state != ST_RUNNING) {
        *code = EAGAIN;
        snprintf(err, cap, "box %s is %s: a live snapshot needs it running", v->cfg.id, vmm_state_name(v->state));
        return -1;
    }
    if (v->livesnap && v->livesnap->waiting) {
        *code = EBUSY;
        snprintf(err, cap, "another snapshot of box %s is under way", v->cfg.id);
        return -1;
    }
    if (!livesnap_next_name_ok(req->path)) {
        snprintf(err, cap, "the new disk layer's name \"%.80s\" is not disk.next-<snapshot id>.qcow2", req->path);
        return -1;
    }
    if (fstatat(v->dirfd, req->path, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, cap, "the new disk layer %s is missing from the box directory", req->path);
        return -1;
    }
    int memory = (req->flags & PROTO_SNAPSHOT_MEMORY) != 0;
    if (memory && (fstatat(v->dirfd, LIVESNAP_MEMORY, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))) {
        snprintf(err, cap, "the memory file %s is missing from the box directory", LIVESNAP_MEMORY);
        return -1;
    }
    uint32_t mute = memory ? PROTO_FREEZE_MUTE : 0;
    struct livesnap *s = v->livesnap;
    if (!s) {
        *code = ENOMEM;
        snprintf(err, cap, "the monitor could not prepare for live snapshots (out of memory or descriptors)");
        return -1;
    }
    s->client = serial;
    s->waiting = 1;
    snprintf(s->next, sizeof(s->next), "%s", req->path);
    s->memory = memory;
    uint32_t ms = req->timeout_ms ? req->timeout_ms : FREEZE_DEFAULT_MS;
    vmm_log("live snapshot asked by client %llu: freezing the guest's file system (at most %u ms)",
            (unsigned long long)serial, ms);
    size_t len = proto_encode_freeze(&v->agent_w, ms, mute);
    if (len)
        vmm_send_agent(v, v->agent_w.buf, len);
    if (memory)
        vmm_hold_agent(v, 1); /* FREEZE is the last frame the captured guest gets */
    arm(s, FROZEN_WAIT_MS);
    return 0;
}

/* A fork's capture needs the agent quiet (muted after FROZEN): without it, no capture. */
static void give_up(struct vmm *v, const char *why)
{
    struct livesnap *s = v->livesnap;
    s->waiting = 0;
    arm(s, 0);
    thaw(v);
    vmm_hold_agent(v, 0);
    answer_error(v, s->client, EAGAIN, why);
}

void livesnap_on_frozen(struct vmm *v, const struct proto_frozen *f)
{
    struct livesnap *s = v->livesnap;
    if (!s || !s->waiting || (f->mode == 0 && f->code == 0))
        return; /* a thaw's answer, or one that came after we gave up waiting */
    if (f->code && s->memory) {
        char why[400];
        snprintf(why, sizeof(why), "the guest could not be quiesced for a fork: %.300s", f->message);
        give_up(v, why);
        return;
    }
    if (f->code) {
        char note[300];
        snprintf(note, sizeof(note), "the agent could not freeze the file system: %.200s", f->message);
        switch_layer(v, 0, note);
        return;
    }
    switch_layer(v, 1, "");
}

void livesnap_on_timer(struct vmm *v)
{
    struct livesnap *s = v->livesnap;
    uint64_t n;
    if (!s || read(s->timer_fd, &n, sizeof(n)) < 0 || !s->waiting)
        return;
    if (s->memory) {
        give_up(v, "the guest agent did not answer FREEZE in time: a fork needs a quiesced guest");
        return;
    }
    /* The freeze may still come: the THAW sent after the switch follows it in order. */
    switch_layer(v, 0, "the agent did not answer FREEZE in time");
    (void)n;
}

/* ---- a fork's start from its memory snapshot ---- */

void livesnap_restore_prepare(struct vmm *v)
{
    int fd = openat(v->dirfd, LIVESNAP_RESTORE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    unlinkat(v->dirfd, LIVESNAP_RESTORE, 0); /* once: a later start is a cold boot */
    /* the kvm VMM finds the snapshot on CHILD_INCOMING_FD by itself (src/kvm/main.c) */
    if (v->backend == &backend_qemu &&
        (child_plan_add(&v->plan, "-incoming") < 0 || child_plan_add(&v->plan, "fd:%d", CHILD_INCOMING_FD) < 0)) {
        vmm_log("cannot restore the fork's memory (command line full): a cold boot");
        close(fd);
        return;
    }
    v->restore_fd = fd;
    v->restoring = 1;
    vmm_log("starting from a memory snapshot (a fork)");
}

int livesnap_restore_begin(struct vmm *v, char *err, size_t cap)
{
    uint64_t t0 = util_now_ns(CLOCK_MONOTONIC);
    uint64_t deadline = t0 + (uint64_t)v->cfg.boot_timeout_ms * 1000000u;
    for (;;) {
        json_t *ret = NULL;
        if (qmp_command(&v->qmp, "query-status", NULL, -1, &ret, QMP_TIMEOUT_MS, err, cap) < 0)
            return -1;
        const char *status = json_string_value(json_object_get(ret, "status"));
        int running = status && !strcmp(status, "running");
        char seen[32];
        snprintf(seen, sizeof(seen), "%s", status ? status : "?");
        json_decref(ret);
        if (running)
            break;
        /* The capture was taken of a paused VM, and a migration's destination ends in
         * the source's run state: loaded, it waits paused for us. */
        if ((!strcmp(seen, "paused") || !strcmp(seen, "postmigrate")) &&
            qmp_command(&v->qmp, "cont", NULL, -1, NULL, QMP_TIMEOUT_MS, err, cap) < 0)
            return -1;
        if (strcmp(seen, "inmigrate") && strcmp(seen, "prelaunch") && strcmp(seen, "paused") &&
            strcmp(seen, "postmigrate")) {
            snprintf(err, cap, "%s is in state \"%s\" instead of running the restored guest", v->backend->child, seen);
            return -1;
        }
        if (util_now_ns(CLOCK_MONOTONIC) > deadline) {
            snprintf(err, cap, "%s did not finish loading the memory snapshot in time", v->backend->child);
            return -1;
        }
        usleep(10000);
    }
    vmm_log("memory snapshot loaded in %llu ms", (unsigned long long)((util_now_ns(CLOCK_MONOTONIC) - t0) / 1000000u));
    struct proto_restored r = {.realtime_ns = util_now_ns(CLOCK_REALTIME)};
    snprintf(r.hostname, sizeof(r.hostname), "%s", v->cfg.hostname);
    if (getrandom(r.seed, sizeof(r.seed), 0) != (ssize_t)sizeof(r.seed)) {
        snprintf(err, cap, "getrandom: %s", strerror(errno));
        return -1;
    }
    v->version = PROTO_VERSION;
    v->boot_stage = 1; /* the agent answers RESTORED with READY */
    size_t len = proto_encode_restored(&v->agent_w, &r);
    memset(&r, 0, sizeof(r));
    if (len)
        vmm_send_agent(v, v->agent_w.buf, len);
    memset(v->agent_w.buf, 0, len);
    return 0;
}
