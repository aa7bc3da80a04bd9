/* config.json of a box: written once at create (atomically, so the monitor never reads
 * half a file) and read back by cocoon_box_open and by cocoon-vmm. The keys are the
 * contract of docs/internals.md. */
#include "lib/internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "util/util.h"

char *lib_config_json(const struct lib_box_config *c)
{
    char hostname[32];
    snprintf(hostname, sizeof(hostname), "cocoon-%.6s", c->id);
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:b, s:i, s:s}", "id", c->id, "name",
                  c->name, "created", (json_int_t)c->created, "image", c->image, "kernel", c->kernel, "initrd",
                  c->initrd, "disk", c->disk, "disk_format", c->disk_format, "cpus", (int)c->cpus, "memory_mib",
                  (int)c->memory_mib, "accel", c->accel, "backend", c->backend[0] ? c->backend : "auto", "ephemeral",
                  c->ephemeral, "boot_timeout_ms", (int)c->boot_timeout_ms, "hostname", hostname);
    if (!o)
        return NULL;
    if (c->rootfs[0])
        json_object_set_new(o, "rootfs", json_string(c->rootfs));
    if (c->image_id[0])
        json_object_set_new(o, "image_id", json_string(c->image_id));
    if (c->disk_size)
        json_object_set_new(o, "disk_size", json_integer((json_int_t)c->disk_size));
    if (c->net_mode[0] && strcmp(c->net_mode, "none") != 0) {
        json_t *net = json_pack("{s:s, s:[], s:[]}", "mode", c->net_mode, "rules", "ports");
        for (unsigned i = 0; net && i < c->n_net_rules; i++)
            json_array_append_new(json_object_get(net, "rules"), json_string(c->net_rules[i]));
        for (unsigned i = 0; net && i < c->n_net_ports; i++)
            json_array_append_new(json_object_get(net, "ports"), json_string(c->net_ports[i]));
        if (net)
            json_object_set_new(o, "net", net);
    }
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

int lib_net_options(const cocoon_box_options *o, struct lib_box_config *c, cocoon_error *err)
{
    int mode = NET_MODE_PUBLIC; /* the default on every backend */
    char why[512];
    if (o->net && *o->net && net_mode_parse(o->net, &mode) < 0)
        return lib_err(err, COCOON_E_INVALID, "network mode \"%s\": use none, public or open", o->net);
    snprintf(c->net_mode, sizeof(c->net_mode), "%s", net_mode_name(mode));
    for (size_t i = 0; o->net_rules && o->net_rules[i]; i++) {
        const char *r = o->net_rules[i];
        int allow = !strncmp(r, "allow ", 6);
        struct net_rule parsed;
        if (!allow && strncmp(r, "deny ", 5) != 0)
            return lib_err(err, COCOON_E_INVALID, "network rule \"%s\" must start with \"allow \" or \"deny \"", r);
        if (net_rule_parse(r + (allow ? 6 : 5), allow, &parsed, why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_INVALID, "%s", why);
        if (c->n_net_rules >= sizeof(c->net_rules) / sizeof(c->net_rules[0]) || strlen(r) >= sizeof(c->net_rules[0]))
            return lib_err(err, COCOON_E_INVALID, "too many or too long network rules");
        snprintf(c->net_rules[c->n_net_rules++], sizeof(c->net_rules[0]), "%s", r);
    }
    for (size_t i = 0; o->net_ports && o->net_ports[i]; i++) {
        struct net_port port;
        if (net_port_parse(o->net_ports[i], &port, why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_INVALID, "%s", why);
        if (c->n_net_ports >= sizeof(c->net_ports) / sizeof(c->net_ports[0]) ||
            strlen(o->net_ports[i]) >= sizeof(c->net_ports[0]))
            return lib_err(err, COCOON_E_INVALID, "too many or too long published ports");
        snprintf(c->net_ports[c->n_net_ports++], sizeof(c->net_ports[0]), "%s", o->net_ports[i]);
    }
    if (mode == NET_MODE_NONE && (c->n_net_rules || c->n_net_ports))
        return lib_err(err, COCOON_E_INVALID, "network rules and published ports need --net public or --net open");
    return 0;
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
    get_str(o, "backend", c->backend, sizeof(c->backend));
    c->cpus = get_uint(o, "cpus", 1);
    c->memory_mib = get_uint(o, "memory_mib", 512);
    c->boot_timeout_ms = get_uint(o, "boot_timeout_ms", 60000);
    c->ephemeral = json_is_true(json_object_get(o, "ephemeral"));
    json_t *cr = json_object_get(o, "created");
    c->created = json_is_integer(cr) ? (long long)json_integer_value(cr) : 0;
    json_t *net = json_object_get(o, "net"), *x;
    size_t ni;
    get_str(net, "mode", c->net_mode, sizeof(c->net_mode));
    json_array_foreach(json_object_get(net, "rules"), ni, x)
    {
        if (json_is_string(x) && c->n_net_rules < sizeof(c->net_rules) / sizeof(c->net_rules[0]))
            snprintf(c->net_rules[c->n_net_rules++], sizeof(c->net_rules[0]), "%s", json_string_value(x));
    }
    json_array_foreach(json_object_get(net, "ports"), ni, x)
    {
        if (json_is_string(x) && c->n_net_ports < sizeof(c->net_ports) / sizeof(c->net_ports[0]))
            snprintf(c->net_ports[c->n_net_ports++], sizeof(c->net_ports[0]), "%s", json_string_value(x));
    }
    json_t *ds = json_object_get(o, "disk_size");
    c->disk_size = json_is_integer(ds) && json_integer_value(ds) > 0 ? (uint64_t)json_integer_value(ds) : 0;
    json_decref(o);
    return 0;
}
