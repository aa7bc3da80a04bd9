/* The box CA and its leaves (OpenSSL 3). One EC P-256 key signs every leaf of a box:
 * the guest can only ever see certificates, never a private key, so one key for all
 * leaves costs nothing in isolation and saves a key generation per host name. */
#include "net/tls_ca.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct leaf {
    char name[256];
    X509 *cert;
    uint64_t used;
};

struct tls_box {
    EVP_PKEY *ca_key, *leaf_key;
    X509 *ca;
    SSL_CTX *srv_ctx, *cli_ctx;
    char ca_pem[TLS_CA_PEM_MAX + 1];
    struct leaf leaves[TLS_LEAF_CACHE];
    uint64_t tick;
};

static void ssl_err(char *err, size_t cap, const char *what)
{
    char e[256];
    unsigned long code = ERR_get_error();
    ERR_error_string_n(code, e, sizeof(e));
    snprintf(err, cap, "%s: %s", what, code ? e : "unknown OpenSSL error");
    ERR_clear_error();
}

static EVP_PKEY *new_key(void) { return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); }

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ex)
        return -1;
    int ok = X509_add_ext(cert, ex, -1);
    X509_EXTENSION_free(ex);
    return ok ? 0 : -1;
}

static int set_serial(X509 *cert)
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return -1;
    r[0] &= 0x7f; /* positive */
    BIGNUM *bn = BN_bin2bn(r, sizeof(r), NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
    BN_free(bn);
    return ok ? 0 : -1;
}

/* A certificate for subject cn with key pub, signed by signer (self-signed when
 * issuer is NULL), valid from an hour ago for days. */
static X509 *make_cert(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *signer, long days, int ca,
                       const char *san)
{
    X509 *c = X509_new();
    if (!c)
        return NULL;
    X509_NAME *subj = X509_NAME_new();
    int ok = subj && X509_set_version(c, 2) && set_serial(c) == 0 && X509_gmtime_adj(X509_getm_notBefore(c), -3600) &&
             X509_gmtime_adj(X509_getm_notAfter(c), days * 86400) &&
             X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) &&
             X509_set_subject_name(c, subj) && X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : subj) &&
             X509_set_pubkey(c, pub);
    X509_NAME_free(subj);
    X509 *iss = issuer ? issuer : c;
    if (ok && ca)
        ok = add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") == 0 &&
             add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
             add_ext(c, iss, NID_subject_key_identifier, "hash") == 0;
    if (ok && !ca)
        ok = add_ext(c, iss, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
             add_ext(c, iss, NID_key_usage, "critical,digitalSignature") == 0 &&
             add_ext(c, iss, NID_ext_key_usage, "serverAuth") == 0 &&
             add_ext(c, iss, NID_subject_key_identifier, "hash") == 0 &&
             add_ext(c, iss, NID_authority_key_identifier, "keyid:always") == 0 &&
             add_ext(c, iss, NID_subject_alt_name, san) == 0;
    if (!ok || !X509_sign(c, signer, EVP_sha256())) {
        X509_free(c);
        return NULL;
    }
    return c;
}

/* Writes the new CA: the key first (0600, exclusive), then the certificate. */
static int create_ca(int dirfd, const char *box_id, char *err, size_t cap)
{
    char cn[128];
    snprintf(cn, sizeof(cn), "cocoon box %.64s interception CA", box_id && *box_id ? box_id : "?");
    EVP_PKEY *k = new_key();
    X509 *c = k ? make_cert(cn, k, NULL, k, 3650, 1, NULL) : NULL;
    if (!c) {
        ssl_err(err, cap, "cannot create the box's TLS CA");
        EVP_PKEY_free(k);
        return -1;
    }
    int rc = -1;
    FILE *kf = NULL, *cf = NULL;
    int kfd = openat(dirfd, TLS_CA_KEY_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int cfd = openat(dirfd, TLS_CA_CERT_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (kfd >= 0)
        fchmod(kfd, 0600);
    if (kfd < 0 || cfd < 0 || !(kf = fdopen(kfd, "w")) || !(cf = fdopen(cfd, "w"))) {
        snprintf(err, cap, "cannot write the box's TLS CA: %s", strerror(errno));
        goto out;
    }
    kfd = cfd = -1;
    if (!PEM_write_PrivateKey(kf, k, NULL, NULL, 0, NULL, NULL) || !PEM_write_X509(cf, c) || fflush(kf) || fflush(cf) ||
        fsync(fileno(kf)) || fsync(fileno(cf))) {
        snprintf(err, cap, "cannot write the box's TLS CA: %s", strerror(errno));
        goto out;
    }
    if (renameat(dirfd, TLS_CA_CERT_FILE ".tmp", dirfd, TLS_CA_CERT_FILE) < 0) {
        snprintf(err, cap, "cannot write the box's TLS CA: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (kf)
        fclose(kf);
    if (cf)
        fclose(cf);
    if (kfd >= 0)
        close(kfd);
    if (cfd >= 0)
        close(cfd);
    X509_free(c);
    EVP_PKEY_free(k);
    return rc;
}

static FILE *open_in(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (fd >= 0 && !f)
        close(fd);
    return f;
}

static int load_ca(struct tls_box *b, int dirfd, char *err, size_t cap)
{
    FILE *kf = open_in(dirfd, TLS_CA_KEY_FILE), *cf = open_in(dirfd, TLS_CA_CERT_FILE);
    if (kf)
        b->ca_key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
    if (cf)
        b->ca = PEM_read_X509(cf, NULL, NULL, NULL);
    if (kf)
        fclose(kf);
    if (cf)
        fclose(cf);
    if (!b->ca_key || !b->ca || X509_check_private_key(b->ca, b->ca_key) != 1) {
        ssl_err(err, cap, "the box's TLS CA (" TLS_CA_KEY_FILE ", " TLS_CA_CERT_FILE ") cannot be read");
        return -1;
    }
    BIO *m = BIO_new(BIO_s_mem());
    char *p = NULL;
    long n = m && PEM_write_bio_X509(m, b->ca) ? BIO_get_mem_data(m, &p) : 0;
    if (n <= 0 || n > TLS_CA_PEM_MAX) {
        BIO_free(m);
        snprintf(err, cap, "the box's TLS CA certificate is too large");
        return -1;
    }
    memcpy(b->ca_pem, p, (size_t)n);
    b->ca_pem[n] = 0;
    BIO_free(m);
    return 0;
}

/* Every intercepted connection speaks HTTP/1.1 to the guest: the HTTP filter of the
 * intercepted stream understands no other protocol (docs/network.md). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int make_contexts(struct tls_box *b, const char *extra_ca, char *err, size_t cap)
{
    b->srv_ctx = SSL_CTX_new(TLS_server_method());
    b->cli_ctx = SSL_CTX_new(TLS_client_method());
    if (!b->srv_ctx || !b->cli_ctx) {
        ssl_err(err, cap, "cannot create TLS contexts");
        return -1;
    }
    long modes = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS;
    SSL_CTX_set_mode(b->srv_ctx, modes);
    SSL_CTX_set_mode(b->cli_ctx, modes);
    SSL_CTX_set_min_proto_version(b->srv_ctx, TLS1_2_VERSION);
    SSL_CTX_set_min_proto_version(b->cli_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(b->srv_ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_options(b->cli_ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(b->srv_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(b->srv_ctx, alpn_select, NULL);
    SSL_CTX_set_verify(b->cli_ctx, SSL_VERIFY_PEER, NULL);
    /* Loaded now, eagerly: the jail hides the host's files afterwards. */
    const char *store = getenv(X509_get_default_cert_file_env());
    if (!store || !*store)
        store = X509_get_default_cert_file();
    if (SSL_CTX_load_verify_file(b->cli_ctx, store) != 1)
        ERR_clear_error(); /* a host without a CA bundle: only extra_ca is trusted */
    if (extra_ca && *extra_ca && SSL_CTX_load_verify_file(b->cli_ctx, extra_ca) != 1) {
        ssl_err(err, cap, "cannot load the extra TLS CA file");
        size_t n = strlen(err);
        snprintf(err + n, cap - n, " (%s)", extra_ca);
        return -1;
    }
    return 0;
}

struct tls_box *tls_box_new(int dirfd, const char *box_id, const char *extra_ca, char *err, size_t cap)
{
    struct tls_box *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    struct stat st;
    if (fstatat(dirfd, TLS_CA_KEY_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT &&
        create_ca(dirfd, box_id, err, cap) < 0)
        goto fail;
    if (load_ca(b, dirfd, err, cap) < 0 || make_contexts(b, extra_ca, err, cap) < 0)
        goto fail;
    if (!(b->leaf_key = new_key())) {
        ssl_err(err, cap, "cannot create the leaf key");
        goto fail;
    }
    return b;
fail:
    tls_box_free(b);
    return NULL;
}

void tls_box_free(struct tls_box *b)
{
    if (!b)
        return;
    for (int i = 0; i < TLS_LEAF_CACHE; i++)
        X509_free(b->leaves[i].cert);
    SSL_CTX_free(b->srv_ctx);
    SSL_CTX_free(b->cli_ctx);
    X509_free(b->ca);
    EVP_PKEY_free(b->ca_key);
    EVP_PKEY_free(b->leaf_key);
    OPENSSL_cleanse(b, sizeof(*b));
    free(b);
}

const char *tls_box_ca_pem(const struct tls_box *b) { return b->ca_pem; }

static X509 *leaf_for(struct tls_box *b, const char *name)
{
    struct leaf *victim = &b->leaves[0];
    for (int i = 0; i < TLS_LEAF_CACHE; i++) {
        struct leaf *l = &b->leaves[i];
        if (l->cert && !strcmp(l->name, name)) {
            l->used = ++b->tick;
            return l->cert;
        }
        if (!l->cert || (victim->cert && l->used < victim->used))
            victim = l;
    }
    char san[300];
    snprintf(san, sizeof(san), "DNS:%s", name);
    X509 *c = make_cert(name, b->leaf_key, b->ca, b->ca_key, 30, 0, san);
    if (!c)
        return NULL;
    X509_free(victim->cert);
    victim->cert = c;
    snprintf(victim->name, sizeof(victim->name), "%s", name);
    victim->used = ++b->tick;
    return c;
}

SSL *tls_box_server(struct tls_box *b, const char *name)
{
    X509 *leaf = leaf_for(b, name);
    SSL *s = leaf ? SSL_new(b->srv_ctx) : NULL;
    if (!s || SSL_use_certificate(s, leaf) != 1 || SSL_use_PrivateKey(s, b->leaf_key) != 1) {
        SSL_free(s);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(s);
    return s;
}

SSL *tls_box_client(struct tls_box *b, const char *name)
{
    static const unsigned char h11[] = "\x08http/1.1";
    SSL *s = SSL_new(b->cli_ctx);
    if (!s || SSL_set_tlsext_host_name(s, name) != 1 || SSL_set1_host(s, name) != 1 ||
        SSL_set_alpn_protos(s, h11, sizeof(h11) - 1) != 0) {
        SSL_free(s);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_connect_state(s);
    return s;
}
