/* The OCI distribution client behind image_pull: manifests and blobs over HTTPS with
 * libcurl (plain HTTP only for registries marked insecure), Bearer token and Basic auth
 * on 401, every blob streamed into the store through a verifying writer, the whole pull
 * under one deadline and every transfer under a low-speed limit. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "image/image_int.h"
#include "image/registry_int.h"
#include "util/dl_curl.h"

#define ERRBODY_MAX (64u << 10)
#define TOKEN_RESPONSE_MAX (1u << 20)

static const char ACCEPT[] = "Accept: " MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST ", " MT_DOCKER_MANIFEST;

struct reg {
    struct img_source src; /* first: the walk hands it back to reg_fetch */
    const struct image_ref *ref;
    const struct image_pull_options *opts;
    char host[256];                 /* API host */
    char base[300];                 /* scheme://host */
    char authz[REG_BASIC_MAX + 64]; /* "Authorization: ..." once we have a token, or "" */
    char basic[REG_BASIC_MAX];      /* base64(user:pass) from the auth file, or "" */
    char auth_line[REG_BASIC_MAX + 64];
    char auth_file[4096];
    int have_basic;
    char name[900]; /* registry/repository for messages */
    CURL *curl;
    uint64_t deadline_ms; /* CLOCK_MONOTONIC: the whole pull ends by then */
};

/* One response: headers we care about, body to memory (capped) or to a blob writer. */
struct resp {
    long status;
    char content_type[128];
    char www_auth[2048];
    char docker_digest[IMAGE_DIGEST_MAX];
    char *mem;
    size_t len, max;
    struct blob_writer *w;
    char sink_err[512];
    /* progress */
    const struct image_pull_options *opts;
    const char *digest;
    uint64_t total, reported;
};

static void copy_header_value(const char *v, size_t n, char *out, size_t cap)
{
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *user)
{
    struct resp *r = user;
    size_t n = size * nitems;
    if (n > 5 && !strncmp(buf, "HTTP/", 5)) {
        /* a new response (after a redirect or 100): forget the previous headers */
        const char *sp = memchr(buf, ' ', n);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        r->content_type[0] = r->www_auth[0] = r->docker_digest[0] = 0;
        return n;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon)
        return n;
    size_t klen = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vlen = n - klen - 1;
    if (klen == 12 && !strncasecmp(buf, "content-type", 12))
        copy_header_value(v, vlen, r->content_type, sizeof(r->content_type));
    else if (klen == 16 && !strncasecmp(buf, "www-authenticate", 16))
        copy_header_value(v, vlen, r->www_auth, sizeof(r->www_auth));
    else if (klen == 21 && !strncasecmp(buf, "docker-content-digest", 21))
        copy_header_value(v, vlen, r->docker_digest, sizeof(r->docker_digest));
    /* "application/json; charset=utf-8" -> "application/json" */
    char *semi = strchr(r->content_type, ';');
    if (semi)
        *semi = 0;
    return n;
}

static void report(struct resp *r, int force)
{
    if (!r->opts || !r->opts->progress || !r->w)
        return;
    if (!force && r->w->bytes - r->reported < (256u << 10))
        return;
    r->reported = r->w->bytes;
    r->opts->progress(r->opts->progress_user, r->digest, r->w->bytes, r->total);
}

static size_t on_body(char *buf, size_t size, size_t nitems, void *user)
{
    struct resp *r = user;
    size_t n = size * nitems;
    if (r->w && r->status == 200) {
        if (blob_writer_write(r->w, buf, n, r->sink_err, sizeof(r->sink_err)) < 0)
            return 0;
        report(r, 0);
        return n;
    }
    size_t max = r->w ? ERRBODY_MAX : r->max;
    if (r->len + n > max) {
        if (r->w || r->status != 200) {
            n = max - r->len; /* an error body: keep its start */
            if (n == 0)
                return size * nitems;
        } else {
            snprintf(r->sink_err, sizeof(r->sink_err), "response is larger than %zu bytes", max);
            return 0;
        }
    }
    char *grown = realloc(r->mem, r->len + n + 1);
    if (!grown) {
        snprintf(r->sink_err, sizeof(r->sink_err), "out of memory");
        return 0;
    }
    r->mem = grown;
    memcpy(r->mem + r->len, buf, n);
    r->len += n;
    r->mem[r->len] = 0;
    return size * nitems;
}

static void resp_reset(struct resp *r)
{
    free(r->mem);
    r->mem = NULL;
    r->len = 0;
    r->status = 0;
    r->sink_err[0] = 0;
    r->content_type[0] = r->www_auth[0] = r->docker_digest[0] = 0;
}

/* Pull time limits, all overridable through the environment:
 *   COCOON_PULL_TIMEOUT        the whole pull, in seconds (default 3600);
 *   COCOON_PULL_LOW_SPEED      bytes per second a transfer must keep up (default 1024) ...
 *   COCOON_PULL_STALL_SECONDS  ... averaged over this many seconds (default 30). */
static long env_long(const char *name, long dflt)
{
    const char *s = getenv(name);
    long v = s ? strtol(s, NULL, 10) : 0;
    return v > 0 ? v : dflt;
}

static long stall_seconds(void) { return env_long("COCOON_PULL_STALL_SECONDS", 30); }
static long low_speed(void) { return env_long("COCOON_PULL_LOW_SPEED", 1024); }
static long pull_timeout(void) { return env_long("COCOON_PULL_TIMEOUT", 3600); }

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One HTTP GET; 0 when a response arrived (any status), -1 on transport failure. */
static int http_get(struct reg *g, const char *url, const char *accept, const char *authz, const char *userpwd_b64,
                    struct resp *r, char *err, size_t errlen)
{
    CURL *c = g->curl;
    char cerr[CURL_ERROR_SIZE] = "";
    uint64_t now = now_ms();
    if (now >= g->deadline_ms)
        return img_err(err, errlen,
                       "the pull of %s took longer than its limit of %ld s (set COCOON_PULL_TIMEOUT to allow "
                       "more)",
                       g->name, pull_timeout());
    struct curl_slist *h = NULL;
    sym_curl_easy_reset(c);
    if (accept)
        h = sym_curl_slist_append(h, accept);
    if (authz && *authz)
        h = sym_curl_slist_append(h, authz);
    else if (userpwd_b64 && *userpwd_b64) {
        snprintf(g->auth_line, sizeof(g->auth_line), "Authorization: Basic %s", userpwd_b64);
        h = sym_curl_slist_append(h, g->auth_line);
    }
    sym_curl_easy_setopt(c, CURLOPT_URL, url);
    sym_curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    sym_curl_easy_setopt(c, CURLOPT_USERAGENT, "cocoon/" COCOON_VERSION);
    sym_curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    sym_curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    sym_curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, g->opts && g->opts->insecure ? "http,https" : "https");
    sym_curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, g->opts && g->opts->insecure ? "http,https" : "https");
    sym_curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    sym_curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, low_speed());
    sym_curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_seconds());
    sym_curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(g->deadline_ms - now));
    sym_curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    sym_curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    sym_curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    sym_curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    sym_curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    sym_curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    CURLcode rc = sym_curl_easy_perform(c);
    sym_curl_slist_free_all(h);
    if (rc == CURLE_OK)
        return 0;
    const char *what = cerr[0] ? cerr : sym_curl_easy_strerror(rc);
    if (r->sink_err[0])
        return img_err(err, errlen, "%s", r->sink_err);
    if (rc == CURLE_PARTIAL_FILE)
        return img_err(err, errlen,
                       "the connection to registry %s broke off during the transfer (%s); pull again to "
                       "restart it",
                       g->host, what);
    if (rc == CURLE_OPERATION_TIMEDOUT && now_ms() + 50 >= g->deadline_ms)
        return img_err(err, errlen,
                       "the pull of %s took longer than its limit of %ld s (set COCOON_PULL_TIMEOUT to allow "
                       "more)",
                       g->name, pull_timeout());
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return img_err(err, errlen,
                       "transfer from %s stalled: slower than %ld bytes/s for %ld s (%s; COCOON_PULL_LOW_SPEED and "
                       "COCOON_PULL_STALL_SECONDS set the limit)",
                       g->host, low_speed(), stall_seconds(), what);
    if (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_RECV_ERROR ||
        rc == CURLE_GOT_NOTHING || rc == CURLE_WEIRD_SERVER_REPLY)
        if (!strncmp(url, "https:", 6))
            return img_err(err, errlen,
                           "TLS connection to registry %s failed (%s); if %s is a plain-HTTP registry you trust, "
                           "mark it insecure (--insecure)",
                           g->host, what, g->host);
    return img_err(err, errlen, "cannot reach registry %s (%s): %s", g->host, url, what);
}

static int fetch_token(struct reg *g, const struct reg_challenge *ch, char *err, size_t errlen)
{
    if (strncmp(ch->realm, "https://", 8) && !(g->opts->insecure && !strncmp(ch->realm, "http://", 7)))
        return img_err(err, errlen, "registry %s asks for a token from '%s', which is not an https URL", g->host,
                       ch->realm);
    char scope[1100];
    if (ch->scope[0])
        snprintf(scope, sizeof(scope), "%s", ch->scope);
    else
        snprintf(scope, sizeof(scope), "repository:%s:pull", g->ref->repository);
    char *es = sym_curl_easy_escape(g->curl, ch->service, 0), *esc = sym_curl_easy_escape(g->curl, scope, 0);
    char url[4096];
    snprintf(url, sizeof(url), "%s%sservice=%s&scope=%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?", es ? es : "",
             esc ? esc : "");
    sym_curl_free(es);
    sym_curl_free(esc);
    struct resp r = {.max = TOKEN_RESPONSE_MAX};
    if (http_get(g, url, "Accept: application/json", NULL, g->basic, &r, err, errlen) < 0) {
        resp_reset(&r);
        return -1;
    }
    int rc = -1;
    if (r.status != 200) {
        if (r.status == 401 || r.status == 403)
            img_err(err, errlen, "the token service of %s refused %s (HTTP %ld)%s", g->host,
                    g->have_basic ? "the credentials" : "anonymous access", r.status,
                    g->have_basic ? "; check the credentials in the auth file"
                                  : "; the image may need credentials (add them to the auth file)");
        else
            img_err(err, errlen, "the token service of %s answered HTTP %ld", g->host, r.status);
        goto out;
    }
    json_t *root = r.mem ? json_loadb(r.mem, r.len, 0, NULL) : NULL;
    json_t *t = json_object_get(root, "token");
    if (!json_is_string(t) || !json_string_length(t))
        t = json_object_get(root, "access_token");
    if (!json_is_string(t) || !json_string_length(t) || json_string_length(t) > sizeof(g->authz) - 40)
        img_err(err, errlen, "the token service of %s sent no usable token", g->host);
    else {
        snprintf(g->authz, sizeof(g->authz), "Authorization: Bearer %s", json_string_value(t));
        rc = 0;
    }
    json_decref(root);
out:
    resp_reset(&r);
    return rc;
}

/* Answers a 401: gets a token (Bearer) or uses the auth file's credentials (Basic). */
static int authenticate(struct reg *g, const struct resp *r, char *err, size_t errlen)
{
    struct reg_challenge ch;
    if (!r->www_auth[0] || reg_challenge_parse(r->www_auth, &ch) < 0)
        return img_err(err, errlen, "registry %s answered 401 without a usable authentication challenge", g->host);
    if (!strcmp(ch.scheme, "Basic")) {
        if (!g->have_basic)
            return img_err(err, errlen, "registry %s needs a user name and password; add them to %s", g->host,
                           g->auth_file[0] ? g->auth_file : "the auth file");
        snprintf(g->authz, sizeof(g->authz), "Authorization: Basic %s", g->basic);
        return 0;
    }
    if (!ch.realm[0])
        return img_err(err, errlen, "registry %s sent a Bearer challenge without a realm", g->host);
    return fetch_token(g, &ch, err, errlen);
}

/* GET with authentication: on 401 authenticate once and retry. */
static int reg_get(struct reg *g, const char *url, const char *accept, struct resp *r, char *err, size_t errlen)
{
    for (int attempt = 0;; attempt++) {
        if (http_get(g, url, accept, g->authz, NULL, r, err, errlen) < 0)
            return -1;
        if (r->status != 401 || attempt == 1)
            return 0;
        if (authenticate(g, r, err, errlen) < 0)
            return -1;
        if (r->w) { /* nothing was written for a 401, but start the file over anyway */
            if (r->w->bytes)
                return img_err(err, errlen, "registry %s sent data with a 401", g->host);
        }
        free(r->mem);
        r->mem = NULL;
        r->len = 0;
    }
}

/* The message of an error response: {"errors":[{"code":..,"message":..}]} or the text. */
static void error_detail(const struct resp *r, char *out, size_t cap)
{
    out[0] = 0;
    if (!r->mem || !r->len)
        return;
    json_t *root = json_loadb(r->mem, r->len, 0, NULL);
    json_t *e0 = json_array_get(json_object_get(root, "errors"), 0);
    json_t *msg = json_object_get(e0, "message"), *code = json_object_get(e0, "code");
    if (json_is_string(msg) || json_is_string(code))
        snprintf(out, cap, " (%s%s%s)", json_is_string(code) ? json_string_value(code) : "",
                 json_is_string(code) && json_is_string(msg) ? ": " : "",
                 json_is_string(msg) ? json_string_value(msg) : "");
    json_decref(root);
}

static int status_error(struct reg *g, const struct resp *r, const char *what, const char *which, char *err,
                        size_t errlen)
{
    char detail[400];
    error_detail(r, detail, sizeof(detail));
    const char *hint = "";
    if (r->status == 404)
        hint = !strcmp(what, "manifest") ? ": image or tag not found" : ": blob not found";
    else if (r->status == 401 || r->status == 403)
        hint = g->have_basic ? ": access denied; check the credentials in the auth file"
                             : ": access denied; the repository may not exist or may need credentials in the auth "
                               "file";
    else if (r->status == 429)
        hint = ": too many requests; try again later";
    else if (r->status >= 500)
        hint = ": the registry failed; try again later";
    return img_err(err, errlen, "registry %s answered %ld for %s %s%s%s", g->ref->registry, r->status, what, which,
                   hint, detail);
}

/* img_source.fetch for a registry: already stored blobs are not fetched again. */
static int reg_fetch(struct img_source *src, const char *digest, uint64_t size, uint64_t limit, const char *what,
                     char *err, size_t errlen)
{
    struct reg *g = (struct reg *)src;
    if (store_has(src->images_dir, digest, size)) {
        if (g->opts->progress && strcmp(what, "manifest"))
            g->opts->progress(g->opts->progress_user, digest, size, size);
        return 0;
    }
    int manifest = !strcmp(what, "manifest");
    char url[2048];
    snprintf(url, sizeof(url), "%s/v2/%s/%s/%s", g->base, g->ref->repository, manifest ? "manifests" : "blobs", digest);
    struct blob_writer w;
    if (blob_writer_open(&w, src->images_dir, digest, limit, err, errlen) < 0) {
        blob_writer_abort(&w);
        return -1;
    }
    struct resp r = {.w = &w, .opts = manifest ? NULL : g->opts, .digest = digest, .total = size};
    char why[1024];
    report(&r, 1);
    int rc = reg_get(g, url, manifest ? ACCEPT : NULL, &r, why, sizeof(why));
    if (rc < 0) {
        img_err(err, errlen, "fetching %s %s from %s failed: %s", what, digest, g->name, why);
    } else if (r.status != 200) {
        char which[700];
        snprintf(which, sizeof(which), "%s@%s", g->ref->repository, digest);
        rc = status_error(g, &r, what, which, err, errlen);
    } else if (blob_writer_commit(&w, src->images_dir, size, what, why, sizeof(why)) < 0) {
        rc = img_err(err, errlen, "registry %s sent a bad %s: %s", g->ref->registry, what, why);
    } else {
        report(&r, 1);
    }
    if (rc < 0)
        blob_writer_abort(&w);
    free(r.mem);
    return rc;
}

static void default_auth_file(char *out, size_t cap)
{
    const char *home = getenv("COCOON_HOME");
    const char *h = getenv("HOME");
    if (home && *home)
        snprintf(out, cap, "%s/auth.json", home);
    else if (h && *h)
        snprintf(out, cap, "%s/.local/share/cocoon/auth.json", h);
    else
        out[0] = 0;
}

static int fetch_top_manifest(struct reg *g, char *digest_out, char *ctype, size_t ctcap, char *err, size_t errlen)
{
    const struct image_ref *ref = g->ref;
    /* by digest and already stored: nothing to ask the registry */
    if (ref->digest[0] && store_has(g->src.images_dir, ref->digest, UINT64_MAX)) {
        snprintf(digest_out, IMAGE_DIGEST_MAX, "%s", ref->digest);
        ctype[0] = 0;
        return 0;
    }
    const char *which = ref->digest[0] ? ref->digest : ref->tag;
    char url[2048];
    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", g->base, ref->repository, which);
    struct resp r = {.max = IMAGE_JSON_MAX};
    char why[1024];
    int rc = -1;
    if (reg_get(g, url, ACCEPT, &r, why, sizeof(why)) < 0) {
        if (!strncmp(why, "response is larger", 18))
            img_err(err, errlen, "the manifest of %s is larger than %u bytes; refusing it", g->name, IMAGE_JSON_MAX);
        else
            img_err(err, errlen, "fetching the manifest of %s%s%s failed: %s", g->name, ref->digest[0] ? "@" : ":",
                    which, why);
        goto out;
    }
    if (r.status != 200) {
        char w[800];
        snprintf(w, sizeof(w), "%s%s%s", ref->repository, ref->digest[0] ? "@" : ":", which);
        status_error(g, &r, "manifest", w, err, errlen);
        goto out;
    }
    if (!r.mem || !r.len) {
        img_err(err, errlen, "registry %s sent an empty manifest for %s", ref->registry, g->name);
        goto out;
    }
    char got[IMAGE_DIGEST_MAX];
    sha256_digest_of(r.mem, r.len, got);
    if (ref->digest[0] && strcmp(got, ref->digest)) {
        img_err(err, errlen, "registry %s sent a manifest for %s@%s whose digest is %s; refusing it", ref->registry,
                ref->repository, ref->digest, got);
        goto out;
    }
    if (img_digest_valid(r.docker_digest) && strcmp(got, r.docker_digest)) {
        img_err(err, errlen,
                "registry %s sent a manifest for %s whose content (%s) does not match its Docker-Content-Digest "
                "header (%s); refusing it",
                ref->registry, g->name, got, r.docker_digest);
        goto out;
    }
    if (store_put(g->src.images_dir, r.mem, r.len, digest_out, err, errlen) < 0)
        goto out;
    snprintf(ctype, ctcap, "%s", r.content_type);
    rc = 0;
out:
    free(r.mem);
    return rc;
}

int image_pull(const char *images_dir, const struct image_ref *ref, const struct image_pull_options *opts,
               struct image_manifest_info *out, char *err, size_t errlen)
{
    static const struct image_pull_options defaults;
    if (!opts)
        opts = &defaults;
    memset(out, 0, sizeof(*out));
    if (!ref->registry[0] || !ref->repository[0] || (!ref->tag[0] && !ref->digest[0]))
        return img_err(err, errlen, "incomplete image reference");
    if (ref->digest[0] && !img_digest_valid(ref->digest))
        return img_err(err, errlen, "malformed digest %.80s", ref->digest);
    if (dl_curl_load(err, errlen) < 0 || store_init(images_dir, err, errlen) < 0)
        return -1;
    store_sweep(images_dir);

    struct reg *g = calloc(1, sizeof(*g));
    if (!g)
        return img_err(err, errlen, "out of memory");
    g->ref = ref;
    g->opts = opts;
    g->deadline_ms = now_ms() + (uint64_t)pull_timeout() * 1000u;
    g->src.fetch = reg_fetch;
    g->src.images_dir = images_dir;
    g->src.progress = opts->progress;
    g->src.progress_user = opts->progress_user;
    snprintf(g->name, sizeof(g->name), "%s/%s", ref->registry, ref->repository);
    g->src.name = g->name;
    snprintf(g->host, sizeof(g->host), "%s",
             !strcmp(ref->registry, "docker.io") ? "registry-1.docker.io" : ref->registry);
    snprintf(g->base, sizeof(g->base), "%s://%s", opts->insecure ? "http" : "https", g->host);
    if (opts->auth_file)
        snprintf(g->auth_file, sizeof(g->auth_file), "%s", opts->auth_file);
    else
        default_auth_file(g->auth_file, sizeof(g->auth_file));
    int rc = -1;
    int found = reg_auth_lookup(g->auth_file, ref->registry, g->basic, sizeof(g->basic), err, errlen);
    if (found < 0)
        goto out;
    g->have_basic = found;
    g->curl = sym_curl_easy_init();
    if (!g->curl) {
        img_err(err, errlen, "cannot initialise libcurl");
        goto out;
    }
    char top[IMAGE_DIGEST_MAX], ctype[128];
    if (fetch_top_manifest(g, top, ctype, sizeof(ctype), err, errlen) < 0)
        goto out;
    rc = img_resolve(&g->src, top, ctype, out, 0, err, errlen);
out:
    if (g->curl)
        sym_curl_easy_cleanup(g->curl);
    explicit_bzero(g->basic, sizeof(g->basic));
    explicit_bzero(g->authz, sizeof(g->authz));
    explicit_bzero(g->auth_line, sizeof(g->auth_line));
    free(g);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}
