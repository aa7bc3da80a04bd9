/* cocoon-agent: PID 1 of every box. Boots the guest (mounts, switch to the box
 * disk, loopback), finds the host channel, then runs one poll loop over the port,
 * the SIGCHLD signalfd and every command's pipes until the host asks to power off. */
#include "agent/agent.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_POLL (2 + 3 * AGENT_MAX_EXECS)

static uint64_t earliest(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

static int poll_timeout(uint64_t next, uint64_t now)
{
    if (!next)
        return -1;
    if (next <= now)
        return 0;
    uint64_t ms = (next - now + NS_PER_MS - 1) / NS_PER_MS;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static _Noreturn void serve(struct agent *a)
{
    static struct pollfd fds[MAX_POLL];
    static struct poll_slot slots[MAX_POLL];
    for (;;) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        uint64_t next = exec_tick(a, now);
        next = earliest(next, session_tick(a, now));

        size_t n = 0;
        fds[n++] = (struct pollfd){.fd = a->sig_fd, .events = POLLIN};
        int port_idx = -1;
        if (now >= a->port_retry_at) {
            port_idx = (int)n;
            short ev = POLLIN;
            if (proto_conn_pending(&a->conn) > 0)
                ev |= POLLOUT;
            fds[n++] = (struct pollfd){.fd = a->port_fd, .events = ev};
        } else {
            next = earliest(next, a->port_retry_at);
        }
        size_t first = n;
        n += exec_poll_add(a, fds + first, slots, MAX_POLL - first);

        if (poll(fds, n, poll_timeout(next, now)) < 0) {
            if (errno != EINTR) {
                agent_log("poll: %s", strerror(errno));
                usleep(100 * 1000);
            }
            continue;
        }
        now = clock_ns(CLOCK_MONOTONIC);
        if (fds[0].revents)
            session_reap(a);
        if (port_idx >= 0 && fds[port_idx].revents) {
            short re = fds[port_idx].revents;
            if ((re & POLLOUT) && proto_conn_flush(&a->conn) != 0 && !a->send_failed_logged) {
                agent_log("writing to host: %s", strerror(errno));
                a->send_failed_logged = 1;
            }
            if (re & (POLLIN | POLLHUP | POLLERR))
                session_on_readable(a, now);
        }
        exec_poll_handle(a, fds + first, slots, n - first);
    }
}

/* PID 1 inherits the kernel's 1024-fd soft limit; we may hold three per command.
 * Commands get the usual 1024 back (spawn.c). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    spawn_set_base_nofile((unsigned long)rl.rlim_cur);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int main(int argc, char **argv)
{
    static struct agent a;
    a.init_ns = clock_ns(CLOCK_BOOTTIME);
    /* The same binary, exec'd by the host as /proc/1/exe, relays code-interpreter runs. */
    if (getpid() != 1 && argc == 3 && strcmp(argv[1], "code-relay") == 0)
        return agent_code_relay(argv[2]);
    if (getpid() != 1) {
        fprintf(stderr, "cocoon-agent: must run as PID 1 inside a cocoon guest\n");
        return 1;
    }
    umask(022);
    /* Signals arrive through a signalfd; SIGTERM/SIGINT to PID 1 are meaningless
     * here (the host shuts us down with SHUTDOWN). Dead pipes report EPIPE. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    boot_early_mounts();
    struct boot_opts opts;
    boot_parse_cmdline(&opts);
    boot_switch_root(&opts);
    boot_late_mounts();
    net_loopback_up();
    raise_nofile();

    a.port_fd = port_open(10000);
    if (a.port_fd < 0)
        agent_fatal("no virtio port named %s (is virtserialport name=%s attached?)", AGENT_PORT_NAME, AGENT_PORT_NAME);
    a.sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a.sig_fd < 0)
        agent_fatal("signalfd: %s", strerror(errno));
    if (proto_conn_init(&a.conn, a.port_fd, AGENT_OUT_LIMIT) != 0)
        agent_fatal("out of memory");
    a.phase = PHASE_HANDSHAKE;
    session_hello(&a);
    serve(&a);
}
