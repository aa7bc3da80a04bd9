/* Boot-time filesystems: the kernel's pseudo filesystems in the initramfs, the box
 * disk mounted (and its ext4 grown online to fill a disk made larger than the image)
 * and switched to as the root, then what programs expect to find in a running system
 * (/dev/pts, /dev/shm, /run, cgroup2, /dev/fd links). */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif

void boot_parse_cmdline(struct boot_opts *o)
{
    snprintf(o->root, sizeof(o->root), "/dev/vda");
    snprintf(o->fstype, sizeof(o->fstype), "ext4");
    char buf[4096];
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
        if (strncmp(tok, "cocoon.root=", 12) == 0 && tok[12] && strlen(tok + 12) < sizeof(o->root))
            snprintf(o->root, sizeof(o->root), "%s", tok + 12);
        else if (strncmp(tok, "cocoon.rootfstype=", 18) == 0 && tok[18] && strlen(tok + 18) < sizeof(o->fstype))
            snprintf(o->fstype, sizeof(o->fstype), "%s", tok + 18);
        else if (strcmp(tok, "cocoon.trace=exec") == 0)
            agent_trace = 1;
    }
}

static void must_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data)
{
    mkdir(dst, 0755);
    if (mount(src, dst, type, flags, data) != 0)
        agent_fatal("mount %s on %s: %s", type ? type : src, dst, strerror(errno));
}

static void try_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data,
                      mode_t mode)
{
    mkdir(dst, mode);
    if (mount(src, dst, type, flags, data) != 0)
        agent_log("mount %s on %s: %s (continuing)", type, dst, strerror(errno));
}

static void reopen_console(void)
{
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return; /* keep whatever the kernel gave us */
    for (int i = 0; i < 3; i++)
        if (fd != i)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
}

void boot_early_mounts(void)
{
    /* devtmpfs first: the console and the disk node live there. */
    must_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    reopen_console();
    must_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    must_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

static void wait_for_device(const char *path, unsigned timeout_ms)
{
    struct stat st;
    uint64_t give_up = clock_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * NS_PER_MS;
    while (stat(path, &st) != 0 || !S_ISBLK(st.st_mode)) {
        if (clock_ns(CLOCK_MONOTONIC) >= give_up)
            agent_fatal("root device %s did not appear within %u ms (is the disk attached?)", path, timeout_ms);
        usleep(10 * 1000);
    }
}

static void move_into_root(const char *from, const char *to)
{
    mkdir(to, 0755);
    if (mount(from, to, NULL, MS_MOVE, NULL) != 0)
        agent_fatal("move %s to %s: %s", from, to, strerror(errno));
}

static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* A box disk may be larger than the image's file system (`--disk 10G`): grow the ext4
 * online to the size of the device. Only a log line on failure; the box still boots. */
static void grow_root(const char *dev, const char *mnt)
{
    int fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    uint64_t bytes = 0;
    unsigned char sb[1024];
    int ok = ioctl(fd, BLKGETSIZE64, &bytes) == 0 && pread(fd, sb, sizeof(sb), 1024) == (ssize_t)sizeof(sb);
    close(fd);
    if (!ok || sb[0x38] != 0x53 || sb[0x39] != 0xef) /* ext2/3/4 magic */
        return;
    uint32_t log = le32(sb + 0x18);
    if (log > 6)
        return;
    uint64_t bsize = 1024ull << log;
    uint64_t blocks = le32(sb + 0x4);
    if (le32(sb + 0x60) & 0x80) /* INCOMPAT_64BIT */
        blocks |= (uint64_t)le32(sb + 0x150) << 32;
    uint64_t want = bytes / bsize;
    if (want <= blocks)
        return;
    int dfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ioctl(dfd, EXT4_IOC_RESIZE_FS, &want) != 0)
        agent_log("growing the root file system from %llu to %llu MiB failed: %s (continuing)",
                  (unsigned long long)(blocks * bsize >> 20), (unsigned long long)(want * bsize >> 20),
                  strerror(errno));
    else
        agent_log("grew the root file system from %llu to %llu MiB", (unsigned long long)(blocks * bsize >> 20),
                  (unsigned long long)(want * bsize >> 20));
    if (dfd >= 0)
        close(dfd);
}

void boot_switch_root(const struct boot_opts *o)
{
    wait_for_device(o->root, 10000);
    mkdir("/newroot", 0755);
    if (mount(o->root, "/newroot", o->fstype, 0, NULL) != 0)
        agent_fatal("mount root %s (%s) on /newroot: %s", o->root, o->fstype, strerror(errno));
    if (!strcmp(o->fstype, "ext4"))
        grow_root(o->root, "/newroot");
    static const char *const dirs[] = {"/newroot/proc", "/newroot/sys", "/newroot/dev", "/newroot/run"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        mkdir(dirs[i], 0755);
    if (mkdir("/newroot/tmp", 01777) == 0)
        chmod("/newroot/tmp", 01777); /* mkdir applies the umask */
    move_into_root("/dev", "/newroot/dev");
    move_into_root("/proc", "/newroot/proc");
    move_into_root("/sys", "/newroot/sys");
    /* The initramfs stays in memory underneath (it is ~1 MB: the agent itself);
     * removing it is not worth the code. */
    if (chdir("/newroot") != 0)
        agent_fatal("chdir /newroot: %s", strerror(errno));
    if (mount(".", "/", NULL, MS_MOVE, NULL) != 0)
        agent_fatal("switch root: move /newroot to /: %s", strerror(errno));
    if (chroot(".") != 0)
        agent_fatal("chroot: %s", strerror(errno));
    if (chdir("/") != 0)
        agent_fatal("chdir /: %s", strerror(errno));
}

static void link_if_missing(const char *target, const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0 && symlink(target, path) != 0)
        agent_log("symlink %s: %s", path, strerror(errno));
}

void boot_late_mounts(void)
{
    /* A private devpts instance; /dev/ptmx from devtmpfs follows the "pts" next to it. */
    try_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", 0755);
    link_if_missing("pts/ptmx", "/dev/ptmx");
    try_mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777);
    try_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", 0755);
    /* Optional: the kernel may be built without cgroups, and sysfs may lack the dir. */
    if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        agent_log("cgroup2 not mounted: %s", strerror(errno));
    else
        cgroup_setup();
    link_if_missing("/proc/self/fd", "/dev/fd");
    link_if_missing("/proc/self/fd/0", "/dev/stdin");
    link_if_missing("/proc/self/fd/1", "/dev/stdout");
    link_if_missing("/proc/self/fd/2", "/dev/stderr");
}
