/* A cgroup v2 of its own for a box, where the host delegated one to us: the monitor and
 * its VMM child move into it, memory.max is the guest's RAM plus a stated overhead and
 * pids.max bounds their threads. Without a delegated cgroup v2 (a cgroup v1 host, or a
 * cgroup we may not write), the box runs without one and the reason is logged. The
 * cgroup is named after the box, so its next start reuses it; the monitor (inside it
 * until it exits) cannot remove it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "jail/jail.h"
#include "util/util.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

static int write_at(const char *dir, const char *file, const char *text)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return util_write_text(path, text);
}

static int read_at(const char *dir, const char *file, char *out, size_t cap)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, out, cap - 1);
    close(fd);
    out[n > 0 ? n : 0] = 0;
    return n < 0 ? -1 : 0;
}

/* Where this process's cgroup v2 is ("" when the host has none), in buf. */
int jail_cgroup_self(char *buf, size_t cap, char *why, size_t whycap)
{
    struct statfs sf;
    if (statfs(CGROUP_ROOT, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC) {
        snprintf(why, whycap, "no cgroup v2 at " CGROUP_ROOT " (a cgroup v1 or hybrid host)");
        return -1;
    }
    char text[4096];
    if (read_at("/proc/self", "cgroup", text, sizeof(text)) < 0 || strncmp(text, "0::", 3) != 0) {
        snprintf(why, whycap, "cannot tell this process's cgroup from /proc/self/cgroup");
        return -1;
    }
    text[strcspn(text, "\n")] = 0;
    snprintf(buf, cap, CGROUP_ROOT "%s", text + 3);
    char ctl[256];
    if (access(buf, W_OK) < 0 || read_at(buf, "cgroup.subtree_control", ctl, sizeof(ctl)) < 0 ||
        !strstr(ctl, "memory") || !strstr(ctl, "pids")) {
        snprintf(why, whycap, "cgroup %s is not delegated to us with the memory and pids controllers", text + 3);
        return -1;
    }
    return 0;
}

int jail_cgroup_enter(const struct jail_plan *p, struct jail_state *st);
int jail_cgroup_enter(const struct jail_plan *p, struct jail_state *st)
{
    char parent[PATH_MAX], why[384], num[32];
    if (jail_cgroup_self(parent, sizeof(parent), why, sizeof(why)) < 0) {
        snprintf(st->why_not + strlen(st->why_not), sizeof(st->why_not) - strlen(st->why_not), "%s%s",
                 st->why_not[0] ? "; " : "", why);
        return -1;
    }
    if (strlen(parent) + strlen(p->box_id) + 9 >= sizeof(st->cgroup_path)) {
        snprintf(st->why_not + strlen(st->why_not), sizeof(st->why_not) - strlen(st->why_not),
                 "%sthe cgroup path is too long", st->why_not[0] ? "; " : "");
        return -1;
    }
    memcpy(st->cgroup_path, parent, strlen(parent));
    snprintf(st->cgroup_path + strlen(parent), sizeof(st->cgroup_path) - strlen(parent), "/cocoon-%s", p->box_id);
    if (mkdir(st->cgroup_path, 0755) < 0 && errno != EEXIST)
        goto fail;
    snprintf(num, sizeof(num), "%llu", (unsigned long long)(p->mem_bytes + JAIL_CGROUP_OVERHEAD));
    if (write_at(st->cgroup_path, "memory.max", num) < 0)
        goto fail;
    snprintf(num, sizeof(num), "%d", JAIL_CGROUP_PIDS);
    if (write_at(st->cgroup_path, "pids.max", num) < 0 || write_at(st->cgroup_path, "cgroup.procs", "0") < 0)
        goto fail;
    st->cgroup = 1;
    return 0;
fail:
    snprintf(st->why_not + strlen(st->why_not), sizeof(st->why_not) - strlen(st->why_not),
             "%scannot set up cgroup %s: %s", st->why_not[0] ? "; " : "", st->cgroup_path, strerror(errno));
    rmdir(st->cgroup_path);
    st->cgroup_path[0] = 0;
    return -1;
}

void jail_cgroup_remove(const char *box_id)
{
    char parent[PATH_MAX], why[384], path[PATH_MAX + 80];
    if (jail_cgroup_self(parent, sizeof(parent), why, sizeof(why)) < 0)
        return;
    snprintf(path, sizeof(path), "%s/cocoon-%s", parent, box_id);
    rmdir(path);
}
