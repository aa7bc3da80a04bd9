/* DNS parsing and rewriting for the stack's resolver. Names are read with a hard cap
 * on length and on pointer jumps, and every pointer must point strictly backwards, so
 * a hostile message cannot loop. Every record of every section of an answer is read
 * and judged; an answer that needs records removed is rebuilt from the records read
 * (names written out again, compressed only against the question). */
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

/* One resource record as read from a message: its owner, fixed fields and where its
 * data lies. */
struct rr {
    char name[256];
    uint16_t type, klass, rdlen;
    uint32_t ttl;
    size_t rdoff;
};

static int read_rr(const uint8_t *m, size_t n, size_t *off, struct rr *r)
{
    if (dns_read_name(m, n, off, r->name, sizeof(r->name)) < 0 || *off + 10 > n)
        return -1;
    r->type = rd16(m + *off);
    r->klass = rd16(m + *off + 2);
    r->ttl = rd32(m + *off + 4);
    r->rdlen = rd16(m + *off + 8);
    r->rdoff = *off + 10;
    if (r->rdlen > n - r->rdoff)
        return -1;
    *off = r->rdoff + r->rdlen;
    return 0;
}

/* The layout of record data that holds domain names, which may be compressed (RFC
 * 1035 and the types RFC 3597 section 4 lists): fixed bytes, names, fixed bytes. A
 * rebuilt message writes these names out again; the data of every other type holds
 * no compressed name (RFC 3597) and is copied as it is. */
struct rdata_names {
    uint16_t type;
    uint8_t before, names, after; /* after: RDATA_REST for whatever follows the names */
};

#define RDATA_REST 0xff

static const struct rdata_names NAMED[] = {
    {2, 0, 1, 0},  /* NS */
    {3, 0, 1, 0},  /* MD */
    {4, 0, 1, 0},  /* MF */
    {5, 0, 1, 0},  /* CNAME */
    {6, 0, 2, 20}, /* SOA */
    {7, 0, 1, 0},  /* MB */
    {8, 0, 1, 0},  /* MG */
    {9, 0, 1, 0},  /* MR */
    {12, 0, 1, 0}, /* PTR */
    {14, 0, 2, 0}, /* MINFO */
    {15, 2, 1, 0}, /* MX */
    {17, 0, 2, 0}, /* RP */
    {18, 2, 1, 0}, /* AFSDB */
    {21, 2, 1, 0}, /* RT */
    {26, 2, 2, 0}, /* PX */
    {33, 6, 1, 0}, /* SRV */
    {36, 2, 1, 0}, /* KX */
    {39, 0, 1, 0}, /* DNAME */
    /* SVCB and HTTPS must not compress their target, but one that does would point
     * elsewhere once the message is rebuilt: written out like the others. */
    {64, 2, 1, RDATA_REST},
    {65, 2, 1, RDATA_REST},
};

/* Types whose data mixes compressible names with other variable fields (SIG, NXT,
 * NAPTR): kept only in a message passed on as it came, never rewritten. */
static int unrewritable(uint16_t type) { return type == 24 || type == 30 || type == 35; }

static const struct rdata_names *named_layout(uint16_t type)
{
    for (size_t i = 0; i < sizeof(NAMED) / sizeof(NAMED[0]); i++)
        if (NAMED[i].type == type)
            return &NAMED[i];
    return NULL;
}

#define DNS_TYPE_SVCB 64
#define DNS_TYPE_HTTPS 65
#define SVC_IPV4HINT 4
#define SVC_IPV6HINT 6

static int v6_stripped(const struct policy *pol, const uint8_t *a)
{
    return pol->mode == NET_MODE_PUBLIC && v6_private(a);
}

/* SVCB/HTTPS (RFC 9460): the ipv4hint and ipv6hint parameters are addresses a client
 * may connect to, so a private one removes the record as a private A or AAAA would;
 * so does data that does not parse. */
static int svcb_stripped(const uint8_t *m, const struct rr *r, const struct policy *pol)
{
    size_t end = r->rdoff + r->rdlen, off = r->rdoff + 2;
    char target[256];
    if (r->rdlen < 3 || dns_read_name(m, end, &off, target, sizeof(target)) < 0)
        return 1;
    while (off < end) {
        if (end - off < 4)
            return 1;
        uint16_t key = rd16(m + off), len = rd16(m + off + 2);
        off += 4;
        if (len > end - off)
            return 1;
        if (key == SVC_IPV4HINT || key == SVC_IPV6HINT) {
            size_t each = key == SVC_IPV4HINT ? 4 : 16;
            if (len == 0 || len % each)
                return 1;
            for (size_t i = 0; i < len; i += each)
                if (each == 4 ? policy_strip_answer(pol, rd32(m + off + i)) : v6_stripped(pol, m + off + i))
                    return 1;
        }
        off += len;
    }
    return 0;
}

/* Whether a record leaves the answer (rebinding): -1 when malformed, 1 to remove. */
static int rr_stripped(const uint8_t *m, const struct rr *r, const struct policy *pol)
{
    switch (r->type) {
    case DNS_TYPE_A:
        if (r->rdlen != 4)
            return -1;
        return policy_strip_answer(pol, rd32(m + r->rdoff)) ? 1 : 0;
    case DNS_TYPE_AAAA:
        if (r->rdlen != 16)
            return -1;
        return v6_stripped(pol, m + r->rdoff);
    case DNS_TYPE_SVCB:
    case DNS_TYPE_HTTPS: return svcb_stripped(m, r, pol);
    default: return 0;
    }
}

/* A name as in the rebuilt message: the question's name, or a name ending in it, is
 * compressed to a pointer to the question (offset 12); anything else is written out.
 * Returns the new offset, 0 when it does not fit. */
static size_t put_name_q(uint8_t *out, size_t o, size_t cap, const char *name, const char *qname)
{
    size_t nl = strlen(name), ql = strlen(qname);
    size_t head = nl;
    if (ql && nl >= ql && !strcmp(name + nl - ql, qname) && (nl == ql || name[nl - ql - 1] == '.'))
        head = nl == ql ? 0 : nl - ql - 1;
    else
        return put_name(out, o, cap, name);
    char first[256];
    memcpy(first, name, head);
    first[head] = 0;
    if (head) {
        o = put_name(out, o, cap, first);
        if (!o)
            return 0;
        o--; /* over the root label: the pointer ends the name */
    }
    if (o + 2 > cap)
        return 0;
    wr16(out + o, 0xc00c);
    return o + 2;
}

/* Writes the record's data into out at o: names again (decompressed, then compressed
 * against the question), anything else as it is. Returns the new offset; 0 when it
 * does not fit, (size_t)-1 when the data does not parse (the record is left out). */
static size_t put_rdata(const uint8_t *m, const struct rr *r, const char *qname, uint8_t *out, size_t o, size_t cap)
{
    const struct rdata_names *l = named_layout(r->type);
    size_t end = r->rdoff + r->rdlen;
    if (!l) {
        if (o + r->rdlen > cap)
            return 0;
        memcpy(out + o, m + r->rdoff, r->rdlen);
        return o + r->rdlen;
    }
    size_t in = r->rdoff;
    if (r->rdlen < l->before || o + l->before > cap)
        return r->rdlen < l->before ? (size_t)-1 : 0;
    memcpy(out + o, m + in, l->before);
    o += l->before;
    in += l->before;
    for (int i = 0; i < l->names; i++) {
        char name[256];
        if (dns_read_name(m, end, &in, name, sizeof(name)) < 0)
            return (size_t)-1;
        o = put_name_q(out, o, cap, name, qname);
        if (!o)
            return 0;
    }
    size_t after = end - in;
    if (l->after != RDATA_REST && after != l->after)
        return (size_t)-1;
    if (o + after > cap)
        return 0;
    memcpy(out + o, m + in, after);
    return o + after;
}

/* Appends one record to the rebuilt message; 0 when it does not fit, (size_t)-1 when
 * it is left out. */
static size_t put_rr(const uint8_t *m, const struct rr *r, const char *qname, uint8_t *out, size_t o, size_t cap)
{
    if (unrewritable(r->type))
        return (size_t)-1;
    o = put_name_q(out, o, cap, r->name, qname);
    if (!o || o + 10 > cap)
        return 0;
    size_t fixed = o;
    wr16(out + o, r->type);
    wr16(out + o + 2, r->klass);
    wr32(out + o + 4, r->ttl);
    size_t end = put_rdata(m, r, qname, out, o + 10, cap);
    if (end == 0 || end == (size_t)-1)
        return end;
    if (end - fixed - 10 > 65535)
        return 0;
    wr16(out + fixed + 8, (uint16_t)(end - fixed - 10));
    return end;
}

/* The TC reply standing for a rebuilt answer that does not fit: the client asks
 * again over TCP rather than waiting for a timeout. */
static long too_big(const uint8_t *resp, const struct dns_question *q, uint16_t flags, uint8_t *out, size_t cap)
{
    size_t o = put_header(resp, q, flags & 0xf, 0, out, cap);
    if (!o)
        return -1;
    wr16(out + 2, (uint16_t)((flags & ~DNS_FLAG_AD) | DNS_FLAG_TC));
    return (long)o;
}

long dns_filter_response(const uint8_t *resp, size_t n, const struct dns_question *q, struct policy *pol, uint64_t now,
                         uint8_t *out, size_t cap, int *stripped)
{
    struct dns_question rq;
    struct rr r;
    *stripped = 0;
    if (n < 12 || n > DNS_MAX_WIRE)
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
    const size_t first = off;
    unsigned count[3] = {rd16(resp + 6), rd16(resp + 8), rd16(resp + 10)};
    /* Every record of every section is read and judged before anything is used. */
    int rewrite = 0;
    for (int sec = 0; sec < 3; sec++) {
        for (unsigned i = 0; i < count[sec]; i++) {
            if (read_rr(resp, n, &off, &r) < 0)
                return -1;
            int strip = rr_stripped(resp, &r, pol);
            if (strip < 0)
                return -1;
            *stripped += strip;
        }
    }
    rewrite = *stripped || off != n; /* removed records, or bytes after the last one */
    /* The whole answer parsed: pin the answer section's surviving addresses. */
    off = first;
    for (unsigned i = 0; i < count[0]; i++) {
        read_rr(resp, n, &off, &r);
        if (r.type == DNS_TYPE_A && !rr_stripped(resp, &r, pol))
            policy_pin(pol, q->name, rd32(resp + r.rdoff), r.ttl, now);
    }
    if (!rewrite) {
        if (n > cap)
            return too_big(resp, q, flags, out, cap);
        memcpy(out, resp, n);
        return (long)n;
    }
    /* Rebuilt from the records read: header, question, what survives of each section. */
    size_t o = put_header(resp, q, flags & 0xf, 0, out, cap);
    if (!o)
        return -1;
    /* not truncated (records were dropped, not cut), and no longer what a validator saw */
    wr16(out + 2, (uint16_t)(flags & ~(DNS_FLAG_TC | DNS_FLAG_AD)));
    off = first;
    for (int sec = 0; sec < 3; sec++) {
        uint16_t kept = 0;
        for (unsigned i = 0; i < count[sec]; i++) {
            read_rr(resp, n, &off, &r);
            if (rr_stripped(resp, &r, pol))
                continue;
            size_t next = put_rr(resp, &r, q->name, out, o, cap);
            if (next == 0)
                return too_big(resp, q, flags, out, cap);
            if (next == (size_t)-1)
                continue;
            o = next;
            kept++;
        }
        wr16(out + 6 + 2 * sec, kept);
    }
    return (long)o;
}
