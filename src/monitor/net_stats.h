/* DIR/net.stats.json: the network stack's counters as the box's stats readers
 * (cocoon stats, libcocoon) expect them, written by whichever process runs the stack
 * (the monitor for the qemu backend, the kvm child for the kvm backend). */
#ifndef COCOON_MONITOR_NET_STATS_H
#define COCOON_MONITOR_NET_STATS_H

#include "net/net.h"

/* Rewrites dirfd/net.stats.json atomically (a temporary file renamed over it). -1 with
 * errno set when it could not be written; the old file then stays. */
int net_stats_write(int dirfd, int mode, const struct net_stats *st);

#endif
