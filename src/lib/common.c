/* Helpers every libcocoon file uses: filling a cocoon_error, building bounded
 * paths, and running a short-lived host tool (qemu-img, mke2fs, qemu --version)
 * with its output captured so failures can be reported, not printed. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef COCOON_VERSION
#define COCOON_VERSION "0.0.0"
#endif

extern char **environ;

const char *cocoon_version(void) { return COCOON_VERSION; }

int lib_err(cocoon_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return -1;
}

void lib_err_clear(cocoon_error *err)
{
    if (err) {
        err->code = COCOON_OK;
        err->message[0] = 0;
    }
}

void lib_warning(char *w, size_t cap, const char *fmt, ...)
{
    if (cap == 0)
        return;
    size_t n = strlen(w);
    if (n + 1 >= cap)
        return;
    if (n)
        w[n++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(w + n, cap - n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= cap - n) /* full: say so instead of a cut line */
        snprintf(w + n, cap - n, "(more warnings)");
}

void lib_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int lib_path(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int lib_which(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 && lib_path(out, cap, "%s", name) == 0 ? 0 : -1;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        if (n > 0 && lib_path(out, cap, "%.*s/%s", (int)n, path, name) == 0 && access(out, X_OK) == 0)
            return 0;
        path += n;
        if (*path == ':')
            path++;
    }
    /* sbin is often missing from a user's PATH, yet mke2fs lives there. */
    static const char *const extra[] = {"/usr/sbin", "/sbin", NULL};
    for (int i = 0; extra[i]; i++)
        if (lib_path(out, cap, "%s/%s", extra[i], name) == 0 && access(out, X_OK) == 0)
            return 0;
    errno = ENOENT;
    return -1;
}

int lib_run(const char *const argv[], char *out, size_t cap)
{
    char exe[LIB_PATH_MAX];
    if (lib_which(argv[0], exe, sizeof(exe)) < 0)
        return -1;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    posix_spawnattr_init(&attr);
    /* The caller may block signals (the CLI does, to sigwait them): the tool must not inherit that. */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        errno = rc;
        return -1;
    }
    size_t len = 0;
    char sink[4096];
    for (;;) {
        char *dst = len + 1 < cap ? out + len : sink;
        size_t room = len + 1 < cap ? cap - 1 - len : sizeof(sink);
        ssize_t n = read(pfd[0], dst, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (dst != sink)
            len += (size_t)n;
    }
    close(pfd[0]);
    if (cap)
        out[len < cap ? len : cap - 1] = 0;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

int lib_box_dirfd(const cocoon_box *box, cocoon_error *err)
{
    int fd = open(box->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        lib_err(err, errno == ENOENT ? COCOON_E_NOT_FOUND : COCOON_E_IO, "box directory %s: %s", box->dir,
                strerror(errno));
    return fd;
}
