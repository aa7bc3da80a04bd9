/* IPv4 reassembly of the datagrams the guest sends in fragments (a UDP datagram bigger
 * than its MTU). Bounded against a hostile guest: REASM_SLOTS datagrams in progress,
 * each at most REASM_MAX bytes of payload and REASM_TIMEOUT_MS old; any overlap drops
 * the datagram (RFC 5722's rule, applied to IPv4). */
#ifndef COCOON_NET_REASM_H
#define COCOON_NET_REASM_H

#include <stddef.h>
#include <stdint.h>

#include "net/wire.h"

#define REASM_SLOTS 4
#define REASM_MAX (65535 - 20)
#define REASM_TIMEOUT_MS 5000

struct reasm_slot {
    int used;
    uint32_t src, dst;
    uint16_t id;
    uint8_t proto, ttl;
    uint64_t started;                /* ms */
    uint32_t total;                  /* payload length, known once the last fragment came; 0 before */
    uint32_t got;                    /* payload bytes received */
    uint8_t hdr[60];                 /* the first fragment's header */
    size_t hdr_len;                  /* 0 until the first fragment came */
    uint8_t map[REASM_MAX / 64 + 1]; /* one bit per 8-byte block received */
    uint8_t data[REASM_MAX];
};

struct reasm {
    struct reasm_slot slot[REASM_SLOTS];
};

enum { REASM_MORE = 0, REASM_DONE = 1, REASM_DROPPED = -1 };

/* Takes one fragment: p is its IPv4 header (n bytes, already checked as a whole by
 * wire_parse_ipv4, which returned WIRE_FRAGMENT). REASM_DONE fills *out with the whole
 * datagram (l4 points into r, valid until the next call); REASM_MORE keeps waiting;
 * REASM_DROPPED when the fragment is malformed or makes its datagram invalid (too big,
 * overlapping, inconsistent): the datagram is forgotten. */
int reasm_input(struct reasm *r, const uint8_t *p, size_t n, uint64_t now_ms, struct pkt_ip *out);

#endif
