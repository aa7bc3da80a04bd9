/* The secrets and header rules of a box's network config (net.h): names, hosts and
 * placeholders as given on the command line, in cocoon.yaml or config.json, checked.
 * Values never pass through here except net_secret_value_ok's check. */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "net/policy.h"

int net_secret_name_valid(const char *n)
{
    if (!*n || strlen(n) >= NET_SECRET_NAME || isdigit((unsigned char)*n))
        return 0;
    for (; *n; n++)
        if (!isalnum((unsigned char)*n) && *n != '_')
            return 0;
    return 1;
}

static struct net_secret *secret_named(struct net_config *c, const char *name, size_t len)
{
    for (int i = 0; i < c->nsecrets; i++)
        if (strlen(c->secrets[i].name) == len && !strncmp(c->secrets[i].name, name, len))
            return &c->secrets[i];
    return NULL;
}

/* "a.example.com,*.b.org" added to s's hosts. */
static int secret_hosts(struct net_secret *s, const char *hosts, char *err, size_t errcap)
{
    const char *p = hosts;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char h[254];
        if (n == 0 || n >= sizeof(h)) {
            snprintf(err, errcap, "secret %s: bad host list \"%s\"", s->name, hosts);
            return -1;
        }
        memcpy(h, p, n);
        h[n] = 0;
        for (char *q = h; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        if (!net_domain_valid(h) || !strcmp(h, "*")) {
            snprintf(err, errcap, "secret %s: host \"%s\" must be a host name or *.DOMAIN", s->name, h);
            return -1;
        }
        int dup = 0;
        for (int i = 0; i < s->nhosts; i++)
            dup |= !strcmp(s->hosts[i], h);
        if (!dup) {
            if (s->nhosts >= NET_SECRET_HOSTS) {
                snprintf(err, errcap, "secret %s: at most %d hosts", s->name, NET_SECRET_HOSTS);
                return -1;
            }
            snprintf(s->hosts[s->nhosts++], sizeof(s->hosts[0]), "%s", h);
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

int net_secret_add(struct net_config *c, const char *name, const char *hosts, const char *placeholder, char *err,
                   size_t errcap)
{
    if (!net_secret_name_valid(name)) {
        snprintf(err, errcap, "secret name \"%s\" must be an environment variable name (letters, digits, _)", name);
        return -1;
    }
    if (secret_named(c, name, strlen(name))) {
        snprintf(err, errcap, "secret %s is given twice", name);
        return -1;
    }
    if (c->nsecrets >= NET_MAX_SECRETS) {
        snprintf(err, errcap, "too many secrets (at most %d)", NET_MAX_SECRETS);
        return -1;
    }
    struct net_secret *s = &c->secrets[c->nsecrets];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    if (placeholder) {
        size_t pl = strlen(placeholder);
        if (pl < 24 || pl >= sizeof(s->placeholder) || strncmp(placeholder, "cocoon-secret-", 14)) {
            snprintf(err, errcap, "secret %s: bad placeholder", name);
            return -1;
        }
        snprintf(s->placeholder, sizeof(s->placeholder), "%s", placeholder);
    } else {
        uint8_t rnd[16];
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        ssize_t got = fd >= 0 ? read(fd, rnd, sizeof(rnd)) : -1;
        if (fd >= 0)
            close(fd);
        if (got != (ssize_t)sizeof(rnd)) {
            snprintf(err, errcap, "no randomness for the placeholder of secret %s", name);
            return -1;
        }
        char hex[33];
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        snprintf(s->placeholder, sizeof(s->placeholder), "cocoon-secret-%s-%s", name, hex);
    }
    if (hosts && secret_hosts(s, hosts, err, errcap) < 0)
        return -1;
    c->nsecrets++;
    return 0;
}

int net_secret_hosts_add(struct net_config *c, const char *spec, char *err, size_t errcap)
{
    const char *eq = strchr(spec, '=');
    struct net_secret *s = eq ? secret_named(c, spec, (size_t)(eq - spec)) : NULL;
    if (!s) {
        snprintf(err, errcap, "--secret-host \"%s\": use NAME=HOST[,HOST...] for a secret given with --secret NAME",
                 spec);
        return -1;
    }
    return secret_hosts(s, eq + 1, err, errcap);
}

int net_header_rule_add(struct net_config *c, const char *text, char *err, size_t errcap)
{
    const char *colon = strchr(text, ':'), *eq = colon ? strchr(colon, '=') : NULL;
    if (c->nheader_rules >= NET_MAX_HEADER_RULES) {
        snprintf(err, errcap, "too many header rules (at most %d)", NET_MAX_HEADER_RULES);
        return -1;
    }
    struct net_header_rule *r = &c->header_rules[c->nheader_rules];
    memset(r, 0, sizeof(*r));
    size_t hl = colon ? (size_t)(colon - text) : 0, nl = eq ? (size_t)(eq - colon - 1) : 0;
    if (!eq || !hl || hl >= sizeof(r->host) || !nl || nl >= sizeof(r->name) || strlen(eq + 1) >= sizeof(r->value)) {
        snprintf(err, errcap, "header rule \"%s\": use HOST:Name=Value", text);
        return -1;
    }
    memcpy(r->host, text, hl);
    for (char *q = r->host; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    memcpy(r->name, colon + 1, nl);
    snprintf(r->value, sizeof(r->value), "%s", eq + 1);
    int ok = net_domain_valid(r->host) && strcmp(r->host, "*");
    for (const char *q = r->name; *q; q++)
        ok &= isalnum((unsigned char)*q) || strchr("!#$%&'*+-.^_`|~", *q) != NULL;
    for (const char *q = r->value; *q; q++)
        ok &= (unsigned char)*q >= 0x20 && *q != 0x7f;
    if (!ok || !strcasecmp(r->name, "host") || !strcasecmp(r->name, "content-length") ||
        !strcasecmp(r->name, "transfer-encoding")) {
        snprintf(err, errcap,
                 "header rule \"%s\": a host name or *.DOMAIN, a header name (not Host or a length), "
                 "and a value without control characters",
                 text);
        return -1;
    }
    snprintf(r->text, sizeof(r->text), "%s", text);
    c->nheader_rules++;
    return 0;
}

int net_secret_value_ok(const char *value, size_t len, char *err, size_t errcap)
{
    if (len == 0 || len > NET_SECRET_VALUE_MAX) {
        snprintf(err, errcap, "a secret's value has 1 to %d bytes (got %zu)", NET_SECRET_VALUE_MAX, len);
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
            snprintf(err, errcap, "a secret's value may not hold control characters (a line end, NUL...)");
            return 0;
        }
    return 1;
}

static const char *const violation_names[] = {
    [NET_SV_BLOCK_AND_LOG] = "block-and-log", [NET_SV_BLOCK] = "block", [NET_SV_BLOCK_AND_STOP] = "block-and-stop-box"};

const char *net_secret_violation_name(int v)
{
    return v >= 0 && v < (int)(sizeof(violation_names) / sizeof(violation_names[0])) ? violation_names[v] : "?";
}

int net_secret_violation_parse(const char *text, int *out, char *err, size_t errcap)
{
    for (int i = 0; i < (int)(sizeof(violation_names) / sizeof(violation_names[0])); i++)
        if (!strcmp(text, violation_names[i])) {
            *out = i;
            return 0;
        }
    snprintf(err, errcap, "secret violation action \"%.60s\": use block, block-and-log or block-and-stop-box", text);
    return -1;
}

int net_secret_in_word(const char *w, size_t n, unsigned *bit)
{
    if (n == 7 && !strncmp(w, "headers", 7))
        *bit = 0;
    else if (n == 5 && !strncmp(w, "query", 5))
        *bit = NET_SECRET_IN_QUERY;
    else if (n == 4 && !strncmp(w, "body", 4))
        *bit = NET_SECRET_IN_BODY;
    else
        return -1;
    return 0;
}

int net_secret_in_set(struct net_config *c, const char *spec, char *err, size_t errcap)
{
    const char *eq = strchr(spec, '=');
    struct net_secret *s = eq ? secret_named(c, spec, (size_t)(eq - spec)) : NULL;
    if (!s) {
        snprintf(err, errcap,
                 "--secret-in \"%.100s\": use NAME=headers,query,body for a secret given with --secret NAME", spec);
        return -1;
    }
    unsigned in = 0;
    for (const char *p = eq + 1; *p;) {
        size_t n = strcspn(p, ",");
        unsigned bit;
        if (net_secret_in_word(p, n, &bit) < 0) {
            snprintf(err, errcap, "--secret-in %s: \"%.*s\" is not a place: use headers, query or body", s->name,
                     (int)(n < 40 ? n : 40), p);
            return -1;
        }
        in |= bit;
        p += n + (p[n] == ',');
    }
    s->in = in;
    return 0;
}
