/* DNS parsing and rewriting for the stack's resolver. Names are read with a hard cap
 * on length and on pointer jumps, and every pointer must point strictly backwards, so
 * a hostile message cannot loop. A response that needs records removed is rebuilt
 * from scratch with uncompressed names, keeping only A, AAAA and CNAME answers. */
#include "net/dns.h"

#include <ctype.h>
#include <string.h>

#include "net/wire.h"

int dns_read_name(const uint8_t *msg, size_t n, size_t *off, char *out, size_t cap)
{
    size_t pos = *off, o = 0, wire_len = 0, after = 0;
    int jumped = 0, jumps = 0;
    size_t limit = pos; /* pointers must point before this */
    if (cap < 2)
        return -1;
    for (;;) {
        if (pos >= n)
            return -1;
        uint8_t len = msg[pos];
        if ((len & 0xc0) == 0xc0) {
            if (pos + 1 >= n || ++jumps > 32)
                return -1;
            size_t target = (size_t)(len & 0x3f) << 8 | msg[pos + 1];
            if (target >= limit)
                return -1;
            if (!jumped)
                after = pos + 2;
            jumped = 1;
            limit = target;
            pos = target;
            continue;
        }
        if (len & 0xc0)
            return -1; /* extended label types */
        if (len == 0) {
            pos++;
            break;
        }
        wire_len += (size_t)len + 1;
        if (wire_len > 254 || pos + 1 + len > n)
            return -1;
        if (o && o + 1 < cap)
            out[o++] = '.';
        for (size_t i = 0; i < len; i++) {
            uint8_t ch = msg[pos + 1 + i];
            if (ch <= 0x20 || ch >= 0x7f || ch == '.' || ch == '\\')
                return -1;
            if (o + 1 >= cap)
                return -1;
            out[o++] = (char)tolower(ch);
        }
        pos += 1 + (size_t)len;
    }
    out[o] = 0;
    *off = jumped ? after : pos;
    return 0;
}

int dns_parse_query(const uint8_t *p, size_t n, struct dns_question *q)
{
    if (n < 12 || n > DNS_MAX_MSG)
        return -1;
    uint16_t flags = rd16(p + 2);
    if ((flags & 0x8000) || ((flags >> 11) & 0xf) != 0 || rd16(p + 4) != 1 || rd16(p + 6) != 0 || rd16(p + 8) != 0)
        return -1;
    size_t off = 12;
    if (dns_read_name(p, n, &off, q->name, sizeof(q->name)) < 0 || off + 4 > n)
        return -1;
    q->id = rd16(p);
    q->qtype = rd16(p + off);
    q->qclass = rd16(p + off + 2);
    q->end = off + 4;
    return 0;
}

static size_t put_name(uint8_t *out, size_t o, size_t cap, const char *s)
{
    size_t need = strlen(s) + 2;
    if (o + need > cap)
        return 0;
    while (*s) {
        size_t l = strcspn(s, ".");
        out[o++] = (uint8_t)l;
        memcpy(out + o, s, l);
        o += l;
        s += l;
        if (*s == '.')
            s++;
    }
    out[o++] = 0;
    return o;
}

/* Header + the question as an uncompressed name. */
static size_t put_header(const uint8_t *query, const struct dns_question *q, int rcode, uint16_t ancount, uint8_t *out,
                         size_t cap)
{
    size_t nl = strlen(q->name);
    if (cap < 12 + nl + 2 + 4)
        return 0;
    wr16(out, q->id);
    uint16_t rd = query ? (uint16_t)(rd16(query + 2) & 0x0100) : 0x0100;
    wr16(out + 2, (uint16_t)(0x8000 | rd | 0x0080 | (rcode & 0xf)));
    wr16(out + 4, 1);
    wr16(out + 6, ancount);
    wr16(out + 8, 0);
    wr16(out + 10, 0);
    size_t o = put_name(out, 12, cap, q->name); /* fits: checked above */
    wr16(out + o, q->qtype);
    wr16(out + o + 2, q->qclass);
    return o + 4;
}

size_t dns_build_error(const uint8_t *query, const struct dns_question *q, int rcode, uint8_t *out, size_t cap)
{
    return put_header(query, q, rcode, 0, out, cap);
}

size_t dns_build_local(const uint8_t *query, const struct dns_question *q, uint32_t ip, uint8_t *out, size_t cap)
{
    int a = q->qtype == DNS_TYPE_A || q->qtype == 255;
    size_t o = put_header(query, q, 0, a ? 1 : 0, out, cap);
    if (!o || !a)
        return o;
    if (o + 16 > cap)
        return 0;
    wr16(out + o, 0xc00c); /* the question's name */
    wr16(out + o + 2, DNS_TYPE_A);
    wr16(out + o + 4, 1);
    wr32(out + o + 6, 60);
    wr16(out + o + 10, 4);
    wr32(out + o + 12, ip);
    return o + 16;
}

static int v6_private(const uint8_t *a)
{
    static const uint8_t zero[10] = {0};
    if ((a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0))
        return 1; /* ULA, link-local, site-local */
    if (a[0] == 0xff)
        return 1; /* multicast */
    if (!memcmp(a, zero, 10)) {
        if ((a[10] == 0xff && a[11] == 0xff) || (a[10] == 0 && a[11] == 0))
            return 1; /* v4-mapped, v4-compatible, ::, ::1: never useful from a box */
    }
    if (a[0] == 0x20 && a[1] == 0x02)
        return 1; /* 6to4 embeds any IPv4 address */
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b)
        return 1; /* NAT64 */
    return 0;
}

struct rr {
    char name[256];
    uint16_t type, klass;
    uint32_t ttl;
    size_t rdoff, rdlen;
    char target[256]; /* CNAME */
    int keep;
};

#define DNS_MAX_RR 64

long dns_filter_response(const uint8_t *resp, size_t n, const struct dns_question *q, struct policy *pol, uint64_t now,
                         uint8_t *out, size_t cap, int *stripped)
{
    static struct rr rrs[DNS_MAX_RR];
    struct dns_question rq;
    *stripped = 0;
    if (n < 12 || n > DNS_MAX_MSG || n > cap)
        return -1;
    uint16_t flags = rd16(resp + 2);
    if (!(flags & 0x8000) || rd16(resp) != q->id || rd16(resp + 4) != 1)
        return -1;
    size_t off = 12;
    if (dns_read_name(resp, n, &off, rq.name, sizeof(rq.name)) < 0 || off + 4 > n)
        return -1;
    if (strcmp(rq.name, q->name) != 0 || rd16(resp + off) != q->qtype || rd16(resp + off + 2) != q->qclass)
        return -1;
    off += 4;
    unsigned an = rd16(resp + 6);
    if (an > DNS_MAX_RR)
        an = DNS_MAX_RR; /* the rest is dropped if the message is rebuilt */
    int kept = 0;
    for (unsigned i = 0; i < an; i++) {
        struct rr *r = &rrs[i];
        if (dns_read_name(resp, n, &off, r->name, sizeof(r->name)) < 0 || off + 10 > n)
            return -1;
        r->type = rd16(resp + off);
        r->klass = rd16(resp + off + 2);
        r->ttl = rd32(resp + off + 4);
        r->rdlen = rd16(resp + off + 8);
        r->rdoff = off + 10;
        if (r->rdoff + r->rdlen > n)
            return -1;
        off = r->rdoff + r->rdlen;
        r->keep = 1;
        if (r->type == DNS_TYPE_A) {
            if (r->rdlen != 4)
                return -1;
            uint32_t ip = rd32(resp + r->rdoff);
            if (policy_strip_answer(pol, ip))
                r->keep = 0;
        } else if (r->type == DNS_TYPE_AAAA) {
            if (r->rdlen != 16)
                return -1;
            if (pol->mode == NET_MODE_PUBLIC && v6_private(resp + r->rdoff))
                r->keep = 0;
        } else if (r->type == DNS_TYPE_CNAME) {
            size_t t = r->rdoff;
            if (dns_read_name(resp, n, &t, r->target, sizeof(r->target)) < 0 || t != r->rdoff + r->rdlen)
                return -1;
        } else {
            r->keep = 2; /* kept verbatim only when nothing is removed */
        }
        if (!r->keep)
            (*stripped)++;
        else
            kept++;
    }
    for (unsigned i = 0; i < an; i++) /* the whole answer parsed: pin what survives */
        if (rrs[i].type == DNS_TYPE_A && rrs[i].keep)
            policy_pin(pol, q->name, rd32(resp + rrs[i].rdoff), rrs[i].ttl, now);
    if (!*stripped) {
        memcpy(out, resp, n);
        return (long)n;
    }
    /* Rebuild: header, question, the surviving A/AAAA/CNAME answers. */
    uint8_t tmp_q[12];
    memcpy(tmp_q, resp, 12);
    size_t o = put_header(tmp_q, q, flags & 0xf, 0, out, cap);
    if (!o)
        return -1;
    wr16(out + 2, (uint16_t)(flags & ~0x0200)); /* not truncated: we dropped records */
    uint16_t count = 0;
    for (unsigned i = 0; i < an; i++) {
        struct rr *r = &rrs[i];
        if (r->keep != 1)
            continue;
        o = put_name(out, o, cap, r->name);
        if (!o || o + 10 > cap)
            return -1;
        wr16(out + o, r->type);
        wr16(out + o + 2, r->klass);
        wr32(out + o + 4, r->ttl);
        size_t lenpos = o + 8;
        o += 10;
        if (r->type == DNS_TYPE_CNAME) {
            size_t start = o;
            o = put_name(out, o, cap, r->target);
            if (!o)
                return -1;
            wr16(out + lenpos, (uint16_t)(o - start));
        } else {
            if (o + r->rdlen > cap)
                return -1;
            memcpy(out + o, resp + r->rdoff, r->rdlen);
            wr16(out + lenpos, (uint16_t)r->rdlen);
            o += r->rdlen;
        }
        count++;
    }
    wr16(out + 6, count);
    (void)kept;
    return (long)o;
}
