/* PID 1 of a hostile box: the pseudo filesystems, the network from cocoon.net= (the
 * real agent's net.c), the agent port, the real handshake, then one loop that runs
 * whatever the host opens: `attack NAME ARGS...`, `echo`, `true`, forged `cp` archives. */
#include "hostile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"

static void mounts(void)
{
    mkdir("/dev", 0755);
    if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") != 0)
        hlog("mount /dev: %s", strerror(errno));
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd >= 0) {
        for (int i = 0; i < 3; i++)
            if (fd != i)
                dup2(fd, i);
        if (fd > 2)
            close(fd);
    }
    mkdir("/proc", 0755);
    mkdir("/sys", 0755);
    mkdir("/etc", 0755); /* net.c writes /etc/resolv.conf */
    if (mount("proc", "/proc", "proc", 0, NULL) != 0 || mount("sysfs", "/sys", "sysfs", 0, NULL) != 0)
        hlog("mount /proc or /sys: %s", strerror(errno));
}

static void send_error_exit(uint32_t stream, uint32_t code, int exit_code, const char *msg)
{
    chan_send_w(proto_encode_error(&H.w, stream, code, msg), 0);
    struct proto_exit x = {.code = exit_code};
    chan_send_w(proto_encode_exit(&H.w, stream, &x), 0);
}

static struct hstream *start(uint32_t stream, uint32_t window)
{
    struct hstream *s = stream_open(stream, window);
    if (!s) {
        send_error_exit(stream, EAGAIN, 126, "hostile agent: too many streams");
        return NULL;
    }
    struct proto_started st = {.pid = H.next_pid++, .window = 64u << 10};
    chan_send_w(proto_encode_started(&H.w, stream, &st), 0);
    return s;
}

static attack_fn find_attack(const char *name)
{
    const struct attack *tables[] = {chan_attacks, net_attacks};
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const struct attack *a = tables[t]; a->name; a++)
            if (!strcmp(a->name, name))
                return a->fn;
    return NULL;
}

static void on_exec(const struct hqueued *q)
{
    struct proto_exec ex;
    if (proto_decode_exec(q->payload, q->h.len, &ex) != PROTO_OK) {
        send_error_exit(q->h.stream, EINVAL, 126, "malformed EXEC");
        return;
    }
    const char *cmd = ex.argv[0];
    attack_fn fn = NULL;
    if (!strcmp(cmd, "attack") && ex.argc >= 2 && !(fn = find_attack(ex.argv[1]))) {
        send_error_exit(q->h.stream, ENOENT, 127, "hostile agent: no such attack");
    } else if (fn) {
        struct hstream *s = start(q->h.stream, ex.window);
        hlog("attack %s", ex.argv[1]);
        int code = s ? fn(s, (int)ex.argc - 1, ex.argv + 1) : -1;
        if (s && code >= 0 && s->in_use)
            stream_exit(s, code);
    } else if (!strcmp(cmd, "echo") || !strcmp(cmd, "true")) {
        /* Ordinary work, so tests can see that the box still answers. */
        struct hstream *s = start(q->h.stream, ex.window);
        for (size_t i = 1; s && !strcmp(cmd, "echo") && i < ex.argc; i++)
            stream_printf(s, "%s%s", ex.argv[i], i + 1 < ex.argc ? " " : "\n");
        if (s)
            stream_exit(s, 0);
    } else {
        send_error_exit(q->h.stream, ENOENT, 127, "hostile agent: only `attack NAME`, echo and true run here");
    }
    proto_exec_free(&ex);
}

static void on_file_get(const struct hqueued *q)
{
    struct proto_file *f = malloc(sizeof(*f));
    if (!f || proto_decode_file(q->payload, q->h.len, f) != PROTO_OK) {
        send_error_exit(q->h.stream, EINVAL, 126, "malformed FILE_GET");
        free(f);
        return;
    }
    const char *name = strrchr(f->path, '/') ? strrchr(f->path, '/') + 1 : f->path;
    struct hstream *s = start(q->h.stream, f->window);
    hlog("forged archive %s", name);
    if (s)
        cp_forge(s, name);
    free(f);
}

static void on_file_op(const struct hqueued *q)
{
    struct proto_file_op *f = malloc(sizeof(*f));
    if (!f || proto_decode_file_op(q->payload, q->h.len, f) != PROTO_OK) {
        send_error_exit(q->h.stream, EINVAL, 126, "malformed FILE_OP");
        free(f);
        return;
    }
    const char *name = strrchr(f->path, '/') + 1; /* the path is absolute */
    struct hstream *s = start(q->h.stream, f->window);
    hlog("forged file operation answer %s", name);
    if (s)
        fsop_forge(s, name);
    free(f);
}

static void on_stats(const struct hqueued *q)
{
    struct proto_stats st = {.uptime_ns = 1, .cpus = 1, .mem_total = 1u << 30, .mem_available = 1u << 29};
    chan_send_w(proto_encode_stats_reply(&H.w, q->h.stream, &st), 0);
}

static void handle(const struct hqueued *q)
{
    switch (q->h.type) {
    case PROTO_EXEC: on_exec(q); break;
    case PROTO_FILE_GET: on_file_get(q); break;
    case PROTO_STATS: on_stats(q); break;
    case PROTO_FILE_OP: on_file_op(q); break;
    default: send_error_exit(q->h.stream, EPERM, 126, "the hostile agent takes no files"); break;
    }
}

/* "hold" streams end with EXIT 0 at their time, or with the signal the host sent. */
static int tick_holds(void)
{
    uint64_t now = now_ns(), next = 0;
    for (int i = 0; i < HOSTILE_MAX_STREAMS; i++) {
        struct hstream *s = &H.streams[i];
        if (!s->in_use || !s->hold_until)
            continue;
        if (s->signal || now >= s->hold_until) {
            struct proto_exit x = {.code = 0, .signal = s->signal};
            chan_send_w(proto_encode_exit(&H.w, s->id, &x), 0);
            stream_close(s);
        } else if (!next || s->hold_until < next) {
            next = s->hold_until;
        }
    }
    if (!next)
        return 1000;
    uint64_t ms = (next - now) / 1000000u + 1;
    return ms > 1000 ? 1000 : (int)ms;
}

int main(void)
{
    if (getpid() != 1) {
        fprintf(stderr, "hostile-agent: runs only as PID 1 of a test box\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    mounts();
    net_loopback_up();
    int fd = port_open(10000);
    if (fd < 0)
        agent_fatal("no virtio port named %s", AGENT_PORT_NAME);
    chan_init(fd);
    struct proto_hello hello = {.version_min = PROTO_VERSION_MIN, .version_max = PROTO_VERSION, .boot_ns = 1};
    snprintf(hello.agent_version, sizeof(hello.agent_version), "hostile");
    snprintf(hello.kernel, sizeof(hello.kernel), "hostile");
    chan_send_w(proto_encode_hello(&H.w, &hello), 0);
    for (;;) {
        struct hqueued q;
        while (H.configured && chan_next_queued(&q)) {
            handle(&q);
            free(q.payload);
        }
        chan_pump(tick_holds());
    }
}
