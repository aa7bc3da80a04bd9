/* The detached execs of a box as their records say (DIR/execs/<pid>.json, written by the
 * monitor's detached.c): what `cocoon exec --ls` and `inspect` show after the fact. A
 * record still saying running while the box's monitor is gone counts as stopped. */
#include "lib/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boxcfg/mainspec.h"
#include "util/util.h"

/* Records a box may hold: the kept finished ones plus those running (detached.h). */
#define DETACHED_RECORDS_MAX (32 + 64)

static int by_start(const void *a, const void *b)
{
    const cocoon_detached_info *x = a, *y = b;
    if (x->started_at != y->started_at)
        return x->started_at < y->started_at ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* "123.json": its pid, else 0. */
static int record_pid(const char *name)
{
    char *end;
    long pid = strtol(name, &end, 10);
    return name[0] >= '1' && name[0] <= '9' && !strcmp(end, ".json") && pid > 0 && pid <= (1L << 30) ? (int)pid : 0;
}

int cocoon_box_detached_execs(cocoon_box *box, cocoon_detached_info **out, size_t *count, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !out || !count)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_detached_execs: NULL argument");
    *out = NULL;
    *count = 0;
    cocoon_detached_info *list = calloc(DETACHED_RECORDS_MAX, sizeof(*list));
    if (!list)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    char path[LIB_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/execs", box->dir);
    int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    DIR *d = dirfd >= 0 ? fdopendir(dirfd) : NULL;
    if (!d) {
        int e = errno;
        if (dirfd >= 0)
            close(dirfd);
        if (e == ENOENT) { /* never started: none */
            *out = list;
            return 0;
        }
        free(list);
        return lib_err(err, COCOON_E_IO, "%s: %s", path, strerror(e));
    }
    int running = lib_box_running(box->dir, NULL);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < DETACHED_RECORDS_MAX) {
        int pid = record_pid(e->d_name);
        struct main_state st;
        char why[256];
        if (!pid || main_state_read_as(dirfd, e->d_name, &st, why, sizeof(why)) <= 0)
            continue; /* not a record, or one being replaced: skipped */
        cocoon_detached_info *x = &list[n++];
        x->id = pid;
        snprintf(x->command, sizeof(x->command), "%s", st.command);
        snprintf(x->state, sizeof(x->state), "%s", st.state);
        if (!running && strcmp(st.state, "exited"))
            snprintf(x->state, sizeof(x->state), "stopped");
        x->exit_code = strcmp(st.state, "exited") ? -1 : st.exit_code;
        x->signal = st.signal;
        x->started_at = st.started_at;
        x->finished_at = st.finished_at;
    }
    closedir(d);
    qsort(list, n, sizeof(*list), by_start);
    *out = list;
    *count = n;
    return 0;
}
