/* cocoon_box_stats: one STATS request on a private control connection, answered by
 * the guest agent with STATS_REPLY (docs/protocol.md, "Stats"). */
#include "lib/internal.h"

#include <stdlib.h>
#include <string.h>

int cocoon_box_stats(cocoon_box *box, cocoon_stats *out, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !out)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_stats: NULL argument");
    memset(out, 0, sizeof(*out));
    struct lib_xfer *x = malloc(sizeof(*x));
    if (!x)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    if (lib_xfer_open(box, x, err) < 0) {
        free(x);
        return -1;
    }
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
    free(x);
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
