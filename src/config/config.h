/* cocoon.yaml, the declarative config file: read with libyaml into a tree that keeps
 * each node's line and column, checked strictly against the schema, and turned into the
 * normalized JSON the CLI and the SDKs use (docs/config.md). Also the record a box made
 * from the file keeps in its directory (spec.json). Internal to libcocoon. */
#ifndef COCOON_CONFIG_CONFIG_H
#define COCOON_CONFIG_CONFIG_H

#include <jansson.h>
#include <stddef.h>

/* Bounds of a config file, each refused with a message that names it. */
#define CONFIG_FILE_MAX (1u << 20)     /* bytes of the file */
#define CONFIG_DEPTH_MAX 16u           /* nesting of mappings and lists */
#define CONFIG_NODES_MAX 100000u       /* scalars, mappings and lists */
#define CONFIG_BOXES_MAX 256u          /* boxes in one file */
#define CONFIG_SCRIPTS_MAX 128u        /* scripts of one box */
#define CONFIG_ENV_MAX 1024u           /* env entries of one box */
#define CONFIG_ARGV_MAX 4096u          /* words of a list script */
#define CONFIG_VALUE_MAX (64u << 10)   /* bytes of one value after ${NAME} substitution */
#define CONFIG_EXPANDED_MAX (4u << 20) /* bytes all substitutions may add to the file */

enum cfg_kind { CFG_SCALAR, CFG_MAP, CFG_SEQ };

/* One node of the document. A mapping's items alternate key, value. */
struct cfg_node {
    enum cfg_kind kind;
    unsigned line, col; /* 1-based, where the node starts */
    char *text;         /* scalars: the value (NUL-terminated; len bytes, may hold NULs) */
    size_t len;
    int plain; /* a plain (unquoted) scalar: may be a number, a boolean or null */
    struct cfg_node **items;
    size_t n, cap;
};

/* Parses one YAML document of len bytes into *root (NULL for an empty document).
 * Anchors, aliases, tags, duplicate keys, keys that are not scalars, several documents
 * and the bounds above are refused. 0, or -1 with "FILE:LINE:COL: message" in err. */
int cfg_yaml_read(const char *text, size_t len, const char *file, struct cfg_node **root, char *err, size_t errlen);
void cfg_node_free(struct cfg_node *n);

/* Checks the tree against the schema and builds the normalized JSON:
 * {"file": abs_path, "boxes": [...]} (docs/config.md). base_dir resolves a relative
 * rootfs. NULL with "FILE:LINE:COL: message" in err. */
json_t *cfg_normalize(const struct cfg_node *root, const char *file, const char *abs_path, const char *base_dir,
                      char *err, size_t errlen);

/* The whole path: reads the file at path (at most CONFIG_FILE_MAX bytes), parses and
 * normalizes it. Messages name the file as path gives it. */
json_t *config_load_file(const char *path, char *err, size_t errlen);
/* The same from text in memory (tests, fuzzing); abs_path names it in the JSON. */
json_t *config_load_text(const char *text, size_t len, const char *file, const char *abs_path, char *err,
                         size_t errlen);

/* "sha256:<hex>" of a normalized box without its name, scripts and digest. */
int config_box_digest(const json_t *box, char out[80]);
/* What differs between two normalized boxes, for people: "memory 512 -> 1024 MiB, env
 * DEBUG changed". "" when they are the same (name, scripts and digest aside). */
void config_box_diff(const json_t *old_box, const json_t *new_box, char *out, size_t cap);

/* ---- what a box made from a config file remembers (DIR/spec.json) ---- */
#define CONFIG_ORIGIN_UP "up"   /* made by `cocoon up`: `cocoon down` may remove it */
#define CONFIG_ORIGIN_RUN "run" /* made by `cocoon run --config` */
/* Writes {"origin", "file", "box"} to box_dir/spec.json. 0 or -1 with err. */
int config_spec_write(const char *box_dir, const char *origin, const char *file, const json_t *box, char *err,
                      size_t errlen);
/* The record of box_dir: NULL when the box has none (not made from a config file) or
 * it is unreadable (*damaged set then). */
json_t *config_spec_read(const char *box_dir, int *damaged);

#endif
