/* FILE_OP in the guest: stat, list, mkdir, remove and move of one path (docs/protocol.md,
 * "File operations"). Each runs in a forked child adopted as an exec (files_spawn), so a
 * long `rm -r` never stalls the agent's loop; the child writes its answer as FILE_ENTRIES
 * frames (or one ERROR frame) to its stdout, which the exec table sends under credits.
 * Final symlinks are never followed; rm -r walks with O_NOFOLLOW fds and an explicit
 * stack of at most PROTO_FSOP_MAX_DEPTH levels, and stays on one file system. */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_renameat2
#define SYS_renameat2 316
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1u
#endif

#define DEFAULT_DIR_MODE 0755u

static struct proto_writer reply_w;
static uint64_t reply_bytes;

static void write_all(const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(1); /* the host went away: nobody left to tell */
        p += w;
        n -= (size_t)w;
    }
}

/* Ends the child with an ERROR frame: code is an errno, the message what went wrong
 * (the host puts the requested path in front of it). */
static _Noreturn __attribute__((format(printf, 2, 3))) void fail(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t n = proto_encode_error(&reply_w, 1, (uint32_t)code, msg);
    if (n)
        write_all(reply_w.buf, n);
    _exit(1);
}

static void reply_flush(uint32_t flags)
{
    size_t n = proto_entries_finish(&reply_w, flags);
    if (n == 0)
        fail(EIO, "cannot encode the answer");
    reply_bytes += n;
    if (reply_bytes > PROTO_FSOP_MAX_BYTES)
        fail(E2BIG, "the answer is larger than %u MiB", PROTO_FSOP_MAX_BYTES >> 20);
    write_all(reply_w.buf, n);
    proto_entries_begin(&reply_w);
}

static void reply_add(const struct proto_file_entry *e)
{
    if (proto_entries_add(&reply_w, e))
        return;
    reply_flush(0);
    if (!proto_entries_add(&reply_w, e))
        fail(EIO, "an entry does not fit in a frame");
}

/* The entry for st; name may be "" (the answer about a path); a symlink's target is
 * read at dirfd/rel and cut to PROTO_FSOP_MAX_TARGET bytes. */
static void fill_entry(struct proto_file_entry *e, const char *name, const struct stat *st, int dirfd, const char *rel)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->type = S_ISREG(st->st_mode)   ? PROTO_FTYPE_REGULAR
              : S_ISDIR(st->st_mode) ? PROTO_FTYPE_DIRECTORY
              : S_ISLNK(st->st_mode) ? PROTO_FTYPE_SYMLINK
                                     : PROTO_FTYPE_OTHER;
    e->mode = st->st_mode & 07777;
    e->uid = st->st_uid;
    e->gid = st->st_gid;
    e->size = st->st_size > 0 ? (uint64_t)st->st_size : 0;
    e->mtime_sec = st->st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    if (e->type == PROTO_FTYPE_SYMLINK) {
        ssize_t n = readlinkat(dirfd, rel, e->target, sizeof(e->target) - 1);
        e->target[n > 0 ? n : 0] = 0;
    }
}

/* Answers with the entry of path itself (lstat) and ends the answer. */
static void reply_path(const char *path)
{
    struct stat st;
    if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) != 0)
        fail(errno, "%s", strerror(errno));
    struct proto_file_entry e;
    fill_entry(&e, "", &st, AT_FDCWD, path);
    reply_add(&e);
}

static void op_list(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        fail(errno, "%s", strerror(errno));
    DIR *d = fdopendir(fd);
    if (!d)
        fail(errno, "%s", strerror(errno));
    uint32_t count = 0;
    struct dirent *de;
    while ((errno = 0, de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue; /* removed meanwhile */
            fail(errno, "%s: %s", de->d_name, strerror(errno));
        }
        if (++count > PROTO_FSOP_MAX_ENTRIES)
            fail(E2BIG, "more than %u entries", PROTO_FSOP_MAX_ENTRIES);
        struct proto_file_entry e;
        fill_entry(&e, de->d_name, &st, fd, de->d_name);
        reply_add(&e);
    }
    if (errno)
        fail(errno, "%s", strerror(errno));
    closedir(d);
}

/* mkdir -p: every missing directory on the way is made (0755), existing ones (or
 * symlinks to them) are fine. */
static void mkdir_parents(const char *path, unsigned mode)
{
    char buf[PROTO_MAX_STRING];
    snprintf(buf, sizeof(buf), "%s", path);
    size_t n = strlen(buf);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && buf[i] != '/')
            continue;
        if (buf[i - 1] == '/')
            continue; /* "//" or a trailing slash */
        char saved = buf[i];
        buf[i] = 0;
        int last = strspn(path + i, "/") == strlen(path + i);
        if (mkdir(buf, last ? mode : DEFAULT_DIR_MODE) != 0) {
            int e = errno;
            struct stat st;
            if (e != EEXIST)
                fail(e, "%s%s%s", last ? "" : buf, last ? "" : ": ", strerror(e));
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
                fail(ENOTDIR, "%s exists and is not a directory", buf);
        }
        buf[i] = saved;
    }
}

static void op_mkdir(const struct proto_file_op *m)
{
    unsigned mode = m->mode ? m->mode : DEFAULT_DIR_MODE;
    if (m->flags & PROTO_FSOP_PARENTS)
        mkdir_parents(m->path, mode);
    else if (mkdir(m->path, mode) != 0)
        fail(errno, "%s", strerror(errno));
    if (mode & 07000)
        chmod(m->path, mode); /* mkdir leaves out setuid and setgid */
    reply_path(m->path);
}

/* ---- rm -r: an explicit stack of open directories, never a symlink followed ---- */

struct level {
    DIR *d;
    char name[PROTO_FSOP_MAX_NAME + 1]; /* in the level above (or in the parent of the top) */
};

/* "TOP/a/b/name" for a message. */
static const char *where(char *buf, size_t cap, const char *top, const struct level *st, size_t n, const char *name)
{
    size_t used = (size_t)snprintf(buf, cap, "%s", top);
    for (size_t i = 1; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "/%s", st[i].name);
    if (name && used < cap)
        snprintf(buf + used, cap - used, "/%s", name);
    return buf;
}

static void remove_tree(int pfd, const char *base, const char *top)
{
    char at[PROTO_MAX_STRING];
    struct level *st = calloc(PROTO_FSOP_MAX_DEPTH, sizeof(*st));
    if (!st)
        fail(ENOMEM, "out of memory");
    int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat s;
    if (fd < 0 || fstat(fd, &s) != 0 || !(st[0].d = fdopendir(fd)))
        fail(errno, "%s", strerror(errno));
    dev_t dev = s.st_dev;
    snprintf(st[0].name, sizeof(st[0].name), "%s", base);
    size_t n = 1;
    while (n > 0) {
        struct level *cur = &st[n - 1];
        int dfd = dirfd(cur->d);
        errno = 0;
        struct dirent *de = readdir(cur->d);
        if (!de) {
            if (errno)
                fail(errno, "%s: %s", where(at, sizeof(at), top, st, n, NULL), strerror(errno));
            int parent = n > 1 ? dirfd(st[n - 2].d) : pfd;
            if (unlinkat(parent, cur->name, AT_REMOVEDIR) != 0)
                fail(errno, "%s: %s", where(at, sizeof(at), top, st, n, NULL), strerror(errno));
            closedir(cur->d);
            n--;
            continue;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (fstatat(dfd, de->d_name, &s, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue;
            fail(errno, "%s: %s", where(at, sizeof(at), top, st, n, de->d_name), strerror(errno));
        }
        if (!S_ISDIR(s.st_mode)) {
            if (unlinkat(dfd, de->d_name, 0) != 0 && errno != ENOENT)
                fail(errno, "%s: %s", where(at, sizeof(at), top, st, n, de->d_name), strerror(errno));
            continue;
        }
        if (s.st_dev != dev)
            fail(EXDEV, "%s: another file system is mounted there; nothing below it was removed",
                 where(at, sizeof(at), top, st, n, de->d_name));
        if (n == PROTO_FSOP_MAX_DEPTH)
            fail(ELOOP, "%s: deeper than %u levels; removed what was above", where(at, sizeof(at), top, st, n, NULL),
                 PROTO_FSOP_MAX_DEPTH);
        int cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0 || !(st[n].d = fdopendir(cfd)))
            fail(errno, "%s: %s", where(at, sizeof(at), top, st, n, de->d_name), strerror(errno));
        snprintf(st[n].name, sizeof(st[n].name), "%s", de->d_name);
        n++;
    }
    free(st);
}

static void op_remove(const struct proto_file_op *m)
{
    char parent[PROTO_MAX_STRING], base[PROTO_FSOP_MAX_NAME + 1];
    const char *path = m->path;
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    if (len <= 1)
        fail(EBUSY, "refusing to remove the root directory");
    const char *slash = path + len;
    while (slash[-1] != '/')
        slash--;
    size_t blen = (size_t)(path + len - slash);
    if (blen >= sizeof(base))
        fail(ENAMETOOLONG, "%s", strerror(ENAMETOOLONG));
    memcpy(base, slash, blen);
    base[blen] = 0;
    if (!strcmp(base, ".") || !strcmp(base, ".."))
        fail(EINVAL, "refusing to remove \".\" or \"..\"");
    snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
    int pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (pfd < 0 || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0)
        fail(errno, "%s", strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(pfd, base, 0) != 0)
            fail(errno, "%s", strerror(errno));
    } else if (!(m->flags & PROTO_FSOP_RECURSIVE)) {
        if (unlinkat(pfd, base, AT_REMOVEDIR) != 0)
            fail(errno, "%s%s", strerror(errno), errno == ENOTEMPTY ? " (remove it recursively)" : "");
    } else {
        remove_tree(pfd, base, path);
    }
}

static void op_move(const struct proto_file_op *m)
{
    unsigned flags = (m->flags & PROTO_FSOP_NO_REPLACE) ? RENAME_NOREPLACE : 0;
    if (syscall(SYS_renameat2, AT_FDCWD, m->path, AT_FDCWD, m->path2, flags) != 0)
        fail(errno, "%s", strerror(errno));
    reply_path(m->path2);
}

static void fsop_child(int rootfd, const void *arg)
{
    const struct proto_file_op *m = arg;
    (void)rootfd; /* the agent's root is the guest's: absolute paths resolve there */
    proto_entries_begin(&reply_w);
    switch (m->op) {
    case PROTO_FSOP_STAT: reply_path(m->path); break;
    case PROTO_FSOP_LIST: op_list(m->path); break;
    case PROTO_FSOP_MKDIR: op_mkdir(m); break;
    case PROTO_FSOP_REMOVE: op_remove(m); break;
    default: op_move(m); break;
    }
    reply_flush(PROTO_FSOP_END);
}

void fsops_start(struct agent *a, uint32_t stream, const uint8_t *p, size_t n)
{
    if (!exec_may_start(a, stream, "too many running commands and transfers"))
        return;
    struct proto_file_op *m = malloc(sizeof(*m));
    if (!m) {
        exec_refuse(a, stream, ENOMEM, "out of memory");
        return;
    }
    int rc = proto_decode_file_op(p, n, m);
    if (rc != PROTO_OK) {
        char msg[128];
        snprintf(msg, sizeof(msg), "malformed FILE_OP: %s", proto_strerror(rc));
        exec_refuse(a, stream, EINVAL, msg);
    } else {
        files_spawn(a, stream, 0, m->window, fsop_child, m);
    }
    free(m);
}
