/* Wire formats of the frames the stack handles: Ethernet, ARP, IPv4, ICMP, UDP and
 * TCP headers, parsed from untrusted bytes with every length checked, and the
 * Internet checksum (RFC 1071). Addresses and ports are host byte order here. */
#ifndef COCOON_NET_WIRE_H
#define COCOON_NET_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define ETH_HDR 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define IP_PROTO_ICMP 1
#define IP_PROTO_TCP 6
#define IP_PROTO_UDP 17

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10

struct pkt_ip {
    uint32_t src, dst;
    uint8_t proto, ttl;
    uint16_t id;
    const uint8_t *hdr; /* the IPv4 header */
    size_t hdr_len;
    const uint8_t *l4; /* payload of the IP packet */
    size_t l4_len;
};

struct pkt_tcp {
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t win;
    uint16_t mss; /* 0: no option */
    int wscale;   /* -1: no option */
    const uint8_t *data;
    size_t len;
};

struct pkt_udp {
    uint16_t sport, dport;
    const uint8_t *data;
    size_t len;
};

enum { WIRE_OK = 0, WIRE_MALFORMED = -1, WIRE_FRAGMENT = -2, WIRE_UNSUPPORTED = -3 };

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* RFC 1071 one's-complement sum of data added to sum (0 to start). */
uint32_t wire_sum(const void *data, size_t len, uint32_t sum);
/* The checksum of a sum: folded to 16 bits and complemented (0 when the data verified). */
uint16_t wire_fold(uint32_t sum);
/* Sum of the TCP/UDP pseudo header. */
uint32_t wire_pseudo(uint32_t src, uint32_t dst, uint8_t proto, size_t len);

/* IPv4 packet in p[0..n): header checks (version, IHL, total length, checksum);
 * trailing Ethernet padding is ignored. Fragments give WIRE_FRAGMENT. */
int wire_parse_ipv4(const uint8_t *p, size_t n, struct pkt_ip *out);
/* TCP segment of ip, checksum verified. */
int wire_parse_tcp(const struct pkt_ip *ip, struct pkt_tcp *out);
/* UDP datagram of ip, checksum verified when present. */
int wire_parse_udp(const struct pkt_ip *ip, struct pkt_udp *out);

/* Writes a 20-byte IPv4 header (with checksum, DF set) at p. */
void wire_ipv4_header(uint8_t *p, uint32_t src, uint32_t dst, uint8_t proto, uint16_t id, size_t payload_len);
/* The same with the flags and fragment offset field given (0x2000 more fragments,
 * offset in 8-byte units in the low 13 bits). */
void wire_ipv4_fragment(uint8_t *p, uint32_t src, uint32_t dst, uint8_t proto, uint16_t id, size_t payload_len,
                        uint16_t frag);
/* Writes a TCP header (20 bytes, or 20 + options for SYNs when mss != 0) at p and
 * computes the checksum over it and the len payload bytes that follow it.
 * Returns the header length. */
size_t wire_tcp_header(uint8_t *p, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq,
                       uint32_t ack, uint8_t flags, uint16_t win, uint16_t mss, int wscale, size_t len);
/* Writes an 8-byte UDP header and the checksum over the len bytes that follow. */
void wire_udp_header(uint8_t *p, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, size_t len);

#endif
