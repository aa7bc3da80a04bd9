/* Egress policy: rule parsing, first-match evaluation, the public-only default and
 * DNS pinning. A domain rule never matches an address by itself: it matches only
 * addresses that this box's DNS lookups of a matching name returned. */
#include "net/policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int in_net(uint32_t ip, uint32_t net, int bits)
{
    uint32_t mask = bits ? 0xffffffffu << (32 - bits) : 0;
    return (ip & mask) == (net & mask);
}

int net_addr_is_public(uint32_t ip)
{
    static const struct {
        uint32_t net;
        int bits;
    } blocked[] = {
        {0x00000000, 8},  /* 0/8 "this network" */
        {0x0a000000, 8},  /* 10/8 */
        {0x64400000, 10}, /* 100.64/10 CGNAT */
        {0x7f000000, 8},  /* loopback */
        {0xa9fe0000, 16}, /* 169.254/16 link-local, metadata */
        {0xac100000, 12}, /* 172.16/12 */
        {0xc0000000, 24}, /* 192.0.0/24 IETF protocol assignments */
        {0xc0000200, 24}, /* TEST-NET-1 */
        {0xc0a80000, 16}, /* 192.168/16 */
        {0xc6120000, 15}, /* 198.18/15 benchmarking */
        {0xc6336400, 24}, /* TEST-NET-2 */
        {0xcb007100, 24}, /* TEST-NET-3 */
        {0xe0000000, 4},  /* multicast */
        {0xf0000000, 4},  /* reserved, broadcast */
    };
    for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++)
        if (in_net(ip, blocked[i].net, blocked[i].bits))
            return 0;
    return 1;
}

static int parse_u16(const char *s, size_t n, uint16_t *out)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int net_domain_valid(const char *d)
{
    size_t n = strlen(d), label = 0;
    if (!strcmp(d, "*"))
        return 1;
    if (!strncmp(d, "*.", 2))
        d += 2, n -= 2;
    if (n == 0 || n > 253)
        return 0;
    for (; *d; d++) {
        if (*d == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)*d) && *d != '-' && *d != '_')
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0;
}

int net_rule_parse(const char *text, int allow, struct net_rule *r, char *err, size_t errcap)
{
    char buf[NET_RULE_TEXT];
    memset(r, 0, sizeof(*r));
    r->allow = allow;
    if (strlen(text) >= sizeof(buf) || !*text) {
        snprintf(err, errcap, "rule \"%s\" is empty or too long", text);
        return -1;
    }
    snprintf(r->text, sizeof(r->text), "%s %s", allow ? "allow" : "deny", text);
    snprintf(buf, sizeof(buf), "%s", text);
    for (char *c = buf; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    size_t n = strlen(buf);
    if (n > 4 && (!strcmp(buf + n - 4, "/tcp") || !strcmp(buf + n - 4, "/udp"))) {
        r->proto = buf[n - 3] == 't' ? NET_PROTO_TCP : NET_PROTO_UDP;
        buf[n - 4] = 0;
    }
    char *colon = strrchr(buf, ':');
    if (colon) {
        char *dash = strchr(colon + 1, '-');
        size_t lo_len = dash ? (size_t)(dash - colon - 1) : strlen(colon + 1);
        if (parse_u16(colon + 1, lo_len, &r->port_lo) < 0 ||
            (dash && parse_u16(dash + 1, strlen(dash + 1), &r->port_hi) < 0) || r->port_lo == 0) {
            snprintf(err, errcap, "rule \"%s\": bad port (expected :PORT or :LOW-HIGH)", text);
            return -1;
        }
        if (!dash)
            r->port_hi = r->port_lo;
        if (r->port_hi < r->port_lo) {
            snprintf(err, errcap, "rule \"%s\": port range is reversed", text);
            return -1;
        }
        *colon = 0;
    }
    if (!strcmp(buf, "host") || !strcmp(buf, "host.cocoon.internal")) {
        r->kind = NET_RULE_HOST;
        return 0;
    }
    char *slash = strchr(buf, '/');
    int bits = 32;
    if (slash) {
        uint16_t b;
        if (parse_u16(slash + 1, strlen(slash + 1), &b) < 0 || b > 32) {
            snprintf(err, errcap, "rule \"%s\": bad prefix length", text);
            return -1;
        }
        bits = b;
        *slash = 0;
    }
    struct in_addr a;
    if (inet_pton(AF_INET, buf, &a) == 1) {
        r->kind = NET_RULE_CIDR;
        r->mask = bits ? 0xffffffffu << (32 - bits) : 0;
        r->addr = ntohl(a.s_addr) & r->mask;
        return 0;
    }
    if (slash || !net_domain_valid(buf)) {
        snprintf(err, errcap,
                 "rule \"%s\": expected an IPv4 address or CIDR, a domain (api.example.com, *.example.org), "
                 "or host, optionally followed by :PORT and /tcp or /udp",
                 text);
        return -1;
    }
    if (buf[strlen(buf) - 1] == '.')
        buf[strlen(buf) - 1] = 0;
    r->kind = NET_RULE_DOMAIN;
    if (strlen(buf) >= sizeof(r->domain)) {
        snprintf(err, errcap, "rule \"%s\": domain too long", text);
        return -1;
    }
    memcpy(r->domain, buf, strlen(buf) + 1);
    return 0;
}

static int tls_host_add(char list[][254], int *n, const char *host, const char *what, char *err, size_t errcap)
{
    if (!net_domain_valid(host) || !strcmp(host, "*") || strlen(host) >= 254) {
        snprintf(err, errcap, "%s host \"%s\" must be a host name or *.DOMAIN", what, host);
        return -1;
    }
    if (*n >= NET_MAX_TLS_HOSTS) {
        snprintf(err, errcap, "too many %s hosts (at most %d)", what, NET_MAX_TLS_HOSTS);
        return -1;
    }
    char *d = list[(*n)++];
    snprintf(d, 254, "%s", host);
    for (; *d; d++)
        *d = (char)tolower((unsigned char)*d);
    return 0;
}

int net_tls_host_add(struct net_config *c, const char *host, char *err, size_t errcap)
{
    return tls_host_add(c->tls_intercept, &c->ntls_intercept, host, "TLS interception", err, errcap);
}

int net_tls_bypass_add(struct net_config *c, const char *host, char *err, size_t errcap)
{
    return tls_host_add(c->tls_bypass, &c->ntls_bypass, host, "TLS bypass", err, errcap);
}

int net_port_parse(const char *text, struct net_port *p, char *err, size_t errcap)
{
    char buf[NET_PORT_TEXT];
    memset(p, 0, sizeof(*p));
    p->proto = NET_PROTO_TCP;
    p->host_ip = 0x7f000001;
    if (strlen(text) >= sizeof(buf)) {
        snprintf(err, errcap, "published port \"%s\" is too long", text);
        return -1;
    }
    snprintf(buf, sizeof(buf), "%s", text);
    memcpy(p->text, buf, sizeof(p->text));
    size_t n = strlen(buf);
    if (n > 4 && (!strcmp(buf + n - 4, "/tcp") || !strcmp(buf + n - 4, "/udp"))) {
        p->proto = buf[n - 3] == 't' ? NET_PROTO_TCP : NET_PROTO_UDP;
        buf[n - 4] = 0;
    }
    char *parts[3];
    int np = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ":", &save); t && np < 3; t = strtok_r(NULL, ":", &save))
        parts[np++] = t;
    if (np < 2 || strtok_r(NULL, ":", &save)) {
        snprintf(err, errcap, "published port \"%s\": expected [HOST_IP:]HOST_PORT:GUEST_PORT[/udp]", text);
        return -1;
    }
    if (np == 3) {
        struct in_addr a;
        if (inet_pton(AF_INET, parts[0], &a) != 1) {
            snprintf(err, errcap, "published port \"%s\": \"%s\" is not an IPv4 address", text, parts[0]);
            return -1;
        }
        p->host_ip = ntohl(a.s_addr);
    }
    if (parse_u16(parts[np - 2], strlen(parts[np - 2]), &p->host_port) < 0 ||
        parse_u16(parts[np - 1], strlen(parts[np - 1]), &p->guest_port) < 0 || !p->host_port || !p->guest_port) {
        snprintf(err, errcap, "published port \"%s\": ports must be 1-65535", text);
        return -1;
    }
    return 0;
}

void net_config_defaults(struct net_config *c)
{
    static const uint8_t gmac[6] = {0x52, 0x54, 0x00, 0xc0, 0xc0, 0x0f};
    static const uint8_t wmac[6] = {0x52, 0x54, 0x00, 0xc0, 0xc0, 0x02};
    memset(c, 0, sizeof(*c));
    c->mode = NET_MODE_PUBLIC;
    c->guest_ip = 0x0a00020f;
    c->gateway_ip = 0x0a000202;
    c->host_alias_ip = 0x0a000202;
    c->dns_ip = 0x0a000203;
    c->prefix = 24;
    memcpy(c->guest_mac, gmac, 6);
    memcpy(c->gateway_mac, wmac, 6);
    c->mtu = 1500;
    c->max_tcp = 1024;
    c->max_half_open = 128;
    c->max_udp = 512;
    c->max_dns = 256;
    c->mem_budget = NET_MEM_BUDGET_DEFAULT;
    c->fd_reserve = NET_FD_RESERVE_DEFAULT;
    c->refuse_nxdomain = 0;
    c->log_fd = -1;
    c->log_dirfd = -1;
}

static void load_host_addrs(struct policy *p)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) < 0)
        return;
    for (struct ifaddrs *i = ifa; i && p->nhost_addrs < POLICY_HOST_ADDRS; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
            p->host_addrs[p->nhost_addrs++] = ntohl(((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr.s_addr);
    freeifaddrs(ifa);
}

void policy_init(struct policy *p, const struct net_config *cfg)
{
    memset(p, 0, sizeof(*p));
    p->mode = cfg->mode;
    p->rules = cfg->rules;
    p->nrules = cfg->nrules;
    p->host_alias_ip = cfg->host_alias_ip;
    load_host_addrs(p);
}

int policy_domain_match(const char *pattern, const char *name)
{
    if (!strcmp(pattern, "*"))
        return 1;
    if (!strncmp(pattern, "*.", 2)) {
        size_t pl = strlen(pattern + 1), nl = strlen(name); /* ".example.org" */
        return nl > pl && !strcasecmp(name + nl - pl, pattern + 1);
    }
    return !strcasecmp(pattern, name);
}

static int port_match(const struct net_rule *r, uint16_t port, int proto)
{
    if (r->proto && r->proto != proto)
        return 0;
    return r->port_lo == 0 || (port >= r->port_lo && port <= r->port_hi);
}

static int pinned(const struct policy *p, const struct net_rule *r, uint32_t ip, const char *name, uint64_t now)
{
    for (int i = 0; i < p->npins; i++) {
        const struct pin *pn = &p->pins[i];
        if (pn->ip != ip || pn->expires < now || !policy_domain_match(r->domain, pn->name))
            continue;
        if (!name || !strcasecmp(name, pn->name))
            return 1;
    }
    return 0;
}

static int host_own(const struct policy *p, uint32_t ip)
{
    for (int i = 0; i < p->nhost_addrs; i++)
        if (p->host_addrs[i] == ip)
            return 1;
    return 0;
}

struct verdict policy_check_ip(const struct policy *p, uint32_t ip, uint16_t port, int proto, const char *name,
                               uint64_t now)
{
    struct verdict v = {0, -1, "no network"};
    if (p->mode == NET_MODE_NONE)
        return v;
    for (int i = 0; i < p->nrules; i++) {
        const struct net_rule *r = &p->rules[i];
        if (!port_match(r, port, proto))
            continue;
        int hit = 0;
        switch (r->kind) {
        case NET_RULE_CIDR: hit = (ip & r->mask) == r->addr && ip != p->host_alias_ip; break;
        case NET_RULE_HOST: hit = ip == p->host_alias_ip; break;
        case NET_RULE_DOMAIN: hit = pinned(p, r, ip, name, now); break;
        }
        if (hit) {
            v.allow = r->allow;
            v.rule = i;
            v.why = r->text;
            return v;
        }
    }
    if (ip == p->host_alias_ip) {
        v.why = "the host is reachable only through --allow host:PORT";
        return v;
    }
    if ((ip >> 24) == 127 || (ip >> 24) == 0) {
        v.why = "loopback of the host: use --allow host:PORT";
        return v;
    }
    if (p->mode == NET_MODE_OPEN) {
        v.allow = 1;
        v.why = "mode open";
        return v;
    }
    if (!net_addr_is_public(ip)) {
        v.why = "mode public: not a public address";
        return v;
    }
    if (host_own(p, ip)) {
        v.why = "mode public: an address of the host";
        return v;
    }
    v.allow = 1;
    v.why = "mode public";
    return v;
}

struct verdict policy_check_name(const struct policy *p, const char *name)
{
    struct verdict v = {0, -1, "no network"};
    if (p->mode == NET_MODE_NONE)
        return v;
    for (int i = 0; i < p->nrules; i++) {
        const struct net_rule *r = &p->rules[i];
        if (r->kind == NET_RULE_DOMAIN && policy_domain_match(r->domain, name)) {
            v.allow = r->allow;
            v.rule = i;
            v.why = r->text;
            return v;
        }
    }
    v.allow = 1;
    v.why = p->mode == NET_MODE_OPEN ? "mode open" : "mode public";
    return v;
}

int policy_strip_answer(const struct policy *p, uint32_t ip)
{
    if (p->mode != NET_MODE_PUBLIC || (net_addr_is_public(ip) && !host_own(p, ip)))
        return 0;
    for (int i = 0; i < p->nrules; i++) {
        const struct net_rule *r = &p->rules[i];
        if (r->kind == NET_RULE_CIDR && (ip & r->mask) == r->addr)
            return !r->allow; /* an explicit CIDR rule decides */
    }
    return 1;
}

void policy_pin(struct policy *p, const char *name, uint32_t ip, uint32_t ttl_s, uint64_t now)
{
    uint64_t ttl = (uint64_t)ttl_s * 1000;
    if (ttl < POLICY_PIN_MIN_MS)
        ttl = POLICY_PIN_MIN_MS;
    for (int i = 0; i < p->npins; i++) {
        struct pin *pn = &p->pins[i];
        if (pn->ip == ip && !strcasecmp(pn->name, name)) {
            if (pn->expires < now + ttl)
                pn->expires = now + ttl;
            return;
        }
    }
    struct pin *pn = &p->pins[p->pin_next];
    p->pin_next = (p->pin_next + 1) % POLICY_PINS;
    if (p->npins < POLICY_PINS)
        p->npins++;
    snprintf(pn->name, sizeof(pn->name), "%s", name);
    pn->ip = ip;
    pn->expires = now + ttl;
}

int policy_is_pinned(const struct policy *p, const char *name, uint32_t ip, uint64_t now)
{
    for (int i = 0; i < p->npins; i++) {
        const struct pin *pn = &p->pins[i];
        if (pn->ip == ip && pn->expires >= now && !strcasecmp(pn->name, name))
            return 1;
    }
    return 0;
}

int policy_rule_is_domain(const struct policy *p, int rule)
{
    return rule >= 0 && rule < p->nrules && p->rules[rule].kind == NET_RULE_DOMAIN;
}

void net_config_upstream_from_env(struct net_config *c)
{
    const char *e = getenv("COCOON_DNS_UPSTREAM");
    char host[64];
    unsigned port = 53;
    struct in_addr a;
    if (!e || !*e || sscanf(e, "%63[0-9.]:%u", host, &port) < 1 || inet_pton(AF_INET, host, &a) != 1 || !port ||
        port > 65535)
        return;
    c->upstreams[0].ip = ntohl(a.s_addr);
    c->upstreams[0].port = (uint16_t)port;
    c->nupstreams = 1;
}
