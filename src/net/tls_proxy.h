/* One intercepted TLS connection (tcp.c hands it over once the ClientHello named a host
 * to intercept): the guest's TLS ends here with a leaf of the box CA, and a new TLS
 * session, verified against the host's trust store, carries the plaintext upstream.
 * The upstream handshake completes (or fails, and the guest's connection with it)
 * before the guest gets its ServerHello: a failed verification never downgrades. */
#ifndef COCOON_NET_TLS_PROXY_H
#define COCOON_NET_TLS_PROXY_H

#include <stdint.h>

struct net_stack;
struct tcp_conn;
struct tls_conn;

/* Each intercepted connection holds at most this much of its own, charged to the
 * stack's memory budget: two BIO pairs of 2 x TLS_BIO_BUF, two plaintext buffers of
 * TLS_PLAIN, TLS_UP_BUF of filtered requests, the HTTP filter when the box has secrets
 * or header rules, and OpenSSL's own record buffers (released while idle). */
#define TLS_BIO_BUF (20u * 1024)
#define TLS_PLAIN (16u * 1024)
#define TLS_UP_BUF (32u * 1024)
#define TLS_CONN_CHARGE (384u * 1024) /* with the HTTP filter (http_req.h): about 80 KiB */
#define TLS_MAX_CONNS 64              /* intercepted connections at once per box (more: reset, noted) */

/* 1 when the box intercepts TLS toward name (its --tls-intercept hosts). */
int tls_wants(const struct net_stack *s, const char *name);
/* Starts interception of c toward name; NULL (noted in net.log) over the cap or budget. */
struct tls_conn *tls_conn_new(struct net_stack *s, struct tcp_conn *c, const char *name, uint64_t now);
void tls_conn_free(struct net_stack *s, struct tls_conn *t);
/* Moves whatever can move: the guest's ciphertext from c->to_host, the upstream's from
 * c->fd (read only when readable), plaintext between the two sessions, ciphertext out
 * to c->fd and c->to_guest. Sets c->host_eof once the upstream's end reached the guest
 * side. -1: the connection must be reset (the reason is in net.log). */
int tls_conn_pump(struct net_stack *s, struct tcp_conn *c, int readable);
/* The epoll events c->fd needs now (EPOLLIN and/or EPOLLOUT). */
uint32_t tls_conn_events(const struct tcp_conn *c);
/* Nothing of the guest's is left to send upstream (its FIN may follow). */
int tls_conn_up_idle(const struct tcp_conn *c);

#endif
