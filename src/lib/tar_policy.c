/* Archive names, symlink targets and the record of names an archive brought
 * (tar_policy.h). Everything here reads names from outside: no assumption on their
 * length or content beyond what is checked. */
#include "lib/tar_policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/util.h"

#define KIND_BITS 7u
#define BOOK_MIN_CAP 1024u

enum tar_name_verdict tar_name_clean(const char *name, char *out, size_t cap, size_t *ncomp)
{
    *ncomp = 0;
    if (cap == 0)
        return TAR_NAME_TOO_LONG;
    out[0] = 0;
    if (name[0] == '/')
        return TAR_NAME_ABSOLUTE;
    size_t len = 0, n = 0;
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t clen = slash ? (size_t)(slash - p) : strlen(p);
        if (clen == 2 && p[0] == '.' && p[1] == '.')
            return TAR_NAME_DOTDOT;
        if (clen > 0 && !(clen == 1 && p[0] == '.')) {
            if (++n > TAR_POLICY_MAX_DEPTH)
                return TAR_NAME_TOO_DEEP;
            if (len + (len > 0) + clen >= cap)
                return TAR_NAME_TOO_LONG;
            if (len > 0)
                out[len++] = '/';
            memcpy(out + len, p, clen);
            out[len += clen] = 0;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    *ncomp = n;
    return TAR_NAME_OK;
}

const char *tar_name_problem(enum tar_name_verdict v)
{
    switch (v) {
    case TAR_NAME_OK: return "is fine";
    case TAR_NAME_ABSOLUTE: return "is absolute";
    case TAR_NAME_DOTDOT: return "climbs out with \"..\"";
    case TAR_NAME_TOO_LONG: return "is too long";
    case TAR_NAME_TOO_DEEP: return "is nested too deep";
    }
    return "is not valid";
}

int tar_link_stays_inside(const char *target, long depth)
{
    if (target[0] == '/' || depth < 0)
        return 0;
    int seen_normal = 0;
    long ups = 0;
    const char *p = target;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t clen = slash ? (size_t)(slash - p) : strlen(p);
        if (clen == 2 && p[0] == '.' && p[1] == '.') {
            if (seen_normal || ++ups > depth)
                return 0;
        } else if (clen > 0 && !(clen == 1 && p[0] == '.')) {
            seen_normal = 1;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    return 1;
}

/* ---- the book ---- */

int tar_book_init(struct tar_book *b)
{
    memset(b, 0, sizeof(*b));
    size_t got = 0;
    while (got < sizeof(b->key)) {
        ssize_t n = getrandom(b->key + got, sizeof(b->key) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

void tar_book_free(struct tar_book *b)
{
    free(b->slots);
    b->slots = NULL;
    b->cap = b->used = 0;
}

static uint64_t book_hash(const struct tar_book *b, const char *name, size_t len)
{
    return util_siphash(b->key, name, len) & ~(uint64_t)KIND_BITS;
}

/* The slot holding hash h, or the empty slot where it would go. */
static size_t book_find(const struct tar_book *b, uint64_t h)
{
    size_t i = (size_t)(h >> 3) & (b->cap - 1);
    while (b->slots[i] && (b->slots[i] & ~(uint64_t)KIND_BITS) != h)
        i = (i + 1) & (b->cap - 1);
    return i;
}

enum tar_kind tar_book_get(const struct tar_book *b, const char *name, size_t len)
{
    if (!b->cap)
        return TAR_KIND_NONE;
    return (enum tar_kind)(b->slots[book_find(b, book_hash(b, name, len))] & KIND_BITS);
}

static int book_grow(struct tar_book *b)
{
    size_t ncap = b->cap ? b->cap * 2 : BOOK_MIN_CAP;
    uint64_t *old = b->slots, *slots = calloc(ncap, sizeof(*slots));
    if (!slots) {
        free(slots);
        return -1;
    }
    size_t ocap = b->cap;
    b->slots = slots;
    b->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i])
            b->slots[book_find(b, old[i] & ~(uint64_t)KIND_BITS)] = old[i];
    free(old);
    return 0;
}

int tar_book_put(struct tar_book *b, const char *name, size_t len, enum tar_kind kind)
{
    if ((b->used + 1) * 2 > b->cap && book_grow(b) < 0) /* at most half full: short probes */
        return -1;
    uint64_t h = book_hash(b, name, len);
    size_t i = book_find(b, h);
    if (!b->slots[i])
        b->used++;
    b->slots[i] = h | (uint64_t)kind;
    return 0;
}
