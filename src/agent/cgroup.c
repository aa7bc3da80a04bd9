/* Guest cgroups: every command (and file transfer) runs in its own cgroup under
 * /sys/fs/cgroup/execs, whose memory.max leaves the agent headroom and whose pids.max
 * bounds a fork bomb; the agent stays in the root cgroup, outside those limits, so a
 * runaway command is OOM-killed or refused forks while the box keeps serving.
 * Commands are born in their cgroup (clone.c), and a cgroup whose
 * command ended with nothing left running in it serves a later command: making and
 * removing one costs more than a millisecond of the guest's CPU under TCG. */
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
/* Empty command cgroups kept for reuse; more are removed. */
#define SPARES_MAX 4

static int cg_ready;
static unsigned long cg_serial;
/* Command cgroups ready for the next commands: empty, open directories. */
static struct cmd_cgroup spares[SPARES_MAX];
static int nspares;
/* Some command's cgroup could not be removed: look again when another one ends, at
 * most once a second (a running daemon keeps its cgroup busy for a long time). */
#define COLLECT_EVERY_NS NS_PER_SEC
static int leftovers;
static uint64_t next_collect;
static int clone3_works = 1; /* until the kernel says it has no clone3 */

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

static void cgroup_path(char *buf, size_t cap, unsigned long id) { snprintf(buf, cap, CG_EXECS "/%lu", id); }

static int is_spare(unsigned long id)
{
    for (int i = 0; i < nspares; i++)
        if (spares[i].id == id)
            return 1;
    return 0;
}

/* Removes the cgroups of commands that ended, but the spares (rmdir fails on a
 * cgroup still in use). 1 when some could not be removed. */
static int collect(void)
{
    DIR *d = opendir(CG_EXECS);
    if (!d)
        return 0;
    struct dirent *de;
    char path[300];
    int kept = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9' || is_spare(strtoul(de->d_name, NULL, 10)))
            continue;
        snprintf(path, sizeof(path), CG_EXECS "/%s", de->d_name);
        if (rmdir(path) != 0)
            kept = 1;
    }
    closedir(d);
    return kept;
}

static void drop(struct cmd_cgroup *cg)
{
    if (cg->events_fd >= 0)
        close(cg->events_fd);
    if (cg->fd >= 0)
        close(cg->fd);
    if (cg->id) {
        char path[128];
        cgroup_path(path, sizeof(path), cg->id);
        /* Busy while something the command started still runs (a daemon): kept for later. */
        if (rmdir(path) != 0 && errno != ENOENT)
            leftovers = 1;
    }
    cg->id = 0;
    cg->fd = cg->events_fd = -1;
}

static int make_cgroup(struct cmd_cgroup *cg)
{
    char path[128];
    cg->id = ++cg_serial;
    cgroup_path(path, sizeof(path), cg->id);
    cg->fd = cg->events_fd = -1;
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        cg->id = 0;
        return -1;
    }
    cg->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* Kept open: reading it again costs a fraction of opening it (reusable()). */
    if (cg->fd >= 0)
        cg->events_fd = openat(cg->fd, "cgroup.events", O_RDONLY | O_CLOEXEC);
    if (cg->fd < 0 || cg->events_fd < 0) {
        drop(cg);
        return -1;
    }
    return 0;
}

/* Keeps one cgroup ready, so a command does not wait for its mkdir. */
static void make_spare(void)
{
    if (cg_ready && nspares == 0 && make_cgroup(&spares[0]) == 0)
        nspares = 1;
}

/* A cgroup may serve another command when nothing runs in it and it is not frozen. */
static int reusable(const struct cmd_cgroup *cg)
{
    char buf[128];
    ssize_t n = pread(cg->events_fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return strstr(buf, "populated 0\n") && strstr(buf, "frozen 0\n");
}

/* Starts the child in cgroup fd (-1: beside the agent): as vfork when fn is given and
 * clone.c can, else as fork, the child then running fn. Born in the cgroup, no process,
 * however fast it forks, ever runs outside it, and the agent never migrates (a
 * migration waits for an RCU grace period when none was started recently: 10-30 ms
 * at HZ=100). */
static pid_t start_in(int fd, int (*fn)(void *), void *arg)
{
    if (fn) {
        pid_t pid = clone_vfork(fd, fn, arg);
        if (pid >= 0 || errno != ENOSYS)
            return pid;
    }
    pid_t pid = clone_fork(fd);
    if (pid == 0 && fn)
        _exit(fn(arg));
    return pid;
}

/* Kernels without clone3: the agent moves itself in for the fork and back right
 * after, so the child still starts inside. */
static pid_t start_by_migrating(unsigned long id, int (*fn)(void *), void *arg)
{
    char path[160];
    snprintf(path, sizeof(path), CG_EXECS "/%lu/cgroup.procs", id);
    if (write_file(path, "0") != 0) {
        agent_log("cgroups: entering %s: %s", path, strerror(errno));
        return start_in(-1, fn, arg);
    }
    pid_t pid = start_in(-1, fn, arg);
    int e = errno;
    if (pid != 0 && write_file(CG_ROOT "/cgroup.procs", "0") != 0)
        agent_log("cgroups: leaving the command cgroup: %s", strerror(errno));
    errno = e;
    return pid;
}

/* EAGAIN: pids.max of the commands reached; ENOMEM: out of memory. Neither is the
 * cgroup's fault. */
static int started_or_refused(pid_t pid) { return pid >= 0 || errno == EAGAIN || errno == ENOMEM; }

static pid_t start(struct cmd_cgroup *cg, int (*fn)(void *), void *arg)
{
    cg->id = 0;
    cg->fd = cg->events_fd = -1;
    make_spare();
    if (nspares == 0)
        return start_in(-1, fn, arg); /* no cgroups here: commands run without limits (logged at boot) */
    *cg = spares[--nspares];
    if (!clone3_works)
        return start_by_migrating(cg->id, fn, arg);
    pid_t pid = start_in(cg->fd, fn, arg);
    if (started_or_refused(pid))
        return pid;
    if (errno == ENOSYS || errno == E2BIG) {
        agent_log("cgroups: clone3 into a cgroup: %s (commands start by migrating the agent)", strerror(errno));
        clone3_works = 0;
        return start_by_migrating(cg->id, fn, arg);
    }
    /* This cgroup cannot take a process (an earlier command enabled controllers in
     * it, or made it threaded): a fresh one can. */
    agent_log("cgroups: clone3 into %s/%lu: %s (trying a fresh cgroup)", CG_EXECS, cg->id, strerror(errno));
    drop(cg);
    if (make_cgroup(cg) != 0) {
        agent_log("cgroups: a fresh cgroup: %s (this command runs without limits)", strerror(errno));
        return start_in(-1, fn, arg);
    }
    pid = start_in(cg->fd, fn, arg);
    return started_or_refused(pid) ? pid : start_by_migrating(cg->id, fn, arg);
}

pid_t cgroup_fork(struct cmd_cgroup *cg) { return start(cg, NULL, NULL); }

pid_t cgroup_vfork(struct cmd_cgroup *cg, int (*fn)(void *), void *arg) { return start(cg, fn, arg); }

void cgroup_release(struct cmd_cgroup *cg)
{
    if (!cg->id)
        return;
    if (nspares < SPARES_MAX && cg->events_fd >= 0 && reusable(cg)) {
        spares[nspares++] = *cg;
    } else {
        drop(cg);
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        if (leftovers && now >= next_collect) {
            leftovers = collect();
            next_collect = now + COLLECT_EVERY_NS;
        }
    }
    cg->id = 0;
    cg->fd = cg->events_fd = -1;
    make_spare();
}
