/* `cocoon import`: an export archive (bundle.h) into a new, stopped box. The archive is
 * outside input: each member must be the expected one, in order, a regular file within
 * its bound (config and manifest 1 MiB; the disk stream no larger than the free space
 * of $COCOON_HOME minus a reserve), the disk stream's records must lie inside the disk,
 * and each member's size and sha256 must match the manifest. Everything is written
 * into boxes/.creating-<id>/ (the collector removes it if we die) and checked before
 * the directory is renamed into place and the box's row makes it visible. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "image/image_int.h"
#include "lib/bundle.h"
#include "util/dl_archive.h"
#include "util/util.h"

#define IMPORT_FREE_RESERVE (256ull << 20) /* left free on the home's file system */
#define IMPORT_BUF (256u << 10)

struct importer {
    struct archive *a;
    const char *path;
    int base_fd;
    uint64_t disk_room; /* the most disk.img may hold */
    char *config, *manifest;
    size_t config_len, manifest_len;
    char sha[2][65];
    uint64_t size[2];
    struct bundle_disk_reader disk;
};

static int refuse(cocoon_error *err, const char *path, const char *why)
{
    return lib_err(err, COCOON_E_INVALID, "%s is not a cocoon export this cocoon can import: %s", path, why);
}

static int write_base(void *arg, uint64_t off, const void *data, size_t len, char *err, size_t errcap)
{
    struct importer *im = arg;
    const char *p = data;
    while (len) {
        ssize_t n = pwrite(im->base_fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errcap, "writing the imported disk: %s", n < 0 ? strerror(errno) : "short write");
            return -1;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    util_test_point("IMPORT_DATA");
    return 0;
}

/* Reads the current member to its end: into *mem (small members) or the disk parser. */
static int read_member(struct importer *im, int which, uint64_t size, cocoon_error *err)
{
    struct sha256 h;
    sha256_init(&h);
    char *buf = malloc(IMPORT_BUF), why[512];
    if (!buf)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    char *mem = NULL;
    if (which != BUNDLE_DISK && !(mem = malloc(size + 1))) {
        free(buf);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    uint64_t got = 0;
    int rc = 0;
    for (;;) {
        la_ssize_t n = sym_archive_read_data(im->a, buf, IMPORT_BUF);
        if (n == 0)
            break;
        if (n < 0) {
            rc = refuse(err, im->path, sym_archive_error_string(im->a));
            break;
        }
        if ((uint64_t)n > size - got) {
            rc = refuse(err, im->path, "a member is longer than its header says");
            break;
        }
        sha256_update(&h, buf, (size_t)n);
        if (mem)
            memcpy(mem + got, buf, (size_t)n);
        else if (bundle_disk_feed(&im->disk, buf, (size_t)n, why, sizeof(why)) < 0) {
            rc = lib_err(err, COCOON_E_INVALID, "%s: %s", im->path, why);
            break;
        }
        got += (uint64_t)n;
    }
    free(buf);
    if (rc == 0 && got != size)
        rc = refuse(err, im->path, "a member is shorter than its header says (a truncated archive?)");
    if (rc < 0) {
        free(mem);
        return -1;
    }
    if (mem)
        mem[size] = 0;
    if (which == BUNDLE_CONFIG) {
        im->config = mem;
        im->config_len = size;
    } else if (which == BUNDLE_MANIFEST) {
        im->manifest = mem;
        im->manifest_len = size;
    }
    if (which != BUNDLE_MANIFEST) {
        im->size[which] = size;
        bundle_sha256_hex(&h, im->sha[which]);
    }
    return 0;
}

/* The three members, in order, each checked as it comes; then nothing else. */
static int read_members(struct importer *im, cocoon_error *err)
{
    for (int i = 0; i < BUNDLE_MEMBERS; i++) {
        struct archive_entry *e;
        int r = sym_archive_read_next_header(im->a, &e);
        char msg[256];
        if (r == ARCHIVE_EOF) {
            snprintf(msg, sizeof(msg), "it ends before its %s (a truncated archive?)", bundle_member_names[i]);
            return refuse(err, im->path, msg);
        }
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return refuse(err, im->path, sym_archive_error_string(im->a));
        const char *name = sym_archive_entry_pathname(e);
        if (!name || strcmp(name, bundle_member_names[i])) {
            snprintf(msg, sizeof(msg), "member %d is \"%.100s\", expected %s", i + 1, name ? name : "",
                     bundle_member_names[i]);
            return refuse(err, im->path, msg);
        }
        if (sym_archive_entry_filetype(e) != AE_IFREG || !sym_archive_entry_size_is_set(e) ||
            sym_archive_entry_size(e) < 0) {
            snprintf(msg, sizeof(msg), "%s is not a regular file with a size", name);
            return refuse(err, im->path, msg);
        }
        uint64_t size = (uint64_t)sym_archive_entry_size(e);
        uint64_t most = i == BUNDLE_DISK ? im->disk_room : BUNDLE_MANIFEST_MAX;
        if (size > most) {
            if (i == BUNDLE_DISK)
                return lib_err(err, COCOON_E_IO,
                               "%s: its disk takes %llu bytes, more than the %llu bytes free in COCOON_HOME (less a "
                               "%llu MiB reserve)",
                               im->path, (unsigned long long)size, (unsigned long long)im->disk_room,
                               IMPORT_FREE_RESERVE >> 20);
            snprintf(msg, sizeof(msg), "%s declares %llu bytes, more than %u", name, (unsigned long long)size,
                     BUNDLE_MANIFEST_MAX);
            return refuse(err, im->path, msg);
        }
        if (read_member(im, i, size, err) < 0)
            return -1;
    }
    struct archive_entry *e;
    int r = sym_archive_read_next_header(im->a, &e);
    if (r != ARCHIVE_EOF)
        return refuse(err, im->path,
                      r == ARCHIVE_OK ? "it holds members after its manifest" : sym_archive_error_string(im->a));
    return 0;
}

/* The manifest against what was read. */
static int verify(struct importer *im, struct bundle_manifest *m, cocoon_error *err)
{
    char why[512];
    if (bundle_manifest_parse(im->manifest, im->manifest_len, m, why, sizeof(why)) < 0)
        return lib_err(err, COCOON_E_INVALID, "%s: %s", im->path, why);
    if (bundle_disk_finish(&im->disk, why, sizeof(why)) < 0)
        return lib_err(err, COCOON_E_INVALID, "%s: %s", im->path, why);
    for (int i = 0; i < 2; i++)
        if (m->files[i].size != im->size[i] || strcmp(m->files[i].sha256, im->sha[i])) {
            char msg[256];
            snprintf(msg, sizeof(msg), "%s does not match its size or sha256 in the manifest (a damaged archive)",
                     bundle_member_names[i]);
            return refuse(err, im->path, msg);
        }
    if (m->virtual_size != im->disk.virtual_size)
        return refuse(err, im->path, "the disk's size does not match the manifest");
    return 0;
}

/* The exported config with everything that belongs to this host made anew: id, name,
 * paths (kernel and initramfs of this runtime, the disk in the new directory). */
static int new_config(cocoon_runtime *rt, struct importer *im, const struct bundle_manifest *m, const char *id,
                      const char *name, const char *dir, struct box_config *c, cocoon_error *err)
{
    char why[512];
    if (box_config_parse(im->config, im->config_len, c, why, sizeof(why)) < 0)
        return lib_err(err, COCOON_E_INVALID, "%s: its config.json: %s", im->path, why);
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
    c->created = (long long)time(NULL);
    c->ephemeral = 0;
    c->rootfs[0] = 0;
    c->image_id[0] = 0; /* the disk carries its own base */
    snprintf(c->image, sizeof(c->image), "%s", m->image);
    c->hostname[0] = 0;
    c->disk_size = 0;
    snprintf(c->disk_format, sizeof(c->disk_format), "qcow2");
    char kernel[LIB_PATH_MAX], initrd[LIB_PATH_MAX];
    if (lib_kernel_paths(rt, NULL, NULL, kernel, initrd, sizeof(kernel)) < 0 || !realpath(kernel, c->kernel) ||
        !realpath(initrd, c->initrd))
        return lib_err(err, COCOON_E_NOT_FOUND, "guest kernel or initramfs not found: run `make guest`");
    if (lib_path(c->disk, sizeof(c->disk), "%s/disk.qcow2", dir) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    return 0;
}

static int open_archive(struct importer *im, int fd, cocoon_error *err)
{
    im->a = sym_archive_read_new();
    if (!im->a)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (sym_archive_read_support_filter_zstd(im->a) != ARCHIVE_OK ||
        sym_archive_read_support_format_tar(im->a) != ARCHIVE_OK ||
        sym_archive_read_open_fd(im->a, fd, 64 << 10) != ARCHIVE_OK)
        return refuse(err, im->path, sym_archive_error_string(im->a));
    return 0;
}

/* Everything up to the published, row-less box directory at dir. */
static int import_into(cocoon_runtime *rt, struct importer *im, const char *id, const char *name, const char *tmp,
                       const char *dir, cocoon_error *err)
{
    char base[LIB_PATH_MAX], why[512];
    if (lib_path(base, sizeof(base), "%s/base.raw", tmp) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    im->base_fd = open(base, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (im->base_fd < 0)
        return lib_err(err, COCOON_E_IO, "cannot create %s: %s", base, strerror(errno));
    bundle_disk_reader_init(&im->disk, write_base, im);
    if (read_members(im, err) < 0)
        return -1;
    struct bundle_manifest m;
    if (verify(im, &m, err) < 0)
        return -1;
    if (ftruncate(im->base_fd, (off_t)m.virtual_size) < 0 || fsync(im->base_fd) < 0)
        return lib_err(err, COCOON_E_IO, "writing %s: %s", base, strerror(errno));
    fchmod(im->base_fd, 0400); /* the box's read-only base, as an image's */
    struct box_config *c = malloc(sizeof(*c));
    int rc = c ? new_config(rt, im, &m, id, name, dir, c, err) : lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (rc == 0)
        rc = lib_config_write(tmp, c, err);
    util_test_point("IMPORT_VERIFIED");
    if (rc == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) < 0)
        rc = lib_err(err, COCOON_E_IO, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
    /* The top layer names its base by its final path, so it is made after the rename. */
    char final_base[LIB_PATH_MAX];
    if (rc == 0 && lib_path(final_base, sizeof(final_base), "%s/base.raw", dir) < 0)
        rc = lib_err(err, COCOON_E_INVALID, "box path too long");
    if (rc == 0 && qcow2_create(c->disk, m.virtual_size, final_base, "raw", 0, why, sizeof(why)) < 0)
        rc = lib_err(err, COCOON_E_IO, "creating the box disk: %s", why);
    if (rc == 0)
        rc = lib_box_insert_row(rt, c, err); /* image_id "" and not ephemeral: new_config */
    free(c);
    return rc;
}

void cocoon_import_options_init(cocoon_import_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

int cocoon_import(cocoon_runtime *rt, const char *path, const cocoon_import_options *opts, cocoon_box **out,
                  cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !path)
        return lib_err(err, COCOON_E_INVALID, "cocoon_import: NULL argument");
    if (out)
        *out = NULL;
    cocoon_import_options o;
    if (LIB_OPTIONS(cocoon_import_options, o, opts, err) < 0)
        return -1;
    const char *name = o.name && *o.name ? o.name : NULL;
    if (name && !box_name_valid(name))
        return lib_err(err, COCOON_E_INVALID, "invalid box name \"%s\": up to %u letters, digits, '.', '_' or '-'",
                       name, BOX_NAME_MAX);
    struct state_box other;
    if (name && state_box_find(rt->state, name, &other, NULL) == 0 && !strcmp(other.name, name)) {
        state_box_clear(&other);
        return lib_err(err, COCOON_E_STATE, "box name \"%s\" is already in use by box %s", name, other.id);
    }
    if (lib_archive_ready(err) < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lib_err(err, errno == ENOENT ? COCOON_E_NOT_FOUND : COCOON_E_IO, "cannot open %s: %s", path,
                       strerror(errno));
    struct importer im = {.path = path, .base_fd = -1};
    struct statvfs vfs;
    uint64_t free_bytes = statvfs(rt->home, &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize : 0;
    im.disk_room = free_bytes > IMPORT_FREE_RESERVE ? free_bytes - IMPORT_FREE_RESERVE : 0;
    lib_box_gc(rt);
    char id[16], dir[LIB_PATH_MAX], tmp[LIB_PATH_MAX];
    int lock = lib_box_begin(rt, id, dir, tmp, sizeof(dir), err);
    int rc = lock >= 0 ? open_archive(&im, fd, err) : -1;
    if (rc == 0)
        rc = import_into(rt, &im, id, name, tmp, dir, err);
    if (im.a)
        sym_archive_read_free(im.a);
    if (im.base_fd >= 0)
        close(im.base_fd);
    close(fd);
    free(im.config);
    free(im.manifest);
    if (lock < 0)
        return -1;
    if (rc < 0) {
        util_rm_rf(tmp);
        util_rm_rf(dir); /* renamed but no row: still ours under the lock */
        close(lock);
        return -1;
    }
    util_test_point("IMPORT_ROW");
    close(lock);
    if (out && cocoon_box_open(rt, id, out, err) < 0)
        return -1;
    return 0;
}
