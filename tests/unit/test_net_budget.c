/* The network stack's bounds against a guest that opens everything it can: 10000 TCP
 * connection attempts (to a host port and as DNS over TCP), 10000 UDP flows and 10000
 * DNS queries keep the bytes the stack allocates within its memory budget and the
 * descriptors it holds within what RLIMIT_NOFILE leaves after the process's reserve;
 * connections that would grow past the budget are refused with a RST, noted once in
 * net.log. Bytes are counted by the allocator (ASan's or glibc's), not taken from the
 * stack's own bookkeeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes(void); /* sanitizer/allocator_interface.h */
#endif

#include "net_echo.h"

#define DNS_IP 0x0a000203u
#define ATTEMPTS 10000
#define HEAP_SLACK (512u * 1024) /* the test's own allocations (harness, cmocka) */

static size_t heap_bytes(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory itself */
}

/* Sends a SYN from sport and completes the handshake: 1 when established (*their is
 * the stack's ISS + 1), 0 when the stack answered with a RST, -1 when with nothing. */
static int open_conn(struct harness *h, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t *their)
{
    uint8_t f[2048];
    struct pkt_ip ip;
    struct pkt_tcp t;
    h_send_tcp(h, dst, sport, dport, 1000, 0, TCPF_SYN, 65535, NULL, 0, 1);
    for (int i = 0; i < 200; i++) {
        size_t n;
        while ((n = h_pop(h, f, sizeof(f))) > 0) {
            if (h_parse_tcp(f, n, &ip, &t) < 0 || t.dport != sport)
                continue;
            if (t.flags & TCPF_RST)
                return 0;
            if ((t.flags & (TCPF_SYN | TCPF_ACK)) == (TCPF_SYN | TCPF_ACK)) {
                *their = t.seq + 1;
                h_send_tcp(h, dst, sport, dport, 1001, *their, TCPF_ACK, 65535, NULL, 0, 0);
                return 1;
            }
        }
        h_pump(h, 2);
    }
    return -1;
}

/* segs segments of 1400 bytes from seq 1001 in one batch (the stack takes what its
 * window allows). */
static void push(struct harness *h, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t their, int segs,
                 const uint8_t *first, size_t first_len)
{
    static uint8_t data[1400];
    memset(data, 'd', sizeof(data));
    uint32_t seq = 1001;
    if (first_len) {
        h_input_tcp(h, dst, sport, dport, seq, their, TCPF_ACK, 65535, first, first_len, 0);
        seq += (uint32_t)first_len;
    }
    for (int i = 0; i < segs; i++, seq += sizeof(data))
        h_input_tcp(h, dst, sport, dport, seq, their, TCPF_ACK, 65535, data, sizeof(data), 0);
    net_stack_flush(h->s);
}

static int log_mentions(int fd, const char *what)
{
    static char buf[1 << 16];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    int count = 0;
    buf[n > 0 ? n : 0] = 0;
    for (const char *p = buf; (p = strstr(p, what)); p++)
        count++;
    return count;
}

/* Default caps and budget, under a soft RLIMIT_NOFILE of 600: everything the guest
 * can open at once stays within the budget and leaves the process its reserve. */
static void test_flood_within_budget_and_descriptors(void **state)
{
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    if (old.rlim_max < 600) {
        skip(); /* skipped: the hard RLIMIT_NOFILE is below 600 */
        return;
    }
    struct harness h;
    h_init_cfg(&h);
    uint16_t sink_port, udp_port;
    int sink = socket(AF_INET, SOCK_STREAM, 0); /* completes connections, never accepts them */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(sink, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(sink, 4096), 0);
    getsockname(sink, (struct sockaddr *)&sa, &sl);
    sink_port = ntohs(sa.sin_port);
    int usock = listen_any(SOCK_DGRAM, &udp_port);
    allow_host(&h, sink_port);
    char err[64], rule[32];
    snprintf(rule, sizeof(rule), "host:%u/udp", udp_port);
    assert_int_equal(net_rule_parse(rule, 1, &h.cfg.rules[h.cfg.nrules++], err, sizeof(err)), 0);

    low = old;
    low.rlim_cur = 600;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    size_t heap0 = heap_bytes(), heap_max = 0;
    int fds0 = open_fds(), fds_max = 0;
    h_start(&h);
    assert_non_null(h.s);
    int established = 0, refused = 0;
    uint8_t q[64], prefix[2] = {0x0f, 0xa0}; /* a 4000-byte DNS query, never completed */
    for (int i = 0; i < ATTEMPTS; i++) {
        uint16_t sport = (uint16_t)(1024 + i);
        int dns = i % 2;
        uint32_t their;
        int r = open_conn(&h, dns ? DNS_IP : GW, sport, dns ? 53 : sink_port, &their);
        if (r == 1) {
            established++;
            push(&h, dns ? DNS_IP : GW, sport, dns ? 53 : sink_port, their, 2, dns ? prefix : NULL, dns ? 2 : 0);
        } else if (r == 0) {
            refused++;
        }
        h_send_udp(&h, GW, sport, udp_port, "x", 1);
        h_send_udp(&h, DNS_IP, sport, 53, q, h_dns_query(q, (uint16_t)i, "example.com", 0));
        net_stack_flush(h.s);
        if (i % 100 == 99) {
            h_clear(&h);
            size_t heap = heap_bytes() - heap0;
            int fds = open_fds() - fds0;
            heap_max = heap > heap_max ? heap : heap_max;
            fds_max = fds > fds_max ? fds : fds_max;
        }
    }
    assert_true(established > 0);
    assert_true(refused > 0);
    assert_true(h.s->nflows > 0 && h.s->ndns > 0);
    print_message("%d established, %d refused; %d flows, %d queries; heap %zu bytes (budget %llu), %d fds\n",
                  established, refused, h.s->nflows, h.s->ndns, heap_max, (unsigned long long)h.cfg.mem_budget,
                  fds_max);
    assert_true(heap_max <= h.cfg.mem_budget + HEAP_SLACK);
    assert_true(fds_max <= 600 - h.cfg.fd_reserve);
    assert_true(h.s->mem_peak <= h.cfg.mem_budget);
    h_stop(&h);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    close(sink);
    close(usock);
}

/* A small budget (8 MiB) and a guest that makes every connection's rings grow: it
 * sends 64 KiB and never acknowledges the echo. Rings stop growing, then connections
 * are refused, and the stack never holds more than the budget. */
static void test_ring_growth_within_budget(void **state)
{
    struct harness h;
    h_init_cfg(&h);
    allow_host(&h, echo_port);
    h.cfg.mem_budget = 8u << 20;
    int log = memfd_create("net.log", MFD_CLOEXEC);
    assert_true(log >= 0);
    h.cfg.log_fd = log;
    size_t heap0 = heap_bytes(), heap_max = 0;
    h_start(&h);
    assert_non_null(h.s);
    int established = 0, refused = 0;
    for (int i = 0; i < 100; i++) {
        uint16_t sport = (uint16_t)(45000 + i);
        uint32_t their;
        int r = open_conn(&h, GW, sport, echo_port, &their);
        if (r == 1) {
            established++;
            push(&h, GW, sport, echo_port, their, 47, NULL, 0);
        } else if (r == 0) {
            refused++;
        }
        for (int k = 0; k < 10; k++) {
            h_pump(&h, 2);
            h_clear(&h); /* the guest reads nothing and acknowledges nothing */
        }
        size_t heap = heap_bytes() - heap0;
        heap_max = heap > heap_max ? heap : heap_max;
    }
    size_t grown = 0;
    for (struct tcp_conn *c = h.s->tcp_list; c; c = c->next)
        if (c->to_guest.cap > 16384 || c->to_host.cap > 16384)
            grown++;
    print_message("%d established (%zu with grown rings), %d refused; heap %zu bytes\n", established, grown, refused,
                  heap_max);
    assert_true(grown > 0);
    assert_true(refused > 0);
    assert_true(heap_max <= h.cfg.mem_budget + HEAP_SLACK);
    assert_true(h.s->mem_peak <= h.cfg.mem_budget);
    assert_int_equal(log_mentions(log, "memory budget"), 1);
    h_stop(&h);
    close(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_within_budget_and_descriptors),
        cmocka_unit_test(test_ring_growth_within_budget),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
