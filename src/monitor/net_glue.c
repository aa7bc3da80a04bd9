/* Wires the user-space network stack (src/net) into cocoon-vmm, for both backends: the
 * child's network device (QEMU's `-netdev stream`, or the kvm VMM's virtio-net) talks
 * over one end of a socketpair, each Ethernet frame prefixed with its length as 4
 * big-endian bytes. Frames read from it go to the stack;
 * frames from the stack are queued here (bounded) and written when the socket allows.
 * Denials go to DIR/net.log; the counters to DIR/net.stats.json, rewritten atomically
 * (rename) when they changed, at most once a second. */
#include "monitor/net_glue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "proto/conn.h"
#include "util/util.h"
#include "util/log.h"
#include "monitor/net_stats.h"
#include "monitor/monitor.h"

#define RBUF_CAP (256u * 1024)
#define WQ_HIGH (2u * 1024 * 1024) /* above: the stack stops reading host sockets */
#define WQ_LOW (512u * 1024)
#define WQ_MAX (8u * 1024 * 1024) /* above: frames are dropped (TCP resends) */
#define FRAME_MAX 65550

struct net_glue {
    struct net_stack *stack;
    int fd, log_fd;
    struct watch w_link, w_stack;
    uint8_t *rbuf;
    size_t rlen;
    struct proto_bytes w; /* frames for the child, each after its length */
    int want_out, congested;
    struct net_stats written; /* as last written to net.stats.json */
    uint64_t written_at;      /* ms, CLOCK_MONOTONIC */
    int stop_sent;            /* the stack's wish to stop the box was passed on */
};

#define STATS_EVERY_MS 1000

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* After each batch: rewrite net.stats.json when the counters changed and a second
 * has passed; otherwise have the stack wake us up when it has. */
static void maybe_write_stats(struct vmm *v, int force)
{
    struct net_glue *g = v->net;
    if (!g->stack)
        return;
    const struct net_stats *st = net_stack_stats(g->stack);
    if (!force && !memcmp(st, &g->written, sizeof(*st)))
        return;
    uint64_t now = mono_ms();
    if (force || now >= g->written_at + STATS_EVERY_MS) {
        g->written = *st;
        g->written_at = now;
        net_stats_write(v->dirfd, v->cfg.net.mode, st);
        return;
    }
    net_stack_wake_in(g->stack, (unsigned)(g->written_at + STATS_EVERY_MS - now));
}

/* A secret violation under block-and-stop-box: the box stops (once). */
static void maybe_stop(struct vmm *v)
{
    struct net_glue *g = v->net;
    const char *why = g->stack ? net_stack_stop_wanted(g->stack) : NULL;
    if (!why || g->stop_sent)
        return;
    g->stop_sent = 1;
    maybe_write_stats(v, 1);
    vmm_event(v, EV_SECRET_VIOLATION, why, 0);
}

static int queue_frame(void *user, const uint8_t *frame, size_t len)
{
    struct net_glue *g = user;
    size_t pending = g->w.len - g->w.off;
    if (pending + len + 4 > WQ_MAX)
        return -1;
    if (proto_bytes_reserve(&g->w, len + 4, 256 * 1024) < 0)
        return -1;
    uint32_t be = htonl((uint32_t)len);
    memcpy(g->w.buf + g->w.len, &be, 4);
    memcpy(g->w.buf + g->w.len + 4, frame, len);
    g->w.len += len + 4;
    if (g->w.len - g->w.off > WQ_HIGH) {
        g->congested = 1;
        return 1;
    }
    return 0;
}

static void flush_out(struct vmm *v)
{
    struct net_glue *g = v->net;
    while (g->w.off < g->w.len) {
        ssize_t n = send(g->fd, g->w.buf + g->w.off, g->w.len - g->w.off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                g->w.off = g->w.len = 0; /* the child is gone: the exit path follows */
            }
            break;
        }
        g->w.off += (size_t)n;
    }
    if (g->w.off == g->w.len)
        g->w.off = g->w.len = 0;
    int want = g->w.len > g->w.off;
    if (want != g->want_out) {
        g->want_out = want;
        vmm_rewatch(v, g->fd, EPOLLIN | (want ? EPOLLOUT : 0), &g->w_link);
    }
    if (g->congested && g->w.len - g->w.off < WQ_LOW) {
        g->congested = 0;
        net_stack_link_ready(g->stack);
        if (g->w.len > g->w.off && !g->want_out)
            flush_out(v);
    }
}

static void read_link(struct vmm *v)
{
    struct net_glue *g = v->net;
    ssize_t n = recv(g->fd, g->rbuf + g->rlen, RBUF_CAP - g->rlen, MSG_DONTWAIT);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR && errno != EWOULDBLOCK)) {
            vmm_unwatch(v, g->fd); /* the child closed the link: it is exiting */
            close(g->fd);
            g->fd = -1;
        }
        return;
    }
    g->rlen += (size_t)n;
    size_t off = 0;
    while (g->rlen - off >= 4) {
        uint32_t be;
        memcpy(&be, g->rbuf + off, 4);
        size_t len = ntohl(be);
        if (len > FRAME_MAX || len + 4 > RBUF_CAP) {
            vmm_log_guest("network: frame of %zu bytes from the VMM: link dropped", len);
            vmm_unwatch(v, g->fd);
            close(g->fd);
            g->fd = -1;
            return;
        }
        if (g->rlen - off < len + 4)
            break;
        net_stack_input_frame(g->stack, g->rbuf + off + 4, len);
        off += len + 4;
    }
    memmove(g->rbuf, g->rbuf + off, g->rlen - off);
    g->rlen -= off;
    net_stack_flush(g->stack);
}

void net_glue_on_link(struct vmm *v, uint32_t events)
{
    struct net_glue *g = v->net;
    if (!g || g->fd < 0)
        return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        read_link(v);
    if (g->fd >= 0)
        flush_out(v);
    maybe_write_stats(v, 0);
    maybe_stop(v);
}

void net_glue_on_stack(struct vmm *v)
{
    struct net_glue *g = v->net;
    if (!g)
        return;
    net_stack_on_fd_ready(g->stack);
    if (g->fd >= 0)
        flush_out(v);
    maybe_write_stats(v, 0);
    maybe_stop(v);
}

int net_glue_prepare(struct vmm *v, int *child_end, char *err, size_t cap)
{
    *child_end = -1;
    if (v->cfg.net.mode == NET_MODE_NONE)
        return 0;
    struct net_glue *g = calloc(1, sizeof(*g));
    int sv[2];
    if (!g || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        free(g);
        snprintf(err, cap, "cannot create the network link: %s", strerror(errno));
        return -1;
    }
    g->fd = sv[0];
    g->log_fd = -1;
    g->w_link.kind = W_NET_LINK;
    g->w_stack.kind = W_NET_STACK;
    int sz = 4 * 1024 * 1024;
    setsockopt(g->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(g->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    v->net = g;
    *child_end = sv[1];
    return 0;
}

#define SECRETS_MAX (64u * 1024) /* what libcocoon writes into the pipe at most */

/* The secrets' values from the pipe libcocoon filled ("NAME=VALUE" lines), into the
 * stack's memory only; the buffer is wiped. */
static int take_secrets(struct vmm *v, struct net_stack *st, char *err, size_t cap)
{
    if (v->secrets_fd < 0)
        return 0;
    char *buf = malloc(SECRETS_MAX + 1);
    size_t len = 0;
    while (buf && len < SECRETS_MAX) {
        ssize_t n = read(v->secrets_fd, buf + len, SECRETS_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(v->secrets_fd);
    v->secrets_fd = -1;
    if (!buf) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    int rc = 0, n = 0;
    char *p = buf, *end = buf + len;
    while (p < end && rc == 0) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *eq = memchr(p, '=', (size_t)(end - p));
        if (!nl || !eq || eq > nl) {
            snprintf(err, cap, "malformed secrets from libcocoon");
            rc = -1;
            break;
        }
        *eq = 0;
        if (net_stack_secret_value(st, p, eq + 1, (size_t)(nl - eq - 1)) < 0) {
            snprintf(err, cap, "secret %.64s: not one of the box's secrets, or a bad value", p);
            rc = -1;
        }
        n++;
        p = nl + 1;
    }
    explicit_bzero(buf, SECRETS_MAX + 1);
    free(buf);
    if (rc == 0 && n)
        vmm_log("network: %d secret value(s) received (kept in memory only)", n);
    return rc;
}

int net_glue_start(struct vmm *v, char *err, size_t cap)
{
    struct net_glue *g = v->net;
    if (!g) {
        if (v->secrets_fd >= 0)
            close(v->secrets_fd); /* no network: nowhere for a secret to go */
        v->secrets_fd = -1;
        return 0;
    }
    g->rbuf = malloc(RBUF_CAP);
    g->log_fd = openat(v->dirfd, "net.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct net_config c = v->cfg.net;
    net_config_log(&c, g->log_fd, v->dirfd);
    net_config_upstream_from_env(&c);
    const char *extra_ca = getenv("COCOON_TLS_EXTRA_CA"); /* tests trust their own CA this way */
    if (extra_ca && *extra_ca && !c.tls_extra_ca[0])
        snprintf(c.tls_extra_ca, sizeof(c.tls_extra_ca), "%s", extra_ca);
    g->stack = g->rbuf ? net_stack_new(&c, queue_frame, g, err, cap) : NULL;
    if (!g->stack) {
        if (!g->rbuf)
            snprintf(err, cap, "out of memory");
        return -1;
    }
    if (net_stack_tls_setup(g->stack, v->dirfd, v->cfg.id, err, cap) < 0 || take_secrets(v, g->stack, err, cap) < 0)
        return -1;
    if (vmm_watch(v, g->fd, EPOLLIN, &g->w_link) < 0 ||
        vmm_watch(v, net_stack_fd(g->stack), EPOLLIN, &g->w_stack) < 0) {
        snprintf(err, cap, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    const struct net_config *in_effect = net_stack_config(g->stack);
    vmm_log("network: mode %s, %d rule(s), %d published port(s), %d upstream resolver(s); at most %d TCP "
            "connections, %d UDP/ICMP flows, %d DNS queries, %llu MiB of buffers",
            box_net_mode_name(c.mode), c.nrules, c.nports, c.nupstreams, in_effect->max_tcp, in_effect->max_udp,
            in_effect->max_dns, (unsigned long long)(in_effect->mem_budget >> 20));
    maybe_write_stats(v, 1);
    return 0;
}

void net_glue_send_trust(struct vmm *v)
{
    struct net_glue *g = v->net;
    const char *pem = g && g->stack ? net_stack_tls_ca_pem(g->stack) : NULL;
    if (!pem)
        return;
    struct proto_writer *w = &v->agent_w;
    proto_writer_begin(w, PROTO_STREAM_SESSION, PROTO_BOX_TRUST);
    proto_put_str(w, PT_TRUST_CA, pem);
    const struct net_config *nc = net_stack_config(g->stack);
    for (int i = 0; i < nc->nsecrets; i++) {
        char kv[NET_SECRET_NAME + NET_SECRET_PLACEHOLDER + 2];
        snprintf(kv, sizeof(kv), "%s=%s", nc->secrets[i].name, nc->secrets[i].placeholder);
        proto_put_str(w, PT_BOX_ENV, kv); /* the placeholder, never the value */
    }
    size_t len = proto_writer_finish(w);
    if (len)
        vmm_send_agent(v, w->buf, len);
    vmm_log("network: TLS interception of %d host pattern(s), %d secret(s), %d header rule(s); box CA sent to the "
            "guest",
            nc->ntls_intercept, nc->nsecrets, nc->nheader_rules);
}

void net_glue_free(struct vmm *v)
{
    struct net_glue *g = v->net;
    if (!g)
        return;
    if (g->stack) {
        const struct net_stats *st = net_stack_stats(g->stack);
        maybe_write_stats(v, 1);
        vmm_log("network: %llu frames in, %llu out; denied tcp %llu udp %llu dns %llu tls %llu icmp %llu; "
                "malformed %llu, fragments %llu, retransmits %llu",
                (unsigned long long)st->frames_in, (unsigned long long)st->frames_out,
                (unsigned long long)st->denied_tcp, (unsigned long long)st->denied_udp,
                (unsigned long long)st->denied_dns, (unsigned long long)st->denied_sni,
                (unsigned long long)st->denied_icmp, (unsigned long long)st->dropped_malformed,
                (unsigned long long)st->dropped_fragment, (unsigned long long)st->tcp_retransmits);
        net_stack_free(g->stack);
    }
    if (g->fd >= 0)
        close(g->fd);
    if (g->log_fd >= 0)
        close(g->log_fd);
    free(g->rbuf);
    free(g->w.buf);
    free(g);
    v->net = NULL;
}
