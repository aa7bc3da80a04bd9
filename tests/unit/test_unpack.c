/* Unit tests of the layer merge (src/image/unpack*.c, ext4_write.c): layers are built
 * in memory with libarchive's writer, put in a temporary blob store, merged with
 * image_unpack_ext4, then read back with libext2fs and checked with `e2fsck -fn`.
 * Covers overrides, whiteouts, opaque dirs, hard links, symlinks, devices, setuid,
 * ownership, xattrs, mtimes, compression, every hostile layer we refuse, and the
 * per-pull budgets (entries, file data, metadata memory) with their environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <ext2fs/ext2fs.h>

#include "image/image.h"
#include "util/util.h"
#include "support/fixture.h"
#include "support/tmpdir.h"

static char dir[256];
static char store[300];
static char out[300];
static char err[1024];
static int layer_seq;

static int setup(void **state)
{
    assert_int_equal(test_tmpdir(dir, sizeof(dir), "cocoon-unpack"), 0);
    snprintf(store, sizeof(store), "%s/store", dir);
    char p[400];
    snprintf(p, sizeof(p), "%s/blobs/sha256", store);
    assert_int_equal(util_mkdir_p(p, 0755), 0);
    snprintf(out, sizeof(out), "%s/base.ext4", dir);
    return 0;
}

static int teardown(void **state)
{
    assert_int_equal(util_rm_rf(dir), 0);
    return 0;
}

/* ---- layer builder ---- */

enum { PLAIN, GZIP, ZSTD };

struct layer {
    struct archive *a;
    char *buf;
    size_t cap, used;
};

static void layer_begin(struct layer *l, int compression)
{
    l->cap = 8 << 20;
    l->buf = malloc(l->cap);
    l->used = 0;
    assert_non_null(l->buf);
    l->a = archive_write_new();
    assert_int_equal(archive_write_set_format_pax(l->a), ARCHIVE_OK);
    if (compression == GZIP)
        assert_int_equal(archive_write_add_filter_gzip(l->a), ARCHIVE_OK);
    else if (compression == ZSTD)
        assert_int_equal(archive_write_add_filter_zstd(l->a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_memory(l->a, l->buf, l->cap, &l->used), ARCHIVE_OK);
}

static struct archive_entry *entry(const char *path, unsigned type, unsigned perm, int uid, int gid)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, gid);
    archive_entry_set_mtime(e, 1600000000, 0);
    return e;
}

static void put(struct layer *l, struct archive_entry *e, const void *data, size_t len)
{
    assert_int_equal(archive_write_header(l->a, e), ARCHIVE_OK);
    if (len)
        assert_int_equal(archive_write_data(l->a, data, len), (la_ssize_t)len);
    archive_entry_free(e);
}

static void add_file(struct layer *l, const char *path, unsigned perm, const char *content)
{
    struct archive_entry *e = entry(path, AE_IFREG, perm, 0, 0);
    archive_entry_set_size(e, (la_int64_t)strlen(content));
    put(l, e, content, strlen(content));
}

static void add_dir(struct layer *l, const char *path, unsigned perm)
{
    put(l, entry(path, AE_IFDIR, perm, 0, 0), NULL, 0);
}

static void add_symlink(struct layer *l, const char *path, const char *target)
{
    struct archive_entry *e = entry(path, AE_IFLNK, 0777, 0, 0);
    archive_entry_set_symlink(e, target);
    put(l, e, NULL, 0);
}

static void add_hardlink(struct layer *l, const char *path, const char *target)
{
    struct archive_entry *e = entry(path, AE_IFREG, 0644, 0, 0);
    archive_entry_set_hardlink(e, target);
    archive_entry_set_size(e, 0);
    put(l, e, NULL, 0);
}

/* Finishes the layer, stores it, and returns its (made-up) digest. */
static const char *layer_end(struct layer *l)
{
    static char digests[64][IMAGE_DIGEST_MAX];
    assert_int_equal(archive_write_close(l->a), ARCHIVE_OK);
    archive_write_free(l->a);
    char *d = digests[layer_seq % 64];
    snprintf(d, IMAGE_DIGEST_MAX, "sha256:%064x", ++layer_seq);
    char path[600];
    snprintf(path, sizeof(path), "%s/blobs/sha256/%s", store, d + 7);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(l->buf, 1, l->used, f), l->used);
    fclose(f);
    free(l->buf);
    return d;
}

/* A blob from raw bytes (for hand-cut tars). */
static const char *raw_layer(const void *data, size_t len)
{
    static char digests[16][IMAGE_DIGEST_MAX];
    char *d = digests[layer_seq % 16];
    snprintf(d, IMAGE_DIGEST_MAX, "sha256:%064x", ++layer_seq);
    char path[600];
    snprintf(path, sizeof(path), "%s/blobs/sha256/%s", store, d + 7);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return d;
}

static int unpack(int n, ...)
{
    static struct image_manifest_info info;
    memset(&info, 0, sizeof(info));
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        snprintf(info.layers[i].digest, IMAGE_DIGEST_MAX, "%s", va_arg(ap, const char *));
    va_end(ap);
    info.nlayers = (size_t)n;
    unlink(out);
    err[0] = 0;
    return image_unpack_ext4(store, &info, out, err, sizeof(err));
}

static void assert_fsck_clean(void)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "e2fsck -fn '%s' >/dev/null 2>&1", out);
    assert_int_equal(system(cmd), 0);
}

/* Nothing at out, and no temp file next to it. */
static void assert_nothing_left(void)
{
    assert_int_not_equal(access(out, F_OK), 0);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)))
        assert_null(strstr(de->d_name, "base.ext4"));
    closedir(d);
}

static void assert_refused(const char *needle, int rc)
{
    if (rc == 0 || !strstr(err, needle))
        fail_msg("expected refusal with \"%s\", got rc=%d err=\"%s\"", needle, rc, err);
    assert_nothing_left();
}

/* ---- reading the result ---- */

static ext2_filsys fs_open(void)
{
    ext2_filsys fs;
    assert_int_equal(ext2fs_open(out, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs), 0);
    return fs;
}

static ext2_ino_t lookup(ext2_filsys fs, const char *path)
{
    ext2_ino_t ino = 0;
    if (ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino))
        return 0;
    return ino;
}

static struct ext2_inode_large stat_ino(ext2_filsys fs, ext2_ino_t ino)
{
    struct ext2_inode_large li;
    assert_int_equal(ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)&li, sizeof(li)), 0);
    return li;
}

static struct ext2_inode_large stat_path(ext2_filsys fs, const char *path)
{
    ext2_ino_t ino = lookup(fs, path);
    if (!ino)
        fail_msg("%s missing", path);
    return stat_ino(fs, ino);
}

static char *read_path(ext2_filsys fs, const char *path, size_t *len)
{
    ext2_ino_t ino = lookup(fs, path);
    if (!ino)
        fail_msg("%s missing", path);
    ext2_file_t f;
    assert_int_equal(ext2fs_file_open(fs, ino, 0, &f), 0);
    __u64 size = 0;
    assert_int_equal(ext2fs_file_get_lsize(f, &size), 0);
    char *buf = malloc(size + 1);
    assert_non_null(buf);
    unsigned got = 0;
    assert_int_equal(ext2fs_file_read(f, buf, (unsigned)size, &got), 0);
    assert_int_equal(got, size);
    buf[size] = 0;
    ext2fs_file_close(f);
    if (len)
        *len = size;
    return buf;
}

static void assert_content(ext2_filsys fs, const char *path, const char *want)
{
    char *got = read_path(fs, path, NULL);
    assert_string_equal(got, want);
    free(got);
}

static uint32_t uid_of(const struct ext2_inode_large *li)
{
    return li->i_uid | (uint32_t)li->osd2.linux2.l_i_uid_high << 16;
}

static uint32_t gid_of(const struct ext2_inode_large *li)
{
    return li->i_gid | (uint32_t)li->osd2.linux2.l_i_gid_high << 16;
}

/* ---- tests ---- */

static void test_basic_tree(void **state)
{
    struct layer l;
    layer_begin(&l, GZIP);
    add_dir(&l, "./", 0755);
    add_dir(&l, "./etc/", 0755);
    add_file(&l, "./etc/hostname", 0644, "box\n");
    add_dir(&l, "usr/", 0755);
    add_dir(&l, "usr/bin", 0755);
    struct archive_entry *e = entry("usr/bin/owned", AE_IFREG, 0640, 1234, 5678);
    archive_entry_set_size(e, 3);
    archive_entry_set_mtime(e, 1234567890, 123456789);
    put(&l, e, "abc", 3);
    e = entry("usr/bin/su", AE_IFREG, 04755, 0, 0);
    archive_entry_set_size(e, 2);
    put(&l, e, "su", 2);
    e = entry("usr/bin/wall", AE_IFREG, 02755, 0, 5);
    archive_entry_set_size(e, 1);
    put(&l, e, "w", 1);
    add_dir(&l, "tmp", 01777);
    add_file(&l, "deep/er/still/file", 0600, "implicit parents"); /* no dir entries */
    /* a big file with a zero hole in the middle and a tail */
    size_t big = 3 * 65536 + 100;
    char *data = calloc(1, big);
    memset(data, 'A', 5000);
    memset(data + 2 * 65536, 'B', 65536 + 100);
    e = entry("big", AE_IFREG, 0644, 0, 0);
    archive_entry_set_size(e, (la_int64_t)big);
    put(&l, e, data, big);
    const char *d1 = layer_end(&l);

    assert_int_equal(unpack(1, d1), 0);
    assert_fsck_clean();
    ext2_filsys fs = fs_open();
    assert_content(fs, "etc/hostname", "box\n");
    assert_content(fs, "deep/er/still/file", "implicit parents");
    struct ext2_inode_large li = stat_path(fs, "usr/bin/owned");
    assert_int_equal(li.i_mode, S_IFREG | 0640);
    assert_int_equal(uid_of(&li), 1234);
    assert_int_equal(gid_of(&li), 5678);
    assert_int_equal(li.i_mtime, 1234567890);
    assert_int_equal(li.i_mtime_extra >> 2, 123456789);
    assert_int_equal(stat_path(fs, "usr/bin/su").i_mode, S_IFREG | 04755);
    li = stat_path(fs, "usr/bin/wall");
    assert_int_equal(li.i_mode, S_IFREG | 02755);
    assert_int_equal(gid_of(&li), 5);
    assert_int_equal(stat_path(fs, "tmp").i_mode, S_IFDIR | 01777);
    assert_int_equal(stat_path(fs, "deep/er").i_mode, S_IFDIR | 0755);
    assert_int_equal(stat_path(fs, "lost+found").i_mode, S_IFDIR | 0700);
    size_t len;
    char *got = read_path(fs, "big", &len);
    assert_int_equal(len, big);
    assert_memory_equal(got, data, big);
    free(got);
    free(data);
    /* the zero hole was not written: fewer blocks than the size */
    li = stat_path(fs, "big");
    assert_true(li.i_blocks * 512 < big);
    /* sized with at least 256 MiB free */
    assert_true(ext2fs_free_blocks_count(fs->super) * fs->blocksize >= (256ull << 20));
    ext2fs_close_free(&fs);
}

static void test_overrides_and_whiteouts(void **state)
{
    struct layer l;
    layer_begin(&l, GZIP);
    add_file(&l, "etc/keep", 0644, "keep");
    add_file(&l, "etc/gone", 0644, "gone");
    add_file(&l, "etc/replaced", 0644, "old");
    add_dir(&l, "opq", 0755);
    add_file(&l, "opq/lower1", 0644, "1");
    add_dir(&l, "opq/sub", 0755);
    add_file(&l, "opq/sub/lower2", 0644, "2");
    add_dir(&l, "wdir", 0755);
    add_file(&l, "wdir/x", 0644, "x");
    add_file(&l, "file-then-dir", 0644, "f");
    add_dir(&l, "dir-then-file", 0755);
    add_file(&l, "dir-then-file/child", 0644, "c");
    const char *d1 = layer_end(&l);

    layer_begin(&l, ZSTD);
    add_file(&l, "etc/.wh.gone", 0644, "");
    add_file(&l, "etc/replaced", 0600, "new");
    add_file(&l, "opq/sub/upper-before-marker", 0644, "u");
    add_file(&l, "opq/.wh..wh..opq", 0644, "");
    add_file(&l, "opq/upper", 0644, "up");
    add_file(&l, ".wh.wdir", 0644, "");
    add_file(&l, ".wh.never-existed", 0644, "");
    add_file(&l, "nodir/.wh.nothing", 0644, "");
    add_dir(&l, "file-then-dir", 0700);
    add_file(&l, "dir-then-file", 0644, "now a file");
    const char *d2 = layer_end(&l);

    layer_begin(&l, PLAIN);
    add_dir(&l, "wdir", 0750); /* recreated after its whiteout: empty */
    const char *d3 = layer_end(&l);

    assert_int_equal(unpack(3, d1, d2, d3), 0);
    assert_fsck_clean();
    ext2_filsys fs = fs_open();
    assert_content(fs, "etc/keep", "keep");
    assert_int_equal(lookup(fs, "etc/gone"), 0);
    assert_int_equal(lookup(fs, "etc/.wh.gone"), 0);
    assert_content(fs, "etc/replaced", "new");
    assert_int_equal(stat_path(fs, "etc/replaced").i_mode, S_IFREG | 0600);
    assert_int_equal(lookup(fs, "opq/lower1"), 0);
    assert_int_equal(lookup(fs, "opq/sub/lower2"), 0);
    assert_int_equal(lookup(fs, "opq/.wh..wh..opq"), 0);
    assert_content(fs, "opq/sub/upper-before-marker", "u");
    assert_content(fs, "opq/upper", "up");
    assert_int_not_equal(lookup(fs, "wdir"), 0);
    assert_int_equal(lookup(fs, "wdir/x"), 0);
    assert_int_equal(stat_path(fs, "wdir").i_mode, S_IFDIR | 0750);
    assert_int_equal(lookup(fs, "nodir"), 0);
    assert_int_equal(stat_path(fs, "file-then-dir").i_mode, S_IFDIR | 0700);
    assert_content(fs, "dir-then-file", "now a file");
    ext2fs_close_free(&fs);
}

static void test_links_devices_xattrs(void **state)
{
    struct layer l;
    layer_begin(&l, GZIP);
    add_file(&l, "bin/busybox", 0755, "#!busybox");
    add_hardlink(&l, "bin/ls", "bin/busybox");
    add_hardlink(&l, "./bin/cat", "./bin/busybox");
    add_file(&l, "data/orig", 0644, "original");
    add_hardlink(&l, "data/link", "data/orig");
    add_symlink(&l, "c", "real");
    add_symlink(&l, "b", "c");
    add_symlink(&l, "a", "b");
    add_file(&l, "real", 0644, "end of chain");
    char longt[200];
    memset(longt, 'x', sizeof(longt) - 1);
    longt[sizeof(longt) - 1] = 0;
    add_symlink(&l, "slow", longt);
    add_symlink(&l, "abs", "/etc/../etc/passwd"); /* stored as written, resolved in the guest */
    struct archive_entry *e = entry("dev/null", AE_IFCHR, 0666, 0, 0);
    archive_entry_set_rdev(e, makedev(1, 3));
    put(&l, e, NULL, 0);
    e = entry("dev/sda", AE_IFBLK, 0660, 0, 6);
    archive_entry_set_rdev(e, makedev(8, 0));
    put(&l, e, NULL, 0);
    e = entry("dev/big", AE_IFCHR, 0600, 0, 0);
    archive_entry_set_rdev(e, makedev(300, 70000));
    put(&l, e, NULL, 0);
    put(&l, entry("run/fifo", AE_IFIFO, 0600, 0, 0), NULL, 0);
    e = entry("bin/ping", AE_IFREG, 0755, 0, 0);
    static const unsigned char cap[20] = {0x01, 0, 0, 0x02, 0x00, 0x20, 0, 0};
    archive_entry_xattr_add_entry(e, "security.capability", cap, sizeof(cap));
    archive_entry_xattr_add_entry(e, "user.note", "hello", 5);
    archive_entry_set_size(e, 4);
    put(&l, e, "ping", 4);
    const char *d1 = layer_end(&l);

    layer_begin(&l, GZIP);
    add_file(&l, "data/orig", 0644, "replaced"); /* the old inode lives on in data/link */
    const char *d2 = layer_end(&l);

    assert_int_equal(unpack(2, d1, d2), 0);
    assert_fsck_clean();
    ext2_filsys fs = fs_open();
    ext2_ino_t bb = lookup(fs, "bin/busybox");
    assert_int_not_equal(bb, 0);
    assert_int_equal(lookup(fs, "bin/ls"), bb);
    assert_int_equal(lookup(fs, "bin/cat"), bb);
    assert_int_equal(stat_ino(fs, bb).i_links_count, 3);
    assert_content(fs, "bin/cat", "#!busybox");
    assert_content(fs, "data/link", "original");
    assert_content(fs, "data/orig", "replaced");
    assert_int_equal(stat_path(fs, "data/link").i_links_count, 1);
    struct ext2_inode_large li = stat_path(fs, "a");
    assert_int_equal(li.i_mode, S_IFLNK | 0777);
    assert_memory_equal((char *)li.i_block, "b", 2);
    ext2_ino_t end = 0;
    assert_int_equal(ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, "a", &end), 0);
    assert_int_equal(end, lookup(fs, "real"));
    li = stat_path(fs, "slow");
    assert_int_equal(EXT2_I_SIZE(&li), strlen(longt));
    assert_true(li.i_flags & EXT4_EXTENTS_FL);
    li = stat_path(fs, "dev/null");
    assert_int_equal(li.i_mode, S_IFCHR | 0666);
    assert_int_equal(li.i_block[0], 1 * 256 + 3);
    li = stat_path(fs, "dev/sda");
    assert_int_equal(li.i_mode, S_IFBLK | 0660);
    assert_int_equal(li.i_block[0], 8 * 256);
    assert_int_equal(gid_of(&li), 6);
    li = stat_path(fs, "dev/big");
    assert_int_equal(li.i_block[1], (70000 & 0xff) | (300 << 8) | ((70000 & ~0xff) << 12));
    assert_int_equal(stat_path(fs, "run/fifo").i_mode, S_IFIFO | 0600);

    struct ext2_xattr_handle *h;
    assert_int_equal(ext2fs_xattrs_open(fs, lookup(fs, "bin/ping"), &h), 0);
    assert_int_equal(ext2fs_xattrs_read(h), 0);
    void *v;
    size_t vlen;
    assert_int_equal(ext2fs_xattr_get(h, "security.capability", &v, &vlen), 0);
    assert_int_equal(vlen, sizeof(cap));
    assert_memory_equal(v, cap, sizeof(cap));
    ext2fs_free_mem(&v);
    assert_int_equal(ext2fs_xattr_get(h, "user.note", &v, &vlen), 0);
    assert_int_equal(vlen, 5);
    assert_memory_equal(v, "hello", 5);
    ext2fs_free_mem(&v);
    ext2fs_xattrs_close(&h);
    ext2fs_close_free(&fs);
}

static void test_many_entries_one_dir(void **state)
{
    struct layer l;
    layer_begin(&l, GZIP);
    char name[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "many/file-with-a-longish-name-%05d", i);
        add_file(&l, name, 0644, name);
    }
    const char *d1 = layer_end(&l);
    assert_int_equal(unpack(1, d1), 0);
    assert_fsck_clean();
    ext2_filsys fs = fs_open();
    assert_content(fs, "many/file-with-a-longish-name-02999", "many/file-with-a-longish-name-02999");
    ext2fs_close_free(&fs);
}

static void test_empty_image(void **state)
{
    assert_int_equal(unpack(0), 0);
    assert_fsck_clean();
}

/* ---- hostile layers ---- */

static void test_refuses_dotdot(void **state)
{
    struct layer l;
    layer_begin(&l, GZIP);
    add_file(&l, "ok", 0644, "fine");
    add_file(&l, "../evil", 0644, "evil");
    const char *d = layer_end(&l);
    assert_refused("\"../evil\": path escapes the root", unpack(1, d));
    assert_non_null(strstr(err, d));

    layer_begin(&l, PLAIN);
    add_file(&l, "a/../../b", 0644, "evil");
    d = layer_end(&l);
    assert_refused("\"a/../../b\": path escapes the root", unpack(1, d));

    layer_begin(&l, PLAIN);
    add_file(&l, "a/..", 0644, "evil");
    d = layer_end(&l);
    assert_refused("path escapes the root", unpack(1, d));
}

static void test_refuses_absolute(void **state)
{
    struct layer l;
    layer_begin(&l, GZIP);
    add_file(&l, "/abs", 0644, "evil");
    const char *d = layer_end(&l);
    assert_refused("\"/abs\": absolute path refused", unpack(1, d));
}

static void test_refuses_write_through_symlink(void **state)
{
    struct layer l;
    layer_begin(&l, GZIP);
    add_symlink(&l, "x", "../..");
    add_symlink(&l, "etc", "/");
    const char *d1 = layer_end(&l);
    layer_begin(&l, GZIP);
    add_file(&l, "x/foo", 0644, "evil");
    const char *d2 = layer_end(&l);
    assert_refused("\"x/foo\": refused: parent \"x\" is a symlink", unpack(2, d1, d2));
    assert_non_null(strstr(err, d2));

    layer_begin(&l, GZIP);
    add_dir(&l, "etc/cron.d", 0755);
    d2 = layer_end(&l);
    assert_refused("parent \"etc\" is a symlink", unpack(2, d1, d2));

    /* within one layer, and a whiteout through a symlink */
    layer_begin(&l, PLAIN);
    add_symlink(&l, "s", "/etc");
    add_file(&l, "s/passwd", 0644, "root::0:0::/:/bin/sh");
    d1 = layer_end(&l);
    assert_refused("parent \"s\" is a symlink", unpack(1, d1));

    layer_begin(&l, PLAIN);
    add_symlink(&l, "s", "/etc");
    d1 = layer_end(&l);
    layer_begin(&l, PLAIN);
    add_file(&l, "s/.wh.passwd", 0644, "");
    d2 = layer_end(&l);
    assert_refused("parent \"s\" is a symlink", unpack(2, d1, d2));
}

static void test_refuses_bad_hardlinks(void **state)
{
    struct layer l;
    layer_begin(&l, GZIP);
    add_hardlink(&l, "passwd", "../../etc/passwd");
    const char *d = layer_end(&l);
    assert_refused("path escapes the root", unpack(1, d));
    assert_non_null(strstr(err, "../../etc/passwd"));

    layer_begin(&l, GZIP);
    add_hardlink(&l, "passwd", "/etc/passwd");
    d = layer_end(&l);
    assert_refused("absolute path refused", unpack(1, d));

    layer_begin(&l, GZIP);
    add_hardlink(&l, "passwd", "etc/passwd");
    d = layer_end(&l);
    assert_refused("hard link target \"etc/passwd\" does not exist", unpack(1, d));

    layer_begin(&l, GZIP);
    add_dir(&l, "d", 0755);
    add_hardlink(&l, "dl", "d");
    d = layer_end(&l);
    assert_refused("hard link to directory", unpack(1, d));

    layer_begin(&l, GZIP);
    add_symlink(&l, "s", "/etc");
    add_hardlink(&l, "p", "s/passwd");
    d = layer_end(&l);
    assert_refused("parent \"s\" is a symlink", unpack(1, d));
}

static void test_refuses_truncated_gzip(void **state)
{
    struct layer l;
    layer_begin(&l, GZIP);
    char *data = malloc(200000);
    for (int i = 0; i < 200000; i++)
        data[i] = (char)(i * 7919 % 251);
    struct archive_entry *e = entry("blob", AE_IFREG, 0644, 0, 0);
    archive_entry_set_size(e, 200000);
    put(&l, e, data, 200000);
    free(data);
    assert_int_equal(archive_write_close(l.a), ARCHIVE_OK);
    archive_write_free(l.a);
    const char *d = raw_layer(l.buf, l.used / 2);
    free(l.buf);
    assert_refused("corrupt or truncated layer", unpack(1, d));
    assert_non_null(strstr(err, d));
}

static void test_refuses_size_beyond_data(void **state)
{
    /* a plain tar whose member claims 1 MB, cut after 10 KB */
    struct layer l;
    layer_begin(&l, PLAIN);
    char *data = calloc(1, 1 << 20);
    memset(data, 'z', 1 << 20);
    struct archive_entry *e = entry("claims-a-lot", AE_IFREG, 0644, 0, 0);
    archive_entry_set_size(e, 1 << 20);
    put(&l, e, data, 1 << 20);
    free(data);
    assert_int_equal(archive_write_close(l.a), ARCHIVE_OK);
    archive_write_free(l.a);
    const char *d = raw_layer(l.buf, 10240);
    assert_refused("\"claims-a-lot\": claims more bytes than the layer blob holds", unpack(1, d));

    free(l.buf);

    /* two 600 KB members cut at 900 KB: the second claims less than the blob holds,
     * libarchive reads through its data and hits the end */
    layer_begin(&l, PLAIN);
    data = calloc(1, 600000);
    memset(data, 'y', 600000);
    for (int i = 0; i < 2; i++) {
        e = entry(i ? "second" : "first", AE_IFREG, 0644, 0, 0);
        archive_entry_set_size(e, 600000);
        put(&l, e, data, 600000);
    }
    free(data);
    assert_int_equal(archive_write_close(l.a), ARCHIVE_OK);
    archive_write_free(l.a);
    d = raw_layer(l.buf, 900000);
    free(l.buf);
    assert_refused("\"second\": corrupt or truncated layer", unpack(1, d));
}

static void test_refuses_long_names_and_garbage(void **state)
{
    char name[300];
    memset(name, 'n', 256);
    name[256] = 0;
    struct layer l;
    layer_begin(&l, PLAIN);
    add_file(&l, name, 0644, "x");
    const char *d = layer_end(&l);
    assert_refused("path component longer than 255 bytes", unpack(1, d));

    static const char junk[] = "this is not a tar archive, not even close, no.";
    d = raw_layer(junk, sizeof(junk));
    assert_refused("corrupt or truncated layer, or not a tar", unpack(1, d));

    assert_int_not_equal(unpack(1, "sha256:nothex"), 0);
    assert_nothing_left();
    assert_int_not_equal(unpack(1, "sha256:00000000000000000000000000000000000000000000000000000000deadbeef"), 0);
    assert_non_null(strstr(err, "cannot open layer blob"));
    assert_nothing_left();
}

/* A base is a function of its layers: two unpacks of one image, a second apart (so
 * the clock differs), give byte-identical files, so a base published by one pull is
 * the same file another would have made (UUID, hash seed and times are not random). */
static void test_same_layers_same_bytes(void **state)
{
    struct layer l;
    layer_begin(&l, GZIP);
    add_dir(&l, "etc", 0755);
    add_file(&l, "etc/hostname", 0644, "base\n");
    add_symlink(&l, "etc/link", "hostname");
    for (int i = 0; i < 300; i++) { /* a directory over one block */
        char name[64];
        snprintf(name, sizeof(name), "etc/many-%03d", i);
        add_file(&l, name, 0600, "x");
    }
    const char *d = layer_end(&l);
    assert_int_equal(unpack(1, d), 0);
    char first[400];
    snprintf(first, sizeof(first), "%s/first.ext4", dir);
    assert_int_equal(rename(out, first), 0);
    sleep(1);
    assert_int_equal(unpack(1, d), 0);
    assert_fsck_clean();
    char cmd[900];
    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", first, out);
    assert_int_equal(system(cmd), 0);
}

/* ---- per-pull budgets ---- */

/* A gzip layer from raw tar bytes (headers that lie about sizes, without the data). */
static const char *gzip_raw_layer(const void *tar, size_t len)
{
    struct layer l;
    l.cap = len + (1 << 20);
    l.buf = malloc(l.cap);
    l.used = 0;
    assert_non_null(l.buf);
    l.a = archive_write_new();
    assert_int_equal(archive_write_set_format_raw(l.a), ARCHIVE_OK);
    assert_int_equal(archive_write_add_filter_gzip(l.a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_memory(l.a, l.buf, l.cap, &l.used), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_filetype(e, AE_IFREG);
    assert_int_equal(archive_write_header(l.a, e), ARCHIVE_OK);
    assert_int_equal(archive_write_data(l.a, tar, len), (la_ssize_t)len);
    archive_entry_free(e);
    return layer_end(&l);
}

/* A ustar header claiming size bytes (base-256 above 8 GiB). */
static void claim_header(unsigned char *h, const char *name, uint64_t size)
{
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    h[124] = 0x80;
    for (int i = 0; i < 8; i++)
        h[135 - i] = (unsigned char)(size >> (8 * i));
    memcpy(h + 136, "13200000000", 12);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
}

static void test_budget_file_data(void **state)
{
    /* The default: a compressed layer whose member claims 100 GiB is refused at its
     * header, before anything is decompressed. */
    unsigned char tar[2048] = {0};
    claim_header(tar, "huge", 100ull << 30);
    memset(tar + 512, 'z', 512);
    const char *d = gzip_raw_layer(tar, sizeof(tar));
    assert_refused("\"huge\": the layers hold more than 68719476736 bytes of file data", unpack(1, d));
    assert_non_null(strstr(err, "COCOON_UNPACK_MAX_BYTES"));

    /* Lowered through the environment, counted over all layers. */
    setenv("COCOON_UNPACK_MAX_BYTES", "1M", 1);
    char *data = malloc(600000);
    memset(data, 'y', 600000);
    struct layer l;
    layer_begin(&l, GZIP);
    struct archive_entry *e = entry("a", AE_IFREG, 0644, 0, 0);
    archive_entry_set_size(e, 600000);
    put(&l, e, data, 600000);
    const char *d1 = layer_end(&l);
    layer_begin(&l, GZIP);
    e = entry("b", AE_IFREG, 0644, 0, 0);
    archive_entry_set_size(e, 600000);
    put(&l, e, data, 600000);
    const char *d2 = layer_end(&l);
    free(data);
    assert_int_equal(unpack(1, d1), 0);
    assert_refused("\"b\": the layers hold more than 1048576 bytes of file data", unpack(2, d1, d2));
    setenv("COCOON_UNPACK_MAX_BYTES", "lots", 1);
    assert_refused("COCOON_UNPACK_MAX_BYTES=\"lots\" is not valid", unpack(1, d1));
    unsetenv("COCOON_UNPACK_MAX_BYTES");
}

static void test_budget_entries(void **state)
{
    setenv("COCOON_UNPACK_MAX_ENTRIES", "100", 1);
    struct layer l;
    layer_begin(&l, GZIP);
    for (int i = 0; i < 60; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d", i);
        add_file(&l, name, 0644, "x");
    }
    const char *d1 = layer_end(&l);
    assert_int_equal(unpack(1, d1), 0);
    /* members are counted over all layers of the pull */
    assert_refused("the image's layers hold more than 100 members", unpack(2, d1, d1));
    /* and names of the merged tree, parents made for a member included */
    layer_begin(&l, GZIP);
    for (int i = 0; i < 60; i++) {
        char name[32];
        snprintf(name, sizeof(name), "d%d/f", i);
        add_file(&l, name, 0644, "x");
    }
    const char *d2 = layer_end(&l);
    assert_refused("the merged image would hold more than 100 names", unpack(1, d2));
    unsetenv("COCOON_UNPACK_MAX_ENTRIES");
}

static void test_budget_metadata_memory(void **state)
{
    setenv("COCOON_UNPACK_MAX_META", "1M", 1);
    /* xattrs: up to 64 KiB on each member is allowed, but not on twenty of them */
    static char value[30000]; /* the pax writer stores it twice (SCHILY. and LIBARCHIVE.) */
    memset(value, 'v', sizeof(value));
    struct layer l;
    layer_begin(&l, GZIP);
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof(name), "x%d", i);
        struct archive_entry *e = entry(name, AE_IFREG, 0644, 0, 0);
        archive_entry_xattr_add_entry(e, "user.big", value, sizeof(value));
        put(&l, e, NULL, 0);
    }
    const char *d = layer_end(&l);
    assert_refused("metadata (names, link targets, xattrs) needs more than 1048576 bytes", unpack(1, d));
    assert_non_null(strstr(err, "COCOON_UNPACK_MAX_META"));
    /* long symlink targets */
    char target[4000];
    memset(target, 't', sizeof(target) - 1);
    target[sizeof(target) - 1] = 0;
    layer_begin(&l, GZIP);
    for (int i = 0; i < 400; i++) {
        char name[32];
        snprintf(name, sizeof(name), "l%d", i);
        add_symlink(&l, name, target);
    }
    d = layer_end(&l);
    assert_refused("needs more than 1048576 bytes", unpack(1, d));
    /* what later layers delete is given back: the same names replaced by short files */
    layer_begin(&l, GZIP);
    for (int i = 0; i < 200; i++) {
        char name[32];
        snprintf(name, sizeof(name), "l%d", i);
        add_symlink(&l, name, target);
    }
    const char *d1 = layer_end(&l);
    layer_begin(&l, GZIP);
    for (int i = 0; i < 200; i++) {
        char name[32];
        snprintf(name, sizeof(name), "l%d", i);
        add_file(&l, name, 0644, "short");
    }
    const char *d2 = layer_end(&l);
    assert_int_equal(unpack(4, d1, d2, d1, d2), 0);
    unsetenv("COCOON_UNPACK_MAX_META");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_tree),
        cmocka_unit_test(test_overrides_and_whiteouts),
        cmocka_unit_test(test_links_devices_xattrs),
        cmocka_unit_test(test_many_entries_one_dir),
        cmocka_unit_test(test_empty_image),
        cmocka_unit_test(test_refuses_dotdot),
        cmocka_unit_test(test_refuses_absolute),
        cmocka_unit_test(test_refuses_write_through_symlink),
        cmocka_unit_test(test_refuses_bad_hardlinks),
        cmocka_unit_test(test_refuses_truncated_gzip),
        cmocka_unit_test(test_refuses_size_beyond_data),
        cmocka_unit_test(test_refuses_long_names_and_garbage),
        cmocka_unit_test(test_same_layers_same_bytes),
        cmocka_unit_test(test_budget_file_data),
        cmocka_unit_test(test_budget_entries),
        cmocka_unit_test(test_budget_metadata_memory),
    };
    return run_tests_with_fixture(tests, setup, teardown);
}
