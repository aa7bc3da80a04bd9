/* Fuzz target: image JSON documents and the small text parsers around them. The first
 * byte picks the parser (manifest, index + platform selection, config, document kind,
 * image reference, WWW-Authenticate challenge); the rest is its input. Any error is
 * fine; a crash, a leak or a sanitizer report is not.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "image/image_int.h"
#include "image/registry_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct image_manifest_info info;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 6;
    const char *json = (const char *)data + 1;
    size_t len = size - 1;
    char err[512];
    switch (mode) {
    case 0: {
        uint64_t cs;
        if (mf_parse_manifest(json, len, &info, &cs, err, sizeof(err)) == 0) {
            if (info.nlayers > IMAGE_MAX_LAYERS || !img_digest_valid(info.config_digest))
                abort();
            for (size_t i = 0; i < info.nlayers; i++)
                if (!img_digest_valid(info.layers[i].digest) || !mf_layer_type_ok(info.layers[i].media_type))
                    abort();
        }
        break;
    }
    case 1: {
        struct mf_index idx;
        if (mf_parse_index(json, len, &idx, err, sizeof(err)) == 0) {
            int i = mf_select_platform(&idx, "linux", "amd64", err, sizeof(err));
            if (i >= (int)idx.n || (i >= 0 && (strcmp(idx.e[i].os, "linux") || strcmp(idx.e[i].arch, "amd64"))))
                abort();
            mf_index_free(&idx);
        }
        break;
    }
    case 2: {
        struct image_config c;
        if (image_config_parse(json, len, &c, err, sizeof(err)) == 0) {
            if (!c.env)
                abort();
            image_config_free(&c);
        }
        break;
    }
    case 3: (void)mf_kind_of(json, len, len > 3 ? MT_OCI_INDEX : NULL); break;
    case 4:
    case 5: {
        char *s = malloc(len + 1);
        if (!s)
            return 0;
        memcpy(s, json, len);
        s[len] = 0;
        if (mode == 4) {
            struct image_ref r;
            if (image_ref_parse(s, &r, err, sizeof(err)) == 0) {
                char canon[1300];
                struct image_ref again;
                image_ref_format(&r, canon, sizeof(canon));
                if (image_ref_parse(canon, &again, err, sizeof(err)) != 0 || memcmp(&r, &again, sizeof(r)))
                    abort();
            }
        } else {
            struct reg_challenge c;
            (void)reg_challenge_parse(s, &c);
        }
        free(s);
        break;
    }
    }
    return 0;
}
