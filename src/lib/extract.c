/* Puts a tree received from a guest on the host (extract.h). The guest is hostile, so:
 * every name must lie under the one top name the user asked for (no "/", no ".."), and
 * each entry is new (nothing is sent twice or replaced inside the copy); the tree must
 * arrive depth-first (each entry inside a directory still open), which lets directory
 * metadata be set as the stream leaves them with fixed memory; nothing is ever opened
 * through a symlink, and a symlink is kept only when it points inside the copy; hard
 * links only join files of this copy; devices and FIFOs are skipped; modes lose
 * setuid/setgid/sticky and pass through the caller's umask; bytes and entries are
 * bounded. All of it happens in a private staging directory next to the destination,
 * renamed into place at the end, so a refused or broken copy leaves nothing behind;
 * one killed leaves its staging directory, which the next copy there removes. */
#include "lib/extract.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/internal.h"
#include "lib/tar_policy.h"
#include "util/fd.h"
#include "util/util.h"

#define STAGE_TOP "t" /* the copy's name inside the staging directory */
#define SHOW_MAX 240  /* bytes of a guest name in a message */
#define REL_MAX (TAR_NAME_MAX + 8)

/* An open directory of the copy: its metadata waits until the stream leaves it. */
struct level {
    size_t len; /* of its staged path, a prefix of ex->cur */
    uint32_t mode;
    int64_t sec;
    uint32_t nsec;
};

struct ex {
    const struct extract_job *job;
    cocoon_error *err;
    char *warnings;
    size_t wcap;
    int destfd, stagefd, curfd; /* curfd: the deepest open directory, -1 when none */
    char stage_path[PATH_MAX];
    mode_t dir_mask; /* permission bits a new directory keeps under the umask */
    struct level *stack;
    size_t depth;
    char cur[REL_MAX]; /* staged path of the deepest open directory */
    int have_top;
    enum tar_type top_type;
    struct extract_stats st;
};

static const char *show(char *buf, const char *s) { return util_escape_text(buf, SHOW_MAX, s, strlen(s)); }

/* The name an entry will have for the user: final_name in place of the staged top. */
static const char *show_rel(const struct ex *x, char *buf, const char *rel)
{
    char tmp[REL_MAX + NAME_MAX];
    snprintf(tmp, sizeof(tmp), "%s%s", x->job->final_name, rel + strlen(STAGE_TOP));
    return show(buf, tmp);
}

__attribute__((format(printf, 3, 4))) static int fail(struct ex *x, int code, const char *fmt, ...)
{
    char msg[COCOON_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return lib_err(x->err, code, "%s", msg);
}

/* ---- names ---- */

/* The guest's entry name as a staged path ("t/a/b") with its component count. Refused
 * (COCOON_E_PROTOCOL): absolute names, "..", and anything not under job->top. */
static int stage_name(struct ex *x, const char *what, const char *name, char *out, size_t *ncomp)
{
    char clean[REL_MAX + NAME_MAX], b1[SHOW_MAX], b2[SHOW_MAX];
    switch (tar_name_clean(name, clean, sizeof(clean), ncomp)) {
    case TAR_NAME_OK: break;
    case TAR_NAME_ABSOLUTE:
        return fail(x, COCOON_E_PROTOCOL, "the guest sent the absolute %s \"%s\"", what, show(b1, name));
    case TAR_NAME_DOTDOT:
        return fail(x, COCOON_E_PROTOCOL, "the guest sent the %s \"%s\", which climbs out with \"..\"", what,
                    show(b1, name));
    case TAR_NAME_TOO_DEEP:
        return fail(x, COCOON_E_PROTOCOL, "the guest sent a %s nested deeper than %u levels", what,
                    TAR_POLICY_MAX_DEPTH);
    case TAR_NAME_TOO_LONG:
        return fail(x, COCOON_E_PROTOCOL, "the guest sent a %s longer than %u bytes", what, TAR_NAME_MAX);
    }
    if (*ncomp == 0)
        return fail(x, COCOON_E_PROTOCOL, "the guest sent the empty %s \"%s\"", what, show(b1, name));
    size_t toplen = strcspn(clean, "/");
    if (toplen != strlen(x->job->top) || memcmp(clean, x->job->top, toplen) != 0)
        return fail(x, COCOON_E_PROTOCOL, "the guest sent the %s \"%s\", which is not inside \"%s\"", what,
                    show(b1, name), show(b2, x->job->top));
    if (strlen(STAGE_TOP) + strlen(clean + toplen) >= REL_MAX)
        return fail(x, COCOON_E_PROTOCOL, "the guest sent a %s longer than %u bytes", what, TAR_NAME_MAX);
    snprintf(out, REL_MAX, "%s%s", STAGE_TOP, clean + toplen);
    return 0;
}

/* ---- open directories ---- */

static int set_dir_meta(struct ex *x, int fd, const struct level *l)
{
    struct timespec ts[2] = {{0, UTIME_OMIT}, {(time_t)l->sec, (long)l->nsec}};
    /* u+rwx stays so the copy can be merged, moved and removed by the caller */
    if (fchmod(fd, (mode_t)((l->mode & 0777 & x->dir_mask) | S_IRWXU)) < 0 || futimens(fd, ts) < 0)
        return fail(x, COCOON_E_IO, "setting a directory's mode and time: %s", strerror(errno));
    return 0;
}

/* Leaves the deepest open directory: its metadata is final now. */
static int pop(struct ex *x)
{
    int rc = set_dir_meta(x, x->curfd, &x->stack[x->depth - 1]);
    int up = -1;
    if (x->depth > 1 && (up = openat(x->curfd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 && rc == 0)
        rc = fail(x, COCOON_E_IO, "reopening a directory of the copy: %s", strerror(errno));
    close(x->curfd);
    x->curfd = up;
    x->depth--;
    x->cur[x->depth ? x->stack[x->depth - 1].len : 0] = 0;
    return rc;
}

/* Makes the directory holding rel the current one: it must be open (the stream is
 * depth-first), directories the stream has left are finished. */
static int enter_parent(struct ex *x, const char *rel)
{
    size_t plen = (size_t)(strrchr(rel, '/') - rel);
    while (x->depth > 0 && !(x->stack[x->depth - 1].len == plen && memcmp(x->cur, rel, plen) == 0))
        if (pop(x) < 0)
            return -1;
    if (x->depth == 0) {
        char b[SHOW_MAX];
        return fail(x, COCOON_E_PROTOCOL,
                    "the guest sent \"%s\" outside the directory it was sending (out of order, or its directory is "
                    "missing)",
                    show_rel(x, b, rel));
    }
    return 0;
}

/* ---- entries ---- */

static int exists_error(struct ex *x, const char *rel)
{
    char b[SHOW_MAX];
    if (errno == EEXIST)
        return fail(x, COCOON_E_PROTOCOL, "the guest sent \"%s\" twice", show_rel(x, b, rel));
    return fail(x, COCOON_E_IO, "creating \"%s\": %s", show_rel(x, b, rel), strerror(errno));
}

static int put_dir(struct ex *x, int pfd, const char *base, const char *rel, const struct tar_entry *e)
{
    if (mkdirat(pfd, base, 0700) < 0)
        return exists_error(x, rel);
    int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return exists_error(x, rel);
    if (x->curfd >= 0)
        close(x->curfd);
    x->curfd = fd;
    x->stack[x->depth++] = (struct level){strlen(rel), e->mode, e->mtime_sec, e->mtime_nsec};
    snprintf(x->cur, sizeof(x->cur), "%s", rel);
    return 0;
}

static int reader_failed(struct ex *x, const struct tar_reader *r)
{
    if (r->source_failed)
        return -1; /* the transfer said why (stalled, box stopped...) */
    return fail(x, COCOON_E_PROTOCOL, "the guest sent a bad archive: %s", r->err);
}

static int put_file(struct ex *x, struct tar_reader *r, int pfd, const char *base, const char *rel,
                    const struct tar_entry *e)
{
    char b[SHOW_MAX];
    if (e->size > x->job->max_bytes - x->st.bytes)
        return fail(x, COCOON_E_INVALID,
                    "\"%s\" (%llu bytes) takes the copy above %llu bytes, the limit (raise it with %s)",
                    show_rel(x, b, rel), (unsigned long long)e->size, (unsigned long long)x->job->max_bytes,
                    x->job->bytes_knob);
    x->st.bytes += e->size;
    int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)(e->mode & 0777));
    if (fd < 0)
        return exists_error(x, rel);
    const void *data;
    size_t len;
    uint64_t off;
    int rc, d;
    while ((d = tar_data(r, &data, &len, &off)) == 1)
        if (util_pwrite_all(fd, data, len, off) < 0)
            break;
    if (d < 0)
        rc = reader_failed(x, r);
    else if (d == 1 || ftruncate(fd, (off_t)e->size) < 0)
        rc = fail(x, COCOON_E_IO, "writing \"%s\": %s", show_rel(x, b, rel), strerror(errno));
    else {
        struct timespec ts[2] = {{0, UTIME_OMIT}, {(time_t)e->mtime_sec, (long)e->mtime_nsec}};
        rc = futimens(fd, ts) < 0 ? fail(x, COCOON_E_IO, "\"%s\": %s", show_rel(x, b, rel), strerror(errno)) : 0;
    }
    if (close(fd) < 0 && rc == 0)
        rc = fail(x, COCOON_E_IO, "writing \"%s\": %s", show_rel(x, b, rel), strerror(errno));
    return rc;
}

static int put_symlink(struct ex *x, int pfd, const char *base, const char *rel, size_t ncomp,
                       const struct tar_entry *e)
{
    char b1[SHOW_MAX], b2[SHOW_MAX];
    if (!tar_link_stays_inside(e->link, (long)ncomp - 2)) {
        if (ncomp == 1)
            return fail(x, COCOON_E_INVALID,
                        "it is a symlink (to \"%s\"), and a copy of it would point outside the copy; copy what it "
                        "points to instead",
                        show(b1, e->link));
        lib_warning(x->warnings, x->wcap, "%s: symlink to \"%s\" skipped: it points outside the copied tree",
                    show_rel(x, b1, rel), show(b2, e->link));
        return 0;
    }
    if (symlinkat(e->link, pfd, base) < 0)
        return exists_error(x, rel);
    struct timespec ts[2] = {{0, UTIME_OMIT}, {(time_t)e->mtime_sec, (long)e->mtime_nsec}};
    utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW); /* a link's time is cosmetic */
    return 0;
}

/* The staged directory holding rel, opened without following any symlink. */
static int open_staged_parent(struct ex *x, const char *rel)
{
    char path[REL_MAX];
    snprintf(path, sizeof(path), "%s", rel);
    *strrchr(path, '/') = 0;
    int fd = dup(x->stagefd);
    char *save = NULL;
    for (char *c = strtok_r(path, "/", &save); c && fd >= 0; c = strtok_r(NULL, "/", &save)) {
        int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
    }
    return fd;
}

static int put_hardlink(struct ex *x, int pfd, const char *base, const char *rel, const struct tar_entry *e)
{
    char trel[REL_MAX], b1[SHOW_MAX], b2[SHOW_MAX];
    size_t tn;
    if (stage_name(x, "hard link target", e->link, trel, &tn) < 0)
        return -1;
    int tfd = tn > 1 ? open_staged_parent(x, trel) : -1;
    struct stat st;
    const char *tbase = strrchr(trel, '/');
    if (tfd < 0 || fstatat(tfd, tbase + 1, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
        if (tfd >= 0)
            close(tfd);
        return fail(x, COCOON_E_PROTOCOL,
                    "the guest sent a hard link \"%s\" to \"%s\", which is not a file of this copy",
                    show_rel(x, b1, rel), show(b2, e->link));
    }
    int rc = linkat(tfd, tbase + 1, pfd, base, 0) < 0 ? exists_error(x, rel) : 0;
    close(tfd);
    return rc;
}

static int put_entry(struct ex *x, struct tar_reader *r, const struct tar_entry *e)
{
    char rel[REL_MAX], b1[SHOW_MAX], b2[SHOW_MAX];
    size_t ncomp;
    if (++x->st.entries > x->job->max_entries)
        return fail(x, COCOON_E_INVALID, "more than %llu entries, the limit (raise it with %s)",
                    (unsigned long long)x->job->max_entries, x->job->entries_knob);
    if (stage_name(x, "name", e->path, rel, &ncomp) < 0)
        return -1;
    if (!x->have_top) {
        if (ncomp != 1)
            return fail(x, COCOON_E_PROTOCOL, "the guest's archive does not start with \"%s\" itself",
                        show(b1, x->job->top));
        if (e->type == TAR_SPECIAL || e->type == TAR_HARDLINK)
            return fail(x, COCOON_E_PROTOCOL, "the guest sent \"%s\" as a device, FIFO or hard link",
                        show(b1, x->job->top));
        x->have_top = 1;
        x->top_type = e->type;
    } else if (ncomp == 1) {
        return fail(x, COCOON_E_PROTOCOL, "the guest sent \"%s\" twice", show(b1, x->job->top));
    } else if (x->top_type != TAR_DIR) {
        return fail(x, COCOON_E_PROTOCOL, "the guest sent \"%s\" after \"%s\", which is not a directory",
                    show_rel(x, b1, rel), show(b2, x->job->top));
    }
    int pfd = x->stagefd;
    if (ncomp > 1) {
        if (enter_parent(x, rel) < 0)
            return -1;
        pfd = x->curfd;
    }
    const char *base = ncomp > 1 ? strrchr(rel, '/') + 1 : rel;
    switch (e->type) {
    case TAR_DIR: return put_dir(x, pfd, base, rel, e);
    case TAR_FILE: return put_file(x, r, pfd, base, rel, e);
    case TAR_SYMLINK: return put_symlink(x, pfd, base, rel, ncomp, e);
    case TAR_HARDLINK: return put_hardlink(x, pfd, base, rel, e);
    case TAR_SPECIAL: lib_warning(x->warnings, x->wcap, "%s: device or FIFO skipped", show_rel(x, b1, rel)); return 0;
    }
    return 0;
}

/* ---- into place ---- */

/* Pass 1 (move 0) refuses a directory over a non-directory and the reverse anywhere in
 * the merge; pass 2 (move 1) renames each staged entry into place, descending where
 * both sides are directories. path holds the user's name of src for messages. */
static int merge(struct ex *x, int src, int dst, char *path, size_t plen, int move)
{
    int dfd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return fail(x, COCOON_E_IO, "reading the staged copy: %s", strerror(errno));
    }
    int rc = 0;
    struct dirent *de;
    char b[SHOW_MAX];
    while (rc == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(path + plen, PATH_MAX - plen, "/%s", de->d_name);
        struct stat ss, ds;
        int there = fstatat(dst, de->d_name, &ds, AT_SYMLINK_NOFOLLOW) == 0;
        if (fstatat(src, de->d_name, &ss, AT_SYMLINK_NOFOLLOW) < 0 || (!there && errno != ENOENT)) {
            rc = fail(x, COCOON_E_IO, "\"%s\": %s", show(b, path), strerror(errno));
        } else if (there && S_ISDIR(ss.st_mode) && S_ISDIR(ds.st_mode)) {
            int s2 = openat(src, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int d2 = openat(dst, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (s2 < 0 || d2 < 0)
                rc = fail(x, COCOON_E_IO, "\"%s\": %s", show(b, path), strerror(errno));
            else
                rc = merge(x, s2, d2, path, plen + strlen(path + plen), move);
            if (s2 >= 0)
                close(s2);
            if (d2 >= 0)
                close(d2);
        } else if (there && S_ISDIR(ds.st_mode)) {
            rc = fail(x, COCOON_E_IO, "\"%s\" is a directory here; the copy's file of that name was not put over it",
                      show(b, path));
        } else if (there && S_ISDIR(ss.st_mode)) {
            rc = fail(x, COCOON_E_IO,
                      "\"%s\" exists here and is not a directory; the copy's directory was not put "
                      "over it",
                      show(b, path));
        } else if (move && renameat(src, de->d_name, dst, de->d_name) < 0) {
            rc = fail(x, COCOON_E_IO, "moving \"%s\" into place: %s", show(b, path), strerror(errno));
        } else if (move) {
            util_test_point("CP_OUT_INSTALL");
        }
        path[plen] = 0;
    }
    closedir(d);
    return rc;
}

static int install(struct ex *x)
{
    const char *name = x->job->final_name;
    char b[SHOW_MAX];
    struct stat ds;
    if (fstatat(x->destfd, name, &ds, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT)
            return fail(x, COCOON_E_IO, "\"%s\": %s", show(b, name), strerror(errno));
        if (renameat2(x->stagefd, STAGE_TOP, x->destfd, name, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno != EINVAL && errno != ENOSYS) /* file systems without RENAME_NOREPLACE */
            return fail(x, COCOON_E_IO, "moving the copy to \"%s\": %s", show(b, name), strerror(errno));
    } else if (S_ISDIR(ds.st_mode) && x->top_type == TAR_DIR) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s", name);
        int src = openat(x->stagefd, STAGE_TOP, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int dst = openat(x->destfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int rc = src < 0 || dst < 0 ? fail(x, COCOON_E_IO, "\"%s\": %s", show(b, name), strerror(errno)) : 0;
        if (rc == 0)
            rc = merge(x, src, dst, path, strlen(path), 0);
        if (rc == 0)
            rc = merge(x, src, dst, path, strlen(path), 1);
        if (src >= 0)
            close(src);
        if (dst >= 0)
            close(dst);
        return rc;
    } else if (S_ISDIR(ds.st_mode)) {
        return fail(x, COCOON_E_IO, "\"%s\" is a directory here; the file was not put over it", show(b, name));
    } else if (x->top_type == TAR_DIR) {
        return fail(x, COCOON_E_IO, "\"%s\" exists here and is not a directory; the directory was not put over it",
                    show(b, name));
    }
    if (renameat(x->stagefd, STAGE_TOP, x->destfd, name) < 0)
        return fail(x, COCOON_E_IO, "moving the copy to \"%s\": %s", show(b, name), strerror(errno));
    return 0;
}

/* ---- the whole extraction ---- */

/* Every copy holds a shared flock on its destination directory from before it makes
 * its staging directory until that is gone. A copy that gets the lock exclusively
 * knows no other copy works there, so a staging directory it finds was left by a copy
 * that was killed: it goes, and the lock drops to shared for this copy. */
static void lock_dest_and_collect(struct ex *x)
{
    if (flock(x->destfd, LOCK_EX | LOCK_NB) < 0) {
        while (flock(x->destfd, LOCK_SH) < 0 && errno == EINTR)
            ;
        return;
    }
    int fd = openat(x->destfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    size_t plen = strlen(EXTRACT_STAGE_PREFIX);
    while (d && (e = readdir(d))) {
        struct stat st;
        char path[PATH_MAX];
        if (strncmp(e->d_name, EXTRACT_STAGE_PREFIX, plen) || strlen(e->d_name) != plen + 6 ||
            fstatat(x->destfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
            lib_path(path, sizeof(path), "%s/%s", x->job->dest_dir, e->d_name) < 0)
            continue;
        util_rm_rf(path);
    }
    if (d)
        closedir(d);
    else if (fd >= 0)
        close(fd);
    flock(x->destfd, LOCK_SH); /* a conversion: held, now shared */
}

static int stage_open(struct ex *x)
{
    x->destfd = open(x->job->dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (x->destfd < 0)
        return fail(x, COCOON_E_IO, "%s: %s", x->job->dest_dir, strerror(errno));
    lock_dest_and_collect(x);
    if (lib_path(x->stage_path, sizeof(x->stage_path), "%s/%sXXXXXX", x->job->dest_dir, EXTRACT_STAGE_PREFIX) < 0 ||
        !mkdtemp(x->stage_path)) {
        x->stage_path[0] = 0;
        return fail(x, COCOON_E_IO, "cannot write in %s: %s", x->job->dest_dir, strerror(errno));
    }
    x->stagefd = open(x->stage_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (x->stagefd < 0)
        return fail(x, COCOON_E_IO, "%s: %s", x->job->dest_dir, strerror(errno));
    /* What the umask (and a default ACL) leaves of 0777, learnt without umask(2),
     * which would race with other threads. */
    struct stat st;
    if (mkdirat(x->stagefd, "m", 0777) < 0 || fstatat(x->stagefd, "m", &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        unlinkat(x->stagefd, "m", AT_REMOVEDIR) < 0)
        return fail(x, COCOON_E_IO, "%s: %s", x->stage_path, strerror(errno));
    x->dir_mask = st.st_mode & 0777;
    return 0;
}

int extract_tar(struct tar_reader *r, const struct extract_job *job, char *warnings, size_t wcap,
                struct extract_stats *stats, cocoon_error *err)
{
    struct ex x = {
        .job = job, .err = err, .warnings = warnings, .wcap = wcap, .destfd = -1, .stagefd = -1, .curfd = -1};
    if (wcap)
        warnings[0] = 0;
    struct tar_entry *e = malloc(sizeof(*e));
    x.stack = malloc((EXTRACT_MAX_DEPTH + 1) * sizeof(*x.stack));
    int rc = -1;
    if (!e || !x.stack) {
        fail(&x, COCOON_E_NOMEM, "out of memory");
        goto out;
    }
    if (stage_open(&x) < 0)
        goto out;
    for (;;) {
        int n = tar_next(r, e);
        if (n < 0) {
            reader_failed(&x, r);
            goto out;
        }
        if (n == 0)
            break;
        if (put_entry(&x, r, e) < 0)
            goto out;
        util_test_point("CP_OUT_STAGED");
    }
    if (!x.have_top) {
        fail(&x, COCOON_E_PROTOCOL, "the guest sent an empty archive");
        goto out;
    }
    while (x.depth > 0)
        if (pop(&x) < 0)
            goto out;
    if (job->confirm && job->confirm(job->confirm_arg) < 0)
        goto out;
    rc = install(&x);
out:
    if (x.curfd >= 0) /* after a failure: the staged tree goes anyway */
        close(x.curfd);
    if (x.stagefd >= 0)
        close(x.stagefd);
    if (x.stage_path[0] && util_rm_rf(x.stage_path) < 0 && rc == 0)
        rc = fail(&x, COCOON_E_IO, "removing %s: %s", x.stage_path, strerror(errno));
    if (x.destfd >= 0)
        close(x.destfd); /* lets go of the destination's lock, once the staging directory is gone */
    if (stats)
        *stats = x.st;
    free(x.stack);
    free(e);
    return rc;
}
