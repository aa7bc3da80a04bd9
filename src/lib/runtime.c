/* Opening a runtime: where state lives ($COCOON_HOME, checked and canonicalised, and its
 * cocoon.db), where the kernel, initramfs and images are (next to the library, found
 * with dladdr), and which cocoon-vmm to spawn. Installed and in-tree builds share one
 * layout, so no path is compiled in. */
#include "lib/internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

/* Directory holding the object this code was loaded from: libcocoon.so, or the
 * executable that linked libcocoon.a statically. */
static int self_dir(char *out, size_t cap)
{
    Dl_info info;
    char path[LIB_PATH_MAX] = "";
    if (dladdr((void *)&cocoon_runtime_open, &info) && info.dli_fname && strchr(info.dli_fname, '/')) {
        if (!realpath(info.dli_fname, path))
            path[0] = 0;
    }
    if (!path[0]) {
        /* For the main program dladdr may report argv[0]; the kernel knows better. */
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        if (n <= 0)
            return -1;
        path[n] = 0;
    }
    return lib_path(out, cap, "%s", dirname(path));
}

static int default_home(char *out, size_t cap)
{
    const char *h = getenv("HOME");
    if (!h || !*h) {
        struct passwd *pw = getpwuid(getuid());
        h = pw ? pw->pw_dir : NULL;
    }
    if (!h)
        return -1;
    return lib_path(out, cap, "%s/.local/share/cocoon", h);
}

/* Creates the state directory (0700) when missing, refuses one that belongs to someone
 * else, notes a warning for one others can read or write (as ssh does for its keys),
 * and canonicalises its path once, so every spelling of it (a trailing slash, a
 * symlink) names the same boxes. */
static int open_home(cocoon_runtime *rt, cocoon_error *err)
{
    struct stat st;
    if (stat(rt->home, &st) < 0) {
        if (errno != ENOENT || util_mkdir_p(rt->home, 0700) < 0 || stat(rt->home, &st) < 0)
            return lib_err(err, COCOON_E_IO,
                           "cannot create the state directory %s: %s (set COCOON_HOME to a "
                           "writable place)",
                           rt->home, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return lib_err(err, COCOON_E_INVALID, "the state directory %s is not a directory (set COCOON_HOME)", rt->home);
    if (st.st_uid != geteuid())
        return lib_err(err, COCOON_E_STATE,
                       "the state directory %s belongs to uid %u, not to you (uid %u): cocoon does not use another "
                       "user's state; set COCOON_HOME to a directory of your own",
                       rt->home, (unsigned)st.st_uid, (unsigned)geteuid());
    char real[LIB_PATH_MAX];
    if (!realpath(rt->home, real))
        return lib_err(err, COCOON_E_IO, "cannot resolve the state directory %s: %s", rt->home, strerror(errno));
    lib_path(rt->home, sizeof(rt->home), "%s", real);
    if (st.st_mode & (S_IWGRP | S_IWOTH | S_IROTH))
        snprintf(rt->warning, sizeof(rt->warning),
                 "the state directory %s has mode %04o: other users may %s image blobs and box disks; "
                 "fix it with: chmod 700 %s",
                 rt->home, (unsigned)(st.st_mode & 07777), st.st_mode & (S_IWGRP | S_IWOTH) ? "change" : "read",
                 rt->home);
    char boxes[LIB_PATH_MAX];
    if (lib_path(boxes, sizeof(boxes), "%s/boxes", rt->home) < 0 || util_mkdir_p(boxes, 0700) < 0)
        return lib_err(err, COCOON_E_IO,
                       "cannot create the state directory %s: %s (set COCOON_HOME to a writable place)", boxes,
                       strerror(errno));
    return 0;
}

static const char *env_or_null(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void cocoon_runtime_options_init(cocoon_runtime_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->size = sizeof(*opts);
}

int cocoon_runtime_open(const cocoon_runtime_options *opts, cocoon_runtime **out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_runtime_open: out is NULL");
    *out = NULL;
    cocoon_runtime_options o;
    if (LIB_OPTIONS(cocoon_runtime_options, o, opts, err) < 0)
        return -1;
    cocoon_runtime *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");

    const char *home = o.home ? o.home : env_or_null("COCOON_HOME");
    if (home ? lib_path(rt->home, sizeof(rt->home), "%s", home) : default_home(rt->home, sizeof(rt->home))) {
        free(rt);
        return lib_err(err, COCOON_E_INVALID, "cannot determine the state directory: set COCOON_HOME");
    }
    if (open_home(rt, err) < 0) {
        free(rt);
        return -1;
    }

    char dir[LIB_PATH_MAX];
    int have_dir = self_dir(dir, sizeof(dir)) == 0;
    const char *share = o.share_dir ? o.share_dir : env_or_null("COCOON_SHARE_DIR");
    int rc = share ? lib_path(rt->share_dir, sizeof(rt->share_dir), "%s", share)
                   : (have_dir ? lib_path(rt->share_dir, sizeof(rt->share_dir), "%s/../share/cocoon", dir) : -1);
    const char *vmm = o.vmm ? o.vmm : env_or_null("COCOON_VMM");
    if (rc == 0)
        rc = vmm ? lib_path(rt->vmm_path, sizeof(rt->vmm_path), "%s", vmm)
                 : (have_dir ? lib_path(rt->vmm_path, sizeof(rt->vmm_path), "%s/../bin/cocoon-vmm", dir) : -1);
    if (rc < 0) {
        free(rt);
        return lib_err(err, COCOON_E_NOT_FOUND,
                       "cannot locate cocoon's files next to the library: set COCOON_SHARE_DIR and COCOON_VMM");
    }
    /* Tidy "bin/../share" into a canonical path when it exists (nicer in messages). */
    char real[LIB_PATH_MAX];
    if (realpath(rt->share_dir, real))
        lib_path(rt->share_dir, sizeof(rt->share_dir), "%s", real);
    if (realpath(rt->vmm_path, real))
        lib_path(rt->vmm_path, sizeof(rt->vmm_path), "%s", real);
    if (state_open(rt->home, &rt->state, err) < 0) {
        free(rt);
        return -1;
    }
    *out = rt;
    return 0;
}

const char *cocoon_runtime_warning(const cocoon_runtime *rt) { return rt ? rt->warning : ""; }

void cocoon_runtime_set_notice(cocoon_runtime *rt, cocoon_notice_fn fn, void *user)
{
    if (!rt)
        return;
    rt->notice = fn;
    rt->notice_user = user;
}

void lib_notice(cocoon_runtime *rt, const char *fmt, ...)
{
    if (!rt || !rt->notice)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rt->notice(rt->notice_user, msg);
}

void cocoon_runtime_close(cocoon_runtime *rt)
{
    if (!rt)
        return;
    state_close(rt->state);
    free(rt);
}

int lib_kernel_paths(cocoon_runtime *rt, const char *kernel_opt, const char *initrd_opt, char *kernel, char *initrd,
                     size_t cap)
{
    const char *k = kernel_opt ? kernel_opt : env_or_null("COCOON_KERNEL");
    const char *i = initrd_opt ? initrd_opt : env_or_null("COCOON_INITRD");
    int rc = k ? lib_path(kernel, cap, "%s", k) : lib_path(kernel, cap, "%s/vmlinux", rt->share_dir);
    if (rc == 0)
        rc = i ? lib_path(initrd, cap, "%s", i) : lib_path(initrd, cap, "%s/initramfs.cpio", rt->share_dir);
    return rc;
}
