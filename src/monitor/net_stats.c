/* Writes the network counters to DIR/net.stats.json (see net_stats.h): one JSON
 * object, replaced by rename so a reader never sees half a file. */
#include "monitor/net_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "boxcfg/contract.h"

int net_stats_write(int dirfd, int mode, const struct net_stats *st)
{
    char buf[1024];
    unsigned long long den = st->denied_tcp + st->denied_udp + st->denied_icmp + st->denied_dns + st->denied_sni;
    int n = snprintf(
        buf, sizeof(buf),
        "{\"mode\": \"%s\", \"denied\": {\"total\": %llu, \"tcp\": %llu, \"udp\": %llu, "
        "\"icmp\": %llu, \"dns\": %llu, \"tls\": %llu}, \"tcp_connections\": %llu, "
        "\"udp_flows\": %llu, \"dns_queries\": %llu, \"dns_stripped\": %llu, \"frames_in\": %llu, "
        "\"frames_out\": %llu, \"bytes_in\": %llu, \"bytes_out\": %llu, "
        "\"dropped_malformed\": %llu, \"dropped_fragment\": %llu, \"reassembled\": %llu, "
        "\"dns_truncated\": %llu, \"fragments_out\": %llu, "
        "\"log_rotations\": %llu}\n",
        box_net_mode_name(mode), den, (unsigned long long)st->denied_tcp, (unsigned long long)st->denied_udp,
        (unsigned long long)st->denied_icmp, (unsigned long long)st->denied_dns, (unsigned long long)st->denied_sni,
        (unsigned long long)st->tcp_opened, (unsigned long long)st->udp_flows, (unsigned long long)st->dns_queries,
        (unsigned long long)st->dns_stripped, (unsigned long long)st->frames_in, (unsigned long long)st->frames_out,
        (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out, (unsigned long long)st->dropped_malformed,
        (unsigned long long)st->dropped_fragment, (unsigned long long)st->reassembled,
        (unsigned long long)st->dns_truncated, (unsigned long long)st->fragments_out,
        (unsigned long long)st->log_rotations);
    if (n <= 0 || (size_t)n >= sizeof(buf)) {
        errno = EOVERFLOW;
        return -1;
    }
    int fd = openat(dirfd, "net.stats.json.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, buf, (size_t)n);
    int e = errno;
    close(fd);
    if (w != n || renameat(dirfd, "net.stats.json.tmp", dirfd, "net.stats.json") < 0) {
        if (w == n)
            e = errno;
        else if (w >= 0)
            e = ENOSPC;
        unlinkat(dirfd, "net.stats.json.tmp", 0);
        errno = e;
        return -1;
    }
    return 0;
}
