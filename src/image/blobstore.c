/* The content-addressed blob store (<images_dir>/blobs/sha256/<hex>): blobs arrive in a
 * per-process temporary file, are hashed while they stream, and are renamed into place
 * only when their SHA-256 matches their name, so the store never holds a lying blob. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image_int.h"
#include "util/util.h"

/* ---- SHA-256 (FIPS 180-4) ---- */

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256 *s, const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
    s->h[5] += f;
    s->h[6] += g;
    s->h[7] += h;
}

void sha256_init(struct sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof(iv));
    s->len = 0;
    s->fill = 0;
}

void sha256_update(struct sha256 *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    s->len += len;
    if (s->fill) {
        size_t take = 64 - s->fill < len ? 64 - s->fill : len;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take;
        p += take;
        len -= take;
        if (s->fill < 64)
            return;
        sha256_block(s, s->buf);
        s->fill = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        sha256_block(s, p);
    memcpy(s->buf, p, len);
    s->fill = len;
}

void sha256_final(struct sha256 *s, uint8_t out[32])
{
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80;
    sha256_update(s, &pad, 1);
    uint8_t zero = 0;
    while (s->fill != 56)
        sha256_update(s, &zero, 1);
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, lenb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void sha256_digest_str(const uint8_t raw[32], char out[IMAGE_DIGEST_MAX])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[raw[i] >> 4];
        out[8 + 2 * i] = hex[raw[i] & 15];
    }
    out[71] = 0;
}

void sha256_digest_of(const void *data, size_t len, char out[IMAGE_DIGEST_MAX])
{
    struct sha256 s;
    uint8_t raw[32];
    sha256_init(&s);
    sha256_update(&s, data, len);
    sha256_final(&s, raw);
    sha256_digest_str(raw, out);
}

/* ---- store ---- */

int image_blob_path(const char *images_dir, const char *digest, char *out, size_t cap)
{
    if (!img_digest_valid(digest))
        return -1;
    int n = snprintf(out, cap, "%s/blobs/sha256/%s", images_dir, digest + 7);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

int store_init(const char *images_dir, char *err, size_t errlen)
{
    char dir[4096];
    if (snprintf(dir, sizeof(dir), "%s/blobs/sha256", images_dir) >= (int)sizeof(dir))
        return img_err(err, errlen, "image directory path is too long");
    if (mkdir_p(dir) < 0)
        return img_err(err, errlen, "cannot create the blob store %s: %s", dir, strerror(errno));
    return 0;
}

int store_has(const char *images_dir, const char *digest, uint64_t size)
{
    char path[4096];
    struct stat st;
    if (image_blob_path(images_dir, digest, path, sizeof(path)) < 0 || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    return size == UINT64_MAX || (uint64_t)st.st_size == size;
}

/* Temporary names: .tmp-<pid>-<counter>-<hex prefix>; a name whose pid is gone is stale. */
void store_sweep(const char *images_dir)
{
    char dir[4096];
    if (snprintf(dir, sizeof(dir), "%s/blobs/sha256", images_dir) >= (int)sizeof(dir))
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".tmp-", 5) != 0)
            continue;
        long pid = strtol(e->d_name + 5, NULL, 10);
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

int blob_writer_open(struct blob_writer *w, const char *images_dir, const char *digest, uint64_t limit, char *err,
                     size_t errlen)
{
    static unsigned counter;
    memset(w, 0, sizeof(*w));
    w->fd = -1;
    w->limit = limit;
    sha256_init(&w->hash);
    if (digest && *digest) {
        if (!img_digest_valid(digest))
            return img_err(err, errlen, "unsupported or malformed digest '%.80s'", digest);
        snprintf(w->digest, sizeof(w->digest), "%s", digest);
    }
    if (store_init(images_dir, err, errlen) < 0)
        return -1;
    unsigned c = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    int n = snprintf(w->tmp, sizeof(w->tmp), "%s/blobs/sha256/.tmp-%ld-%u-%.12s", images_dir, (long)getpid(), c,
                     w->digest[0] ? w->digest + 7 : "new");
    if (n < 0 || (size_t)n >= sizeof(w->tmp))
        return img_err(err, errlen, "image directory path is too long");
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0)
        return img_err(err, errlen, "cannot create %s: %s", w->tmp, strerror(errno));
    return 0;
}

int blob_writer_write(struct blob_writer *w, const void *data, size_t len, char *err, size_t errlen)
{
    if (w->bytes + len > w->limit || w->bytes + len < w->bytes)
        return img_err(err, errlen, "more than the expected %llu bytes arrived", (unsigned long long)w->limit);
    while (w->nhead < sizeof(w->head) && w->nhead < w->bytes + len) {
        w->head[w->nhead] = ((const uint8_t *)data)[w->nhead - w->bytes];
        w->nhead++;
    }
    sha256_update(&w->hash, data, len);
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t k = write(w->fd, p, left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return img_err(err, errlen, "cannot write %s: %s", w->tmp, strerror(k < 0 ? errno : EIO));
        p += k;
        left -= (size_t)k;
    }
    w->bytes += len;
    util_test_point("BLOB_WRITE");
    return 0;
}

void blob_writer_abort(struct blob_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    if (w->tmp[0])
        unlink(w->tmp);
    w->tmp[0] = 0;
}

int blob_writer_commit(struct blob_writer *w, const char *images_dir, uint64_t expect_size, const char *what, char *err,
                       size_t errlen)
{
    uint8_t raw[32];
    char got[IMAGE_DIGEST_MAX];
    sha256_final(&w->hash, raw);
    sha256_digest_str(raw, got);
    if (expect_size != UINT64_MAX && w->bytes != expect_size) {
        img_err(err, errlen, "%s %s: got %llu bytes, expected %llu; refusing it", what, w->digest[0] ? w->digest : got,
                (unsigned long long)w->bytes, (unsigned long long)expect_size);
        blob_writer_abort(w);
        return -1;
    }
    if (w->digest[0] && strcmp(got, w->digest) != 0) {
        img_err(err, errlen, "%s %s failed verification: its content hashes to %s; refusing it", what, w->digest, got);
        blob_writer_abort(w);
        return -1;
    }
    snprintf(w->digest, sizeof(w->digest), "%s", got);
    if (fsync(w->fd) < 0 || close(w->fd) < 0) {
        w->fd = -1;
        img_err(err, errlen, "cannot write %s: %s", w->tmp, strerror(errno));
        blob_writer_abort(w);
        return -1;
    }
    w->fd = -1;
    if (image_blob_path(images_dir, w->digest, w->final, sizeof(w->final)) < 0 || rename(w->tmp, w->final) < 0) {
        img_err(err, errlen, "cannot move %s into the blob store: %s", w->digest, strerror(errno));
        blob_writer_abort(w);
        return -1;
    }
    w->tmp[0] = 0;
    return 0;
}

int store_put(const char *images_dir, const void *data, size_t len, char out[IMAGE_DIGEST_MAX], char *err,
              size_t errlen)
{
    sha256_digest_of(data, len, out);
    if (store_has(images_dir, out, len))
        return 0;
    struct blob_writer w;
    if (blob_writer_open(&w, images_dir, out, len, err, errlen) < 0) {
        blob_writer_abort(&w);
        return -1;
    }
    if (blob_writer_write(&w, data, len, err, errlen) < 0) {
        blob_writer_abort(&w);
        return -1;
    }
    return blob_writer_commit(&w, images_dir, len, "blob", err, errlen);
}

char *image_blob_read(const char *images_dir, const char *digest, size_t max, size_t *len, char *err, size_t errlen)
{
    char path[4096];
    if (image_blob_path(images_dir, digest, path, sizeof(path)) < 0) {
        img_err(err, errlen, "malformed digest '%.80s'", digest ? digest : "");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        img_err(err, errlen, "blob %s is not in the store (%s): %s", digest, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        img_err(err, errlen, "blob %s in the store is not a regular file", digest);
        return NULL;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        img_err(err, errlen, "blob %s is %lld bytes, more than the %zu allowed here", digest, (long long)st.st_size,
                max);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        img_err(err, errlen, "out of memory reading blob %s", digest);
        return NULL;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (got != n) {
        free(buf);
        img_err(err, errlen, "cannot read blob %s from the store", digest);
        return NULL;
    }
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}
