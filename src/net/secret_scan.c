/* Finding a box's secret placeholders where they may not go: in the bytes of plain
 * TCP and UDP, and in DNS names (where the random part is looked for with the dots
 * taken out and any case, so a placeholder cut into labels is found too). What no
 * scan can see (a placeholder re-encoded by the guest) is docs/security.md's. */
#include <ctype.h>
#include <string.h>

#include "net/secret_scan.h"

int secret_scan(const struct net_config *c, const uint8_t *p, size_t n)
{
    for (int i = 0; i < c->nsecrets; i++) {
        const char *ph = c->secrets[i].placeholder;
        if (ph[0] && memmem(p, n, ph, strlen(ph)))
            return i;
    }
    return -1;
}

int secret_scan_stream(const struct net_config *c, uint8_t *carry, size_t *carry_len, const uint8_t *p, size_t n)
{
    uint8_t buf[SECRET_CARRY + 4096];
    while (n) {
        size_t take = n < 4096 ? n : 4096;
        memcpy(buf, carry, *carry_len);
        memcpy(buf + *carry_len, p, take);
        size_t all = *carry_len + take;
        int k = secret_scan(c, buf, all);
        if (k >= 0)
            return k;
        size_t keep = all < SECRET_CARRY ? all : SECRET_CARRY;
        memmove(carry, buf + all - keep, keep);
        *carry_len = keep;
        p += take;
        n -= take;
    }
    return -1;
}

int secret_scan_name(const struct net_config *c, const char *name)
{
    char flat[256];
    size_t n = 0;
    for (; *name && n < sizeof(flat) - 1; name++)
        if (*name != '.')
            flat[n++] = (char)tolower((unsigned char)*name);
    flat[n] = 0;
    for (int i = 0; i < c->nsecrets; i++) {
        const char *ph = c->secrets[i].placeholder, *dash = strrchr(ph, '-');
        if (dash && strlen(dash + 1) >= 16 && strstr(flat, dash + 1))
            return i;
    }
    return -1;
}
