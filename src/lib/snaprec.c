/* snapshot.json read and written with jansson (snaprec.h). The writer's output reads
 * back to the same record; unknown keys are ignored so later versions can add some. */
#include "lib/snaprec.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int snap_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= SNAP_NAME_MAX || !isalnum((unsigned char)name[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
            return 0;
    return 1;
}

int snap_id_valid(const char *id)
{
    if (strlen(id) != 12)
        return 0;
    for (int i = 0; i < 12; i++)
        if (!isdigit((unsigned char)id[i]) && !(id[i] >= 'a' && id[i] <= 'f'))
            return 0;
    return 1;
}

static int get_text(json_t *root, const char *key, int required, char *out, size_t cap, char *err, size_t errcap)
{
    json_t *v = json_object_get(root, key);
    out[0] = 0;
    if (!v || json_is_null(v)) {
        if (required)
            snprintf(err, errcap, "snapshot record: \"%s\" is missing", key);
        return required ? -1 : 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(err, errcap, "snapshot record: \"%s\" must be a string of fewer than %zu bytes", key, cap);
        return -1;
    }
    snprintf(out, cap, "%s", json_string_value(v));
    return 0;
}

int snap_record_parse(const char *text, size_t len, struct snap_record *r, char *err, size_t errcap)
{
    memset(r, 0, sizeof(*r));
    if (len > SNAP_RECORD_MAX) {
        snprintf(err, errcap, "snapshot record: %zu bytes, more than %u", len, SNAP_RECORD_MAX);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        snprintf(err, errcap, "snapshot record: not a JSON object (%s)", root ? "other type" : je.text);
        json_decref(root);
        return -1;
    }
    int rc = -1;
    json_t *created = json_object_get(root, "created"), *vsize = json_object_get(root, "virtual_size");
    if (get_text(root, "id", 1, r->id, sizeof(r->id), err, errcap) < 0 ||
        get_text(root, "name", 1, r->name, sizeof(r->name), err, errcap) < 0 ||
        get_text(root, "box_id", 1, r->box_id, sizeof(r->box_id), err, errcap) < 0 ||
        get_text(root, "box_name", 0, r->box_name, sizeof(r->box_name), err, errcap) < 0 ||
        get_text(root, "parent", 0, r->parent, sizeof(r->parent), err, errcap) < 0 ||
        get_text(root, "image", 0, r->image, sizeof(r->image), err, errcap) < 0)
        goto out;
    if (!snap_id_valid(r->id) || !snap_id_valid(r->box_id) || (r->parent[0] && !snap_id_valid(r->parent))) {
        snprintf(err, errcap, "snapshot record: \"id\", \"box_id\" and \"parent\" must be 12 hex digits");
        goto out;
    }
    if (!snap_name_valid(r->name)) {
        snprintf(err, errcap, "snapshot record: bad name \"%s\"", r->name);
        goto out;
    }
    if (!json_is_integer(created) || json_integer_value(created) < 0 || !json_is_integer(vsize) ||
        json_integer_value(vsize) <= 0) {
        snprintf(err, errcap, "snapshot record: \"created\" and \"virtual_size\" must be positive integers");
        goto out;
    }
    r->created = (long long)json_integer_value(created);
    r->virtual_size = (uint64_t)json_integer_value(vsize);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

char *snap_record_json(const struct snap_record *r)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id", r->id, "name", r->name, "box_id", r->box_id,
                          "box_name", r->box_name, "parent", r->parent, "image", r->image, "created",
                          (json_int_t)r->created, "virtual_size", (json_int_t)r->virtual_size);
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *out = realloc(text, n + 2);
    if (!out) {
        free(text);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = 0;
    return out;
}
