/* The box's TLS interception CA (BOX_TRUST): appended once to the image's CA bundles
 * (Debian's and Alpine's paths, when they exist; a marker makes it idempotent across
 * boots), written to its own file, and named by SSL_CERT_FILE, REQUESTS_CA_BUNDLE and
 * NODE_EXTRA_CA_CERTS in every command's environment, with the host's BOX_ENV entries. */
#include "agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/proto.h"

#define TRUST_ENV_MAX 64
#define CA_FILE "/etc/ssl/certs/cocoon-box-ca.pem"
#define BUNDLE_MAX (8u << 20)
#define MARK "# cocoon box interception CA\n"

static char *env_list[TRUST_ENV_MAX + 1];
static size_t nenv;
static char env_store[TRUST_ENV_MAX][PROTO_MAX_STRING + 1];

char *const *trust_env(void) { return env_list; }

static void env_add(const char *kv)
{
    if (nenv >= TRUST_ENV_MAX || !strchr(kv, '=') || kv[0] == '=')
        return;
    size_t k = (size_t)(strchr(kv, '=') - kv);
    for (size_t i = 0; i < nenv; i++)
        if (!strncmp(env_list[i], kv, k + 1)) {
            snprintf(env_store[i], sizeof(env_store[i]), "%s", kv);
            return;
        }
    snprintf(env_store[nenv], sizeof(env_store[nenv]), "%s", kv);
    env_list[nenv] = env_store[nenv];
    env_list[++nenv] = NULL;
}

/* Appends MARK + pem to an existing bundle that does not have it yet. */
static void append_to_bundle(const char *path, const char *pem)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return;
    int fd = open(path, O_RDWR | O_CLOEXEC); /* a symlink to the real bundle is fine */
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)BUNDLE_MAX) {
        if (fd >= 0)
            close(fd);
        return;
    }
    char *text = malloc((size_t)st.st_size + 1);
    ssize_t n = text ? pread(fd, text, (size_t)st.st_size, 0) : -1;
    if (n >= 0) {
        text[n] = 0;
        if (!strstr(text, pem)) {
            int ok = lseek(fd, 0, SEEK_END) >= 0 && (n == 0 || text[n - 1] == '\n' || write(fd, "\n", 1) == 1) &&
                     write(fd, MARK, strlen(MARK)) == (ssize_t)strlen(MARK) &&
                     write(fd, pem, strlen(pem)) == (ssize_t)strlen(pem);
            if (!ok)
                agent_log("cannot add the box CA to %s: %s", path, strerror(errno));
        }
    }
    free(text);
    close(fd);
}

static void install_ca(const char *pem)
{
    mkdir("/etc/ssl", 0755);
    mkdir("/etc/ssl/certs", 0755);
    int fd = open(CA_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 || write(fd, pem, strlen(pem)) != (ssize_t)strlen(pem) || fsync(fd) < 0 ||
        rename(CA_FILE ".tmp", CA_FILE) < 0)
        agent_log("cannot write %s: %s", CA_FILE, strerror(errno));
    if (fd >= 0)
        close(fd);
    static const char *const bundles[] = {"/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/cert.pem",
                                          "/etc/pki/tls/certs/ca-bundle.crt"};
    const char *store = NULL;
    for (size_t i = 0; i < sizeof(bundles) / sizeof(bundles[0]); i++) {
        struct stat st;
        if (stat(bundles[i], &st) == 0 && !store)
            store = bundles[i];
        append_to_bundle(bundles[i], pem);
    }
    char kv[512];
    /* SSL_CERT_FILE replaces the default store of OpenSSL programs: the whole bundle
     * (with the box CA) where there is one, the box CA alone otherwise. */
    snprintf(kv, sizeof(kv), "SSL_CERT_FILE=%s", store ? store : CA_FILE);
    env_add(kv);
    snprintf(kv, sizeof(kv), "REQUESTS_CA_BUNDLE=%s", store ? store : CA_FILE);
    env_add(kv);
    env_add("NODE_EXTRA_CA_CERTS=" CA_FILE);
}

void trust_apply(struct agent *a, const uint8_t *p, size_t n)
{
    struct proto_reader r;
    struct proto_field f;
    static char value[PROTO_MAX_STRING + 1];
    int rc;
    proto_reader_init(&r, p, n);
    while ((rc = proto_next_field(&r, &f)) == PROTO_OK) {
        if (f.tag != PT_TRUST_CA && f.tag != PT_BOX_ENV)
            continue;
        if (proto_field_str(&f, value, sizeof(value)) != PROTO_OK) {
            session_send_error(a, PROTO_STREAM_SESSION, EINVAL, "malformed BOX_TRUST");
            return;
        }
        if (f.tag == PT_TRUST_CA) {
            if (strncmp(value, "-----BEGIN CERTIFICATE-----", 27) != 0) {
                session_send_error(a, PROTO_STREAM_SESSION, EINVAL, "BOX_TRUST: not a PEM certificate");
                return;
            }
            install_ca(value);
        } else {
            env_add(value);
        }
    }
    if (rc != PROTO_NEED_MORE)
        session_send_error(a, PROTO_STREAM_SESSION, EINVAL, "malformed BOX_TRUST");
    else
        agent_log("box trust: TLS interception CA installed, %zu variable(s) for every command", nenv);
}
