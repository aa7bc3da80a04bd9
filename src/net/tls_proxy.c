/* TLS interception of one TCP connection, over BIO pairs (bounded buffers, no sockets
 * of OpenSSL's own): the guest's ciphertext comes from the connection's ring toward the
 * host, the upstream's from the host socket, and each session's output goes back the
 * same ways. Phases: the upstream handshake (the ClientHello of the guest waits in its
 * ring), then the guest's handshake with a leaf of the box CA, then plaintext relayed
 * both ways; each step stops when the next buffer is full, so a slow side holds the
 * other back instead of growing memory. */
#include "net/tls_proxy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/http_req.h"
#include "net/policy.h"
#include "net/tcp.h"
#include "net/tls_ca.h"

enum tls_phase { TP_UPSTREAM, TP_GUEST, TP_RELAY };

struct tls_conn {
    enum tls_phase phase;
    SSL *srv, *cli;         /* srv: toward the guest (our leaf); cli: toward the upstream */
    BIO *srv_net, *cli_net; /* our ends of the BIO pairs */
    uint8_t up[TLS_UP_BUF]; /* guest plaintext (filtered) not yet taken by the upstream session */
    size_t up_len, up_off;
    uint8_t raw[TLS_PLAIN]; /* guest plaintext not yet through the HTTP filter */
    size_t raw_len, raw_off;
    struct http_filter *http; /* the box has secrets or header rules: requests are parsed */
    struct http_scope scope;
    uint8_t down[TLS_PLAIN]; /* upstream plaintext not yet taken by the guest session */
    size_t down_len, down_off;
    int up_eof;     /* the upstream socket reached its end */
    int up_done;    /* the upstream session ended (close_notify or EOF) */
    int guest_done; /* the guest session ended */
    int cli_shut;   /* our close_notify to the upstream is queued */
    int srv_shut;   /* ... to the guest */
    char name[256];
    char why[320];
};

/* 1 when name is one of a secret's hosts or has a header rule: its requests are parsed
 * (http_req.c); other intercepted hosts' streams are only scanned for placeholders. */
static int tls_filtered(const struct net_stack *s, const char *name)
{
    for (int i = 0; i < s->cfg.nsecrets; i++)
        for (int k = 0; k < s->cfg.secrets[i].nhosts; k++)
            if (policy_domain_match(s->cfg.secrets[i].hosts[k], name))
                return 1;
    for (int i = 0; i < s->cfg.nheader_rules; i++)
        if (policy_domain_match(s->cfg.header_rules[i].host, name))
            return 1;
    return 0;
}

int tls_wants(const struct net_stack *s, const char *name)
{
    if (!s->tls)
        return 0;
    for (int i = 0; i < s->cfg.ntls_bypass; i++)
        if (policy_domain_match(s->cfg.tls_bypass[i], name))
            return 0;
    if (s->cfg.nsecrets)
        return 1; /* a placeholder must not leave unseen: every other host is intercepted */
    for (int i = 0; i < s->cfg.ntls_intercept; i++)
        if (policy_domain_match(s->cfg.tls_intercept[i], name))
            return 1;
    return tls_filtered(s, name); /* hosts with header rules */
}

int net_stack_secret_value(struct net_stack *s, const char *name, const char *value, size_t len)
{
    char why[160];
    if (!net_secret_value_ok(value, len, why, sizeof(why)))
        return -1;
    for (int i = 0; i < s->cfg.nsecrets; i++) {
        if (strcmp(s->cfg.secrets[i].name, name))
            continue;
        char *v = malloc(len + 1);
        if (!v)
            return -1;
        memcpy(v, value, len);
        v[len] = 0;
        if (s->secret_values[i]) {
            OPENSSL_cleanse(s->secret_values[i], strlen(s->secret_values[i]));
            free(s->secret_values[i]);
        }
        s->secret_values[i] = v;
        return 0;
    }
    return -1;
}

int net_stack_tls_setup(struct net_stack *s, int dirfd, const char *box_id, char *err, size_t cap)
{
    if (!s->cfg.ntls_intercept && !s->cfg.nsecrets && !s->cfg.nheader_rules)
        return 0;
    s->tls = tls_box_new(dirfd, box_id, s->cfg.tls_extra_ca, err, cap);
    return s->tls ? 0 : -1;
}

const char *net_stack_tls_ca_pem(const struct net_stack *s) { return s->tls ? tls_box_ca_pem(s->tls) : NULL; }

void net_stack_tls_free(struct net_stack *s)
{
    for (int i = 0; i < NET_MAX_SECRETS; i++) {
        if (s->secret_values[i]) {
            OPENSSL_cleanse(s->secret_values[i], strlen(s->secret_values[i]));
            free(s->secret_values[i]);
            s->secret_values[i] = NULL;
        }
    }
    tls_box_free(s->tls);
    s->tls = NULL;
}

static SSL *with_pair(SSL *ssl, BIO **net)
{
    BIO *inner = NULL;
    if (!ssl || BIO_new_bio_pair(&inner, TLS_BIO_BUF, net, TLS_BIO_BUF) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_bio(ssl, inner, inner);
    return ssl;
}

struct tls_conn *tls_conn_new(struct net_stack *s, struct tcp_conn *c, const char *name, uint64_t now)
{
    if (s->ntls >= TLS_MAX_CONNS || net_mem_charge(s, TLS_CONN_CHARGE, 0) < 0) {
        net_log_note(s, "TLS interception: too many intercepted connections at once (a connection was reset)");
        return NULL;
    }
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (t) {
        snprintf(t->name, sizeof(t->name), "%s", name);
        t->cli = with_pair(tls_box_client(s->tls, name), &t->cli_net);
        if (s->cfg.nsecrets || s->cfg.nheader_rules) {
            t->http = malloc(sizeof(*t->http));
            if (t->http)
                http_filter_init(t->http, !tls_filtered(s, name));
            t->scope.sni = t->name;
            t->scope.pinned = policy_is_pinned(&s->pol, name, c->rip, now);
            t->scope.cfg = &s->cfg;
            t->scope.values = (const char *const *)s->secret_values;
        }
    }
    if (!t || !t->cli || ((s->cfg.nsecrets || s->cfg.nheader_rules) && !t->http)) {
        if (t) {
            SSL_free(t->cli);
            BIO_free(t->cli_net);
            free(t->http);
        }
        free(t);
        net_mem_release(s, TLS_CONN_CHARGE);
        return NULL;
    }
    s->ntls++;
    return t;
}

void tls_conn_free(struct net_stack *s, struct tls_conn *t)
{
    if (!t)
        return;
    SSL_free(t->srv);
    SSL_free(t->cli);
    BIO_free(t->srv_net);
    BIO_free(t->cli_net);
    if (t->http) {
        http_filter_free(t->http);
        OPENSSL_cleanse(t->http, sizeof(*t->http));
        free(t->http);
    }
    OPENSSL_cleanse(t, sizeof(*t)); /* plaintext, with the secrets put into it */
    free(t);
    s->ntls--;
    net_mem_release(s, TLS_CONN_CHARGE);
}

/* Logs "WHAT NAME: DETAIL" (what NULL: DETAIL) as the denial of c; returns -1 (c is to
 * be reset). */
static int fail(struct net_stack *s, struct tcp_conn *c, const char *what, const char *detail)
{
    struct tls_conn *t = c->tls;
    if (what)
        snprintf(t->why, sizeof(t->why), "%s %s: %s", what, t->name, detail);
    else
        snprintf(t->why, sizeof(t->why), "%s", detail);
    struct verdict v = {0, -1, t->why};
    net_log_deny(s, "tls", s->cfg.guest_ip, c->gport, c->rip, c->rport, &v);
    s->st.denied_sni++;
    ERR_clear_error();
    return -1;
}

static const char *ssl_reason(void)
{
    static char buf[200];
    unsigned long e = ERR_peek_last_error();
    if (!e)
        return "the peer closed the connection";
    ERR_error_string_n(e, buf, sizeof(buf));
    return buf;
}

/* A handshake step of ssl: 1 done, 0 waiting for bytes, -1 failed. */
static int handshake(SSL *ssl)
{
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(ssl, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* The guest half starts once the upstream is verified: its ClientHello waits in the
 * ring until then. */
static int start_guest(struct net_stack *s, struct tcp_conn *c)
{
    struct tls_conn *t = c->tls;
    t->srv = with_pair(tls_box_server(s->tls, t->name), &t->srv_net);
    if (!t->srv)
        return fail(s, c, "TLS interception of", "out of memory");
    t->phase = TP_GUEST;
    return 0;
}

/* Plaintext from `from` into buf (when empty), then from buf into `to`. *done: from's
 * session ended. Returns 1 on progress, 0 without, -1 on a failure. */
static int relay(SSL *from, SSL *to, uint8_t *buf, size_t *len, size_t *off, int *done)
{
    int progress = 0;
    if (!*len && !*done) {
        int r = SSL_read(from, buf, TLS_PLAIN);
        if (r > 0) {
            *len = (size_t)r;
            *off = 0;
            progress = 1;
        } else {
            int e = SSL_get_error(from, r);
            if (e == SSL_ERROR_ZERO_RETURN) {
                *done = 1;
                progress = 1;
            } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                return -1;
            }
        }
    }
    if (*len) {
        int w = SSL_write(to, buf + *off, (int)(*len - *off));
        if (w > 0) {
            *off += (size_t)w;
            if (*off == *len)
                *len = *off = 0;
            progress = 1;
        } else {
            int e = SSL_get_error(to, w);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return -1;
        }
    }
    return progress;
}

/* The guest's plaintext through the HTTP filter (secrets, header rules) on its way to
 * the upstream session. Same results as relay. */
static int relay_filtered(struct net_stack *s, struct tcp_conn *c)
{
    struct tls_conn *t = c->tls;
    int progress = 0;
    if (t->raw_off == t->raw_len && !t->guest_done) {
        t->raw_off = t->raw_len = 0;
        int r = SSL_read(t->srv, t->raw, TLS_PLAIN);
        if (r > 0) {
            t->raw_len = (size_t)r;
            progress = 1;
        } else {
            int e = SSL_get_error(t->srv, r);
            if (e == SSL_ERROR_ZERO_RETURN) {
                t->guest_done = 1;
                progress = 1;
            } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                return -1;
            }
        }
    }
    if (t->up_off == t->up_len) {
        t->up_off = t->up_len = 0;
        size_t used = 0, before = t->up_len;
        if (http_filter_run(t->http, &t->scope, t->raw + t->raw_off, t->raw_len - t->raw_off, &used, t->up,
                            sizeof(t->up), &t->up_len) < 0) {
            if (!t->http->violation) {
                s->st.denied_secret++; /* a request the filter cannot read safely */
                return fail(s, c, NULL, t->http->why);
            }
            net_secret_violation(s, "tls", c->gport, c->rip, c->rport, t->http->why);
            ERR_clear_error();
            return -1;
        }
        t->raw_off += used;
        progress |= used > 0 || t->up_len > before;
    }
    if (t->up_off < t->up_len) {
        int w = SSL_write(t->cli, t->up + t->up_off, (int)(t->up_len - t->up_off));
        if (w > 0) {
            t->up_off += (size_t)w;
            progress = 1;
        } else {
            int e = SSL_get_error(t->cli, w);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return -1;
        }
    }
    return progress;
}

int tls_conn_pump(struct net_stack *s, struct tcp_conn *c, int readable)
{
    struct tls_conn *t = c->tls;
    for (int round = 0; round < 256; round++) {
        int progress = 0;
        char *p;
        /* the guest's ciphertext into its session */
        if (t->phase != TP_UPSTREAM && c->to_host.len) {
            int room = BIO_nwrite0(t->srv_net, &p);
            if (room > 0) {
                size_t n = c->to_host.len < (size_t)room ? c->to_host.len : (size_t)room;
                ring_copy_out(&c->to_host, 0, (uint8_t *)p, n);
                BIO_nwrite(t->srv_net, &p, (int)n);
                ring_drop(&c->to_host, n);
                progress = 1;
            }
        }
        /* the upstream's ciphertext into its session */
        if (readable && !t->up_eof && c->fd >= 0) {
            int room = BIO_nwrite0(t->cli_net, &p);
            if (room > 0) {
                ssize_t n = read(c->fd, p, (size_t)room);
                if (n > 0) {
                    BIO_nwrite(t->cli_net, &p, (int)n);
                    progress = 1;
                } else if (n == 0) {
                    t->up_eof = 1;
                    progress = 1;
                } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    readable = 0;
                } else if (errno != EINTR) {
                    return t->phase == TP_RELAY ? -1 : fail(s, c, "TLS to", strerror(errno));
                }
            }
        }
        if (t->phase == TP_UPSTREAM) {
            int r = handshake(t->cli);
            if (r < 0) {
                long vr = SSL_get_verify_result(t->cli);
                if (vr != X509_V_OK)
                    return fail(s, c, "upstream certificate not trusted for", X509_verify_cert_error_string(vr));
                return fail(s, c, "TLS handshake failed with", ssl_reason());
            }
            if (r == 0 && t->up_eof)
                return fail(s, c, "TLS handshake failed with", "the upstream closed the connection");
            if (r == 1) {
                if (start_guest(s, c) < 0)
                    return -1;
                progress = 1;
            }
        }
        if (t->phase == TP_GUEST) {
            int r = handshake(t->srv);
            if (r < 0)
                return fail(s, c, "guest TLS handshake failed for", ssl_reason());
            if (r == 1) {
                t->phase = TP_RELAY;
                progress = 1;
            }
        }
        if (t->phase == TP_RELAY) {
            int r =
                t->http ? relay_filtered(s, c) : relay(t->srv, t->cli, t->up, &t->up_len, &t->up_off, &t->guest_done);
            if (r < 0)
                return -1;
            progress |= r;
            r = relay(t->cli, t->srv, t->down, &t->down_len, &t->down_off, &t->up_done);
            if (r < 0) {
                /* an upstream that just closes its socket without close_notify ends too */
                if (!t->up_eof)
                    return -1;
                ERR_clear_error();
                t->up_done = 1;
            }
            progress |= r > 0;
            if (t->up_eof && !t->up_done && !t->down_len && !BIO_ctrl_pending(t->cli_net) && !SSL_pending(t->cli)) {
                t->up_done = 1; /* EOF with nothing left to decrypt */
                progress = 1;
            }
            /* the guest finished (FIN, or close_notify): the upstream hears it */
            if (!t->cli_shut && t->up_off == t->up_len && t->raw_off == t->raw_len &&
                (t->guest_done || (c->guest_fin && !c->to_host.len))) {
                SSL_shutdown(t->cli);
                t->cli_shut = 1;
                progress = 1;
            }
            if (!t->srv_shut && t->up_done && !t->down_len) {
                SSL_shutdown(t->srv);
                t->srv_shut = 1;
                progress = 1;
            }
        }
        /* ciphertext out: to the upstream socket, to the guest's ring */
        if (c->fd >= 0 && !c->connecting) {
            int n = BIO_nread0(t->cli_net, &p);
            if (n > 0) {
                ssize_t w = send(c->fd, p, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0) {
                    BIO_nread(t->cli_net, &p, (int)w);
                    progress = 1;
                } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    return t->phase == TP_RELAY ? -1 : fail(s, c, "TLS to", strerror(errno));
                }
            }
        }
        if (t->srv_net && !c->host_eof) {
            int n = BIO_nread0(t->srv_net, &p);
            if (n > 0) {
                if (c->to_guest.len + (size_t)n > c->to_guest.cap && c->to_guest.len >= c->to_guest.cap / 2)
                    ring_grow(s, &c->to_guest);
                size_t room = c->to_guest.cap - c->to_guest.len;
                size_t k = (size_t)n < room ? (size_t)n : room;
                if (k) {
                    ring_append(&c->to_guest, (const uint8_t *)p, k);
                    BIO_nread(t->srv_net, &p, (int)k);
                    progress = 1;
                }
            }
        }
        if (t->srv_shut && !c->host_eof && !BIO_ctrl_pending(t->srv_net)) {
            c->host_eof = 1; /* our FIN follows the guest's close_notify */
            progress = 1;
        }
        if (!progress)
            break;
    }
    return 0;
}

uint32_t tls_conn_events(const struct tcp_conn *c)
{
    const struct tls_conn *t = c->tls;
    uint32_t ev = 0;
    if (!t->up_eof && BIO_ctrl_get_write_guarantee(t->cli_net) > 0)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (BIO_ctrl_pending(t->cli_net))
        ev |= EPOLLOUT;
    return ev;
}

int tls_conn_up_idle(const struct tcp_conn *c)
{
    const struct tls_conn *t = c->tls;
    return t->cli_shut && t->up_off == t->up_len && !BIO_ctrl_pending(t->cli_net);
}
