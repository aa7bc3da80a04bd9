/* Forged answers to FILE_OP (`cocoon fs ls|stat BOX /NAME`): the last component of the
 * path names the lie (names with '/', nameless or doubled entries, more than 100000
 * entries, more than 64 MiB, frames after the end, a cut frame, no last frame, escapes
 * in an ERROR's text, silence), sent as STDOUT honouring credits so only the content
 * attacks. */
#include "hostile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static struct proto_writer fw; /* H.w carries the frames to the host */
static int failed;             /* the host signalled the stream: stop writing */

static void out(struct hstream *s, size_t n)
{
    if (!failed && n && stream_out(s, fw.buf, n) < 0)
        failed = 1;
}

/* n entries named PREFIX<i> (a NULL prefix: nameless), each with a target of tlen
 * bytes, in as many frames as they need; the last with flags. */
static void entries(struct hstream *s, const char *prefix, unsigned long n, size_t tlen, uint32_t flags)
{
    struct proto_file_entry e;
    memset(&e, 0, sizeof(e));
    e.type = tlen ? PROTO_FTYPE_SYMLINK : PROTO_FTYPE_REGULAR;
    memset(e.target, 't', tlen < PROTO_FSOP_MAX_TARGET ? tlen : PROTO_FSOP_MAX_TARGET);
    proto_entries_begin(&fw);
    for (unsigned long i = 0; i < n && !failed; i++) {
        if (prefix)
            snprintf(e.name, sizeof(e.name), "%s%lu", prefix, i);
        if (!proto_entries_add(&fw, &e)) {
            out(s, proto_entries_finish(&fw, 0));
            proto_entries_begin(&fw);
            proto_entries_add(&fw, &e);
        }
    }
    out(s, proto_entries_finish(&fw, flags));
}

static int forge(struct hstream *s, const char *name)
{
    if (!strcmp(name, "ok")) {
        entries(s, "f", 2, 0, PROTO_FSOP_END);
    } else if (!strcmp(name, "slash")) {
        entries(s, "../../etc/passwd", 1, 0, PROTO_FSOP_END);
    } else if (!strcmp(name, "nameless")) {
        entries(s, NULL, 3, 0, PROTO_FSOP_END);
    } else if (!strcmp(name, "dup")) {
        entries(s, "same", 1, 0, 0);
        entries(s, "same", 1, 0, PROTO_FSOP_END);
    } else if (!strcmp(name, "many")) {
        entries(s, "", PROTO_FSOP_MAX_ENTRIES + 1, 0, PROTO_FSOP_END);
    } else if (!strcmp(name, "huge")) { /* 64 MiB of symlinks with long targets, fewer than 100000 */
        entries(s, "l", (PROTO_FSOP_MAX_BYTES / 1000u) + 1000u, PROTO_FSOP_MAX_TARGET, PROTO_FSOP_END);
    } else if (!strcmp(name, "after-end")) {
        entries(s, "a", 1, 0, PROTO_FSOP_END);
        entries(s, "b", 1, 0, PROTO_FSOP_END);
    } else if (!strcmp(name, "cut")) {
        proto_entries_begin(&fw);
        struct proto_file_entry e = {.name = "x", .type = PROTO_FTYPE_REGULAR};
        proto_entries_add(&fw, &e);
        out(s, proto_entries_finish(&fw, PROTO_FSOP_END) - 5);
    } else if (!strcmp(name, "noend")) {
        entries(s, "a", 1, 0, 0);
    } else if (!strcmp(name, "escape")) {
        out(s, proto_encode_error(&fw, 1, ENOENT, "\x1b[2J\x1b]0;pwned\x07gone\r\nforged\xff"));
        return 1;
    } else if (!strcmp(name, "stall")) {
        return -1; /* nothing, ever */
    } else {
        entries(s, "unknown-forgery-", 1, 0, PROTO_FSOP_END);
    }
    return 0;
}

void fsop_forge(struct hstream *s, const char *name)
{
    failed = 0;
    int code = forge(s, name);
    if (code >= 0 && s->in_use)
        stream_exit(s, code);
}
