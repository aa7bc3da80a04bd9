/* ClientHello SNI extraction. Only a ClientHello within one TLS record is accepted
 * (what every mainstream client sends); anything else is "no name", which a domain
 * rule on port 443 treats as a denial. */
#include "net/sni.h"

#include <ctype.h>
#include <string.h>

#include "net/wire.h"

int sni_parse(const uint8_t *p, size_t n, char *out, size_t cap)
{
    if (n < 5)
        return n == 0 || p[0] == 0x16 ? 0 : -1;
    if (p[0] != 0x16 || p[1] != 3)
        return -1;
    size_t rec = rd16(p + 3);
    if (rec < 4 || rec > 16384 + 2048)
        return -1;
    if (n < 5 + rec)
        return 0;
    const uint8_t *h = p + 5;
    if (h[0] != 1)
        return -1;
    size_t hl = (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    if (hl + 4 > rec)
        return -1; /* spans records */
    const uint8_t *b = h + 4, *end = b + hl;
    if (end - b < 34)
        return -1;
    b += 34;
    if (end - b < 1 || end - b < 1 + b[0])
        return -1;
    b += 1 + b[0];
    if (end - b < 2 || end - b < 2 + rd16(b))
        return -1;
    b += 2 + rd16(b);
    if (end - b < 1 || end - b < 1 + b[0])
        return -1;
    b += 1 + b[0];
    if (end - b < 2)
        return -1;
    size_t el = rd16(b);
    b += 2;
    if ((size_t)(end - b) < el)
        return -1;
    end = b + el;
    while (end - b >= 4) {
        uint16_t type = rd16(b), len = rd16(b + 2);
        b += 4;
        if (end - b < len)
            return -1;
        if (type == 0) {
            const uint8_t *s = b, *se = b + len;
            if (se - s < 2)
                return -1;
            s += 2;
            while (se - s >= 3) {
                uint8_t nt = s[0];
                uint16_t nl = rd16(s + 1);
                s += 3;
                if (se - s < nl)
                    return -1;
                if (nt == 0) {
                    if (nl == 0 || nl >= cap)
                        return -1;
                    for (size_t i = 0; i < nl; i++) {
                        if (s[i] <= 0x20 || s[i] >= 0x7f)
                            return -1;
                        out[i] = (char)tolower(s[i]);
                    }
                    out[nl] = 0;
                    if (out[nl - 1] == '.')
                        out[nl - 1] = 0;
                    return 1;
                }
                s += nl;
            }
            return -1;
        }
        b += len;
    }
    return -1;
}
