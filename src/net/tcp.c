/* TCP termination (RFC 793/9293), the states of tcp.h: each guest connection is
 * accepted by the stack and re-originated from a host socket, and each published-port
 * connection is opened by the stack toward the guest. Per connection two bounded rings
 * (ring.c), one each way, that start small and grow within the box's memory budget:
 * the host socket is not read while the guest's window or our ring is full, and the
 * window we advertise is the room left in the ring toward the host. Guest data is
 * written to the host and ACKed once per batch of frames (a small request's ACK is
 * delayed so the answer can carry it). Unacknowledged data is retransmitted on
 * timeout; half-open and total connections are capped. The guest's RSTs, SYNs and
 * ACKs are accepted by RFC 5961's rules (a challenge ACK for anything inexact), and
 * nothing is ever sent from outside the unacknowledged bytes of the ring.
 * Connections to port 53 (any address) are DNS over TCP: the stack completes them
 * itself and hands their byte stream to the DNS proxy, whose answers come back
 * through dns_answer. Time comes in as `now` (ms): nothing here reads the clock. */
#include "net/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "net/secret_scan.h"
#include "net/sni.h"
#include "net/tls_proxy.h"

#define SEQ_LT(a, b) ((int32_t)((a) - (b)) < 0)
#define SEQ_LE(a, b) ((int32_t)((a) - (b)) <= 0)

/* ---- table ---- */

static unsigned hash3(uint16_t gport, uint32_t rip, uint16_t rport)
{
    uint32_t h = rip * 2654435761u ^ ((uint32_t)gport << 16 | rport) * 40503u;
    return (h ^ (h >> 15)) % TCP_HASH;
}

static struct tcp_conn *lookup(struct net_stack *s, uint16_t gport, uint32_t rip, uint16_t rport)
{
    for (struct tcp_conn *c = s->tcp_hash[hash3(gport, rip, rport)]; c; c = c->hnext)
        if (c->gport == gport && c->rip == rip && c->rport == rport)
            return c;
    return NULL;
}

static void insert(struct net_stack *s, struct tcp_conn *c)
{
    unsigned h = hash3(c->gport, c->rip, c->rport);
    c->hnext = s->tcp_hash[h];
    s->tcp_hash[h] = c;
    c->next = s->tcp_list;
    c->prev = NULL;
    if (s->tcp_list)
        s->tcp_list->prev = c;
    s->tcp_list = c;
    s->ntcp++;
}

/* A connection with its two smallest rings, charged to the memory budget: NULL when
 * it does not fit (noted once in net.log) or without memory. */
static struct tcp_conn *conn_new(struct net_stack *s)
{
    struct tcp_conn *c = net_object_new(s, sizeof(*c), NW_TCP);
    if (!c)
        return NULL;
    c->fd = -1;
    if (ring_init(s, &c->to_host) < 0 || ring_init(s, &c->to_guest) < 0) {
        ring_free(s, &c->to_host);
        net_object_free(s, c);
        return NULL;
    }
    return c;
}

static int half_open(const struct tcp_conn *c)
{
    return c->state == TS_CONNECTING || c->state == TS_SYN_RCVD || c->state == TS_SYN_SENT;
}

/* A delayed ACK no longer pending: when it was the last, the timer armed for it
 * has nothing left to do. */
static void delack_clear(struct net_stack *s, struct tcp_conn *c)
{
    if (!c->delack_at)
        return;
    c->delack_at = 0;
    if (--s->ndelack == 0)
        net_deadline_release(s);
}

static void conn_free(struct net_stack *s, struct tcp_conn *c, int abort_host)
{
    if (c->state == TS_CLOSED)
        return;
    if (half_open(c))
        s->nhalf--;
    c->state = TS_CLOSED;
    struct tcp_conn **pp = &s->tcp_hash[hash3(c->gport, c->rip, c->rport)];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = c->hnext;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->tcp_list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->in_ack_list) {
        struct tcp_conn **ap = &s->ack_list;
        while (*ap && *ap != c)
            ap = &(*ap)->ack_next;
        if (*ap)
            *ap = c->ack_next;
    }
    s->ntcp--;
    delack_clear(s, c);
    if (c->fd >= 0) {
        if (abort_host) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        if (c->registered)
            net_unwatch(s, c->fd);
        close(c->fd);
        c->fd = -1;
    }
    tls_conn_free(s, c->tls);
    c->tls = NULL;
    ring_free(s, &c->to_guest);
    ring_free(s, &c->to_host);
    net_bury(s, c);
}

/* ---- segments to the guest ---- */

static size_t rcv_limit(const struct tcp_conn *c)
{
    return c->sni_wait && c->to_host.cap > TCP_SNI_MAX ? TCP_SNI_MAX : c->to_host.cap;
}

static uint32_t rcv_space(const struct tcp_conn *c)
{
    size_t lim = rcv_limit(c);
    return c->to_host.len >= lim ? 0 : (uint32_t)(lim - c->to_host.len);
}

static int send_seg(struct net_stack *s, struct tcp_conn *c, uint32_t seq, uint8_t flags, size_t off, size_t len)
{
    uint8_t *p = s->frame + NET_L4_OFF;
    uint32_t space = rcv_space(c);
    uint16_t win;
    int syn = flags & TCPF_SYN;
    if (syn)
        win = space > 65535 ? 65535 : (uint16_t)space;
    else {
        uint32_t w = space >> c->rcv_wscale;
        win = w > 65535 ? 65535 : (uint16_t)w;
    }
    if (len > c->to_guest.len || off > c->to_guest.len - len)
        return -1; /* only bytes the host sent and the guest has not acknowledged */
    if (len)
        ring_copy_out(&c->to_guest, off, p + 20, len);
    size_t hl =
        wire_tcp_header(p, c->rip, s->cfg.guest_ip, c->rport, c->gport, seq, flags & TCPF_ACK ? c->rcv_nxt : 0, flags,
                        win, syn ? (uint16_t)(s->cfg.mtu - 40) : 0, syn && c->wscale_ok ? TCP_RCV_WSCALE : -1, len);
    if (flags & TCPF_ACK) {
        c->acked_to = c->rcv_nxt;
        c->ack_pending = 0;
        delack_clear(s, c);
        c->rcv_adv = c->rcv_nxt + (syn ? win : ((uint32_t)win << c->rcv_wscale));
    }
    return net_send_ip(s, c->rip, s->cfg.guest_ip, IP_PROTO_TCP, hl + len);
}

/* A RST answering a segment that has no connection (RFC 793 "Reset Generation"). */
static void send_rst_for(struct net_stack *s, const struct pkt_ip *ip, const struct pkt_tcp *t)
{
    uint8_t *p = s->frame + NET_L4_OFF;
    size_t hl;
    if (t->flags & TCPF_RST)
        return;
    if (t->flags & TCPF_ACK)
        hl = wire_tcp_header(p, ip->dst, ip->src, t->dport, t->sport, t->ack, 0, TCPF_RST, 0, 0, -1, 0);
    else {
        uint32_t ack = t->seq + (uint32_t)t->len + !!(t->flags & TCPF_SYN) + !!(t->flags & TCPF_FIN);
        hl = wire_tcp_header(p, ip->dst, ip->src, t->dport, t->sport, 0, ack, TCPF_RST | TCPF_ACK, 0, 0, -1, 0);
    }
    net_send_ip(s, ip->dst, ip->src, IP_PROTO_TCP, hl);
}

static void reset_conn(struct net_stack *s, struct tcp_conn *c)
{
    if (c->state != TS_CONNECTING && c->state != TS_SYN_SENT)
        send_seg(s, c, c->snd_nxt, TCPF_RST | TCPF_ACK, 0, 0);
    else if (c->state == TS_CONNECTING) {
        uint8_t *p = s->frame + NET_L4_OFF;
        size_t hl = wire_tcp_header(p, c->rip, s->cfg.guest_ip, c->rport, c->gport, 0, c->rcv_nxt, TCPF_RST | TCPF_ACK,
                                    0, 0, -1, 0);
        net_send_ip(s, c->rip, s->cfg.guest_ip, IP_PROTO_TCP, hl);
    }
    conn_free(s, c, 1);
}

static void arm_rto(struct net_stack *s, struct tcp_conn *c, uint64_t now)
{
    c->rto_at = now + c->rto_ms;
    net_deadline(s, c->rto_at);
}

static void update_events(struct net_stack *s, struct tcp_conn *c)
{
    if (c->fd < 0 || c->state == TS_CLOSED)
        return;
    uint32_t want = 0;
    if (c->connecting)
        want = EPOLLOUT;
    else if (c->tls)
        want = c->state == TS_ESTABLISHED ? tls_conn_events(c) : 0;
    else {
        if (!c->host_eof && c->to_guest.len < c->to_guest.cap && !s->link_blocked && c->state == TS_ESTABLISHED)
            want |= EPOLLIN | EPOLLRDHUP;
        if (c->to_host.len && !c->sni_wait && !c->in_ack_list)
            want |= EPOLLOUT; /* (batched data is written at the batch's end anyway) */
    }
    /* An fd with nothing wanted leaves the set: a hung-up socket would otherwise
     * report EPOLLHUP forever while we wait for the guest. */
    if (want == c->ev && (want != 0) == c->registered)
        return;
    c->ev = want;
    if (!want) {
        if (c->registered)
            net_unwatch(s, c->fd);
        c->registered = 0;
    } else if (c->registered) {
        net_rewatch(s, c->fd, want, &c->w);
    } else if (net_watch(s, c->fd, want, &c->w) == 0) {
        c->registered = 1;
    }
}

/* Sends what the guest's window allows, then the FIN once the host side ended. */
static void tcp_output(struct net_stack *s, struct tcp_conn *c, uint64_t now)
{
    if (c->state != TS_ESTABLISHED)
        return;
    while (!s->link_blocked && !c->fin_sent) {
        uint32_t inflight = c->snd_nxt - c->snd_una;
        size_t unsent = c->to_guest.len > inflight ? c->to_guest.len - inflight : 0;
        uint32_t avail = c->snd_wnd > inflight ? c->snd_wnd - inflight : 0;
        size_t n = unsent < avail ? unsent : avail;
        if (n > c->mss)
            n = c->mss;
        if (n == 0) {
            if (c->host_eof && unsent == 0) {
                send_seg(s, c, c->snd_nxt, TCPF_FIN | TCPF_ACK, 0, 0);
                c->fin_seq = c->snd_nxt;
                c->fin_ever = 1;
                c->snd_nxt++;
                c->fin_sent = 1;
            }
            break;
        }
        uint8_t fl = TCPF_ACK | (n == unsent ? TCPF_PSH : 0);
        if (n == unsent && c->host_eof)
            fl |= TCPF_FIN; /* the host's EOF rides on its last bytes: one frame less */
        send_seg(s, c, c->snd_nxt, fl, inflight, n);
        c->snd_nxt += (uint32_t)n;
        if (fl & TCPF_FIN) {
            c->fin_seq = c->snd_nxt;
            c->fin_ever = 1;
            c->snd_nxt++;
            c->fin_sent = 1;
        }
    }
    if (SEQ_LT(c->snd_max, c->snd_nxt))
        c->snd_max = c->snd_nxt;
    int waiting = c->snd_nxt != c->snd_una || (c->to_guest.len > c->snd_nxt - c->snd_una && c->snd_wnd == 0);
    if (waiting && !c->rto_at)
        arm_rto(s, c, now);
    update_events(s, c);
}

static void maybe_finish(struct net_stack *s, struct tcp_conn *c)
{
    if (c->state == TS_CLOSED)
        return;
    if (c->guest_fin && !c->to_host.len && !c->host_shut && c->fd >= 0 && !c->connecting && !c->sni_wait &&
        (!c->tls || tls_conn_up_idle(c))) {
        shutdown(c->fd, SHUT_WR);
        c->host_shut = 1;
    }
    if (c->host_eof && c->host_shut && c->fd >= 0) {
        if (c->registered)
            net_unwatch(s, c->fd); /* nothing more to do on the host side */
        close(c->fd);
        c->fd = -1;
    }
    if (c->guest_fin && c->host_shut && c->fin_acked)
        conn_free(s, c, 0);
}

/* Whether a pure window update is worth a frame (receiver SWS avoidance, RFC 9293
 * 3.8.6.2.2): when the window grew by half the buffer, or by a few segments while the
 * guest's usable window is under half. Every segment would cost the guest an
 * interrupt for nothing while it still has room to send. */
static int window_opened(const struct tcp_conn *c)
{
    int32_t lim = (int32_t)rcv_limit(c);
    int32_t grow = (int32_t)(c->rcv_nxt + rcv_space(c) - c->rcv_adv);
    int32_t usable = (int32_t)(c->rcv_adv - c->rcv_nxt);
    return grow >= lim / 2 || (grow >= (int32_t)(c->mss * 4u) && usable < lim / 2);
}

static void dns_input(struct net_stack *s, struct tcp_conn *c, uint64_t now);

/* A box with secrets: a placeholder in what a connection that is not intercepted sends
 * (plain HTTP, any TCP) stops it. Bytes already scanned stay in the ring until written,
 * so only the new ones (after scanned) are looked at. -1: c was reset (logged). */
static int scan_plain(struct net_stack *s, struct tcp_conn *c)
{
    struct iovec iov[2];
    int cnt = ring_iov_data(&c->to_host, iov);
    size_t skip = c->scanned;
    for (int i = 0; i < cnt; i++) {
        size_t off = skip < iov[i].iov_len ? skip : iov[i].iov_len;
        skip -= off;
        int k = secret_scan_stream(&s->cfg, c->scan_carry, &c->scan_len, (const uint8_t *)iov[i].iov_base + off,
                                   iov[i].iov_len - off);
        if (k >= 0) {
            char why[200];
            snprintf(why, sizeof(why), "secret %s's placeholder in a connection that is not intercepted TLS",
                     s->cfg.secrets[k].name);
            net_secret_violation(s, "tcp", c->gport, c->rip, c->rport, why);
            reset_conn(s, c);
            return -1;
        }
    }
    c->scanned = c->to_host.len;
    return 0;
}

/* An intercepted connection moves what it can (tls_proxy.c), then sends what that put
 * in the ring toward the guest and opens the window it freed. */
static void tls_service(struct net_stack *s, struct tcp_conn *c, int readable, uint64_t now)
{
    if (tls_conn_pump(s, c, readable) < 0) {
        reset_conn(s, c);
        return;
    }
    if (c->state == TS_ESTABLISHED && !c->in_ack_list && window_opened(c))
        send_seg(s, c, c->snd_nxt, TCPF_ACK, 0, 0); /* window update */
    tcp_output(s, c, now);
    maybe_finish(s, c);
    if (c->state != TS_CLOSED)
        update_events(s, c);
}

/* Writes the in-order guest bytes to the host (a DNS stream's go to the proxy); with
 * wupdate, opens the window when room appears (otherwise the caller's ACK, at the
 * batch's end, carries it). */
static void flush_to_host(struct net_stack *s, struct tcp_conn *c, int wupdate, uint64_t now)
{
    if (c->dns) {
        dns_input(s, c, now);
        return;
    }
    if (c->fd < 0 || c->connecting || c->sni_wait)
        return;
    if (c->tls) {
        tls_service(s, c, 0, now);
        return;
    }
    if (s->cfg.nsecrets && scan_plain(s, c) < 0)
        return;
    while (c->to_host.len) {
        struct iovec iov[2];
        int cnt = ring_iov_data(&c->to_host, iov);
        ssize_t n = writev(c->fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            reset_conn(s, c);
            return;
        }
        ring_drop(&c->to_host, (size_t)n);
        c->scanned = c->scanned > (size_t)n ? c->scanned - (size_t)n : 0;
    }
    if (wupdate && c->state == TS_ESTABLISHED && !c->in_ack_list && window_opened(c))
        send_seg(s, c, c->snd_nxt, TCPF_ACK, 0, 0); /* window update */
    maybe_finish(s, c);
    if (c->state != TS_CLOSED)
        update_events(s, c);
}

/* Guest data taken: the host write and the ACK wait for the end of the batch of
 * frames (net_stack_flush), so a burst of segments costs one writev and one ACK. */
static void want_ack(struct net_stack *s, struct tcp_conn *c)
{
    c->ack_pending = 1;
    if (!c->in_ack_list) {
        c->in_ack_list = 1;
        c->ack_next = s->ack_list;
        s->ack_list = c;
    }
}

void tcp_flush_acks(struct net_stack *s, uint64_t now)
{
    while (s->ack_list) {
        struct tcp_conn *c = s->ack_list;
        s->ack_list = c->ack_next;
        c->in_ack_list = 0;
        if (c->state != TS_ESTABLISHED)
            continue;
        if (c->to_host.len)
            flush_to_host(s, c, 0, now);
        if (c->state != TS_ESTABLISHED)
            continue;
        if (c->ack_pending && c->rcv_nxt - c->acked_to < 2u * c->mss && !c->to_host.len &&
            (int32_t)(c->rcv_adv - c->rcv_nxt) >= (int32_t)(8u * c->mss)) {
            /* Less than two segments, all passed on to the host, and the guest may
             * still send plenty: the answer, if one comes soon, carries the ACK (RFC
             * 9293 3.8.6.3; the timer bounds the delay). */
            if (!c->delack_at) {
                c->delack_at = now + TCP_DELACK_MS;
                s->ndelack++;
                net_deadline(s, c->delack_at);
                if (s->armed_at == c->delack_at)
                    s->armed_delack = 1;
            }
        } else if (c->ack_pending || window_opened(c)) {
            send_seg(s, c, c->snd_nxt, TCPF_ACK, 0, 0);
        }
    }
}

/* ---- opening ---- */

static void on_connected(struct net_stack *s, struct tcp_conn *c, uint32_t ev, uint64_t now);

/* Starts the host connection. A loopback connect() has usually completed by the time
 * it returns EINPROGRESS: then the SYN-ACK goes out now (on_connected) rather than a
 * trip through the event loop later. */
static int host_connect(struct net_stack *s, struct tcp_conn *c, uint64_t now)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        net_note_socket_error(s, errno);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(c->rport), .sin_addr.s_addr = htonl(c->cip)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->connecting = 1;
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    if (poll(&pf, 1, 0) == 1) {
        on_connected(s, c, (uint32_t)pf.revents, now); /* may reset c: the callers return right after */
        return 0;
    }
    c->ev = EPOLLOUT;
    if (net_watch(s, fd, EPOLLOUT, &c->w) < 0) {
        close(fd);
        c->fd = -1;
        return -1;
    }
    c->registered = 1;
    return 0;
}

static void send_synack(struct net_stack *s, struct tcp_conn *c, uint64_t now)
{
    send_seg(s, c, c->iss, TCPF_SYN | TCPF_ACK, 0, 0);
    c->snd_nxt = c->snd_max = c->iss + 1;
    c->state = TS_SYN_RCVD;
    arm_rto(s, c, now);
}

/* ev: what poll or epoll reported; plain POLLOUT/EPOLLOUT (equal values) means the
 * connection is up, anything else is looked at through SO_ERROR. */
static void on_connected(struct net_stack *s, struct tcp_conn *c, uint32_t ev, uint64_t now)
{
    int err = 0;
    socklen_t el = sizeof(err);
    if (ev != EPOLLOUT && (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)) {
        reset_conn(s, c);
        return;
    }
    c->connecting = 0;
    if (c->state == TS_CONNECTING) {
        send_synack(s, c, now);
        update_events(s, c);
        return;
    }
    flush_to_host(s, c, 1, now); /* the ClientHello held while the SNI was checked */
    if (c->state != TS_CLOSED)
        tcp_output(s, c, now);
}

/* What the guest's SYN (or SYN-ACK) t says: its initial sequence number, its MSS
 * (within our MTU), the window scale (used both ways only when both offer it) and its
 * first window, which is never scaled. */
static void take_syn(struct net_stack *s, struct tcp_conn *c, const struct pkt_tcp *t)
{
    uint16_t most = (uint16_t)(s->cfg.mtu - 40);
    c->irs = t->seq;
    c->rcv_nxt = t->seq + 1;
    c->mss = t->mss ? t->mss : 536;
    if (c->mss > most)
        c->mss = most;
    if (c->mss < 64)
        c->mss = 64;
    c->wscale_ok = t->wscale >= 0;
    c->snd_wscale = c->wscale_ok ? (uint8_t)t->wscale : 0;
    c->rcv_wscale = c->wscale_ok ? TCP_RCV_WSCALE : 0;
    c->snd_wnd = c->max_wnd = t->win;
    c->snd_wl1 = t->seq;
}

static void new_conn(struct net_stack *s, const struct pkt_ip *ip, const struct pkt_tcp *t, uint64_t now)
{
    struct verdict v = {0, -1, "inside the box network"};
    uint32_t dst = ip->dst;
    if ((dst >> 28) == 0xe || dst == 0xffffffffu) {
        s->st.dropped_other++;
        return;
    }
    if (t->dport == 53)
        v.allow = 1; /* DNS over TCP, whatever the address: the box resolver answers */
    else
        v = net_egress_check(s, dst, t->dport, NET_PROTO_TCP, now);
    if (!v.allow) {
        s->st.denied_tcp++;
        net_log_deny(s, "tcp", ip->src, t->sport, dst, t->dport, &v);
        send_rst_for(s, ip, t);
        return;
    }
    struct tcp_conn *c = NULL;
    if (s->ntcp >= s->cfg.max_tcp || s->nhalf >= s->cfg.max_half_open || !(c = conn_new(s))) {
        s->st.tcp_refused_limit++;
        send_rst_for(s, ip, t);
        return;
    }
    c->rip = dst;
    c->cip = dst == s->cfg.host_alias_ip ? 0x7f000001 : dst;
    c->gport = t->sport;
    c->rport = t->dport;
    take_syn(s, c, t);
    c->acked_to = c->rcv_nxt;
    c->iss = net_random(s);
    c->snd_una = c->snd_nxt = c->snd_max = c->snd_wl2 = c->iss;
    c->rto_ms = TCP_RTO_SYN_MS;
    c->state = TS_CONNECTING;
    insert(s, c);
    s->nhalf++;
    s->st.tcp_opened++;
    if (t->dport == 53) {
        c->dns = 1;
        send_synack(s, c, now);
        return;
    }
    if (t->dport == 443 && (policy_rule_is_domain(&s->pol, v.rule) || s->tls)) {
        c->sni_wait = 1; /* accept first, connect once the ClientHello names an allowed host */
        c->sni_rule = v.rule;
        send_synack(s, c, now);
        return;
    }
    if (host_connect(s, c, now) < 0)
        reset_conn(s, c);
}

static void check_sni(struct net_stack *s, struct tcp_conn *c, uint64_t now)
{
    uint8_t hello[TCP_SNI_MAX];
    char name[256];
    size_t n = c->to_host.len;
    ring_copy_out(&c->to_host, 0, hello, n);
    int rc = sni_parse(hello, n, name, sizeof(name));
    if (rc == 0 && n < TCP_SNI_MAX && !c->guest_fin)
        return;
    struct verdict v = {1, c->sni_rule, NULL};
    if (policy_rule_is_domain(&s->pol, c->sni_rule)) {
        v = (struct verdict){0, c->sni_rule, "TLS without a server name on a domain rule"};
        if (rc == 1) {
            v = policy_check_ip(&s->pol, c->rip, c->rport, NET_PROTO_TCP, name, now);
            if (!policy_rule_is_domain(&s->pol, v.rule) && v.allow) {
                v.allow = 0; /* the SNI must be a name this box resolved to this address */
                v.why = "TLS server name does not match the domain rule's DNS answers";
            }
        }
    }
    if (!v.allow) {
        s->st.denied_sni++;
        net_log_deny(s, "tls", s->cfg.guest_ip, c->gport, c->rip, c->rport, &v);
        reset_conn(s, c);
        return;
    }
    if (rc != 1 && s->cfg.nsecrets && s->tls) {
        v = (struct verdict){0, -1, "TLS without a server name in a box with secrets (nothing to intercept it as)"};
        s->st.denied_sni++;
        net_log_deny(s, "tls", s->cfg.guest_ip, c->gport, c->rip, c->rport, &v);
        reset_conn(s, c);
        return;
    }
    c->sni_wait = 0;
    if (rc == 1 && tls_wants(s, name) && !(c->tls = tls_conn_new(s, c, name, now))) {
        reset_conn(s, c);
        return;
    }
    if (host_connect(s, c, now) < 0)
        reset_conn(s, c);
}

/* ---- segments from the guest ---- */

/* RFC 5961 3.2, 4.2, 5.2: a RST, a SYN or an ACK that is not exactly what the
 * connection expects gets this ACK instead of being acted on. A guest that is really
 * out of sync answers it with a RST at the right sequence number. */
static void challenge_ack(struct net_stack *s, struct tcp_conn *c) { send_seg(s, c, c->snd_nxt, TCPF_ACK, 0, 0); }

/* The ACK field of a segment (RFC 9293 3.10.7.4 with RFC 5961 5.2). Acceptable is
 * [snd_una - max_wnd, snd_max]: below snd_una it is a duplicate and moves neither
 * snd_una nor the window (a rewound snd_una would make tcp_output send from before
 * the ring's first byte, i.e. memory of earlier connections); outside the range the
 * segment is dropped after a challenge ACK. Returns 0 when the segment is dropped. */
static int on_ack(struct net_stack *s, struct tcp_conn *c, const struct pkt_tcp *t, uint64_t now)
{
    if (SEQ_LT(c->snd_max, t->ack) || SEQ_LT(t->ack, c->snd_una - c->max_wnd)) {
        challenge_ack(s, c);
        return 0;
    }
    if (SEQ_LT(t->ack, c->snd_una))
        return 1;
    uint32_t acked = t->ack - c->snd_una;
    if (acked) {
        size_t data = acked < c->to_guest.len ? acked : c->to_guest.len;
        ring_drop(&c->to_guest, data);
        c->snd_una = t->ack;
        if (SEQ_LT(c->snd_nxt, c->snd_una))
            c->snd_nxt = c->snd_una; /* acks of segments sent before a go-back */
        if (c->fin_ever && SEQ_LT(c->fin_seq, c->snd_una)) {
            c->fin_acked = 1;
            c->fin_sent = 1;
        }
        c->retries = 0;
        c->rto_ms = TCP_RTO_MIN_MS;
        c->rto_at = 0;
        if (c->snd_una != c->snd_nxt)
            arm_rto(s, c, now);
    }
    /* The window comes from the newest segment only: a reordered older one would
     * shrink or reopen it wrongly. */
    if (SEQ_LT(c->snd_wl1, t->seq) || (c->snd_wl1 == t->seq && SEQ_LE(c->snd_wl2, t->ack))) {
        c->snd_wnd = (uint32_t)t->win << c->snd_wscale;
        c->snd_wl1 = t->seq;
        c->snd_wl2 = t->ack;
        if (c->snd_wnd > c->max_wnd)
            c->max_wnd = c->snd_wnd;
    }
    return 1;
}

/* RFC 5961 3.2: a RST resets the connection only when its sequence number is exactly
 * rcv_nxt; elsewhere in the window it gets a challenge ACK; outside it is ignored. */
static void on_rst(struct net_stack *s, struct tcp_conn *c, const struct pkt_tcp *t)
{
    if (c->state == TS_SYN_SENT) {
        if ((t->flags & TCPF_ACK) && t->ack == c->iss + 1)
            conn_free(s, c, 1);
        return;
    }
    if (t->seq == c->rcv_nxt) {
        conn_free(s, c, 1);
        return;
    }
    if (c->state != TS_CONNECTING && SEQ_LT(c->rcv_nxt, t->seq) && SEQ_LT(t->seq, c->rcv_adv))
        challenge_ack(s, c);
}

static void on_data(struct net_stack *s, struct tcp_conn *c, const struct pkt_tcp *t, uint64_t now)
{
    const uint8_t *d = t->data;
    size_t len = t->len;
    int fin = (t->flags & TCPF_FIN) != 0;
    uint32_t seq = t->seq;
    if (!len && !fin)
        return;
    if (SEQ_LT(seq, c->rcv_nxt)) {
        uint32_t skip = c->rcv_nxt - seq;
        if (skip > len || (skip == len && !fin) || (skip == len && c->guest_fin)) {
            send_seg(s, c, c->snd_nxt, TCPF_ACK, 0, 0); /* an old retransmission */
            return;
        }
        d += skip;
        len -= skip;
        seq = c->rcv_nxt;
    }
    if (seq != c->rcv_nxt || c->guest_fin) {
        send_seg(s, c, c->snd_nxt, TCPF_ACK, 0, 0); /* out of order: the ACK says what we miss */
        return;
    }
    uint32_t room = rcv_space(c);
    size_t take = len < room ? len : room;
    if (take) {
        ring_append(&c->to_host, d, take);
        c->rcv_nxt += (uint32_t)take;
        if (!c->dns && !c->sni_wait && c->to_host.len >= c->to_host.cap / 2)
            ring_grow(s, &c->to_host); /* a fast sender: a wider window for its next segments */
    }
    if (fin && take == len) {
        c->guest_fin = 1;
        c->rcv_nxt++;
    }
    if (take < len || fin)
        send_seg(s, c, c->snd_nxt, TCPF_ACK, 0, 0); /* now: the FIN may free c below */
    else
        want_ack(s, c);
    if (c->sni_wait) {
        check_sni(s, c, now);
        return;
    }
    /* Held for the batch's one writev unless the ring is half full (the window we
     * advertise shrinks with it) or it is DNS, answered from the ring. */
    if (c->dns || c->to_host.len >= rcv_limit(c) / 2)
        flush_to_host(s, c, 0, now);
}

void tcp_input(struct net_stack *s, const struct pkt_ip *ip, uint64_t now)
{
    struct pkt_tcp t;
    if (wire_parse_tcp(ip, &t) != WIRE_OK) {
        s->st.dropped_malformed++;
        return;
    }
    struct tcp_conn *c = lookup(s, t.sport, ip->dst, t.dport);
    if (!c) {
        if ((t.flags & (TCPF_SYN | TCPF_ACK | TCPF_RST | TCPF_FIN)) == TCPF_SYN)
            new_conn(s, ip, &t, now);
        else
            send_rst_for(s, ip, &t);
        return;
    }
    if (t.flags & TCPF_RST) {
        on_rst(s, c, &t);
        return;
    }
    switch (c->state) {
    case TS_CONNECTING: return; /* a retransmitted SYN while the host connects */
    case TS_SYN_SENT:
        if ((t.flags & (TCPF_SYN | TCPF_ACK)) != (TCPF_SYN | TCPF_ACK) || t.ack != c->iss + 1) {
            if (t.flags & TCPF_ACK)
                send_rst_for(s, ip, &t);
            return;
        }
        take_syn(s, c, &t);
        c->snd_una = t.ack;
        c->snd_wl2 = t.ack;
        c->state = TS_ESTABLISHED;
        s->nhalf--;
        c->rto_at = 0;
        c->retries = 0;
        c->rto_ms = TCP_RTO_MIN_MS;
        send_seg(s, c, c->snd_nxt, TCPF_ACK, 0, 0);
        tcp_output(s, c, now);
        return;
    case TS_SYN_RCVD:
        if (t.flags & TCPF_SYN) {
            if (t.seq == c->irs)
                send_seg(s, c, c->iss, TCPF_SYN | TCPF_ACK, 0, 0);
            return;
        }
        if (!(t.flags & TCPF_ACK) || t.ack != c->iss + 1) {
            send_rst_for(s, ip, &t);
            return;
        }
        c->state = TS_ESTABLISHED;
        s->nhalf--;
        c->snd_una = t.ack;
        c->rto_at = 0;
        c->retries = 0;
        c->rto_ms = TCP_RTO_MIN_MS;
        break;
    case TS_ESTABLISHED:
        if (t.flags & TCPF_SYN) {
            challenge_ack(s, c); /* RFC 5961 4.2: whatever its sequence number */
            return;
        }
        break;
    case TS_CLOSED: return;
    }
    if (t.flags & TCPF_SYN)
        return;
    if (!(t.flags & TCPF_ACK) || !on_ack(s, c, &t, now))
        return; /* RFC 9293 3.10.7.4: a segment without ACK is dropped */
    on_data(s, c, &t, now);
    if (c->state == TS_CLOSED)
        return;
    if (c->tls && c->fd >= 0 && !c->connecting) {
        tls_service(s, c, 0, now); /* the ACK may have made room toward the guest */
        return;
    }
    tcp_output(s, c, now);
    maybe_finish(s, c);
}

/* ---- host side ---- */

/* Reads what the ring has room for, growing the ring while the guest's window is
 * wider (the ring, not the guest, is then what limits the connection). With
 * EPOLLRDHUP (the peer's FIN is queued behind the data) a short read is followed by
 * one more for the EOF, so that the FIN can ride on the last data segment. */
static void read_host(struct net_stack *s, struct tcp_conn *c, uint32_t ev)
{
    int eof_read = (ev & EPOLLRDHUP) != 0;
    for (int i = 0; i < 8; i++) { /* two reads, and one more per doubling of the ring */
        if (c->host_eof || c->state != TS_ESTABLISHED)
            return;
        if (c->to_guest.len >= c->to_guest.cap && (c->snd_wnd < c->to_guest.cap || ring_grow(s, &c->to_guest) < 0))
            return;
        struct iovec iov[2];
        int cnt = ring_iov_space(&c->to_guest, c->to_guest.cap, iov);
        size_t want = iov[0].iov_len + (cnt > 1 ? iov[1].iov_len : 0);
        ssize_t n = readv(c->fd, iov, cnt);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            reset_conn(s, c);
            return;
        }
        if (n == 0)
            c->host_eof = 1;
        ring_fill(&c->to_guest, (size_t)n);
        if ((size_t)n == want)
            continue; /* the ring is full: grown above, or done */
        if (!eof_read)
            return;
        eof_read = 0;
    }
}

void tcp_on_event(struct net_stack *s, struct tcp_conn *c, uint32_t ev, uint64_t now)
{
    if (c->fd < 0)
        return;
    if (c->connecting) {
        on_connected(s, c, ev, now);
        return;
    }
    if (c->tls) {
        int err = 0;
        socklen_t el = sizeof(err);
        if ((ev & EPOLLERR) && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err) {
            reset_conn(s, c);
            return;
        }
        tls_service(s, c, (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0, now);
        return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        read_host(s, c, ev);
        if (c->state == TS_CLOSED)
            return;
    }
    if (c->fd >= 0 && (ev & EPOLLERR)) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            reset_conn(s, c);
            return;
        }
    }
    if (ev & EPOLLOUT)
        flush_to_host(s, c, 1, now);
    if (c->state == TS_CLOSED)
        return;
    tcp_output(s, c, now);
    maybe_finish(s, c);
}

void tcp_accept(struct net_stack *s, struct listener *l, uint64_t now)
{
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            net_note_socket_error(s, errno);
            net_listener_pause(s, l, now); /* level-triggered: it would wake us for nothing until then */
        }
        return;
    }
    if (s->ntcp >= s->cfg.max_tcp || s->nhalf >= s->cfg.max_half_open) {
        s->st.tcp_refused_limit++;
        close(fd);
        return;
    }
    uint16_t port = 0;
    for (int tries = 0; tries < 16384; tries++) {
        uint16_t p = net_next_eport(s);
        if (!lookup(s, l->port.guest_port, s->cfg.host_alias_ip, p)) {
            port = p;
            break;
        }
    }
    struct tcp_conn *c = port ? conn_new(s) : NULL;
    if (!c) {
        s->st.tcp_refused_limit++;
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->inbound = 1;
    c->rip = s->cfg.host_alias_ip;
    c->rport = port;
    c->gport = l->port.guest_port;
    c->wscale_ok = 1;
    c->rcv_wscale = TCP_RCV_WSCALE;
    c->iss = net_random(s);
    c->snd_una = c->iss;
    c->snd_nxt = c->snd_max = c->iss + 1;
    c->mss = (uint16_t)(s->cfg.mtu - 40);
    c->rto_ms = TCP_RTO_SYN_MS;
    c->state = TS_SYN_SENT;
    insert(s, c);
    s->nhalf++;
    s->st.tcp_opened++;
    send_seg(s, c, c->iss, TCPF_SYN, 0, 0);
    arm_rto(s, c, now);
}

/* ---- timers ---- */

void tcp_tick(struct net_stack *s, uint64_t now, uint64_t *next)
{
    struct tcp_conn *c = s->tcp_list, *nx;
    for (; c; c = nx) {
        nx = c->next;
        if (c->delack_at) {
            if (c->delack_at <= now) {
                if (c->ack_pending && c->state == TS_ESTABLISHED)
                    send_seg(s, c, c->snd_nxt, TCPF_ACK, 0, 0);
                delack_clear(s, c);
            } else if (!*next || c->delack_at < *next) {
                *next = c->delack_at;
            }
        }
        if (!c->rto_at)
            continue;
        if (c->rto_at > now) {
            if (!*next || c->rto_at < *next)
                *next = c->rto_at;
            continue;
        }
        c->rto_at = 0;
        if (half_open(c) && c->state != TS_CONNECTING) {
            if (++c->retries > TCP_MAX_SYN_RETRIES) {
                conn_free(s, c, 1);
                continue;
            }
            if (c->state == TS_SYN_SENT)
                send_seg(s, c, c->iss, TCPF_SYN, 0, 0);
            else
                send_seg(s, c, c->iss, TCPF_SYN | TCPF_ACK, 0, 0);
        } else if (c->state == TS_ESTABLISHED && c->snd_nxt != c->snd_una) {
            if (++c->retries > TCP_MAX_RETRIES) {
                reset_conn(s, c);
                continue;
            }
            s->st.tcp_retransmits++;
            c->snd_nxt = c->snd_una; /* go back N */
            c->fin_sent = 0;
            if (c->snd_wnd == 0)
                c->snd_wnd = 1; /* probe a closed window with one byte */
            tcp_output(s, c, now);
        } else if (c->state == TS_ESTABLISHED && c->to_guest.len) {
            send_seg(s, c, c->snd_una - 1, TCPF_ACK, 0, 0); /* zero-window probe */
        } else {
            continue;
        }
        c->rto_ms = c->rto_ms * 2 > TCP_RTO_MAX_MS ? TCP_RTO_MAX_MS : c->rto_ms * 2;
        c->rto_at = now + c->rto_ms;
        if (!*next || c->rto_at < *next)
            *next = c->rto_at;
    }
}

void tcp_link_ready(struct net_stack *s, uint64_t now)
{
    struct tcp_conn *c = s->tcp_list, *nx;
    for (; c && !s->link_blocked; c = nx) {
        nx = c->next;
        tcp_output(s, c, now);
    }
    for (c = s->tcp_list; c; c = c->next)
        update_events(s, c);
}

/* ---- DNS over TCP: the stream goes to the DNS proxy (dns_proxy.c) ---- */

/* The guest closed its side and every answer is queued: our FIN follows them. */
static void dns_maybe_close(struct tcp_conn *c)
{
    if (c->guest_fin && !c->dns_stream.pending && !c->host_eof) {
        c->to_host.len = 0;
        c->to_host.head = 0;
        c->host_eof = 1;
        c->host_shut = 1;
    }
}

static void dns_answer(struct net_stack *s, const struct dns_client *to, const uint8_t *msg, size_t len, uint64_t now);

/* Hands the whole queries in the ring toward the host to the proxy. While it runs
 * (dns_busy), answers only queue: the connection cannot go away under it. */
static void dns_input(struct net_stack *s, struct tcp_conn *c, uint64_t now)
{
    if (c->dns_busy || c->state != TS_ESTABLISHED)
        return;
    struct dns_client from = {.guest = s->cfg.guest_ip, .port = c->gport, .server = c->rip, .over_tcp = 1};
    c->dns_busy = 1;
    int rc = dns_stream_input(s, &c->dns_stream, &c->to_host, &from, dns_answer, now);
    c->dns_busy = 0;
    if (rc < 0) {
        reset_conn(s, c); /* not DNS (or larger than any query we serve) */
        return;
    }
    dns_maybe_close(c);
    uint32_t edge = c->rcv_nxt + rcv_space(c);
    if ((int32_t)(edge - c->rcv_adv) >= (int32_t)(c->mss * 4u))
        send_seg(s, c, c->snd_nxt, TCPF_ACK, 0, 0); /* window update */
    tcp_output(s, c, now);
    maybe_finish(s, c);
}

/* The proxy's answer (msg NULL: none) to a query of the DNS connection (to->port,
 * to->server, 53); ignored when that connection is gone. */
static void dns_answer(struct net_stack *s, const struct dns_client *to, const uint8_t *msg, size_t len, uint64_t now)
{
    struct tcp_conn *c = lookup(s, to->port, to->server, 53);
    if (!c || !c->dns || c->state == TS_CLOSED)
        return;
    dns_stream_answer(s, &c->dns_stream, c->host_eof ? NULL : &c->to_guest, msg, len);
    if (c->state != TS_ESTABLISHED || c->dns_busy)
        return;
    if (c->to_host.len >= 2) {
        dns_input(s, c, now); /* queries held back by the pending cap */
        return;
    }
    dns_maybe_close(c);
    tcp_output(s, c, now);
    maybe_finish(s, c);
}

void tcp_free_all(struct net_stack *s)
{
    while (s->tcp_list)
        conn_free(s, s->tcp_list, 1);
    net_mem_release(s, ring_pool_drain(&s->rings));
}
