/* UDP, ICMP echo and DNS. UDP is relayed per flow (one connected host socket per
 * guest port and destination, closed after UDP_IDLE_MS); ICMP echo goes through an
 * unprivileged ICMP socket when the host allows one, and the gateway answers pings
 * itself. Every UDP datagram to port 53, whatever address it names, is answered by the
 * stack's resolver: policy on the name, forwarding upstream (with EDNS0, so answers
 * come whole), filtering and pinning of the answer, and over UDP the client's size
 * limit (TC when over). DNS over TCP (tcp.c terminates it) goes through the same
 * resolver. Published UDP ports map each host client to a port of the host alias. */
#include "net/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "net/dns.h"

#define UDP_IDLE_MS 60000
#define DNS_TIMEOUT_MS 5000
#define HOST_ALIAS_NAME "host.cocoon.internal"

static size_t udp_max_payload(const struct net_stack *s) { return (size_t)s->cfg.mtu - 28; }

int udp_send_to_guest(struct net_stack *s, uint32_t src, uint16_t sport, uint16_t dport, const void *data, size_t len)
{
    if (len > NET_MAX_L4 - 8) {
        s->st.dropped_other++;
        return -1;
    }
    uint8_t *p = s->frame + NET_L4_OFF;
    memmove(p + 8, data, len);
    wire_udp_header(p, src, s->cfg.guest_ip, sport, dport, len);
    return net_send_ip_mtu(s, src, s->cfg.guest_ip, IP_PROTO_UDP, 8 + len);
}

static void flow_free(struct net_stack *s, struct udp_flow *f)
{
    struct udp_flow **pp = &s->udp_list;
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
    s->nudp--;
    if (f->kind != UDP_PUBLISHED && f->fd >= 0) {
        net_unwatch(s, f->fd);
        close(f->fd);
    }
    net_bury(s, f);
}

static struct udp_flow *flow_find(struct net_stack *s, enum udp_kind kind, uint16_t gport, uint32_t rip, uint16_t rport)
{
    for (struct udp_flow *f = s->udp_list; f; f = f->next)
        if (f->kind == kind && f->gport == gport && f->rip == rip && f->rport == rport)
            return f;
    return NULL;
}

static struct udp_flow *flow_new(struct net_stack *s, enum udp_kind kind, int fd)
{
    struct udp_flow *f = net_object_new(s, sizeof(*f), NW_UDP);
    if (!f)
        return NULL;
    f->fd = fd;
    f->kind = kind;
    f->last = net_now_ms();
    f->next = s->udp_list;
    s->udp_list = f;
    s->nudp++;
    s->st.udp_flows++;
    net_deadline(s, f->last + UDP_IDLE_MS);
    return f;
}

static int connected_socket(struct net_stack *s, int type, int proto, uint32_t ip, uint16_t port)
{
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
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

static int in_box_net(const struct net_stack *s, uint32_t ip)
{
    uint32_t mask = s->cfg.prefix ? 0xffffffffu << (32 - s->cfg.prefix) : 0;
    return (ip & mask) == (s->cfg.guest_ip & mask) && ip != s->cfg.host_alias_ip;
}

/* ---- DNS ---- */

void dns_load_upstreams(struct net_config *cfg)
{
    if (cfg->nupstreams)
        return;
    FILE *f = fopen("/etc/resolv.conf", "re");
    if (!f)
        return;
    char line[512], addr[64];
    while (fgets(line, sizeof(line), f) && cfg->nupstreams < NET_MAX_UPSTREAMS) {
        struct in_addr a;
        if (sscanf(line, " nameserver %63s", addr) == 1 && inet_pton(AF_INET, addr, &a) == 1) {
            cfg->upstreams[cfg->nupstreams].ip = ntohl(a.s_addr);
            cfg->upstreams[cfg->nupstreams++].port = 53;
        }
    }
    fclose(f);
}

/* The largest DNS answer sent over UDP to a query: what the query advertised (512
 * without EDNS0), and never more than one frame of the guest's MTU: answers are not
 * fragmented (as resolvers do since DNS flag day 2020); bigger ones get TC. */
static size_t dns_udp_limit(const struct net_stack *s, const uint8_t *query, size_t n, const struct dns_question *q)
{
    size_t want = dns_query_udp_size(query, n, q), frame = udp_max_payload(s);
    return want < frame ? want : frame;
}

static void dns_reply(struct net_stack *s, uint32_t from, uint16_t gport, const uint8_t *msg, size_t len, int tcp,
                      size_t limit)
{
    if (tcp) {
        tcp_dns_answer(s, gport, from, msg, len);
        return;
    }
    if (!msg)
        return;
    if (len > limit) {
        /* Too big for this client over UDP: TC, no partial records, and it retries over TCP. */
        uint8_t small[DNS_MAX_MSG];
        long n = dns_truncate(msg, len, small, sizeof(small));
        if (n > 0 && (size_t)n <= limit)
            udp_send_to_guest(s, from, 53, gport, small, (size_t)n);
        s->st.dns_truncated++;
        return;
    }
    udp_send_to_guest(s, from, 53, gport, msg, len);
}

static void dns_query_free(struct net_stack *s, struct dns_query *q)
{
    struct dns_query **pp = &s->dns_list;
    while (*pp && *pp != q)
        pp = &(*pp)->next;
    if (*pp)
        *pp = q->next;
    s->ndns--;
    if (q->tcp && !q->answered)
        tcp_dns_answer(s, q->gport, q->dst, NULL, 0);
    if (q->fd >= 0) {
        net_unwatch(s, q->fd);
        close(q->fd);
    }
    net_bury(s, q);
}

void dns_guest_query(struct net_stack *s, uint32_t src, uint16_t sport, uint32_t dst, const uint8_t *data, size_t len,
                     int tcp)
{
    struct dns_question q;
    uint8_t out[DNS_MAX_MSG];
    s->st.dns_queries++;
    if (dns_parse_query(data, len, &q) < 0) {
        s->st.dropped_malformed++;
        if (tcp)
            tcp_dns_answer(s, sport, dst, NULL, 0);
        return;
    }
    size_t limit = dns_udp_limit(s, data, len, &q);
    if (!strcmp(q.name, HOST_ALIAS_NAME)) {
        size_t n = dns_build_local(data, &q, s->cfg.host_alias_ip, out, sizeof(out));
        dns_reply(s, dst, sport, n ? out : NULL, n, tcp, limit);
        return;
    }
    struct verdict v = policy_check_name(&s->pol, q.name);
    if (!v.allow) {
        char what[300];
        snprintf(what, sizeof(what), "dns%s %s", tcp ? "/tcp" : "", q.name);
        s->st.denied_dns++;
        net_log_deny(s, what, src, sport, dst, 53, &v);
        size_t n = dns_build_error(data, &q, s->cfg.refuse_nxdomain ? DNS_RCODE_NXDOMAIN : DNS_RCODE_REFUSED, out,
                                   sizeof(out));
        dns_reply(s, dst, sport, n ? out : NULL, n, tcp, limit);
        return;
    }
    int fd = -1;
    if (s->ndns < s->cfg.max_dns && s->cfg.nupstreams)
        fd = connected_socket(s, SOCK_DGRAM, 0, s->cfg.upstreams[0].ip, s->cfg.upstreams[0].port);
    struct dns_query *dq = fd >= 0 ? net_object_new(s, sizeof(*dq), NW_DNS) : NULL;
    int added = 0;
    size_t up = dns_upstream_query(data, len, &q, out, sizeof(out), &added);
    if (!dq || !up || send(fd, out, up, 0) < 0) {
        if (fd >= 0)
            close(fd);
        net_object_free(s, dq);
        size_t n = dns_build_error(data, &q, DNS_RCODE_SERVFAIL, out, sizeof(out));
        dns_reply(s, dst, sport, n ? out : NULL, n, tcp, limit);
        return;
    }
    dq->fd = fd;
    dq->gport = sport;
    dq->id = q.id;
    dq->dst = dst;
    dq->tcp = tcp;
    snprintf(dq->name, sizeof(dq->name), "%s", q.name);
    dq->deadline = net_now_ms() + DNS_TIMEOUT_MS;
    dq->qtype = q.qtype;
    dq->qclass = q.qclass;
    dq->udp_max = limit;
    dq->strip_opt = added;
    dq->next = s->dns_list;
    s->dns_list = dq;
    s->ndns++;
    if (net_watch(s, fd, EPOLLIN, &dq->w) < 0) {
        dns_query_free(s, dq);
        return;
    }
    net_deadline(s, dq->deadline);
}

void dns_on_event(struct net_stack *s, struct dns_query *dq)
{
    uint8_t in[DNS_MAX_MSG], out[DNS_MAX_MSG];
    ssize_t n = recv(dq->fd, in, sizeof(in), 0);
    if (n < 0)
        return;
    if (dq->strip_opt) {
        n = dns_strip_opt(in, (size_t)n); /* the OPT was ours, not the guest's */
        if (n < 0)
            return;
    }
    struct dns_question q;
    memset(&q, 0, sizeof(q));
    q.id = dq->id;
    q.qtype = dq->qtype;
    q.qclass = dq->qclass;
    snprintf(q.name, sizeof(q.name), "%s", dq->name);
    int stripped = 0;
    long len = dns_filter_response(in, (size_t)n, &q, &s->pol, net_now_ms(), out, sizeof(out), &stripped);
    if (len < 0)
        return; /* not an answer to this query: keep waiting */
    s->st.dns_stripped += (uint64_t)stripped;
    dq->answered = 1;
    dns_reply(s, dq->dst, dq->gport, out, (size_t)len, dq->tcp, dq->udp_max);
    dns_query_free(s, dq);
}

/* ---- UDP ---- */

static void published_reply(struct net_stack *s, struct udp_flow *f, const struct pkt_udp *u)
{
    f->last = net_now_ms();
    sendto(f->fd, u->data, u->len, MSG_DONTWAIT, (struct sockaddr *)&f->peer, sizeof(f->peer));
}

void udp_input(struct net_stack *s, const struct pkt_ip *ip)
{
    struct pkt_udp u;
    if (wire_parse_udp(ip, &u) != WIRE_OK) {
        s->st.dropped_malformed++;
        return;
    }
    uint32_t dst = ip->dst;
    if ((dst >> 28) == 0xe || dst == 0xffffffffu || u.dport == 0) {
        s->st.dropped_other++;
        return;
    }
    if (dst == s->cfg.host_alias_ip) {
        for (struct udp_flow *f = s->udp_list; f; f = f->next)
            if (f->kind == UDP_PUBLISHED && f->rport == u.dport && f->guest_port == u.sport) {
                published_reply(s, f, &u);
                return;
            }
    }
    if (u.dport == 53) {
        dns_guest_query(s, ip->src, u.sport, ip->dst, u.data, u.len, 0);
        return;
    }
    struct verdict v = {0, -1, "inside the box network"};
    if (!in_box_net(s, dst))
        v = policy_check_ip(&s->pol, dst, u.dport, NET_PROTO_UDP, NULL, net_now_ms());
    if (!v.allow) {
        s->st.denied_udp++;
        net_log_deny(s, "udp", ip->src, u.sport, dst, u.dport, &v);
        return;
    }
    struct udp_flow *f = flow_find(s, UDP_RELAY, u.sport, dst, u.dport);
    if (!f) {
        if (s->nudp >= s->cfg.max_udp) {
            s->st.dropped_other++;
            return;
        }
        int fd = connected_socket(s, SOCK_DGRAM, 0, dst == s->cfg.host_alias_ip ? 0x7f000001 : dst, u.dport);
        if (fd < 0) {
            s->st.dropped_other++;
            return;
        }
        f = flow_new(s, UDP_RELAY, fd);
        if (!f) {
            close(fd);
            return;
        }
        f->gport = u.sport;
        f->rip = dst;
        f->rport = u.dport;
        if (net_watch(s, fd, EPOLLIN, &f->w) < 0) {
            flow_free(s, f);
            return;
        }
    }
    f->last = net_now_ms();
    if (send(f->fd, u.data, u.len, MSG_DONTWAIT) < 0)
        s->st.dropped_other++;
}

void udp_on_event(struct net_stack *s, struct udp_flow *f)
{
    uint8_t buf[65536];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(f->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0)
            return;
        f->last = net_now_ms();
        if (f->kind == UDP_RELAY) {
            udp_send_to_guest(s, f->rip, f->rport, f->gport, buf, (size_t)n);
        } else if (f->kind == UDP_ICMP && n >= 8 && buf[0] == 0) {
            uint8_t *p = s->frame + NET_L4_OFF;
            if ((size_t)n > (size_t)s->cfg.mtu - 20)
                continue;
            memcpy(p, buf, (size_t)n);
            wr16(p + 4, f->gport);
            wr16(p + 2, 0);
            wr16(p + 2, wire_fold(wire_sum(p, (size_t)n, 0)));
            net_send_ip(s, f->rip, s->cfg.guest_ip, IP_PROTO_ICMP, (size_t)n);
        }
    }
}

void udp_on_listener(struct net_stack *s, struct listener *l)
{
    uint8_t buf[65536];
    for (int i = 0; i < 16; i++) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        ssize_t n = recvfrom(l->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&peer, &pl);
        if (n < 0)
            return;
        struct udp_flow *f = NULL;
        for (f = s->udp_list; f; f = f->next)
            if (f->kind == UDP_PUBLISHED && f->fd == l->fd && f->peer.sin_addr.s_addr == peer.sin_addr.s_addr &&
                f->peer.sin_port == peer.sin_port)
                break;
        if (!f) {
            if (s->nudp >= s->cfg.max_udp)
                continue;
            f = flow_new(s, UDP_PUBLISHED, l->fd);
            if (!f)
                continue;
            f->peer = peer;
            f->rip = s->cfg.host_alias_ip;
            f->guest_port = l->port.guest_port;
            f->rport = s->next_eport++;
            if (s->next_eport < 49152)
                s->next_eport = 49152;
        }
        f->last = net_now_ms();
        udp_send_to_guest(s, s->cfg.host_alias_ip, f->rport, f->guest_port, buf, (size_t)n);
    }
}

/* ---- ICMP ---- */

void icmp_read_host_range(struct net_stack *s)
{
    snprintf(s->ping_range, sizeof(s->ping_range), "?");
    s->ping_gid = (unsigned)getegid();
    FILE *f = fopen("/proc/sys/net/ipv4/ping_group_range", "re");
    if (!f)
        return;
    if (fgets(s->ping_range, sizeof(s->ping_range), f))
        s->ping_range[strcspn(s->ping_range, "\n")] = 0;
    for (char *p = s->ping_range; *p; p++)
        if (*p == '\t')
            *p = ' ';
    fclose(f);
}

/* Once per box, in net.log: why an allowed ping gets no reply. Unprivileged ICMP
 * sockets need the monitor's group inside net.ipv4.ping_group_range (read when the
 * stack was made: the monitor's jail then hides /proc and maps the groups). */
static void explain_no_icmp(struct net_stack *s, uint32_t dst)
{
    if (s->icmp_explained)
        return;
    s->icmp_explained = 1;
    char a[INET_ADDRSTRLEN], text[512];
    const char *range = s->ping_range;
    struct in_addr ia = {.s_addr = htonl(dst)};
    inet_ntop(AF_INET, &ia, a, sizeof(a));
    snprintf(text, sizeof(text),
             "icmp echo to %s is allowed but not relayed: this host does not allow unprivileged ICMP sockets "
             "(sysctl net.ipv4.ping_group_range=\"%s\" does not include group %u of cocoon-vmm); to enable ping "
             "from boxes: sysctl -w net.ipv4.ping_group_range=\"%u %u\" (or a range that includes it). "
             "Pings to the gateway are always answered; this note is written once",
             a, range, s->ping_gid, s->ping_gid, s->ping_gid);
    net_log_note(s, text);
}

void icmp_input(struct net_stack *s, const struct pkt_ip *ip)
{
    const uint8_t *p = ip->l4;
    size_t n = ip->l4_len;
    if (n < 8 || wire_fold(wire_sum(p, n, 0)) != 0) {
        s->st.dropped_malformed++;
        return;
    }
    if (p[0] != 8 || p[1] != 0) {
        s->st.dropped_other++; /* only echo requests are served */
        return;
    }
    if (n > (size_t)s->cfg.mtu - 20) {
        s->st.dropped_other++;
        return;
    }
    uint32_t dst = ip->dst;
    if (dst == s->cfg.gateway_ip || dst == s->cfg.dns_ip || dst == s->cfg.host_alias_ip) {
        uint8_t *o = s->frame + NET_L4_OFF;
        memmove(o, p, n);
        o[0] = 0;
        wr16(o + 2, 0);
        wr16(o + 2, wire_fold(wire_sum(o, n, 0)));
        net_send_ip(s, dst, s->cfg.guest_ip, IP_PROTO_ICMP, n);
        return;
    }
    struct verdict v = {0, -1, "inside the box network"};
    if (!in_box_net(s, dst) && (dst >> 28) != 0xe && dst != 0xffffffffu)
        v = policy_check_ip(&s->pol, dst, 0, IP_PROTO_ICMP, NULL, net_now_ms());
    if (!v.allow) {
        s->st.denied_icmp++;
        net_log_deny(s, "icmp", ip->src, 0, dst, 0, &v);
        return;
    }
    if (!s->icmp_ok) {
        s->st.dropped_other++;
        explain_no_icmp(s, dst);
        return;
    }
    uint16_t id = rd16(p + 4);
    struct udp_flow *f = flow_find(s, UDP_ICMP, id, dst, 0);
    if (!f) {
        if (s->nudp >= s->cfg.max_udp)
            return;
        int fd = connected_socket(s, SOCK_DGRAM, IPPROTO_ICMP, dst, 0);
        if (fd < 0)
            return;
        f = flow_new(s, UDP_ICMP, fd);
        if (!f) {
            close(fd);
            return;
        }
        f->gport = id;
        f->rip = dst;
        if (net_watch(s, fd, EPOLLIN, &f->w) < 0) {
            flow_free(s, f);
            return;
        }
    }
    f->last = net_now_ms();
    if (send(f->fd, p, n, MSG_DONTWAIT) < 0)
        s->st.dropped_other++;
}

/* ---- timers ---- */

void udp_tick(struct net_stack *s, uint64_t now, uint64_t *next)
{
    struct udp_flow *f = s->udp_list, *fn;
    for (; f; f = fn) {
        fn = f->next;
        uint64_t at = f->last + UDP_IDLE_MS;
        if (at <= now) {
            flow_free(s, f);
            continue;
        }
        if (!*next || at < *next)
            *next = at;
    }
    struct dns_query *q = s->dns_list, *qn;
    for (; q; q = qn) {
        qn = q->next;
        if (q->deadline <= now) {
            struct dns_question dqn;
            uint8_t msg[300];
            memset(&dqn, 0, sizeof(dqn));
            dqn.id = q->id;
            dqn.qtype = q->qtype;
            dqn.qclass = q->qclass;
            snprintf(dqn.name, sizeof(dqn.name), "%s", q->name);
            size_t len = dns_build_error(NULL, &dqn, DNS_RCODE_SERVFAIL, msg, sizeof(msg));
            q->answered = 1;
            dns_reply(s, q->dst, q->gport, len ? msg : NULL, len, q->tcp, q->udp_max);
            dns_query_free(s, q);
            continue;
        }
        if (!*next || q->deadline < *next)
            *next = q->deadline;
    }
}

void udp_free_all(struct net_stack *s)
{
    while (s->udp_list)
        flow_free(s, s->udp_list);
    while (s->dns_list)
        dns_query_free(s, s->dns_list);
}
