/* Guest cgroups: every command (and file transfer) runs in its own cgroup under
 * /sys/fs/cgroup/execs, whose memory.max leaves the agent headroom and whose pids.max
 * bounds a fork bomb; the agent stays in the root cgroup, outside those limits, so a
 * runaway command is OOM-killed or refused forks while the box keeps serving. */
#include "agent/agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CG_ROOT "/sys/fs/cgroup"
#define CG_EXECS CG_ROOT "/execs"
/* Memory the commands may not take: the agent, the kernel's own needs under pressure. */
#define AGENT_HEADROOM (32ull << 20)
#define PIDS_MIN 256u
#define PIDS_MAX 4096u

static int cg_ready;
static unsigned long cg_serial;

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
}

/* Removes the cgroups of commands that ended (rmdir fails on a populated one). */
static void collect(void)
{
    DIR *d = opendir(CG_EXECS);
    if (!d)
        return;
    struct dirent *de;
    char path[300];
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), CG_EXECS "/%s", de->d_name);
        rmdir(path);
    }
    closedir(d);
}

int cgroup_enter(void)
{
    if (!cg_ready)
        return 0;
    collect();
    char path[128];
    snprintf(path, sizeof(path), CG_EXECS "/%lu", ++cg_serial);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return 0;
    /* The agent moves itself in for the fork, so the child starts inside: moving the
     * child afterwards would let a fast fork bomb leave children behind. */
    strncat(path, "/cgroup.procs", sizeof(path) - strlen(path) - 1);
    if (write_file(path, "0") != 0) {
        agent_log("cgroups: entering %s: %s", path, strerror(errno));
        return 0;
    }
    return 1;
}

void cgroup_leave(int entered)
{
    if (entered && write_file(CG_ROOT "/cgroup.procs", "0") != 0)
        agent_log("cgroups: leaving the command cgroup: %s", strerror(errno));
}
