/* Internals of the layer merge (image_unpack_ext4): the in-memory tree that pass 1
 * builds from the layer tars (whiteouts applied, hostile paths refused), the layer
 * reader both passes share, and pass 2, which writes the tree into a new ext4 file. */
#ifndef COCOON_IMAGE_UNPACK_INT_H
#define COCOON_IMAGE_UNPACK_INT_H

#include <stddef.h>
#include <stdint.h>

struct archive;
struct archive_entry;

/* Per-pull budgets: a hostile image must not take the host's memory or disk. Each
 * default can be changed through an environment variable: COCOON_UNPACK_MAX_ENTRIES
 * (members of all layers, and names in the merged tree), COCOON_UNPACK_MAX_BYTES (file
 * data of all layers: what pass 1 reads through and pass 2 may write) and
 * COCOON_UNPACK_MAX_META (memory the tree holds: nodes, names, link targets, xattrs). */
#define UNPACK_MAX_ENTRIES 1000000u
#define UNPACK_MAX_BYTES (64ull << 30)
#define UNPACK_MAX_META (512ull << 20)
#define UNPACK_MAX_PATH 4096u         /* bytes of a member path or link target */
#define UNPACK_MAX_NAME 255u          /* bytes of one path component */
#define UNPACK_MAX_FILE (1ull << 40)  /* 1 TiB: bytes one member may claim */
#define UNPACK_MAX_XATTRS 64u         /* per member */
#define UNPACK_MAX_XATTR_BYTES 65536u /* name + value bytes per member */

/* One extended attribute, as the tar carried it (name with its namespace prefix). */
struct unpack_xattr {
    struct unpack_xattr *next;
    char *name;
    void *value;
    size_t len;
};

/* What a member became: metadata and where its bytes are. Hard links share one. */
struct unpack_inode {
    uint32_t mode; /* S_IFMT bits | 07777 */
    uint32_t uid, gid;
    int64_t mtime;
    uint32_t mtime_nsec;
    uint64_t size; /* regular files: content bytes */
    uint32_t rdev_major, rdev_minor;
    char *target; /* symlinks */
    struct unpack_xattr *xattrs;
    int layer;        /* content source of a regular file with size > 0: layer number from 1 */
    uint64_t member;  /* ordinal of the member inside that layer */
    uint32_t refs;    /* names in the tree */
    uint32_t ino;     /* pass 2: ext4 inode number, 0 until created */
    uint32_t counted; /* pass 2 sizing mark */
};

/* A name in the merged tree. Children are a doubly linked list; lookups use the
 * tree's hash of (parent, name). */
struct unpack_node {
    struct unpack_node *parent, *child, *next, *prev;
    struct unpack_node *hnext;
    char *name;
    uint32_t namelen, hash;
    int seen; /* last layer that named this path or something below it */
    struct unpack_inode *inode;
};

struct unpack_tree {
    struct unpack_node *root;
    struct unpack_node **buckets;
    size_t nbuckets, nnodes;
    uint64_t members;    /* of all layers so far */
    uint64_t data_bytes; /* file data all layers declared so far */
    uint64_t meta_bytes; /* memory the tree holds now (approximately: sizes asked of malloc) */
    uint64_t max_entries, max_bytes, max_meta;
};

/* Reads a layer blob with libarchive: tar, plain or gzip/zstd/xz/bzip2 compressed,
 * never through an external program, and never skipping by seeking (so a member
 * that claims more bytes than the blob holds is caught as truncation). */
struct unpack_reader {
    struct archive *a;
    int fd;
    uint64_t blob_size;
    int compressed;
    unsigned char *buf;
};
int unpack_reader_open(struct unpack_reader *r, const char *path, char *err, size_t errlen);
void unpack_reader_close(struct unpack_reader *r);
/* The member's path, link targets: UTF-8 when the tar says so, else raw bytes. */
const char *unpack_entry_path(struct archive_entry *e);
const char *unpack_entry_hardlink(struct archive_entry *e);
const char *unpack_entry_symlink(struct archive_entry *e);

/* An empty tree with the budgets of the defaults above, or of their environment
 * variables (a malformed one is an error). */
int unpack_tree_init(struct unpack_tree *t, char *err, size_t errlen);
void unpack_tree_free(struct unpack_tree *t);
/* Pass 1 over one layer (numbered from 1, in order): applies its members and whiteouts. */
int unpack_tree_add_layer(struct unpack_tree *t, int layer, const char *digest, const char *blob_path, char *err,
                          size_t errlen);

/* Pass 2: writes the tree into a new ext4 file at path (which must not exist),
 * reading file contents from the layers again. */
int ext4_write_tree(struct unpack_tree *t, size_t nlayers, const char *const *digests, const char *const *blob_paths,
                    const char *path, char *err, size_t errlen);

/* The whole merge from blob paths: what image_unpack_ext4 does once it has found the
 * blobs. Writes path.tmp.<pid> and renames it; nothing is left at path on failure. */
int unpack_layers_ext4(size_t nlayers, const char *const *digests, const char *const *blob_paths, const char *out_path,
                       char *err, size_t errlen);

#endif
