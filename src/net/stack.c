/* The stack's core: frames in from the guest (Ethernet, ARP, IPv4 checks, dispatch
 * to ICMP/UDP/TCP), frames out through the caller's callback (as IP fragments when a
 * relayed datagram exceeds the guest's MTU), the epoll set of host sockets and the
 * one timer. It is the only reader of the clock: each entry point reads it once per
 * event and passes it down. The denial log is netlog.c. */
#include "net/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "net/dns_proxy.h"
#include "net/flow.h"
#include "net/reasm.h"
#include "net/tcp.h"
#include "util/fd.h"

static uint64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int net_watch(struct net_stack *s, int fd, uint32_t ev, struct nwatch *w)
{
    return util_epoll_set(s->epfd, EPOLL_CTL_ADD, fd, ev, w);
}

int net_rewatch(struct net_stack *s, int fd, uint32_t ev, struct nwatch *w)
{
    return util_epoll_set(s->epfd, EPOLL_CTL_MOD, fd, ev, w);
}

void net_unwatch(struct net_stack *s, int fd) { epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL); }

void net_bury(struct net_stack *s, void *obj)
{
    struct nwatch *w = obj;
    w->dead = 1;
    w->gnext = s->grave;
    s->grave = w;
}

#define LISTEN_PAUSE_MS 250

void net_listener_pause(struct net_stack *s, struct listener *l, uint64_t now)
{
    if (l->paused_until)
        return;
    net_unwatch(s, l->fd);
    l->paused_until = now + LISTEN_PAUSE_MS;
    net_deadline(s, l->paused_until);
}

static void resume_listeners(struct net_stack *s, uint64_t now, uint64_t *next)
{
    for (int i = 0; i < s->nlisteners; i++) {
        struct listener *l = s->listeners[i];
        if (!l->paused_until)
            continue;
        if (l->paused_until <= now) {
            l->paused_until = 0;
            net_watch(s, l->fd, EPOLLIN, &l->w);
        } else if (!*next || l->paused_until < *next) {
            *next = l->paused_until;
        }
    }
}

static void empty_grave(struct net_stack *s)
{
    while (s->grave) {
        struct nwatch *w = s->grave;
        s->grave = w->gnext;
        net_object_free(s, w);
    }
}

uint32_t net_random(struct net_stack *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (uint32_t)(s->rng >> 16);
}

uint16_t net_next_eport(struct net_stack *s)
{
    uint16_t p = s->next_eport++;
    if (s->next_eport < 49152)
        s->next_eport = 49152;
    return p;
}

int net_inside_box(const struct net_stack *s, uint32_t ip)
{
    uint32_t mask = s->cfg.prefix ? 0xffffffffu << (32 - s->cfg.prefix) : 0;
    return (ip & mask) == (s->cfg.guest_ip & mask) && ip != s->cfg.host_alias_ip;
}

struct verdict net_egress_check(const struct net_stack *s, uint32_t dst, uint16_t port, int proto, uint64_t now)
{
    if (net_inside_box(s, dst))
        return (struct verdict){0, -1, "inside the box network"};
    return policy_check_ip(&s->pol, dst, port, proto, NULL, now);
}

int net_connected_dgram(struct net_stack *s, int proto, uint32_t ip, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    if (fd < 0) {
        net_note_socket_error(s, errno);
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(ip)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void arm(struct net_stack *s, uint64_t at)
{
    struct itimerspec its = {0};
    if (at) {
        its.it_value.tv_sec = (time_t)(at / 1000);
        its.it_value.tv_nsec = (long)(at % 1000) * 1000000;
        if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(s->timerfd, TFD_TIMER_ABSTIME, &its, NULL); /* 0: disarmed */
}

/* later_at is no later than every deadline asked for since the last tick that the
 * armed one hides, so that net_deadline_release can fall back to it. */
void net_deadline(struct net_stack *s, uint64_t at)
{
    if (s->armed_at && s->armed_at <= at) {
        if (!s->later_at || at < s->later_at)
            s->later_at = at;
        return;
    }
    if (s->armed_at && (!s->later_at || s->armed_at < s->later_at))
        s->later_at = s->armed_at;
    s->armed_at = at;
    s->armed_delack = 0;
    arm(s, at);
}

void net_deadline_release(struct net_stack *s)
{
    if (!s->armed_delack)
        return;
    s->armed_delack = 0;
    s->armed_at = s->later_at;
    s->later_at = 0;
    arm(s, s->armed_at);
}

static int send_frame(struct net_stack *s, uint8_t *f, size_t len)
{
    int rc = s->out(s->user, f, len);
    if (rc >= 0) {
        s->st.frames_out++;
        s->st.bytes_out += len;
    }
    if (rc > 0)
        s->link_blocked = 1;
    return rc;
}

static void eth_header(const struct net_stack *s, uint8_t *f)
{
    memcpy(f, s->cfg.guest_mac, 6);
    memcpy(f + 6, s->cfg.gateway_mac, 6);
    wr16(f + 12, ETHERTYPE_IPV4);
}

/* A packet over the guest's MTU (a big UDP datagram from a relayed flow) goes as IP
 * fragments of at most MTU bytes each, in order. Each fragment's headers are written
 * just in front of its payload, over the tail of the previous fragment, which the
 * output callback has already copied. */
static int send_fragments(struct net_stack *s, uint32_t src, uint32_t dst, uint8_t proto, size_t l4len)
{
    size_t mtu = s->cfg.mtu < 68 ? 68 : s->cfg.mtu; /* the IPv4 minimum (RFC 791) */
    size_t chunk = (mtu - 20) & ~(size_t)7;
    uint16_t id = s->ip_id++;
    int worst = 0;
    for (size_t off = 0; off < l4len; off += chunk) {
        size_t part = l4len - off < chunk ? l4len - off : chunk;
        uint16_t frag = (uint16_t)((off / 8) | (off + part < l4len ? 0x2000 : 0));
        uint8_t *f = s->frame + off; /* NET_L4_OFF bytes before the payload at NET_L4_OFF + off */
        eth_header(s, f);
        wire_ipv4_fragment(f + ETH_HDR, src, dst, proto, id, part, frag);
        int rc = send_frame(s, f, NET_L4_OFF + part);
        if (rc < 0)
            return rc; /* the rest is useless without this one */
        if (rc > worst)
            worst = rc;
    }
    s->st.fragments_out++;
    return worst;
}

int net_send_ip_mtu(struct net_stack *s, uint32_t src, uint32_t dst, uint8_t proto, size_t l4len)
{
    if (l4len > NET_MAX_L4)
        return -1;
    if (20 + l4len > s->cfg.mtu)
        return send_fragments(s, src, dst, proto, l4len);
    return net_send_ip(s, src, dst, proto, l4len);
}

int net_send_ip(struct net_stack *s, uint32_t src, uint32_t dst, uint8_t proto, size_t l4len)
{
    uint8_t *f = s->frame;
    eth_header(s, f);
    wire_ipv4_header(f + ETH_HDR, src, dst, proto, s->ip_id++, l4len);
    return send_frame(s, f, NET_L4_OFF + l4len);
}

static void arp_input(struct net_stack *s, const uint8_t *p, size_t n)
{
    if (n < 28 || rd16(p) != 1 || rd16(p + 2) != ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4 || rd16(p + 6) != 1)
        return;
    uint32_t spa = rd32(p + 14), tpa = rd32(p + 24);
    if (tpa != s->cfg.gateway_ip && tpa != s->cfg.dns_ip && tpa != s->cfg.host_alias_ip)
        return;
    if (spa != s->cfg.guest_ip && spa != 0)
        return;
    uint8_t *f = s->frame;
    memcpy(f, p + 8, 6);
    memcpy(f + 6, s->cfg.gateway_mac, 6);
    wr16(f + 12, ETHERTYPE_ARP);
    uint8_t *a = f + ETH_HDR;
    wr16(a, 1);
    wr16(a + 2, ETHERTYPE_IPV4);
    a[4] = 6;
    a[5] = 4;
    wr16(a + 6, 2);
    memcpy(a + 8, s->cfg.gateway_mac, 6);
    wr32(a + 14, tpa);
    memcpy(a + 18, p + 8, 6);
    wr32(a + 24, spa);
    if (s->out(s->user, f, ETH_HDR + 28) >= 0)
        s->st.frames_out++;
}

/* The reassembly table, made at the first fragment: charged to the budget like the rest. */
static struct reasm *reasm_table(struct net_stack *s)
{
    if (s->reasm || net_mem_charge(s, sizeof(*s->reasm), 0) < 0)
        return s->reasm;
    s->reasm = calloc(1, sizeof(*s->reasm));
    if (!s->reasm)
        net_mem_release(s, sizeof(*s->reasm));
    return s->reasm;
}

void net_stack_input_frame(struct net_stack *s, const uint8_t *frame, size_t len)
{
    net_input_frame_at(s, frame, len, clock_ms());
}

void net_input_frame_at(struct net_stack *s, const uint8_t *f, size_t n, uint64_t now)
{
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    s->st.frames_in++;
    s->st.bytes_in += n;
    if (s->stop_wanted) { /* a secret violation: the box is cut off while it stops */
        s->st.dropped_other++;
        return;
    }
    if (n < ETH_HDR || n > sizeof(s->frame)) {
        s->st.dropped_malformed++;
        return;
    }
    if (memcmp(f, s->cfg.gateway_mac, 6) != 0 && memcmp(f, bcast, 6) != 0) {
        s->st.dropped_other++;
        return;
    }
    uint16_t type = rd16(f + 12);
    if (type == ETHERTYPE_ARP) {
        arp_input(s, f + ETH_HDR, n - ETH_HDR);
        return;
    }
    if (type != ETHERTYPE_IPV4) {
        s->st.dropped_other++; /* IPv6 and the rest: not routed */
        return;
    }
    struct pkt_ip ip;
    int rc = wire_parse_ipv4(f + ETH_HDR, n - ETH_HDR, &ip);
    if (rc == WIRE_FRAGMENT) {
        if (rd32(f + ETH_HDR + 12) != s->cfg.guest_ip || !memcmp(f, bcast, 6)) {
            s->st.dropped_other++; /* checked before it takes a reassembly slot */
            return;
        }
        if (!reasm_table(s)) {
            s->st.dropped_fragment++;
            return;
        }
        int r = reasm_input(s->reasm, f + ETH_HDR, n - ETH_HDR, now, &ip);
        if (r == REASM_DROPPED)
            s->st.dropped_fragment++;
        if (r != REASM_DONE)
            return;
        s->st.reassembled++;
    } else if (rc != WIRE_OK) {
        s->st.dropped_malformed++;
        return;
    }
    if (ip.src != s->cfg.guest_ip || !memcmp(f, bcast, 6)) {
        s->st.dropped_other++; /* spoofed source, or broadcast IP (DHCP...) */
        return;
    }
    memcpy(s->cfg.guest_mac, f + 6, 6); /* answer whatever MAC the guest uses */
    switch (ip.proto) {
    case IP_PROTO_TCP: tcp_input(s, &ip, now); break;
    case IP_PROTO_UDP: udp_input(s, &ip, now); break;
    case IP_PROTO_ICMP: icmp_input(s, &ip, now); break;
    default: s->st.dropped_other++; break;
    }
}

static int open_listener(struct net_stack *s, const struct net_port *p, char *err, size_t errcap)
{
    int udp = p->proto == NET_PROTO_UDP;
    int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errcap, "published port: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(p->host_port), .sin_addr.s_addr = htonl(p->host_ip)};
    char a[INET_ADDRSTRLEN];
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || (!udp && listen(fd, 128) < 0)) {
        snprintf(err, errcap, "cannot publish %s:%u/%s: %s", net_ip_text(p->host_ip, a), p->host_port,
                 udp ? "udp" : "tcp", strerror(errno));
        close(fd);
        return -1;
    }
    struct listener *l = net_object_new(s, sizeof(*l), udp ? NW_LISTEN_UDP : NW_LISTEN_TCP);
    if (!l) {
        close(fd);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    l->fd = fd;
    l->port = *p;
    s->listeners[s->nlisteners++] = l;
    return net_watch(s, fd, EPOLLIN, &l->w);
}

struct net_stack *net_stack_new(const struct net_config *cfg, net_output_fn out, void *user, char *err, size_t errcap)
{
    struct net_stack *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->mem_used = s->mem_peak = sizeof(*s); /* the policy's pins and the frame scratch are most of it */
    s->out = out;
    s->user = user;
    s->next_eport = 49152;
    if (getrandom(&s->rng, sizeof(s->rng), GRND_NONBLOCK) != (ssize_t)sizeof(s->rng) || !s->rng)
        s->rng = clock_ms() * 0x9e3779b97f4a7c15ull + (uint64_t)getpid();
    s->ip_id = 1;
    dns_proxy_load_upstreams(&s->cfg);
    policy_init(&s->pol, &s->cfg);
    icmp_init(s);
    net_fit_fds(s);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    s->w_timer.kind = NW_TIMER;
    if (s->epfd < 0 || s->timerfd < 0 || net_watch(s, s->timerfd, EPOLLIN, &s->w_timer) < 0) {
        snprintf(err, errcap, "network stack: %s", strerror(errno));
        net_stack_free(s);
        return NULL;
    }
    for (int i = 0; i < cfg->nports; i++) {
        if (open_listener(s, &cfg->ports[i], err, errcap) < 0) {
            net_stack_free(s);
            return NULL;
        }
    }
    return s;
}

void net_stack_free(struct net_stack *s)
{
    if (!s)
        return;
    tcp_free_all(s);
    net_stack_tls_free(s);
    flow_free_all(s);
    dns_proxy_free_all(s);
    for (int i = 0; i < s->nlisteners; i++) {
        close(s->listeners[i]->fd);
        free(s->listeners[i]);
    }
    empty_grave(s);
    util_fd_close(&s->timerfd);
    util_fd_close(&s->epfd);
    free(s->reasm);
    free(s);
}

int net_stack_fd(const struct net_stack *s) { return s->epfd; }

/* The timer is one-shot: once it fired nothing is armed. Called otherwise
 * (net_stack_tick) it may still be: a stale expiry only makes a spurious tick. */
static void tick(struct net_stack *s, uint64_t now)
{
    uint64_t next = 0;
    s->armed_at = s->later_at = 0;
    s->armed_delack = 0;
    tcp_flush_acks(s, now);
    tcp_tick(s, now, &next);
    flow_tick(s, now, &next);
    dns_proxy_tick(s, now, &next);
    resume_listeners(s, now, &next);
    if (next)
        net_deadline(s, next);
}

void net_tick_at(struct net_stack *s, uint64_t now)
{
    tick(s, now);
    tcp_flush_acks(s, now);
    empty_grave(s);
}

void net_stack_tick(struct net_stack *s) { net_tick_at(s, clock_ms()); }

int net_stack_timeout(const struct net_stack *s)
{
    if (!s->armed_at)
        return -1;
    uint64_t now = clock_ms();
    return s->armed_at <= now ? 0 : (int)(s->armed_at - now);
}

void net_flush_at(struct net_stack *s, uint64_t now) { tcp_flush_acks(s, now); }

void net_stack_flush(struct net_stack *s) { net_flush_at(s, clock_ms()); }

/* Handles the ready events: at now when fixed, else at the clock read for each. */
static void on_ready(struct net_stack *s, int fixed, uint64_t now)
{
    struct epoll_event evs[64];
    int n = epoll_wait(s->epfd, evs, 64, 0), read_clock = !fixed;
    for (int i = 0; i < n; i++) {
        struct nwatch *w = evs[i].data.ptr;
        if (w->dead)
            continue;
        if (!fixed) {
            now = clock_ms();
            read_clock = 0;
        }
        switch (w->kind) {
        case NW_TIMER: {
            uint64_t ticks;
            if (read(s->timerfd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks))
                tick(s, now);
            break;
        }
        case NW_TCP: tcp_on_event(s, (struct tcp_conn *)w, evs[i].events, now); break;
        case NW_UDP: udp_on_event(s, (struct flow *)w, now); break;
        case NW_ICMP: icmp_on_event(s, (struct flow *)w, now); break;
        case NW_DNS: dns_proxy_on_event(s, (struct dns_query *)w, now); break;
        case NW_LISTEN_TCP: tcp_accept(s, (struct listener *)w, now); break;
        case NW_LISTEN_UDP: udp_on_listener(s, (struct listener *)w, now); break;
        }
    }
    tcp_flush_acks(s, read_clock ? clock_ms() : now);
    empty_grave(s);
}

void net_on_fd_ready_at(struct net_stack *s, uint64_t now) { on_ready(s, 1, now); }

void net_stack_on_fd_ready(struct net_stack *s) { on_ready(s, 0, 0); }

void net_stack_wake_in(struct net_stack *s, unsigned ms) { net_deadline(s, clock_ms() + ms); }

void net_stack_link_ready(struct net_stack *s)
{
    if (!s->link_blocked)
        return;
    s->link_blocked = 0;
    tcp_link_ready(s, clock_ms());
}

const struct net_stats *net_stack_stats(const struct net_stack *s) { return &s->st; }

const char *net_stack_stop_wanted(const struct net_stack *s) { return s->stop_wanted ? s->stop_why : NULL; }

const struct net_config *net_stack_config(const struct net_stack *s) { return &s->cfg; }
