/* The kvm VMM's QMP subset (control.h). The monitor is the only peer, but its lines are
 * parsed with the same care as any input: bounded lines, JSON checked for shape, fds
 * that come with a line kept only for getfd, everything else closed. */
#include "kvm/control.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvm/dev/blk_overlay.h"
#include "kvm/machine.h"
#include "kvm/snapfile.h"
#include "util/log.h"
#include "util/util.h"

static void send_line(struct kvm_control *c, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return;
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = write(c->fd, s + off, len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (n < 0 && errno == EAGAIN && poll(&p, 1, 1000) > 0)
            continue;
        break; /* the monitor stopped reading: it will see the channel break */
    }
    if (off == len && write(c->fd, "\n", 1) != 1) {
        /* as above */
    }
    free(s);
}

static void reply(struct kvm_control *c, json_t *id, json_t *ret)
{
    json_t *o = json_pack("{s:o}", "return", ret ? ret : json_object());
    if (o && id)
        json_object_set(o, "id", id);
    if (o)
        send_line(c, o);
}

static void reply_error(struct kvm_control *c, json_t *id, const char *cls, const char *desc)
{
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "class", cls, "desc", desc);
    if (o && id)
        json_object_set(o, "id", id);
    if (o)
        send_line(c, o);
}

/* The fd named `name` by an earlier getfd, taken out of the table (-1: none). */
static int take_fd(struct kvm_control *c, const char *name)
{
    for (int i = 0; i < CONTROL_MAX_FDS; i++)
        if (c->named_fd[i] >= 0 && !strcmp(c->fd_name[i], name)) {
            int fd = c->named_fd[i];
            c->named_fd[i] = -1;
            return fd;
        }
    return -1;
}

static void do_getfd(struct kvm_control *c, json_t *id, const char *name)
{
    if (c->pending_fd < 0) {
        reply_error(c, id, "GenericError", "getfd: no file descriptor came with the command");
        return;
    }
    if (!name || !name[0] || strlen(name) >= sizeof(c->fd_name[0])) {
        reply_error(c, id, "GenericError", "getfd: fdname missing or too long");
        return;
    }
    int old = take_fd(c, name);
    if (old >= 0)
        close(old);
    for (int i = 0; i < CONTROL_MAX_FDS; i++)
        if (c->named_fd[i] < 0) {
            c->named_fd[i] = c->pending_fd;
            snprintf(c->fd_name[i], sizeof(c->fd_name[i]), "%s", name);
            c->pending_fd = -1;
            reply(c, id, NULL);
            return;
        }
    reply_error(c, id, "GenericError", "getfd: too many file descriptors held");
}

static void pause_vm(struct kvm_control *c)
{
    if (!c->paused)
        kvm_vcpu__pause_all(&c->m->vm);
    c->paused = 1;
}

static void do_migrate(struct kvm_control *c, json_t *id, const char *uri)
{
    if (!uri || strncmp(uri, "fd:", 3) != 0) {
        reply_error(c, id, "GenericError", "migrate: only fd:NAME is supported");
        return;
    }
    int fd = take_fd(c, uri + 3);
    if (fd < 0) {
        reply_error(c, id, "GenericError", "migrate: no file descriptor of that name (getfd first)");
        return;
    }
    int was_paused = c->paused;
    pause_vm(c);
    struct snapfile_info info;
    char err[256];
    uint64_t t0 = util_now_ns(CLOCK_MONOTONIC);
    int rc = kvm_snapfile__save(c->m, fd, &info, err, sizeof(err));
    close(fd);
    if (!was_paused) {
        kvm_vcpu__resume_all(&c->m->vm);
        c->paused = 0;
    }
    if (rc < 0) {
        snprintf(c->migrate_status, sizeof(c->migrate_status), "failed");
        snprintf(c->migrate_error, sizeof(c->migrate_error), "%s", err);
        reply_error(c, id, "GenericError", err);
        return;
    }
    vmm_log("kvm: memory and device state saved in %.1f ms (state %llu bytes, %.1f of %llu MiB of RAM written)",
            (double)(util_now_ns(CLOCK_MONOTONIC) - t0) / 1e6, (unsigned long long)info.state_len,
            (double)info.ram_written / 1048576.0, (unsigned long long)(info.mem_bytes >> 20));
    snprintf(c->migrate_status, sizeof(c->migrate_status), "completed");
    c->migrate_error[0] = 0;
    reply(c, id, NULL);
}

static void do_overlay(struct kvm_control *c, json_t *id, const char *name)
{
    if (!c->paused) {
        reply_error(c, id, "GenericError", "x-cocoon-disk-overlay: stop the VM first");
        return;
    }
    if (!c->m->has_blk) {
        reply_error(c, id, "GenericError", "x-cocoon-disk-overlay: the box has no disk");
        return;
    }
    int fd = take_fd(c, name ? name : "");
    if (fd < 0) {
        reply_error(c, id, "GenericError", "x-cocoon-disk-overlay: no file descriptor of that name (getfd first)");
        return;
    }
    char err[512];
    if (virtio_blk__overlay(&c->m->blk, fd, name, err, sizeof(err)) < 0) {
        reply_error(c, id, "GenericError", err);
        return;
    }
    reply(c, id, NULL);
}

void kvm_control__command(struct kvm_control *c, const char *line, size_t len)
{
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    json_t *id = o ? json_object_get(o, "id") : NULL;
    const char *cmd = o ? json_string_value(json_object_get(o, "execute")) : NULL;
    json_t *args = o ? json_object_get(o, "arguments") : NULL;
    if (!cmd || (args && !json_is_object(args))) {
        reply_error(c, id, "GenericError", "not a QMP command object");
    } else if (!strcmp(cmd, "qmp_capabilities") || !strcmp(cmd, "migrate-set-parameters")) {
        reply(c, id, NULL);
    } else if (!strcmp(cmd, "query-status")) {
        reply(c, id, json_pack("{s:s, s:b}", "status", c->paused ? "paused" : "running", "running", !c->paused));
    } else if (!strcmp(cmd, "stop")) {
        pause_vm(c);
        reply(c, id, NULL);
    } else if (!strcmp(cmd, "cont")) {
        if (c->paused)
            kvm_vcpu__resume_all(&c->m->vm);
        c->paused = 0;
        reply(c, id, NULL);
    } else if (!strcmp(cmd, "getfd")) {
        do_getfd(c, id, json_string_value(json_object_get(args, "fdname")));
    } else if (!strcmp(cmd, "migrate")) {
        do_migrate(c, id, json_string_value(json_object_get(args, "uri")));
    } else if (!strcmp(cmd, "query-migrate")) {
        json_t *r = json_pack("{s:s}", "status", c->migrate_status);
        if (r && c->migrate_error[0])
            json_object_set_new(r, "error-desc", json_string(c->migrate_error));
        reply(c, id, r);
    } else if (!strcmp(cmd, "x-cocoon-disk-overlay")) {
        do_overlay(c, id, json_string_value(json_object_get(args, "fdname")));
    } else {
        reply_error(c, id, "CommandNotFound", "this command is not offered by the kvm VMM");
    }
    json_decref(o);
    if (c->pending_fd >= 0) { /* an fd that came with any other command is not kept */
        close(c->pending_fd);
        c->pending_fd = -1;
    }
}

static void on_readable(void *ctx, uint32_t events)
{
    struct kvm_control *c = ctx;
    (void)events;
    for (;;) {
        if (c->len >= sizeof(c->buf)) {
            vmm_log("kvm: a control line longer than %u bytes: the channel is closed", CONTROL_LINE_MAX);
            c->m->vm.host.ops->unwatch(&c->m->vm.host, c->fd);
            close(c->fd);
            c->fd = -1;
            return;
        }
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int) * 2)];
        } cm;
        struct iovec iov = {.iov_base = c->buf + c->len, .iov_len = sizeof(c->buf) - c->len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
        ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        for (struct cmsghdr *h = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; h; h = CMSG_NXTHDR(&mh, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
                continue;
            size_t nfd = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
                if (c->pending_fd < 0)
                    c->pending_fd = fd;
                else
                    close(fd);
            }
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) { /* the monitor is gone: it takes us with it (PDEATHSIG) */
            c->m->vm.host.ops->unwatch(&c->m->vm.host, c->fd);
            close(c->fd);
            c->fd = -1;
            return;
        }
        c->len += (size_t)n;
        char *nl;
        while (c->fd >= 0 && (nl = memchr(c->buf, '\n', c->len))) {
            size_t l = (size_t)(nl - c->buf);
            kvm_control__command(c, c->buf, l);
            memmove(c->buf, nl + 1, c->len - l - 1);
            c->len -= l + 1;
        }
    }
}

int kvm_control__start(struct kvm_control *c, struct kvm_machine *m, int fd, char *err, size_t cap)
{
    memset(c, 0, sizeof(*c));
    c->m = m;
    c->fd = fd;
    c->pending_fd = -1;
    for (int i = 0; i < CONTROL_MAX_FDS; i++)
        c->named_fd[i] = -1;
    snprintf(c->migrate_status, sizeof(c->migrate_status), "none");
    util_set_nonblock(fd, 1);
    c->io.fn = on_readable;
    c->io.ctx = c;
    if (m->vm.host.ops->watch(&m->vm.host, fd, EPOLLIN, &c->io) < 0) {
        snprintf(err, cap, "cannot watch the control channel: %s", strerror(errno));
        return -1;
    }
    send_line(c, json_pack("{s:{s:{s:{s:i, s:i, s:i}, s:s}, s:[]}}", "QMP", "version", "qemu", "major", 7, "minor", 2,
                           "micro", 0, "package", "cocoon-vmm kvm", "capabilities"));
    return 0;
}

void kvm_control__close(struct kvm_control *c)
{
    if (c->fd >= 0)
        close(c->fd);
    if (c->pending_fd >= 0)
        close(c->pending_fd);
    for (int i = 0; i < CONTROL_MAX_FDS; i++)
        if (c->named_fd[i] >= 0)
            close(c->named_fd[i]);
    c->fd = c->pending_fd = -1;
}
