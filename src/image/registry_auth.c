/* Registry credentials: parsing WWW-Authenticate challenges (Bearer token flow and Basic),
 * base64, and looking a registry up in a docker config.json style auth file
 * ({"auths": {"host": {"auth": base64(user:pass)}}}). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "image/image_int.h"
#include "image/registry_int.h"
#include "util/util.h"

int reg_base64(const void *in, size_t len, char *out, size_t cap)
{
    return util_base64_encode(in, len, out, cap) < 0 ? -1 : 0;
}

int reg_unbase64(const char *in, char *out, size_t cap, size_t *outlen)
{
    return util_base64_decode(in, strlen(in), out, cap, outlen);
}

/* Reads name=value or name="quoted value" pairs after the scheme. */
static const char *parse_params(const char *p, struct reg_challenge *c)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != ',')
            p++;
        size_t klen = (size_t)(p - k);
        if (*p != '=')
            return k; /* the next scheme, or the end */
        p++;
        char val[1024];
        size_t n = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (n + 1 < sizeof(val))
                    val[n++] = *p;
                p++;
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ',' && *p != ' ') {
                if (n + 1 < sizeof(val))
                    val[n++] = *p;
                p++;
            }
        }
        val[n] = 0;
        if (klen == 5 && !strncasecmp(k, "realm", 5))
            snprintf(c->realm, sizeof(c->realm), "%s", val);
        else if (klen == 7 && !strncasecmp(k, "service", 7))
            snprintf(c->service, sizeof(c->service), "%.*s", (int)sizeof(c->service) - 1, val);
        else if (klen == 5 && !strncasecmp(k, "scope", 5))
            snprintf(c->scope, sizeof(c->scope), "%s", val);
    }
}

int reg_challenge_parse(const char *value, struct reg_challenge *c)
{
    struct reg_challenge basic = {0};
    int have_basic = 0;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != ' ' && *p != ',')
            p++;
        size_t slen = (size_t)(p - s);
        struct reg_challenge cur = {0};
        if (slen < sizeof(cur.scheme))
            memcpy(cur.scheme, s, slen);
        p = parse_params(p, &cur);
        if (!strcasecmp(cur.scheme, "Bearer")) {
            snprintf(cur.scheme, sizeof(cur.scheme), "Bearer");
            *c = cur;
            return 0;
        }
        if (!strcasecmp(cur.scheme, "Basic") && !have_basic) {
            snprintf(cur.scheme, sizeof(cur.scheme), "Basic");
            basic = cur;
            have_basic = 1;
        }
    }
    if (!have_basic)
        return -1;
    *c = basic;
    return 0;
}

/* Strips "https://", "http://" and any path from an auths key. */
static void key_host(const char *key, char *out, size_t cap)
{
    const char *p = strstr(key, "://");
    p = p ? p + 3 : key;
    size_t n = strcspn(p, "/");
    snprintf(out, cap, "%.*s", (int)n, p);
}

static int host_matches(const char *key, const char *registry)
{
    char h[512];
    key_host(key, h, sizeof(h));
    if (!strcmp(h, registry))
        return 1;
    if (!strcmp(registry, "docker.io"))
        return !strcmp(h, "index.docker.io") || !strcmp(h, "registry-1.docker.io") || !strcmp(h, "docker.io");
    return 0;
}

int reg_auth_lookup(const char *auth_file, const char *registry, char *basic, size_t cap, char *err, size_t errlen)
{
    basic[0] = 0;
    struct stat st;
    if (!auth_file || stat(auth_file, &st) < 0)
        return 0;
    if (st.st_size > (1 << 20))
        return img_err(err, errlen, "credentials file %s is larger than 1 MiB", auth_file);
    json_error_t je;
    json_t *root = json_load_file(auth_file, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return img_err(err, errlen, "credentials file %s is not valid JSON: %s (line %d)", auth_file, je.text, je.line);
    int rc = 0;
    json_t *auths = json_object_get(root, "auths");
    const char *key;
    json_t *v;
    if (auths && !json_is_object(auths)) {
        rc = img_err(err, errlen, "credentials file %s: \"auths\" is not an object", auth_file);
        goto out;
    }
    json_object_foreach(auths, key, v)
    {
        if (!host_matches(key, registry) || !json_is_object(v))
            continue;
        json_t *a = json_object_get(v, "auth");
        json_t *u = json_object_get(v, "username"), *pw = json_object_get(v, "password");
        if (json_is_string(a) && json_string_length(a) > 0) {
            char *dec = malloc(REG_SECRET_MAX + 1);
            size_t n;
            int bad =
                !dec || reg_unbase64(json_string_value(a), dec, REG_SECRET_MAX + 1, &n) < 0 || !memchr(dec, ':', n);
            if (dec)
                explicit_bzero(dec, REG_SECRET_MAX + 1);
            free(dec);
            if (bad) {
                rc = img_err(err, errlen,
                             "credentials file %s: the \"auth\" of %s is not base64 of user:password (of at most %u "
                             "bytes)",
                             auth_file, key, REG_SECRET_MAX);
                goto out;
            }
            if (json_string_length(a) >= cap) {
                rc = img_err(err, errlen, "credentials file %s: the \"auth\" of %s is too long", auth_file, key);
                goto out;
            }
            snprintf(basic, cap, "%s", json_string_value(a));
            rc = 1;
            goto out;
        }
        if (json_is_string(u) && json_is_string(pw)) {
            size_t len = json_string_length(u) + 1 + json_string_length(pw);
            char *up = len <= REG_SECRET_MAX ? malloc(len + 1) : NULL;
            int ok = up && snprintf(up, len + 1, "%s:%s", json_string_value(u), json_string_value(pw)) == (int)len &&
                     reg_base64(up, len, basic, cap) == 0;
            if (up)
                explicit_bzero(up, len + 1);
            free(up);
            if (!ok) {
                rc = img_err(err, errlen, "credentials file %s: credentials of %s are longer than %u bytes", auth_file,
                             key, REG_SECRET_MAX);
                goto out;
            }
            rc = 1;
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}
