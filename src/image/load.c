/* image_load: `docker save` tarballs (manifest.json; modern, legacy <id>/layer.tar and
 * skopeo docker-archive layouts) and OCI layouts (oci-layout, index.json, blobs/) as
 * directories or tarballs. Tarballs are read with libarchive and their members go only
 * into the verified blob store, by name; nothing is ever extracted to a path. Files of a
 * directory are opened beneath it only, regular files only. Names are hashed (linear
 * time in the size of manifest.json) and image names come out as canonical references. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image/image_int.h"
#include "util/dl_archive.h"

#define MEMBERS_MAX 65536
#define DOCKER_IMAGES_MAX 1024
#define LOAD_NAMES_MAX 1024 /* image names (tags) one load reports, over all its images */

size_t image_load_probes;

/* A member of a docker save archive that a manifest.json entry refers to. */
struct member {
    char name[512];
    char digest[IMAGE_DIGEST_MAX]; /* once stored */
    uint64_t size;
    uint8_t head[4];
    size_t nhead;
};

/* A symlink or hard link member: docker-archive writers alias layers this way. */
struct alias {
    char name[512], target[512];
};

/* Names to positions in an array (members, aliases): open addressing, so looking a
 * name up costs O(1) however many there are (manifest.json can name 263,000). */
struct name_index {
    uint32_t *slot; /* position + 1; 0 is empty */
    size_t cap;     /* a power of two, at least twice the names */
};

struct load {
    struct img_source src;
    const char *path;
    int is_dir;
    int dirfd; /* the layout directory (O_PATH): members are opened beneath it only */
    char *manifest_json, *index_json, *oci_layout;
    size_t manifest_len, index_len, layout_len;
    struct member *m;
    size_t nm;
    struct alias *al;
    size_t nal, alcap;
    struct name_index mi, ai; /* of m[].name and al[].name */
    struct image_loaded *out;
    size_t nout, outcap;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int index_init(struct name_index *x, size_t names)
{
    x->cap = 16;
    while (x->cap < 2 * names)
        x->cap *= 2;
    x->slot = calloc(x->cap, sizeof(*x->slot));
    return x->slot ? 0 : -1;
}

/* The slot where name is, or the empty one where it would go. name_at(i) is the name
 * stored at position i. */
static uint32_t *index_find(const struct name_index *x, const char *name, const char *(*name_at)(const void *, size_t),
                            const void *arr)
{
    for (size_t i = name_hash(name) & (x->cap - 1);; i = (i + 1) & (x->cap - 1)) {
        image_load_probes++;
        if (!x->slot[i] || !strcmp(name_at(arr, x->slot[i] - 1), name))
            return &x->slot[i];
    }
}

static const char *member_name(const void *arr, size_t i) { return ((const struct member *)arr)[i].name; }
static const char *alias_name(const void *arr, size_t i) { return ((const struct alias *)arr)[i].name; }

/* Printable form of a name from an archive, for messages: no terminal escapes. */
static void printable(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < cap; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
    }
    out[o] = 0;
}

/* Opens a member of a layout directory for reading: resolved beneath the layout (a
 * symlink may point within it, never out of it), regular files only, and never opened
 * before that is known (a FIFO or a device is not opened at all). -1 with errno; EXDEV:
 * it leads outside the layout, EINVAL: not a regular file. */
static int open_member(struct load *L, const char *name)
{
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
    int pfd = (int)syscall(SYS_openat2, L->dirfd, name, &how, sizeof(how));
    if (pfd < 0)
        return -1;
    struct stat st;
    if (fstat(pfd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(pfd);
        errno = EINVAL;
        return -1;
    }
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
    int fd = open(self, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    int e = errno;
    close(pfd);
    errno = e;
    return fd;
}

static int member_error(struct load *L, const char *name, const char *what, char *err, size_t errlen)
{
    char shown[300];
    printable(name, shown, sizeof(shown));
    if (errno == EXDEV || errno == ELOOP)
        return img_err(err, errlen, "%s: refusing %s %s: it leads outside the layout (a symlink or mount)", L->path,
                       what, shown);
    if (errno == EINVAL)
        return img_err(err, errlen, "%s: refusing %s %s: not a regular file", L->path, what, shown);
    return img_err(err, errlen, "%s: cannot open %s %s: %s", L->path, what, shown, strerror(errno));
}

/* Strips "./" prefixes; refuses absolute names and ".." components. */
static int clean_name(const char *in, char *out, size_t cap)
{
    while (in[0] == '.' && in[1] == '/')
        in += 2;
    if (!*in || in[0] == '/' || strlen(in) >= cap)
        return -1;
    const char *p = in;
    for (;;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return -1;
        if (!p[n])
            break;
        p += n + 1;
    }
    snprintf(out, cap, "%s", in);
    size_t n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = 0;
    return n ? 0 : -1;
}

/* "a/b/../c" style resolution of a link target relative to the link's directory. */
static int resolve_link(const char *link, const char *target, int hard, char *out, size_t cap)
{
    char buf[1100];
    if (target[0] == '/')
        return -1;
    if (hard) {
        snprintf(buf, sizeof(buf), "%s", target);
    } else {
        const char *slash = strrchr(link, '/');
        snprintf(buf, sizeof(buf), "%.*s%s%s", slash ? (int)(slash - link) : 0, link, slash ? "/" : "", target);
    }
    /* normalise: drop ".", pop on "..", refuse climbing out */
    char *parts[128];
    int np = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, "."))
            continue;
        if (!strcmp(t, "..")) {
            if (np == 0)
                return -1;
            np--;
            continue;
        }
        if (np == 128)
            return -1;
        parts[np++] = t;
    }
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < np; i++) {
        int n = snprintf(out + used, cap - used, "%s%s", i ? "/" : "", parts[i]);
        if (n < 0 || (size_t)n >= cap - used)
            return -1;
        used += (size_t)n;
    }
    return np ? 0 : -1;
}

/* ---- reading metadata files ---- */

static char **meta_slot(struct load *L, const char *name, size_t **len)
{
    if (!strcmp(name, "manifest.json"))
        return *len = &L->manifest_len, &L->manifest_json;
    if (!strcmp(name, "index.json"))
        return *len = &L->index_len, &L->index_json;
    if (!strcmp(name, "oci-layout"))
        return *len = &L->layout_len, &L->oci_layout;
    return NULL;
}

static int read_dir_file(struct load *L, const char *name, char **out, size_t *len, char *err, size_t errlen)
{
    int fd = open_member(L, name);
    if (fd < 0)
        return errno == ENOENT ? 0 : member_error(L, name, "metadata file", err, errlen);
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > (off_t)IMAGE_JSON_MAX) {
        close(fd);
        return img_err(err, errlen, "%s: %s is larger than %u bytes", L->path, name, IMAGE_JSON_MAX);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (!buf || got != (size_t)st.st_size) {
        free(buf);
        return img_err(err, errlen, "%s: cannot read %s", L->path, name);
    }
    buf[got] = 0;
    *out = buf;
    *len = got;
    return 0;
}

/* ---- streaming a member into the store ---- */

typedef ssize_t (*read_fn)(void *ctx, void *buf, size_t n);

static ssize_t read_archive(void *ctx, void *buf, size_t n) { return sym_archive_read_data(ctx, buf, n); }

static ssize_t read_fd(void *ctx, void *buf, size_t n)
{
    ssize_t k;
    do
        k = read(*(int *)ctx, buf, n);
    while (k < 0 && errno == EINTR);
    return k;
}

/* Stores one stream; digest "" means name it by its content. On success out gets the
 * stored digest and head the first bytes. */
static int import_stream(struct load *L, read_fn rd, void *ctx, const char *digest, const char *member,
                         char out[IMAGE_DIGEST_MAX], uint8_t head[4], size_t *nhead, char *err, size_t errlen)
{
    enum { BUF = 1 << 16 };
    struct blob_writer w;
    char *buf = malloc(BUF);
    if (!buf)
        return img_err(err, errlen, "out of memory");
    if (blob_writer_open(&w, L->src.images_dir, digest, IMAGE_BLOB_SIZE_MAX, err, errlen) < 0) {
        blob_writer_abort(&w);
        free(buf);
        return -1;
    }
    for (;;) {
        ssize_t k = rd(ctx, buf, BUF);
        if (k == 0)
            break;
        if (k < 0 || blob_writer_write(&w, buf, (size_t)k, err, errlen) < 0) {
            blob_writer_abort(&w);
            free(buf);
            if (k < 0)
                return img_err(err, errlen, "%s: cannot read %s (the archive may be truncated or corrupt)", L->path,
                               member);
            return -1;
        }
    }
    free(buf);
    char why[600];
    if (blob_writer_commit(&w, L->src.images_dir, UINT64_MAX, "blob", why, sizeof(why)) < 0)
        return img_err(err, errlen, "%s: member %s: %s", L->path, member, why);
    snprintf(out, IMAGE_DIGEST_MAX, "%s", w.digest);
    if (head) {
        memcpy(head, w.head, w.nhead);
        *nhead = w.nhead;
    }
    return 0;
}

/* "blobs/sha256/<hex>" -> "sha256:<hex>", else "" */
static void blob_name_digest(const char *name, char out[IMAGE_DIGEST_MAX])
{
    out[0] = 0;
    if (strncmp(name, "blobs/sha256/", 13) != 0)
        return;
    char d[IMAGE_DIGEST_MAX + 8];
    snprintf(d, sizeof(d), "sha256:%s", name + 13);
    if (img_digest_valid(d))
        memcpy(out, d, IMAGE_DIGEST_MAX);
}

static struct member *find_member(struct load *L, const char *name)
{
    if (!L->mi.slot)
        return NULL;
    uint32_t *at = index_find(&L->mi, name, member_name, L->m);
    return *at ? &L->m[*at - 1] : NULL;
}

/* ---- tar passes ---- */

static struct archive *open_tar(struct load *L, char *err, size_t errlen)
{
    if (dl_archive_load(err, errlen) < 0)
        return NULL;
    struct archive *a = sym_archive_read_new();
    if (!a) {
        img_err(err, errlen, "out of memory");
        return NULL;
    }
    sym_archive_read_support_filter_all(a);
    sym_archive_read_support_format_tar(a);
    if (sym_archive_read_open_filename(a, L->path, 1 << 16) != ARCHIVE_OK) {
        img_err(err, errlen, "cannot read %s as a tar archive: %s", L->path, sym_archive_error_string(a));
        sym_archive_read_free(a);
        return NULL;
    }
    return a;
}

static int next_entry(struct load *L, struct archive *a, struct archive_entry **e, char *name, size_t cap, char *err,
                      size_t errlen)
{
    int r = sym_archive_read_next_header(a, e);
    if (r == ARCHIVE_EOF)
        return 0;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return img_err(err, errlen, "%s: corrupt or truncated archive: %s", L->path, sym_archive_error_string(a));
    const char *raw = sym_archive_entry_pathname(*e);
    if (!raw || clean_name(raw, name, cap) < 0) {
        if (raw && (!strcmp(raw, ".") || !strcmp(raw, "./")))
            return next_entry(L, a, e, name, cap, err, errlen);
        return img_err(err, errlen, "%s: refusing archive member '%.200s' (absolute path or '..')", L->path,
                       raw ? raw : "(no name)");
    }
    return 1;
}

/* An array of n items of size bytes with room for one more: itself, or moved when its
 * capacity *cap had to grow (doubling, from first); NULL when out of memory (the array
 * is then unchanged). */
static void *room_for_one(void *items, size_t n, size_t *cap, size_t size, size_t first)
{
    if (n < *cap)
        return items;
    size_t grown = *cap ? *cap * 2 : first;
    void *moved = realloc(items, grown * size);
    if (moved)
        *cap = grown;
    return moved;
}

/* Reads the tarball's members in order, calling visit for each until it returns -1
 * (an error it put in err). */
typedef int (*member_fn)(struct load *L, struct archive *a, struct archive_entry *e, const char *name, void *arg,
                         char *err, size_t errlen);
static int tar_walk(struct load *L, member_fn visit, void *arg, char *err, size_t errlen)
{
    struct archive *a = open_tar(L, err, errlen);
    if (!a)
        return -1;
    struct archive_entry *e;
    char name[512];
    int r = 0, rc = 0;
    while (rc == 0 && (r = next_entry(L, a, &e, name, sizeof(name), err, errlen)) == 1)
        rc = visit(L, a, e, name, arg, err, errlen);
    if (r < 0)
        rc = -1;
    sym_archive_read_free(a);
    return rc;
}

/* Pass 1: the metadata files and the links. */
static int pass1_member(struct load *L, struct archive *a, struct archive_entry *e, const char *name, void *members,
                        char *err, size_t errlen)
{
    if (++*(size_t *)members > MEMBERS_MAX)
        return img_err(err, errlen, "%s: more than %d archive members", L->path, MEMBERS_MAX);
    const char *link = sym_archive_entry_hardlink(e);
    int hard = link != NULL;
    if (!link && sym_archive_entry_filetype(e) == AE_IFLNK)
        link = sym_archive_entry_symlink(e);
    if (link) {
        struct alias *g = room_for_one(L->al, L->nal, &L->alcap, sizeof(*g), 16);
        if (!g)
            return img_err(err, errlen, "out of memory");
        L->al = g;
        struct alias *al = &L->al[L->nal];
        snprintf(al->name, sizeof(al->name), "%s", name);
        if (resolve_link(name, link, hard, al->target, sizeof(al->target)) == 0)
            L->nal++; /* a link that climbs out is simply not followed */
        return 0;
    }
    size_t *len;
    char **slot = meta_slot(L, name, &len);
    if (!slot || sym_archive_entry_filetype(e) != AE_IFREG)
        return 0;
    if (sym_archive_entry_size(e) > (la_int64_t)IMAGE_JSON_MAX)
        return img_err(err, errlen, "%s: %s is larger than %u bytes", L->path, name, IMAGE_JSON_MAX);
    size_t n = (size_t)sym_archive_entry_size(e);
    free(*slot);
    *slot = malloc(n + 1);
    if (!*slot)
        return img_err(err, errlen, "out of memory");
    la_ssize_t got = sym_archive_read_data(a, *slot, n);
    if (got < 0 || (size_t)got != n)
        return img_err(err, errlen, "%s: cannot read %s", L->path, name);
    (*slot)[n] = 0;
    *len = n;
    return 0;
}

static int tar_pass1(struct load *L, char *err, size_t errlen)
{
    size_t members = 0;
    return tar_walk(L, pass1_member, &members, err, errlen);
}

/* Pass 2: every OCI blob (docker mode: every member manifest.json names) into the store. */
static int pass2_member(struct load *L, struct archive *a, struct archive_entry *e, const char *name, void *docker,
                        char *err, size_t errlen)
{
    if (sym_archive_entry_filetype(e) != AE_IFREG || sym_archive_entry_hardlink(e))
        return 0;
    char want[IMAGE_DIGEST_MAX];
    blob_name_digest(name, want);
    struct member *m = *(const int *)docker ? find_member(L, name) : NULL;
    if (*(const int *)docker ? !m : !want[0])
        return 0;
    char got[IMAGE_DIGEST_MAX];
    uint8_t head[4];
    size_t nhead = 0;
    if (want[0] && !m && store_has(L->src.images_dir, want, (uint64_t)sym_archive_entry_size(e)))
        return 0;
    if (import_stream(L, read_archive, a, want, name, got, head, &nhead, err, errlen) < 0)
        return -1;
    if (m) {
        snprintf(m->digest, sizeof(m->digest), "%s", got);
        memcpy(m->head, head, nhead);
        m->nhead = nhead;
        m->size = (uint64_t)sym_archive_entry_size(e);
    }
    return 0;
}

static int tar_pass2(struct load *L, int docker, char *err, size_t errlen)
{
    return tar_walk(L, pass2_member, &docker, err, errlen);
}

/* ---- sources for the OCI walk ---- */

/* Tarballs: pass 2 already stored every blob; the walk only checks they are there. */
static int fetch_stored(struct img_source *src, const char *digest, uint64_t size, uint64_t limit, const char *what,
                        char *err, size_t errlen)
{
    if (store_has(src->images_dir, digest, size)) {
        if (src->progress && strcmp(what, "manifest"))
            src->progress(src->progress_user, digest, size, size);
        return 0;
    }
    return img_err(err, errlen, "%s: %s %s is missing from the archive or has the wrong size", src->name, what, digest);
}

static int fetch_dir(struct img_source *src, const char *digest, uint64_t size, uint64_t limit, const char *what,
                     char *err, size_t errlen)
{
    struct load *L = (struct load *)src;
    if (store_has(src->images_dir, digest, size))
        return fetch_stored(src, digest, size, limit, what, err, errlen);
    char p[300];
    snprintf(p, sizeof(p), "blobs/sha256/%s", digest + 7);
    int fd = open_member(L, p);
    if (fd < 0)
        return errno == ENOENT ? img_err(err, errlen, "%s: %s %s is missing (%s)", L->path, what, digest, p)
                               : member_error(L, p, what, err, errlen);
    char got[IMAGE_DIGEST_MAX];
    int rc = import_stream(L, read_fd, &fd, digest, p, got, NULL, NULL, err, errlen);
    close(fd);
    if (rc == 0 && !store_has(src->images_dir, digest, size))
        rc = img_err(err, errlen, "%s: %s %s does not have the size its descriptor says (%llu)", L->path, what, digest,
                     (unsigned long long)size);
    if (rc == 0 && src->progress && strcmp(what, "manifest"))
        src->progress(src->progress_user, digest, size, size);
    return rc;
}

/* ---- results ---- */

/* One image under one name. A name is a reference, stored in canonical form (a bare
 * "x" is docker.io/library/x:latest, as for pulls); anything else refuses the load. */
static int add_result(struct load *L, const char *name, const struct image_manifest_info *info, char *err,
                      size_t errlen)
{
    char canon[sizeof(L->out[0].name)] = "";
    if (name && *name) {
        struct image_ref ref;
        char why[256], shown[300];
        printable(name, shown, sizeof(shown));
        for (const unsigned char *p = (const unsigned char *)name; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                return img_err(err, errlen, "%s: refusing the image name \"%s\": it holds control characters", L->path,
                               shown);
        if (image_ref_parse(name, &ref, why, sizeof(why)) < 0)
            return img_err(err, errlen, "%s: refusing the image name \"%s\": %s", L->path, shown, why);
        image_ref_format(&ref, canon, sizeof(canon));
    }
    if (L->nout == LOAD_NAMES_MAX)
        return img_err(err, errlen, "%s: more than %d image names in one archive", L->path, LOAD_NAMES_MAX);
    struct image_loaded *g = room_for_one(L->out, L->nout, &L->outcap, sizeof(*g), 4);
    if (!g)
        return img_err(err, errlen, "out of memory");
    L->out = g;
    struct image_loaded *r = &L->out[L->nout++];
    memset(r, 0, sizeof(*r));
    r->info = *info;
    snprintf(r->name, sizeof(r->name), "%s", canon);
    return 0;
}

/* ---- OCI layout ---- */

/* 0 when the entry is an image index without a linux/amd64 image. */
static int has_amd64(struct load *L, const struct mf_entry *e)
{
    size_t len;
    char why[700];
    char *doc = image_blob_read(L->src.images_dir, e->digest, IMAGE_JSON_MAX, &len, why, sizeof(why));
    int ok = 1;
    struct mf_index sub;
    if (doc && mf_kind_of(doc, len, e->media_type) == MF_INDEX &&
        mf_parse_index(doc, len, &sub, why, sizeof(why)) == 0) {
        ok = mf_select_platform(&sub, "linux", "amd64", why, sizeof(why)) >= 0;
        mf_index_free(&sub);
    }
    free(doc);
    return ok;
}

static int load_oci(struct load *L, char *err, size_t errlen)
{
    if (L->oci_layout) {
        json_t *lay = json_loadb(L->oci_layout, L->layout_len, 0, NULL);
        json_t *v = json_object_get(lay, "imageLayoutVersion");
        int ok = json_is_string(v) && !strncmp(json_string_value(v), "1.", 2);
        json_decref(lay);
        if (!ok)
            return img_err(err, errlen, "%s: oci-layout is not an OCI image layout version 1.x", L->path);
    }
    struct mf_index idx;
    char why[700];
    if (mf_parse_index(L->index_json, L->index_len, &idx, why, sizeof(why)) < 0)
        return img_err(err, errlen, "%s: index.json: %s", L->path, why);
    int rc = 0;
    if (idx.n == 0)
        rc = img_err(err, errlen, "%s: index.json lists no images", L->path);
    for (size_t i = 0; rc == 0 && i < idx.n; i++) {
        struct mf_entry *e = &idx.e[i];
        /* an entry for another platform (a layout holding one arch of many) is skipped
         * when the layout also has other images */
        if (e->os[0] && e->arch[0] && (strcmp(e->os, "linux") || strcmp(e->arch, "amd64")) && idx.n > 1)
            continue;
        if (e->size > IMAGE_JSON_MAX) {
            rc = img_err(err, errlen, "%s: manifest %s is larger than %u bytes", L->path, e->digest, IMAGE_JSON_MAX);
            break;
        }
        struct image_manifest_info *info = calloc(1, sizeof(*info));
        if (!info) {
            rc = img_err(err, errlen, "out of memory");
            break;
        }
        rc = L->src.fetch(&L->src, e->digest, e->size, e->size, "manifest", err, errlen);
        if (rc == 0 && idx.n > 1 && !has_amd64(L, e)) {
            free(info); /* an index without linux/amd64 among other images: skip it */
            continue;
        }
        if (rc == 0)
            rc = img_resolve(&L->src, e->digest, e->media_type, info, 0, err, errlen);
        if (rc == 0)
            rc = add_result(L, e->ref_name, info, err, errlen);
        free(info);
    }
    if (rc == 0 && L->nout == 0)
        rc = img_err(err, errlen, "%s: index.json has no linux/amd64 image", L->path);
    mf_index_free(&idx);
    return rc;
}

/* ---- docker save ---- */

/* Indexes the links pass 1 found (the first of two with one name wins). */
static int index_aliases(struct load *L)
{
    if (index_init(&L->ai, L->nal) < 0)
        return -1;
    for (size_t i = 0; i < L->nal; i++) {
        uint32_t *at = index_find(&L->ai, L->al[i].name, alias_name, L->al);
        if (!*at)
            *at = (uint32_t)i + 1;
    }
    return 0;
}

static const char *follow_aliases(struct load *L, const char *name)
{
    for (int hop = 0; hop < 8 && L->ai.slot; hop++) {
        uint32_t *at = index_find(&L->ai, name, alias_name, L->al);
        if (!*at)
            return name;
        name = L->al[*at - 1].target;
    }
    return name;
}

/* Records the member manifest.json names (after links); -1 on a bad name. */
static int want_member(struct load *L, const char *raw, size_t cap_members, char *err, size_t errlen)
{
    char name[512];
    if (clean_name(raw, name, sizeof(name)) < 0)
        return img_err(err, errlen, "%s: manifest.json names '%.200s' (absolute path or '..')", L->path, raw);
    const char *real = follow_aliases(L, name);
    uint32_t *at = index_find(&L->mi, real, member_name, L->m);
    if (*at)
        return 0;
    if (L->nm >= cap_members)
        return img_err(err, errlen, "%s: manifest.json names too many files", L->path);
    snprintf(L->m[L->nm].name, sizeof(L->m[0].name), "%s", real);
    *at = (uint32_t)++L->nm;
    return 0;
}

static const char *sniff_layer_type(const struct member *m)
{
    if (m->nhead >= 2 && m->head[0] == 0x1f && m->head[1] == 0x8b)
        return MT_OCI_LAYER_GZIP;
    if (m->nhead >= 4 && m->head[0] == 0x28 && m->head[1] == 0xb5 && m->head[2] == 0x2f && m->head[3] == 0xfd)
        return MT_OCI_LAYER_ZSTD;
    return MT_OCI_LAYER_TAR;
}

/* Stores a synthesised OCI manifest for one docker save image and reports it. */
static int docker_image(struct load *L, json_t *ent, char *err, size_t errlen)
{
    json_t *cfg = json_object_get(ent, "Config"), *layers = json_object_get(ent, "Layers");
    struct member *c = find_member(L, follow_aliases(L, json_string_value(cfg)));
    if (!c || !c->digest[0])
        return img_err(err, errlen, "%s: the config %s named in manifest.json is not in the archive", L->path,
                       json_string_value(cfg));
    if (c->size > IMAGE_JSON_MAX)
        return img_err(err, errlen, "%s: the image config is larger than %u bytes", L->path, IMAGE_JSON_MAX);
    struct image_manifest_info *info = calloc(1, sizeof(*info));
    json_t *m = json_object(), *la = json_array();
    int rc = -1;
    if (!info || !m || !la) {
        img_err(err, errlen, "out of memory");
        goto out;
    }
    snprintf(info->config_digest, sizeof(info->config_digest), "%s", c->digest);
    json_object_set_new(m, "schemaVersion", json_integer(2));
    json_object_set_new(m, "mediaType", json_string(MT_OCI_MANIFEST));
    json_object_set_new(
        m, "config",
        json_pack("{s:s,s:s,s:I}", "mediaType", MT_OCI_CONFIG, "digest", c->digest, "size", (json_int_t)c->size));
    for (size_t i = 0; i < json_array_size(layers); i++) {
        const char *ln = json_string_value(json_array_get(layers, i));
        struct member *l = find_member(L, follow_aliases(L, ln));
        if (!l || !l->digest[0]) {
            img_err(err, errlen, "%s: the layer %s named in manifest.json is not in the archive", L->path, ln);
            goto out;
        }
        struct image_layer *il = &info->layers[info->nlayers++];
        snprintf(il->digest, sizeof(il->digest), "%s", l->digest);
        snprintf(il->media_type, sizeof(il->media_type), "%s", sniff_layer_type(l));
        il->size = l->size;
        info->total_size += l->size;
        json_array_append_new(la, json_pack("{s:s,s:s,s:I}", "mediaType", il->media_type, "digest", il->digest, "size",
                                            (json_int_t)il->size));
        if (L->src.progress)
            L->src.progress(L->src.progress_user, il->digest, il->size, il->size);
    }
    json_object_set(m, "layers", la);
    char *text = json_dumps(m, JSON_COMPACT);
    if (!text) {
        img_err(err, errlen, "out of memory");
        goto out;
    }
    rc = store_put(L->src.images_dir, text, strlen(text), info->manifest_digest, err, errlen);
    free(text);
    if (rc < 0)
        goto out;
    json_t *tags = json_object_get(ent, "RepoTags");
    size_t ntags = json_is_array(tags) ? json_array_size(tags) : 0;
    if (ntags == 0)
        rc = add_result(L, "", info, err, errlen);
    for (size_t i = 0; rc == 0 && i < ntags; i++)
        rc = add_result(L, json_string_value(json_array_get(tags, i)), info, err, errlen);
out:
    json_decref(m);
    json_decref(la);
    free(info);
    return rc;
}

static int load_docker(struct load *L, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(L->manifest_json, L->manifest_len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return img_err(err, errlen, "%s: manifest.json is not valid JSON: %s", L->path, je.text);
    int rc = -1;
    size_t n = json_array_size(root);
    if (!json_is_array(root) || n == 0 || n > DOCKER_IMAGES_MAX) {
        img_err(err, errlen, "%s: manifest.json is not a list of 1 to %d images", L->path, DOCKER_IMAGES_MAX);
        goto out;
    }
    /* validate and collect the members to import */
    size_t cap = 0, names = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *ent = json_array_get(root, i), *layers = json_object_get(ent, "Layers"),
               *tags = json_object_get(ent, "RepoTags");
        if (!json_is_object(ent) || !json_is_string(json_object_get(ent, "Config")) || !json_is_array(layers)) {
            img_err(err, errlen, "%s: manifest.json entry %zu has no Config or Layers", L->path, i);
            goto out;
        }
        if (json_array_size(layers) > IMAGE_MAX_LAYERS) {
            img_err(err, errlen, "%s: image %zu has more than %d layers", L->path, i, IMAGE_MAX_LAYERS);
            goto out;
        }
        for (size_t j = 0; j < json_array_size(layers); j++)
            if (!json_is_string(json_array_get(layers, j))) {
                img_err(err, errlen, "%s: manifest.json entry %zu has a Layers entry that is not a string", L->path, i);
                goto out;
            }
        if (tags && !json_is_null(tags)) {
            int ok = json_is_array(tags) && json_array_size(tags) <= 1024;
            for (size_t j = 0; ok && j < json_array_size(tags); j++)
                ok = json_is_string(json_array_get(tags, j)) && json_string_length(json_array_get(tags, j)) < 1000;
            if (!ok) {
                img_err(err, errlen, "%s: manifest.json entry %zu has malformed RepoTags", L->path, i);
                goto out;
            }
            names += json_array_size(tags);
            if (names > LOAD_NAMES_MAX) {
                img_err(err, errlen, "%s: manifest.json names more than %d images (RepoTags)", L->path, LOAD_NAMES_MAX);
                goto out;
            }
        }
        cap += 1 + json_array_size(layers);
    }
    L->m = calloc(cap, sizeof(*L->m));
    if (!L->m || index_init(&L->mi, cap) < 0 || (!L->ai.slot && index_aliases(L) < 0)) {
        img_err(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *ent = json_array_get(root, i), *layers = json_object_get(ent, "Layers");
        if (want_member(L, json_string_value(json_object_get(ent, "Config")), cap, err, errlen) < 0)
            goto out;
        for (size_t j = 0; j < json_array_size(layers); j++)
            if (want_member(L, json_string_value(json_array_get(layers, j)), cap, err, errlen) < 0)
                goto out;
    }
    /* import */
    if (L->is_dir) {
        for (size_t i = 0; i < L->nm; i++) {
            struct member *m = &L->m[i];
            char want[IMAGE_DIGEST_MAX];
            int fd = open_member(L, m->name);
            struct stat st;
            if (fd < 0 || fstat(fd, &st) < 0) {
                member_error(L, m->name, "the file named in manifest.json", err, errlen);
                if (fd >= 0)
                    close(fd);
                goto out;
            }
            blob_name_digest(m->name, want);
            int r = import_stream(L, read_fd, &fd, want, m->name, m->digest, m->head, &m->nhead, err, errlen);
            m->size = (uint64_t)st.st_size;
            close(fd);
            if (r < 0)
                goto out;
        }
    } else if (tar_pass2(L, 1, err, errlen) < 0) {
        goto out;
    }
    rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = docker_image(L, json_array_get(root, i), err, errlen);
out:
    json_decref(root);
    return rc;
}

int image_load(const char *images_dir, const char *path, struct image_loaded **out, size_t *count, char *err,
               size_t errlen)
{
    *out = NULL;
    *count = 0;
    struct stat st;
    if (stat(path, &st) < 0)
        return img_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
    if (store_init(images_dir, err, errlen) < 0)
        return -1;
    store_sweep(images_dir);
    struct load *L = calloc(1, sizeof(*L));
    if (!L)
        return img_err(err, errlen, "out of memory");
    L->path = path;
    L->is_dir = S_ISDIR(st.st_mode);
    L->dirfd = L->is_dir ? open(path, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    if (L->is_dir && L->dirfd < 0) {
        int e = errno;
        free(L);
        return img_err(err, errlen, "cannot open %s: %s", path, strerror(e));
    }
    L->src.images_dir = images_dir;
    L->src.name = path;
    int rc = -1;
    if (L->is_dir) {
        if (read_dir_file(L, "manifest.json", &L->manifest_json, &L->manifest_len, err, errlen) < 0 ||
            read_dir_file(L, "index.json", &L->index_json, &L->index_len, err, errlen) < 0 ||
            read_dir_file(L, "oci-layout", &L->oci_layout, &L->layout_len, err, errlen) < 0)
            goto out;
        L->src.fetch = fetch_dir;
    } else if (S_ISREG(st.st_mode)) {
        if (tar_pass1(L, err, errlen) < 0)
            goto out;
        L->src.fetch = fetch_stored;
    } else {
        img_err(err, errlen, "%s is neither a file nor a directory", path);
        goto out;
    }
    if (L->manifest_json) {
        rc = load_docker(L, err, errlen);
    } else if (L->index_json) {
        rc = L->is_dir ? 0 : tar_pass2(L, 0, err, errlen);
        if (rc == 0)
            rc = load_oci(L, err, errlen);
    } else {
        img_err(err, errlen,
                "%s is neither a `docker save` archive nor an OCI image layout (no manifest.json or index.json)", path);
    }
out:
    if (rc == 0) {
        *out = L->out;
        *count = L->nout;
    } else {
        free(L->out);
    }
    free(L->manifest_json);
    free(L->index_json);
    free(L->oci_layout);
    free(L->m);
    free(L->al);
    free(L->mi.slot);
    free(L->ai.slot);
    if (L->dirfd >= 0)
        close(L->dirfd);
    free(L);
    return rc;
}
