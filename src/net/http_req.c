/* The HTTP/1.1 request filter of intercepted connections (http_req.h). Strict where
 * leniency would let a request mean two things (request smuggling): obsolete line
 * folding, a Content-Length next to Transfer-Encoding, codings other than chunked,
 * duplicate or malformed lengths and bare LF line ends outside the head are refused.
 * A secret's placeholder becomes its value only in a header (Basic credentials
 * decoded and encoded again) of a request whose Host is the TLS server name, when
 * that name is one of the secret's hosts and the destination came from this box's own
 * DNS answer for it; in the query and the body too when the secret asks (--secret-in:
 * the query gets the value percent-encoded; a Content-Length body of at most
 * HTTP_BODY_MAX is buffered and its length rewritten, a chunked one re-chunked as it
 * streams); anywhere else (the path, another host, a body not asked for) the
 * connection stops. */
#include "net/http_req.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/policy.h"

void http_filter_init(struct http_filter *f, int scan_only)
{
    f->scan_only = scan_only;
    f->state = scan_only ? HS_OPAQUE : HS_HEAD;
    f->after = HS_HEAD;
    f->head_len = f->out_len = f->out_off = f->line_len = f->carry_len = 0;
    f->body_left = 0;
    f->requests = 0;
    f->why[0] = 0;
    f->violation = 0;
    f->body_swap = f->host_ok = 0;
    f->body = f->emit = NULL;
    f->body_len = f->pend_len = 0;
}

static void wipe_free(uint8_t **p, size_t n)
{
    if (*p) {
        explicit_bzero(*p, n);
        free(*p);
        *p = NULL;
    }
}

void http_filter_free(struct http_filter *f)
{
    wipe_free(&f->body, HTTP_BODY_MAX);
    wipe_free(&f->emit, f->out_len);
    explicit_bzero(f->pend, sizeof(f->pend));
}

void http_placeholder(const char *name, const uint8_t rnd[16], char *out, size_t cap)
{
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(out, cap, "cocoon-secret-%s-%s", name, hex);
}

static int failf(struct http_filter *f, const char *what, const char *detail)
{
    snprintf(f->why, sizeof(f->why), "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    f->state = HS_FAILED;
    return -1;
}

/* A secret where it may not go: the stream stops as a violation (net_secret_violation). */
static int fail_secret(struct http_filter *f, const char *what, const char *detail)
{
    failf(f, what, detail);
    f->violation = 1;
    return -1;
}

/* ---- the placeholders ---- */

/* The first secret whose placeholder is in p[0..n), or -1. */
static int find_secret(const struct http_scope *sc, const uint8_t *p, size_t n)
{
    for (int i = 0; i < sc->cfg->nsecrets; i++) {
        const char *ph = sc->cfg->secrets[i].placeholder;
        if (ph[0] && memmem(p, n, ph, strlen(ph)))
            return i;
    }
    return -1;
}

static int secret_host_ok(const struct net_secret *s, const char *sni)
{
    for (int i = 0; i < s->nhosts; i++)
        if (policy_domain_match(s->hosts[i], sni))
            return 1;
    return 0;
}

/* Why the secret i may not go with this request ("" when it may). */
static const char *secret_refusal(const struct http_scope *sc, int i, int host_ok)
{
    const struct net_secret *s = &sc->cfg->secrets[i];
    if (!secret_host_ok(s, sc->sni))
        return "not one of the secret's hosts";
    if (!host_ok)
        return "the Host header is not the TLS server name";
    if (!sc->pinned)
        return "the address is not this box's DNS answer for the host";
    if (!sc->values || !sc->values[i])
        return "the secret's value was not given to this box";
    return "";
}

/* ---- output of the rewritten head ---- */

struct wbuf {
    uint8_t *p;
    size_t len, cap;
    int over;
};

/* A wbuf whose p is NULL only counts. */
static void put(struct wbuf *w, const void *d, size_t n)
{
    if (w->over || n > w->cap - w->len) {
        w->over = 1;
        return;
    }
    if (w->p)
        memcpy(w->p + w->len, d, n);
    w->len += n;
}

static void puts_(struct wbuf *w, const char *s) { put(w, s, strlen(s)); }

/* Copies v[0..n) to w with every allowed placeholder replaced by its value. */
static void put_replaced(struct wbuf *w, const struct http_scope *sc, const uint8_t *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int hit = -1;
        size_t hl = 0;
        for (int k = 0; k < sc->cfg->nsecrets; k++) {
            const char *ph = sc->cfg->secrets[k].placeholder;
            size_t pl = strlen(ph);
            if (pl && n - i >= pl && !memcmp(v + i, ph, pl)) {
                hit = k;
                hl = pl;
                break;
            }
        }
        if (hit >= 0) {
            puts_(w, sc->values[hit]);
            i += hl;
        } else {
            put(w, v + i, 1);
            i++;
        }
    }
}

/* The value percent-encoded (RFC 3986: all but unreserved characters), for a query. */
static void put_pct(struct wbuf *w, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            put(w, v, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            put(w, e, 3);
        }
    }
}

/* Why secret k may not go in place (NET_SECRET_IN_QUERY or _BODY) of this request ("": it may). */
static const char *place_refusal(const struct http_scope *sc, int k, int host_ok, unsigned place)
{
    if (!(sc->cfg->secrets[k].in & place))
        return place == NET_SECRET_IN_QUERY ? "placeholders go in headers only (--secret-in NAME=query lets it in)"
                                            : "placeholders go in headers only (--secret-in NAME=body lets it in)";
    return secret_refusal(sc, k, host_ok);
}

/* The placeholder of a secret at p[0..n): its index with *len, -1 when none starts there;
 * *partial when p (to its end, n short of a placeholder) may be one's beginning. */
static int placeholder_at(const struct http_scope *sc, const uint8_t *p, size_t n, size_t *len, int *partial)
{
    *partial = 0;
    if (p[0] != 'c')
        return -1;
    for (int k = 0; k < sc->cfg->nsecrets; k++) {
        const char *ph = sc->cfg->secrets[k].placeholder;
        size_t pl = strlen(ph);
        if (!pl)
            continue;
        if (n >= pl && !memcmp(p, ph, pl)) {
            *len = pl;
            return k;
        }
        if (n < pl && !memcmp(p, ph, n))
            *partial = 1;
    }
    return -1;
}

/* Body bytes b[0..n) into w with the placeholders of secrets that may go in this body
 * replaced by their values; any other placeholder fails the stream. Unless last, the
 * bytes that may begin a placeholder are not taken: *taken says how many were. */
static int swap_bytes(struct http_filter *f, const struct http_scope *sc, const uint8_t *b, size_t n, int last,
                      struct wbuf *w, size_t *taken)
{
    size_t i = 0, from = 0;
    while (i < n) {
        size_t hl = 0;
        int partial;
        int k = placeholder_at(sc, b + i, n - i, &hl, &partial);
        if (k >= 0) {
            const char *no = place_refusal(sc, k, f->host_ok, NET_SECRET_IN_BODY);
            if (*no) {
                char what[200];
                snprintf(what, sizeof(what), "secret %s in a request body to %s", sc->cfg->secrets[k].name, sc->sni);
                return fail_secret(f, what, no);
            }
            put(w, b + from, i - from);
            puts_(w, sc->values[k]);
            i += hl;
            from = i;
            continue;
        }
        if (partial && !last)
            break;
        i++;
    }
    put(w, b + from, i - from);
    *taken = i;
    return 0;
}

/* ---- Basic credentials ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(int c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* Standard base64 with padding; -1 when malformed or over cap. */
static long b64_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = in[i + k] == '=' && i + 4 == n && k >= 2 ? 0 : b64_val(in[i + k]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0 || (in[i + 2] == '=' && in[i + 3] != '='))
            return -1;
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        int bytes = in[i + 2] == '=' ? 1 : in[i + 3] == '=' ? 2 : 3;
        if (o + (size_t)bytes > cap)
            return -1;
        out[o++] = (uint8_t)(x >> 16);
        if (bytes > 1)
            out[o++] = (uint8_t)(x >> 8);
        if (bytes > 2)
            out[o++] = (uint8_t)x;
    }
    return (long)o;
}

static void b64_put(struct wbuf *w, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        char q[4] = {b64[x >> 18 & 63], b64[x >> 12 & 63], i + 1 < n ? b64[x >> 6 & 63] : '=',
                     i + 2 < n ? b64[x & 63] : '='};
        put(w, q, 4);
    }
}

/* ---- the head ---- */

struct hdr {
    const uint8_t *name, *value;
    size_t nlen, vlen;
};

static int is_tchar(int c) { return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c); }

static int name_is(const struct hdr *h, const char *name)
{
    return h->nlen == strlen(name) && !strncasecmp((const char *)h->name, name, h->nlen);
}

/* Host without its port equals sni (case-insensitive). */
static int host_matches(const struct hdr *h, const char *sni)
{
    size_t n = h->vlen;
    const uint8_t *colon = memchr(h->value, ':', n);
    if (colon)
        n = (size_t)(colon - h->value);
    if (n && h->value[n - 1] == '.')
        n--;
    return n == strlen(sni) && !strncasecmp((const char *)h->value, sni, n);
}

static const struct net_header_rule *rule_for(const struct http_scope *sc, const struct hdr *h)
{
    for (int i = 0; i < sc->cfg->nheader_rules; i++) {
        const struct net_header_rule *r = &sc->cfg->header_rules[i];
        if (policy_domain_match(r->host, sc->sni) && name_is(h, r->name))
            return r;
    }
    return NULL;
}

/* One header's value with its placeholders checked and replaced. -1 with f->why. */
static int put_value(struct http_filter *f, struct wbuf *w, const struct http_scope *sc, const struct hdr *h,
                     int host_ok)
{
    int basic = (name_is(h, "authorization") || name_is(h, "proxy-authorization")) && h->vlen > 6 &&
                !strncasecmp((const char *)h->value, "basic ", 6);
    uint8_t dec[1024];
    long dn = -1;
    if (basic) {
        size_t off = 6;
        while (off < h->vlen && h->value[off] == ' ')
            off++;
        dn = b64_decode(h->value + off, h->vlen - off, dec, sizeof(dec));
    }
    int k = find_secret(sc, h->value, h->vlen);
    int kd = dn > 0 ? find_secret(sc, dec, (size_t)dn) : -1;
    for (int i = 0; i < sc->cfg->nsecrets; i++) {
        const char *ph = sc->cfg->secrets[i].placeholder;
        if (!ph[0] ||
            (!memmem(h->value, h->vlen, ph, strlen(ph)) && !(dn > 0 && memmem(dec, (size_t)dn, ph, strlen(ph)))))
            continue;
        const char *no = secret_refusal(sc, i, host_ok);
        if (*no) {
            char what[200];
            snprintf(what, sizeof(what), "secret %s in a request header to %s", sc->cfg->secrets[i].name, sc->sni);
            return fail_secret(f, what, no);
        }
    }
    if (kd >= 0) {
        uint8_t plain[2048];
        struct wbuf pw = {plain, 0, sizeof(plain), 0};
        put_replaced(&pw, sc, dec, (size_t)dn);
        if (pw.over)
            return failf(f, "Basic credentials too long once the secret is in", NULL);
        puts_(w, "Basic ");
        b64_put(w, plain, pw.len);
    } else if (k >= 0) {
        put_replaced(w, sc, h->value, h->vlen);
    } else {
        put(w, h->value, h->vlen);
    }
    return 0;
}

/* A header rule's value, with {{NAME}} standing for secret NAME's value (under the
 * secret's own conditions: a rule never sends a value where the secret may not go). */
static int put_rule_value(struct http_filter *f, struct wbuf *w, const struct http_scope *sc, const char *v,
                          int host_ok)
{
    while (*v) {
        const char *open = strstr(v, "{{"), *close = open ? strstr(open + 2, "}}") : NULL;
        if (!close) {
            puts_(w, v);
            return 0;
        }
        put(w, v, (size_t)(open - v));
        size_t nl = (size_t)(close - open - 2);
        int k = -1;
        for (int i = 0; i < sc->cfg->nsecrets; i++)
            if (strlen(sc->cfg->secrets[i].name) == nl && !strncmp(sc->cfg->secrets[i].name, open + 2, nl))
                k = i;
        if (k < 0) {
            put(w, open, (size_t)(close + 2 - open));
        } else {
            const char *no = secret_refusal(sc, k, host_ok);
            if (*no) {
                char what[200];
                snprintf(what, sizeof(what), "secret %s in a header rule toward %s", sc->cfg->secrets[k].name, sc->sni);
                return fail_secret(f, what, no);
            }
            puts_(w, sc->values[k]);
        }
        v = close + 2;
    }
    return 0;
}

/* The head in f->head[0..head_len) (ends with an empty line) rewritten into f->out;
 * sets the body state. */
static int process_head(struct http_filter *f, const struct http_scope *sc)
{
    const uint8_t *p = f->head, *end = f->head + f->head_len;
    /* request line: METHOD SP TARGET SP HTTP/1.x */
    const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
    size_t ll = (size_t)(eol - p);
    if (ll && p[ll - 1] == '\r')
        ll--;
    size_t ll_first = ll;
    const uint8_t *sp1 = memchr(p, ' ', ll), *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - p)) : NULL;
    if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1 || (size_t)(p + ll - (sp2 + 1)) != 8 ||
        memcmp(sp2 + 1, "HTTP/1.", 7) || (sp2[8] != '0' && sp2[8] != '1'))
        return failf(f, "not an HTTP/1.x request", NULL);
    for (const uint8_t *q = p; q < sp1; q++)
        if (!is_tchar(*q))
            return failf(f, "not an HTTP/1.x request", NULL);
    for (const uint8_t *q = sp1 + 1; q < sp2; q++)
        if (*q <= 0x20 || *q == 0x7f)
            return failf(f, "malformed request target", NULL);
    int connect = sp1 - p == 7 && !memcmp(p, "CONNECT", 7);
    const uint8_t *target = sp1 + 1;
    size_t target_len = (size_t)(sp2 - sp1 - 1);
    int k;
    /* headers */
    struct hdr h[HTTP_MAX_HEADERS];
    int nh = 0, hosts = 0, host_ok = 0, chunked = 0, upgrade = 0, has_len = 0;
    uint64_t clen = 0;
    p = eol + 1;
    for (;;) {
        eol = memchr(p, '\n', (size_t)(end - p));
        ll = (size_t)(eol - p);
        if (ll && p[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            break;
        if (p[0] == ' ' || p[0] == '\t')
            return failf(f, "obsolete header line folding", NULL);
        const uint8_t *colon = memchr(p, ':', ll);
        if (!colon || colon == p)
            return failf(f, "malformed header line", NULL);
        for (const uint8_t *q = p; q < colon; q++)
            if (!is_tchar(*q))
                return failf(f, "malformed header name", NULL);
        if (nh >= HTTP_MAX_HEADERS)
            return failf(f, "too many request headers", NULL);
        struct hdr *x = &h[nh++];
        x->name = p;
        x->nlen = (size_t)(colon - p);
        const uint8_t *v = colon + 1, *ve = p + ll;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const uint8_t *q = v; q < ve; q++)
            if ((*q < 0x20 && *q != '\t') || *q == 0x7f)
                return failf(f, "control character in a header value", NULL);
        x->value = v;
        x->vlen = (size_t)(ve - v);
        if (name_is(x, "host")) {
            hosts++;
            host_ok = host_matches(x, sc->sni);
        } else if (name_is(x, "content-length")) {
            char num[24];
            if (!x->vlen || x->vlen >= sizeof(num) || has_len)
                return failf(f, "malformed Content-Length", NULL);
            memcpy(num, x->value, x->vlen);
            num[x->vlen] = 0;
            for (size_t i = 0; i < x->vlen; i++)
                if (!isdigit((unsigned char)num[i]))
                    return failf(f, "malformed Content-Length", NULL);
            clen = strtoull(num, NULL, 10);
            has_len = 1;
        } else if (name_is(x, "transfer-encoding")) {
            if (x->vlen != 7 || strncasecmp((const char *)x->value, "chunked", 7) || chunked)
                return failf(f, "Transfer-Encoding other than chunked", NULL);
            chunked = 1;
        } else if (name_is(x, "upgrade")) {
            upgrade = 1;
        }
        p = eol + 1;
    }
    if (hosts != 1)
        return failf(f, hosts ? "more than one Host header" : "no Host header", NULL);
    if (chunked && has_len)
        return failf(f, "both Content-Length and Transfer-Encoding", NULL);
    /* Content-Length bodies up to HTTP_BODY_MAX are buffered when a secret may go in
     * this request's body (its hosts, pinned, Host = SNI, --secret-in NAME=body);
     * chunked ones are re-chunked as they stream. */
    f->host_ok = host_ok;
    f->body_swap = 0;
    for (int i = 0; !connect && !upgrade && (chunked || clen) && i < sc->cfg->nsecrets; i++)
        if (!*place_refusal(sc, i, host_ok, NET_SECRET_IN_BODY))
            f->body_swap = 1;
    if (f->body_swap && !chunked && clen > HTTP_BODY_MAX)
        f->body_swap = 0; /* streamed: a placeholder in it is refused */
    /* the rewritten head: the request line, its query's placeholders replaced when they may */
    struct wbuf w = {f->out, 0, sizeof(f->out), 0};
    put(&w, f->head, (size_t)(target - f->head));
    const uint8_t *query = memchr(target, '?', target_len);
    for (size_t i = 0, from = 0; i <= target_len; i++) {
        size_t hl = 0;
        int partial;
        if (i == target_len) {
            put(&w, target + from, i - from);
            break;
        }
        k = placeholder_at(sc, target + i, target_len - i, &hl, &partial);
        if (k < 0)
            continue;
        const char *no = !query || target + i < query ? "placeholders go in headers only"
                                                      : place_refusal(sc, k, host_ok, NET_SECRET_IN_QUERY);
        if (*no) {
            char what[200];
            snprintf(what, sizeof(what), "secret %s in the request target to %s", sc->cfg->secrets[k].name, sc->sni);
            return fail_secret(f, what, no);
        }
        put(&w, target + from, i - from);
        put_pct(&w, sc->values[k]);
        from = i + hl;
        i += hl - 1;
    }
    put(&w, sp2, (size_t)(f->head + ll_first - sp2));
    puts_(&w, "\r\n");
    for (int i = 0; i < nh; i++) {
        if (host_ok && rule_for(sc, &h[i]))
            continue; /* replaced by the rule below */
        if (f->body_swap && !chunked && name_is(&h[i], "content-length"))
            continue; /* written once the values are in the body */
        put(&w, h[i].name, h[i].nlen);
        puts_(&w, ": ");
        if (put_value(f, &w, sc, &h[i], host_ok) < 0)
            return -1;
        puts_(&w, "\r\n");
    }
    for (int i = 0; host_ok && i < sc->cfg->nheader_rules; i++) {
        const struct net_header_rule *r = &sc->cfg->header_rules[i];
        if (!policy_domain_match(r->host, sc->sni))
            continue;
        puts_(&w, r->name);
        puts_(&w, ": ");
        if (put_rule_value(f, &w, sc, r->value, host_ok) < 0)
            return -1;
        puts_(&w, "\r\n");
    }
    if (!(f->body_swap && !chunked))
        puts_(&w, "\r\n"); /* (a buffered body's head ends with its Content-Length) */
    if (w.over)
        return failf(f, "request header block too large once rewritten", NULL);
    k = find_secret(sc, w.p, w.len); /* left anywhere else (a header's name...) */
    if (k >= 0) {
        char what[200];
        snprintf(what, sizeof(what), "secret %s in the request head to %s", sc->cfg->secrets[k].name, sc->sni);
        return fail_secret(f, what, "placeholders go in header values only");
    }
    f->out_len = w.len;
    f->out_off = 0;
    f->requests++;
    f->head_len = 0;
    f->carry_len = 0;
    f->body_left = clen;
    f->pend_len = 0;
    if (f->body_swap && !chunked) {
        if (!(f->body = malloc(HTTP_BODY_MAX)))
            return failf(f, "out of memory for a request body", NULL);
        f->body_len = 0;
        f->state = HS_BODY_BUF;
        return 0;
    }
    f->state = HS_EMIT;
    f->after = connect || upgrade ? HS_OPAQUE : chunked ? HS_CHUNK_SIZE : clen ? HS_BODY : HS_HEAD;
    return 0;
}

/* The buffered body is complete: the head (in f->out, without its end) with the body's
 * new Content-Length, then the body with the values in, are emitted from f->emit. */
static int finish_buffered(struct http_filter *f, const struct http_scope *sc)
{
    struct wbuf count = {NULL, 0, HTTP_BODY_OUT_MAX, 0};
    size_t taken;
    if (swap_bytes(f, sc, f->body, f->body_len, 1, &count, &taken) < 0)
        return -1;
    if (count.over)
        return failf(f, "request body larger than 1 MiB once the secrets are in", NULL);
    char cl[48];
    int cn = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n\r\n", count.len);
    size_t total = f->out_len + (size_t)cn + count.len;
    if (!(f->emit = malloc(total)))
        return failf(f, "out of memory for a request body", NULL);
    memcpy(f->emit, f->out, f->out_len);
    memcpy(f->emit + f->out_len, cl, (size_t)cn);
    struct wbuf w = {f->emit + f->out_len + cn, 0, count.len, 0};
    swap_bytes(f, sc, f->body, f->body_len, 1, &w, &taken);
    wipe_free(&f->body, HTTP_BODY_MAX);
    f->out_len = total;
    f->out_off = 0;
    f->state = HS_EMIT;
    f->after = HS_HEAD;
    return 0;
}

/* Chunk data p[0..n) of a body that gets values: what can be decided (f->pend first) as
 * a new chunk in f->out, emitted next; last: the body ends (nothing held back, then the
 * last chunk's "0" line; the trailers pass after it). */
static int rechunk(struct http_filter *f, const struct http_scope *sc, const uint8_t *p, size_t n, int last)
{
    uint8_t buf[sizeof(f->pend) + 4096];
    memcpy(buf, f->pend, f->pend_len);
    if (n)
        memcpy(buf + f->pend_len, p, n);
    size_t all = f->pend_len + n, taken = 0;
    /* the chunk-size line goes before the data once the size is known */
    struct wbuf w = {f->out + 24, 0, sizeof(f->out) - 24 - 2 - 3, 0};
    if (swap_bytes(f, sc, buf, all, last, &w, &taken) < 0)
        return -1;
    if (w.over)
        return failf(f, "request body chunk too large once the secrets are in", NULL);
    f->pend_len = all - taken;
    memcpy(f->pend, buf + taken, f->pend_len);
    explicit_bzero(buf, sizeof(buf));
    size_t at = 24;
    if (w.len) {
        char size[24];
        int sn = snprintf(size, sizeof(size), "%zx\r\n", w.len);
        at = 24 - (size_t)sn;
        memcpy(f->out + at, size, (size_t)sn);
        memcpy(f->out + 24 + w.len, "\r\n", 2);
        w.len += 2;
    }
    if (last) {
        memcpy(f->out + 24 + w.len, "0\r\n", 3);
        w.len += 3;
    }
    f->out_off = at;
    f->out_len = 24 + w.len;
    f->after = f->state;
    f->state = HS_EMIT;
    return 0;
}

/* How much chunk data rechunk may take at once so that its output fits f->out even if
 * every placeholder in it became the longest value. */
static size_t rechunk_piece(const struct http_filter *f, const struct http_scope *sc)
{
    size_t maxv = 1, minpl = NET_SECRET_PLACEHOLDER;
    for (int k = 0; k < sc->cfg->nsecrets; k++) {
        size_t pl = strlen(sc->cfg->secrets[k].placeholder);
        size_t vl = sc->values && sc->values[k] ? strlen(sc->values[k]) : 0;
        if (pl && pl < minpl)
            minpl = pl;
        if (vl > maxv)
            maxv = vl;
    }
    size_t piece = 4096, room = sizeof(f->out) - 64;
    while (piece > 1 && ((f->pend_len + piece) / minpl + 1) * maxv + f->pend_len + piece > room)
        piece /= 2;
    return piece;
}

/* Body or opaque bytes: placeholders are refused (split ones through the carry). */
static int scan_body(struct http_filter *f, const struct http_scope *sc, const uint8_t *p, size_t n)
{
    uint8_t buf[sizeof(f->carry) + 4096];
    while (n) {
        size_t take = n < 4096 ? n : 4096;
        memcpy(buf, f->carry, f->carry_len);
        memcpy(buf + f->carry_len, p, take);
        size_t all = f->carry_len + take;
        int k = find_secret(sc, buf, all);
        if (k >= 0) {
            char what[200];
            if (f->scan_only) {
                snprintf(what, sizeof(what), "secret %s in TLS to %s", sc->cfg->secrets[k].name, sc->sni);
                return fail_secret(f, what, "not one of the secret's hosts");
            }
            snprintf(what, sizeof(what), "secret %s in a request body to %s", sc->cfg->secrets[k].name, sc->sni);
            const char *no = place_refusal(sc, k, f->host_ok, NET_SECRET_IN_BODY);
            if (!*no)
                no = f->state == HS_OPAQUE ? "bytes after an upgrade are not rewritten"
                                           : "a Content-Length body larger than 64 KiB is not rewritten";
            return fail_secret(f, what, no);
        }
        size_t keep = all < sizeof(f->carry) ? all : sizeof(f->carry);
        memmove(f->carry, buf + all - keep, keep);
        f->carry_len = keep;
        p += take;
        n -= take;
    }
    return 0;
}

int http_filter_run(struct http_filter *f, const struct http_scope *sc, const uint8_t *in, size_t n, size_t *used,
                    uint8_t *out, size_t outcap, size_t *outlen)
{
    size_t i = 0;
    *used = 0;
    if (f->state == HS_FAILED)
        return -1;
    for (;;) {
        size_t room = outcap - *outlen;
        if (f->state == HS_EMIT) {
            size_t k = f->out_len - f->out_off < room ? f->out_len - f->out_off : room;
            memcpy(out + *outlen, (f->emit ? f->emit : f->out) + f->out_off, k);
            *outlen += k;
            f->out_off += k;
            if (f->out_off < f->out_len)
                break;
            wipe_free(&f->emit, f->out_len);
            f->line_len = 0;
            f->state = f->after;
            continue;
        }
        if (i == n || room == 0)
            break;
        const uint8_t *p = in + i;
        size_t avail = n - i;
        switch (f->state) {
        case HS_HEAD: {
            /* one byte at a time into the head until its empty line */
            size_t k = 0;
            int done = 0;
            while (k < avail) {
                if (f->head_len >= HTTP_HEAD_MAX)
                    return failf(f, "request header block larger than 16 KiB", NULL);
                uint8_t c = p[k++];
                if (f->head_len == 0 && (c == '\r' || c == '\n'))
                    continue; /* RFC 9112 2.2: empty lines before a request */
                f->head[f->head_len++] = c;
                if (c == '\n' && ((f->head_len >= 2 && f->head[f->head_len - 2] == '\n') ||
                                  (f->head_len >= 4 && !memcmp(f->head + f->head_len - 4, "\r\n\r\n", 4)))) {
                    done = 1;
                    break;
                }
            }
            i += k;
            if (done && process_head(f, sc) < 0)
                return -1;
            break;
        }
        case HS_BODY_BUF: {
            size_t k = avail < f->body_left ? avail : (size_t)f->body_left;
            memcpy(f->body + f->body_len, p, k);
            f->body_len += k;
            f->body_left -= k;
            i += k;
            if (!f->body_left && finish_buffered(f, sc) < 0)
                return -1;
            break;
        }
        case HS_CHUNK_DATA:
            if (f->body_swap) {
                size_t k = rechunk_piece(f, sc);
                if (k > avail)
                    k = avail;
                if (k > f->body_left)
                    k = (size_t)f->body_left;
                f->body_left -= k;
                i += k;
                if (!f->body_left)
                    f->state = HS_CHUNK_CRLF;
                if (rechunk(f, sc, p, k, 0) < 0)
                    return -1;
                break;
            }
            /* fall through */
        case HS_BODY:
        case HS_OPAQUE: {
            size_t k = avail < room ? avail : room;
            if (f->state != HS_OPAQUE && f->body_left < k)
                k = (size_t)f->body_left;
            if (scan_body(f, sc, p, k) < 0)
                return -1;
            memcpy(out + *outlen, p, k);
            *outlen += k;
            i += k;
            if (f->state != HS_OPAQUE) {
                f->body_left -= k;
                if (!f->body_left)
                    f->state = f->state == HS_BODY ? HS_HEAD : HS_CHUNK_CRLF;
            }
            break;
        }
        case HS_CHUNK_SIZE:
        case HS_CHUNK_CRLF:
        case HS_TRAILER: {
            /* line-based parts pass through a line at a time */
            uint8_t c = p[0];
            if (f->line_len >= sizeof(f->line) - 1)
                return failf(f, "chunk line too long", NULL);
            f->line[f->line_len++] = (char)c;
            i++;
            if (c != '\n')
                break;
            if (f->line_len < 2 || f->line[f->line_len - 2] != '\r')
                return failf(f, "chunked body line without CRLF", NULL);
            size_t ll = f->line_len;
            if (ll > room) {
                f->line_len--; /* give the LF back: no room for the line yet */
                i--;
                goto out;
            }
            int k = find_secret(sc, (const uint8_t *)f->line, ll - 2); /* framing: not part of the carry */
            if (k >= 0) {
                char what[200];
                snprintf(what, sizeof(what), "secret %s in a chunk line to %s", sc->cfg->secrets[k].name, sc->sni);
                return fail_secret(f, what, "placeholders go in headers only");
            }
            int own_framing = f->body_swap && f->state != HS_TRAILER; /* re-chunked: new size lines */
            if (!own_framing) {
                memcpy(out + *outlen, f->line, ll);
                *outlen += ll;
            }
            f->line_len = 0;
            if (f->state == HS_CHUNK_CRLF) {
                if (ll != 2)
                    return failf(f, "chunk data longer than its size", NULL);
                f->state = HS_CHUNK_SIZE;
            } else if (f->state == HS_CHUNK_SIZE) {
                uint64_t size = 0;
                size_t d = 0;
                while (d < ll - 2 && isxdigit((unsigned char)f->line[d])) {
                    if (size >> 56)
                        return failf(f, "chunk size too large", NULL);
                    int c2 = tolower((unsigned char)f->line[d]);
                    size = size * 16 + (uint64_t)(isdigit(c2) ? c2 - '0' : c2 - 'a' + 10);
                    d++;
                }
                if (d == 0 || (d < ll - 2 && f->line[d] != ';' && f->line[d] != ' ' && f->line[d] != '\t'))
                    return failf(f, "malformed chunk size", NULL);
                f->body_left = size;
                f->state = size ? HS_CHUNK_DATA : HS_TRAILER;
                if (!size && f->body_swap && rechunk(f, sc, NULL, 0, 1) < 0) /* the rest, then "0" */
                    return -1;
            } else if (ll == 2) {
                f->state = HS_HEAD; /* the empty line after the trailers: the request is complete */
            }
            break;
        }
        default: return -1;
        }
    }
out:
    *used = i;
    return 0;
}
