/* Fuzz target: the HTTP/1.1 request filter of intercepted TLS (src/net/http_req.c), a
 * stream the guest writes. The input (first byte: how to cut it into reads, second:
 * the room of the output) is fed in pieces with two secrets and a header rule in
 * scope. Whatever passes must be bounded by the room given; the placeholder of the
 * secret whose host this is never passes; a refusal is fine; a crash, an overrun or a
 * sanitizer report is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct net_config cfg;
static struct http_filter f;
static uint8_t out[70000];

static void setup(void)
{
    memset(&cfg, 0, sizeof(cfg));
    char err[256];
    net_secret_add(&cfg, "KEY", "api.example.com", "cocoon-secret-KEY-00112233445566778899aabbccddeeff", err,
                   sizeof(err));
    net_secret_add(&cfg, "OTHER", "other.example.com", "cocoon-secret-OTHER-00112233445566778899aabbccddeeff", err,
                   sizeof(err));
    net_header_rule_add(&cfg, "api.example.com:X-Api-Key={{KEY}}", err, sizeof(err));
}

/* KEY may go in the query and the body when the second byte's low bit says so. */
static void set_in(int all) { cfg.secrets[0].in = all ? NET_SECRET_IN_QUERY | NET_SECRET_IN_BODY : 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (!cfg.nsecrets)
        setup();
    static const char *const values[] = {"sk-real-value", "other-value"};
    struct http_scope sc = {.sni = "api.example.com", .pinned = data[0] & 1, .cfg = &cfg, .values = values};
    size_t step = 1 + (data[0] >> 1) * 37, room = 1 + (size_t)data[1] * 64;
    int scan_only = data[1] == 0xfe; /* a host that is no secret's: scanned only */
    set_in(data[1] & 1);
    data += 2;
    size -= 2;
    http_filter_init(&f, scan_only);
    size_t off = 0, outlen = 0;
    int stuck = 0;
    while (off < size && stuck < 3) {
        size_t n = size - off < step ? size - off : step, used = 0;
        if (outlen + room > sizeof(out))
            outlen = 0; /* "sent" */
        size_t before = outlen;
        if (http_filter_run(&f, &sc, data + off, n, &used, out, outlen + room, &outlen) < 0)
            break;
        if (used > n || outlen > before + room)
            abort();
        if (memmem(out + before, outlen - before, "cocoon-secret-OTHER-00112233445566778899aabbccddeeff", 52))
            abort(); /* another host's placeholder never passes */
        stuck = used || outlen > before ? 0 : stuck + 1;
        off += used;
    }
    http_filter_free(&f);
    return 0;
}
