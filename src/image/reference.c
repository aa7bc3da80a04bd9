/* Image references as people type them ("python", "user/x:1", "localhost:5000/a/b@sha256:...")
 * parsed into registry, repository, tag and digest with Docker Hub's normalisation, and
 * printed back in canonical form. Follows the distribution reference grammar. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "image/image_int.h"

int img_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

static int is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

int img_digest_valid(const char *s)
{
    if (strncmp(s, "sha256:", 7) != 0)
        return 0;
    s += 7;
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == 64;
}

/* domain-component ('.' domain-component)* [':' port]; or a bracketed IPv6 literal. */
static int valid_domain(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0)
        return 0;
    if (s[0] == '[') {
        while (i < n && s[i] != ']') {
            char c = s[i];
            if (i > 0 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':'))
                return 0;
            i++;
        }
        if (i >= n || i < 3)
            return 0;
        i++;
    } else {
        for (;;) {
            size_t start = i;
            while (i < n && (is_alnum(s[i]) || s[i] == '-'))
                i++;
            if (i == start || s[start] == '-' || s[i - 1] == '-')
                return 0;
            if (i < n && s[i] == '.') {
                i++;
                continue;
            }
            break;
        }
    }
    if (i < n && s[i] == ':') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start || i - start > 5)
            return 0;
    }
    return i == n;
}

/* alpha-numeric (separator alpha-numeric)*, separator: '.', '_', '__', '-'+ */
static int valid_component(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < n && is_lower_alnum(s[i]))
            i++;
        if (i == start)
            return 0;
        if (i == n)
            return 1;
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i++;
            if (i < n && s[i] == '_')
                i++;
        } else if (s[i] == '-') {
            while (i < n && s[i] == '-')
                i++;
        } else {
            return 0;
        }
    }
}

static int valid_tag(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(((struct image_ref *)0)->tag))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int word = is_alnum(c) || c == '_';
        if (!(word || (i > 0 && (c == '.' || c == '-'))))
            return 0;
    }
    return 1;
}

int image_ref_parse(const char *text, struct image_ref *ref, char *err, size_t errlen)
{
    memset(ref, 0, sizeof(*ref));
    if (!text || !*text)
        return img_err(err, errlen, "empty image reference");
    size_t tlen = strlen(text);
    if (tlen > 1024)
        return img_err(err, errlen, "image reference is too long (%zu characters; at most 1024)", tlen);
    char buf[1100];
    memcpy(buf, text, tlen + 1);

    char *at = strchr(buf, '@');
    if (at) {
        *at = 0;
        const char *dg = at + 1;
        if (strncmp(dg, "sha256:", 7) != 0)
            return img_err(err, errlen,
                           "invalid digest in image reference '%s': only sha256:<64 lowercase hex digits> "
                           "digests are supported",
                           text);
        if (!img_digest_valid(dg))
            return img_err(err, errlen,
                           "invalid digest in image reference '%s': expected sha256: followed by 64 lowercase hex "
                           "digits",
                           text);
        memcpy(ref->digest, dg, IMAGE_DIGEST_MAX); /* validated: exactly 71 characters */
    }
    char *slash = strrchr(buf, '/');
    char *colon = strrchr(slash ? slash : buf, ':');
    if (colon) {
        *colon = 0;
        if (!valid_tag(colon + 1))
            return img_err(err, errlen,
                           "invalid tag '%s' in image reference '%s': a tag is 1 to 127 letters, digits, '_', '.' "
                           "or '-', not starting with '.' or '-'",
                           colon + 1, text);
        memcpy(ref->tag, colon + 1, strlen(colon + 1) + 1); /* valid_tag: fits */
    }
    char *name = buf;
    if (!*name)
        return img_err(err, errlen, "image reference '%s' has no repository name", text);

    /* The first component is a registry when it looks like a host name. */
    char *first_end = strchr(name, '/');
    const char *path = name;
    if (first_end) {
        size_t flen = (size_t)(first_end - name);
        int has_upper = 0;
        for (size_t i = 0; i < flen; i++)
            if (name[i] >= 'A' && name[i] <= 'Z')
                has_upper = 1;
        if (memchr(name, '.', flen) || memchr(name, ':', flen) || (flen == 9 && !strncmp(name, "localhost", 9)) ||
            has_upper) {
            if (!valid_domain(name, flen))
                return img_err(err, errlen, "invalid registry host '%.*s' in image reference '%s'", (int)flen, name,
                               text);
            if (flen >= sizeof(ref->registry))
                return img_err(err, errlen, "registry host in '%s' is too long", text);
            memcpy(ref->registry, name, flen);
            ref->registry[flen] = 0;
            path = first_end + 1;
        }
    }
    if (!ref->registry[0] || !strcmp(ref->registry, "index.docker.io") ||
        !strcmp(ref->registry, "registry-1.docker.io")) {
        memset(ref->registry, 0, sizeof(ref->registry));
        snprintf(ref->registry, sizeof(ref->registry), "docker.io");
    }

    /* path components */
    const char *p = path;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (!valid_component(p, n)) {
            for (size_t i = 0; i < n; i++)
                if (p[i] >= 'A' && p[i] <= 'Z')
                    return img_err(err, errlen, "invalid repository name in '%s': repository names must be lowercase",
                                   text);
            return img_err(err, errlen,
                           "invalid repository name '%s' in image reference '%s': components are lowercase letters "
                           "and digits separated by '.', '_', '__' or '-'",
                           path, text);
        }
        if (!e)
            break;
        p = e + 1;
    }
    int hub = !strcmp(ref->registry, "docker.io");
    int n =
        snprintf(ref->repository, sizeof(ref->repository), "%s%s", hub && !strchr(path, '/') ? "library/" : "", path);
    if (n < 0 || (size_t)n >= sizeof(ref->repository) || strlen(ref->registry) + 1 + (size_t)n > 255)
        return img_err(err, errlen,
                       "image name is too long (registry/repository is at most 255 characters): '%.80s...'", text);
    if (!ref->tag[0] && !ref->digest[0])
        snprintf(ref->tag, sizeof(ref->tag), "latest");
    return 0;
}

void image_ref_format(const struct image_ref *ref, char *out, size_t cap)
{
    if (ref->digest[0])
        snprintf(out, cap, "%s/%s%s%s@%s", ref->registry, ref->repository, ref->tag[0] ? ":" : "", ref->tag,
                 ref->digest);
    else
        snprintf(out, cap, "%s/%s:%s", ref->registry, ref->repository, ref->tag[0] ? ref->tag : "latest");
}
