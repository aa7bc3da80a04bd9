/* UDP: relayed per flow (flow.c: one connected host socket per guest port and
 * destination), published ports mapping each host client to a port of the host
 * alias, and datagrams to the guest sent as IP fragments when over its MTU. Every
 * datagram to port 53, whatever address it names, goes to the DNS proxy
 * (dns_proxy.c), whose answers come back here as datagrams. */
#include "net/internal.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "net/dns_proxy.h"
#include "net/secret_scan.h"
#include "net/flow.h"

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

/* The DNS proxy's answer to a query over UDP: a datagram from the address asked. */
static void dns_answer(struct net_stack *s, const struct dns_client *to, const uint8_t *msg, size_t len, uint64_t now)
{
    if (msg)
        udp_send_to_guest(s, to->server, 53, to->port, msg, len);
}

static void published_reply(struct flow *f, const struct pkt_udp *u, uint64_t now)
{
    f->last = now;
    sendto(f->fd, u->data, u->len, MSG_DONTWAIT, (struct sockaddr *)&f->peer, sizeof(f->peer));
}

void udp_input(struct net_stack *s, const struct pkt_ip *ip, uint64_t now)
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
        for (struct flow *f = s->flows; f; f = f->next)
            if (f->kind == FLOW_PUBLISHED && f->rport == u.dport && f->guest_port == u.sport) {
                published_reply(f, &u, now);
                return;
            }
    }
    if (u.dport == 53) {
        struct dns_client from = {.guest = ip->src, .port = u.sport, .server = dst, .over_tcp = 0};
        dns_proxy_query(s, &from, u.data, u.len, dns_answer, now);
        return;
    }
    struct verdict v = net_egress_check(s, dst, u.dport, NET_PROTO_UDP, now);
    char why[200];
    int k = v.allow && s->cfg.nsecrets ? secret_scan(&s->cfg, u.data, u.len) : -1;
    if (v.allow && s->cfg.nsecrets && u.dport == 443) {
        /* QUIC would carry requests past the interception: clients fall back to TCP */
        v = (struct verdict){0, -1, "QUIC (UDP 443) is blocked in a box with secrets"};
    } else if (k >= 0) {
        snprintf(why, sizeof(why), "secret %s's placeholder in a UDP datagram", s->cfg.secrets[k].name);
        v = (struct verdict){0, -1, why};
    }
    if (!v.allow) {
        s->st.denied_udp++;
        if (k >= 0 && u.dport != 443) /* counted, logged and acted on as --secret-violation says */
            net_secret_violation(s, "udp", u.sport, dst, u.dport, why);
        else
            net_log_deny(s, "udp", ip->src, u.sport, dst, u.dport, &v);
        return;
    }
    uint32_t cip = dst == s->cfg.host_alias_ip ? 0x7f000001 : dst;
    struct flow *f = flow_open(s, FLOW_UDP, u.sport, dst, u.dport, cip, u.dport, now);
    if (!f) {
        s->st.dropped_other++;
        return;
    }
    flow_send(s, f, u.data, u.len, now);
}

static void deliver_datagram(struct net_stack *s, struct flow *f, const uint8_t *buf, size_t n)
{
    udp_send_to_guest(s, f->rip, f->rport, f->gport, buf, n);
}

void udp_on_event(struct net_stack *s, struct flow *f, uint64_t now) { flow_drain(s, f, now, deliver_datagram); }

void udp_on_listener(struct net_stack *s, struct listener *l, uint64_t now)
{
    uint8_t buf[65536];
    for (int i = 0; i < 16; i++) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        ssize_t n = recvfrom(l->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&peer, &pl);
        if (n < 0)
            return;
        struct flow *f = NULL;
        for (f = s->flows; f; f = f->next)
            if (f->kind == FLOW_PUBLISHED && f->fd == l->fd && f->peer.sin_addr.s_addr == peer.sin_addr.s_addr &&
                f->peer.sin_port == peer.sin_port)
                break;
        if (!f) {
            if (s->nflows >= s->cfg.max_udp)
                continue;
            f = flow_new(s, FLOW_PUBLISHED, l->fd, now);
            if (!f)
                continue;
            f->peer = peer;
            f->rip = s->cfg.host_alias_ip;
            f->guest_port = l->port.guest_port;
            f->rport = net_next_eport(s);
        }
        f->last = now;
        udp_send_to_guest(s, s->cfg.host_alias_ip, f->rport, f->guest_port, buf, (size_t)n);
    }
}
