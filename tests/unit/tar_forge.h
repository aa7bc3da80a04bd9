/* Forged tar streams for the unit tests of the host side of `cocoon cp`: what a hostile
 * guest agent could send, built byte by byte in the agent's own dialect (ustar headers,
 * pax 'x' headers, GNU sparse 1.0), so every field can also be made to lie. */
#ifndef COCOON_TESTS_TAR_FORGE_H
#define COCOON_TESTS_TAR_FORGE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ustar.h"

struct forge {
    uint8_t *buf;
    size_t len, cap;
};

static inline void fg_raw(struct forge *f, const void *p, size_t n)
{
    if (f->len + n > f->cap) {
        f->cap = (f->len + n) * 2 + 4096;
        f->buf = realloc(f->buf, f->cap);
        if (!f->buf)
            abort();
    }
    if (p)
        memcpy(f->buf + f->len, p, n);
    else
        memset(f->buf + f->len, 0, n);
    f->len += n;
}

static inline void fg_pad(struct forge *f)
{
    size_t pad = (512 - f->len % 512) % 512;
    fg_raw(f, NULL, pad);
}

static inline void fg_free(struct forge *f)
{
    free(f->buf);
    memset(f, 0, sizeof(*f));
}

/* A bare ustar header; name and link cut at 100 bytes as the format stores them. */
static inline void fg_header(struct forge *f, const char *name, char type, unsigned mode, uint64_t size,
                             const char *link)
{
    uint8_t h[512];
    memset(h, 0, sizeof(h));
    strncpy((char *)h, name, 100);
    snprintf((char *)h + 100, 8, "%07o", mode & 07777);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    if (size <= 077777777777ull) {
        snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    } else { /* base-256 */
        h[124] = 0x80;
        for (int i = 0; i < 8; i++)
            h[135 - i] = (uint8_t)(size >> (8 * i));
    }
    snprintf((char *)h + 136, 12, "%011o", 1600000000);
    ustar_seal(h, type, link);
    fg_raw(f, h, sizeof(h));
}

/* Appends one "LEN key=value\n" record to rec (the length counts itself). */
static inline void fg_rec(char *rec, size_t cap, const char *key, const char *value)
{
    size_t body = strlen(key) + strlen(value) + 3, len = body + 1;
    while (snprintf(NULL, 0, "%zu", len) + body != len)
        len++;
    size_t n = strlen(rec);
    snprintf(rec + n, cap - n, "%zu %s=%s\n", len, key, value);
}

static inline void fg_pax(struct forge *f, const char *records)
{
    size_t n = strlen(records);
    fg_header(f, "././@PaxHeader", 'x', 0644, n, NULL);
    fg_raw(f, records, n);
    fg_pad(f);
}

/* An entry with its data; names or links past 100 bytes go through a pax header. */
static inline void fg_entry(struct forge *f, const char *name, char type, unsigned mode, const void *data, size_t len,
                            const char *link)
{
    if (strlen(name) > 100 || (link && strlen(link) > 100)) {
        static char rec[20000];
        rec[0] = 0;
        if (strlen(name) > 100)
            fg_rec(rec, sizeof(rec), "path", name);
        if (link && strlen(link) > 100)
            fg_rec(rec, sizeof(rec), "linkpath", link);
        fg_pax(f, rec);
    }
    fg_header(f, name, type, mode, len, link);
    if (len) {
        fg_raw(f, data, len);
        fg_pad(f);
    }
}

static inline void fg_file(struct forge *f, const char *name, unsigned mode, const char *text)
{
    fg_entry(f, name, '0', mode, text, strlen(text), NULL);
}

static inline void fg_dir(struct forge *f, const char *name, unsigned mode)
{
    fg_entry(f, name, '5', mode, NULL, 0, NULL);
}

static inline void fg_symlink(struct forge *f, const char *name, const char *target)
{
    fg_entry(f, name, '2', 0777, NULL, 0, target);
}

static inline void fg_hardlink(struct forge *f, const char *name, const char *target)
{
    fg_entry(f, name, '1', 0644, NULL, 0, target);
}

/* A GNU sparse 1.0 file of realsize bytes whose data regions (off, len pairs) hold
 * the byte fill. */
static inline void fg_sparse(struct forge *f, const char *name, uint64_t realsize, const uint64_t *regions, size_t n,
                             char fill)
{
    char map[65536], num[32];
    size_t m = (size_t)snprintf(map, sizeof(map), "%zu\n", n);
    uint64_t data = 0;
    for (size_t i = 0; i < n; i++) {
        m += (size_t)snprintf(map + m, sizeof(map) - m, "%llu\n%llu\n", (unsigned long long)regions[2 * i],
                              (unsigned long long)regions[2 * i + 1]);
        data += regions[2 * i + 1];
    }
    size_t padded = (m + 511) / 512 * 512;
    char rec[8192] = "";
    fg_rec(rec, sizeof(rec), "GNU.sparse.major", "1");
    fg_rec(rec, sizeof(rec), "GNU.sparse.minor", "0");
    fg_rec(rec, sizeof(rec), "GNU.sparse.name", name);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)realsize);
    fg_rec(rec, sizeof(rec), "GNU.sparse.realsize", num);
    fg_pax(f, rec);
    fg_header(f, "GNUSparseFile.0/x", '0', 0644, padded + data, NULL);
    fg_raw(f, map, m);
    fg_raw(f, NULL, padded - m);
    for (uint64_t i = 0; i < data; i++)
        fg_raw(f, &fill, 1);
    fg_pad(f);
}

static inline void fg_end(struct forge *f) { fg_raw(f, NULL, 1024); }

#endif
