/* Fuzz target: the network stack's frame input path. The input is a sequence of
 * frames, each prefixed by a 2-byte big-endian length, fed to one long-lived stack
 * whose policy denies every outside address (so nothing leaves this machine but
 * DNS forwarding to a loopback discard port). Each input starts with no TCP
 * connection and the same initial sequence number (FUZZ_ISS_SEED), so that an input
 * can complete a handshake and reach what follows it: the DNS proxy's framing of
 * DNS over TCP (make_net_corpus.py computes that number). The whole input is also
 * handed to the DNS query/response parsers (with the EDNS0 size and TC reply; a
 * filtered answer must parse again and keep nothing the filter removes) and the TLS
 * SNI parser.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"
#include "net/internal.h"
#include "net/net.h"
#include "net/sni.h"
#include "net/tcp.h"

/* The stack's generator state at the start of each input: its first initial
 * sequence number is xorshift64(FUZZ_ISS_SEED) >> 16 (net_random). */
#define FUZZ_ISS_SEED 0x9e3779b97f4a7c15ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int discard(void *user, const uint8_t *frame, size_t len)
{
    (void)user;
    (void)frame;
    return len > 0 ? 0 : -1;
}

static struct net_stack *stack;
static struct policy pol;

static void init(void)
{
    static struct net_config cfg;
    char err[256];
    net_config_defaults(&cfg);
    net_rule_parse("0.0.0.0/0", 0, &cfg.rules[cfg.nrules++], err, sizeof(err));
    net_rule_parse("bad.example", 0, &cfg.rules[cfg.nrules++], err, sizeof(err));
    cfg.nupstreams = 1;
    cfg.upstreams[0].ip = 0x7f000001;
    cfg.upstreams[0].port = 9;
    stack = net_stack_new(&cfg, discard, NULL, err, sizeof(err));
    if (!stack)
        abort();
    policy_init(&pol, &cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!stack)
        init();
    stack->rng = FUZZ_ISS_SEED;
    size_t off = 0;
    while (off + 2 <= size) {
        size_t len = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (len > size - off)
            len = size - off;
        uint8_t *frame = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        memcpy(frame, data + off, len);
        net_stack_input_frame(stack, frame, len);
        free(frame);
        off += len;
    }
    net_stack_flush(stack);
    net_stack_tick(stack);
    tcp_free_all(stack); /* the next input starts without connections */
    net_stack_tick(stack);

    struct dns_question q;
    uint8_t out[DNS_MAX_MSG];
    char name[256];
    int stripped;
    if (dns_parse_query(data, size, &q) == 0) {
        unsigned udp = dns_query_udp_size(data, size, &q);
        if (udp < DNS_UDP_MIN)
            abort();
        dns_build_error(data, &q, DNS_RCODE_REFUSED, out, sizeof(out));
        dns_build_local(data, &q, 0x0a000202, out, sizeof(out));
    }
    /* As an answer to its own question, so that the filter reads its records. */
    memset(&q, 0, sizeof(q));
    size_t qend = 12;
    if (size >= 12 && dns_read_name(data, size, &qend, q.name, sizeof(q.name)) == 0 && qend + 4 <= size) {
        q.id = (uint16_t)(data[0] << 8 | data[1]);
        q.qtype = (uint16_t)(data[qend] << 8 | data[qend + 1]);
        q.qclass = (uint16_t)(data[qend + 2] << 8 | data[qend + 3]);
    }
    static uint8_t filtered[DNS_MAX_WIRE], again[DNS_MAX_WIRE];
    long f = dns_filter_response(data, size, &q, &pol, 0, filtered, sizeof(filtered), &stripped);
    if (f > 0 &&
        (dns_filter_response(filtered, (size_t)f, &q, &pol, 0, again, sizeof(again), &stripped) < 0 || stripped))
        abort(); /* what the filter lets through parses, and holds nothing it would remove */
    long t = dns_truncate(data, size, out, sizeof(out));
    if (t > 0 && ((size_t)t > size || !(out[2] & 0x02) || out[7] || out[9] || out[11]))
        abort(); /* a TC reply: never longer than the message, TC set, no records */
    sni_parse(data, size, name, sizeof(name));
    return 0;
}
