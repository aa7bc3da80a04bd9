/* Private helpers shared by the image fetching files: SHA-256 and the blob store's
 * verified writer (blobstore.c), manifest/index/config JSON parsing (manifest.c), the
 * shared "resolve a manifest and fetch its blobs" walk (registry.c, load.c). */
#ifndef COCOON_IMAGE_INT_H
#define COCOON_IMAGE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

#define IMAGE_JSON_MAX (4u << 20) /* manifests, indexes, configs */
#define IMAGE_INDEX_MAX 1024      /* entries in one index */
#define IMAGE_BLOB_SIZE_MAX (64ull << 30)

/* Tests only: how many name-index slots image_load has looked at (load.c), so a test
 * can check that loading is linear by counting work, not by timing it. */
extern size_t image_load_probes;

/* ---- errors ---- */
int img_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- sha256 ---- */
struct sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
};
void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[32]);
/* "sha256:<hex>" of data into out (IMAGE_DIGEST_MAX bytes). */
void sha256_digest_of(const void *data, size_t len, char out[IMAGE_DIGEST_MAX]);
void sha256_digest_str(const uint8_t raw[32], char out[IMAGE_DIGEST_MAX]);

/* 1 when s is "sha256:" + 64 lowercase hex. */
int img_digest_valid(const char *s);

/* ---- blob store ---- */
int store_init(const char *images_dir, char *err, size_t errlen);
/* 1 when the blob is present (and of the expected size when size is not UINT64_MAX). */
int store_has(const char *images_dir, const char *digest, uint64_t size);
/* Removes temporary files left by processes that no longer exist. */
void store_sweep(const char *images_dir);

/* Streams one blob into a per-process temporary file, hashing as it goes; commit checks
 * the digest (and size) and renames it into place atomically; abort removes it. */
struct blob_writer {
    int fd;
    char tmp[4096], final[4096];
    char digest[IMAGE_DIGEST_MAX]; /* expected, or "" to name it by its content */
    struct sha256 hash;
    uint64_t bytes, limit; /* limit: refuse more than this many bytes */
    uint8_t head[4];       /* the first bytes, to sniff compression */
    size_t nhead;
};
int blob_writer_open(struct blob_writer *w, const char *images_dir, const char *digest, uint64_t limit, char *err,
                     size_t errlen);
int blob_writer_write(struct blob_writer *w, const void *data, size_t len, char *err, size_t errlen);
/* On success the digest actually stored is in w->digest. what names the blob in errors. */
int blob_writer_commit(struct blob_writer *w, const char *images_dir, uint64_t expect_size, const char *what, char *err,
                       size_t errlen);
void blob_writer_abort(struct blob_writer *w);
/* Stores a whole buffer (digest computed); out receives the digest. */
int store_put(const char *images_dir, const void *data, size_t len, char out[IMAGE_DIGEST_MAX], char *err,
              size_t errlen);

/* ---- manifests ---- */
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

enum mf_kind { MF_UNKNOWN = 0, MF_INDEX, MF_MANIFEST, MF_SCHEMA1 };

struct mf_entry {
    char media_type[128];
    char digest[IMAGE_DIGEST_MAX];
    uint64_t size;
    char os[32], arch[32], variant[32];
    char ref_name[512]; /* org.opencontainers.image.ref.name or io.containerd.image.name */
};
struct mf_index {
    size_t n;
    struct mf_entry *e; /* owned */
};

/* Which kind of document this is (from mediaType, content_type, or its shape). */
enum mf_kind mf_kind_of(const char *json, size_t len, const char *content_type);
int mf_parse_index(const char *json, size_t len, struct mf_index *idx, char *err, size_t errlen);
void mf_index_free(struct mf_index *idx);
/* Fills config_digest, layers, nlayers, total_size (not manifest_digest). */
int mf_parse_manifest(const char *json, size_t len, struct image_manifest_info *info, uint64_t *config_size, char *err,
                      size_t errlen);
/* Index of the linux/amd64 entry, or -1 with an error listing what there is. */
int mf_select_platform(const struct mf_index *idx, const char *os, const char *arch, char *err, size_t errlen);
/* 1 for the layer media types we can store and unpack. */
int mf_layer_type_ok(const char *media_type);

/* ---- fetching: one source of blobs (a registry, a layout directory, the store) ---- */
struct img_source {
    /* Puts blob digest (size bytes, or any size up to limit when size is UINT64_MAX)
     * into the store, verified. what: "layer", "config", "manifest" for messages. */
    int (*fetch)(struct img_source *src, const char *digest, uint64_t size, uint64_t limit, const char *what, char *err,
                 size_t errlen);
    const char *images_dir;
    const char *name; /* for messages: "registry.example:5000/x" or a path */
    image_progress_fn progress;
    void *progress_user;
};

/* Given a stored manifest or index (digest), picks linux/amd64, fetches config and
 * layers through src. depth limits nested indexes. */
int img_resolve(struct img_source *src, const char *digest, const char *content_type, struct image_manifest_info *out,
                int depth, char *err, size_t errlen);

#endif
