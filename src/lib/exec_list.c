/* Finding and signalling the commands running in a box, whoever started them: the
 * processes the guest agent spawned for an exec are session leaders whose parent is
 * the agent (PID 1). Until the monitor can list its streams (see docs/internals.md),
 * this is done by a small POSIX sh script run as an exec of its own. */
#include "lib/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_OUTPUT_MAX (4u << 20)

/* Prints "PID cmdline\036" for every session leader whose parent is PID 1. */
static const char list_script[] = "cd /proc || exit 1\n"
                                  "for p in [0-9]*; do\n"
                                  "  { read -r s < \"$p/stat\"; } 2>/dev/null || continue\n"
                                  "  set -- ${s##*) }\n"
                                  "  [ \"$2\" = 1 ] && [ \"$3\" = \"$p\" ] && [ \"$4\" = \"$p\" ] || continue\n"
                                  "  printf '%s ' \"$p\"\n"
                                  "  cat \"$p/cmdline\" 2>/dev/null\n"
                                  "  printf '\\036'\n"
                                  "done\n";

struct buf {
    char *p;
    size_t len, cap;
    int overflow;
};

static void collect(void *user, const char *data, size_t len)
{
    struct buf *b = user;
    if (b->overflow || b->len + len + 1 > LIST_OUTPUT_MAX) {
        b->overflow = 1;
        return;
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown) {
            b->overflow = 1;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = 0;
}

/* Runs a sh script in the guest, collecting stdout; 0 with the exit status. */
static int run_script(cocoon_box *box, const char *script, const char *const *args, struct buf *out,
                      cocoon_exit_status *st, int *self, cocoon_error *err)
{
    const char *argv[16] = {"/bin/sh", "-c", script, "cocoon"};
    size_t n = 4;
    for (size_t i = 0; args && args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cocoon_exec_options o;
    cocoon_exec_options_init(&o);
    o.argv = argv;
    o.on_stdout = collect;
    o.user_data = out;
    o.timeout_ms = 30000;
    cocoon_exec *ex;
    if (cocoon_exec_start(box, &o, &ex, err) < 0)
        return -1;
    int rc = cocoon_exec_wait(ex, st, err);
    if (self)
        *self = cocoon_exec_id(ex);
    cocoon_exec_free(ex);
    if (rc < 0 && err && err->code == COCOON_E_EXEC)
        err->code = COCOON_E_UNSUPPORTED; /* no /bin/sh in the image */
    return rc;
}

/* Records are "PID cmdline\036" where cmdline holds NUL bytes: parse by length. */
static int parse_list(const char *text, size_t size, int self, cocoon_exec_info **out, size_t *count)
{
    size_t n = 0, cap = 0;
    cocoon_exec_info *list = NULL;
    const char *rec = text, *stop = text + size;
    while (rec < stop) {
        const char *end = memchr(rec, '\036', (size_t)(stop - rec));
        if (!end)
            end = stop;
        const char *sp = memchr(rec, ' ', (size_t)(end - rec));
        long id = 0;
        for (const char *q = rec; sp && q < sp && *q >= '0' && *q <= '9' && id < 1000000000; q++)
            id = id * 10 + (*q - '0');
        if (sp && id > 1 && id != self) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                cocoon_exec_info *grown = realloc(list, cap * sizeof(*list));
                if (!grown) {
                    free(list);
                    return -1;
                }
                list = grown;
            }
            cocoon_exec_info *e = &list[n++];
            memset(e, 0, sizeof(*e));
            e->id = (int)id;
            size_t len = (size_t)(end - (sp + 1));
            if (len >= sizeof(e->command))
                len = sizeof(e->command) - 1;
            memcpy(e->command, sp + 1, len);
            for (size_t i = 0; i < len; i++) /* NUL-separated arguments, shown with spaces */
                if (e->command[i] == 0 || iscntrl((unsigned char)e->command[i]))
                    e->command[i] = ' ';
            while (len > 0 && e->command[len - 1] == ' ')
                e->command[--len] = 0;
        }
        rec = end + 1;
    }
    *out = list;
    *count = n;
    return 0;
}

int cocoon_box_list_execs(cocoon_box *box, cocoon_exec_info **out, size_t *count, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !out || !count)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_list_execs: NULL argument");
    *out = NULL;
    *count = 0;
    struct buf b = {0};
    cocoon_exit_status st;
    int self = 0;
    int rc = run_script(box, list_script, NULL, &b, &st, &self, err);
    if (rc == 0 && (st.signal || st.exit_code != 0 || b.overflow))
        rc = lib_err(err, COCOON_E_EXEC, "box %s: listing the running commands failed (%s)", box->id,
                     b.overflow ? "too much output" : "the guest's /bin/sh script failed");
    if (rc == 0 && parse_list(b.p ? b.p : "", b.len, self, out, count) < 0)
        rc = lib_err(err, COCOON_E_NOMEM, "out of memory");
    free(b.p);
    return rc;
}

int cocoon_box_signal_exec(cocoon_box *box, int id, int signo, size_t *signalled, cocoon_error *err)
{
    lib_err_clear(err);
    if (signalled)
        *signalled = 0;
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_signal_exec: NULL box");
    if (signo <= 0 || signo >= 65)
        return lib_err(err, COCOON_E_INVALID, "invalid signal number %d", signo);
    if (id < 0 || id == 1)
        return lib_err(err, COCOON_E_INVALID, "invalid exec id %d", id);
    cocoon_exec_info *list;
    size_t n;
    if (cocoon_box_list_execs(box, &list, &n, err) < 0)
        return -1;
    /* "kill -N -PGID ..." (no "--": busybox does not take it) */
    size_t cap = 64 + n * 16;
    char *script = malloc(cap);
    if (!script) {
        free(list);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    size_t len = (size_t)snprintf(script, cap, "kill -%d", signo);
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        if (id == 0 || list[i].id == id) {
            len += (size_t)snprintf(script + len, cap - len, " -%d", list[i].id);
            hits++;
        }
    }
    free(list);
    int rc = 0;
    if (hits == 0 && id != 0)
        rc = lib_err(err, COCOON_E_NOT_FOUND, "box %s: no running exec with id %d (see `cocoon kill --list %s`)",
                     box->id, id, box->name[0] ? box->name : box->id);
    if (rc == 0 && hits > 0) {
        struct buf b = {0};
        cocoon_exit_status st;
        /* With "all", an exec that ended meanwhile makes kill fail: that is not an error. */
        rc = run_script(box, script, NULL, &b, &st, NULL, err);
        free(b.p);
        if (rc == 0 && id != 0 && (st.signal || st.exit_code))
            rc = lib_err(err, COCOON_E_NOT_FOUND, "box %s: exec %d ended before it could be signalled", box->id, id);
    }
    free(script);
    if (rc == 0 && signalled)
        *signalled = hits;
    return rc;
}
