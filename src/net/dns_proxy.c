/* The box's DNS proxy (dns_proxy.h): policy on the names the guest asks, forwarding
 * to the upstream resolver, the answer filtered and pinned (dns.c), sized for UDP
 * clients, and DNS over TCP's framing. Answers leave through each query's callback. */
#include "net/dns_proxy.h"
#include "net/secret_scan.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/dns.h"

void dns_proxy_load_upstreams(struct net_config *cfg)
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
static size_t udp_limit(const struct net_stack *s, const uint8_t *query, size_t n, const struct dns_question *q)
{
    size_t want = dns_query_udp_size(query, n, q), frame = (size_t)s->cfg.mtu - 28;
    return want < frame ? want : frame;
}

/* Passes an answer (msg NULL: none) to the client, sized for UDP ones: too big for
 * the client's limit, it goes as TC with no records, and the client retries over TCP. */
static void reply(struct net_stack *s, const struct dns_client *to, dns_answer_fn answer, size_t limit,
                  const uint8_t *msg, size_t len, uint64_t now)
{
    if (msg && !to->over_tcp && len > limit) {
        uint8_t small[DNS_MAX_MSG];
        long n = dns_truncate(msg, len, small, sizeof(small));
        s->st.dns_truncated++;
        answer(s, to, n > 0 && (size_t)n <= limit ? small : NULL, n > 0 ? (size_t)n : 0, now);
        return;
    }
    answer(s, to, msg, len, now);
}

static void query_free(struct net_stack *s, struct dns_query *q)
{
    struct dns_query **pp = &s->dns_list;
    while (*pp && *pp != q)
        pp = &(*pp)->next;
    if (*pp)
        *pp = q->next;
    s->ndns--;
    if (q->fd >= 0) {
        net_unwatch(s, q->fd);
        close(q->fd);
    }
    net_bury(s, q);
}

/* The query's only answer (msg NULL: none), then the query is gone. */
static void query_answer(struct net_stack *s, struct dns_query *q, const uint8_t *msg, size_t len, uint64_t now)
{
    reply(s, &q->to, q->answer, q->udp_max, msg, len, now);
    query_free(s, q);
}

void dns_proxy_query(struct net_stack *s, const struct dns_client *from, const uint8_t *data, size_t len,
                     dns_answer_fn answer, uint64_t now)
{
    struct dns_question q;
    uint8_t out[DNS_MAX_MSG];
    s->st.dns_queries++;
    if (dns_parse_query(data, len, &q) < 0) {
        s->st.dropped_malformed++;
        answer(s, from, NULL, 0, now);
        return;
    }
    size_t limit = udp_limit(s, data, len, &q);
    if (!strcmp(q.name, DNS_HOST_ALIAS_NAME)) {
        size_t n = dns_build_local(data, &q, s->cfg.host_alias_ip, out, sizeof(out));
        reply(s, from, answer, limit, n ? out : NULL, n, now);
        return;
    }
    struct verdict v = policy_check_name(&s->pol, q.name);
    char why[200];
    int k = v.allow ? secret_scan_name(&s->cfg, q.name) : -1;
    if (k >= 0) {
        snprintf(why, sizeof(why), "secret %s's placeholder in a DNS name", s->cfg.secrets[k].name);
        v = (struct verdict){0, -1, why};
    }
    if (!v.allow) {
        char what[300];
        snprintf(what, sizeof(what), "dns%s %s", from->over_tcp ? "/tcp" : "", q.name);
        s->st.denied_dns++;
        if (k >= 0) /* counted, logged and acted on as --secret-violation says */
            net_secret_violation(s, what, from->port, from->server, 53, why);
        else
            net_log_deny(s, what, from->guest, from->port, from->server, 53, &v);
        size_t n = dns_build_error(data, &q, s->cfg.refuse_nxdomain ? DNS_RCODE_NXDOMAIN : DNS_RCODE_REFUSED, out,
                                   sizeof(out));
        reply(s, from, answer, limit, n ? out : NULL, n, now);
        return;
    }
    int fd = -1;
    if (s->ndns < s->cfg.max_dns && s->cfg.nupstreams)
        fd = net_connected_dgram(s, 0, s->cfg.upstreams[0].ip, s->cfg.upstreams[0].port);
    struct dns_query *dq = fd >= 0 ? net_object_new(s, sizeof(*dq), NW_DNS) : NULL;
    int added = 0;
    size_t up = dns_upstream_query(data, len, &q, out, sizeof(out), &added);
    if (!dq || !up || send(fd, out, up, 0) < 0) {
        if (fd >= 0)
            close(fd);
        net_object_free(s, dq);
        size_t n = dns_build_error(data, &q, DNS_RCODE_SERVFAIL, out, sizeof(out));
        reply(s, from, answer, limit, n ? out : NULL, n, now);
        return;
    }
    dq->fd = fd;
    dq->to = *from;
    dq->answer = answer;
    dq->id = q.id;
    snprintf(dq->name, sizeof(dq->name), "%s", q.name);
    dq->deadline = now + DNS_TIMEOUT_MS;
    dq->qtype = q.qtype;
    dq->qclass = q.qclass;
    dq->udp_max = limit;
    dq->strip_opt = added;
    dq->next = s->dns_list;
    s->dns_list = dq;
    s->ndns++;
    if (net_watch(s, fd, EPOLLIN, &dq->w) < 0) {
        query_answer(s, dq, NULL, 0, now);
        return;
    }
    net_deadline(s, dq->deadline);
}

/* The question a query asked, as the answer must repeat it. */
static void question_of(const struct dns_query *dq, struct dns_question *q)
{
    memset(q, 0, sizeof(*q));
    q->id = dq->id;
    q->qtype = dq->qtype;
    q->qclass = dq->qclass;
    snprintf(q->name, sizeof(q->name), "%s", dq->name);
}

void dns_proxy_on_event(struct net_stack *s, struct dns_query *dq, uint64_t now)
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
    question_of(dq, &q);
    int stripped = 0;
    long len = dns_filter_response(in, (size_t)n, &q, &s->pol, now, out, sizeof(out), &stripped);
    if (len < 0)
        return; /* not an answer to this query: keep waiting */
    s->st.dns_stripped += (uint64_t)stripped;
    query_answer(s, dq, out, (size_t)len, now);
}

void dns_proxy_tick(struct net_stack *s, uint64_t now, uint64_t *next)
{
    struct dns_query *q = s->dns_list, *qn;
    for (; q; q = qn) {
        qn = q->next;
        if (q->deadline <= now) {
            struct dns_question dqn;
            uint8_t msg[300];
            question_of(q, &dqn);
            size_t len = dns_build_error(NULL, &dqn, DNS_RCODE_SERVFAIL, msg, sizeof(msg));
            query_answer(s, q, len ? msg : NULL, len, now);
            continue;
        }
        if (!*next || q->deadline < *next)
            *next = q->deadline;
    }
}

void dns_proxy_free_all(struct net_stack *s)
{
    while (s->dns_list)
        query_free(s, s->dns_list);
}

/* ---- DNS over TCP (RFC 7766) ---- */

int dns_stream_input(struct net_stack *s, struct dns_stream *st, struct ring *in, const struct dns_client *from,
                     dns_answer_fn answer, uint64_t now)
{
    uint8_t msg[DNS_TCP_MSG_MAX];
    while (in->len >= 2 && st->pending < DNS_TCP_MAX_PENDING) {
        uint8_t lb[2];
        ring_copy_out(in, 0, lb, 2);
        size_t n = (size_t)lb[0] << 8 | lb[1];
        if (n > sizeof(msg) || n < 12)
            return -1; /* not DNS (or larger than any query we serve) */
        if (in->len < n + 2)
            break;
        ring_copy_out(in, 2, msg, n);
        ring_drop(in, n + 2);
        st->pending++;
        dns_proxy_query(s, from, msg, n, answer, now);
    }
    return 0;
}

void dns_stream_answer(struct net_stack *s, struct dns_stream *st, struct ring *out, const uint8_t *msg, size_t len)
{
    if (st->pending)
        st->pending--;
    if (!msg || !out || len > DNS_MAX_WIRE)
        return;
    while (out->len + len + 2 > out->cap && ring_grow(s, out) == 0)
        ;
    if (out->len + len + 2 > out->cap)
        return; /* a guest that does not read its answers loses them (bounded) */
    uint8_t lb[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    ring_append(out, lb, 2);
    ring_append(out, msg, len);
}
