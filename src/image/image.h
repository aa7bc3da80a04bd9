/* The image pipeline's contract: parse references, fetch or load OCI images into the
 * content-addressed blob store, read image configs, and merge layers into one ext4
 * base. libcocoon records names and bases in its state database on top of this. */
#ifndef COCOON_IMAGE_H
#define COCOON_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_DIGEST_MAX 72 /* "sha256:" + 64 hex + NUL */
#define IMAGE_MAX_LAYERS 256

/* docker.io/library/python:3.12 ; ghcr.io/org/tool@sha256:... ; localhost:5000/x:y */
struct image_ref {
    char registry[256];            /* "docker.io" for Docker Hub names; API host is registry-1.docker.io */
    char repository[512];          /* "library/python" */
    char tag[128];                 /* "latest" when neither tag nor digest was given */
    char digest[IMAGE_DIGEST_MAX]; /* "" or "sha256:<64 hex>" */
};
int image_ref_parse(const char *text, struct image_ref *ref, char *err, size_t errlen);
/* Canonical form: registry/repository:tag or registry/repository@digest. */
void image_ref_format(const struct image_ref *ref, char *out, size_t cap);

struct image_layer {
    char digest[IMAGE_DIGEST_MAX];
    char media_type[128]; /* tar, tar+gzip, tar+zstd (OCI or Docker schema2 names) */
    uint64_t size;
};

/* What a pulled or loaded image is made of; all blobs are in the store. */
struct image_manifest_info {
    char manifest_digest[IMAGE_DIGEST_MAX]; /* of the platform manifest (linux/amd64) */
    char config_digest[IMAGE_DIGEST_MAX];
    size_t nlayers;
    struct image_layer layers[IMAGE_MAX_LAYERS];
    uint64_t total_size; /* compressed bytes of all layers */
};

/* The parts of the image config a box honours. All arrays NULL-terminated, owned. */
struct image_config {
    char **env;        /* "K=V" */
    char **entrypoint; /* NULL when absent */
    char **cmd;        /* NULL when absent */
    char *working_dir; /* NULL when absent */
    char *user;        /* NULL when absent: "name", "uid", "uid:gid", "name:group" */
    char architecture[32], os[32];
    /* Healthcheck: Test (["CMD", argv...], ["CMD-SHELL", text], ["NONE"]; NULL when
     * absent) and its numbers as given (nanoseconds; 0: the default). */
    char **health_test;
    uint64_t health_interval_ns, health_timeout_ns, health_start_period_ns;
    uint64_t health_retries;
};
int image_config_parse(const char *json, size_t len, struct image_config *cfg, char *err, size_t errlen);
void image_config_free(struct image_config *cfg);

/* Progress of a pull or load: called from the calling thread. */
typedef void (*image_progress_fn)(void *user, const char *layer_digest, uint64_t done, uint64_t total);

struct image_pull_options {
    int insecure;          /* allow plain HTTP to this registry */
    const char *auth_file; /* credentials JSON (docker config.json format); NULL: $COCOON_HOME/auth.json */
    image_progress_fn progress;
    void *progress_user;
};

/* blob store root: <images_dir>/blobs/sha256/<hex>. Blobs are verified before they are
 * renamed into place, so the store never holds a blob whose name lies. */
int image_pull(const char *images_dir, const struct image_ref *ref, const struct image_pull_options *opts,
               struct image_manifest_info *out, char *err, size_t errlen);

/* `docker save` tarballs, OCI layout directories or tarballs. Each image found is
 * reported with its name (from the archive's tags; "" when untagged). */
struct image_loaded {
    char name[1024];
    struct image_manifest_info info;
};
int image_load(const char *images_dir, const char *path, struct image_loaded **out, size_t *count, char *err,
               size_t errlen);

/* Reads a blob of at most max bytes from the store (manifests, configs). */
char *image_blob_read(const char *images_dir, const char *digest, size_t max, size_t *len, char *err, size_t errlen);
int image_blob_path(const char *images_dir, const char *digest, char *out, size_t cap);

/* Merges the layers (in order, with whiteouts) into a new ext4 file at out_path,
 * sized to fit with headroom, ownership/modes/xattrs/links/devices kept, written with
 * libext2fs (no root needed). Refuses paths that escape the root. On failure nothing
 * is left at out_path. */
int image_unpack_ext4(const char *images_dir, const struct image_manifest_info *info, const char *out_path, char *err,
                      size_t errlen);

#endif
