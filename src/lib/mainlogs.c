/* `cocoon logs` of a main process: main.log (and main.log.1) hold one record per
 * line, "TIME stdout|stderr TEXT" (src/monitor/mainproc.c); this reads them back,
 * each stream to its fd, with or without the time, the last N only on request, and
 * follows them like the other logs (logs.c). */
#include "lib/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "boxcfg/mainspec.h"
#include "util/util.h"

/* A record is at most a line of MAIN_LOG_LINE_MAX plus its head; a longer line (a
 * damaged file) is passed on in pieces. */
#define RECORD_MAX (MAIN_LOG_LINE_MAX + 128)

struct reader {
    int out_fd, err_fd, timestamps;
    int (*on_line)(void *user_data, int is_stderr, const char *time, const char *text, size_t len);
    void *user_data;
    char since[32]; /* "" or the first time shown, as the records write it (same width: compared as text) */
    long long skip; /* records still to skip (--tail) */
    long long count;
    int counting; /* the first pass of --tail: only count */
    char rec[RECORD_MAX];
    size_t len;
};

/* A record older than --since; one without a readable time (a damaged file) is kept. */
static int too_old(const struct reader *r)
{
    size_t w = strlen(r->since);
    if (!w || r->len <= w || r->rec[w] != ' ' || r->rec[w - 1] != 'Z')
        return 0;
    return memcmp(r->rec, r->since, w) < 0;
}

static int emit(struct reader *r)
{
    if (too_old(r))
        return 0;
    if (r->counting) {
        r->count++;
        return 0;
    }
    if (r->skip > 0) {
        r->skip--;
        return 0;
    }
    char *line = r->rec;
    size_t n = r->len;
    const char *sp = memchr(line, ' ', n);
    int fd = r->out_fd, is_err = 0;
    char when[40] = "";
    if (sp && (size_t)(sp - line) + 8 <= n && (!memcmp(sp + 1, "stdout ", 7) || !memcmp(sp + 1, "stderr ", 7))) {
        size_t ts_len = (size_t)(sp - line);
        is_err = sp[4] == 'e';
        fd = is_err ? r->err_fd : r->out_fd;
        const char *text = sp + 8;
        size_t text_len = n - ts_len - 8;
        if (r->on_line) {
            if (ts_len < sizeof(when)) {
                memcpy(when, line, ts_len);
                when[ts_len] = '\0';
            }
            return r->on_line(r->user_data, is_err, when, text, text_len) != 0;
        }
        if (r->timestamps && (lib_write_all(fd, line, ts_len) || lib_write_all(fd, " ", 1)))
            return 1;
        line = (char *)text;
        n = text_len;
    }
    if (r->on_line)
        return r->on_line(r->user_data, is_err, when, line, n) != 0;
    if (lib_write_all(fd, line, n) || lib_write_all(fd, "\n", 1))
        return 1;
    return 0;
}

static int put(void *arg, const char *buf, size_t n)
{
    struct reader *r = arg;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || r->len == sizeof(r->rec)) {
            if (emit(r))
                return 1;
            r->len = 0;
            if (buf[i] == '\n')
                continue;
        }
        r->rec[r->len++] = buf[i];
    }
    return 0;
}

void cocoon_logs_options_init(cocoon_logs_options *o)
{
    memset(o, 0, sizeof(*o));
    o->size = sizeof(*o);
    o->tail = -1;
}

int cocoon_box_main_logs(cocoon_box *box, int stdout_fd, int stderr_fd, const cocoon_logs_options *opts,
                         cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_main_logs: NULL box");
    return lib_cmd_logs(box, "main.log", stdout_fd, stderr_fd, opts, err);
}

int cocoon_box_exec_logs(cocoon_box *box, int id, int stdout_fd, int stderr_fd, const cocoon_logs_options *opts,
                         cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_exec_logs: NULL box");
    char name[48];
    snprintf(name, sizeof(name), "execs/%d.log", id);
    char path[LIB_PATH_MAX];
    if (id <= 0 || lib_path(path, sizeof(path), "%s/execs/%d.json", box->dir, id) < 0 || !util_file_exists(path))
        return lib_err(err, COCOON_E_NOT_FOUND,
                       "box %s: no detached exec %d (their output is kept until the box's next start)", box->id, id);
    return lib_cmd_logs(box, name, stdout_fd, stderr_fd, opts, err);
}

int cocoon_parse_since(const char *text, long long *unix_us, cocoon_error *err)
{
    lib_err_clear(err);
    char why[256];
    if (!unix_us)
        return lib_err(err, COCOON_E_INVALID, "cocoon_parse_since: NULL argument");
    if (util_parse_since(text, (long long)(util_now_ns(CLOCK_REALTIME) / 1000), unix_us, why, sizeof(why)) < 0)
        return lib_err(err, COCOON_E_INVALID, "%s", why);
    return 0;
}

int lib_cmd_logs(cocoon_box *box, const char *name, int stdout_fd, int stderr_fd, const cocoon_logs_options *opts,
                 cocoon_error *err)
{
    cocoon_logs_options o;
    if (LIB_OPTIONS(cocoon_logs_options, o, opts, err) < 0)
        return -1;
    char path[LIB_PATH_MAX], old[LIB_PATH_MAX];
    if (lib_path(path, sizeof(path), "%s/%s", box->dir, name) < 0 ||
        lib_path(old, sizeof(old), "%s/%s.1", box->dir, name) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    struct reader *r = calloc(1, sizeof(*r));
    if (!r)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    r->out_fd = stdout_fd;
    r->err_fd = stderr_fd;
    r->timestamps = o.timestamps;
    r->on_line = o.on_line;
    r->user_data = o.user_data;
    if (o.since_us > 0)
        util_format_us(o.since_us, r->since, sizeof(r->since));
    struct lib_log_sink sink = {put, r, stdout_fd};
    int rc = 0;
    if (o.tail >= 0) { /* a first pass counts the records: the copy then skips all but the last N */
        r->counting = 1;
        rc = lib_rotating_read(path, old, &sink, NULL, NULL);
        r->counting = 0;
        r->len = 0;
        r->skip = r->count > o.tail ? r->count - o.tail : 0;
    }
    if (rc == 0)
        rc = lib_rotating_read(path, old, &sink, o.follow ? lib_box_running_cb : NULL, box);
    if (rc == 0 && r->len) /* a last line without its newline: a file cut short */
        emit(r);
    free(r);
    if (rc < 0)
        return lib_err(err, COCOON_E_IO, "cannot read %s: %s", path, strerror(errno));
    return 0;
}
