/* The server name of a TLS ClientHello (RFC 8446 4.1.2, RFC 6066 3), read from the
 * first bytes a guest sends on port 443 before the host connection is made. */
#ifndef COCOON_NET_SNI_H
#define COCOON_NET_SNI_H

#include <stddef.h>
#include <stdint.h>

/* 1: found, name in out (lowercase); 0: need more bytes; -1: not a ClientHello with
 * a host name. */
int sni_parse(const uint8_t *p, size_t n, char *out, size_t cap);

#endif
