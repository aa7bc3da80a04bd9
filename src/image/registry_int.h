/* Private to the registry client: authentication helpers (registry_auth.c) used by the
 * HTTP side (registry.c), exposed here so unit tests can exercise them. */
#ifndef COCOON_IMAGE_REGISTRY_INT_H
#define COCOON_IMAGE_REGISTRY_INT_H

#include <stddef.h>

/* A parsed WWW-Authenticate challenge: scheme "Bearer" or "Basic" and its parameters. */
struct reg_challenge {
    char scheme[16];
    char realm[1024];
    char service[256];
    char scope[1024];
};
/* Parses the first Bearer challenge of a header value (or the Basic one if no Bearer). */
int reg_challenge_parse(const char *value, struct reg_challenge *c);

/* Credentials: "user:password" may be this long (registry tokens used as passwords
 * run to several KiB); longer ones are refused with an error, never cut. */
#define REG_SECRET_MAX (64u << 10)
#define REG_BASIC_MAX (4 * ((REG_SECRET_MAX + 2) / 3) + 1) /* its base64, NUL included */

/* base64 of in into out (NUL-terminated); -1 if it does not fit. */
int reg_base64(const void *in, size_t len, char *out, size_t cap);
/* Decodes base64 in; -1 if malformed or too long. out is NUL-terminated. */
int reg_unbase64(const char *in, char *out, size_t cap, size_t *outlen);

/* Looks up credentials for registry host (docker.io matches the Docker Hub keys) in a
 * docker config.json style file. Fills basic with base64("user:pass") and returns 1 when
 * found, 0 when there are none (or the file is missing), -1 on a malformed file. */
int reg_auth_lookup(const char *auth_file, const char *registry, char *basic, size_t cap, char *err, size_t errlen);

#endif
