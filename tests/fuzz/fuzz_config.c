/* Fuzz target: a cocoon.yaml as `cocoon config`, `up` and the SDKs read it
 * (config_load_text: libyaml events, the tree, the schema, ${NAME} substitution). A file
 * that is accepted must give boxes within the bounds, each with a digest that is the
 * digest of its own spec, and JSON that reads back to itself. Any refusal is fine; a
 * crash, a leak or a sanitizer report is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[2048];
    json_t *cfg = config_load_text((const char *)data, size, "fuzz.yaml", "/fuzz/fuzz.yaml", err, sizeof(err));
    if (!cfg) {
        if (!err[0] || !memchr(err, 0, sizeof(err)))
            abort(); /* a refusal always says why */
        return 0;
    }
    json_t *boxes = json_object_get(cfg, "boxes");
    if (!json_array_size(boxes) || json_array_size(boxes) > CONFIG_BOXES_MAX)
        abort();
    size_t i;
    json_t *box;
    json_array_foreach(boxes, i, box)
    {
        char digest[80];
        if (config_box_digest(box, digest) == 0 && strcmp(digest, json_string_value(json_object_get(box, "digest"))))
            abort();
        char diff[256];
        config_box_diff(box, box, diff, sizeof(diff));
        if (diff[0])
            abort(); /* a box does not differ from itself */
    }
    char *text = json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_t *again = text ? json_loads(text, 0, NULL) : NULL;
    if (text && !json_equal(cfg, again))
        abort();
    json_decref(again);
    free(text);
    json_decref(cfg);
    return 0;
}
