/* Placeholders of the box's secrets found where they may not go (secret_scan.c). */
#ifndef COCOON_NET_SECRET_SCAN_H
#define COCOON_NET_SECRET_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define SECRET_CARRY NET_SECRET_PLACEHOLDER /* a stream's last bytes kept: a placeholder split across reads */

/* The first secret whose placeholder is in p[0..n), or -1. */
int secret_scan(const struct net_config *c, const uint8_t *p, size_t n);
/* The same over a stream: carry (SECRET_CARRY bytes, *carry_len used) holds the end
 * of what was scanned before. */
int secret_scan_stream(const struct net_config *c, uint8_t *carry, size_t *carry_len, const uint8_t *p, size_t n);
/* A DNS name holding a placeholder's random part (dots removed, any case), or -1. */
int secret_scan_name(const struct net_config *c, const char *name);

#endif
