/* Parsing and building of IPv4, TCP and UDP headers. Every parser takes untrusted
 * bytes and a length, checks before it reads, and verifies checksums: a frame the
 * stack acts on has passed all of these. */
#include "net/wire.h"

#include <string.h>

/* 32-bit big-endian words into a 64-bit sum: a 32-bit word is its two 16-bit words
 * modulo 0xffff, and so is the end-around fold, so the result is the RFC 1071 sum,
 * folded to 16 bits (zero only for all-zero input, as unfolded). Every guest segment
 * goes through here: four bytes a step instead of two. */
uint32_t wire_sum(const void *data, size_t len, uint32_t sum)
{
    const uint8_t *p = data;
    uint64_t acc = sum;
    while (len >= 4) {
        acc += rd32(p);
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        acc += rd16(p);
        p += 2;
        len -= 2;
    }
    if (len)
        acc += (uint32_t)p[0] << 8;
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint32_t)acc;
}

uint16_t wire_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

uint32_t wire_pseudo(uint32_t src, uint32_t dst, uint8_t proto, size_t len)
{
    uint32_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);
    return sum + proto + (uint32_t)len;
}

int wire_parse_ipv4(const uint8_t *p, size_t n, struct pkt_ip *out)
{
    if (n < 20 || (p[0] >> 4) != 4)
        return WIRE_MALFORMED;
    size_t ihl = (size_t)(p[0] & 0xf) * 4;
    size_t total = rd16(p + 2);
    if (ihl < 20 || total < ihl || total > n)
        return WIRE_MALFORMED;
    if (wire_fold(wire_sum(p, ihl, 0)) != 0)
        return WIRE_MALFORMED;
    uint16_t frag = rd16(p + 6);
    if (frag & 0x8000)
        return WIRE_MALFORMED; /* the reserved bit */
    if ((frag & 0x2000) || (frag & 0x1fff))
        return WIRE_FRAGMENT;
    out->id = rd16(p + 4);
    out->ttl = p[8];
    out->proto = p[9];
    out->src = rd32(p + 12);
    out->dst = rd32(p + 16);
    out->hdr = p;
    out->hdr_len = ihl;
    out->l4 = p + ihl;
    out->l4_len = total - ihl;
    return WIRE_OK;
}

static void tcp_options(const uint8_t *o, size_t n, struct pkt_tcp *t)
{
    size_t i = 0;
    while (i < n) {
        uint8_t kind = o[i];
        if (kind == 0)
            break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= n || o[i + 1] < 2 || i + o[i + 1] > n)
            break; /* a broken option list: ignore the rest */
        uint8_t len = o[i + 1];
        if (kind == 2 && len == 4)
            t->mss = rd16(o + i + 2);
        else if (kind == 3 && len == 3)
            t->wscale = o[i + 2] > 14 ? 14 : o[i + 2];
        i += len;
    }
}

int wire_parse_tcp(const struct pkt_ip *ip, struct pkt_tcp *t)
{
    const uint8_t *p = ip->l4;
    size_t n = ip->l4_len;
    if (n < 20)
        return WIRE_MALFORMED;
    size_t off = (size_t)(p[12] >> 4) * 4;
    if (off < 20 || off > n)
        return WIRE_MALFORMED;
    if (wire_fold(wire_sum(p, n, wire_pseudo(ip->src, ip->dst, IP_PROTO_TCP, n))) != 0)
        return WIRE_MALFORMED;
    memset(t, 0, sizeof(*t));
    t->sport = rd16(p);
    t->dport = rd16(p + 2);
    t->seq = rd32(p + 4);
    t->ack = rd32(p + 8);
    t->flags = p[13] & 0x3f;
    t->win = rd16(p + 14);
    t->wscale = -1;
    tcp_options(p + 20, off - 20, t);
    t->data = p + off;
    t->len = n - off;
    return WIRE_OK;
}

int wire_parse_udp(const struct pkt_ip *ip, struct pkt_udp *u)
{
    const uint8_t *p = ip->l4;
    if (ip->l4_len < 8)
        return WIRE_MALFORMED;
    size_t len = rd16(p + 4);
    if (len < 8 || len > ip->l4_len)
        return WIRE_MALFORMED;
    if (rd16(p + 6) != 0 && wire_fold(wire_sum(p, len, wire_pseudo(ip->src, ip->dst, IP_PROTO_UDP, len))) != 0)
        return WIRE_MALFORMED;
    u->sport = rd16(p);
    u->dport = rd16(p + 2);
    u->data = p + 8;
    u->len = len - 8;
    return WIRE_OK;
}

void wire_ipv4_header(uint8_t *p, uint32_t src, uint32_t dst, uint8_t proto, uint16_t id, size_t payload_len)
{
    wire_ipv4_fragment(p, src, dst, proto, id, payload_len, 0x4000); /* DF */
}

void wire_ipv4_fragment(uint8_t *p, uint32_t src, uint32_t dst, uint8_t proto, uint16_t id, size_t payload_len,
                        uint16_t frag)
{
    p[0] = 0x45;
    p[1] = 0;
    wr16(p + 2, (uint16_t)(20 + payload_len));
    wr16(p + 4, id);
    wr16(p + 6, frag);
    p[8] = 64;
    p[9] = proto;
    wr16(p + 10, 0);
    wr32(p + 12, src);
    wr32(p + 16, dst);
    wr16(p + 10, wire_fold(wire_sum(p, 20, 0)));
}

size_t wire_tcp_header(uint8_t *p, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq,
                       uint32_t ack, uint8_t flags, uint16_t win, uint16_t mss, int wscale, size_t len)
{
    size_t hl = 20;
    wr16(p, sport);
    wr16(p + 2, dport);
    wr32(p + 4, seq);
    wr32(p + 8, ack);
    p[13] = flags;
    wr16(p + 14, win);
    wr16(p + 16, 0);
    wr16(p + 18, 0);
    if (mss) {
        p[20] = 2;
        p[21] = 4;
        wr16(p + 22, mss);
        hl = 24;
        if (wscale >= 0) {
            p[24] = 1; /* NOP */
            p[25] = 3;
            p[26] = 3;
            p[27] = (uint8_t)wscale;
            hl = 28;
        }
    }
    p[12] = (uint8_t)((hl / 4) << 4);
    uint32_t sum = wire_pseudo(src, dst, IP_PROTO_TCP, hl + len);
    wr16(p + 16, wire_fold(wire_sum(p, hl + len, sum)));
    return hl;
}

void wire_udp_header(uint8_t *p, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, size_t len)
{
    wr16(p, sport);
    wr16(p + 2, dport);
    wr16(p + 4, (uint16_t)(8 + len));
    wr16(p + 6, 0);
    uint16_t c = wire_fold(wire_sum(p, 8 + len, wire_pseudo(src, dst, IP_PROTO_UDP, 8 + len)));
    wr16(p + 6, c ? c : 0xffff);
}
