/* The box's TLS interception authority: its CA (created once per box, key on the host
 * only), the leaf certificates it signs per server name (cached, bounded), and the
 * OpenSSL contexts of both halves of an intercepted connection. Everything that reads
 * files happens in tls_box_new, before the monitor's jail hides them. */
#ifndef COCOON_NET_TLS_CA_H
#define COCOON_NET_TLS_CA_H

#include <stddef.h>
#include <stdint.h>

#define TLS_CA_KEY_FILE "tls-ca.key"  /* 0600, in the box directory: never sent to the guest */
#define TLS_CA_CERT_FILE "tls-ca.pem" /* the certificate the guest trusts */
#define TLS_LEAF_CACHE 64             /* leaf certificates kept (least recently used replaced) */
#define TLS_CA_PEM_MAX 4096           /* fits one protocol string */

struct tls_box;
typedef struct ssl_st SSL;

/* Loads the box CA from dirfd (creating it, EC P-256, when absent), the host's CA store
 * (and extra_ca, a PEM file, when not NULL/"") for verifying upstreams, and makes the
 * contexts. box_id names the CA. NULL with a message in err. */
struct tls_box *tls_box_new(int dirfd, const char *box_id, const char *extra_ca, char *err, size_t cap);
void tls_box_free(struct tls_box *b);
/* The CA certificate as PEM (NUL-terminated, at most TLS_CA_PEM_MAX bytes). */
const char *tls_box_ca_pem(const struct tls_box *b);
/* A server-side SSL for the guest half, presenting a leaf for name (lowercase host
 * name) signed by the box CA; NULL when out of memory. */
SSL *tls_box_server(struct tls_box *b, const char *name);
/* A client-side SSL for the upstream half: SNI name, the certificate checked against
 * the trust store and the name, ALPN http/1.1. NULL when out of memory. */
SSL *tls_box_client(struct tls_box *b, const char *name);

#endif
