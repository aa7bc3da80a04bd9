/* The ustar header block of the tar streams that FILE_PUT and FILE_GET carry
 * (docs/protocol.md "Files"): its checksum, the one piece of a header every writer and
 * reader of those streams computes the same way. */
#ifndef COCOON_PROTO_USTAR_H
#define COCOON_PROTO_USTAR_H

#include <stdint.h>

#define USTAR_BLOCK 512

/* The sums of a header's bytes with its checksum field (148..155) counted as spaces:
 * unsigned, and signed (what some old tar writers stored). */
void ustar_sums(const uint8_t h[USTAR_BLOCK], unsigned *unsigned_sum, int *signed_sum);
/* Completes a header whose name, mode, ids, size and mtime are written: the type, the
 * link name (NULL: none; cut at 100 bytes as the format stores it), the "ustar" magic
 * and version "00", then the checksum. */
void ustar_seal(uint8_t h[USTAR_BLOCK], char type, const char *link);

#endif
