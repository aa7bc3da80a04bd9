/* ustar header checksums (proto/ustar.h). */
#include "proto/ustar.h"

#include <stdio.h>
#include <string.h>

void ustar_sums(const uint8_t h[USTAR_BLOCK], unsigned *unsigned_sum, int *signed_sum)
{
    unsigned u = 0;
    int s = 0;
    for (size_t i = 0; i < USTAR_BLOCK; i++) {
        uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];
        u += c;
        s += (signed char)c;
    }
    *unsigned_sum = u;
    *signed_sum = s;
}

void ustar_seal(uint8_t h[USTAR_BLOCK], char type, const char *link)
{
    h[156] = (uint8_t)type;
    if (link)
        strncpy((char *)h + 157, link, 100);
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    unsigned sum;
    int signed_sum;
    ustar_sums(h, &sum, &signed_sum);
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}
