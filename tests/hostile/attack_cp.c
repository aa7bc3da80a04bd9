/* Forged archives for `cocoon cp BOX:/NAME DEST`: the FILE_GET stream is a tar the
 * hostile agent makes up (names that leave the destination, links out of it, a 10 GiB
 * sparse file, a million entries, lies about sizes, a stall), in the dialect the host
 * reads (ustar, pax, GNU sparse 1.0), honouring credits so only the content attacks. */
#include "hostile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/tar_forge.h"

/* Entries are forged one at a time into f and streamed at once: a million of them
 * never sit in guest memory together. */
static struct forge f;
static int failed; /* the host signalled the stream: stop writing */

static void flush_out(struct hstream *s)
{
    for (size_t off = 0; off < f.len && !failed; off += PROTO_MAX_PAYLOAD) {
        size_t n = f.len - off < PROTO_MAX_PAYLOAD ? f.len - off : PROTO_MAX_PAYLOAD;
        if (stream_out(s, f.buf + off, n) < 0)
            failed = 1;
    }
    f.len = 0;
}

static void flush_some(struct hstream *s)
{
    if (f.len >= PROTO_MAX_PAYLOAD)
        flush_out(s);
}

/* N entries of one type ('0' empty files, '6' FIFOs) in a directory. */
static void many(struct hstream *s, const char *top, char type, unsigned long n)
{
    char name[100];
    fg_dir(&f, top, 0755);
    for (unsigned long i = 0; i < n && !failed; i++) {
        snprintf(name, sizeof(name), "%s/%07lu", top, i);
        fg_header(&f, name, type, 0644, 0, NULL);
        flush_some(s);
    }
}

/* Directories nested until their names pass what a name may hold (4095 bytes). */
static void deep(struct hstream *s, const char *top, int levels)
{
    static char path[8192];
    int n = snprintf(path, sizeof(path), "%s", top);
    fg_dir(&f, top, 0755);
    for (int i = 0; i < levels && n + 3 < (int)sizeof(path) && !failed; i++) {
        n += snprintf(path + n, sizeof(path) - (size_t)n, "/d");
        fg_dir(&f, path, 0755);
        flush_some(s);
    }
}

static int forge(struct hstream *s, const char *name)
{
    char rec[256];
    if (!strcmp(name, "ok")) {
        fg_dir(&f, "ok", 0755);
        fg_file(&f, "ok/hello.txt", 0644, "hello from a hostile box\n");
    } else if (!strcmp(name, "dotdot")) {
        fg_dir(&f, "dotdot", 0755);
        fg_file(&f, "dotdot/../cocoon-hostile-escaped", 0644, "pwned\n");
    } else if (!strcmp(name, "absolute")) {
        fg_dir(&f, "absolute", 0755);
        fg_file(&f, "/tmp/cocoon-hostile-absolute", 0644, "pwned\n");
    } else if (!strcmp(name, "symlink-escape")) {
        fg_dir(&f, "symlink-escape", 0755);
        fg_symlink(&f, "symlink-escape/link", "/tmp");
        fg_file(&f, "symlink-escape/link/cocoon-hostile-through", 0644, "pwned\n");
    } else if (!strcmp(name, "symlink-relative")) {
        fg_dir(&f, "symlink-relative", 0755);
        fg_symlink(&f, "symlink-relative/up", "../../../../../../../../tmp");
        fg_file(&f, "symlink-relative/up/cocoon-hostile-through", 0644, "pwned\n");
    } else if (!strcmp(name, "hardlink-escape")) {
        fg_dir(&f, "hardlink-escape", 0755);
        fg_hardlink(&f, "hardlink-escape/passwd", "/etc/passwd");
    } else if (!strcmp(name, "outside-top")) {
        fg_dir(&f, "outside-top", 0755);
        fg_file(&f, "cocoon-hostile-sibling", 0644, "pwned\n");
    } else if (!strcmp(name, "dup")) {
        fg_dir(&f, "dup", 0755);
        fg_file(&f, "dup/a", 0644, "first\n");
        fg_file(&f, "dup/a", 0644, "second\n");
    } else if (!strcmp(name, "modes")) {
        fg_dir(&f, "modes", 0755);
        fg_file(&f, "modes/tool", 06755, "#!/bin/sh\n");
        fg_dir(&f, "modes/sticky", 01777);
        fg_header(&f, "modes/null", '3', 0666, 0, NULL);
    } else if (!strcmp(name, "sparse10g")) {
        uint64_t regions[] = {0, 4096, (10ull << 30) - 4096, 4096};
        fg_sparse(&f, "sparse10g", 10ull << 30, regions, 2, 'S');
    } else if (!strcmp(name, "sparse20g")) {
        uint64_t regions[] = {0, 4096, (20ull << 30) - 4096, 4096};
        fg_sparse(&f, "sparse20g", 20ull << 30, regions, 2, 'S');
    } else if (!strncmp(name, "fifos-", 6)) {
        many(s, name, '6', strtoul(name + 6, NULL, 10));
    } else if (!strncmp(name, "files-", 6)) {
        many(s, name, '0', strtoul(name + 6, NULL, 10));
    } else if (!strcmp(name, "deep")) {
        deep(s, "deep", 3000);
    } else if (!strcmp(name, "paxbomb")) {
        fg_header(&f, "PaxHeaders/bomb", 'x', 0644, 1ull << 30, NULL);
        fg_raw(&f, NULL, 64u << 10);
        flush_out(s);
        return 0;
    } else if (!strcmp(name, "lying")) {
        fg_header(&f, "lying", '0', 0644, 100u << 10, NULL);
        fg_raw(&f, NULL, 10u << 10);
        flush_out(s);
        return 0;
    } else if (!strcmp(name, "stall")) {
        fg_header(&f, "stall", '0', 0644, 1u << 20, NULL);
        fg_raw(&f, NULL, 64u << 10);
        flush_out(s);
        return -1; /* nothing more, ever */
    } else if (!strcmp(name, "badexit")) {
        fg_dir(&f, "badexit", 0755);
        fg_file(&f, "badexit/x", 0644, "x\n");
        fg_end(&f);
        flush_out(s);
        snprintf(rec, sizeof(rec), "failed\x1b[2J\x1b]0;pwned\x07\n\xff");
        chan_send_w(proto_encode_data(&H.w, s->id, PROTO_STDERR, rec, strlen(rec)), 0);
        return 1;
    } else {
        snprintf(rec, sizeof(rec), "hostile agent: no forgery named %.100s\n", name);
        chan_send_w(proto_encode_data(&H.w, s->id, PROTO_STDERR, rec, strlen(rec)), 0);
        return 1;
    }
    fg_end(&f);
    flush_out(s);
    return 0;
}

void cp_forge(struct hstream *s, const char *name)
{
    f.len = 0;
    failed = 0;
    int code = forge(s, name);
    if (code >= 0 && s->in_use)
        stream_exit(s, code);
}
