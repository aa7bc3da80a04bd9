/* Fuzz target: the network stack's frame input path. The input is a sequence of
 * frames, each prefixed by a 2-byte big-endian length, fed to one long-lived stack
 * whose policy denies every outside address (so nothing leaves this machine but
 * DNS forwarding to a loopback discard port). The whole input is also handed to
 * the DNS query/response parsers (with the EDNS0 size and TC reply) and the TLS SNI
 * parser.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"
#include "net/net.h"
#include "net/sni.h"

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
    memset(&q, 0, sizeof(q));
    if (size >= 2)
        q.id = (uint16_t)(data[0] << 8 | data[1]);
    dns_filter_response(data, size, &q, &pol, 0, out, sizeof(out), &stripped);
    long t = dns_truncate(data, size, out, sizeof(out));
    if (t > 0 && ((size_t)t > size || !(out[2] & 0x02) || out[7] || out[9] || out[11]))
        abort(); /* a TC reply: never longer than the message, TC set, no records */
    sni_parse(data, size, name, sizeof(name));
    return 0;
}
