/* `cocoon stats BOX [--json]`: CPU, memory, disk, processes, uptime and load of a
 * running box, as the guest agent sees them (cocoon_box_stats). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char stats_usage[] = "usage: cocoon stats [--json] BOX\n"
                                  "\n"
                                  "Shows a running box's CPU time, memory, root disk, process count,\n"
                                  "uptime and load average (--json: machine-readable, sizes in bytes),\n"
                                  "and its network counters (denied connections and queries).\n";

static void human(char *out, size_t cap, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int show_stats(cocoon_box *box, int i, void *json_flag)
{
    cocoon_error err;
    cocoon_stats s;
    cocoon_net_stats ns;
    if (cocoon_box_stats(box, &s, &err) < 0 || cocoon_box_net_stats(box, &ns, &err) < 0)
        return cli_fail(&err);
    if (*(const int *)json_flag) {
        char net[1024] = "null";
        if (ns.present)
            snprintf(net, sizeof(net),
                     "{\"denied\": {\"total\": %" PRIu64 ", \"tcp\": %" PRIu64 ", \"udp\": %" PRIu64
                     ", \"icmp\": %" PRIu64 ", \"dns\": %" PRIu64 ", \"tls\": %" PRIu64
                     "}, \"tcp_connections\": %" PRIu64 ", \"udp_flows\": %" PRIu64 ", \"dns_queries\": %" PRIu64
                     ", \"dns_stripped\": %" PRIu64 ", \"bytes_in\": %" PRIu64 ", \"bytes_out\": %" PRIu64
                     ", \"dropped_malformed\": %" PRIu64 ", \"dns_truncated\": %" PRIu64 ", \"log_rotations\": %" PRIu64
                     ", \"reassembled\": %" PRIu64 ", \"dropped_fragment\": %" PRIu64 "}",
                     ns.denied_total, ns.denied_tcp, ns.denied_udp, ns.denied_icmp, ns.denied_dns, ns.denied_tls,
                     ns.tcp_connections, ns.udp_flows, ns.dns_queries, ns.dns_stripped, ns.bytes_in, ns.bytes_out,
                     ns.dropped_malformed, ns.dns_truncated, ns.log_rotations, ns.reassembled, ns.dropped_fragment);
        printf("{\"box\": \"%s\", \"cpu\": {\"cpus\": %u, \"usage_seconds\": %.3f}, "
               "\"memory\": {\"total\": %" PRIu64 ", \"used\": %" PRIu64 ", \"available\": %" PRIu64
               ", \"free\": %" PRIu64 "}, "
               "\"disk\": {\"total\": %" PRIu64 ", \"used\": %" PRIu64 ", \"available\": %" PRIu64 "}, "
               "\"processes\": %u, \"uptime_seconds\": %.3f, \"load\": [%.2f, %.2f, %.2f], \"net\": %s}\n",
               cocoon_box_id(box), s.cpus, s.cpu_seconds, s.mem_total, s.mem_used, s.mem_available, s.mem_free,
               s.disk_total, s.disk_used, s.disk_available, s.processes, s.uptime_seconds, s.load1, s.load5, s.load15,
               net);
    } else {
        char a[32], b[32], t[32];
        printf("box        %s\n", cocoon_box_id(box));
        printf("cpu        %u CPU%s, %.2f s busy\n", s.cpus, s.cpus == 1 ? "" : "s", s.cpu_seconds);
        human(a, sizeof(a), s.mem_used);
        human(t, sizeof(t), s.mem_total);
        human(b, sizeof(b), s.mem_available);
        printf("memory     %s used of %s (%s available)\n", a, t, b);
        human(a, sizeof(a), s.disk_used);
        human(t, sizeof(t), s.disk_total);
        human(b, sizeof(b), s.disk_available);
        printf("disk       %s used of %s (%s available)\n", a, t, b);
        printf("processes  %u\n", s.processes);
        printf("uptime     %.1f s\n", s.uptime_seconds);
        printf("load       %.2f %.2f %.2f\n", s.load1, s.load5, s.load15);
        if (ns.present) {
            human(a, sizeof(a), ns.bytes_in);
            human(b, sizeof(b), ns.bytes_out);
            printf("net        %" PRIu64 " TCP connection(s), %" PRIu64 " DNS queries, %s sent, %s received\n",
                   ns.tcp_connections, ns.dns_queries, a, b);
            printf("denied     %" PRIu64 " (tcp %" PRIu64 ", udp %" PRIu64 ", icmp %" PRIu64 ", dns %" PRIu64
                   ", tls %" PRIu64 "): see `cocoon logs --net`\n",
                   ns.denied_total, ns.denied_tcp, ns.denied_udp, ns.denied_icmp, ns.denied_dns, ns.denied_tls);
        } else {
            printf("net        none\n");
        }
    }
    return 0;
}

int cmd_stats(int argc, char **argv)
{
    static const struct option lo[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int json = 0, c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == 'j') {
            json = 1;
        } else if (c == 'h') {
            fputs(stats_usage, stdout);
            return 0;
        } else {
            cli_error("stats: unknown option %s (see `cocoon stats --help`)", argv[optind - 1]);
            return 2;
        }
    }
    if (argc - optind != 1) {
        fputs(stats_usage, stderr);
        return 2;
    }
    return cli_each_box(argv + optind, 1, show_stats, &json);
}
