/* The tar stream of a FILE_GET (tar_reader.h), read strictly: only what cocoon-agent
 * writes is accepted (ustar entries of type file, directory, symlink, hard link and
 * device/FIFO headers to be skipped; pax 'x' headers; GNU sparse 1.0 maps), numbers
 * must be well-formed and in range, and memory stays fixed: one input chunk, one pax
 * header of at most TAR_PAX_MAX bytes, one sparse map of at most TAR_SEGMENTS_MAX. */
#include "lib/tar_reader.h"
#include "proto/ustar.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 512u

/* What a pax header said about the entry that follows it. */
struct pax_fields {
    char path[TAR_NAME_MAX + 1], link[TAR_NAME_MAX + 1], sparse_name[TAR_NAME_MAX + 1];
    int has_path, has_link, has_sparse_name, has_size, has_mtime, has_realsize, has_major, has_minor;
    uint64_t size, realsize, major, minor;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
};

__attribute__((format(printf, 2, 3))) static int fail(struct tar_reader *r, const char *fmt, ...)
{
    if (!r->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, sizeof(r->err), fmt, ap);
        va_end(ap);
        r->failed = 1;
    }
    return -1;
}

int tar_reader_init(struct tar_reader *r, tar_read_fn read, void *arg)
{
    memset(r, 0, sizeof(*r));
    r->read = read;
    r->arg = arg;
    r->in = malloc(TAR_IN_CHUNK);
    r->pax = malloc(TAR_PAX_MAX + 1);
    r->seg = malloc(TAR_SEGMENTS_MAX * sizeof(*r->seg));
    if (!r->in || !r->pax || !r->seg) {
        tar_reader_free(r);
        return -1;
    }
    return 0;
}

void tar_reader_free(struct tar_reader *r)
{
    free(r->in);
    free(r->pax);
    free(r->seg);
    r->in = NULL;
    r->pax = NULL;
    r->seg = NULL;
}

/* ---- input ---- */

/* Bytes available in the input buffer (reading more when empty): >0, 0 at the end of
 * the stream, -1 on error. */
static long available(struct tar_reader *r)
{
    if (r->in_off < r->in_len)
        return (long)(r->in_len - r->in_off);
    long n = r->read(r->arg, r->in, TAR_IN_CHUNK);
    if (n < 0) {
        r->source_failed = 1;
        return fail(r, "reading the archive failed");
    }
    if ((size_t)n > TAR_IN_CHUNK)
        return fail(r, "reading the archive failed (bad length)");
    r->in_off = 0;
    r->in_len = (size_t)n;
    return n;
}

/* Copies (dst non-NULL) or skips n bytes; an early end is truncation. */
static int take(struct tar_reader *r, void *dst, uint64_t n)
{
    uint8_t *d = dst;
    while (n > 0) {
        long a = available(r);
        if (a < 0)
            return -1;
        if (a == 0)
            return fail(r, "the archive ends in the middle of an entry (truncated)");
        size_t k = (uint64_t)a < n ? (size_t)a : (size_t)n;
        if (d) {
            memcpy(d, r->in + r->in_off, k);
            d += k;
        }
        r->in_off += k;
        n -= k;
    }
    return 0;
}

/* ---- numbers ---- */

/* An octal or base-256 header field; -1 when it is malformed or negative. */
static int header_num(const uint8_t *f, size_t w, uint64_t *out)
{
    uint64_t v = 0;
    if (f[0] & 0x80) {
        if (f[0] != 0x80)
            return -1; /* negative, or more than the field can say */
        for (size_t i = 1; i < w; i++) {
            if (v >> 55)
                return -1;
            v = v << 8 | f[i];
        }
        *out = v;
        return 0;
    }
    size_t i = 0;
    while (i < w && f[i] == ' ')
        i++;
    for (; i < w && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60)
            return -1;
        v = v << 3 | (uint64_t)(f[i] - '0');
    }
    for (; i < w; i++)
        if (f[i] != ' ' && f[i] != 0)
            return -1;
    *out = v;
    return 0;
}

/* A decimal number of at most 19 digits, the whole of [s, s + n). */
static int dec_num(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "SECONDS[.FRACTION]", SECONDS possibly negative. */
static int pax_time(const char *s, size_t n, int64_t *sec, uint32_t *nsec)
{
    int neg = n > 0 && s[0] == '-';
    const char *dot = memchr(s, '.', n);
    size_t ilen = dot ? (size_t)(dot - s) : n;
    uint64_t v;
    if (dec_num(s + neg, ilen - (size_t)neg, &v) < 0 || v > (uint64_t)INT64_MAX)
        return -1;
    uint32_t frac = 0, scale = 100000000;
    if (dot) {
        for (const char *c = dot + 1; c < s + n; c++) {
            if (*c < '0' || *c > '9')
                return -1;
            frac += (uint32_t)(*c - '0') * scale;
            scale /= 10;
        }
    }
    *sec = neg ? -(int64_t)v : (int64_t)v;
    *nsec = neg ? 0 : frac; /* a negative time keeps its second */
    return 0;
}

/* ---- pax ---- */

static int pax_name(struct tar_reader *r, const char *key, const char *v, size_t n, char *dst, int *has)
{
    if (n == 0 || n > TAR_NAME_MAX || memchr(v, 0, n))
        return fail(r, "pax %s is empty, longer than %u bytes or holds a NUL", key, TAR_NAME_MAX);
    memcpy(dst, v, n);
    dst[n] = 0;
    *has = 1;
    return 0;
}

static int pax_u64(struct tar_reader *r, const char *key, const char *v, size_t n, uint64_t *dst, int *has)
{
    if (dec_num(v, n, dst) < 0)
        return fail(r, "pax %s is not a number", key);
    *has = 1;
    return 0;
}

static int pax_record(struct tar_reader *r, struct pax_fields *pf, const char *key, const char *v, size_t n)
{
    if (!strcmp(key, "path"))
        return pax_name(r, key, v, n, pf->path, &pf->has_path);
    if (!strcmp(key, "linkpath"))
        return pax_name(r, key, v, n, pf->link, &pf->has_link);
    if (!strcmp(key, "GNU.sparse.name"))
        return pax_name(r, key, v, n, pf->sparse_name, &pf->has_sparse_name);
    if (!strcmp(key, "size"))
        return pax_u64(r, key, v, n, &pf->size, &pf->has_size);
    if (!strcmp(key, "GNU.sparse.realsize"))
        return pax_u64(r, key, v, n, &pf->realsize, &pf->has_realsize);
    if (!strcmp(key, "GNU.sparse.major"))
        return pax_u64(r, key, v, n, &pf->major, &pf->has_major);
    if (!strcmp(key, "GNU.sparse.minor"))
        return pax_u64(r, key, v, n, &pf->minor, &pf->has_minor);
    if (!strcmp(key, "mtime")) {
        if (pax_time(v, n, &pf->mtime_sec, &pf->mtime_nsec) < 0)
            return fail(r, "pax mtime is not a time");
        pf->has_mtime = 1;
        return 0;
    }
    if (!strncmp(key, "GNU.sparse.", 11))
        return fail(r, "unsupported sparse file format (only GNU sparse 1.0 is read)");
    return 0; /* hdrcharset, atime, uid... carry nothing we keep */
}

/* Parses a pax header body of n bytes in r->pax. */
static int pax_parse(struct tar_reader *r, size_t n, struct pax_fields *pf)
{
    char *buf = r->pax;
    size_t off = 0;
    while (off < n) {
        size_t digits = 0;
        while (off + digits < n && digits < 8 && buf[off + digits] >= '0' && buf[off + digits] <= '9')
            digits++;
        uint64_t len;
        if (off + digits >= n || buf[off + digits] != ' ' || dec_num(buf + off, digits, &len) < 0 || len < digits + 3 ||
            len > n - off || buf[off + len - 1] != '\n')
            return fail(r, "malformed pax extended header");
        char *key = buf + off + digits + 1;
        char *end = buf + off + len - 1;
        char *eq = memchr(key, '=', (size_t)(end - key));
        if (!eq || eq == key || memchr(key, 0, (size_t)(eq - key)))
            return fail(r, "malformed pax record");
        *eq = 0;
        if (pax_record(r, pf, key, eq + 1, (size_t)(end - eq - 1)) < 0)
            return -1;
        off += len;
    }
    return 0;
}

/* ---- sparse maps ---- */

/* One decimal line of a GNU sparse 1.0 map, read from the entry's data. */
static int map_line(struct tar_reader *r, uint64_t *v, uint64_t *used)
{
    char line[24];
    size_t n = 0;
    for (;;) {
        if (r->data_left == 0)
            return fail(r, "sparse map longer than the entry");
        char c;
        if (take(r, &c, 1) < 0)
            return -1;
        r->data_left--;
        (*used)++;
        if (c == '\n')
            break;
        if (n >= 20)
            return fail(r, "malformed sparse map (line too long)");
        line[n++] = c;
    }
    if (dec_num(line, n, v) < 0)
        return fail(r, "malformed sparse map (not a number)");
    return 0;
}

static int read_sparse_map(struct tar_reader *r, uint64_t realsize)
{
    uint64_t used = 0, count;
    if (map_line(r, &count, &used) < 0)
        return -1;
    if (count > TAR_SEGMENTS_MAX)
        return fail(r, "sparse map with %llu regions (at most %u)", (unsigned long long)count, TAR_SEGMENTS_MAX);
    uint64_t end = 0, data = 0;
    for (uint64_t i = 0; i < count; i++) {
        struct tar_segment s;
        if (map_line(r, &s.off, &used) < 0 || map_line(r, &s.len, &used) < 0)
            return -1;
        if (s.off < end || s.len > realsize || s.off > realsize - s.len)
            return fail(r, "sparse map regions overlap, are out of order or beyond the file's size");
        end = s.off + s.len;
        data += s.len;
        r->seg[i] = s;
    }
    uint64_t pad = (BLOCK - used % BLOCK) % BLOCK;
    if (pad > r->data_left || take(r, NULL, pad) < 0)
        return fail(r, "sparse map longer than the entry");
    r->data_left -= pad;
    if (data != r->data_left)
        return fail(r, "sparse map says %llu data bytes, the entry holds %llu", (unsigned long long)data,
                    (unsigned long long)r->data_left);
    r->nseg = (size_t)count;
    return 0;
}

/* ---- headers ---- */

static int checksum_ok(const uint8_t *h)
{
    uint64_t want;
    if (header_num(h + 148, 8, &want) < 0)
        return 0;
    unsigned u;
    int s;
    ustar_sums(h, &u, &s);
    return want == u || (s >= 0 && want == (uint64_t)s);
}

static int all_zero(const uint8_t *h)
{
    for (size_t i = 0; i < BLOCK; i++)
        if (h[i])
            return 0;
    return 1;
}

/* A fixed-width header string (maybe without a NUL) appended to dst. */
static void field_str(char *dst, size_t cap, const uint8_t *f, size_t w)
{
    size_t n = strnlen((const char *)f, w), have = strlen(dst);
    if (have + n >= cap)
        n = cap - 1 - have;
    memcpy(dst + have, f, n);
    dst[have + n] = 0;
}

static int entry_type(struct tar_reader *r, char flag, struct tar_entry *e)
{
    e->typeflag = flag;
    switch (flag) {
    case '0':
    case 0: e->type = TAR_FILE; return 0;
    case '5': e->type = TAR_DIR; return 0;
    case '2': e->type = TAR_SYMLINK; return 0;
    case '1': e->type = TAR_HARDLINK; return 0;
    case '3':
    case '4':
    case '6': e->type = TAR_SPECIAL; return 0;
    default: return fail(r, "unsupported tar entry type 0x%02x", (unsigned)(unsigned char)flag);
    }
}

/* Fills e from the ustar header h and the pax fields before it. */
static int apply_header(struct tar_reader *r, const uint8_t *h, const struct pax_fields *pf, struct tar_entry *e)
{
    if (entry_type(r, (char)h[156], e) < 0)
        return -1;
    uint64_t size, mode, mtime;
    if (header_num(h + 124, 12, &size) < 0 || header_num(h + 100, 8, &mode) < 0 || header_num(h + 136, 12, &mtime) < 0)
        return fail(r, "malformed number in a tar header");
    if (pf->has_size)
        size = pf->size;
    e->mode = (uint32_t)(mode & 07777);
    e->mtime_sec = pf->has_mtime ? pf->mtime_sec : mtime > (uint64_t)INT64_MAX ? 0 : (int64_t)mtime;
    e->mtime_nsec = pf->has_mtime ? pf->mtime_nsec : 0;
    e->path[0] = e->link[0] = 0;
    int sparse = pf->has_major || pf->has_minor;
    if (sparse && !(pf->major == 1 && pf->minor == 0 && pf->has_sparse_name && pf->has_realsize))
        return fail(r, "unsupported sparse file format (only GNU sparse 1.0 is read)");
    if (sparse && e->type != TAR_FILE)
        return fail(r, "a sparse map on an entry that is not a regular file");
    if (sparse)
        memcpy(e->path, pf->sparse_name, sizeof(e->path));
    else if (pf->has_path)
        memcpy(e->path, pf->path, sizeof(e->path));
    else {
        if (!memcmp(h + 257, "ustar\0", 6) && h[345]) { /* POSIX prefix field */
            field_str(e->path, sizeof(e->path), h + 345, 155);
            field_str(e->path, sizeof(e->path), (const uint8_t *)"/", 1);
        }
        field_str(e->path, sizeof(e->path), h, 100);
    }
    if (!e->path[0])
        return fail(r, "an entry without a name");
    if (e->type == TAR_SYMLINK || e->type == TAR_HARDLINK) {
        if (pf->has_link)
            memcpy(e->link, pf->link, sizeof(e->link));
        else
            field_str(e->link, sizeof(e->link), h + 157, 100);
        if (!e->link[0])
            return fail(r, "a link without a target");
    }
    if (e->type != TAR_FILE && size != 0)
        return fail(r, "a directory, link or special entry that carries data");
    if (size > TAR_FILE_MAX || (sparse && pf->realsize > TAR_FILE_MAX))
        return fail(r, "an entry claims more than 1 PiB");
    r->data_left = size;
    r->pad = (BLOCK - size % BLOCK) % BLOCK;
    r->nseg = r->cur_seg = 0;
    r->seg_done = 0;
    e->size = sparse ? pf->realsize : size;
    r->in_entry = 1;
    if (sparse)
        return read_sparse_map(r, pf->realsize);
    if (size > 0) {
        r->seg[0] = (struct tar_segment){0, size};
        r->nseg = 1;
    }
    return 0;
}

int tar_next(struct tar_reader *r, struct tar_entry *e)
{
    if (r->failed)
        return -1;
    if (r->ended)
        return 0;
    if (r->in_entry) {
        if (take(r, NULL, r->data_left + r->pad) < 0)
            return -1;
        r->in_entry = 0;
        r->data_left = r->pad = 0;
    }
    struct pax_fields *pf = NULL;
    uint8_t h[BLOCK];
    int rc = -1;
    for (;;) {
        long a = available(r);
        if (a < 0)
            goto out;
        if (a == 0) {
            fail(r, "the archive ends without its end-of-archive blocks (truncated)");
            goto out;
        }
        if (take(r, h, BLOCK) < 0)
            goto out;
        if (all_zero(h)) {
            r->ended = 1;
            rc = 0;
            goto out;
        }
        if (!checksum_ok(h)) {
            fail(r, "damaged tar header (bad checksum)");
            goto out;
        }
        if (h[156] != 'x')
            break;
        if (pf) {
            fail(r, "two pax extended headers in a row");
            goto out;
        }
        uint64_t n;
        if (header_num(h + 124, 12, &n) < 0 || n > TAR_PAX_MAX) {
            fail(r, "pax extended header larger than %u bytes", TAR_PAX_MAX);
            goto out;
        }
        if (!(pf = calloc(1, sizeof(*pf)))) {
            fail(r, "out of memory");
            goto out;
        }
        if (take(r, r->pax, n) < 0 || take(r, NULL, (BLOCK - n % BLOCK) % BLOCK) < 0 || pax_parse(r, (size_t)n, pf) < 0)
            goto out;
    }
    static const struct pax_fields none;
    rc = apply_header(r, h, pf ? pf : &none, e) < 0 ? -1 : 1;
out:
    free(pf);
    return rc;
}

int tar_data(struct tar_reader *r, const void **data, size_t *len, uint64_t *off)
{
    if (r->failed)
        return -1;
    while (r->cur_seg < r->nseg && r->seg_done == r->seg[r->cur_seg].len) {
        r->cur_seg++;
        r->seg_done = 0;
    }
    if (!r->in_entry || r->cur_seg >= r->nseg)
        return 0;
    long a = available(r);
    if (a < 0)
        return -1;
    if (a == 0)
        return fail(r, "the archive ends in the middle of a file (truncated)");
    const struct tar_segment *s = &r->seg[r->cur_seg];
    uint64_t want = s->len - r->seg_done;
    size_t k = (uint64_t)a < want ? (size_t)a : (size_t)want;
    *data = r->in + r->in_off;
    *len = k;
    *off = s->off + r->seg_done;
    r->in_off += k;
    r->seg_done += k;
    r->data_left -= k;
    return 1;
}
