/* A disk snapshot's record, $COCOON_HOME/snapshots/<id>/snapshot.json: its name, the
 * box it was taken of, the snapshot it stands on. The reader checks every field: the
 * file may come from an older cocoon or a damaged disk, so nothing is trusted. */
#ifndef COCOON_LIB_SNAPREC_H
#define COCOON_LIB_SNAPREC_H

#include <stddef.h>
#include <stdint.h>

#define SNAP_NAME_MAX 64            /* bytes of a name, NUL included */
#define SNAP_RECORD_MAX (64u << 10) /* snapshot.json is ours: anything larger is not */

struct snap_record {
    char id[16]; /* 12 lowercase hex digits */
    char name[SNAP_NAME_MAX];
    char box_id[16]; /* the box it was taken of (may be removed since) */
    char box_name[128];
    char parent[16]; /* the snapshot its layer stands on, "" for the image base */
    char image[512]; /* the image of the box, for people */
    long long created;
    uint64_t virtual_size;
};

/* 1 for a snapshot name: 1..63 bytes of letters, digits, '_', '.', '-', starting with
 * a letter or digit (so it never reads as an option or a path). */
int snap_name_valid(const char *name);
/* 1 for 12 lowercase hex digits. */
int snap_id_valid(const char *id);
/* Parses and checks snapshot.json text (len bytes); -1 with a message in err. */
int snap_record_parse(const char *text, size_t len, struct snap_record *r, char *err, size_t errcap);
/* The record as JSON text (malloc'd, ends with a newline); NULL when out of memory. */
char *snap_record_json(const struct snap_record *r);

#endif
