/* Shared by the fuzz targets: runs every typed decoder of src/proto over one payload,
 * whatever the frame type said, and round-trips what decodes back through the
 * encoders (an accepted message must re-encode and decode to the same values). */
#ifndef COCOON_FUZZ_DECODERS_H
#define COCOON_FUZZ_DECODERS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

static struct proto_writer fuzz_w;

static void fuzz_check(int cond)
{
    if (!cond)
        abort();
}

static void fuzz_exec_roundtrip(const struct proto_exec *m)
{
    if (proto_encode_exec(&fuzz_w, 1, m) == 0)
        return; /* fields that fit in a payload may still not fit once defaults are added */
    static struct proto_exec again;
    fuzz_check(proto_decode_exec(fuzz_w.buf + PROTO_HEADER_SIZE, fuzz_w.len - PROTO_HEADER_SIZE, &again) == PROTO_OK);
    fuzz_check(again.argc == m->argc && again.envc == m->envc);
    for (size_t i = 0; i < m->argc; i++)
        fuzz_check(strcmp(again.argv[i], m->argv[i]) == 0);
    for (size_t i = 0; i < m->envc; i++)
        fuzz_check(strcmp(again.env[i], m->env[i]) == 0);
    fuzz_check(again.argv[again.argc] == NULL && again.env[again.envc] == NULL);
    fuzz_check(strcmp(again.cwd, m->cwd) == 0 && again.window == m->window);
    proto_exec_free(&again);
}

/* Every entry a FILE_ENTRIES decoder hands out holds to the protocol's rules. */
static int fuzz_entry_ok(void *user, const struct proto_file_entry *e)
{
    (void)user;
    fuzz_check(strlen(e->name) <= PROTO_FSOP_MAX_NAME && strlen(e->target) <= PROTO_FSOP_MAX_TARGET);
    fuzz_check(!strchr(e->name, '/') && strcmp(e->name, ".") && strcmp(e->name, ".."));
    fuzz_check(e->type >= PROTO_FTYPE_REGULAR && e->type <= PROTO_FTYPE_OTHER && e->mode <= 07777);
    fuzz_check(e->mtime_nsec < 1000000000u && (!e->target[0] || e->type == PROTO_FTYPE_SYMLINK));
    return 0;
}

static void fuzz_decode_all(const uint8_t *p, size_t n)
{
    static struct proto_hello hello;
    static struct proto_config config;
    static struct proto_ready ready;
    static struct proto_exec exec;
    static struct proto_started started;
    static struct proto_exit ex;
    static struct proto_error_msg err;
    static struct proto_vmm_hello vh;
    uint32_t a, b;

    if (proto_decode_hello(p, n, &hello) == PROTO_OK) {
        fuzz_check(hello.version_min <= hello.version_max);
        fuzz_check(proto_encode_hello(&fuzz_w, &hello) > 0);
    }
    if (proto_decode_config(p, n, &config) == PROTO_OK)
        fuzz_check(proto_encode_config(&fuzz_w, &config) > 0);
    (void)proto_decode_ready(p, n, &ready);
    int rc = proto_decode_exec(p, n, &exec);
    if (rc == PROTO_OK) {
        fuzz_check(exec.argc >= 1 && exec.argc <= PROTO_MAX_LIST && exec.argv[0][0] != 0);
        fuzz_check(exec.window > 0 && exec.tty <= 1);
        fuzz_exec_roundtrip(&exec);
        proto_exec_free(&exec);
    } else {
        fuzz_check(exec.argv == NULL && exec.env == NULL);
    }
    (void)proto_decode_started(p, n, &started);
    if (proto_decode_exit(p, n, &ex) == PROTO_OK)
        fuzz_check(ex.code >= 0 && ex.code <= 255 && ex.signal <= 64);
    if (proto_decode_error(p, n, &err) == PROTO_OK)
        fuzz_check(strlen(err.message) < sizeof(err.message));
    (void)proto_decode_u32_field(p, n, PT_SIGNAL, &a);
    (void)proto_decode_u32_field(p, n, PT_BYTES, &a);
    (void)proto_decode_shutdown(p, n, &a, &b);
    if (proto_decode_resize(p, n, &a, &b) == PROTO_OK)
        fuzz_check(a <= 65535 && b <= 65535);
    (void)proto_decode_vmm_hello(p, n, &vh);
    static struct proto_file file;
    if (proto_decode_file(p, n, &file) == PROTO_OK) {
        fuzz_check(file.path[0] != 0 && file.window != 0 && !(file.flags & ~PROTO_FILE_FLAGS_ALL));
        static struct proto_file again;
        fuzz_check(proto_encode_file(&fuzz_w, 1, PROTO_FILE_GET, &file) > 0);
        fuzz_check(proto_decode_file(fuzz_w.buf + PROTO_HEADER_SIZE, fuzz_w.len - PROTO_HEADER_SIZE, &again) ==
                   PROTO_OK);
        fuzz_check(strcmp(again.path, file.path) == 0 && again.window == file.window && again.flags == file.flags);
    }
    static struct proto_file_op fop;
    if (proto_decode_file_op(p, n, &fop) == PROTO_OK) {
        fuzz_check(fop.path[0] == '/' && fop.window != 0 && fop.mode <= 07777);
        static struct proto_file_op again;
        fuzz_check(proto_encode_file_op(&fuzz_w, 1, &fop) > 0);
        fuzz_check(proto_decode_file_op(fuzz_w.buf + PROTO_HEADER_SIZE, fuzz_w.len - PROTO_HEADER_SIZE, &again) ==
                   PROTO_OK);
        fuzz_check(again.op == fop.op && !strcmp(again.path, fop.path) && !strcmp(again.path2, fop.path2) &&
                   again.flags == fop.flags && again.mode == fop.mode && again.window == fop.window);
    }
    uint32_t eflags;
    if (proto_decode_file_entries(p, n, fuzz_entry_ok, NULL, &eflags) == PROTO_OK)
        fuzz_check(!(eflags & ~PROTO_FSOP_END));
    (void)proto_decode_stats(p, n);
    static struct proto_stats st;
    if (proto_decode_stats_reply(p, n, &st) == PROTO_OK) {
        fuzz_check(st.mem_available <= st.mem_total && st.disk_used <= st.disk_total);
        static struct proto_stats st2;
        fuzz_check(proto_encode_stats_reply(&fuzz_w, 1, &st) > 0);
        fuzz_check(proto_decode_stats_reply(fuzz_w.buf + PROTO_HEADER_SIZE, fuzz_w.len - PROTO_HEADER_SIZE, &st2) ==
                   PROTO_OK);
        fuzz_check(memcmp(&st, &st2, sizeof(st)) == 0);
    }
    static struct proto_exec_entry execs[8];
    size_t nexecs = 0;
    if (proto_decode_vmm_execs(p, n, execs, 8, &nexecs) == PROTO_OK && nexecs <= 8) {
        for (size_t i = 0; i < nexecs; i++)
            fuzz_check(strlen(execs[i].cmd) < sizeof(execs[i].cmd));
        fuzz_check(proto_encode_vmm_execs(&fuzz_w, execs, nexecs) > 0);
    }
    uint32_t spid, ssig;
    if (proto_decode_signal_exec(p, n, &spid, &ssig) == PROTO_OK)
        fuzz_check(ssig >= 1 && ssig <= 64);
    /* VMM_ATTACH comes from any local client; VMM_ATTACHED from the monitor. */
    struct proto_attach at, at2;
    if (proto_decode_attach(p, n, &at) == PROTO_OK) {
        fuzz_check(!(at.flags & ~PROTO_ATTACH_FLAGS_ALL) && at.rows <= 65535 && at.cols <= 65535);
        size_t len = proto_encode_attach(&fuzz_w, 1, &at);
        fuzz_check(len > 0 &&
                   proto_decode_attach(fuzz_w.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, &at2) == PROTO_OK);
        fuzz_check(at2.flags == at.flags && at2.rows == at.rows && at2.cols == at.cols);
    }
    struct proto_attached ad;
    if (proto_decode_attached(p, n, &ad) == PROTO_OK)
        fuzz_check(ad.tty <= 1 && !(ad.flags & ~PROTO_ATTACH_FLAGS_ALL));
    /* Live snapshots: VMM_SNAPSHOT from any local client, FREEZE from the host, FROZEN
     * from the guest. */
    struct proto_snapshot sn, sn2;
    if (proto_decode_vmm_snapshot(p, n, &sn) == PROTO_OK) {
        fuzz_check(!(sn.flags & ~PROTO_SNAPSHOT_MEMORY) && sn.timeout_ms <= PROTO_FREEZE_MAX_MS && sn.code <= 1);
        size_t len = proto_encode_vmm_snapshot(&fuzz_w, &sn);
        fuzz_check(len > 0 && proto_decode_vmm_snapshot(fuzz_w.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE,
                                                        &sn2) == PROTO_OK);
        fuzz_check(sn2.timeout_ms == sn.timeout_ms && !strcmp(sn2.message, sn.message));
    }
    uint32_t fz, fzf;
    if (proto_decode_freeze(p, n, &fz, &fzf) == PROTO_OK)
        fuzz_check(fz <= PROTO_FREEZE_MAX_MS && !(fzf & ~PROTO_FREEZE_MUTE));
    struct proto_restored rs, rs2;
    if (proto_decode_restored(p, n, &rs) == PROTO_OK) {
        size_t len = proto_encode_restored(&fuzz_w, &rs);
        fuzz_check(len > 0 &&
                   proto_decode_restored(fuzz_w.buf + PROTO_HEADER_SIZE, len - PROTO_HEADER_SIZE, &rs2) == PROTO_OK);
        fuzz_check(!memcmp(&rs, &rs2, sizeof(rs)));
    }
    struct proto_frozen fr;
    if (proto_decode_frozen(p, n, &fr) == PROTO_OK)
        fuzz_check(fr.mode <= 1 && strlen(fr.message) < sizeof(fr.message));

    /* The raw field walk must end cleanly or report truncation, never loop. */
    struct proto_reader r;
    struct proto_field f;
    proto_reader_init(&r, p, n);
    size_t fields = 0;
    while ((rc = proto_next_field(&r, &f)) == PROTO_OK) {
        fuzz_check(f.value >= p && f.value + f.len <= p + n);
        fields++;
    }
    fuzz_check(rc == PROTO_NEED_MORE || rc == PROTO_E_TRUNCATED);
    fuzz_check(fields <= n / 6);
}

#endif
