/* The WebSocket opening handshake (RFC 6455 section 4.2), server side: checks the
 * client's upgrade request and computes Sec-WebSocket-Accept from its key. The HTTP
 * server sends the 101 answer itself. */
#include "serve/ws.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "util/util.h"

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/* base64 of 16 bytes: 22 characters and "==". */
#define WS_KEY_LEN 24

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static int is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int ws_accept_key(const char *client_key, char out[WS_ACCEPT_SIZE])
{
    if (!client_key)
        return -1;
    while (is_ows(*client_key))
        client_key++;
    size_t len = strlen(client_key);
    while (len > 0 && is_ows(client_key[len - 1]))
        len--;
    if (len != WS_KEY_LEN || client_key[22] != '=' || client_key[23] != '=')
        return -1;
    for (size_t i = 0; i < 22; i++)
        if (!is_base64_char(client_key[i]))
            return -1;
    /* The accept hashes the key as sent (not decoded) followed by the GUID. */
    unsigned char digest[SHA_DIGEST_LENGTH];
    unsigned int digest_len = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha1(), NULL) && EVP_DigestUpdate(md, client_key, WS_KEY_LEN) &&
             EVP_DigestUpdate(md, WS_GUID, sizeof(WS_GUID) - 1) && EVP_DigestFinal_ex(md, digest, &digest_len) &&
             digest_len == SHA_DIGEST_LENGTH;
    EVP_MD_CTX_free(md);
    if (!ok)
        return -1;
    /* 20 bytes encode to 28 characters and a NUL. */
    return util_base64_encode(digest, SHA_DIGEST_LENGTH, out, WS_ACCEPT_SIZE) == WS_ACCEPT_SIZE - 1 ? 0 : -1;
}

/* 1 when the comma-separated header value holds token (any case, spaces around it). */
static int has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = list;
    while (p && *p) {
        while (is_ows(*p) || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && is_ows(last[-1]))
            last--;
        if ((size_t)(last - p) == tlen && strncasecmp(p, token, tlen) == 0)
            return 1;
        p = end;
    }
    return 0;
}

int ws_upgrade_check(const struct ws_upgrade_request *req, char accept[WS_ACCEPT_SIZE], const char **why)
{
    if (!req->method || strcmp(req->method, "GET") != 0) {
        *why = "a WebSocket upgrade must be a GET request";
        return 405;
    }
    if (!req->upgrade || !has_token(req->upgrade, "websocket")) {
        *why = "this endpoint speaks WebSocket only: send \"Upgrade: websocket\"";
        return 400;
    }
    if (!req->connection || !has_token(req->connection, "upgrade")) {
        *why = "a WebSocket upgrade needs \"Connection: Upgrade\"";
        return 400;
    }
    if (!req->version || strcmp(req->version, "13") != 0) {
        *why = "unsupported WebSocket version: only 13 (RFC 6455) is spoken";
        return 426;
    }
    if (ws_accept_key(req->key, accept) < 0) {
        *why = "Sec-WebSocket-Key is missing or is not the base64 of 16 bytes";
        return 400;
    }
    *why = NULL;
    return 0;
}
