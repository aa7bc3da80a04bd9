/* Network attacks from the guest's eth0 (set up from cocoon.net= by the real agent's
 * net.c): raw frames through an AF_PACKET socket (thousands of UDP flows, SYN floods,
 * fragment floods) and DNS queries whose answers the test's upstream makes huge. Each
 * ends with an ordinary request, so the test sees whether the stack still serves. */
#include "hostile.h"
#include "net/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <linux/if_ether.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define GATEWAY 0x0a000202u /* 10.0.2.2, also the host alias */
#define RESOLVER 0x0a000203u

struct rawnet {
    int fd, ifindex;
    uint8_t me[6], gw[6];
    uint32_t ip; /* host byte order */
};

static int parse_mac(const char *text, uint8_t *mac)
{
    unsigned m[6];
    if (sscanf(text, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)m[i];
    return 0;
}

/* The gateway's MAC as the guest kernel learned it by ARP (an ordinary datagram to
 * it makes the kernel ask); broadcast if it did not answer. */
static void learn_gateway(struct rawnet *r)
{
    memset(r->gw, 0xff, 6);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(GATEWAY)};
    if (u >= 0) {
        sendto(u, "arp", 3, 0, (struct sockaddr *)&a, sizeof(a));
        close(u);
    }
    for (int tries = 0; tries < 40; tries++) {
        FILE *f = fopen("/proc/net/arp", "r");
        char line[256];
        while (f && fgets(line, sizeof(line), f)) {
            char ip[32], hw[32];
            unsigned flags;
            if (sscanf(line, "%31s %*s %x %31s", ip, &flags, hw) == 3 && !strcmp(ip, "10.0.2.2") && (flags & 2) &&
                parse_mac(hw, r->gw) == 0) {
                fclose(f);
                return;
            }
        }
        if (f)
            fclose(f);
        usleep(50 * 1000);
    }
}

static int raw_open(struct rawnet *r, char *why, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->ifindex = (int)if_nametoindex("eth0");
    if (!r->ifindex) {
        snprintf(why, cap, "no eth0 (create the box with --net public)");
        return -1;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, "eth0", IFNAMSIZ - 1);
    if (s < 0 || ioctl(s, SIOCGIFADDR, &ifr) != 0 || ioctl(s, SIOCGIFHWADDR, &ifr) != 0) {
        snprintf(why, cap, "eth0 has no address: %s", strerror(errno));
        if (s >= 0)
            close(s);
        return -1;
    }
    memcpy(r->me, ifr.ifr_hwaddr.sa_data, 6);
    ioctl(s, SIOCGIFADDR, &ifr);
    r->ip = ntohl(((struct sockaddr_in *)(void *)&ifr.ifr_addr)->sin_addr.s_addr);
    close(s);
    r->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (r->fd < 0) {
        snprintf(why, cap, "AF_PACKET: %s", strerror(errno));
        return -1;
    }
    learn_gateway(r);
    return 0;
}

static void raw_send(struct rawnet *r, const uint8_t *frame, size_t n)
{
    struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_ifindex = r->ifindex, .sll_halen = 6};
    memcpy(ll.sll_addr, r->gw, 6);
    for (int tries = 0; tries < 200; tries++) {
        if (sendto(r->fd, frame, n, 0, (struct sockaddr *)&ll, sizeof(ll)) >= 0)
            return;
        if (errno != ENOBUFS && errno != EAGAIN)
            return;
        usleep(500); /* the device queue is full: the host is reading as fast as it goes */
    }
}

/* Ethernet + IPv4 header for l4len bytes at f + 34; frag is the flags/offset field. */
static size_t ip_frame(struct rawnet *r, uint8_t *f, uint32_t dst, uint8_t proto, size_t l4len, uint16_t id,
                       uint16_t frag)
{
    memcpy(f, r->gw, 6);
    memcpy(f + 6, r->me, 6);
    wr16(f + 12, 0x0800);
    wire_ipv4_fragment(f + 14, r->ip, dst, proto, id, l4len, frag);
    return 34 + l4len;
}

static size_t udp_frame(struct rawnet *r, uint8_t *f, uint32_t dst, uint16_t sport, uint16_t dport, const void *data,
                        size_t n)
{
    memcpy(f + 34 + 8, data, n);
    wire_udp_header(f + 34, r->ip, dst, sport, dport, n);
    return ip_frame(r, f, dst, 17, 8 + n, (uint16_t)rnd(), 0);
}

static size_t syn_frame(struct rawnet *r, uint8_t *f, uint32_t dst, uint16_t sport, uint16_t dport)
{
    wire_tcp_header(f + 34, r->ip, dst, sport, dport, rnd(), 0, TCPF_SYN, 65535, 0, -1, 0);
    return ip_frame(r, f, dst, 6, 20, (uint16_t)rnd(), 0);
}

/* ---- ordinary requests after a flood ---- */

static size_t dns_query(uint8_t *q, uint16_t id, const char *name, int edns)
{
    size_t n = 12;
    memset(q, 0, 12);
    wr16(q, id);
    wr16(q + 2, 0x0100);
    wr16(q + 4, 1);
    wr16(q + 10, edns ? 1 : 0);
    for (const char *p = name; *p;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        q[n++] = (uint8_t)len;
        memcpy(q + n, p, len);
        n += len;
        p += len + (dot ? 1 : 0);
    }
    q[n++] = 0;
    wr16(q + n, 1);
    wr16(q + n + 2, 1);
    n += 4;
    if (edns) {
        q[n] = 0;
        wr16(q + n + 1, 41);
        wr16(q + n + 3, 4096);
        memset(q + n + 5, 0, 6);
        n += 11;
    }
    return n;
}

static int is_private(uint32_t a)
{
    return (a >> 24) == 10 || (a >> 24) == 127 || (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 || (a >> 16) == 0xa9fe ||
           (a >> 22) == (100u << 2 | 1) || a == 0;
}

/* "rcode=R tc=T an=N a=A private=P" of a DNS answer. */
static void dns_summary(const uint8_t *m, size_t n, char *out, size_t cap)
{
    if (n < 12) {
        snprintf(out, cap, "short answer (%zu bytes)", n);
        return;
    }
    unsigned flags = (unsigned)(m[2] << 8 | m[3]), an = (unsigned)(m[6] << 8 | m[7]);
    size_t off = 12;
    while (off < n && m[off] && !(m[off] & 0xc0))
        off += 1u + m[off];
    off += (off < n && (m[off] & 0xc0)) ? 2 : 1;
    off += 4;
    unsigned a = 0, priv = 0;
    for (unsigned i = 0; i < an && off < n; i++) {
        while (off < n && m[off] && !(m[off] & 0xc0))
            off += 1u + m[off];
        off += (off < n && (m[off] & 0xc0)) ? 2 : 1;
        if (off + 10 > n)
            break;
        unsigned type = (unsigned)(m[off] << 8 | m[off + 1]), rdlen = (unsigned)(m[off + 8] << 8 | m[off + 9]);
        off += 10;
        if (off + rdlen > n)
            break;
        if (type == 1 && rdlen == 4) {
            a++;
            priv += (unsigned)is_private((uint32_t)m[off] << 24 | (uint32_t)m[off + 1] << 16 |
                                         (uint32_t)m[off + 2] << 8 | m[off + 3]);
        }
        off += rdlen;
    }
    snprintf(out, cap, "rcode=%u tc=%u an=%u a=%u private=%u", flags & 0xf, (flags >> 9) & 1, an, a, priv);
}

static int wait_fd(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

static void dns_udp(struct hstream *s, const char *name)
{
    uint8_t q[512], a[65536];
    size_t n = dns_query(q, 0x4242, name, 1);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(53), .sin_addr.s_addr = htonl(RESOLVER)};
    char sum[128] = "no answer in 10 s";
    if (u >= 0 && sendto(u, q, n, 0, (struct sockaddr *)&to, sizeof(to)) >= 0 && wait_fd(u, 10000)) {
        ssize_t k = recv(u, a, sizeof(a), 0);
        dns_summary(a, k > 0 ? (size_t)k : 0, sum, sizeof(sum));
    }
    if (u >= 0)
        close(u);
    stream_printf(s, "dns-udp %s %s\n", name, sum);
}

static int read_full(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        if (!wait_fd(fd, 10000))
            return -1;
        ssize_t k = read(fd, p, n);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int tcp_connect(uint32_t ip, uint16_t port)
{
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(ip)};
    struct timeval tv = {.tv_sec = 10};
    if (t >= 0)
        setsockopt(t, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (t >= 0 && connect(t, (struct sockaddr *)&to, sizeof(to)) == 0)
        return t;
    if (t >= 0)
        close(t);
    return -1;
}

static void dns_tcp(struct hstream *s, const char *name)
{
    static uint8_t q[514], a[65536];
    size_t n = dns_query(q + 2, 0x4343, name, 0);
    wr16(q, (uint16_t)n);
    char sum[128] = "no answer in 10 s";
    int t = tcp_connect(RESOLVER, 53);
    uint8_t len[2];
    if (t < 0) {
        snprintf(sum, sizeof(sum), "connect: %s", strerror(errno));
    } else if (write(t, q, n + 2) == (ssize_t)(n + 2) && read_full(t, len, 2) == 0) {
        size_t want = (size_t)(len[0] << 8 | len[1]);
        if (read_full(t, a, want) == 0)
            dns_summary(a, want, sum, sizeof(sum));
    }
    if (t >= 0)
        close(t);
    stream_printf(s, "dns-tcp %s %s\n", name, sum);
}

/* The stack still answers: host.cocoon.internal is answered by cocoon itself. */
static void after_dns(struct hstream *s) { dns_udp(s, "host.cocoon.internal"); }

static void after_tcp(struct hstream *s, uint16_t port)
{
    int t = tcp_connect(GATEWAY, port);
    char buf[64] = "";
    if (t >= 0 && write(t, "HTTP\n", 5) == 5 && wait_fd(t, 10000)) {
        ssize_t k = read(t, buf, sizeof(buf) - 1);
        buf[k > 0 ? k : 0] = 0;
        buf[strcspn(buf, "\r\n")] = 0;
    }
    stream_printf(s, "after-tcp %s\n", buf[0] ? buf : strerror(errno));
    if (t >= 0)
        close(t);
}

static void after_udp_big(struct hstream *s, uint16_t port, size_t size)
{
    static uint8_t buf[65536], back[65536];
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(i * 7);
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int dont = IP_PMTUDISC_DONT;
    setsockopt(u, IPPROTO_IP, IP_MTU_DISCOVER, &dont, sizeof(dont));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(GATEWAY)};
    const char *res = "no echo in 10 s";
    if (sendto(u, buf, size, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
        res = strerror(errno);
    else if (wait_fd(u, 10000))
        res = recv(u, back, sizeof(back), 0) == (ssize_t)size && !memcmp(buf, back, size) ? "ok" : "mismatch";
    close(u);
    stream_printf(s, "after-udp %zu bytes %s\n", size, res);
}

/* ---- floods ---- */

static int open_or_report(struct hstream *s, struct rawnet *r)
{
    char why[128];
    if (raw_open(r, why, sizeof(why)) == 0)
        return 0;
    stream_printf(s, "cannot attack: %s\n", why);
    return -1;
}

static unsigned long num(int argc, char **args, int i, unsigned long def)
{
    return i < argc ? strtoul(args[i], NULL, 0) : def;
}

/* udp-flows N PORT: N flows to the allowed host port (distinct source ports) and N
 * datagrams to denied private addresses (one net.log line each). */
static int attack_udp_flows(struct hstream *s, int argc, char **args)
{
    unsigned long n = num(argc, args, 1, 10000);
    uint16_t port = (uint16_t)num(argc, args, 2, 9);
    struct rawnet r;
    uint8_t f[1600];
    char msg[32];
    if (open_or_report(s, &r) < 0)
        return 1;
    for (unsigned long i = 0; i < n; i++) {
        int k = snprintf(msg, sizeof(msg), "flow %lu", i);
        raw_send(&r, f, udp_frame(&r, f, GATEWAY, (uint16_t)(1024 + i % 64000), port, msg, (size_t)k));
        raw_send(
            &r, f,
            udp_frame(&r, f, 0x0a090000u | (uint32_t)(i & 0xffff), (uint16_t)(1024 + i % 64000), port, msg, (size_t)k));
        if (i % 256 == 0)
            chan_pump(0);
    }
    close(r.fd);
    stream_printf(s, "sent %lu\n", n);
    after_dns(s);
    return 0;
}

/* syn-flood N PORT: SYNs from random ports to the allowed host port, and to a denied
 * address; the guest kernel answers the stack's SYN-ACKs with RSTs, as for a spoofer. */
static int attack_syn_flood(struct hstream *s, int argc, char **args)
{
    unsigned long n = num(argc, args, 1, 20000);
    uint16_t port = (uint16_t)num(argc, args, 2, 9);
    struct rawnet r;
    uint8_t f[128];
    if (open_or_report(s, &r) < 0)
        return 1;
    for (unsigned long i = 0; i < n; i++) {
        uint16_t sport = (uint16_t)(1024 + rnd() % 60000);
        if (i % 4 == 3)
            raw_send(&r, f, syn_frame(&r, f, 0xa9fea9feu, sport, 80)); /* 169.254.169.254 */
        else
            raw_send(&r, f, syn_frame(&r, f, GATEWAY, sport, port));
        if (i % 256 == 0)
            chan_pump(0);
    }
    close(r.fd);
    stream_printf(s, "sent %lu\n", n);
    sleep(1);
    after_tcp(s, port);
    return 0;
}

/* frag-flood N PORT: first fragments never completed, overlapping pairs, fragments
 * past 64 KiB and tiny middle pieces, all toward the allowed host port. */
static int attack_frag_flood(struct hstream *s, int argc, char **args)
{
    unsigned long n = num(argc, args, 1, 20000);
    uint16_t port = (uint16_t)num(argc, args, 2, 9);
    struct rawnet r;
    static uint8_t f[1600], body[1480];
    if (open_or_report(s, &r) < 0)
        return 1;
    memset(body, 'F', sizeof(body));
    wr16(body, 4444);
    wr16(body + 2, port);
    wr16(body + 4, 9000);
    for (unsigned long i = 0; i < n; i++) {
        uint16_t id = (uint16_t)(i * 7919);
        memcpy(f + 34, body, 1000);
        switch (i % 4) {
        case 0: raw_send(&r, f, ip_frame(&r, f, GATEWAY, 17, 1000, id, 0x2000)); break; /* MF, never finished */
        case 1:
            raw_send(&r, f, ip_frame(&r, f, GATEWAY, 17, 1000, id, 0x2000));
            memcpy(f + 34, body, 1000);
            raw_send(&r, f, ip_frame(&r, f, GATEWAY, 17, 1000, id, 0x2000 | 62)); /* overlaps the first */
            break;
        case 2: raw_send(&r, f, ip_frame(&r, f, GATEWAY, 17, 1000, id, 8100)); break; /* ends past 65535 */
        default: raw_send(&r, f, ip_frame(&r, f, GATEWAY, 17, 8, id, (uint16_t)(0x2000 | (1 + rnd() % 8000)))); break;
        }
        if (i % 256 == 0)
            chan_pump(0);
    }
    close(r.fd);
    stream_printf(s, "sent %lu\n", n);
    after_udp_big(s, port, 3000);
    return 0;
}

/* dns NAME: one query over UDP (EDNS0, 4096) and one over TCP to the box resolver. */
static int attack_dns(struct hstream *s, int argc, char **args)
{
    const char *name = argc > 1 ? args[1] : "many.example";
    dns_udp(s, name);
    dns_tcp(s, name);
    return 0;
}

const struct attack net_attacks[] = {{"udp-flows", attack_udp_flows},
                                     {"syn-flood", attack_syn_flood},
                                     {"frag-flood", attack_frag_flood},
                                     {"dns", attack_dns},
                                     {NULL, NULL}};
