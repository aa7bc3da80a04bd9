/* Starting boxes again after a host reboot (cocoon.h, "autostart"). A box is a
 * candidate when it carries DIR/autostart (written by a successful start of a box whose
 * main process's policy is always or unless-stopped, removed by a user's stop) and is
 * not running. Whether the host rebooted is told by its boot id, recorded in
 * $COCOON_HOME/boot_id after each pass; the check is two small reads. */
#include "lib/internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "boxcfg/mainspec.h"
#include "util/util.h"

#define AUTOSTART_MARK "autostart"
#define AUTOSTART_TRIES 3              /* boots tried per box */
#define AUTOSTART_FIRST_DELAY_MS 1000u /* then doubled */
#define BOOT_ID_MAX 128u

/* 1 when the box's main process asks to be running whatever happens to the host. */
static int policy_wants_running(const char *dir)
{
    int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return 0;
    struct main_spec spec;
    char why[256];
    int rc = main_spec_read(dirfd, &spec, why, sizeof(why));
    close(dirfd);
    if (rc <= 0)
        return 0;
    int wants = spec.restart == MAIN_RESTART_ALWAYS || spec.restart == MAIN_RESTART_UNLESS_STOPPED;
    main_spec_free(&spec);
    return wants;
}

void lib_autostart_mark(cocoon_box *box)
{
    char path[LIB_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" AUTOSTART_MARK, box->dir);
    if (!policy_wants_running(box->dir)) {
        unlink(path);
        return;
    }
    util_write_file_atomic(path, "1\n", 2); /* best effort: without it the box is only not autostarted */
}

void lib_autostart_clear(cocoon_box *box)
{
    char path[LIB_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" AUTOSTART_MARK, box->dir);
    unlink(path);
}

/* The host's boot id, trailing newline cut; "" when it cannot be read. */
static void boot_id(char *out, size_t cap)
{
    const char *path = getenv("COCOON_BOOT_ID_FILE");
    size_t len = 0;
    char *text = util_read_file(path && *path ? path : "/proc/sys/kernel/random/boot_id", BOOT_ID_MAX, &len);
    out[0] = 0;
    if (!text)
        return;
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    snprintf(out, cap, "%.*s", (int)len, text);
    free(text);
}

static void recorded_boot_id(cocoon_runtime *rt, char *out, size_t cap)
{
    char path[LIB_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/boot_id", rt->home);
    size_t len = 0;
    char *text = util_read_file(path, BOOT_ID_MAX, &len);
    snprintf(out, cap, "%.*s", text ? (int)len : 0, text ? text : "");
    free(text);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* One candidate (a directory of boxes/ with the mark): started (with retries), or why not. */
static void start_one(cocoon_runtime *rt, const char *id, cocoon_autostart_fn report, void *user)
{
    char dir[LIB_PATH_MAX + NAME_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/boxes/%s", rt->home, id);
    if (lib_box_running(dir, NULL) || !policy_wants_running(dir))
        return;
    cocoon_error err;
    cocoon_box *box;
    if (cocoon_box_open(rt, id, &box, &err) < 0) {
        if (report)
            report(user, id, "", 0, err.message);
        return;
    }
    unsigned delay = AUTOSTART_FIRST_DELAY_MS;
    int rc = -1;
    for (int i = 0; i < AUTOSTART_TRIES && rc < 0; i++) {
        if (i > 0) {
            sleep_ms(delay);
            delay *= 2;
        }
        rc = cocoon_box_start_flags(box, COCOON_START_DETACHED, &err);
        if (rc < 0 && err.code == COCOON_E_STATE && cocoon_box_is_running(box))
            rc = 0; /* another caller started it meanwhile */
    }
    if (report)
        report(user, id, cocoon_box_name(box), rc == 0, rc == 0 ? "" : err.message);
    cocoon_box_close(box);
}

/* Every box directory holding the mark: no database, no collection of leftovers, so a
 * pass over a home without such boxes changes nothing. */
static void start_marked(cocoon_runtime *rt, cocoon_autostart_fn report, void *user)
{
    char path[LIB_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/boxes", rt->home);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(((cocoon_box_info *)0)->id))
            continue;
        char mark[LIB_PATH_MAX + NAME_MAX + 32];
        snprintf(mark, sizeof(mark), "%s/%s/" AUTOSTART_MARK, path, e->d_name);
        if (util_file_exists(mark))
            start_one(rt, e->d_name, report, user);
    }
    closedir(d);
}

int cocoon_autostart(cocoon_runtime *rt, unsigned flags, cocoon_autostart_fn report, void *user, cocoon_error *err)
{
    lib_err_clear(err);
    if (!rt)
        return lib_err(err, COCOON_E_INVALID, "cocoon_autostart: NULL runtime");
    char now[BOOT_ID_MAX + 1], seen[BOOT_ID_MAX + 1];
    boot_id(now, sizeof(now));
    if (flags & COCOON_AUTOSTART_IF_REBOOTED) {
        recorded_boot_id(rt, seen, sizeof(seen));
        if (!strcmp(now, seen))
            return 0; /* the common case: the same boot as last time */
    }
    /* One pass at a time: the others wait, then find the new boot id recorded. */
    char path[LIB_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/.autostart.lock", rt->home);
    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) < 0) {
        int e = errno;
        if (lock >= 0)
            close(lock);
        return lib_err(err, COCOON_E_IO, "cannot lock %s: %s", path, strerror(e));
    }
    recorded_boot_id(rt, seen, sizeof(seen));
    int rc = 0;
    if (!(flags & COCOON_AUTOSTART_IF_REBOOTED) || strcmp(now, seen)) {
        start_marked(rt, report, user);
        snprintf(path, sizeof(path), "%s/boot_id", rt->home);
        if (now[0] && util_write_file_atomic(path, now, strlen(now)) < 0)
            rc = lib_err(err, COCOON_E_IO, "cannot write %s: %s", path, strerror(errno));
    }
    close(lock);
    return rc;
}
