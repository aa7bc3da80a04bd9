/* Egress policy of one box: the mode (none/public/open), first-match rules on CIDR,
 * domain, the host alias, port and protocol, and the pins that tie a domain rule to
 * the addresses this box's own DNS lookups returned. */
#ifndef COCOON_NET_POLICY_H
#define COCOON_NET_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define POLICY_PINS 4096
#define POLICY_HOST_ADDRS 64
#define POLICY_PIN_MIN_MS (10u * 60 * 1000)

struct pin {
    char name[254];
    uint32_t ip;
    uint64_t expires;
};

struct policy {
    int mode;
    const struct net_rule *rules;
    int nrules;
    uint32_t host_alias_ip;
    uint32_t host_addrs[POLICY_HOST_ADDRS]; /* the host's own IPv4 addresses */
    int nhost_addrs;
    struct pin pins[POLICY_PINS]; /* a ring: the oldest pin is replaced */
    int npins, pin_next;
};

/* The decision and what made it: rule index (-1: the mode) and a reason. */
struct verdict {
    int allow;
    int rule;
    const char *why;
};

/* Sets p up from cfg's mode and rules (p points at cfg->rules: cfg must outlive it)
 * and the host's own addresses, read now. */
void policy_init(struct policy *p, const struct net_config *cfg);
/* May a connection to ip:port/proto go out? name (may be NULL) is the TLS SNI: when
 * given, domain rules match only that name (and its pin). */
struct verdict policy_check_ip(const struct policy *p, uint32_t ip, uint16_t port, int proto, const char *name,
                               uint64_t now);
/* May this name be resolved? */
struct verdict policy_check_name(const struct policy *p, const char *name);
/* Should an A record with this address be removed from an answer (rebinding)? */
int policy_strip_answer(const struct policy *p, uint32_t ip);
/* Remembers that this box's DNS lookup of name returned ip, for ttl_s seconds (at
 * least POLICY_PIN_MIN_MS) from now (ms): domain rules match ip until then. The
 * oldest pin is replaced when all POLICY_PINS are taken; name is copied. */
void policy_pin(struct policy *p, const char *name, uint32_t ip, uint32_t ttl_s, uint64_t now);
/* "*" / "*.example.org" / "example.org" against a lowercase name without trailing dot. */
int policy_domain_match(const char *pattern, const char *name);
/* "example.org", "*.example.org" or "*": labels of letters, digits, '-', '_'. */
int net_domain_valid(const char *d);
/* 1 when this box's DNS lookup of name answered ip (a pin that has not expired). */
int policy_is_pinned(const struct policy *p, const char *name, uint32_t ip, uint64_t now);
/* Does the rule that decided a connection need the TLS SNI checked? */
int policy_rule_is_domain(const struct policy *p, int rule);

#endif
