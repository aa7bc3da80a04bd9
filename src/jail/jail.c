/* Namespaces, the empty root and the locks of the jail (jail.h). Every source path is
 * opened (O_PATH) before anything is mounted, and bound from its fd: the tmpfs that
 * becomes the new root may hide the path it came from (a box directory under /tmp). */
#include "jail/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/util.h"

/* The new root is a tmpfs mounted here, in our own mount namespace only. */
#define JAIL_ROOT "/tmp"
#define OLD_ROOT "/.old-root"

static const char *const system_dirs[] = {"/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin"};

int jail_wanted(void)
{
    const char *e = getenv("COCOON_JAIL");
    return !(e && !strcmp(e, "0"));
}

void jail_plan_init(struct jail_plan *p, const char *box_dir, const char *box_id, uint64_t mem_bytes)
{
    memset(p, 0, sizeof(*p));
    p->enabled = jail_wanted();
    snprintf(p->box_dir, sizeof(p->box_dir), "%s", box_dir);
    snprintf(p->box_id, sizeof(p->box_id), "%s", box_id);
    p->mem_bytes = mem_bytes;
    p->child_fsize = RLIM_INFINITY;
    p->monitor_fsize = RLIM_INFINITY;
}

int jail_plan_add(struct jail_plan *p, const char *path, int writable, int device)
{
    if (!path || path[0] != '/' || p->nbinds >= JAIL_MAX_PATHS || strlen(path) >= PATH_MAX)
        return -1;
    for (int i = 0; i < p->nbinds; i++)
        if (!strcmp(p->binds[i].path, path))
            return 0;
    struct jail_bind *b = &p->binds[p->nbinds++];
    snprintf(b->path, sizeof(b->path), "%s", path);
    b->writable = writable;
    b->device = device;
    return 0;
}

int jail_plan_add_system(struct jail_plan *p)
{
    for (size_t i = 0; i < sizeof(system_dirs) / sizeof(system_dirs[0]); i++) {
        struct stat st;
        if (lstat(system_dirs[i], &st) == 0 && jail_plan_add(p, system_dirs[i], 0, 0) < 0)
            return -1;
    }
    return 0;
}

/* Appends "no WHAT (errno text)" to what the host did not allow. */
static void say(struct jail_state *st, const char *what)
{
    size_t n = strlen(st->why_not);
    snprintf(st->why_not + n, sizeof(st->why_not) - n, "%sno %s (%s)", n ? "; " : "", what, strerror(errno));
}

/* A user namespace in which we keep our own uid and gid: the creator holds every
 * capability there and none outside it. */
static int enter_userns(struct jail_state *st)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER) < 0) {
        say(st, "user namespace");
        return -1;
    }
    char map[64];
    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
    if (util_write_text("/proc/self/uid_map", map) < 0)
        return -1;
    util_write_text("/proc/self/setgroups", "deny\n"); /* needed without CAP_SETGID outside */
    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
    if (util_write_text("/proc/self/gid_map", map) < 0)
        return -1;
    st->userns = 1;
    return 0;
}

/* The mount flags the source already has: a bind in a user namespace may add flags but
 * never clear the ones its source is locked with. */
static unsigned long locked_flags(int fd)
{
    static const struct {
        unsigned long st, ms;
    } flags[] = {{ST_RDONLY, MS_RDONLY},    {ST_NOSUID, MS_NOSUID},   {ST_NODEV, MS_NODEV},
                 {ST_NOEXEC, MS_NOEXEC},    {ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME},
                 {ST_RELATIME, MS_RELATIME}};
    struct statvfs sv;
    unsigned long f = 0;
    if (fstatvfs(fd, &sv) < 0)
        return 0;
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (sv.f_flag & flags[i].st)
            f |= flags[i].ms;
    return f;
}

/* Creates path inside root (its parents as directories, itself as a directory or an
 * empty file) to bind a source onto. */
static int make_target(const char *root, const char *path, int dir)
{
    char full[PATH_MAX * 2];
    snprintf(full, sizeof(full), "%s%s", root, path);
    for (char *s = full + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        if (mkdir(full, 0755) < 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    if (dir)
        return mkdir(full, 0755) < 0 && errno != EEXIST ? -1 : 0;
    int fd = open(full, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

struct source {
    const struct jail_bind *b;
    int fd; /* O_PATH, or -1 for a symlink recreated as a symlink */
    int dir;
    char link[PATH_MAX];
};

static int bind_one(const struct source *s, char *err, size_t cap)
{
    char dst[PATH_MAX * 2], src[64];
    snprintf(dst, sizeof(dst), "%s%s", JAIL_ROOT, s->b->path);
    if (s->fd < 0) { /* /lib -> usr/lib on a merged-/usr system stays a symlink */
        if (make_target(JAIL_ROOT, s->b->path, 1) < 0 || rmdir(dst) < 0 || symlink(s->link, dst) < 0) {
            snprintf(err, cap, "jail: cannot recreate the symlink %s: %s", s->b->path, strerror(errno));
            return -1;
        }
        return 0;
    }
    snprintf(src, sizeof(src), "/proc/self/fd/%d", s->fd);
    if (make_target(JAIL_ROOT, s->b->path, s->dir) < 0) {
        snprintf(err, cap, "jail: cannot bind %s into the jail: %s", s->b->path, strerror(errno));
        return -1;
    }
    /* Recursive: in a user namespace a tree whose submounts are locked (a mount under
     * /usr in the caller's namespace) cannot be bound without them (EINVAL). Its
     * submounts then get the same locks as the top, in one call. */
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | (s->b->writable ? 0 : MOUNT_ATTR_RDONLY) |
                                          (s->b->device ? 0 : MOUNT_ATTR_NODEV)};
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) == 0) {
        if (syscall(SYS_mount_setattr, AT_FDCWD, dst, AT_RECURSIVE, &attr, sizeof(attr)) == 0)
            return 0;
        if (errno != ENOSYS) {
            snprintf(err, cap, "jail: cannot lock %s in the jail read-only: %s", s->b->path, strerror(errno));
            return -1;
        }
        /* Before Linux 5.12: only a tree without submounts can be locked as a whole. */
        umount2(dst, MNT_DETACH);
    }
    unsigned long flags =
        MS_NOSUID | locked_flags(s->fd) | (s->b->writable ? 0 : MS_RDONLY) | (s->b->device ? 0 : MS_NODEV);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0 || mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | flags, NULL) < 0) {
        snprintf(err, cap, "jail: cannot bind %s into the jail: %s", s->b->path, strerror(errno));
        return -1;
    }
    return 0;
}

static int open_sources(const struct jail_plan *p, struct jail_bind *extra, int nextra, struct source *srcs, int *n,
                        char *err, size_t cap)
{
    *n = 0;
    for (int i = 0; i < p->nbinds + nextra; i++) {
        const struct jail_bind *b = i < p->nbinds ? &p->binds[i] : &extra[i - p->nbinds];
        struct source *s = &srcs[(*n)++];
        struct stat st;
        s->b = b;
        s->fd = -1;
        if (lstat(b->path, &st) == 0 && S_ISLNK(st.st_mode) && b->path[strspn(b->path, "/")] &&
            !strchr(b->path + 1, '/')) {
            /* a top-level symlink (/lib -> usr/lib): recreated, not followed */
            ssize_t len = readlink(b->path, s->link, sizeof(s->link) - 1);
            if (len > 0) {
                s->link[len] = 0;
                continue;
            }
        }
        s->fd = open(b->path, O_PATH | O_CLOEXEC);
        if (s->fd < 0 || fstat(s->fd, &st) < 0) {
            snprintf(err, cap, "jail: cannot open %s: %s", b->path, strerror(errno));
            return -1;
        }
        s->dir = S_ISDIR(st.st_mode);
    }
    return 0;
}

/* Sanitizer builds read /proc/self/maps and write their reports where ASAN_OPTIONS'
 * log_path says: those stay reachable (only in those builds). */
static int sanitizer_binds(struct jail_bind *extra)
{
    int n = 0;
#if defined(__SANITIZE_ADDRESS__)
    snprintf(extra[n].path, sizeof(extra[n].path), "/proc");
    extra[n].writable = 0;
    extra[n++].device = 0;
    const char *o = getenv("ASAN_OPTIONS");
    const char *lp = o ? strstr(o, "log_path=") : NULL;
    if (lp) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%.*s", (int)strcspn(lp + 9, ":"), lp + 9);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir && dir[0] == '/') {
            *slash = 0;
            snprintf(extra[n].path, sizeof(extra[n].path), "%s", dir);
            extra[n].writable = 1;
            extra[n++].device = 0;
        }
    }
#else
    (void)extra;
#endif
    return n;
}

static int build_root(const struct jail_plan *p, struct jail_state *st, char *err, size_t cap)
{
    static struct source srcs[JAIL_MAX_PATHS + 4];
    struct jail_bind extra[4];
    int nextra = 0, n = 0, rc = -1;
    snprintf(extra[nextra].path, sizeof(extra[0].path), "%s", p->box_dir);
    extra[nextra].writable = 1;
    extra[nextra++].device = 0;
    snprintf(extra[nextra].path, sizeof(extra[0].path), "/dev/null");
    extra[nextra].writable = 1;
    extra[nextra++].device = 1;
    nextra += sanitizer_binds(extra + nextra);
    if (open_sources(p, extra, nextra, srcs, &n, err, cap) < 0)
        goto out;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", JAIL_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0) {
        snprintf(err, cap, "jail: cannot mount the new root: %s", strerror(errno));
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (bind_one(&srcs[i], err, cap) < 0)
            goto out;
    if (mkdir(JAIL_ROOT OLD_ROOT, 0700) < 0 || syscall(SYS_pivot_root, JAIL_ROOT, JAIL_ROOT OLD_ROOT) < 0 ||
        chdir("/") < 0 || umount2(OLD_ROOT, MNT_DETACH) < 0 || rmdir(OLD_ROOT) < 0) {
        snprintf(err, cap, "jail: cannot pivot into the new root: %s", strerror(errno));
        goto out;
    }
    /* nothing more is created in the root: read-only from here on */
    if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) {
        snprintf(err, cap, "jail: cannot make the new root read-only: %s", strerror(errno));
        goto out;
    }
    st->pivoted = 1;
    rc = 0;
out:
    for (int i = 0; i < n; i++)
        if (srcs[i].fd >= 0)
            close(srcs[i].fd);
    return rc;
}

int jail_cgroup_enter(const struct jail_plan *p, struct jail_state *st);

int jail_enter(const struct jail_plan *p, struct jail_state *st, char *err, size_t cap)
{
    memset(st, 0, sizeof(*st));
    if (!p->enabled) {
        snprintf(st->why_not, sizeof(st->why_not), "the jail is off (COCOON_JAIL=0)");
        return 0;
    }
    jail_cgroup_enter(p, st);
    int root = geteuid() == 0;
    if (enter_userns(st) < 0 && !root)
        return 0; /* without a user namespace an unprivileged process can do no more */
    if (unshare(CLONE_NEWNS) < 0) {
        say(st, "mount namespace");
        return 0;
    }
    st->mountns = 1;
    if (unshare(CLONE_NEWIPC) == 0)
        st->ipcns = 1;
    else
        say(st, "IPC namespace");
    if (unshare(CLONE_NEWUTS) == 0) {
        st->utsns = 1;
        sethostname("cocoon", 6);
    } else {
        say(st, "UTS namespace");
    }
    /* the child is started in a PID namespace of its own (monitor/child.c) */
    st->pidns = 1;
    return build_root(p, st, err, cap);
}

/* Async-signal-safe: also run between fork and exec. */
static int drop_privileges(uint64_t fsize)
{
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -1;
    for (int c = 0; c <= 63; c++)
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM)
            return -1;
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    struct rlimit none = {0, 0}, fs = {fsize, fsize};
    if (setrlimit(RLIMIT_CORE, &none) < 0 || setrlimit(RLIMIT_FSIZE, &fs) < 0)
        return -1;
    return 0;
}

int jail_lock(uint64_t fsize, char *err, size_t cap)
{
    if (drop_privileges(fsize) < 0) {
        snprintf(err, cap, "jail: cannot drop privileges: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int jail_child(uint64_t fsize)
{
    unshare(CLONE_NEWNET); /* no network at all; fails harmlessly without a user namespace */
    return drop_privileges(fsize);
}
