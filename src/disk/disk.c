/* Disk creation behind disk.h: the qcow2 overlay with our own qcow2 code, and
 * mke2fs -d for a host directory turned into ext4 (its stderr becomes the error
 * message, since it usually says exactly what went wrong). */
#include "disk/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "disk/qcow2.h"
#include "lib/internal.h"

/* Trims trailing newlines and turns inner ones into "; " so the message is one line. */
static void one_line(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = 0;
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ';';
}

static int run_tool(const char *const argv[], const char *what, cocoon_error *err)
{
    char out[1024];
    int st = lib_run(argv, out, sizeof(out));
    if (st < 0 && errno == ENOENT)
        return lib_err(err, COCOON_E_UNSUPPORTED, "%s needs `%s`, which is not installed (%s)", what, argv[0],
                       "apt-get install -y e2fsprogs");
    if (st < 0)
        return lib_err(err, COCOON_E_IO, "%s: cannot run %s: %s", what, argv[0], strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        one_line(out);
        return lib_err(err, COCOON_E_IO, "%s: %s failed (%s %d): %s", what, argv[0],
                       WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                       out[0] ? out : "no message");
    }
    return 0;
}

int disk_create_overlay(const char *base, const char *path, uint64_t size, cocoon_error *err)
{
    if (base[0] != '/')
        return lib_err(err, COCOON_E_INVALID, "disk base %s must be an absolute path", base);
    struct stat st;
    if (stat(base, &st) < 0)
        return lib_err(err, COCOON_E_NOT_FOUND, "disk base %s: %s", base, strerror(errno));
    if (size && size < (uint64_t)st.st_size)
        return lib_err(err, COCOON_E_INVALID, "disk size %llu bytes is smaller than the image (%llu bytes)",
                       (unsigned long long)size, (unsigned long long)st.st_size);
    char msg[512];
    int rc = qcow2_create(path, size, base, "raw", 0, msg, sizeof(msg));
    if (rc < 0)
        return lib_err(err, rc == -EEXIST ? COCOON_E_STATE : COCOON_E_IO, "creating the box disk %s: %s", path, msg);
    return 0;
}

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

uint64_t disk_virtual_size(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    unsigned char h[32];
    struct stat st;
    ssize_t n = pread(fd, h, sizeof(h), 0);
    int ok = fstat(fd, &st) == 0;
    close(fd);
    if (n == (ssize_t)sizeof(h) && !memcmp(h, "QFI\xfb", 4))
        return be64(h + 24);
    return ok ? (uint64_t)st.st_size : 0;
}

static unsigned long long tree_bytes;

static int add_size(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)p;
    (void)flag;
    (void)ftw;
    tree_bytes += (unsigned long long)st->st_blocks * 512ull + 4096; /* + inode/dirent slack */
    return 0;
}

int disk_from_rootfs(const char *dir, const char *path, uint64_t min_size, cocoon_error *err)
{
    struct stat st;
    if (stat(dir, &st) < 0)
        return lib_err(err, COCOON_E_NOT_FOUND, "rootfs directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return lib_err(err, COCOON_E_INVALID, "rootfs %s is not a directory", dir);
    /* nftw has global state; disk creation is rare, a lock keeps it thread-safe. */
    static pthread_mutex_t du_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&du_lock);
    tree_bytes = 0;
    int rc = nftw(dir, add_size, 64, FTW_PHYS | FTW_MOUNT);
    unsigned long long used = tree_bytes;
    pthread_mutex_unlock(&du_lock);
    if (rc < 0)
        return lib_err(err, COCOON_E_IO, "cannot read rootfs directory %s: %s", dir, strerror(errno));
    unsigned long long size_kib = (2 * used + 256ull * 1024 * 1024) / 1024;
    if (min_size / 1024 > size_kib)
        size_kib = (unsigned long long)((min_size + 1023) / 1024);
    char size[32];
    snprintf(size, sizeof(size), "%lluk", size_kib);
    /* A sparse file of the final size: mke2fs then only writes metadata and data. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return lib_err(err, COCOON_E_IO, "cannot create %s: %s", path, strerror(errno));
    if (ftruncate(fd, (off_t)size_kib * 1024) < 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return lib_err(err, COCOON_E_IO, "cannot size %s: %s", path, strerror(e));
    }
    close(fd);
    const char *argv[] = {"mke2fs", "-q", "-F", "-t", "ext4", "-d", dir, "-E", "root_owner=0:0", path, size, NULL};
    if (run_tool(argv, "building a disk from the rootfs directory", err) < 0) {
        unlink(path);
        return -1;
    }
    return 0;
}
