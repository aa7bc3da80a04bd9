/* Guest cgroups: every command (and file transfer) runs in its own cgroup under
 * /sys/fs/cgroup/execs, whose memory.max leaves the agent headroom and whose pids.max
 * bounds a fork bomb; the agent stays in the root cgroup, outside those limits, so a
 * runaway command is OOM-killed or refused forks while the box keeps serving. */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CG_ROOT "/sys/fs/cgroup"
#define CG_EXECS CG_ROOT "/execs"
/* Memory the commands may not take: the agent, the kernel's own needs under pressure. */
#define AGENT_HEADROOM (32ull << 20)
#define PIDS_MIN 256u
#define PIDS_MAX 4096u

static int cg_ready;
static unsigned long cg_serial;
/* The next command's cgroup, made in advance: an open directory and its number. */
static int spare_fd = -1;
static unsigned long spare_id;
/* Some command's cgroup could not be removed when it ended: look again later. */
static int leftovers;
static int clone3_works = 1;

static void make_spare(void);

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static uint64_t mem_total_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    unsigned long long kib = 0;
    char line[128];
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return (uint64_t)kib * 1024;
}

void cgroup_setup(void)
{
    if (write_file(CG_ROOT "/cgroup.subtree_control", "+memory +pids +cpu") != 0) {
        agent_log("cgroups: enabling controllers: %s (commands run without limits)", strerror(errno));
        return;
    }
    if (mkdir(CG_EXECS, 0755) != 0 && errno != EEXIST) {
        agent_log("cgroups: mkdir %s: %s (commands run without limits)", CG_EXECS, strerror(errno));
        return;
    }
    uint64_t total = mem_total_bytes();
    char buf[64];
    if (total > 2 * AGENT_HEADROOM) {
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)(total - AGENT_HEADROOM));
        if (write_file(CG_EXECS "/memory.max", buf) != 0)
            agent_log("cgroups: memory.max: %s", strerror(errno));
    }
    /* About 2 processes per MiB of memory, within [256, 4096]. */
    uint64_t pids = total >> 19;
    pids = pids < PIDS_MIN ? PIDS_MIN : pids > PIDS_MAX ? PIDS_MAX : pids;
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)pids);
    if (write_file(CG_EXECS "/pids.max", buf) != 0)
        agent_log("cgroups: pids.max: %s", strerror(errno));
    /* Per-command cgroups below need the controllers too (memory.oom.group, stats). */
    if (write_file(CG_EXECS "/cgroup.subtree_control", "+memory +pids +cpu") != 0)
        agent_log("cgroups: execs subtree_control: %s", strerror(errno));
    cg_ready = 1;
    make_spare();
}

/* Removes the cgroups of commands that ended (rmdir fails on a populated one), but
 * the spare. 1 when some could not be removed. */
static int collect(void)
{
    DIR *d = opendir(CG_EXECS);
    if (!d)
        return 0;
    struct dirent *de;
    char path[300];
    int kept = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9' || strtoul(de->d_name, NULL, 10) == spare_id)
            continue;
        snprintf(path, sizeof(path), CG_EXECS "/%s", de->d_name);
        if (rmdir(path) != 0)
            kept = 1;
    }
    closedir(d);
    return kept;
}

/* Makes the next command's cgroup ahead of time, so an exec does not wait for it. */
static void make_spare(void)
{
    if (!cg_ready || spare_fd >= 0)
        return;
    char path[128];
    unsigned long id = ++cg_serial;
    snprintf(path, sizeof(path), CG_EXECS "/%lu", id);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return;
    spare_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (spare_fd >= 0)
        spare_id = id;
}

/* The child is born in the cgroup: no process, however fast it forks, ever runs
 * outside it, and the agent never migrates (a migration waits for an RCU grace
 * period when none was started recently: 10-30 ms at HZ=100). Raw clone3 with the
 * flags of fork(): the agent is single-threaded, so no lock of libc's is held. */
static pid_t clone_into(int cgroup_fd)
{
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup_fd;
    return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

/* Kernels without clone3 into a cgroup: the agent moves itself in for the fork and
 * back right after, so the child still starts inside. */
static pid_t fork_by_migrating(unsigned long id)
{
    char path[128];
    snprintf(path, sizeof(path), CG_EXECS "/%lu/cgroup.procs", id);
    if (write_file(path, "0") != 0) {
        agent_log("cgroups: entering %s: %s", path, strerror(errno));
        return fork();
    }
    pid_t pid = fork();
    int e = errno;
    if (pid != 0 && write_file(CG_ROOT "/cgroup.procs", "0") != 0)
        agent_log("cgroups: leaving the command cgroup: %s", strerror(errno));
    errno = e;
    return pid;
}

pid_t cgroup_fork(unsigned long *cg)
{
    *cg = 0;
    make_spare();
    if (spare_fd < 0)
        return fork(); /* no cgroups here: commands run without limits (logged at boot) */
    int fd = spare_fd;
    unsigned long id = spare_id;
    spare_fd = -1;
    spare_id = 0;
    pid_t pid = -1;
    if (clone3_works) {
        pid = clone_into(fd);
        if (pid < 0 && (errno == ENOSYS || errno == E2BIG)) {
            agent_log("cgroups: clone3 into a cgroup: %s (commands start by migrating the agent)", strerror(errno));
            clone3_works = 0;
        } else if (pid < 0 && errno != EAGAIN && errno != ENOMEM) {
            agent_log("cgroups: clone3 into %s/%lu: %s (migrating instead)", CG_EXECS, id, strerror(errno));
            pid = fork_by_migrating(id);
        }
    }
    if (!clone3_works)
        pid = fork_by_migrating(id);
    if (pid == 0)
        return 0; /* the child: its copy of fd is close-on-exec */
    int e = errno;
    close(fd);
    *cg = id;
    errno = e;
    return pid;
}

void cgroup_release(unsigned long cg)
{
    if (!cg_ready)
        return;
    char path[128];
    snprintf(path, sizeof(path), CG_EXECS "/%lu", cg);
    /* Busy while something the command started still runs (a daemon): kept for later. */
    if (cg && rmdir(path) != 0 && errno != ENOENT)
        leftovers = 1;
    else if (leftovers)
        leftovers = collect();
    make_spare();
}
