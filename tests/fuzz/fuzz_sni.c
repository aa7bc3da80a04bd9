/* Fuzz target: the ClientHello server-name reader (src/net/sni.c), which reads the first
 * bytes a guest sends on port 443 before any host connection exists. Every prefix of
 * the input is read as the stack reads a stream that is still arriving: a name found
 * must be NUL-terminated inside the buffer, lowercase and printable, and once a prefix
 * is refused (or a name found) no longer prefix may say "need more bytes". */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/sni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *name, size_t cap)
{
    size_t n = strnlen(name, cap);
    if (n == cap)
        abort(); /* not terminated inside the buffer */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f || (name[i] >= 'A' && name[i] <= 'Z'))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 20000)
        return 0;
    /* a copy of exactly the given length: reading past it is a heap overflow ASan sees */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    int settled = 0, first = 0;
    char name[256];
    for (size_t n = 0; n <= size; n++) {
        memset(name, 'x', sizeof(name));
        int rc = sni_parse(buf, n, name, sizeof(name));
        if (rc < -1 || rc > 1)
            abort();
        if (rc == 1)
            check_name(name, sizeof(name));
        if (settled && rc == 0)
            abort(); /* it asked for more after it had decided */
        if (!settled && rc != 0) {
            settled = 1;
            first = rc;
        } else if (settled && rc != first) {
            abort(); /* more bytes after a full record changed the answer */
        }
        if (n > 64 && settled)
            break; /* the answer is fixed once decided; no need to walk every longer prefix */
    }
    /* a small buffer for the name never overflows */
    char small[8];
    if (sni_parse(buf, size, small, sizeof(small)) == 1)
        check_name(small, sizeof(small));
    free(buf);
    return 0;
}
