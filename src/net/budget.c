/* The network stack's two budgets against a guest that opens everything it can. Bytes:
 * everything the stack allocates (the stack itself, TCP connections and their rings,
 * UDP/ICMP flows, DNS queries, reassembly) is charged to cfg.mem_budget, and what
 * would pass it is refused. Descriptors: the caps on sockets are fitted under the
 * process's RLIMIT_NOFILE so that cfg.fd_reserve stay free for the rest of it (control
 * clients, logs, disks). Each limit, when hit, is noted once in net.log. */
#include "net/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

enum { NOTED_MEM = 1, NOTED_FDS = 2 };

static void note_once(struct net_stack *s, unsigned flag, const char *text)
{
    if (s->noted & flag)
        return;
    s->noted |= flag;
    net_log_note(s, text);
}

static void note_budget(struct net_stack *s)
{
    char text[320];
    snprintf(text, sizeof(text),
             "the network memory budget of %llu MiB is used up: new connections, flows and DNS queries are "
             "refused (and windows stay small) until some close; this note is written once",
             (unsigned long long)(s->cfg.mem_budget >> 20));
    note_once(s, NOTED_MEM, text);
}

int net_mem_charge(struct net_stack *s, size_t n, uint64_t keep)
{
    uint64_t limit = s->cfg.mem_budget > keep ? s->cfg.mem_budget - keep : 0;
    if (s->mem_used + n > limit && s->rings.n)
        s->mem_used -= ring_pool_drain(&s->rings); /* spare rings stay charged: they go first */
    if (s->mem_used + n > limit)
        return -1;
    s->mem_used += n;
    if (s->mem_used > s->mem_peak)
        s->mem_peak = s->mem_used;
    return 0;
}

void net_mem_release(struct net_stack *s, size_t n) { s->mem_used -= n; }

void *net_object_new(struct net_stack *s, size_t size, enum nw_kind kind)
{
    if (net_mem_charge(s, size, 0) < 0) {
        note_budget(s);
        return NULL;
    }
    struct nwatch *w = calloc(1, size);
    if (!w) {
        net_mem_release(s, size);
        return NULL;
    }
    w->kind = kind;
    w->size = size;
    return w;
}

void net_object_free(struct net_stack *s, void *obj)
{
    struct nwatch *w = obj;
    if (!w)
        return;
    net_mem_release(s, w->size);
    free(w);
}

int net_ring_charge(struct net_stack *s, size_t n, int growth)
{
    /* Growth leaves a quarter of the budget to the smallest rings of new connections. */
    if (net_mem_charge(s, n, growth ? s->cfg.mem_budget / 4 : 0) == 0)
        return 0;
    if (!growth)
        note_budget(s);
    return -1;
}

void net_note_socket_error(struct net_stack *s, int err)
{
    if (err != EMFILE && err != ENFILE)
        return;
    char text[256];
    snprintf(text, sizeof(text),
             "cocoon-vmm is out of file descriptors (%s): connections and flows are refused until some close; "
             "this note is written once",
             err == EMFILE ? "RLIMIT_NOFILE" : "the system's limit");
    note_once(s, NOTED_FDS, text);
}

unsigned long net_config_fds_wanted(const struct net_config *c)
{
    return (unsigned long)c->max_tcp + (unsigned long)c->max_udp + (unsigned long)c->max_dns +
           (unsigned long)c->nports + 2 + (unsigned long)c->fd_reserve;
}

static int scaled(int cap, long avail, long total, int floor)
{
    long v = (long)cap * avail / total;
    return v < floor ? floor : (int)v;
}

void net_fit_fds(struct net_stack *s)
{
    struct net_config *c = &s->cfg;
    struct rlimit rl;
    unsigned long want = net_config_fds_wanted(c);
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    long fixed = (long)c->nports + 2 + c->fd_reserve, total = (long)c->max_tcp + c->max_udp + c->max_dns;
    long avail = (long)rl.rlim_cur > fixed ? (long)rl.rlim_cur - fixed : 0;
    if (total <= 0)
        return;
    c->max_tcp = scaled(c->max_tcp, avail, total, 8);
    c->max_udp = scaled(c->max_udp, avail, total, 4);
    c->max_dns = scaled(c->max_dns, avail, total, 4);
    if (c->max_half_open > c->max_tcp)
        c->max_half_open = c->max_tcp;
    char text[400];
    snprintf(text, sizeof(text),
             "RLIMIT_NOFILE is %llu (the network wants %lu): keeping %d descriptors for the rest of cocoon-vmm, "
             "the box may have %d TCP connections, %d UDP/ICMP flows and %d DNS queries in flight",
             (unsigned long long)rl.rlim_cur, want, c->fd_reserve, c->max_tcp, c->max_udp, c->max_dns);
    net_log_note(s, text);
}
