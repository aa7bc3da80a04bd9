/* Pass 1 of the layer merge: reads each layer's tar headers in order and applies them
 * to an in-memory tree (later layers override, `.wh.NAME` deletes, `.wh..wh..opq`
 * hides a directory's lower contents). Layers are hostile: absolute paths, "..",
 * writes through symlinks, dangling or escaping hard links and absurd sizes are
 * refused with an error naming the layer and the member. Only metadata is kept;
 * file bytes stay in the layers and are read again in pass 2. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image/unpack_int.h"
#include "util/util.h"
#include "util/dl_archive.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define WH_META ".wh..wh."

/* One layer's state while its headers are applied. */
struct layer_ctx {
    struct unpack_tree *t;
    int layer;
    const char *digest;
    const char *member; /* raw member name, for messages */
    char *err;
    size_t errlen;
};

/* A normalised member path: components without "", "." (never ".."). */
struct upath {
    char buf[UNPACK_MAX_PATH + 1];
    const char *comp[UNPACK_MAX_PATH / 2 + 1];
    uint32_t len[UNPACK_MAX_PATH / 2 + 1];
    size_t n;
};

__attribute__((format(printf, 2, 3))) static int fail(struct layer_ctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "layer %s: member \"%.300s\": %s", c->digest, c->member ? c->member : "?", msg);
    return -1;
}

static int too_many_names(struct layer_ctx *c)
{
    return fail(c,
                "the merged image would hold more than %llu names, the limit (raise it with "
                "COCOON_UNPACK_MAX_ENTRIES=N)",
                (unsigned long long)c->t->max_entries);
}

static int meta_within_budget(struct layer_ctx *c)
{
    if (c->t->meta_bytes <= c->t->max_meta)
        return 0;
    return fail(c,
                "the image's metadata (names, link targets, xattrs) needs more than %llu bytes of memory, the "
                "limit (raise it with COCOON_UNPACK_MAX_META=BYTES)",
                (unsigned long long)c->t->max_meta);
}

static uint32_t name_hash(const struct unpack_node *parent, const char *name, size_t len)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)parent;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 1099511628211ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static void xattrs_free(struct unpack_xattr *x)
{
    while (x) {
        struct unpack_xattr *next = x->next;
        free(x->name);
        free(x->value);
        free(x);
        x = next;
    }
}

/* Memory a list of xattrs holds, for the metadata budget. */
static uint64_t xattrs_bytes(const struct unpack_xattr *x)
{
    uint64_t n = 0;
    for (; x; x = x->next)
        n += sizeof(*x) + strlen(x->name) + 1 + x->len;
    return n;
}

static void inode_put(struct unpack_tree *t, struct unpack_inode *in)
{
    if (!in || --in->refs > 0)
        return;
    t->meta_bytes -= sizeof(*in) + (in->target ? strlen(in->target) + 1 : 0) + xattrs_bytes(in->xattrs);
    free(in->target);
    xattrs_free(in->xattrs);
    free(in);
}

static struct unpack_inode *inode_new(struct unpack_tree *t, uint32_t mode)
{
    struct unpack_inode *in = calloc(1, sizeof(*in));
    if (in) {
        in->mode = mode;
        in->layer = -1;
        t->meta_bytes += sizeof(*in);
    }
    return in;
}

/* A budget from the environment variable name, else the default. */
static int budget(const char *name, uint64_t dflt, int sizes, uint64_t *out, char *err, size_t errlen)
{
    const char *s = getenv(name);
    *out = dflt;
    if (s && *s && util_parse_count(s, sizes, out) < 0) {
        snprintf(err, errlen, "%s=\"%.40s\" is not valid: expected a whole number greater than 0%s", name, s,
                 sizes ? " (bytes, or with a K, M, G or T suffix)" : "");
        return -1;
    }
    return 0;
}

int unpack_tree_init(struct unpack_tree *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (budget("COCOON_UNPACK_MAX_ENTRIES", UNPACK_MAX_ENTRIES, 0, &t->max_entries, err, errlen) < 0 ||
        budget("COCOON_UNPACK_MAX_BYTES", UNPACK_MAX_BYTES, 1, &t->max_bytes, err, errlen) < 0 ||
        budget("COCOON_UNPACK_MAX_META", UNPACK_MAX_META, 1, &t->max_meta, err, errlen) < 0)
        return -1;
    t->nbuckets = 1 << 16;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    t->root = calloc(1, sizeof(*t->root));
    if (t->root)
        t->root->inode = inode_new(t, S_IFDIR | 0755);
    if (!t->buckets || !t->root || !t->root->inode) {
        snprintf(err, errlen, "out of memory");
        unpack_tree_free(t);
        return -1;
    }
    t->root->inode->refs = 1;
    t->root->name = NULL;
    return 0;
}

static void tree_grow(struct unpack_tree *t)
{
    size_t n = t->nbuckets * 2;
    struct unpack_node **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct unpack_node *x = t->buckets[i];
        while (x) {
            struct unpack_node *next = x->hnext;
            x->hnext = b[x->hash & (n - 1)];
            b[x->hash & (n - 1)] = x;
            x = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

static struct unpack_node *tree_lookup(struct unpack_tree *t, struct unpack_node *parent, const char *name,
                                       uint32_t len)
{
    uint32_t h = name_hash(parent, name, len);
    for (struct unpack_node *x = t->buckets[h & (t->nbuckets - 1)]; x; x = x->hnext)
        if (x->hash == h && x->parent == parent && x->namelen == len && memcmp(x->name, name, len) == 0)
            return x;
    return NULL;
}

static struct unpack_node *tree_add(struct unpack_tree *t, struct unpack_node *parent, const char *name, uint32_t len,
                                    struct unpack_inode *in)
{
    struct unpack_node *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->name = malloc(len + 1);
    if (!x->name) {
        free(x);
        return NULL;
    }
    t->meta_bytes += sizeof(*x) + len + 1;
    memcpy(x->name, name, len);
    x->name[len] = 0;
    x->namelen = len;
    x->hash = name_hash(parent, name, len);
    x->parent = parent;
    x->inode = in;
    in->refs++;
    x->next = parent->child;
    if (parent->child)
        parent->child->prev = x;
    parent->child = x;
    if (t->nnodes + 1 > t->nbuckets)
        tree_grow(t);
    x->hnext = t->buckets[x->hash & (t->nbuckets - 1)];
    t->buckets[x->hash & (t->nbuckets - 1)] = x;
    t->nnodes++;
    return x;
}

/* Removes x and everything below it. */
static void tree_remove(struct unpack_tree *t, struct unpack_node *x)
{
    while (x->child)
        tree_remove(t, x->child);
    struct unpack_node **pp = &t->buckets[x->hash & (t->nbuckets - 1)];
    while (*pp != x)
        pp = &(*pp)->hnext;
    *pp = x->hnext;
    if (x->prev)
        x->prev->next = x->next;
    else
        x->parent->child = x->next;
    if (x->next)
        x->next->prev = x->prev;
    inode_put(t, x->inode);
    t->meta_bytes -= sizeof(*x) + x->namelen + 1;
    free(x->name);
    free(x);
    t->nnodes--;
}

void unpack_tree_free(struct unpack_tree *t)
{
    if (t->root) {
        while (t->root->child)
            tree_remove(t, t->root->child);
        inode_put(t, t->root->inode);
        free(t->root);
    }
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

/* Deletes what lower layers put at x: all of x if this layer never named it, else
 * (a directory this layer named) the lower parts below it. */
static void delete_lower(struct unpack_tree *t, struct unpack_node *x, int layer)
{
    if (x->seen < layer) {
        tree_remove(t, x);
        return;
    }
    if (!S_ISDIR(x->inode->mode))
        return;
    struct unpack_node *c = x->child;
    while (c) {
        struct unpack_node *next = c->next;
        delete_lower(t, c, layer);
        c = next;
    }
}

/* Splits and checks a member path. Absolute paths and ".." are refused, "./" and
 * empty components dropped; the root itself is n == 0. */
static int path_parse(struct layer_ctx *c, const char *raw, struct upath *p)
{
    size_t len = strlen(raw);
    if (len > UNPACK_MAX_PATH)
        return fail(c, "path longer than %s bytes", "4096");
    if (raw[0] == '/')
        return fail(c, "absolute path refused%s", "");
    memcpy(p->buf, raw, len + 1);
    p->n = 0;
    char *s = p->buf;
    while (*s) {
        char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (slash)
            *slash = 0;
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return fail(c, "path escapes the root (\"..\" component)%s", "");
        if (n > UNPACK_MAX_NAME)
            return fail(c, "path component longer than %s bytes", "255");
        if (n > 0 && !(n == 1 && s[0] == '.')) {
            p->comp[p->n] = s;
            p->len[p->n] = (uint32_t)n;
            p->n++;
        }
        if (!slash)
            break;
        s = slash + 1;
    }
    return 0;
}

/* Finds (create == 0) or makes (create == 1) the directory holding components
 * [0, upto). Refuses to pass through a symlink or a non-directory. With create,
 * marks every directory on the way as named by this layer. *out is NULL when a
 * directory is missing and create is 0. */
static int walk_dirs(struct layer_ctx *c, const struct upath *p, size_t upto, int create, struct unpack_node **out)
{
    struct unpack_tree *t = c->t;
    struct unpack_node *d = t->root;
    if (create)
        d->seen = c->layer;
    for (size_t i = 0; i < upto; i++) {
        struct unpack_node *x = tree_lookup(t, d, p->comp[i], p->len[i]);
        if (!x) {
            if (!create) {
                *out = NULL;
                return 0;
            }
            if (t->nnodes >= t->max_entries)
                return too_many_names(c);
            struct unpack_inode *in = inode_new(t, S_IFDIR | 0755);
            if (!in || !(x = tree_add(t, d, p->comp[i], p->len[i], in))) {
                free(in);
                return fail(c, "out of memory%s", "");
            }
        } else if (S_ISLNK(x->inode->mode)) {
            char what[UNPACK_MAX_PATH + 64];
            snprintf(what, sizeof(what), "%.*s", (int)(p->comp[i] + p->len[i] - p->buf), p->buf);
            return fail(c, "refused: parent \"%.300s\" is a symlink (writing through it could escape the root)", what);
        } else if (!S_ISDIR(x->inode->mode)) {
            char what[UNPACK_MAX_PATH + 64];
            snprintf(what, sizeof(what), "%.*s", (int)(p->comp[i] + p->len[i] - p->buf), p->buf);
            return fail(c, "parent \"%.300s\" is not a directory", what);
        }
        if (create)
            x->seen = c->layer;
        d = x;
    }
    *out = d;
    return 0;
}

static int read_xattrs(struct layer_ctx *c, struct archive_entry *e, struct unpack_xattr **out)
{
    *out = NULL;
    struct unpack_xattr **tail = out;
    size_t count = 0, bytes = 0;
    const char *name;
    const void *value;
    size_t len;
    sym_archive_entry_xattr_reset(e);
    while (sym_archive_entry_xattr_next(e, &name, &value, &len) == ARCHIVE_OK) {
        if (!name || !*name)
            continue;
        count++;
        bytes += strlen(name) + len;
        if (count > UNPACK_MAX_XATTRS || bytes > UNPACK_MAX_XATTR_BYTES) {
            xattrs_free(*out);
            *out = NULL;
            return fail(c, "too many or too large extended attributes%s", "");
        }
        struct unpack_xattr *x = calloc(1, sizeof(*x));
        if (x) {
            x->name = strdup(name);
            x->value = malloc(len ? len : 1);
            x->len = len;
        }
        if (!x || !x->name || !x->value) {
            if (x) {
                free(x->name);
                free(x->value);
                free(x);
            }
            xattrs_free(*out);
            *out = NULL;
            return fail(c, "out of memory%s", "");
        }
        if (len)
            memcpy(x->value, value, len);
        *tail = x;
        tail = &x->next;
    }
    return 0;
}

/* Copies a member's metadata into an inode (the type is already set). */
static int fill_inode(struct layer_ctx *c, struct archive_entry *e, struct unpack_inode *in)
{
    in->mode = (in->mode & S_IFMT) | ((uint32_t)sym_archive_entry_perm(e) & 07777);
    int64_t uid = sym_archive_entry_uid(e), gid = sym_archive_entry_gid(e);
    if (uid < 0 || uid > UINT32_MAX - 1 || gid < 0 || gid > UINT32_MAX - 1)
        return fail(c, "owner out of range%s", "");
    in->uid = (uint32_t)uid;
    in->gid = (uint32_t)gid;
    in->mtime = sym_archive_entry_mtime_is_set(e) ? (int64_t)sym_archive_entry_mtime(e) : 0;
    long ns = sym_archive_entry_mtime_is_set(e) ? sym_archive_entry_mtime_nsec(e) : 0;
    in->mtime_nsec = ns >= 0 && ns < 1000000000 ? (uint32_t)ns : 0;
    struct unpack_xattr *xs;
    if (read_xattrs(c, e, &xs) < 0)
        return -1;
    c->t->meta_bytes += xattrs_bytes(xs);
    c->t->meta_bytes -= xattrs_bytes(in->xattrs);
    xattrs_free(in->xattrs);
    in->xattrs = xs;
    return 0;
}

static int apply_whiteout(struct layer_ctx *c, const struct upath *p)
{
    const char *name = p->comp[p->n - 1];
    uint32_t len = p->len[p->n - 1];
    struct unpack_node *dir;
    if (len == strlen(WH_OPAQUE) && memcmp(name, WH_OPAQUE, len) == 0) {
        if (walk_dirs(c, p, p->n - 1, 1, &dir) < 0)
            return -1;
        for (struct unpack_node *x = dir->child, *next; x; x = next) {
            next = x->next;
            delete_lower(c->t, x, c->layer);
        }
        return 0;
    }
    if (len >= strlen(WH_META) && memcmp(name, WH_META, strlen(WH_META)) == 0)
        return 0; /* other AUFS bookkeeping (.wh..wh.plnk, ...): ignored as Docker does */
    uint32_t skip = (uint32_t)strlen(WH_PREFIX);
    if (len == skip)
        return fail(c, "whiteout without a name%s", "");
    if (walk_dirs(c, p, p->n - 1, 0, &dir) < 0)
        return -1;
    if (!dir)
        return 0;
    struct unpack_node *x = tree_lookup(c->t, dir, name + skip, len - skip);
    if (x)
        delete_lower(c->t, x, c->layer);
    return 0;
}

static int add_hardlink(struct layer_ctx *c, struct archive_entry *e, struct unpack_node *dir, const struct upath *p,
                        const char *target_raw)
{
    struct upath *tp = malloc(sizeof(*tp));
    if (!tp)
        return fail(c, "out of memory%s", "");
    const char *saved = c->member;
    int rc = -1;
    if (path_parse(c, target_raw, tp) < 0) {
        snprintf(c->err + strlen(c->err), c->errlen - strlen(c->err), " (hard link target \"%.300s\")", target_raw);
        goto out;
    }
    struct unpack_node *tdir, *target = NULL;
    if (tp->n == 0) {
        fail(c, "hard link to the root directory refused%s", "");
        goto out;
    }
    if (walk_dirs(c, tp, tp->n - 1, 0, &tdir) < 0)
        goto out;
    if (tdir)
        target = tree_lookup(c->t, tdir, tp->comp[tp->n - 1], tp->len[tp->n - 1]);
    if (!target) {
        fail(c, "hard link target \"%.300s\" does not exist in this or a lower layer", target_raw);
        goto out;
    }
    if (S_ISDIR(target->inode->mode)) {
        fail(c, "hard link to directory \"%.300s\" refused", target_raw);
        goto out;
    }
    struct unpack_inode *in = target->inode;
    if (in->refs >= 65000) {
        fail(c, "more than 65000 hard links to \"%.300s\"", target_raw);
        goto out;
    }
    struct unpack_node *old = tree_lookup(c->t, dir, p->comp[p->n - 1], p->len[p->n - 1]);
    if (old == target) {
        rc = 0;
        goto out;
    }
    in->refs++; /* keep it alive while an old name at this path goes */
    if (old)
        tree_remove(c->t, old);
    struct unpack_node *x = tree_add(c->t, dir, p->comp[p->n - 1], p->len[p->n - 1], in);
    in->refs--;
    if (!x) {
        fail(c, "out of memory%s", "");
        goto out;
    }
    x->seen = c->layer;
    /* A hard link member that carries data (pax allows it) rewrites the shared file. */
    if (sym_archive_entry_size_is_set(e) && sym_archive_entry_size(e) > 0 && S_ISREG(in->mode)) {
        in->size = (uint64_t)sym_archive_entry_size(e);
        in->layer = c->layer;
        in->member = 0; /* set by the caller */
        rc = 1;
        goto out;
    }
    rc = 0;
out:
    c->member = saved;
    free(tp);
    return rc;
}

static uint32_t entry_type(struct archive_entry *e)
{
    switch (sym_archive_entry_filetype(e)) {
    case AE_IFREG: return S_IFREG;
    case AE_IFDIR: return S_IFDIR;
    case AE_IFLNK: return S_IFLNK;
    case AE_IFCHR: return S_IFCHR;
    case AE_IFBLK: return S_IFBLK;
    case AE_IFIFO: return S_IFIFO;
    case AE_IFSOCK: return S_IFSOCK;
    default: return 0;
    }
}

/* Applies one member header. */
static int apply_member(struct layer_ctx *c, struct unpack_reader *r, struct archive_entry *e, uint64_t idx,
                        struct upath *p)
{
    const char *raw = unpack_entry_path(e);
    c->member = raw;
    if (!raw || !*raw)
        return fail(c, "member without a name%s", "");
    if (path_parse(c, raw, p) < 0)
        return -1;
    const char *hl = unpack_entry_hardlink(e);
    uint32_t type = hl ? S_IFREG : entry_type(e);
    if (!type)
        return fail(c, "unsupported member type%s", "");
    int64_t size = sym_archive_entry_size_is_set(e) ? sym_archive_entry_size(e) : 0;
    if (size < 0 || (uint64_t)size > UNPACK_MAX_FILE)
        return fail(c, "absurd size refused%s", "");
    if (!r->compressed && (uint64_t)size > r->blob_size)
        return fail(c, "claims more bytes than the layer blob holds%s", "");
    struct unpack_tree *t = c->t;
    if ((uint64_t)size > t->max_bytes - t->data_bytes)
        return fail(c,
                    "the layers hold more than %llu bytes of file data, the limit (raise it with "
                    "COCOON_UNPACK_MAX_BYTES=BYTES)",
                    (unsigned long long)t->max_bytes);
    t->data_bytes += (uint64_t)size;

    if (p->n == 0) { /* "./": the root directory's own metadata */
        if (type != S_IFDIR || hl)
            return fail(c, "the root must be a directory%s", "");
        c->t->root->seen = c->layer;
        return fill_inode(c, e, c->t->root->inode);
    }
    const char *last = p->comp[p->n - 1];
    if (p->len[p->n - 1] >= strlen(WH_PREFIX) && memcmp(last, WH_PREFIX, strlen(WH_PREFIX)) == 0)
        return apply_whiteout(c, p);

    struct unpack_node *dir;
    if (walk_dirs(c, p, p->n - 1, 1, &dir) < 0)
        return -1;
    if (hl) {
        int rc = add_hardlink(c, e, dir, p, hl);
        if (rc == 1) {
            struct unpack_node *x = tree_lookup(c->t, dir, last, p->len[p->n - 1]);
            x->inode->member = idx;
            rc = 0;
        }
        return rc;
    }

    struct unpack_node *old = tree_lookup(c->t, dir, last, p->len[p->n - 1]);
    if (old && type == S_IFDIR && S_ISDIR(old->inode->mode)) {
        old->seen = c->layer; /* a directory named again: new metadata, children kept */
        return fill_inode(c, e, old->inode);
    }
    if (old)
        tree_remove(c->t, old);
    if (c->t->nnodes >= c->t->max_entries)
        return too_many_names(c);
    struct unpack_inode *in = inode_new(c->t, type);
    if (!in)
        return fail(c, "out of memory%s", "");
    if (fill_inode(c, e, in) < 0) {
        in->refs = 1;
        inode_put(c->t, in);
        return -1;
    }
    if (S_ISREG(type)) {
        in->size = (uint64_t)size;
        if (size > 0) {
            in->layer = c->layer;
            in->member = idx;
        }
    } else if (S_ISLNK(type)) {
        const char *target = unpack_entry_symlink(e);
        size_t tl = target ? strlen(target) : 0;
        if (tl == 0 || tl >= 4096) {
            in->refs = 1;
            inode_put(c->t, in);
            return fail(c, "symlink target empty or longer than 4095 bytes%s", "");
        }
        /* The target is kept as written: it is only followed inside the guest, where
         * the root is the image, so an absolute or ".." target cannot reach the host. */
        in->target = strdup(target);
        in->size = tl;
        if (in->target)
            c->t->meta_bytes += tl + 1;
    } else if (S_ISCHR(type) || S_ISBLK(type)) {
        in->rdev_major = (uint32_t)sym_archive_entry_rdevmajor(e);
        in->rdev_minor = (uint32_t)sym_archive_entry_rdevminor(e);
    }
    struct unpack_node *x = tree_add(c->t, dir, last, p->len[p->n - 1], in);
    if (!x || (S_ISLNK(type) && !in->target)) {
        if (x)
            tree_remove(c->t, x);
        else {
            in->refs = 1;
            inode_put(c->t, in);
        }
        return fail(c, "out of memory%s", "");
    }
    x->seen = c->layer;
    return 0;
}

int unpack_tree_add_layer(struct unpack_tree *t, int layer, const char *digest, const char *blob_path, char *err,
                          size_t errlen)
{
    struct layer_ctx c = {.t = t, .layer = layer, .digest = digest, .err = err, .errlen = errlen};
    struct unpack_reader r;
    char rerr[512];
    if (unpack_reader_open(&r, blob_path, rerr, sizeof(rerr)) < 0) {
        snprintf(err, errlen, "layer %s: %s", digest, rerr);
        return -1;
    }
    struct upath *p = malloc(sizeof(*p));
    if (!p) {
        unpack_reader_close(&r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    char last[320] = "";
    for (uint64_t idx = 0;; idx++) {
        struct archive_entry *e;
        int ar = sym_archive_read_next_header(r.a, &e);
        if (ar == ARCHIVE_EOF) {
            rc = 0;
            break;
        }
        if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
            snprintf(err, errlen, "layer %s: corrupt or truncated layer%s%s%s: %s", digest,
                     *last ? " (after member \"" : "", last, *last ? "\")" : "", sym_archive_error_string(r.a));
            break;
        }
        if (++t->members > t->max_entries) {
            snprintf(err, errlen,
                     "layer %s: the image's layers hold more than %llu members, the limit (raise it with "
                     "COCOON_UNPACK_MAX_ENTRIES=N)",
                     digest, (unsigned long long)t->max_entries);
            break;
        }
        if (apply_member(&c, &r, e, idx, p) < 0 || meta_within_budget(&c) < 0)
            break;
        snprintf(last, sizeof(last), "%.300s", c.member);
        if (sym_archive_read_data_skip(r.a) != ARCHIVE_OK) {
            snprintf(err, errlen,
                     "layer %s: member \"%s\": corrupt or truncated layer (data shorter than the size "
                     "the member claims): %s",
                     digest, last, sym_archive_error_string(r.a));
            break;
        }
    }
    free(p);
    unpack_reader_close(&r);
    return rc;
}
