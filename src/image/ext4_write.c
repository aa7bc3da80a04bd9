/* Pass 2 of the layer merge: writes the merged tree into a new ext4 file with
 * libext2fs, as mke2fs would format it (4 KiB blocks, extents, flex_bg, 64bit,
 * metadata_csum, a journal), then fills it: directories, inodes with the tar's
 * uid/gid/mode/mtime (no root needed), hard links, symlinks, devices, xattrs, and
 * file bytes streamed from the layers again (all-zero blocks left as holes). The result
 * depends only on the layers: the same image always gives the same bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image_int.h"
#include "image/unpack_int.h"
#include "util/dl_archive.h"
#include "util/dl_ext2fs.h"

#define BLOCK_SIZE 4096u
#define INODE_SIZE 256u
#define MIN_FREE_BYTES (256ull << 20)

struct wctx {
    ext2_filsys fs;
    struct unpack_tree *t;
    char *err;
    size_t errlen;
    char path[UNPACK_MAX_PATH + 2]; /* of the node being written, for messages */
};

static int efail(struct wctx *w, errcode_t rc, const char *what)
{
    snprintf(w->err, w->errlen, "writing the ext4 image: %s \"/%.300s\": %s%s", what, w->path, sym_error_message(rc),
             rc == EXT2_ET_BLOCK_ALLOC_FAIL || rc == EXT2_ET_INODE_ALLOC_FAIL ? " (image size underestimated)" : "");
    return -1;
}

/* ---- sizing ---- */

struct sizing {
    uint64_t blocks, inodes, bytes;
};

static uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

static void size_walk(struct unpack_node *d, struct sizing *s)
{
    uint64_t dirent_bytes = 24; /* "." and ".." */
    for (struct unpack_node *x = d->child; x; x = x->next) {
        dirent_bytes += (8 + x->namelen + 3) & ~3u;
        struct unpack_inode *in = x->inode;
        if (in->counted)
            continue;
        in->counted = 1;
        s->inodes++;
        if (S_ISDIR(in->mode)) {
            size_walk(x, s);
        } else if (S_ISREG(in->mode)) {
            uint64_t b = div_up(in->size, BLOCK_SIZE);
            s->blocks += b + (b > 4 ? 1 + b / 32768 : 0); /* extent tree blocks */
            s->bytes += in->size;
        } else if (S_ISLNK(in->mode) && in->size >= 60) {
            s->blocks++;
        }
        if (in->xattrs)
            s->blocks++; /* an xattr block when they do not fit in the inode */
    }
    s->blocks += div_up(dirent_bytes, BLOCK_SIZE - 12) + 1;
}

/* Blocks and inodes of a file system that holds the tree with 30% headroom and at
 * least 256 MiB free. Boxes write into it too, so inodes follow the space, as
 * mke2fs's default of one per 16 KiB. */
static int size_fs(struct unpack_tree *t, uint64_t *blocks, uint64_t *inodes)
{
    struct sizing s = {0, 1, 0};
    size_walk(t->root, &s);
    if (s.bytes > t->max_bytes) /* pass 1 counted every member already: a safety net */
        return -1;
    uint64_t used = s.blocks + 16 + 4; /* root, lost+found, reserved */
    uint64_t b = used + used * 3 / 10;
    if ((b - used) * BLOCK_SIZE < MIN_FREE_BYTES)
        b = used + MIN_FREE_BYTES / BLOCK_SIZE;
    uint64_t ino = s.inodes + 16;
    ino += ino * 3 / 10;
    if (ino < b * BLOCK_SIZE / 16384)
        ino = b * BLOCK_SIZE / 16384;
    ino += 1024;
    if (ino > 0xffffff00u)
        ino = 0xffffff00u;
    b += div_up(ino * INODE_SIZE, BLOCK_SIZE);                     /* inode tables */
    b += (uint64_t)sym_ext2fs_default_journal_size(b > 0 ? b : 1); /* journal */
    b += b / 50 + 1024;                                            /* bitmaps, descriptors, reserved GDT */
    *blocks = b;
    *inodes = ino;
    return 0;
}

/* ---- formatting ---- */

/* A base is a deterministic function of its layers, so two unpacks of one image (two
 * pulls racing, a pull after a prune) make the same bytes: the UUID and the directory
 * hash seed come from a hash of the layer digests, and every time the file system
 * records itself is BASE_EPOCH. */
#define BASE_EPOCH 1577836800 /* 2020-01-01T00:00:00Z */

static void base_seed(size_t nlayers, const char *const *digests, uint8_t out[32])
{
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, "cocoon-ext4-base-v1", 19);
    for (size_t i = 0; i < nlayers; i++) {
        sha256_update(&h, "\n", 1);
        sha256_update(&h, digests[i], strlen(digests[i]));
    }
    sha256_final(&h, out);
}

static void fix_times(ext2_filsys fs)
{
    fs->now = BASE_EPOCH;
    fs->super->s_mkfs_time = fs->super->s_lastcheck = fs->super->s_wtime = BASE_EPOCH;
    fs->super->s_mtime = 0;
}

static errcode_t fs_format(const char *path, uint64_t blocks, uint64_t inodes, const uint8_t seed[32], ext2_filsys *out)
{
    struct ext2_super_block param;
    memset(&param, 0, sizeof(param));
    sym_ext2fs_blocks_count_set(&param, blocks);
    param.s_log_block_size = 2; /* 1024 << 2 */
    param.s_inodes_count = (uint32_t)inodes;
    param.s_rev_level = EXT2_DYNAMIC_REV;
    param.s_inode_size = INODE_SIZE;
    param.s_log_groups_per_flex = 4;
    param.s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
    param.s_min_extra_isize = param.s_want_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
    ext2fs_set_feature_xattr(&param);
    ext2fs_set_feature_resize_inode(&param);
    ext2fs_set_feature_dir_index(&param);
    ext2fs_set_feature_sparse_super(&param);
    ext2fs_set_feature_large_file(&param);
    ext2fs_set_feature_huge_file(&param);
    ext2fs_set_feature_dir_nlink(&param);
    ext2fs_set_feature_extra_isize(&param);
    ext2fs_set_feature_metadata_csum(&param);
    ext2fs_set_feature_filetype(&param);
    ext2fs_set_feature_extents(&param);
    ext2fs_set_feature_64bit(&param);
    ext2fs_set_feature_flex_bg(&param);

    ext2_filsys fs;
    errcode_t rc = sym_ext2fs_initialize(path, EXT2_FLAG_RW | EXT2_FLAG_64BITS, &param, *sym_unix_io_manager, &fs);
    if (rc)
        return rc;
    fs->super->s_checksum_type = EXT2_CRC32C_CHKSUM;
    fix_times(fs);
    memcpy(fs->super->s_uuid, seed, sizeof(fs->super->s_uuid));
    memcpy(fs->super->s_hash_seed, seed + 16, sizeof(fs->super->s_hash_seed));
    fs->super->s_uuid[6] = (fs->super->s_uuid[6] & 0x0f) | 0x40;
    fs->super->s_uuid[8] = (fs->super->s_uuid[8] & 0x3f) | 0x80;
    fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
    char probe = (char)0xff;
    fs->super->s_flags |= (int)probe < 0 ? EXT2_FLAGS_SIGNED_HASH : EXT2_FLAGS_UNSIGNED_HASH;
    memcpy(fs->super->s_volume_name, "cocoon-base", 11);
    fs->super->s_max_mnt_count = (__u16)-1;
    sym_ext2fs_init_csum_seed(fs);

    rc = sym_ext2fs_allocate_tables(fs);
    /* The file is new and sparse: its inode tables already read as zeros, so the
     * guest kernel has nothing to initialise lazily (no writes into box overlays). */
    for (dgrp_t g = 0; !rc && g < fs->group_desc_count; g++) {
        sym_ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_ZEROED);
        sym_ext2fs_group_desc_csum_set(fs, g);
    }
    if (rc) {
        sym_ext2fs_free(fs);
        return rc;
    }
    sym_ext2fs_inode_alloc_stats2(fs, EXT2_ROOT_INO, +1, 1); /* written with the tree */
    for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(fs->super); i++)
        sym_ext2fs_inode_alloc_stats2(fs, i, +1, 0);
    sym_ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
    rc = sym_ext2fs_update_bb_inode(fs, NULL);
    if (!rc)
        rc = sym_ext2fs_create_resize_inode(fs);
    if (!rc) {
        struct ext2fs_journal_params jp;
        rc = sym_ext2fs_get_journal_params(&jp, fs);
        if (!rc)
            rc = sym_ext2fs_add_journal_inode3(fs, &jp, ~0ULL, EXT2_MKJOURNAL_LAZYINIT | EXT2_MKJOURNAL_NO_MNT_CHECK);
    }
    if (rc) {
        sym_ext2fs_free(fs);
        return rc;
    }
    *out = fs;
    return 0;
}

/* ---- inodes ---- */

static void set_times(struct ext2_inode_large *li, int64_t sec, uint32_t nsec)
{
    if (sec < INT32_MIN)
        sec = INT32_MIN, nsec = 0;
    if (sec > ((int64_t)1 << 34) - 1 + INT32_MIN)
        sec = ((int64_t)1 << 34) - 1 + INT32_MIN, nsec = 0;
    uint32_t lo = (uint32_t)sec;
    uint32_t epoch = (uint32_t)((sec - (int64_t)(int32_t)lo) >> 32) & 3;
    uint32_t extra = epoch | (nsec << 2);
    li->i_atime = li->i_ctime = li->i_mtime = li->i_crtime = lo;
    li->i_atime_extra = li->i_ctime_extra = li->i_mtime_extra = li->i_crtime_extra = extra;
}

static void set_owner(struct ext2_inode_large *li, const struct unpack_inode *in)
{
    li->i_uid = (uint16_t)in->uid;
    li->osd2.linux2.l_i_uid_high = (uint16_t)(in->uid >> 16);
    li->i_gid = (uint16_t)in->gid;
    li->osd2.linux2.l_i_gid_high = (uint16_t)(in->gid >> 16);
}

static int file_type(uint32_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return EXT2_FT_REG_FILE;
    case S_IFDIR: return EXT2_FT_DIR;
    case S_IFLNK: return EXT2_FT_SYMLINK;
    case S_IFCHR: return EXT2_FT_CHRDEV;
    case S_IFBLK: return EXT2_FT_BLKDEV;
    case S_IFIFO: return EXT2_FT_FIFO;
    case S_IFSOCK: return EXT2_FT_SOCK;
    }
    return EXT2_FT_UNKNOWN;
}

static int xattr_name_ok(const char *n)
{
    return strncmp(n, "user.", 5) == 0 || strncmp(n, "trusted.", 8) == 0 || strncmp(n, "security.", 9) == 0 ||
           strcmp(n, "system.posix_acl_access") == 0 || strcmp(n, "system.posix_acl_default") == 0;
}

static int write_xattrs(struct wctx *w, ext2_ino_t ino, const struct unpack_inode *in)
{
    if (!in->xattrs)
        return 0;
    struct ext2_xattr_handle *h;
    errcode_t rc = sym_ext2fs_xattrs_open(w->fs, ino, &h);
    if (rc)
        return efail(w, rc, "extended attributes of");
    rc = sym_ext2fs_xattrs_read(h);
    for (const struct unpack_xattr *x = in->xattrs; !rc && x; x = x->next)
        if (xattr_name_ok(x->name))
            rc = sym_ext2fs_xattr_set(h, x->name, x->value, x->len);
    sym_ext2fs_xattrs_close(&h);
    if (rc == EXT2_ET_EA_NO_SPACE) {
        snprintf(w->err, w->errlen, "extended attributes of \"/%.300s\" do not fit in an ext4 inode", w->path);
        return -1;
    }
    return rc ? efail(w, rc, "extended attributes of") : 0;
}

/* Writes a non-directory inode (first name) with the tree's metadata. */
static int make_inode(struct wctx *w, ext2_ino_t dir, struct unpack_inode *in)
{
    ext2_filsys fs = w->fs;
    ext2_ino_t ino;
    errcode_t rc = sym_ext2fs_new_inode(fs, dir, (int)(in->mode & 0xffff), 0, &ino);
    if (rc)
        return efail(w, rc, "allocating an inode for");
    struct ext2_inode_large li;
    if (S_ISLNK(in->mode)) {
        rc = sym_ext2fs_symlink(fs, dir, ino, NULL, in->target); /* counts the inode itself */
        if (!rc)
            rc = sym_ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)&li, sizeof(li));
        if (rc)
            return efail(w, rc, "creating symlink");
    } else {
        memset(&li, 0, sizeof(li));
        li.i_extra_isize = sizeof(li) - EXT2_GOOD_OLD_INODE_SIZE;
        if (S_ISCHR(in->mode) || S_ISBLK(in->mode)) {
            uint32_t ma = in->rdev_major, mi = in->rdev_minor;
            if (ma < 256 && mi < 256) {
                li.i_block[0] = ma * 256 + mi;
            } else {
                li.i_block[1] = (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
            }
        } else if (S_ISREG(in->mode)) {
            ext2_extent_handle_t eh;
            rc = sym_ext2fs_extent_open2(fs, ino, (struct ext2_inode *)&li, &eh); /* sets up the extent header */
            if (rc)
                return efail(w, rc, "creating");
            sym_ext2fs_extent_free(eh);
        }
        sym_ext2fs_inode_alloc_stats2(fs, ino, +1, 0);
    }
    li.i_mode = (uint16_t)in->mode;
    li.i_links_count = (uint16_t)(in->refs > 65000 ? 65000 : in->refs);
    set_owner(&li, in);
    set_times(&li, in->mtime, in->mtime_nsec);
    rc = sym_ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)&li, sizeof(li));
    if (rc)
        return efail(w, rc, "writing inode of");
    in->ino = ino;
    return write_xattrs(w, ino, in);
}

/* One entry of a directory being written. */
struct dent {
    const char *name;
    uint32_t len;
    ext2_ino_t ino;
    int type;
};

static void dent_put(ext2_filsys fs, char *at, size_t rec, const struct dent *e)
{
    struct ext2_dir_entry *de = (struct ext2_dir_entry *)at;
    de->inode = e ? e->ino : 0;
    sym_ext2fs_set_rec_len(fs, (unsigned)rec, de);
    ext2fs_dirent_set_name_len(de, e ? (int)e->len : 0);
    ext2fs_dirent_set_file_type(de, e ? e->type : 0);
    if (e)
        memcpy(de->name, e->name, e->len);
}

/* Writes a whole directory at once: the inode with the tree's metadata and every
 * entry packed into blocks in order (ext2fs_link would rescan the directory for
 * each name, which is quadratic). ents[0] and ents[1] are "." and "..". */
static int write_dir(struct wctx *w, ext2_ino_t ino, const struct unpack_inode *in, uint32_t mode,
                     const struct dent *ents, size_t n, uint64_t links, unsigned min_blocks)
{
    ext2_filsys fs = w->fs;
    struct ext2_inode_large li;
    memset(&li, 0, sizeof(li));
    li.i_extra_isize = sizeof(li) - EXT2_GOOD_OLD_INODE_SIZE;
    ext2_extent_handle_t eh;
    errcode_t rc = sym_ext2fs_extent_open2(fs, ino, (struct ext2_inode *)&li, &eh);
    if (rc)
        return efail(w, rc, "creating directory");
    sym_ext2fs_extent_free(eh);
    li.i_mode = (uint16_t)(S_IFDIR | (mode & 07777));
    li.i_links_count = (uint16_t)(links > 65000 ? 1 : links);
    set_owner(&li, in);
    set_times(&li, in->mtime, in->mtime_nsec);
    rc = sym_ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)&li, sizeof(li));
    if (rc)
        return efail(w, rc, "writing directory");

    size_t usable = fs->blocksize - (ext2fs_has_feature_metadata_csum(fs->super) ? 12 : 0);
    char *buf = malloc(fs->blocksize);
    if (!buf)
        return efail(w, EXT2_ET_NO_MEMORY, "writing directory");
    struct ext2_inode inode;
    blk64_t lblk = 0;
    size_t i = 0;
    while (i < n || lblk < min_blocks) {
        memset(buf, 0, fs->blocksize);
        size_t used = 0, last = 0;
        int any = 0;
        while (i < n) {
            size_t rec = (8 + ents[i].len + 3) & ~(size_t)3;
            if (used + rec > usable)
                break;
            dent_put(fs, buf + used, rec, &ents[i]);
            last = used;
            used += rec;
            any = 1;
            i++;
        }
        if (any) /* the last entry of a block spans to its end */
            sym_ext2fs_set_rec_len(fs, (unsigned)(usable - last), (struct ext2_dir_entry *)(buf + last));
        else
            dent_put(fs, buf, usable, NULL);
        if (usable < fs->blocksize)
            sym_ext2fs_initialize_dirent_tail(fs, EXT2_DIRENT_TAIL(buf, fs->blocksize));
        blk64_t pblk = 0;
        rc = sym_ext2fs_read_inode(fs, ino, &inode);
        if (!rc)
            rc = sym_ext2fs_bmap2(fs, ino, &inode, NULL, BMAP_ALLOC, lblk, NULL, &pblk);
        if (!rc)
            rc = sym_ext2fs_write_dir_block4(fs, pblk, buf, 0, ino);
        if (rc) {
            free(buf);
            return efail(w, rc, "writing directory");
        }
        lblk++;
    }
    free(buf);
    rc = sym_ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)&li, sizeof(li));
    if (!rc)
        rc = sym_ext2fs_inode_size_set(fs, (struct ext2_inode *)&li, lblk * fs->blocksize);
    if (!rc)
        rc = sym_ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)&li, sizeof(li));
    if (rc)
        return efail(w, rc, "writing directory");
    return write_xattrs(w, ino, in);
}

static void path_push(struct wctx *w, size_t *saved, const char *name)
{
    *saved = strlen(w->path);
    snprintf(w->path + *saved, sizeof(w->path) - *saved, "%s%s", *saved ? "/" : "", name);
}

static int new_dir_ino(struct wctx *w, ext2_ino_t parent, ext2_ino_t *ino)
{
    errcode_t rc = sym_ext2fs_new_inode(w->fs, parent, S_IFDIR | 0755, 0, ino);
    if (rc)
        return efail(w, rc, "allocating an inode for directory");
    sym_ext2fs_inode_alloc_stats2(w->fs, *ino, +1, 1);
    return 0;
}

/* Creates the inodes of d's children, writes d (inode dino, parent pino), then
 * recurses into its subdirectories. Children are kept newest first: they are
 * written backwards, in the tar's order. */
static int make_dir(struct wctx *w, struct unpack_node *d, ext2_ino_t dino, ext2_ino_t pino)
{
    size_t n = 2, subdirs = 0;
    struct unpack_node *last = NULL;
    for (struct unpack_node *x = d->child; x; x = x->next, n++)
        last = x;
    int is_root = d == w->t->root, need_lpf = is_root;
    struct dent *ents = malloc((n + 1) * sizeof(*ents));
    if (!ents)
        return efail(w, EXT2_ET_NO_MEMORY, "writing directory");
    ents[0] = (struct dent){".", 1, dino, EXT2_FT_DIR};
    ents[1] = (struct dent){"..", 2, pino, EXT2_FT_DIR};
    n = 2;
    int rc = 0;
    for (struct unpack_node *x = last; x && !rc; x = x->prev) {
        struct unpack_inode *in = x->inode;
        size_t saved;
        path_push(w, &saved, x->name);
        if (is_root && strcmp(x->name, "lost+found") == 0)
            need_lpf = 0; /* the image's own, of whatever type */
        if (S_ISDIR(in->mode)) {
            rc = new_dir_ino(w, dino, &in->ino);
            subdirs++;
        } else if (!in->ino) {
            rc = make_inode(w, dino, in);
        }
        w->path[saved] = 0;
        ents[n++] = (struct dent){x->name, x->namelen, in->ino, file_type(in->mode)};
    }
    ext2_ino_t lpf = 0;
    if (!rc && need_lpf) {
        rc = new_dir_ino(w, dino, &lpf);
        ents[n++] = (struct dent){"lost+found", 10, lpf, EXT2_FT_DIR};
        subdirs++;
    }
    if (!rc)
        rc = write_dir(w, dino, d->inode, d->inode->mode, ents, n, 2 + subdirs, 1);
    free(ents);
    if (!rc && lpf) { /* 16 KiB of empty entries, as mke2fs leaves for e2fsck */
        struct unpack_inode meta = {.mode = S_IFDIR | 0700, .mtime = BASE_EPOCH};
        struct dent self[2] = {{".", 1, lpf, EXT2_FT_DIR}, {"..", 2, dino, EXT2_FT_DIR}};
        rc = write_dir(w, lpf, &meta, 0700, self, 2, 2, 4);
    }
    for (struct unpack_node *x = last; x && !rc; x = x->prev) {
        if (!S_ISDIR(x->inode->mode))
            continue;
        size_t saved;
        path_push(w, &saved, x->name);
        rc = make_dir(w, x, x->inode->ino, dino);
        w->path[saved] = 0;
    }
    return rc;
}

/* ---- file contents ---- */

struct want {
    uint64_t member;
    struct unpack_inode *in;
};

struct wantlist {
    struct want *v;
    size_t n, cap;
};

static int want_cmp(const void *a, const void *b)
{
    const struct want *x = a, *y = b;
    return x->member < y->member ? -1 : x->member > y->member;
}

static int collect(struct unpack_node *d, struct wantlist *lists)
{
    for (struct unpack_node *x = d->child; x; x = x->next) {
        struct unpack_inode *in = x->inode;
        if (S_ISDIR(in->mode)) {
            if (collect(x, lists) < 0)
                return -1;
        } else if (S_ISREG(in->mode) && in->layer > 0 && in->size > 0 && in->counted != 2) {
            in->counted = 2;
            struct wantlist *l = &lists[in->layer - 1];
            if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                struct want *v = realloc(l->v, cap * sizeof(*v));
                if (!v)
                    return -1;
                l->v = v;
                l->cap = cap;
            }
            l->v[l->n++] = (struct want){in->member, in};
        }
    }
    return 0;
}

static int all_zero(const unsigned char *p, size_t n) { return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0); }

/* Writes [off, off+len) of a file, leaving whole zero blocks as holes. */
static errcode_t write_range(ext2_file_t f, const unsigned char *buf, size_t len, uint64_t off)
{
    while (len) {
        size_t n = BLOCK_SIZE - off % BLOCK_SIZE;
        if (n > len)
            n = len;
        if (n == BLOCK_SIZE && all_zero(buf, n)) {
            buf += n, off += n, len -= n;
            continue;
        }
        /* extend the run over following non-zero whole blocks */
        while (n < len && len - n >= BLOCK_SIZE && !all_zero(buf + n, BLOCK_SIZE))
            n += BLOCK_SIZE;
        if (n < len && len - n < BLOCK_SIZE && (off + n) % BLOCK_SIZE == 0)
            n = len; /* a partial tail block goes with the run */
        errcode_t rc = sym_ext2fs_file_llseek(f, off, EXT2_SEEK_SET, NULL);
        size_t done = 0;
        while (!rc && done < n) {
            unsigned int wrote = 0;
            rc = sym_ext2fs_file_write(f, buf + done, (unsigned int)(n - done), &wrote);
            if (!rc && wrote == 0)
                rc = EXT2_ET_SHORT_WRITE;
            done += wrote;
        }
        if (rc)
            return rc;
        buf += n, off += n, len -= n;
    }
    return 0;
}

static int write_content(struct wctx *w, struct unpack_reader *r, struct unpack_inode *in, const char *digest,
                         const char *member)
{
    ext2_file_t f;
    errcode_t rc = sym_ext2fs_file_open(w->fs, in->ino, EXT2_FILE_WRITE, &f);
    if (rc)
        return efail(w, rc, "opening");
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int ar = sym_archive_read_data_block(r->a, &buf, &len, &off);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
            sym_ext2fs_file_close(f);
            snprintf(w->err, w->errlen, "layer %s: member \"%.300s\": corrupt or truncated layer: %s", digest, member,
                     sym_archive_error_string(r->a));
            return -1;
        }
        if (off < 0 || (uint64_t)off > in->size || len > in->size - (uint64_t)off) {
            sym_ext2fs_file_close(f);
            snprintf(w->err, w->errlen, "layer %s: member \"%.300s\": data beyond its declared size", digest, member);
            return -1;
        }
        rc = write_range(f, buf, len, (uint64_t)off);
        if (rc) {
            sym_ext2fs_file_close(f);
            return efail(w, rc, "writing");
        }
    }
    rc = sym_ext2fs_file_set_size2(f, in->size);
    errcode_t rc2 = sym_ext2fs_file_close(f);
    if (rc || rc2)
        return efail(w, rc ? rc : rc2, "writing");
    return 0;
}

static int fill_layer(struct wctx *w, struct wantlist *l, const char *digest, const char *blob_path)
{
    if (l->n == 0)
        return 0;
    qsort(l->v, l->n, sizeof(*l->v), want_cmp);
    struct unpack_reader r;
    char rerr[512];
    if (unpack_reader_open(&r, blob_path, rerr, sizeof(rerr)) < 0) {
        snprintf(w->err, w->errlen, "layer %s: %s", digest, rerr);
        return -1;
    }
    size_t next = 0;
    int rc = 0;
    for (uint64_t idx = 0; next < l->n; idx++) {
        struct archive_entry *e;
        int ar = sym_archive_read_next_header(r.a, &e);
        if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
            snprintf(w->err, w->errlen, "layer %s: corrupt, truncated or changed while unpacking: %s", digest,
                     ar == ARCHIVE_EOF ? "ended early" : sym_archive_error_string(r.a));
            rc = -1;
            break;
        }
        if (idx != l->v[next].member)
            continue; /* overridden later or not a file: libarchive skips it by reading */
        struct unpack_inode *in = l->v[next++].in;
        const char *member = unpack_entry_path(e);
        if (!sym_archive_entry_size_is_set(e) || (uint64_t)sym_archive_entry_size(e) != in->size) {
            snprintf(w->err, w->errlen, "layer %s: member \"%.300s\" changed while unpacking", digest,
                     member ? member : "?");
            rc = -1;
            break;
        }
        snprintf(w->path, sizeof(w->path), "%s", member ? member : "?");
        if (write_content(w, &r, in, digest, member ? member : "?") < 0) {
            rc = -1;
            break;
        }
    }
    unpack_reader_close(&r);
    return rc;
}

int ext4_write_tree(struct unpack_tree *t, size_t nlayers, const char *const *digests, const char *const *blob_paths,
                    const char *path, char *err, size_t errlen)
{
    if (dl_ext2fs_load(err, errlen) < 0)
        return -1;
    uint64_t blocks, inodes;
    if (size_fs(t, &blocks, &inodes) < 0) {
        snprintf(err, errlen,
                 "refused: the merged image would hold more than %llu bytes of file data (COCOON_UNPACK_MAX_BYTES)",
                 (unsigned long long)t->max_bytes);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    if (ftruncate(fd, (off_t)(blocks * BLOCK_SIZE)) < 0) {
        snprintf(err, errlen, "cannot size %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);

    struct wctx w = {.t = t, .err = err, .errlen = errlen};
    uint8_t seed[32];
    base_seed(nlayers, digests, seed);
    errcode_t rc = fs_format(path, blocks, inodes, seed, &w.fs);
    if (rc) {
        snprintf(err, errlen, "formatting %s as ext4: %s", path, sym_error_message(rc));
        return -1;
    }
    struct wantlist *lists = calloc(nlayers ? nlayers : 1, sizeof(*lists));
    int ok = lists != NULL;
    if (!ok)
        snprintf(err, errlen, "out of memory");
    t->root->inode->ino = EXT2_ROOT_INO;
    ok = ok && make_dir(&w, t->root, EXT2_ROOT_INO, EXT2_ROOT_INO) == 0;
    if (ok && collect(t->root, lists) < 0) {
        snprintf(err, errlen, "out of memory");
        ok = 0;
    }
    for (size_t i = 0; ok && i < nlayers; i++)
        ok = fill_layer(&w, &lists[i], digests[i], blob_paths[i]) == 0;
    for (size_t i = 0; lists && i < nlayers; i++)
        free(lists[i].v);
    free(lists);
    if (!ok) {
        sym_ext2fs_free(w.fs);
        return -1;
    }
    fix_times(w.fs); /* closing writes them */
    rc = sym_ext2fs_set_gdt_csum(w.fs);
    if (!rc)
        rc = sym_ext2fs_close_free(&w.fs);
    if (rc) {
        if (w.fs)
            sym_ext2fs_free(w.fs);
        snprintf(err, errlen, "finishing the ext4 image %s: %s", path, sym_error_message(rc));
        return -1;
    }
    return 0;
}
