/* The state database ($COCOON_HOME/cocoon.db, SQLite in WAL mode): the index of boxes
 * and images and the links between them. Box directories keep the runtime files; the
 * database says which boxes and images exist, their names, and who uses what. Every
 * write is one BEGIN IMMEDIATE transaction, retried while another process holds the
 * lock (up to STATE_BUSY_MS), so concurrent CLIs never see "database is locked". */
#ifndef COCOON_LIB_STATE_H
#define COCOON_LIB_STATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cocoon.h"

#define STATE_BUSY_MS 10000
#define STATE_SCHEMA_VERSION 2

struct sqlite3;

struct lib_state {
    struct sqlite3 *db;
    pthread_mutex_t tx_lock; /* one write transaction at a time on this connection */
    char path[4096];
};

/* Opens (creating and migrating as needed) home/cocoon.db. */
int state_open(const char *home, struct lib_state **out, cocoon_error *err);
void state_close(struct lib_state *st);
int state_schema_version(struct lib_state *st);
/* PRAGMA quick_check: 0 when the database is sound, else -1 with what SQLite found in out. */
int state_integrity(struct lib_state *st, char *out, size_t cap);

/* ---- boxes ---- */
struct state_box {
    char id[16];
    char name[128]; /* "" when unnamed (NULL in the table) */
    char image_ref[512];
    char image_id[512]; /* "" for --rootfs boxes */
    long long created_at;
    int ephemeral;
    char *config_json; /* owned; may be NULL */
};
void state_box_clear(struct state_box *b); /* frees config_json */

/* Inserts a box. A taken name fails with COCOON_E_STATE "... already in use ...";
 * an unknown image_id fails with COCOON_E_NOT_FOUND. */
int state_box_insert(struct lib_state *st, const struct state_box *b, cocoon_error *err);
int state_box_delete(struct lib_state *st, const char *id, cocoon_error *err);
int state_box_get(struct lib_state *st, const char *id, struct state_box *out, cocoon_error *err);
/* Exact id, then exact name, then a unique id prefix. Not found: COCOON_E_NOT_FOUND;
 * an ambiguous prefix: COCOON_E_INVALID naming the candidates. */
int state_box_find(struct lib_state *st, const char *id_or_name, struct state_box *out, cocoon_error *err);
/* All boxes, oldest first. Free with state_box_list_free. */
int state_box_list(struct lib_state *st, struct state_box **out, size_t *count, cocoon_error *err);
void state_box_list_free(struct state_box *list, size_t count);
/* Every box's id in one query, sorted by strcmp (free the array). */
struct state_box_id {
    char id[16];
};
int state_box_ids(struct lib_state *st, struct state_box_id **out, size_t *count, cocoon_error *err);

/* ---- images ---- */
/* An image is a row keyed by its id; its names (tags, canonical references such as
 * "docker.io/library/python:3.12", or a built-in's bare name) are rows of image_tags,
 * each naming one image. */
struct state_image {
    char id[512];    /* manifest digest ("sha256:...") or "local:<name>" */
    char name[1024]; /* the tag looked up, else the newest tag; "" when it has none */
    char config_digest[128];
    char base_path[4096];
    uint64_t size; /* bytes of the ext4 base (its virtual size) */
    long long created_at;
    char *config_json; /* the image config (OCI), owned; may be NULL */
};
void state_image_clear(struct state_image *img);

/* Inserts or updates the image with this id and, when name is set, tags it: a tag held
 * by another image moves to this one (the other keeps its other tags), as `docker pull`
 * moves a tag. created_at 0: now. */
int state_image_put(struct lib_state *st, const struct state_image *img, cocoon_error *err);
int state_image_get_by_id(struct lib_state *st, const char *id, struct state_image *out, cocoon_error *err);
/* The image a tag names. */
int state_image_get_by_name(struct lib_state *st, const char *name, struct state_image *out, cocoon_error *err);
/* One row per image (name: its newest tag), oldest first. */
int state_image_list(struct lib_state *st, struct state_image **out, size_t *count, cocoon_error *err);
/* One row per tag, and one with name "" per image without tags, oldest image first. */
int state_image_list_tags(struct lib_state *st, struct state_image **out, size_t *count, cocoon_error *err);
void state_image_list_free(struct state_image *list, size_t count);
/* Removes an image and all its tags. Refused with COCOON_E_STATE while a box uses it:
 * "image X is used by box Y (name); remove the box first". */
int state_image_remove(struct lib_state *st, const char *id, cocoon_error *err);
/* Removes one tag; with the image's last tag the image goes too (refused, as above,
 * while a box uses it): *removed says so. image_id receives the image it named. */
int state_image_untag(struct lib_state *st, const char *name, char *image_id, size_t cap, int *removed,
                      cocoon_error *err);

#endif
