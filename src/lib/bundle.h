/* The export archive's contents (`cocoon export`, `cocoon import`): a zstd-compressed
 * pax tar of exactly three members, in this order:
 *   config.json    the box's config as it was exported
 *   disk.img       the whole virtual disk (backing chain flattened) as a sparse stream:
 *                  a header, then (offset, length, bytes) records of the non-zero
 *                  ranges, then an end record
 *   manifest.json  format and version, what was exported, each member's size and sha256
 * The manifest comes last so export reads the disk once; import verifies everything in
 * a temporary directory before the box appears. Both parsers here read outside input:
 * every field is checked against the bounds below (tests/fuzz/fuzz_import_manifest.c). */
#ifndef COCOON_LIB_BUNDLE_H
#define COCOON_LIB_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#define BUNDLE_FORMAT "cocoon-export"
#define BUNDLE_VERSION 1
#define BUNDLE_MANIFEST_MAX (1u << 20) /* manifest.json and config.json: 1 MiB each */
#define BUNDLE_VSIZE_MAX (1ull << 40)  /* a disk of at most 1 TiB */
#define BUNDLE_CHUNK_MAX (4u << 20)    /* bytes of one disk record */
#define BUNDLE_DISK_MAGIC "COCOONDK"
#define BUNDLE_DISK_HEADER 32
#define BUNDLE_DISK_RECORD 16
#define BUNDLE_MEMBERS 3

enum bundle_member { BUNDLE_CONFIG, BUNDLE_DISK, BUNDLE_MANIFEST };
extern const char *const bundle_member_names[BUNDLE_MEMBERS];

struct bundle_file {
    uint64_t size;
    char sha256[65]; /* lowercase hex */
};

struct bundle_manifest {
    int version;
    char kind[16];  /* "box" or "snapshot" */
    char name[128]; /* the box's or snapshot's name, may be "" */
    char source_id[16];
    char image[512];
    long long created;
    uint64_t virtual_size;
    struct bundle_file files[2]; /* config.json, disk.img */
};

struct sha256;
/* Finishes h into 64 lowercase hex digits and a NUL. */
void bundle_sha256_hex(struct sha256 *h, char out[65]);

/* Parses and checks manifest.json; -1 with a message in err (an unknown version says
 * which cocoon wrote it). */
int bundle_manifest_parse(const char *text, size_t len, struct bundle_manifest *m, char *err, size_t errcap);
/* The manifest's text (malloc'd); NULL when out of memory. */
char *bundle_manifest_json(const struct bundle_manifest *m);

/* disk.img: big-endian fields. */
void bundle_disk_header(uint8_t out[BUNDLE_DISK_HEADER], uint64_t virtual_size);
void bundle_disk_record(uint8_t out[BUNDLE_DISK_RECORD], uint64_t offset, uint64_t length);
#define BUNDLE_DISK_END UINT64_MAX /* the offset of the end record (length 0) */

/* A push parser of disk.img: feed it the member's bytes in any pieces; each data piece
 * is handed to write (offset within the disk) once its record was checked: records in
 * increasing order, not overlapping, inside the virtual size, 1..BUNDLE_CHUNK_MAX long. */
struct bundle_disk_reader {
    int state; /* internal */
    uint8_t hold[BUNDLE_DISK_HEADER];
    size_t held;
    uint64_t virtual_size, next_min, offset, left;
    uint64_t data_bytes;
    int (*write)(void *arg, uint64_t offset, const void *data, size_t len, char *err, size_t errcap);
    void *arg;
};
void bundle_disk_reader_init(struct bundle_disk_reader *r,
                             int (*write)(void *, uint64_t, const void *, size_t, char *, size_t), void *arg);
int bundle_disk_feed(struct bundle_disk_reader *r, const void *data, size_t len, char *err, size_t errcap);
/* 0 when the end record was read (and nothing after it), else -1 (truncated). */
int bundle_disk_finish(const struct bundle_disk_reader *r, char *err, size_t errcap);

#endif
