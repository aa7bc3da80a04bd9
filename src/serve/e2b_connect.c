/* The Connect protocol's wire pieces for the E2B front: envelopes ([flags u8][length
 * u32 big-endian][message]) read from a client's body and written to a stream, and the
 * HTTP status of each error code. Pure functions over bytes: fuzz_connect drives them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/e2b.h"

int connect_frame_next(const char *buf, size_t len, size_t *off, struct connect_frame *f, char *msg, size_t cap)
{
    if (*off >= len)
        return 0;
    size_t left = len - *off;
    const unsigned char *p = (const unsigned char *)buf + *off;
    if (left < 5) {
        snprintf(msg, cap, "a Connect envelope is cut: %zu bytes where its 5-byte header should be", left);
        return -1;
    }
    size_t n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | (size_t)p[4];
    if (n > E2B_MESSAGE_MAX) {
        snprintf(msg, cap, "a Connect message of %zu bytes is larger than the %u-byte bound", n, E2B_MESSAGE_MAX);
        return -1;
    }
    if (n > left - 5) {
        snprintf(msg, cap, "a Connect envelope announces %zu bytes but %zu follow", n, left - 5);
        return -1;
    }
    if (p[0] & CONNECT_FLAG_COMPRESSED) {
        snprintf(msg, cap, "compressed Connect messages are not accepted (send them uncompressed)");
        return -1;
    }
    f->flags = p[0];
    f->data = (const char *)p + 5;
    f->len = n;
    *off += 5 + n;
    return 1;
}

char *connect_frame_encode(unsigned flags, const char *data, size_t len, size_t *out_len)
{
    if (len > 0xffffffffu)
        return NULL;
    char *out = malloc(len + 5);
    if (!out)
        return NULL;
    out[0] = (char)flags;
    out[1] = (char)(len >> 24);
    out[2] = (char)(len >> 16);
    out[3] = (char)(len >> 8);
    out[4] = (char)len;
    if (len)
        memcpy(out + 5, data, len);
    *out_len = len + 5;
    return out;
}

char *connect_frames_last(const char *data, size_t len, size_t *out_len)
{
    size_t a, b;
    char *one = connect_frame_encode(0, data, len, &a), *two = connect_frame_encode(CONNECT_FLAG_END, "{}", 2, &b);
    char *both = one && two ? malloc(a + b) : NULL;
    if (both) {
        memcpy(both, one, a);
        memcpy(both + a, two, b);
        *out_len = a + b;
    }
    free(one);
    free(two);
    return both;
}

static json_t *parse_object(const char *data, size_t len, char *msg, size_t cap)
{
    if (len == 0)
        return json_object();
    json_error_t je;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        snprintf(msg, cap, "the request message is not valid JSON: %s", je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(msg, cap, "the request message is not a JSON object");
        return NULL;
    }
    return j;
}

json_t *connect_request_message(const char *body, size_t len, int enveloped, char *msg, size_t cap)
{
    if (!enveloped) {
        if (len > E2B_MESSAGE_MAX) {
            snprintf(msg, cap, "the request message is larger than %u bytes", E2B_MESSAGE_MAX);
            return NULL;
        }
        return parse_object(body, len, msg, cap);
    }
    size_t off = 0;
    struct connect_frame f;
    int got = connect_frame_next(body, len, &off, &f, msg, cap);
    if (got < 0)
        return NULL;
    if (got == 0 || (f.flags & CONNECT_FLAG_END)) {
        snprintf(msg, cap, "the request has no Connect message");
        return NULL;
    }
    if (off != len) {
        snprintf(msg, cap, "a server-streaming request carries exactly one message");
        return NULL;
    }
    return parse_object(f.data, f.len, msg, cap);
}

unsigned connect_http_status(const char *code)
{
    static const struct {
        const char *code;
        unsigned status;
    } table[] = {{"canceled", 499},
                 {"unknown", 500},
                 {"invalid_argument", 400},
                 {"deadline_exceeded", 504},
                 {"not_found", 404},
                 {"already_exists", 409},
                 {"permission_denied", 403},
                 {"resource_exhausted", 429},
                 {"failed_precondition", 412},
                 {"aborted", 409},
                 {"out_of_range", 400},
                 {"unimplemented", 501},
                 {"internal", 500},
                 {"unavailable", 503},
                 {"data_loss", 500},
                 {"unauthenticated", 401}};
    for (size_t i = 0; code && i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(code, table[i].code) == 0)
            return table[i].status;
    return 500;
}
