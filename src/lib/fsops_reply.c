/* The guest's answer to a FILE_OP, read from its STDOUT (docs/protocol.md, "File
 * operations"): FILE_ENTRIES frames, the last with END, or one ERROR. The guest is
 * hostile: frames are parsed with the protocol's bounded decoder, and the answer is held
 * to the request (how many entries, named or not), to PROTO_FSOP_MAX_ENTRIES entries and
 * PROTO_FSOP_MAX_BYTES bytes, and to nothing after its last frame. */
#include "lib/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lib_fsop_reply_init(struct lib_fsop_reply *r, int expect)
{
    memset(r, 0, sizeof(*r));
    r->expect = expect;
    r->buf = malloc(PROTO_MAX_FRAME);
    return r->buf ? 0 : -1;
}

void lib_fsop_reply_free(struct lib_fsop_reply *r)
{
    free(r->buf);
    free(r->entries);
    r->buf = NULL;
    r->entries = NULL;
    r->count = r->cap = 0;
}

__attribute__((format(printf, 2, 3))) static int broke(struct lib_fsop_reply *r, const char *fmt, ...)
{
    if (!r->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->why, sizeof(r->why), fmt, ap);
        va_end(ap);
    }
    return -1;
}

#define ENTRY_STOP 2 /* each() refused the entry: r->why says why */

static int take_entry(void *user, const struct proto_file_entry *e)
{
    struct lib_fsop_reply *r = user;
    if (r->expect == FSOP_EXPECT_NONE)
        return broke(r, "an entry in the answer to a removal"), ENTRY_STOP;
    if (r->expect == FSOP_EXPECT_ONE && r->count > 0)
        return broke(r, "more than the one entry asked for"), ENTRY_STOP;
    if (r->expect == FSOP_EXPECT_ONE && e->name[0])
        return broke(r, "a directory entry where the path itself was asked for"), ENTRY_STOP;
    if (r->expect == FSOP_EXPECT_LIST && !e->name[0])
        return broke(r, "a directory entry without a name"), ENTRY_STOP;
    if (r->count >= PROTO_FSOP_MAX_ENTRIES)
        return broke(r, "more than %u entries", PROTO_FSOP_MAX_ENTRIES), ENTRY_STOP;
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        if (cap > PROTO_FSOP_MAX_ENTRIES)
            cap = PROTO_FSOP_MAX_ENTRIES;
        cocoon_file_info *grown = realloc(r->entries, cap * sizeof(*grown));
        if (!grown)
            return broke(r, "out of memory for %zu entries", cap), ENTRY_STOP;
        r->entries = grown;
        r->cap = cap;
    }
    cocoon_file_info *o = &r->entries[r->count++];
    memset(o, 0, sizeof(*o));
    _Static_assert(sizeof(o->name) == sizeof(e->name), "names have one bound");
    _Static_assert(sizeof(o->link_target) == sizeof(e->target), "link targets have one bound");
    memcpy(o->name, e->name, sizeof(o->name));
    memcpy(o->link_target, e->target, sizeof(o->link_target));
    o->type = (int)e->type;
    o->mode = e->mode;
    o->uid = e->uid;
    o->gid = e->gid;
    o->size = e->size;
    o->mtime = (long long)e->mtime_sec;
    o->mtime_nsec = (long)e->mtime_nsec;
    return 0;
}

static int take_frame(struct lib_fsop_reply *r, const struct proto_header *h, const uint8_t *p)
{
    if (r->ended || r->has_error)
        return broke(r, "a frame after the end of the answer");
    if (h->stream != 1)
        return broke(r, "a frame for stream %u", h->stream);
    if (h->type == PROTO_ERROR) {
        struct proto_error_msg m;
        if (proto_decode_error(p, h->len, &m) != PROTO_OK)
            return broke(r, "a malformed ERROR");
        r->has_error = 1;
        r->error_code = m.code;
        memcpy(r->error_msg, m.message, sizeof(r->error_msg));
        return 0;
    }
    if (h->type != PROTO_FILE_ENTRIES)
        return broke(r, "a %s frame", proto_type_name(h->type));
    uint32_t flags = 0;
    int rc = proto_decode_file_entries(p, h->len, take_entry, r, &flags);
    if (rc == ENTRY_STOP)
        return -1;
    if (rc != PROTO_OK)
        return broke(r, "a malformed FILE_ENTRIES (%s)", proto_strerror(rc));
    r->ended = (flags & PROTO_FSOP_END) != 0;
    return 0;
}

int lib_fsop_reply_feed(struct lib_fsop_reply *r, const uint8_t *p, size_t n)
{
    if (r->why[0])
        return -1;
    if (n > PROTO_FSOP_MAX_BYTES || r->total + n > PROTO_FSOP_MAX_BYTES)
        return broke(r, "an answer larger than %u MiB", PROTO_FSOP_MAX_BYTES >> 20);
    r->total += n;
    while (n > 0) {
        size_t k = PROTO_MAX_FRAME - r->len;
        if (k > n)
            k = n;
        memcpy(r->buf + r->len, p, k);
        r->len += k;
        p += k;
        n -= k;
        size_t off = 0;
        for (;;) {
            struct proto_header h;
            const uint8_t *payload;
            size_t flen;
            int rc = proto_frame_parse(r->buf + off, r->len - off, &h, &payload, &flen);
            if (rc == PROTO_NEED_MORE)
                break;
            if (rc != PROTO_OK)
                return broke(r, "a bad frame (%s)", proto_strerror(rc));
            if (take_frame(r, &h, payload) < 0)
                return -1;
            off += flen;
        }
        memmove(r->buf, r->buf + off, r->len - off);
        r->len -= off;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const cocoon_file_info *)a)->name, ((const cocoon_file_info *)b)->name);
}

int lib_fsop_reply_finish(struct lib_fsop_reply *r)
{
    if (r->why[0])
        return -1;
    if (r->len > 0)
        return broke(r, "the answer ends in the middle of a frame");
    if (r->ended && r->expect == FSOP_EXPECT_ONE && r->count != 1)
        return broke(r, "no entry in the answer");
    if (r->count > 1)
        qsort(r->entries, r->count, sizeof(*r->entries), by_name);
    for (size_t i = 1; i < r->count; i++)
        if (!strcmp(r->entries[i - 1].name, r->entries[i].name))
            return broke(r, "the same name twice in a directory");
    return 0;
}
