/* The table of UDP and ICMP echo flows (flow.h): a list, as there are at most
 * cfg.max_udp of them, each with its own connected host socket. */
#include "net/flow.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct flow *flow_find(struct net_stack *s, enum flow_kind kind, uint16_t gport, uint32_t rip, uint16_t rport)
{
    for (struct flow *f = s->flows; f; f = f->next)
        if (f->kind == kind && f->gport == gport && f->rip == rip && f->rport == rport)
            return f;
    return NULL;
}

struct flow *flow_new(struct net_stack *s, enum flow_kind kind, int fd, uint64_t now)
{
    struct flow *f = net_object_new(s, sizeof(*f), kind == FLOW_ICMP ? NW_ICMP : NW_UDP);
    if (!f)
        return NULL;
    f->fd = fd;
    f->kind = kind;
    f->last = now;
    f->next = s->flows;
    s->flows = f;
    s->nflows++;
    s->st.udp_flows++;
    net_deadline(s, f->last + FLOW_IDLE_MS);
    return f;
}

struct flow *flow_open(struct net_stack *s, enum flow_kind kind, uint16_t gport, uint32_t rip, uint16_t rport,
                       uint32_t cip, uint16_t cport, uint64_t now)
{
    struct flow *f = flow_find(s, kind, gport, rip, rport);
    if (f)
        return f;
    if (s->nflows >= s->cfg.max_udp)
        return NULL;
    int fd = net_connected_dgram(s, kind == FLOW_ICMP ? IPPROTO_ICMP : 0, cip, cport);
    if (fd < 0)
        return NULL;
    f = flow_new(s, kind, fd, now);
    if (!f) {
        close(fd);
        return NULL;
    }
    f->gport = gport;
    f->rip = rip;
    f->rport = rport;
    if (net_watch(s, fd, EPOLLIN, &f->w) < 0) {
        flow_free(s, f);
        return NULL;
    }
    return f;
}

void flow_send(struct net_stack *s, struct flow *f, const void *data, size_t len, uint64_t now)
{
    f->last = now;
    if (send(f->fd, data, len, MSG_DONTWAIT) < 0)
        s->st.dropped_other++;
}

void flow_drain(struct net_stack *s, struct flow *f, uint64_t now, flow_deliver_fn deliver)
{
    uint8_t buf[65536];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(f->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0)
            return;
        f->last = now;
        deliver(s, f, buf, (size_t)n);
    }
}

void flow_free(struct net_stack *s, struct flow *f)
{
    struct flow **pp = &s->flows;
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
    s->nflows--;
    if (f->kind != FLOW_PUBLISHED && f->fd >= 0) {
        net_unwatch(s, f->fd);
        close(f->fd);
    }
    net_bury(s, f);
}

void flow_tick(struct net_stack *s, uint64_t now, uint64_t *next)
{
    struct flow *f = s->flows, *fn;
    for (; f; f = fn) {
        fn = f->next;
        uint64_t at = f->last + FLOW_IDLE_MS;
        if (at <= now) {
            flow_free(s, f);
            continue;
        }
        if (!*next || at < *next)
            *next = at;
    }
}

void flow_free_all(struct net_stack *s)
{
    while (s->flows)
        flow_free(s, s->flows);
}
