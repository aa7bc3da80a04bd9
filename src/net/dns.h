/* DNS messages (RFC 1035) as the stack's resolver sees them: the guest's queries,
 * parsed to learn the name asked; the upstream's answers, checked, filtered against
 * rebinding and pinned. All parsing is bounded; compression loops are rejected. */
#ifndef COCOON_NET_DNS_H
#define COCOON_NET_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "net/policy.h"

#define DNS_MAX_MSG 4096   /* what the resolver reads from its upstream and sends */
#define DNS_MAX_WIRE 65535 /* the largest DNS message there is (TCP) */
#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_AAAA 28
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_REFUSED 5
#define DNS_FLAG_TC 0x0200
#define DNS_FLAG_AD 0x0020
#define DNS_UDP_MIN 512 /* what every client takes over UDP (RFC 1035) */

struct dns_question {
    uint16_t id, qtype, qclass;
    char name[256]; /* lowercase, dotted, no trailing dot ("" for the root) */
    size_t end;     /* offset just after the question */
};

/* Reads a possibly compressed name of msg (n bytes) at *off into out (cap bytes,
 * lowercase, dotted); advances *off past it. 0, or -1 when malformed or too long. */
int dns_read_name(const uint8_t *msg, size_t n, size_t *off, char *out, size_t cap);
/* Fills *q from p (n bytes) when it is a standard query with exactly one question:
 * 0, else -1. */
int dns_parse_query(const uint8_t *p, size_t n, struct dns_question *q);
/* A response to q (its header flags from query when given, else RD) with rcode and no
 * records, written to out: its length, or 0 when cap is too small. */
size_t dns_build_error(const uint8_t *query, const struct dns_question *q, int rcode, uint8_t *out, size_t cap);
/* The same, answering with one A record for ip (none for types other than A and
 * ANY): its length, or 0 when cap is too small. */
size_t dns_build_local(const uint8_t *query, const struct dns_question *q, uint32_t ip, uint8_t *out, size_t cap);
/* Checks that resp (up to DNS_MAX_WIRE bytes) answers q, pins its answer section's A
 * records for q->name and removes from every section the records with an address
 * policy_strip_answer rejects (A, SVCB/HTTPS hints; private AAAA in public mode). A
 * message with records removed, or with bytes after its last record, is rebuilt from
 * the records read; one that then exceeds cap becomes a TC reply with no records.
 * Returns the length written to out, or -1 (malformed, or not an answer to q). */
long dns_filter_response(const uint8_t *resp, size_t n, const struct dns_question *q, struct policy *pol, uint64_t now,
                         uint8_t *out, size_t cap, int *stripped);

/* The UDP payload size the query's EDNS0 OPT record advertises, or 512 without one
 * (also for sizes below 512 and for anything malformed after the question). */
unsigned dns_query_udp_size(const uint8_t *p, size_t n, const struct dns_question *q);
/* The query as the stack sends it upstream, in out: with an EDNS0 OPT record
 * advertising DNS_MAX_MSG (the guest's OPT raised to it, or one appended: *added),
 * so the upstream does not truncate what the guest may take over TCP. 0: no room. */
size_t dns_upstream_query(const uint8_t *p, size_t n, const struct dns_question *q, uint8_t *out, size_t cap,
                          int *added);
/* Removes the OPT record from a response's additional section (in place, for a guest
 * that sent none). The new length (n when there is none), or -1 when malformed. */
long dns_strip_opt(uint8_t *m, size_t n);
/* The reply that stands for a response too big for the client's UDP size: msg's
 * header with TC set and its question, no records. Length written to out, or -1. */
long dns_truncate(const uint8_t *msg, size_t n, uint8_t *out, size_t cap);

#endif
