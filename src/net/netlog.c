/* The box's network log (DIR/net.log): one line per denial, plus notes that explain
 * once why something the policy allowed cannot work on this host. The latest lines
 * matter most, so the log is rotated rather than capped: above cfg.log_max_bytes,
 * net.log becomes net.log.1 (replacing the previous one) and a new net.log starts. */
#include "net/internal.h"
#include "util/rotlog.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void net_config_log(struct net_config *c, int log_fd, int dirfd)
{
    c->log_fd = log_fd;
    c->log_dirfd = dirfd;
    const char *e = getenv("COCOON_NET_LOG_MAX");
    char *end;
    unsigned long long v = e && *e ? strtoull(e, &end, 10) : 0;
    if (v && !*end)
        c->log_max_bytes = v < NET_LOG_MIN_BYTES ? NET_LOG_MIN_BYTES : v;
}

/* Renames net.log to net.log.1 and points log_fd at a fresh net.log (dup3, so the
 * caller's fd number stays the one it closes). Logging stops when that fails: a log
 * that cannot rotate must not grow without bound. */
static void rotate(struct net_stack *s)
{
    if (s->cfg.log_dirfd < 0)
        return;
    if (rotlog_rotate(s->cfg.log_dirfd, NET_LOG_NAME, s->cfg.log_fd) < 0) {
        s->log_stopped = 1;
        return;
    }
    s->log_size = 0;
    s->st.log_rotations++;
}

static void log_line(struct net_stack *s, const char *line, size_t n)
{
    if (s->cfg.log_fd < 0 || s->log_stopped)
        return;
    if (!s->log_sized) {
        struct stat st;
        s->log_size = fstat(s->cfg.log_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        s->log_sized = 1;
    }
    uint64_t max = s->cfg.log_max_bytes ? s->cfg.log_max_bytes : NET_LOG_DEFAULT_BYTES;
    if (s->log_size + n > max && s->log_size > 0) {
        rotate(s);
        if (s->log_stopped)
            return;
    }
    ssize_t w = write(s->cfg.log_fd, line, n);
    if (w > 0)
        s->log_size += (uint64_t)w;
}

static void stamp(char *when, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *net_ip_text(uint32_t ip, char *buf)
{
    struct in_addr a = {.s_addr = htonl(ip)};
    inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
    return buf;
}

void net_log_deny(struct net_stack *s, const char *what, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                  const struct verdict *v)
{
    char line[768], a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN], when[32];
    stamp(when, sizeof(when));
    int n = snprintf(line, sizeof(line), "%s deny %s %s:%u -> %s:%u rule=\"%s\"\n", when, what, net_ip_text(src, a),
                     sport, net_ip_text(dst, b), dport, v->why ? v->why : "");
    if (n > 0)
        log_line(s, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void net_log_note(struct net_stack *s, const char *text)
{
    char line[768], when[32];
    stamp(when, sizeof(when));
    int n = snprintf(line, sizeof(line), "%s note %s\n", when, text);
    if (n > 0)
        log_line(s, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void net_secret_violation(struct net_stack *s, const char *what, uint16_t sport, uint32_t dst, uint16_t dport,
                          const char *why)
{
    s->st.denied_secret++;
    int stop = s->cfg.secret_violation == NET_SV_BLOCK_AND_STOP;
    if (s->cfg.secret_violation != NET_SV_BLOCK) {
        char text[360];
        snprintf(text, sizeof(text), "%.300s%s", why, stop && !s->stop_wanted ? "; the box is stopped" : "");
        struct verdict v = {0, -1, text};
        net_log_deny(s, what, s->cfg.guest_ip, sport, dst, dport, &v);
    }
    if (stop && !s->stop_wanted) {
        s->stop_wanted = 1;
        snprintf(s->stop_why, sizeof(s->stop_why), "secret violation (--secret-violation block-and-stop-box): %.300s",
                 why);
    }
}
