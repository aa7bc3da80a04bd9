/* The export archive's manifest and sparse disk stream (bundle.h): built by export.c,
 * read back and checked by import.c before anything it describes is used. */
#include "lib/bundle.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image_int.h"

const char *const bundle_member_names[BUNDLE_MEMBERS] = {"config.json", "disk.img", "manifest.json"};

void bundle_sha256_hex(struct sha256 *h, char out[65])
{
    uint8_t raw[32];
    sha256_final(h, raw);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static int fail(char *err, size_t errcap, const char *what)
{
    snprintf(err, errcap, "the archive's manifest is not valid: %s", what);
    return -1;
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int copy_text(json_t *v, char *out, size_t cap)
{
    if (!json_is_string(v) || json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    snprintf(out, cap, "%s", json_string_value(v));
    return 0;
}

static int parse_files(json_t *files, struct bundle_manifest *m, char *err, size_t errcap)
{
    if (!json_is_array(files) || json_array_size(files) != 2)
        return fail(err, errcap, "\"files\" must list config.json and disk.img");
    for (size_t i = 0; i < 2; i++) {
        json_t *f = json_array_get(files, i);
        char name[32];
        json_t *size = json_object_get(f, "size");
        if (!json_is_object(f) || copy_text(json_object_get(f, "name"), name, sizeof(name)) < 0 ||
            strcmp(name, bundle_member_names[i]) != 0)
            return fail(err, errcap, "\"files\" must list config.json then disk.img");
        if (!json_is_integer(size) || json_integer_value(size) < 0)
            return fail(err, errcap, "a file's \"size\" must be a non-negative integer");
        m->files[i].size = (uint64_t)json_integer_value(size);
        if (copy_text(json_object_get(f, "sha256"), m->files[i].sha256, sizeof(m->files[i].sha256)) < 0 ||
            !is_hex64(m->files[i].sha256))
            return fail(err, errcap, "a file's \"sha256\" must be 64 lowercase hex digits");
    }
    if (m->files[BUNDLE_CONFIG].size > BUNDLE_MANIFEST_MAX)
        return fail(err, errcap, "config.json is larger than 1 MiB");
    /* The stream holds at most the whole disk plus one record per chunk and its header. */
    uint64_t most = m->virtual_size + (m->virtual_size / 512 + 2) * BUNDLE_DISK_RECORD + BUNDLE_DISK_HEADER;
    if (m->files[BUNDLE_DISK].size > most)
        return fail(err, errcap, "disk.img is larger than its disk could make it");
    return 0;
}

int bundle_manifest_parse(const char *text, size_t len, struct bundle_manifest *m, char *err, size_t errcap)
{
    memset(m, 0, sizeof(*m));
    if (len > BUNDLE_MANIFEST_MAX)
        return fail(err, errcap, "larger than 1 MiB");
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return fail(err, errcap, "not a JSON object");
    }
    int rc = -1;
    char format[32];
    json_t *version = json_object_get(root, "version"), *created = json_object_get(root, "created"),
           *vsize = json_object_get(root, "virtual_size");
    if (copy_text(json_object_get(root, "format"), format, sizeof(format)) < 0 || strcmp(format, BUNDLE_FORMAT)) {
        fail(err, errcap, "\"format\" is not \"" BUNDLE_FORMAT "\" (not a cocoon export)");
        goto out;
    }
    if (!json_is_integer(version) || json_integer_value(version) < 1) {
        fail(err, errcap, "\"version\" must be a positive integer");
        goto out;
    }
    if (json_integer_value(version) != BUNDLE_VERSION) {
        snprintf(err, errcap,
                 "the archive has export format version %" JSON_INTEGER_FORMAT
                 ", this cocoon reads version %d: import it with the cocoon that exported it (or a newer one)",
                 json_integer_value(version), BUNDLE_VERSION);
        goto out;
    }
    m->version = BUNDLE_VERSION;
    if (copy_text(json_object_get(root, "kind"), m->kind, sizeof(m->kind)) < 0 ||
        (strcmp(m->kind, "box") && strcmp(m->kind, "snapshot"))) {
        fail(err, errcap, "\"kind\" must be \"box\" or \"snapshot\"");
        goto out;
    }
    if ((json_object_get(root, "name") && copy_text(json_object_get(root, "name"), m->name, sizeof(m->name)) < 0) ||
        copy_text(json_object_get(root, "source_id"), m->source_id, sizeof(m->source_id)) < 0 ||
        (json_object_get(root, "image") && copy_text(json_object_get(root, "image"), m->image, sizeof(m->image)) < 0)) {
        fail(err, errcap, "\"name\", \"source_id\" and \"image\" must be short strings");
        goto out;
    }
    if (!json_is_integer(created) || json_integer_value(created) < 0) {
        fail(err, errcap, "\"created\" must be a non-negative integer");
        goto out;
    }
    m->created = (long long)json_integer_value(created);
    if (!json_is_integer(vsize) || json_integer_value(vsize) <= 0 ||
        (uint64_t)json_integer_value(vsize) > BUNDLE_VSIZE_MAX || json_integer_value(vsize) % 512) {
        fail(err, errcap, "\"virtual_size\" must be a multiple of 512 bytes, at most 1 TiB");
        goto out;
    }
    m->virtual_size = (uint64_t)json_integer_value(vsize);
    rc = parse_files(json_object_get(root, "files"), m, err, errcap);
out:
    json_decref(root);
    return rc;
}

char *bundle_manifest_json(const struct bundle_manifest *m)
{
    json_t *files = json_array();
    for (int i = 0; files && i < 2; i++)
        json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", bundle_member_names[i], "size",
                                               (json_int_t)m->files[i].size, "sha256", m->files[i].sha256));
    json_t *o =
        json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:o}", "format", BUNDLE_FORMAT, "version", BUNDLE_VERSION,
                  "kind", m->kind, "name", m->name, "source_id", m->source_id, "image", m->image, "created",
                  (json_int_t)m->created, "virtual_size", (json_int_t)m->virtual_size, "files", files);
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    return text;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void bundle_disk_header(uint8_t out[BUNDLE_DISK_HEADER], uint64_t virtual_size)
{
    memset(out, 0, BUNDLE_DISK_HEADER);
    memcpy(out, BUNDLE_DISK_MAGIC, 8);
    put_be64(out + 8, BUNDLE_VERSION);
    put_be64(out + 16, virtual_size);
}

void bundle_disk_record(uint8_t out[BUNDLE_DISK_RECORD], uint64_t offset, uint64_t length)
{
    put_be64(out, offset);
    put_be64(out + 8, length);
}

enum { RD_HEADER, RD_RECORD, RD_DATA, RD_END };

void bundle_disk_reader_init(struct bundle_disk_reader *r,
                             int (*write)(void *, uint64_t, const void *, size_t, char *, size_t), void *arg)
{
    memset(r, 0, sizeof(*r));
    r->state = RD_HEADER;
    r->write = write;
    r->arg = arg;
}

static int disk_bad(char *err, size_t errcap, const char *what)
{
    snprintf(err, errcap, "the archive's disk.img is damaged: %s", what);
    return -1;
}

/* A complete header or record is in r->hold. */
static int take_fixed(struct bundle_disk_reader *r, char *err, size_t errcap)
{
    if (r->state == RD_HEADER) {
        if (memcmp(r->hold, BUNDLE_DISK_MAGIC, 8) || get_be64(r->hold + 8) != BUNDLE_VERSION)
            return disk_bad(err, errcap, "bad header");
        r->virtual_size = get_be64(r->hold + 16);
        if (!r->virtual_size || r->virtual_size > BUNDLE_VSIZE_MAX || get_be64(r->hold + 24))
            return disk_bad(err, errcap, "bad virtual size");
        r->state = RD_RECORD;
        return 0;
    }
    uint64_t off = get_be64(r->hold), len = get_be64(r->hold + 8);
    if (off == BUNDLE_DISK_END && len == 0) {
        r->state = RD_END;
        return 0;
    }
    if (len == 0 || len > BUNDLE_CHUNK_MAX || off < r->next_min || off > r->virtual_size || len > r->virtual_size - off)
        return disk_bad(err, errcap, "a record is out of order, overlaps another or lies outside the disk");
    r->offset = off;
    r->left = len;
    r->next_min = off + len;
    r->state = RD_DATA;
    return 0;
}

int bundle_disk_feed(struct bundle_disk_reader *r, const void *data, size_t len, char *err, size_t errcap)
{
    const uint8_t *p = data;
    while (len) {
        if (r->state == RD_END)
            return disk_bad(err, errcap, "bytes after the end record");
        if (r->state == RD_DATA) {
            size_t n = len < r->left ? len : (size_t)r->left;
            if (r->write && r->write(r->arg, r->offset, p, n, err, errcap) < 0)
                return -1;
            r->offset += n;
            r->left -= n;
            r->data_bytes += n;
            p += n;
            len -= n;
            if (!r->left)
                r->state = RD_RECORD;
            continue;
        }
        size_t need = (r->state == RD_HEADER ? BUNDLE_DISK_HEADER : BUNDLE_DISK_RECORD) - r->held;
        size_t n = len < need ? len : need;
        memcpy(r->hold + r->held, p, n);
        r->held += n;
        p += n;
        len -= n;
        if (n == need) {
            r->held = 0;
            if (take_fixed(r, err, errcap) < 0)
                return -1;
        }
    }
    return 0;
}

int bundle_disk_finish(const struct bundle_disk_reader *r, char *err, size_t errcap)
{
    if (r->state != RD_END)
        return disk_bad(err, errcap, "it ends before its end record (a truncated archive?)");
    return 0;
}
