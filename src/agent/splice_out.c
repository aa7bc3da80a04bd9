/* Command output to the host without a copy through the agent: a frame's payload is
 * moved from the command's pipe into a private pipe, its header written to the virtio
 * port, and the private pipe spliced whole into the port, which takes the pages as they
 * are (virtio_console's splice_write). Under TCG every copy in the guest costs as much
 * as the command's own work. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Smaller payloads are copied: one small buffer is cheaper for the port than a header
 * and a scatter list. */
#define SPLICE_MIN (8u * 1024u)

/* The private pipe: it holds nothing but the payload of the frame being sent, because
 * the port's splice_write (Linux 6.1) sizes its scatter list by the pipe's buffer count
 * and the ring walks all of it: a splice that leaves buffers behind hands the ring
 * empty entries. Spliced whole, every entry is filled. */
static int stage[2] = {-1, -1};
/* Cleared for good when splice is refused (a kernel without it) or lost bytes. */
static int splice_usable = 1;

static size_t pipe_bytes(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? (size_t)n : 0;
}

/* Queues the rest of a frame behind what left: first `lost` zeros for bytes the port
 * dropped (so the framing holds), then what the private pipe still holds. */
static int queue_rest(struct agent *a, size_t left, size_t lost)
{
    while (left > 0) {
        uint8_t *buf = agent_w.buf;
        size_t chunk = left < sizeof(agent_w.buf) ? left : sizeof(agent_w.buf);
        ssize_t n;
        if (lost > 0) {
            n = (ssize_t)(chunk < lost ? chunk : lost);
            memset(buf, 0, (size_t)n);
            lost -= (size_t)n;
        } else if ((n = read(stage[0], buf, chunk)) < 0 && errno == EINTR) {
            continue;
        } else if (n <= 0) {
            lost = left; /* cannot happen: the pipe held it; keeps the framing if it does */
            continue;
        }
        if (proto_conn_send(&a->conn, buf, (size_t)n) != 0)
            return -1;
        left -= (size_t)n;
    }
    return 0;
}

long splice_output(struct agent *a, int fd, uint32_t stream, uint16_t type, size_t max)
{
    if (!splice_usable || proto_conn_pending(&a->conn) != 0 || pipe_bytes(fd) < SPLICE_MIN)
        return 0;
    if (stage[0] < 0 && pipe2(stage, O_CLOEXEC | O_NONBLOCK) != 0) {
        splice_usable = 0;
        return 0;
    }
    if (pipe_bytes(stage[0]) != 0) { /* never splice behind leftovers (see stage) */
        splice_usable = 0;
        return 0;
    }
    ssize_t got = splice(fd, NULL, stage[1], NULL, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (got <= 0) {
        if (got < 0 && errno != EAGAIN && errno != EINTR)
            splice_usable = 0;
        return 0;
    }
    size_t n = (size_t)got;
    uint8_t hdr[PROTO_HEADER_SIZE];
    proto_header_encode(hdr, (uint32_t)n, stream, type);
    ssize_t w = write(a->port_fd, hdr, sizeof(hdr));
    if (w < 0)
        w = 0;
    if ((size_t)w < sizeof(hdr) && proto_conn_send(&a->conn, hdr + w, sizeof(hdr) - (size_t)w) != 0)
        return -1;
    size_t left = n, lost = 0;
    while (left > 0 && proto_conn_pending(&a->conn) == 0) {
        ssize_t s = splice(stage[0], NULL, a->port_fd, NULL, left, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (s > 0) {
            left -= (size_t)s;
            continue;
        }
        if (s < 0 && errno == EINTR)
            continue;
        if (s < 0 && errno != EAGAIN)
            splice_usable = 0;
        /* splice_write takes the pages off the pipe before it queues them on the port;
         * when queuing fails they are gone although nothing was reported moved. */
        size_t held = pipe_bytes(stage[0]);
        if (held < left) {
            lost = left - held;
            splice_usable = 0;
            agent_log("splice to the port lost %zu bytes of output; copying from now on", lost);
        }
        break;
    }
    if (left > 0 && queue_rest(a, left, lost) != 0)
        return -1;
    return (long)n;
}
