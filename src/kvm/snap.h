/* The kvm backend's saved-state stream: little-endian fields grouped in tagged,
 * length-prefixed sections, written into a growable buffer and read back through a
 * bounded reader. A saved state is outside input (a file, maybe imported): every read
 * is checked against the end, and a short or malformed stream is an error, never a
 * read past the buffer. */
#ifndef COCOON_KVM_SNAP_H
#define COCOON_KVM_SNAP_H

#include <stddef.h>
#include <stdint.h>

#define SNAP_MAX_BYTES (16u << 20) /* a whole state stream, RAM excluded */

struct snap_w {
    uint8_t *buf;
    size_t len, cap;
    int oom; /* an allocation failed or SNAP_MAX_BYTES was passed: the stream is void */
};

void snap_w__init(struct snap_w *w);
void snap_w__free(struct snap_w *w);
void snap_w__u8(struct snap_w *w, uint8_t v);
void snap_w__u16(struct snap_w *w, uint16_t v);
void snap_w__u32(struct snap_w *w, uint32_t v);
void snap_w__u64(struct snap_w *w, uint64_t v);
void snap_w__bytes(struct snap_w *w, const void *p, size_t len);
/* A section: [u32 tag][u32 length][body]. begin returns a mark for end, which fills in
 * the length. Sections nest. */
size_t snap_w__begin(struct snap_w *w, uint32_t tag);
void snap_w__end(struct snap_w *w, size_t mark);

struct snap_r {
    const uint8_t *p;
    size_t len, off;
    int bad; /* a read went past the end, or a value was refused: see why */
    char why[160];
};

void snap_r__init(struct snap_r *r, const void *p, size_t len);
/* Reads return 0 (and set bad) past the end. */
uint8_t snap_r__u8(struct snap_r *r);
uint16_t snap_r__u16(struct snap_r *r);
uint32_t snap_r__u32(struct snap_r *r);
uint64_t snap_r__u64(struct snap_r *r);
/* Copies len bytes; -1 (bad set) when fewer remain. */
int snap_r__bytes(struct snap_r *r, void *out, size_t len);
/* Marks the reader bad with a reason (the first one wins); returns -1. */
int snap_r__fail(struct snap_r *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first section with this tag among the sections that make up r's whole buffer
 * (from its start, whatever was read): *sub reads its body. -1 when it is missing or
 * a section header runs past the end. */
int snap_r__section(const struct snap_r *r, uint32_t tag, struct snap_r *sub);
/* The next section at the reader's position: its tag, and *sub over its body; the
 * reader moves past it. 0 at the end, 1 for a section, -1 when malformed (bad set). */
int snap_r__next(struct snap_r *r, uint32_t *tag, struct snap_r *sub);

/* Section tags: four characters, readable in a hex dump. */
#define SNAP_TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

#endif
