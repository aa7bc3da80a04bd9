/* Base64 (RFC 4648, with padding) for credentials, WebSocket handshakes and the binary
 * payloads of the HTTP API. Decoding is strict about the alphabet and the padding. */
#include <stdint.h>
#include <string.h>

#include "util/util.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int util_base64_encode(const void *in, size_t len, char *out, size_t cap)
{
    const uint8_t *p = in;
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3 || (len + 2) / 3 * 4 + 1 > cap)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? B64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? B64[v & 63] : '=';
    }
    out[o] = 0;
    return (int)(o > INT32_MAX ? INT32_MAX : o);
}

int util_base64_decode(const char *in, size_t inlen, void *outp, size_t cap, size_t *outlen)
{
    uint8_t *out = outp;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    size_t o = 0;
    for (size_t i = 0; i < inlen; i++) {
        char c = in[i];
        if (c == '=') {
            pad++;
            continue;
        }
        const char *k = c ? strchr(B64, c) : NULL;
        if (pad || !k)
            return -1;
        acc = acc << 6 | (uint32_t)(k - B64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap)
                return -1;
            out[o++] = (uint8_t)((acc >> bits) & 0xff);
        }
    }
    if (pad > 2 || (pad && (inlen % 4) != 0))
        return -1;
    if (cap)
        out[o] = 0;
    if (outlen)
        *outlen = o;
    return 0;
}
