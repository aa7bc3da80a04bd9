/* cocoon_box_stats: one STATS request on a private control connection, answered by
 * the guest agent with STATS_REPLY (docs/protocol.md, "Stats"). cocoon_box_net_stats:
 * the counters the monitor's network stack keeps in the box directory
 * (net.stats.json; its log is read by net_logs.c). */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cocoon_box_stats(cocoon_box *box, cocoon_stats *out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_stats: NULL argument");
    memset(out, 0, sizeof(*out));
    struct lib_xfer *x = lib_xfer_open(box, err);
    if (!x)
        return -1;
    int rc = lib_xfer_send(x, proto_encode_stats(x->w, x->stream));
    struct proto_stats s;
    int have = 0;
    while (rc == 0 && !have) {
        struct proto_header h;
        const uint8_t *p;
        if ((rc = lib_xfer_next(x, &h, &p, 0)) < 0)
            break;
        if (h.type == PROTO_STATS_REPLY) {
            if (proto_decode_stats_reply(p, h.len, &s) != PROTO_OK)
                rc = lib_err(err, COCOON_E_PROTOCOL, "box %s: malformed STATS_REPLY", box->id);
            have = 1;
        } else if (h.type == PROTO_ERROR) {
            lib_xfer_handle(x, &h, p);
            rc = lib_err(err, COCOON_E_STATE, "box %s: stats: %s", box->id, x->errmsg);
        }
    }
    lib_xfer_close(x);
    if (rc < 0)
        return -1;
    out->cpus = s.cpus;
    out->cpu_seconds = (double)s.cpu_ns / 1e9;
    out->mem_total = s.mem_total;
    out->mem_available = s.mem_available;
    out->mem_free = s.mem_free;
    out->mem_used = s.mem_total - s.mem_available;
    out->disk_total = s.disk_total;
    out->disk_used = s.disk_used;
    out->disk_available = s.disk_available;
    out->processes = s.procs;
    out->uptime_seconds = (double)s.uptime_ns / 1e9;
    out->load1 = s.load1 / 1000.0;
    out->load5 = s.load5 / 1000.0;
    out->load15 = s.load15 / 1000.0;
    return 0;
}

static uint64_t num(json_t *o, const char *key)
{
    json_t *x = json_object_get(o, key);
    return json_is_integer(x) && json_integer_value(x) > 0 ? (uint64_t)json_integer_value(x) : 0;
}

int cocoon_box_net_stats(cocoon_box *box, cocoon_net_stats *out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_net_stats: NULL argument");
    memset(out, 0, sizeof(*out));
    char path[LIB_PATH_MAX];
    if (lib_path(path, sizeof(path), "%s/net.stats.json", box->dir) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long");
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) {
        if (access(path, F_OK) < 0 && errno == ENOENT)
            return 0; /* no network (yet) */
        return lib_err(err, COCOON_E_IO, "cannot read %s: %s", path, je.text);
    }
    json_t *d = json_object_get(o, "denied");
    out->present = 1;
    out->denied_total = num(d, "total");
    out->denied_tcp = num(d, "tcp");
    out->denied_udp = num(d, "udp");
    out->denied_icmp = num(d, "icmp");
    out->denied_dns = num(d, "dns");
    out->denied_tls = num(d, "tls");
    out->tcp_connections = num(o, "tcp_connections");
    out->udp_flows = num(o, "udp_flows");
    out->dns_queries = num(o, "dns_queries");
    out->dns_stripped = num(o, "dns_stripped");
    out->frames_in = num(o, "frames_in");
    out->frames_out = num(o, "frames_out");
    out->bytes_in = num(o, "bytes_in");
    out->bytes_out = num(o, "bytes_out");
    out->dropped_malformed = num(o, "dropped_malformed");
    out->dns_truncated = num(o, "dns_truncated");
    out->log_rotations = num(o, "log_rotations");
    out->reassembled = num(o, "reassembled");
    out->dropped_fragment = num(o, "dropped_fragment");
    json_decref(o);
    return 0;
}
