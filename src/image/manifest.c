/* OCI/Docker manifest, index and image config JSON: strict, bounded parsing into the
 * structures of image.h, linux/amd64 platform selection, and the walk from a stored
 * manifest or index to a complete image (config and layers fetched through a source). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image_int.h"

#define CONFIG_ARRAY_MAX 4096
#define CONFIG_STRING_MAX (256u << 10)

static json_t *load_json(const char *json, size_t len, const char *what, char *err, size_t errlen)
{
    if (!json || len == 0)
        return img_err(err, errlen, "%s is empty", what), NULL;
    if (len > IMAGE_JSON_MAX)
        return img_err(err, errlen, "%s is %zu bytes, more than the %u allowed", what, len, IMAGE_JSON_MAX), NULL;
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return img_err(err, errlen, "%s is not valid JSON: %s (line %d)", what, je.text, je.line), NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        return img_err(err, errlen, "%s is not a JSON object", what), NULL;
    }
    return root;
}

/* Parses the JSON object json[0..len) (what: its name in messages) with parse, which
 * fills out from it; when that fails, free_out (if any) releases what parse left. */
static int parse_document(const char *json, size_t len, const char *what,
                          int (*parse)(json_t *root, void *out, char *err, size_t errlen), void *out,
                          void (*free_out)(void *out), char *err, size_t errlen)
{
    json_t *root = load_json(json, len, what, err, errlen);
    if (!root)
        return -1;
    int rc = parse(root, out, err, errlen);
    json_decref(root);
    if (rc < 0 && free_out)
        free_out(out);
    return rc;
}

/* Copies an optional string member; -1 when present but not a string or too long. */
static int get_str(json_t *obj, const char *key, char *out, size_t cap, int required)
{
    out[0] = 0;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return required ? -1 : 0;
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int parse_descriptor(json_t *d, char *media_type, size_t mtcap, char *digest, uint64_t *size, const char *what,
                            char *err, size_t errlen)
{
    if (!json_is_object(d))
        return img_err(err, errlen, "%s descriptor is not a JSON object", what);
    if (get_str(d, "mediaType", media_type, mtcap, 0) < 0)
        return img_err(err, errlen, "%s descriptor has a malformed mediaType", what);
    if (get_str(d, "digest", digest, IMAGE_DIGEST_MAX, 1) < 0 || !img_digest_valid(digest))
        return img_err(err, errlen, "%s descriptor has a missing, malformed or unsupported digest (only sha256)", what);
    json_t *s = json_object_get(d, "size");
    if (!json_is_integer(s) || json_integer_value(s) < 0 || (uint64_t)json_integer_value(s) > IMAGE_BLOB_SIZE_MAX)
        return img_err(err, errlen, "%s descriptor %s has a missing or out-of-range size", what, digest);
    *size = (uint64_t)json_integer_value(s);
    return 0;
}

enum mf_kind mf_kind_of(const char *json, size_t len, const char *content_type)
{
    json_t *root = load_json(json, len, "manifest", NULL, 0);
    if (!root)
        return MF_UNKNOWN;
    enum mf_kind k = MF_UNKNOWN;
    json_t *mt = json_object_get(root, "mediaType");
    const char *t = json_is_string(mt) ? json_string_value(mt) : NULL;
    if (!t && content_type && *content_type)
        t = content_type;
    json_t *sv = json_object_get(root, "schemaVersion");
    if (json_is_integer(sv) && json_integer_value(sv) == 1)
        k = MF_SCHEMA1;
    else if (t && (!strcmp(t, MT_OCI_INDEX) || !strcmp(t, MT_DOCKER_LIST)))
        k = MF_INDEX;
    else if (t && (!strcmp(t, MT_OCI_MANIFEST) || !strcmp(t, MT_DOCKER_MANIFEST)))
        k = MF_MANIFEST;
    else if (t && strstr(t, "vnd.docker.distribution.manifest.v1"))
        k = MF_SCHEMA1;
    else if (json_is_array(json_object_get(root, "manifests")))
        k = MF_INDEX;
    else if (json_object_get(root, "config") || json_object_get(root, "layers"))
        k = MF_MANIFEST;
    json_decref(root);
    return k;
}

void mf_index_free(struct mf_index *idx)
{
    free(idx->e);
    idx->e = NULL;
    idx->n = 0;
}

static int index_from(json_t *root, void *out, char *err, size_t errlen)
{
    struct mf_index *idx = out;
    json_t *sv = json_object_get(root, "schemaVersion");
    json_t *arr = json_object_get(root, "manifests");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2)
        return img_err(err, errlen, "image index has schemaVersion other than 2");
    if (!json_is_array(arr))
        return img_err(err, errlen, "image index has no \"manifests\" array");
    size_t n = json_array_size(arr);
    if (n > IMAGE_INDEX_MAX)
        return img_err(err, errlen, "image index lists %zu manifests, more than the %d allowed", n, IMAGE_INDEX_MAX);
    idx->e = calloc(n ? n : 1, sizeof(*idx->e));
    if (!idx->e)
        return img_err(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(arr, i);
        struct mf_entry *e = &idx->e[i];
        if (parse_descriptor(d, e->media_type, sizeof(e->media_type), e->digest, &e->size, "index entry", err, errlen) <
            0)
            return -1;
        json_t *pl = json_object_get(d, "platform");
        if (pl && !json_is_null(pl)) {
            if (!json_is_object(pl) || get_str(pl, "os", e->os, sizeof(e->os), 0) < 0 ||
                get_str(pl, "architecture", e->arch, sizeof(e->arch), 0) < 0 ||
                get_str(pl, "variant", e->variant, sizeof(e->variant), 0) < 0)
                return img_err(err, errlen, "index entry %s has a malformed platform", e->digest);
        }
        json_t *an = json_object_get(d, "annotations");
        if (an && !json_is_null(an)) {
            if (!json_is_object(an))
                return img_err(err, errlen, "index entry %s has malformed annotations", e->digest);
            char name[512];
            if (get_str(an, "io.containerd.image.name", name, sizeof(name), 0) == 0 && name[0])
                memcpy(e->ref_name, name, sizeof(name));
            else if (get_str(an, "org.opencontainers.image.ref.name", name, sizeof(name), 0) == 0)
                memcpy(e->ref_name, name, sizeof(name));
        }
        idx->n++;
    }
    return 0;
}

static void index_free(void *idx) { mf_index_free(idx); }

int mf_parse_index(const char *json, size_t len, struct mf_index *idx, char *err, size_t errlen)
{
    memset(idx, 0, sizeof(*idx));
    return parse_document(json, len, "image index", index_from, idx, index_free, err, errlen);
}

int mf_layer_type_ok(const char *t)
{
    static const char *const ok[] = {MT_OCI_LAYER_TAR,
                                     MT_OCI_LAYER_GZIP,
                                     MT_OCI_LAYER_ZSTD,
                                     "application/vnd.oci.image.layer.nondistributable.v1.tar",
                                     "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                                     "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
                                     "application/vnd.docker.image.rootfs.diff.tar",
                                     "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                     "application/vnd.docker.image.rootfs.diff.tar.zstd",
                                     "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                                     NULL};
    for (int i = 0; ok[i]; i++)
        if (!strcmp(t, ok[i]))
            return 1;
    return 0;
}

struct manifest_out {
    struct image_manifest_info *info;
    uint64_t *config_size;
};

static int manifest_from(json_t *root, void *out, char *err, size_t errlen)
{
    struct image_manifest_info *info = ((struct manifest_out *)out)->info;
    uint64_t *config_size = ((struct manifest_out *)out)->config_size;
    char mt[128];
    info->nlayers = 0;
    info->total_size = 0;
    json_t *sv = json_object_get(root, "schemaVersion");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2)
        return img_err(err, errlen,
                       "image manifest has schemaVersion other than 2 (schema 1 images are not supported; push the "
                       "image again with a current tool)");
    if (get_str(root, "mediaType", mt, sizeof(mt), 0) < 0 ||
        (mt[0] && strcmp(mt, MT_OCI_MANIFEST) && strcmp(mt, MT_DOCKER_MANIFEST)))
        return img_err(err, errlen, "document is not an image manifest (mediaType %.100s)", mt);
    uint64_t csize;
    if (parse_descriptor(json_object_get(root, "config"), mt, sizeof(mt), info->config_digest, &csize, "config", err,
                         errlen) < 0)
        return -1;
    if (mt[0] && strcmp(mt, MT_OCI_CONFIG) && strcmp(mt, "application/vnd.docker.container.image.v1+json"))
        return img_err(err, errlen, "not a container image: its config has media type %.100s", mt);
    if (csize > IMAGE_JSON_MAX)
        return img_err(err, errlen, "image config is %llu bytes, more than the %u allowed", (unsigned long long)csize,
                       IMAGE_JSON_MAX);
    if (config_size)
        *config_size = csize;
    json_t *layers = json_object_get(root, "layers");
    if (!json_is_array(layers))
        return img_err(err, errlen, "image manifest has no \"layers\" array");
    size_t n = json_array_size(layers);
    if (n > IMAGE_MAX_LAYERS)
        return img_err(err, errlen, "image has %zu layers, more than the %d supported", n, IMAGE_MAX_LAYERS);
    for (size_t i = 0; i < n; i++) {
        struct image_layer *l = &info->layers[i];
        if (parse_descriptor(json_array_get(layers, i), l->media_type, sizeof(l->media_type), l->digest, &l->size,
                             "layer", err, errlen) < 0)
            return -1;
        if (!l->media_type[0])
            return img_err(err, errlen, "layer %s has no mediaType", l->digest);
        if (!mf_layer_type_ok(l->media_type))
            return img_err(err, errlen, "layer %s has unsupported media type %s (supported: tar, tar+gzip, tar+zstd)",
                           l->digest, l->media_type);
        info->total_size += l->size;
        info->nlayers = i + 1;
    }
    return 0;
}

int mf_parse_manifest(const char *json, size_t len, struct image_manifest_info *info, uint64_t *config_size, char *err,
                      size_t errlen)
{
    struct manifest_out out = {info, config_size};
    return parse_document(json, len, "image manifest", manifest_from, &out, NULL, err, errlen);
}

int mf_select_platform(const struct mf_index *idx, const char *os, const char *arch, char *err, size_t errlen)
{
    int best = -1;
    for (size_t i = 0; i < idx->n; i++) {
        const struct mf_entry *e = &idx->e[i];
        if (strcmp(e->os, os) || strcmp(e->arch, arch))
            continue;
        /* prefer the plain amd64 entry over variants (v2, v3) a CPU might not have */
        if (best < 0 || (idx->e[best].variant[0] && !e->variant[0]))
            best = (int)i;
    }
    if (best >= 0)
        return best;
    char list[600] = "";
    size_t used = 0;
    for (size_t i = 0; i < idx->n && used < sizeof(list) - 80; i++) {
        const struct mf_entry *e = &idx->e[i];
        if (!e->os[0] || !strcmp(e->os, "unknown"))
            continue;
        char one[120];
        snprintf(one, sizeof(one), "%s/%s%s%s", e->os, e->arch, e->variant[0] ? "/" : "", e->variant);
        char padded[620];
        snprintf(padded, sizeof(padded), " %s,", list);
        char probe[130];
        snprintf(probe, sizeof(probe), " %s,", one);
        if (strstr(padded, probe))
            continue;
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", one);
    }
    img_err(err, errlen, "the image has no %s/%s variant; available platforms: %s", os, arch, list[0] ? list : "none");
    return -1;
}

/* ---- config ---- */

static int get_str_array(json_t *obj, const char *key, char ***out, char *err, size_t errlen)
{
    *out = NULL;
    json_t *a = json_object_get(obj, key);
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return img_err(err, errlen, "image config: %s is not an array of strings", key);
    size_t n = json_array_size(a);
    if (n > CONFIG_ARRAY_MAX)
        return img_err(err, errlen, "image config: %s has %zu entries, more than %d", key, n, CONFIG_ARRAY_MAX);
    char **v = calloc(n + 1, sizeof(char *));
    if (!v)
        return img_err(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_string(s) || json_string_length(s) > CONFIG_STRING_MAX || !(v[i] = strdup(json_string_value(s)))) {
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return img_err(err, errlen, "image config: %s[%zu] is not a string of at most %u bytes", key, i,
                           CONFIG_STRING_MAX);
        }
    }
    *out = v;
    return 0;
}

static int get_dup(json_t *obj, const char *key, char **out, char *err, size_t errlen)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) > CONFIG_STRING_MAX)
        return img_err(err, errlen, "image config: %s is not a string of at most %u bytes", key, CONFIG_STRING_MAX);
    if (json_string_length(v) == 0)
        return 0;
    *out = strdup(json_string_value(v));
    return *out ? 0 : img_err(err, errlen, "out of memory");
}

void image_config_free(struct image_config *cfg)
{
    char **arrays[4] = {cfg->env, cfg->entrypoint, cfg->cmd, cfg->health_test};
    for (int i = 0; i < 4; i++) {
        for (char **p = arrays[i]; p && *p; p++)
            free(*p);
        free(arrays[i]);
    }
    free(cfg->working_dir);
    free(cfg->user);
    memset(cfg, 0, sizeof(*cfg));
}

/* A non-negative integer field of Healthcheck; absent or null: 0 (docker's "default"). */
static int get_u64(json_t *obj, const char *key, uint64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return img_err(err, errlen, "image config: Healthcheck.%s is not a whole number of at least 0", key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_healthcheck(json_t *c, struct image_config *cfg, char *err, size_t errlen)
{
    json_t *h = json_object_get(c, "Healthcheck");
    if (!h || json_is_null(h))
        return 0;
    if (!json_is_object(h))
        return img_err(err, errlen, "image config: Healthcheck is not an object");
    if (get_str_array(h, "Test", &cfg->health_test, err, errlen) < 0 ||
        get_u64(h, "Interval", &cfg->health_interval_ns, err, errlen) < 0 ||
        get_u64(h, "Timeout", &cfg->health_timeout_ns, err, errlen) < 0 ||
        get_u64(h, "StartPeriod", &cfg->health_start_period_ns, err, errlen) < 0 ||
        get_u64(h, "Retries", &cfg->health_retries, err, errlen) < 0)
        return -1;
    return 0;
}

static int config_from(json_t *root, void *out, char *err, size_t errlen)
{
    struct image_config *cfg = out;
    if (get_str(root, "architecture", cfg->architecture, sizeof(cfg->architecture), 0) < 0 ||
        get_str(root, "os", cfg->os, sizeof(cfg->os), 0) < 0)
        return img_err(err, errlen, "image config: architecture or os is not a short string");
    json_t *c = json_object_get(root, "config");
    if (c && !json_is_null(c)) {
        if (!json_is_object(c))
            return img_err(err, errlen, "image config: \"config\" is not an object");
        if (get_str_array(c, "Env", &cfg->env, err, errlen) < 0 ||
            get_str_array(c, "Entrypoint", &cfg->entrypoint, err, errlen) < 0 ||
            get_str_array(c, "Cmd", &cfg->cmd, err, errlen) < 0 ||
            get_dup(c, "WorkingDir", &cfg->working_dir, err, errlen) < 0 ||
            get_dup(c, "User", &cfg->user, err, errlen) < 0 || get_healthcheck(c, cfg, err, errlen) < 0)
            return -1;
        for (char **e = cfg->env; e && *e; e++)
            if (!strchr(*e, '=') || **e == '=')
                return img_err(err, errlen, "image config: Env entry '%.60s' is not NAME=VALUE", *e);
    }
    if (!cfg->env) {
        cfg->env = calloc(1, sizeof(char *));
        if (!cfg->env)
            return img_err(err, errlen, "out of memory");
    }
    return 0;
}

static void config_free(void *cfg) { image_config_free(cfg); }

int image_config_parse(const char *json, size_t len, struct image_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    return parse_document(json, len, "image config", config_from, cfg, config_free, err, errlen);
}

/* ---- the walk ---- */

int img_resolve(struct img_source *src, const char *digest, const char *content_type, struct image_manifest_info *out,
                int depth, char *err, size_t errlen)
{
    size_t len;
    char *doc = image_blob_read(src->images_dir, digest, IMAGE_JSON_MAX, &len, err, errlen);
    if (!doc)
        return -1;
    enum mf_kind kind = mf_kind_of(doc, len, content_type);
    int rc = -1;
    if (kind == MF_INDEX) {
        struct mf_index idx;
        if (depth >= 2) {
            img_err(err, errlen, "%s: image indexes nested too deeply", src->name);
        } else if (mf_parse_index(doc, len, &idx, err, errlen) == 0) {
            char why[700];
            int i = mf_select_platform(&idx, "linux", "amd64", why, sizeof(why));
            if (i < 0) {
                img_err(err, errlen, "%s: %s", src->name, why);
            } else {
                struct mf_entry *e = &idx.e[i];
                if (e->size > IMAGE_JSON_MAX)
                    img_err(err, errlen, "%s: manifest %s is %llu bytes, more than the %u allowed", src->name,
                            e->digest, (unsigned long long)e->size, IMAGE_JSON_MAX);
                else if (src->fetch(src, e->digest, e->size, e->size, "manifest", err, errlen) == 0)
                    rc = img_resolve(src, e->digest, e->media_type, out, depth + 1, err, errlen);
            }
            mf_index_free(&idx);
        }
    } else if (kind == MF_MANIFEST) {
        uint64_t csize = 0;
        char why[700];
        if (mf_parse_manifest(doc, len, out, &csize, why, sizeof(why)) < 0) {
            img_err(err, errlen, "%s: %s", src->name, why);
        } else {
            snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s", digest);
            rc = src->fetch(src, out->config_digest, csize, csize, "config", err, errlen);
            for (size_t i = 0; rc == 0 && i < out->nlayers; i++)
                rc = src->fetch(src, out->layers[i].digest, out->layers[i].size, out->layers[i].size, "layer", err,
                                errlen);
        }
    } else if (kind == MF_SCHEMA1) {
        img_err(err, errlen,
                "%s: Docker schema 1 manifests are not supported; push the image again with a current Docker or "
                "skopeo",
                src->name);
    } else {
        img_err(err, errlen, "%s: %s is neither an image manifest nor an image index", src->name, digest);
    }
    free(doc);
    return rc;
}
