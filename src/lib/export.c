/* `cocoon export`: a stopped box or a snapshot into one archive (bundle.h). The disk
 * chain is flattened through our qcow2 reader and written sparse: a first pass finds
 * the 64 KiB chunks holding data (so the tar header can carry the member's size), the
 * second writes them. The archive is written to FILE.partial-<pid> and renamed into
 * place once complete, so a failed or killed export leaves no file that looks whole. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "image/image_int.h"
#include "lib/bundle.h"
#include "lib/snapshot.h"
#include "util/dl_archive.h"
#include "util/util.h"

#define CHUNK (64u << 10)

struct export_src {
    char disk[LIB_PATH_MAX];
    char config[LIB_PATH_MAX];
    struct bundle_manifest m;
};

/* One tar member: header with its size, then whatever the caller writes. */
static int member_header(struct archive *a, const char *name, uint64_t size, cocoon_error *err)
{
    struct archive_entry *e = sym_archive_entry_new();
    if (!e)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    sym_archive_entry_set_pathname(e, name);
    sym_archive_entry_set_filetype(e, AE_IFREG);
    sym_archive_entry_set_perm(e, 0600);
    sym_archive_entry_set_size(e, (la_int64_t)size);
    sym_archive_entry_set_mtime(e, 0, 0);
    int rc = sym_archive_write_header(a, e);
    sym_archive_entry_free(e);
    if (rc != ARCHIVE_OK)
        return lib_err(err, COCOON_E_IO, "writing the archive: %s", sym_archive_error_string(a));
    return 0;
}

static int put(struct archive *a, struct sha256 *h, const void *data, size_t len, cocoon_error *err)
{
    if (h)
        sha256_update(h, data, len);
    if (len && sym_archive_write_data(a, data, len) != (la_ssize_t)len)
        return lib_err(err, COCOON_E_IO, "writing the archive: %s", sym_archive_error_string(a));
    return 0;
}

static int chunk_has_data(const uint8_t *p, size_t n)
{
    static const uint8_t zero[CHUNK];
    return memcmp(p, zero, n) != 0;
}

/* Pass 1: which chunks hold data (bit set), and the disk member's size. */
static int scan(struct qcow2 *q, uint8_t *buf, uint8_t *map, uint64_t *stream_size, cocoon_error *err)
{
    uint64_t vsize = qcow2_virtual_size(q), size = BUNDLE_DISK_HEADER + BUNDLE_DISK_RECORD;
    int in_run = 0;
    uint64_t run_len = 0;
    char why[256];
    for (uint64_t off = 0, i = 0; off < vsize; off += CHUNK, i++) {
        size_t n = vsize - off < CHUNK ? (size_t)(vsize - off) : CHUNK;
        if (qcow2_read(q, off, buf, n, why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_IO, "reading the disk: %s", why);
        if (chunk_has_data(buf, n)) {
            map[i / 8] |= (uint8_t)(1u << (i % 8));
            if (!in_run || run_len + n > BUNDLE_CHUNK_MAX) {
                size += BUNDLE_DISK_RECORD;
                run_len = 0;
            }
            in_run = 1;
            run_len += n;
            size += n;
        } else {
            in_run = 0;
        }
    }
    *stream_size = size;
    return 0;
}

/* Pass 2: the records, as scan() counted them. */
static int write_disk(struct archive *a, struct qcow2 *q, uint8_t *buf, const uint8_t *map, struct sha256 *h,
                      cocoon_error *err)
{
    uint64_t vsize = qcow2_virtual_size(q);
    uint8_t rec[BUNDLE_DISK_HEADER];
    bundle_disk_header(rec, vsize);
    if (put(a, h, rec, BUNDLE_DISK_HEADER, err) < 0)
        return -1;
    char why[256];
    uint64_t nchunks = (vsize + CHUNK - 1) / CHUNK;
    for (uint64_t i = 0; i < nchunks;) {
        if (!(map[i / 8] & (1u << (i % 8)))) {
            i++;
            continue;
        }
        uint64_t start = i * CHUNK, len = 0;
        while (i < nchunks && (map[i / 8] & (1u << (i % 8)))) {
            uint64_t n = vsize - i * CHUNK < CHUNK ? vsize - i * CHUNK : CHUNK;
            if (len + n > BUNDLE_CHUNK_MAX)
                break;
            len += n;
            i++;
        }
        bundle_disk_record(rec, start, len);
        if (put(a, h, rec, BUNDLE_DISK_RECORD, err) < 0)
            return -1;
        for (uint64_t done = 0; done < len; done += CHUNK) {
            size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
            if (qcow2_read(q, start + done, buf, n, why, sizeof(why)) < 0)
                return lib_err(err, COCOON_E_IO, "reading the disk: %s", why);
            if (put(a, h, buf, n, err) < 0)
                return -1;
        }
    }
    bundle_disk_record(rec, BUNDLE_DISK_END, 0);
    return put(a, h, rec, BUNDLE_DISK_RECORD, err);
}

static int write_archive(struct archive *a, struct export_src *s, cocoon_error *err)
{
    size_t cfg_len;
    char *cfg = util_read_file(s->config, BUNDLE_MANIFEST_MAX, &cfg_len), why[512];
    if (!cfg)
        return lib_err(err, COCOON_E_IO, "cannot read %s: %s", s->config, strerror(errno));
    struct sha256 h;
    sha256_init(&h);
    int rc = member_header(a, bundle_member_names[BUNDLE_CONFIG], cfg_len, err);
    if (rc == 0)
        rc = put(a, &h, cfg, cfg_len, err);
    free(cfg);
    if (rc < 0)
        return -1;
    s->m.files[BUNDLE_CONFIG].size = cfg_len;
    bundle_sha256_hex(&h, s->m.files[BUNDLE_CONFIG].sha256);

    struct qcow2 *q = qcow2_open(s->disk, 0, why, sizeof(why));
    if (!q)
        return lib_err(err, COCOON_E_IO, "cannot read the disk: %s", why);
    s->m.virtual_size = qcow2_virtual_size(q);
    uint64_t nchunks = (s->m.virtual_size + CHUNK - 1) / CHUNK, stream = 0;
    uint8_t *map = calloc(nchunks / 8 + 1, 1), *buf = malloc(CHUNK);
    rc = map && buf ? 0 : lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (rc == 0 && s->m.virtual_size > BUNDLE_VSIZE_MAX)
        rc = lib_err(err, COCOON_E_UNSUPPORTED, "the disk is larger than 1 TiB, the most an export holds");
    if (rc == 0)
        rc = scan(q, buf, map, &stream, err);
    if (rc == 0)
        rc = member_header(a, bundle_member_names[BUNDLE_DISK], stream, err);
    sha256_init(&h);
    if (rc == 0)
        rc = write_disk(a, q, buf, map, &h, err);
    free(map);
    free(buf);
    qcow2_close(q, NULL, 0);
    if (rc < 0)
        return -1;
    s->m.files[BUNDLE_DISK].size = stream;
    bundle_sha256_hex(&h, s->m.files[BUNDLE_DISK].sha256);

    char *manifest = bundle_manifest_json(&s->m);
    if (!manifest)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    rc = member_header(a, bundle_member_names[BUNDLE_MANIFEST], strlen(manifest), err);
    if (rc == 0)
        rc = put(a, NULL, manifest, strlen(manifest), err);
    free(manifest);
    return rc;
}

static int export_to(struct export_src *s, const char *path, cocoon_error *err)
{
    char tmp[LIB_PATH_MAX];
    if (lib_path(tmp, sizeof(tmp), "%s.partial-%d", path, (int)getpid()) < 0)
        return lib_err(err, COCOON_E_INVALID, "output path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return lib_err(err, COCOON_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    struct archive *a = sym_archive_write_new();
    int rc = a ? 0 : lib_err(err, COCOON_E_NOMEM, "out of memory");
    /* zstd's own worker threads compress while this one reads, flattens and hashes
     * (as `tar --zstd` gets from its zstd child); a libarchive without the option
     * compresses in this thread. */
    if (rc == 0 && sym_archive_write_add_filter_zstd(a) != ARCHIVE_OK)
        rc = lib_err(err, COCOON_E_UNSUPPORTED, "this libarchive cannot write zstd: %s", sym_archive_error_string(a));
    if (rc == 0)
        sym_archive_write_set_filter_option(a, "zstd", "threads", "2");
    if (rc == 0 && (sym_archive_write_set_format_pax(a) || sym_archive_write_open_fd(a, fd) != ARCHIVE_OK))
        rc = lib_err(err, COCOON_E_UNSUPPORTED, "cannot write a zstd tar archive: %s", sym_archive_error_string(a));
    if (rc == 0)
        rc = write_archive(a, s, err);
    if (a && sym_archive_write_close(a) != ARCHIVE_OK && rc == 0)
        rc = lib_err(err, COCOON_E_IO, "writing %s: %s", tmp, sym_archive_error_string(a));
    if (a)
        sym_archive_write_free(a);
    if (rc == 0 && fsync(fd) < 0)
        rc = lib_err(err, COCOON_E_IO, "writing %s: %s", tmp, strerror(errno));
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = lib_err(err, COCOON_E_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static int export_box(cocoon_box *box, const char *path, cocoon_error *err)
{
    int lock = lib_box_lock(box->dir);
    if (lock < 0)
        return lib_err(err, COCOON_E_STATE,
                       "box %s is running (or busy): stop it before exporting it, or snapshot it and export the "
                       "snapshot",
                       box->id);
    struct export_src *s = calloc(1, sizeof(*s));
    struct box_config *c = malloc(sizeof(*c));
    int rc = s && c ? lib_config_read(box->dir, c, err) : lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (rc == 0 && strcmp(c->disk_format, "qcow2"))
        rc = lib_err(err, COCOON_E_UNSUPPORTED, "box %s has a raw disk (--rootfs): only qcow2 boxes are exported",
                     box->id);
    if (rc == 0) {
        snprintf(s->disk, sizeof(s->disk), "%s", c->disk);
        rc = lib_path(s->config, sizeof(s->config), "%s/config.json", box->dir);
        snprintf(s->m.kind, sizeof(s->m.kind), "box");
        snprintf(s->m.name, sizeof(s->m.name), "%s", box->name);
        snprintf(s->m.source_id, sizeof(s->m.source_id), "%s", box->id);
        snprintf(s->m.image, sizeof(s->m.image), "%s", c->image);
        s->m.created = c->created;
        if (rc == 0)
            rc = export_to(s, path, err);
    }
    free(s);
    free(c);
    close(lock);
    return rc;
}

static int export_snapshot(cocoon_runtime *rt, const char *name, const char *path, cocoon_error *err)
{
    int slock = lib_snap_lock(rt, LOCK_SH, err);
    if (slock < 0)
        return -1;
    struct snap_record r;
    struct export_src *s = calloc(1, sizeof(*s));
    int rc = s ? lib_snap_find(rt, name, &r, err) : lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (rc == 0 && (lib_snap_path(rt, r.id, "disk.qcow2", s->disk, sizeof(s->disk)) < 0 ||
                    lib_snap_path(rt, r.id, "config.json", s->config, sizeof(s->config)) < 0))
        rc = lib_err(err, COCOON_E_INVALID, "COCOON_HOME path too long");
    if (rc == 0) {
        snprintf(s->m.kind, sizeof(s->m.kind), "snapshot");
        snprintf(s->m.name, sizeof(s->m.name), "%s", r.name);
        snprintf(s->m.source_id, sizeof(s->m.source_id), "%s", r.id);
        snprintf(s->m.image, sizeof(s->m.image), "%s", r.image);
        s->m.created = r.created;
        rc = export_to(s, path, err);
    }
    free(s);
    lib_snap_unlock(slock);
    return rc;
}

int cocoon_export(cocoon_runtime *rt, const char *what, const char *path, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt || !what || !path)
        return lib_err(err, COCOON_E_INVALID, "cocoon_export: NULL argument");
    if (lib_archive_ready(err) < 0)
        return -1;
    cocoon_box *box;
    cocoon_error box_err;
    if (cocoon_box_open(rt, what, &box, &box_err) == 0) {
        int rc = box->problem[0] ? lib_err(err, COCOON_E_STATE, "box %s cannot be exported: %s", box->id, box->problem)
                                 : export_box(box, path, err);
        cocoon_box_close(box);
        return rc;
    }
    if (box_err.code != COCOON_E_NOT_FOUND) {
        *err = box_err;
        return -1;
    }
    cocoon_error snap_err;
    if (export_snapshot(rt, what, path, &snap_err) == 0)
        return 0;
    if (snap_err.code == COCOON_E_NOT_FOUND)
        return lib_err(err, COCOON_E_NOT_FOUND, "no box or snapshot with id or name \"%s\"", what);
    *err = snap_err;
    return -1;
}
