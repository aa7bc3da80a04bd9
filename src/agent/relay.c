/* `cocoon-agent code-relay SOCKET`: the guest end of one code-interpreter run. The host
 * execs the running agent's own binary (/proc/1/exe) in this mode, so a run starts no
 * interpreter: it copies the request from stdin to the context's unix socket and the
 * context's NDJSON events from the socket to stdout, as they come. The socket stays open
 * after stdin ends: the context takes its closing as "interrupt the run". */
#include "agent/agent.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The context is not there (never started, or died): the host starts it and retries. */
#define RELAY_NO_CONTEXT 69

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int agent_code_relay(const char *sock_path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock_path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "code-relay: socket path too long\n");
        return 2;
    }
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "code-relay: %s: %s\n", sock_path, strerror(errno));
        return RELAY_NO_CONTEXT;
    }
    static char buf[65536];
    int in_open = 1;
    for (;;) {
        struct pollfd fds[2] = {{.fd = s, .events = POLLIN}, {.fd = in_open ? 0 : -1, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (fds[1].revents) {
            ssize_t n = read(0, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                in_open = 0;
            else if (write_all(s, buf, (size_t)n) != 0)
                in_open = 0;
        }
        if (fds[0].revents) {
            ssize_t n = read(s, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return 0;
            if (write_all(1, buf, (size_t)n) != 0)
                return 1;
        }
    }
}
