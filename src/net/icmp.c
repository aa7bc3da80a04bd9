/* ICMP echo: the gateway, the resolver address and the host alias answer pings
 * themselves; pings further out, when the policy allows them, are relayed through an
 * unprivileged ICMP socket per echo id and destination (a flow, flow.c) where the host
 * allows one (net.ipv4.ping_group_range), and net.log explains once when it does not.
 * Only echo requests are served. */
#include "net/internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/flow.h"

/* Reads net.ipv4.ping_group_range now: the monitor's jail later hides /proc. */
static void read_host_range(struct net_stack *s)
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

void icmp_init(struct net_stack *s)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
    s->icmp_ok = fd >= 0;
    if (fd >= 0)
        close(fd);
    read_host_range(s);
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

/* Sends the n bytes of ICMP at s->frame + NET_L4_OFF as an echo reply to the guest,
 * with id as its identifier, from src. */
static void send_reply(struct net_stack *s, uint32_t src, uint16_t id, size_t n)
{
    uint8_t *o = s->frame + NET_L4_OFF;
    o[0] = 0;
    wr16(o + 4, id);
    wr16(o + 2, 0);
    wr16(o + 2, wire_fold(wire_sum(o, n, 0)));
    net_send_ip(s, src, s->cfg.guest_ip, IP_PROTO_ICMP, n);
}

void icmp_input(struct net_stack *s, const struct pkt_ip *ip, uint64_t now)
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
    uint16_t id = rd16(p + 4);
    if (dst == s->cfg.gateway_ip || dst == s->cfg.dns_ip || dst == s->cfg.host_alias_ip) {
        memmove(s->frame + NET_L4_OFF, p, n);
        send_reply(s, dst, id, n);
        return;
    }
    struct verdict v = {0, -1, "inside the box network"};
    if ((dst >> 28) != 0xe && dst != 0xffffffffu)
        v = net_egress_check(s, dst, 0, IP_PROTO_ICMP, now);
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
    struct flow *f = flow_open(s, FLOW_ICMP, id, dst, 0, dst, 0, now);
    if (!f) {
        s->st.dropped_other++;
        return;
    }
    flow_send(s, f, p, n, now);
}

static void deliver_reply(struct net_stack *s, struct flow *f, const uint8_t *buf, size_t n)
{
    if (n < 8 || buf[0] != 0 || n > (size_t)s->cfg.mtu - 20)
        return; /* only echo replies that fit the guest's MTU */
    memcpy(s->frame + NET_L4_OFF, buf, n);
    send_reply(s, f->rip, f->gport, n);
}

void icmp_on_event(struct net_stack *s, struct flow *f, uint64_t now) { flow_drain(s, f, now, deliver_reply); }
