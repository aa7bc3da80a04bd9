/* Reassembly of the guest's IPv4 fragments (see reasm.h): a fixed table of slots,
 * stale ones reclaimed when a fragment arrives (no timer needed: memory is bounded by
 * the table, not by time), the oldest evicted when the table is full. */
#include "net/reasm.h"

#include <string.h>

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static struct reasm_slot *find_slot(struct reasm *r, uint32_t src, uint32_t dst, uint16_t id, uint8_t proto,
                                    uint64_t now)
{
    struct reasm_slot *free_slot = NULL, *oldest = NULL;
    for (int i = 0; i < REASM_SLOTS; i++) {
        struct reasm_slot *s = &r->slot[i];
        if (s->used && now - s->started > REASM_TIMEOUT_MS)
            s->used = 0;
        if (!s->used) {
            if (!free_slot)
                free_slot = s;
            continue;
        }
        if (s->src == src && s->dst == dst && s->id == id && s->proto == proto)
            return s;
        if (!oldest || s->started < oldest->started)
            oldest = s;
    }
    struct reasm_slot *s = free_slot ? free_slot : oldest;
    s->used = 1;
    s->src = src;
    s->dst = dst;
    s->id = id;
    s->proto = proto;
    s->started = now;
    s->total = 0;
    s->got = 0;
    s->hdr_len = 0;
    memset(s->map, 0, sizeof(s->map));
    return s;
}

static int any_bit(const uint8_t *map, uint32_t from, uint32_t to)
{
    for (uint32_t b = from; b < to; b++)
        if (map[b >> 3] & (1u << (b & 7)))
            return 1;
    return 0;
}

static void set_bits(uint8_t *map, uint32_t from, uint32_t to)
{
    for (uint32_t b = from; b < to; b++)
        map[b >> 3] |= (uint8_t)(1u << (b & 7));
}

static int drop(struct reasm_slot *s)
{
    s->used = 0;
    return REASM_DROPPED;
}

int reasm_input(struct reasm *r, const uint8_t *p, size_t n, uint64_t now_ms, struct pkt_ip *out)
{
    if (n < 20)
        return REASM_DROPPED;
    size_t ihl = (size_t)(p[0] & 0xf) * 4;
    size_t total = be16(p + 2);
    if (ihl < 20 || total < ihl || total > n)
        return REASM_DROPPED;
    uint16_t frag = be16(p + 6);
    uint32_t off = (uint32_t)(frag & 0x1fff) * 8;
    int more = (frag & 0x2000) != 0;
    uint32_t len = (uint32_t)(total - ihl);
    if (len == 0 || (more && len % 8))
        return REASM_DROPPED; /* only the last fragment may end off an 8-byte boundary */
    struct reasm_slot *s = find_slot(r, be32(p + 12), be32(p + 16), be16(p + 4), p[9], now_ms);
    if (off + len > REASM_MAX)
        return drop(s);
    uint32_t end = off + len;
    if (!more) {
        if ((s->total && s->total != end) || any_bit(s->map, (end + 7) / 8, (REASM_MAX + 7) / 8))
            return drop(s); /* a second, different end, or data already past it */
        s->total = end;
    } else if (s->total && end > s->total) {
        return drop(s);
    }
    if (any_bit(s->map, off / 8, (end + 7) / 8))
        return drop(s);
    memcpy(s->data + off, p + ihl, len);
    set_bits(s->map, off / 8, (end + 7) / 8);
    s->got += len;
    if (off == 0) {
        memcpy(s->hdr, p, ihl);
        s->hdr_len = ihl;
        s->ttl = p[8];
    }
    if (!s->total || s->got != s->total)
        return REASM_MORE;
    s->used = 0; /* the data stays valid until the next call */
    *out = (struct pkt_ip){.src = s->src,
                           .dst = s->dst,
                           .proto = s->proto,
                           .ttl = s->ttl,
                           .id = s->id,
                           .hdr = s->hdr,
                           .hdr_len = s->hdr_len,
                           .l4 = s->data,
                           .l4_len = s->total};
    return REASM_DONE;
}
