/* DNS message sizes, as a real resolver handles them: the EDNS0 UDP payload size a
 * query advertises (RFC 6891; 512 bytes without an OPT record, RFC 1035), the reply
 * with TC set (header and question, no partial records) that replaces an answer over
 * it so the client retries over TCP, and the EDNS0 the stack itself advertises to
 * its upstream so that the answer it gets is whole, whatever the guest asked with. */
#include "net/dns.h"

#include <string.h>

#include "net/wire.h"

#define DNS_TYPE_OPT 41
#define DNS_MAX_ADDITIONAL 8 /* a query carries an OPT and maybe a TSIG: no more is read */

/* Offset of the OPT record's fixed part (TYPE) in a query's additional section, or 0
 * when there is none (or something malformed comes first). */
static size_t find_opt(const uint8_t *p, size_t n, size_t off, unsigned ar)
{
    char name[256];
    for (unsigned i = 0; i < ar && i < DNS_MAX_ADDITIONAL; i++) {
        if (dns_read_name(p, n, &off, name, sizeof(name)) < 0 || off + 10 > n)
            return 0;
        size_t rdlen = rd16(p + off + 8);
        if (rd16(p + off) == DNS_TYPE_OPT)
            return name[0] || rdlen > n - off - 10 ? 0 : off; /* OPT is owned by the root */
        if (rdlen > n - off - 10)
            return 0;
        off += 10 + rdlen;
    }
    return 0;
}

unsigned dns_query_udp_size(const uint8_t *p, size_t n, const struct dns_question *q)
{
    if (n < 12 || q->end > n)
        return DNS_UDP_MIN;
    size_t o = find_opt(p, n, q->end, rd16(p + 10));
    unsigned size = o ? rd16(p + o + 2) : DNS_UDP_MIN;
    return size < DNS_UDP_MIN ? DNS_UDP_MIN : size; /* RFC 6891 6.2.5: below 512 means 512 */
}

size_t dns_upstream_query(const uint8_t *p, size_t n, const struct dns_question *q, uint8_t *out, size_t cap,
                          int *added)
{
    *added = 0;
    if (n < 12 || q->end > n || n > cap)
        return 0;
    memcpy(out, p, n);
    size_t o = find_opt(p, n, q->end, rd16(p + 10));
    if (o) {
        wr16(out + o + 2, DNS_MAX_MSG);
        return n;
    }
    if (rd16(p + 10) != 0 || q->end != n || n + 11 > cap)
        return n; /* other additional records (or trailing bytes): forwarded as they are */
    out[n] = 0;   /* root */
    wr16(out + n + 1, DNS_TYPE_OPT);
    wr16(out + n + 3, DNS_MAX_MSG);
    wr32(out + n + 5, 0); /* extended rcode, version 0, no DO bit */
    wr16(out + n + 9, 0);
    wr16(out + 10, 1);
    *added = 1;
    return n + 11;
}

/* Skips one resource record at *off; -1 when malformed. */
static int skip_rr(const uint8_t *m, size_t n, size_t *off, char *name, uint16_t *type)
{
    if (dns_read_name(m, n, off, name, 256) < 0 || *off + 10 > n)
        return -1;
    size_t rdlen = rd16(m + *off + 8);
    *type = rd16(m + *off);
    if (rdlen > n - *off - 10)
        return -1;
    *off += 10 + rdlen;
    return 0;
}

long dns_strip_opt(uint8_t *m, size_t n)
{
    if (n < 12 || rd16(m + 4) != 1)
        return -1;
    size_t off = 12;
    char name[256];
    if (dns_read_name(m, n, &off, name, sizeof(name)) < 0 || off + 4 > n)
        return -1;
    off += 4;
    unsigned before = (unsigned)rd16(m + 6) + rd16(m + 8), ar = rd16(m + 10);
    uint16_t type;
    for (unsigned i = 0; i < before; i++)
        if (skip_rr(m, n, &off, name, &type) < 0)
            return -1;
    for (unsigned i = 0; i < ar; i++) {
        size_t start = off;
        if (skip_rr(m, n, &off, name, &type) < 0)
            return -1;
        if (type == DNS_TYPE_OPT) {
            /* Nothing points into OPT (its name is the root): removing it moves no target. */
            memmove(m + start, m + off, n - off);
            wr16(m + 10, (uint16_t)(ar - 1));
            return (long)(n - (off - start));
        }
    }
    return (long)n;
}

long dns_truncate(const uint8_t *msg, size_t n, uint8_t *out, size_t cap)
{
    if (n < 12 || rd16(msg + 4) != 1 || !(rd16(msg + 2) & 0x8000))
        return -1;
    size_t off = 12;
    char name[256];
    /* The question's name comes first, so it cannot be compressed: its bytes copy as they are. */
    if (dns_read_name(msg, n, &off, name, sizeof(name)) < 0 || off + 4 > n || off + 4 > cap)
        return -1;
    off += 4;
    memcpy(out, msg, off);
    wr16(out + 2, (uint16_t)(rd16(msg + 2) | DNS_FLAG_TC));
    wr16(out + 6, 0);
    wr16(out + 8, 0);
    wr16(out + 10, 0);
    return (long)off;
}
