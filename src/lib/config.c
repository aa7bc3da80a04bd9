/* config.json of a box: written once at create (atomically, so the monitor never reads
 * half a file) and read back by cocoon_box_open and by cocoon-vmm. The keys are the
 * contract of docs/internals.md. */
#include "lib/internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

char *lib_config_json(const struct lib_box_config *c)
{
    char hostname[32];
    snprintf(hostname, sizeof(hostname), "cocoon-%.6s", c->id);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:b, s:i, s:s}", "id", c->id,
                          "name", c->name, "created", (json_int_t)c->created, "image", c->image, "kernel", c->kernel,
                          "initrd", c->initrd, "disk", c->disk, "disk_format", c->disk_format, "cpus", (int)c->cpus,
                          "memory_mib", (int)c->memory_mib, "accel", c->accel, "backend", "qemu", "ephemeral",
                          c->ephemeral, "boot_timeout_ms", (int)c->boot_timeout_ms, "hostname", hostname);
    if (!o)
        return NULL;
    if (c->rootfs[0])
        json_object_set_new(o, "rootfs", json_string(c->rootfs));
    if (c->image_id[0])
        json_object_set_new(o, "image_id", json_string(c->image_id));
    if (c->disk_size)
        json_object_set_new(o, "disk_size", json_integer((json_int_t)c->disk_size));
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *grown = realloc(text, n + 2);
    if (!grown) {
        free(text);
        return NULL;
    }
    grown[n] = '\n'; /* a trailing newline is friendlier to cat */
    grown[n + 1] = 0;
    return grown;
}

int lib_config_write(const char *box_dir, const struct lib_box_config *c, cocoon_error *err)
{
    char *text = lib_config_json(c);
    if (!text)
        return lib_err(err, COCOON_E_NOMEM, "cannot build config.json");
    char path[LIB_PATH_MAX];
    int rc = lib_path(path, sizeof(path), "%s/config.json", box_dir);
    if (rc == 0)
        rc = util_write_file_atomic(path, text, strlen(text));
    int e = errno;
    free(text);
    if (rc < 0)
        return lib_err(err, COCOON_E_IO, "cannot write %s/config.json: %s", box_dir, strerror(e));
    return 0;
}

static void get_str(json_t *o, const char *key, char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(o, key));
    snprintf(out, cap, "%s", s ? s : "");
}

static unsigned get_uint(json_t *o, const char *key, unsigned dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (unsigned)json_integer_value(v) : dflt;
}

int lib_config_read(const char *box_dir, struct lib_box_config *c, cocoon_error *err)
{
    char path[LIB_PATH_MAX];
    if (lib_path(path, sizeof(path), "%s/config.json", box_dir) < 0)
        return lib_err(err, COCOON_E_INVALID, "box path too long: %s", box_dir);
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o)
        return lib_err(err, errno == ENOENT ? COCOON_E_NOT_FOUND : COCOON_E_IO, "cannot read %s: %s", path, je.text);
    if (!json_is_object(o)) {
        json_decref(o);
        return lib_err(err, COCOON_E_IO, "%s is not a JSON object", path);
    }
    memset(c, 0, sizeof(*c));
    get_str(o, "id", c->id, sizeof(c->id));
    get_str(o, "name", c->name, sizeof(c->name));
    get_str(o, "image", c->image, sizeof(c->image));
    get_str(o, "image_id", c->image_id, sizeof(c->image_id));
    get_str(o, "rootfs", c->rootfs, sizeof(c->rootfs));
    get_str(o, "kernel", c->kernel, sizeof(c->kernel));
    get_str(o, "initrd", c->initrd, sizeof(c->initrd));
    get_str(o, "disk", c->disk, sizeof(c->disk));
    get_str(o, "disk_format", c->disk_format, sizeof(c->disk_format));
    get_str(o, "accel", c->accel, sizeof(c->accel));
    c->cpus = get_uint(o, "cpus", 1);
    c->memory_mib = get_uint(o, "memory_mib", 512);
    c->boot_timeout_ms = get_uint(o, "boot_timeout_ms", 60000);
    c->ephemeral = json_is_true(json_object_get(o, "ephemeral"));
    json_t *cr = json_object_get(o, "created");
    c->created = json_is_integer(cr) ? (long long)json_integer_value(cr) : 0;
    json_t *ds = json_object_get(o, "disk_size");
    c->disk_size = json_is_integer(ds) && json_integer_value(ds) > 0 ? (uint64_t)json_integer_value(ds) : 0;
    json_decref(o);
    return 0;
}
