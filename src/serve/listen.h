/* The server's listeners: a unix socket (mode 0600, refusing to steal one a live server
 * holds) and a TCP address (loopback or not, which decides whether a token may be
 * skipped), each run by its own libmicrohttpd daemon. */
#ifndef COCOON_SERVE_LISTEN_H
#define COCOON_SERVE_LISTEN_H

#include <stddef.h>

struct MHD_Daemon;

struct listener {
    int fd, fd_valid;
    int is_unix, loopback;
    int need_token;            /* read by the request handler (its cls points here) */
    unsigned open_connections; /* counted as libmicrohttpd opens and closes them */
    char *tls_cert, *tls_key;  /* PEM, TCP only */
    struct MHD_Daemon *daemon;
};

int listener_tcp(struct listener *l, const char *host_port, char *err, size_t cap);
int listener_unix(struct listener *l, const char *path, char *err, size_t cap);
int listener_start(struct listener *l, char *err, size_t cap);
void listener_stop(struct listener *l);

#endif
