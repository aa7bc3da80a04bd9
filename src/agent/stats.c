/* STATS: a snapshot of the guest for `cocoon stats` (CPU time, memory, root disk,
 * processes, uptime, load), read from /proc and statfs and answered at once with
 * STATS_REPLY on the request's stream. */
#include "agent/agent.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static void read_cpu(struct proto_stats *s)
{
    FILE *f = fopen("/proc/stat", "re");
    unsigned long long v[8] = {0};
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]) < 4)
            memset(v, 0, sizeof(v));
        fclose(f);
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    /* busy = user + nice + system + irq + softirq + steal (not idle, not iowait) */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    s->cpu_ns = busy * (NS_PER_SEC / (unsigned long long)hz);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    s->cpus = n > 0 ? (uint32_t)n : 1;
}

static void read_mem(struct proto_stats *s)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[128];
    unsigned long long kib;
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
            s->mem_total = kib * 1024;
        else if (sscanf(line, "MemFree: %llu kB", &kib) == 1)
            s->mem_free = kib * 1024;
        else if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            s->mem_available = kib * 1024;
    }
    if (f)
        fclose(f);
    if (s->mem_free > s->mem_total)
        s->mem_free = s->mem_total;
    if (s->mem_available > s->mem_total)
        s->mem_available = s->mem_total;
}

static void read_disk(struct proto_stats *s)
{
    struct statvfs v;
    if (statvfs("/", &v) != 0)
        return;
    uint64_t bs = v.f_frsize ? v.f_frsize : v.f_bsize;
    s->disk_total = (uint64_t)v.f_blocks * bs;
    s->disk_used = (uint64_t)(v.f_blocks - v.f_bfree) * bs;
    s->disk_available = (uint64_t)v.f_bavail * bs;
    if (s->disk_available > s->disk_total)
        s->disk_available = s->disk_total;
}

static void read_load(struct proto_stats *s)
{
    FILE *f = fopen("/proc/loadavg", "re");
    double l1 = 0, l5 = 0, l15 = 0;
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) != 3)
            l1 = l5 = l15 = 0;
        fclose(f);
    }
    s->load1 = (uint32_t)(l1 * 1000 + 0.5);
    s->load5 = (uint32_t)(l5 * 1000 + 0.5);
    s->load15 = (uint32_t)(l15 * 1000 + 0.5);
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (isdigit((unsigned char)de->d_name[0]))
            s->procs++;
    if (d)
        closedir(d);
}

void stats_reply(struct agent *a, uint32_t stream, const uint8_t *p, size_t n)
{
    int rc = proto_decode_stats(p, n);
    if (rc != PROTO_OK) {
        char msg[128];
        snprintf(msg, sizeof(msg), "malformed STATS: %s", proto_strerror(rc));
        session_send_error(a, stream, EINVAL, msg);
        return;
    }
    struct proto_stats s;
    memset(&s, 0, sizeof(s));
    read_cpu(&s);
    read_mem(&s);
    read_disk(&s);
    read_load(&s);
    s.uptime_ns = clock_ns(CLOCK_BOOTTIME);
    session_send(a, proto_encode_stats_reply(&agent_w, stream, &s));
}
