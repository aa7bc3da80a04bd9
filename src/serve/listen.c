/* Listening sockets of `cocoon serve` and their libmicrohttpd daemons: one thread per
 * connection (handlers may block on a box), a cap on connections per listener and per
 * client address, and connection upgrade for WebSocket attach. */
#include "serve/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "serve/http.h"
#include "serve/serve.h"

#define LISTEN_BACKLOG 256
#define PER_IP_CONNECTIONS 64
/* Connections past --max-connections that are still taken, to be answered 503 and closed
 * instead of cut without a word; libmicrohttpd refuses any further ones. */
#define OVER_LIMIT_ANSWERED 16

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(a))
            return a->s6_addr[12] == 127;
    }
    return 0;
}

int listener_tcp(struct listener *l, const char *host_port, char *err, size_t cap)
{
    char host[256];
    const char *colon = strrchr(host_port, ':');
    if (!colon || colon == host_port || !colon[1] || (size_t)(colon - host_port) >= sizeof(host)) {
        snprintf(err, cap, "--listen takes HOST:PORT (e.g. 127.0.0.1:8100), not \"%s\"", host_port);
        return -1;
    }
    memcpy(host, host_port, (size_t)(colon - host_port));
    host[colon - host_port] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:8100 */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        snprintf(err, cap, "cannot use the address %s: %s", host_port, gai_strerror(rc));
        return -1;
    }
    l->fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (l->fd < 0 || setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(l->fd, res->ai_addr, res->ai_addrlen) < 0 || listen(l->fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, cap, "cannot listen on %s: %s", host_port, strerror(errno));
        if (l->fd >= 0)
            close(l->fd);
        freeaddrinfo(res);
        return -1;
    }
    l->loopback = is_loopback(res->ai_addr);
    freeaddrinfo(res);
    l->fd_valid = 1;
    return 0;
}

int listener_unix(struct listener *l, const char *path, char *err, size_t cap)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, cap, "the socket path %s is longer than %zu bytes: give a shorter --socket", path,
                 sizeof(sa.sun_path) - 1);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* A socket file left by a server that died may go; one a live server answers on may not. */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
        int live = connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(probe);
        if (live) {
            snprintf(err, cap, "another cocoon serve is listening on %s (stop it first, or give --socket)", path);
            return -1;
        }
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, cap, "%s exists and is not a socket: move it away or give --socket", path);
            return -1;
        }
        unlink(path);
    }
    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    mode_t old = umask(0177); /* the socket is created 0600: no window with a wider mode */
    int rc = l->fd < 0 ? -1 : bind(l->fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || chmod(path, 0600) < 0 || listen(l->fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, cap, "cannot listen on %s: %s", path, strerror(errno));
        if (l->fd >= 0)
            close(l->fd);
        return -1;
    }
    l->is_unix = 1;
    l->fd_valid = 1;
    return 0;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    fprintf(stderr, "cocoon serve: http: ");
    vfprintf(stderr, fmt, ap);
}

/* libmicrohttpd hands paths and query values to the handler as C strings: a %00 would
 * cut "/v1/boxes/dev%00x" to "/v1/boxes/dev", another box. Such a string stays escaped,
 * and its '%' fails every check of the route or the value. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strstr(s, "%00") ? strlen(s) : MHD_http_unescape(s);
}

/* Counts the listener's connections; one that comes when --max-connections are open
 * is marked (its socket context is set) for the request handler to answer 503. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct listener *l = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context =
            __atomic_add_fetch(&l->open_connections, 1, __ATOMIC_SEQ_CST) > serve_cfg.max_connections ? l : NULL;
    else
        __atomic_sub_fetch(&l->open_connections, 1, __ATOMIC_SEQ_CST);
}

int listener_start(struct listener *l, char *err, size_t cap)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_ALLOW_UPGRADE |
                     MHD_USE_ERROR_LOG | MHD_USE_POLL;
    if (l->tls_cert)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls[] = {{MHD_OPTION_HTTPS_MEM_CERT, 0, l->tls_cert},
                                   {MHD_OPTION_HTTPS_MEM_KEY, 0, l->tls_key},
                                   {MHD_OPTION_END, 0, NULL}};
    l->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, serve_access_handler(), l, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
        MHD_OPTION_LISTEN_SOCKET, l->fd, MHD_OPTION_NOTIFY_COMPLETED, serve_completed_handler(), NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SERVE_IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
        serve_cfg.max_connections + OVER_LIMIT_ANSWERED, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        l->is_unix ? 0 : PER_IP_CONNECTIONS, MHD_OPTION_ARRAY, l->tls_cert ? tls : tls + 2, MHD_OPTION_END);
    if (!l->daemon) {
        snprintf(err, cap, "cannot start the HTTP server%s",
                 l->tls_cert ? " (is the TLS certificate and key valid PEM?)" : "");
        return -1;
    }
    return 0;
}

void listener_stop(struct listener *l)
{
    if (l->daemon)
        MHD_quiesce_daemon(l->daemon);
}
