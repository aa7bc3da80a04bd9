/* Box routes of `cocoon serve`: create (with an Idempotency-Key), list with pages and a
 * status filter, get, exists, start, stop, delete, and the box's console and network
 * logs. Boxes are libcocoon's: the CLI sees what the server makes and back. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "serve/boxdefaults.h"
#include "serve/idempotency.h"
#include "serve/serve.h"
#include "serve/worker.h"

#define PAGE_SIZE_MAX 1000

/* "configured" until the box first booted (its console log appears at the first boot). */
static const char *box_status(const cocoon_box_info *info)
{
    if (info->running)
        return "running";
    char path[COCOON_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/console.log", info->dir);
    return access(path, F_OK) == 0 ? "stopped" : "configured";
}

static long long updated_at(const cocoon_box_info *info)
{
    static const char *const files[] = {"console.log", "config.json"};
    char path[COCOON_PATH_MAX + 32];
    struct stat st;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", info->dir, files[i]);
        if (stat(path, &st) == 0)
            return (long long)st.st_mtime;
    }
    return info->created;
}

json_t *serve_box_json(const cocoon_box_info *info)
{
    char created[32], updated[32];
    serve_iso_time(info->created, created, sizeof(created));
    serve_iso_time(updated_at(info), updated, sizeof(updated));
    /* BoxLite's auto_stop/auto_delete are numbers of seconds cocoon does not have: left
     * out (its client reads them as integers); "ephemeral" says a box goes when it stops. */
    json_t *box =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:b,s:I,s:s,s:s}", "box_id", info->id, "status", box_status(info),
                  "created_at", created, "updated_at", updated, "image",
                  info->image[0] ? info->image : (info->rootfs[0] ? info->rootfs : "default"), "cpus",
                  (json_int_t)info->cpus, "memory_mib", (json_int_t)info->memory_mib, "ephemeral", info->ephemeral,
                  "disk_size_bytes", (json_int_t)info->disk_size, "image_id", info->image_id, "accel", info->accel);
    if (!box)
        return NULL;
    json_object_set_new(box, "name", info->name[0] ? json_string(info->name) : json_null());
    json_object_set_new(box, "pid", info->running ? json_integer(info->pid) : json_null());
    json_object_set_new(box, "main", main_status_json(info));
    json_object_set_new(box, "health", serve_health_json(info->dir, info->running));
    struct box_defaults d;
    if (box_defaults_read(info->dir, &d) == 0) {
        json_object_set_new(box, "labels", d.labels ? json_incref(d.labels) : json_object());
        if (d.env)
            json_object_set(box, "env", d.env);
        if (d.working_dir)
            json_object_set_new(box, "working_dir", json_string(d.working_dir));
        if (d.user)
            json_object_set_new(box, "user", json_string(d.user));
        box_defaults_free(&d);
    } else {
        json_object_set_new(box, "labels", json_object());
    }
    return box;
}

/* Answers with the box's current state (after create, start, stop). */
int serve_answer_box(struct req *r, cocoon_box *box, unsigned status)
{
    cocoon_box_info info;
    cocoon_error err;
    if (cocoon_box_inspect(box, &info, &err) < 0)
        return serve_cocoon_error(r, &err);
    json_t *j = serve_box_json(&info);
    if (!j)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    return serve_json(r, status, j);
}

/* ---- create ---- */

/* A table: clang-format would put one key per line. */
/* clang-format off */
static const char *const create_keys[] = {
    "name",        "image",       "rootfs",    "rootfs_path", "cpus",    "memory_mib", "disk_size_gb", "disk_size_bytes",
    "env",         "working_dir", "user",      "entrypoint",  "cmd",     "network",    "detach",       "auto_stop",
    "auto_delete", "labels",      "ephemeral", "auto_start",  "accel",   "vmm",        "ports",        "volumes",
    "security",    "command",     "restart",   "health",      "tty",     "open_stdin", "secrets",    "header_rules",
    "tls_intercept", "tls_bypass", "secret_violation", NULL};
/* clang-format on */

#define LABELS_MAX 64

/* BoxLite's auto_stop/auto_delete: a boolean or a number of seconds (0: off). */
static int get_flag_or_seconds(struct req *r, json_t *b, const char *key, int *on)
{
    json_t *v = json_object_get(b, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v))
        *on = json_is_true(v);
    else if (json_is_integer(v) && json_integer_value(v) >= 0)
        *on = json_integer_value(v) > 0;
    else
        return serve_error(r, 400, "invalid_argument", "field \"%s\" must be true, false or a number of seconds", key);
    return 0;
}

static int check_labels(struct req *r, json_t *labels)
{
    if (!labels || json_is_null(labels))
        return 0;
    if (!json_is_object(labels) || json_object_size(labels) > LABELS_MAX)
        return serve_error(r, 400, "invalid_argument", "field \"labels\" must be an object of at most %d strings",
                           LABELS_MAX);
    const char *key;
    json_t *v;
    json_object_foreach(labels, key, v)
    {
        if (!json_is_string(v) || strlen(key) > 128 || json_string_length(v) > 1024 ||
            strlen(json_string_value(v)) != json_string_length(v))
            return serve_error(r, 400, "invalid_argument",
                               "label \"%.60s\" must be a string (keys up to 128 bytes, values up to 1024)", key);
    }
    return 0;
}

/* "ports": ["8080:80", ...] (cocoon's form) or BoxLite's [{"host_port", "guest_port",
 * "protocol", "host_ip"}] → cocoon's strings, owned by *owned. */
static int read_ports(struct req *r, json_t *b, const char ***out, char ***owned)
{
    json_t *v = json_object_get(b, "ports");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) > 256)
        return serve_error(r, 400, "invalid_argument", "field \"ports\" must be an array of at most 256 ports");
    size_t n = json_array_size(v);
    *out = calloc(n + 1, sizeof(**out));
    *owned = calloc(n + 1, sizeof(**owned));
    if (!*out || !*owned)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(v, i);
        if (json_is_string(p)) {
            (*out)[i] = json_string_value(p);
            continue;
        }
        static const char *const keys[] = {"host_port", "guest_port", "protocol", "host_ip", NULL};
        uint64_t host = 0, guest = 0;
        const char *proto = "tcp", *ip = NULL;
        if (!json_is_object(p))
            return serve_error(r, 400, "invalid_argument", "ports[%zu] must be \"HOST:GUEST\" or an object", i);
        if (serve_only_keys(r, p, keys) < 0 || serve_get_uint(r, p, "host_port", 0, 65535, &host) < 0 ||
            serve_get_uint(r, p, "guest_port", 1, 65535, &guest) < 0 ||
            serve_get_string(r, p, "protocol", 8, &proto) < 0 || serve_get_string(r, p, "host_ip", 64, &ip) < 0)
            return -1;
        if (!guest)
            return serve_error(r, 400, "invalid_argument", "ports[%zu].guest_port is required", i);
        if (!host)
            return serve_error(r, 400, "invalid_argument",
                               "ports[%zu].host_port 0 (any free port) is not supported: name the host port", i);
        if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
            return serve_error(r, 400, "invalid_argument", "ports[%zu].protocol must be tcp or udp", i);
        if (asprintf(&(*owned)[i], "%s%s%llu:%llu/%s", ip ? ip : "", ip ? ":" : "", (unsigned long long)host,
                     (unsigned long long)guest, proto) < 0) {
            (*owned)[i] = NULL;
            return serve_error(r, 503, "resource_exhausted", "out of memory");
        }
        (*out)[i] = (*owned)[i];
    }
    return 0;
}

/* "network": {"mode": M, "allow_net": [HOST|CIDR...],
 *             "outbound": {"mode": M, "allow_net"|"allow": [HOST|CIDR...], "rules": [RULE...]},
 *             "inbound": {"mode": "enabled"|"disabled", "ports": ["8080:80", ...]}}
 * M: enabled (public internet through cocoon's filter), disabled (no network device),
 * open (everything). allow_net is BoxLite's allowlist: only those hosts (cocoon rules
 * "allow H" then "deny *" and "deny 0.0.0.0/0"); rules are cocoon's first-match rules. */
struct net_args {
    const char **rules, **ports;
    int inbound_disabled;
    char **owned; /* the rules made from allow_net */
    const char **all;
};

static void net_args_free(struct net_args *n)
{
    for (size_t i = 0; n->owned && n->owned[i]; i++)
        free(n->owned[i]);
    free(n->owned);
    free(n->all);
    free(n->rules);
    free(n->ports);
}

static int net_mode(struct req *r, const char *mode, const char *field, const char **out)
{
    if (!mode)
        return 0;
    if (strcmp(mode, "enabled") == 0 || strcmp(mode, "public") == 0)
        *out = "public";
    else if (strcmp(mode, "disabled") == 0 || strcmp(mode, "none") == 0)
        *out = "none";
    else if (strcmp(mode, "open") == 0)
        *out = "open";
    else
        return serve_error(r, 400, "invalid_argument",
                           "%s \"%.40s\" is not one of enabled (public internet through cocoon's filter), "
                           "disabled (no network device), open (everything, private ranges too)",
                           field, mode);
    return 0;
}

static int object_or_null(struct req *r, json_t *v, const char *field, const char *const *keys)
{
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return serve_error(r, 400, "invalid_argument", "field \"%s\" must be an object", field);
    return serve_only_keys(r, v, keys) < 0 ? -1 : 1;
}

static int read_network(struct req *r, json_t *net, cocoon_box_options *o, struct net_args *n)
{
    static const char *const net_keys[] = {"outbound", "inbound", "mode", "allow_net", NULL};
    static const char *const out_keys[] = {"mode", "rules", "allow", "allow_net", NULL};
    static const char *const in_keys[] = {"mode", "ports", NULL};
    int has = object_or_null(r, net, "network", net_keys);
    if (has <= 0)
        return has;
    const char *mode = NULL, *out_mode = NULL, *in_mode = NULL, **allow = NULL, **out_allow = NULL;
    int rc = -1;
    json_t *out = json_object_get(net, "outbound"), *in = json_object_get(net, "inbound");
    if (serve_get_string(r, net, "mode", 32, &mode) < 0 || serve_get_strings(r, net, "allow_net", 1024, &allow) < 0 ||
        net_mode(r, mode, "network.mode", &o->net) < 0 || object_or_null(r, out, "network.outbound", out_keys) < 0 ||
        object_or_null(r, in, "network.inbound", in_keys) < 0)
        goto done;
    if (json_is_object(out)) {
        if (serve_get_string(r, out, "mode", 32, &out_mode) < 0 ||
            serve_get_strings(r, out, "rules", 1024, &n->rules) < 0 ||
            net_mode(r, out_mode, "network.outbound.mode", &o->net) < 0)
            goto done;
        if (!allow && (serve_get_strings(r, out, "allow_net", 1024, &out_allow) < 0 ||
                       (!out_allow && serve_get_strings(r, out, "allow", 1024, &out_allow) < 0)))
            goto done;
    }
    if (json_is_object(in)) {
        const char *ignored = NULL;
        if (serve_get_string(r, in, "mode", 32, &in_mode) < 0 || serve_get_strings(r, in, "ports", 256, &n->ports) < 0)
            goto done;
        if (in_mode && strcmp(in_mode, "enabled") != 0 && strcmp(in_mode, "disabled") != 0) {
            serve_error(r, 400, "invalid_argument", "network.inbound.mode \"%.40s\" is not enabled or disabled",
                        in_mode);
            goto done;
        }
        if (in_mode && strcmp(in_mode, "disabled") == 0)
            n->inbound_disabled = 1;
        if (n->inbound_disabled && n->ports && n->ports[0]) {
            serve_error(r, 400, "invalid_argument", "network.inbound is disabled but lists ports");
            goto done;
        }
        (void)ignored;
    }
    const char **hosts = allow ? allow : out_allow;
    size_t nh = 0, nr = 0;
    while (hosts && hosts[nh])
        nh++;
    while (n->rules && n->rules[nr])
        nr++;
    n->owned = calloc(nh + 3, sizeof(*n->owned));
    n->all = calloc(nr + nh + 3, sizeof(*n->all));
    if (!n->owned || !n->all) {
        serve_error(r, 503, "resource_exhausted", "out of memory");
        goto done;
    }
    size_t k = 0, m = 0;
    for (size_t i = 0; i < nr; i++)
        n->all[k++] = n->rules[i];
    for (size_t i = 0; i < nh; i++) {
        if (asprintf(&n->owned[m], "allow %s", hosts[i]) < 0) {
            n->owned[m] = NULL;
            serve_error(r, 503, "resource_exhausted", "out of memory");
            goto done;
        }
        n->all[k++] = n->owned[m++];
    }
    if (hosts) { /* an allowlist: nothing else */
        n->all[k++] = "deny *";
        n->all[k++] = "deny 0.0.0.0/0";
    }
    o->net_rules = k ? n->all : NULL;
    rc = 0;
done:
    free(allow);
    free(out_allow);
    return rc;
}

struct create_args {
    json_t *body;
    struct net_args net;
    const char **top_ports;
    struct main_request main;
    struct health_request health;
    char **owned_ports;
    int made; /* the box exists (box_id) */
    char box_id[64];
    const char **header_rules, **tls_intercept, **tls_bypass;
    cocoon_secret *secrets; /* names and hosts: values come from the server's environment */
    char *secret_hosts;
    const char **secret_in; /* "NAME=query,body" for entries with "in" */
    char *secret_in_text;
};

/* "secrets": [{"name": NAME, "hosts": [HOST...]}]: never a value (each start reads
 * $NAME from the server's environment, as `cocoon start` does from its caller's). */
static int read_secrets(struct req *r, json_t *list, struct create_args *a)
{
    if (!list || json_is_null(list))
        return 0;
    size_t n = json_array_size(list), i;
    if (!json_is_array(list) || n > 16)
        return serve_error(r, 400, "invalid_argument", "secrets: a list of at most 16 {name, hosts}");
    a->secrets = calloc(n + 1, sizeof(*a->secrets));
    a->secret_hosts = calloc(n ? n : 1, 1024);
    a->secret_in = calloc(n + 1, sizeof(*a->secret_in));
    a->secret_in_text = calloc(n ? n : 1, 128);
    size_t nin = 0;
    if (!a->secrets || !a->secret_hosts || !a->secret_in || !a->secret_in_text)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    json_t *s;
    json_array_foreach(list, i, s)
    {
        static const char *const keys[] = {"name", "hosts", "in", NULL};
        const char **hosts = NULL, **in = NULL;
        if (!json_is_object(s) || serve_only_keys(r, s, keys) < 0 ||
            serve_get_string(r, s, "name", 63, &a->secrets[i].name) < 0 ||
            serve_get_strings(r, s, "hosts", 4, &hosts) < 0 || serve_get_strings(r, s, "in", 3, &in) < 0) {
            free(hosts);
            free(in);
            return r->answered ? -1 : serve_error(r, 400, "invalid_argument", "secrets: entries are {name, hosts}");
        }
        if (!a->secrets[i].name) {
            free(hosts);
            free(in);
            return serve_error(r, 400, "invalid_argument", "secrets: an entry without a name");
        }
        char *h = a->secret_hosts + i * 1024;
        size_t len = 0;
        for (size_t k = 0; hosts && hosts[k]; k++)
            len += (size_t)snprintf(h + len, len < 1024 ? 1024 - len : 0, "%s%s", len ? "," : "", hosts[k]);
        free(hosts);
        a->secrets[i].hosts = h;
        if (in && in[0]) { /* "NAME=WHERE,WHERE": the words are checked by cocoon_box_create */
            char *spec = a->secret_in_text + i * 128;
            len = (size_t)snprintf(spec, 128, "%s=", a->secrets[i].name);
            for (size_t k = 0; in[k]; k++)
                len += (size_t)snprintf(spec + len, len < 128 ? 128 - len : 0, "%s%.10s", k ? "," : "", in[k]);
            a->secret_in[nin++] = spec;
        }
        free(in);
    }
    return 0;
}

static void create_args_free(struct create_args *a)
{
    net_args_free(&a->net);
    free(a->top_ports);
    for (size_t i = 0; a->owned_ports && a->owned_ports[i]; i++)
        free(a->owned_ports[i]);
    free(a->owned_ports);
    free(a->header_rules);
    free(a->tls_intercept);
    free(a->tls_bypass);
    free(a->secrets);
    free(a->secret_hosts);
    free(a->secret_in);
    free(a->secret_in_text);
    main_request_free(&a->main);
    health_request_free(&a->health);
    json_decref(a->body);
}

static int create_box(struct req *r, struct create_args *a, cocoon_runtime *rt)
{
    json_t *b = a->body;
    cocoon_box_options o;
    cocoon_box_options_init(&o);
    uint64_t cpus = 0, mem = 0, disk_gb = 0, disk_bytes = 0;
    int ephemeral = 0, auto_delete = 0, auto_start = 0, detach = 0, auto_stop = 0;
    const char *working_dir = NULL, *user = NULL, *security = NULL, *rootfs_path = NULL;
    if (serve_only_keys(r, b, create_keys) < 0 || serve_get_string(r, b, "name", 64, &o.name) < 0 ||
        serve_get_string(r, b, "image", 1024, &o.image) < 0 || serve_get_string(r, b, "rootfs", 4000, &o.rootfs) < 0 ||
        serve_get_string(r, b, "rootfs_path", 4000, &rootfs_path) < 0 ||
        serve_get_uint(r, b, "cpus", 1, 64, &cpus) < 0 || serve_get_uint(r, b, "memory_mib", 64, 1048576, &mem) < 0 ||
        serve_get_uint(r, b, "disk_size_gb", 1, 65536, &disk_gb) < 0 ||
        serve_get_uint(r, b, "disk_size_bytes", 1, 1ull << 46, &disk_bytes) < 0 ||
        serve_get_string(r, b, "working_dir", 4000, &working_dir) < 0 ||
        serve_get_string(r, b, "user", 256, &user) < 0 || serve_get_bool(r, b, "ephemeral", &ephemeral) < 0 ||
        get_flag_or_seconds(r, b, "auto_delete", &auto_delete) < 0 ||
        serve_get_bool(r, b, "auto_start", &auto_start) < 0 || serve_get_bool(r, b, "detach", &detach) < 0 ||
        get_flag_or_seconds(r, b, "auto_stop", &auto_stop) < 0 || serve_get_string(r, b, "accel", 16, &o.accel) < 0 ||
        serve_get_string(r, b, "vmm", 16, &o.vmm) < 0 || serve_get_string(r, b, "security", 32, &security) < 0 ||
        main_request_parse(r, b, &a->main) < 0 || health_request_parse(r, b, &a->health) < 0 ||
        read_ports(r, b, &a->top_ports, &a->owned_ports) < 0 ||
        read_network(r, json_object_get(b, "network"), &o, &a->net) < 0 ||
        check_labels(r, json_object_get(b, "labels")) < 0 ||
        serve_get_strings(r, b, "header_rules", 16, &a->header_rules) < 0 ||
        serve_get_strings(r, b, "tls_intercept", 32, &a->tls_intercept) < 0 ||
        serve_get_strings(r, b, "tls_bypass", 32, &a->tls_bypass) < 0 ||
        serve_get_string(r, b, "secret_violation", 32, &o.secret_violation) < 0 ||
        read_secrets(r, json_object_get(b, "secrets"), a) < 0)
        return -1;
    o.header_rules = a->header_rules;
    o.tls_intercept = a->tls_intercept;
    o.tls_bypass = a->tls_bypass;
    o.secrets = a->secrets;
    o.secret_in = a->secret_in;
    if (rootfs_path && o.rootfs)
        return serve_error(r, 400, "invalid_argument", "give either \"rootfs\" or \"rootfs_path\", not both");
    if (rootfs_path)
        o.rootfs = rootfs_path;
    /* A host directory as a box's root is for the machine's own user: a TCP client must
     * not be able to boot a box over, say, ~/.ssh and read it. */
    if (o.rootfs && r->tcp)
        return serve_error(r, 403, "permission_denied",
                           "\"rootfs\" (a host directory) is accepted only on the unix socket; use an image");
    if (security && strcmp(security, "development") != 0 && strcmp(security, "standard") != 0 &&
        strcmp(security, "maximum") != 0)
        return serve_error(r, 400, "invalid_argument", "security must be development, standard or maximum");
    if (auto_stop)
        return serve_error(r, 501, "unsupported",
                           "auto_stop (stopping an idle box) is not supported: stop boxes with "
                           "POST /v1/boxes/{id}/stop");
    json_t *volumes = json_object_get(b, "volumes");
    if (volumes && !json_is_null(volumes) && (!json_is_array(volumes) || json_array_size(volumes) > 0))
        return serve_error(r, 501, "unsupported",
                           "volumes are not supported by this server yet: copy files in with PUT /files");
    json_t *labels = json_object_get(b, "labels");
    char **env = NULL;
    if (serve_get_env(r, b, "env", &env) < 0)
        return -1;
    serve_free_env(env); /* validated here; stored as JSON below */
    o.cpus = (unsigned)cpus;
    o.memory_mib = (unsigned)mem;
    o.disk_size = disk_bytes ? disk_bytes : disk_gb << 30;
    o.ephemeral = ephemeral || auto_delete;
    o.net_ports = a->net.ports ? a->net.ports : a->top_ports;
    if (a->net.inbound_disabled && o.net_ports && o.net_ports[0])
        return serve_error(r, 400, "invalid_argument", "network.inbound is disabled but ports are published");
    if (o.rootfs && o.image)
        return serve_error(r, 400, "invalid_argument", "give either \"image\" or \"rootfs\", not both");

    cocoon_box *box = NULL;
    cocoon_error err;
    if (cocoon_box_create(rt, &o, &box, &err) < 0) {
        if (err.code != COCOON_E_INVALID && err.code != COCOON_E_STATE && err.code != COCOON_E_NOT_FOUND)
            serve_count(&serve_counters.boxes_failed);
        if (err.code == COCOON_E_STATE && strstr(err.message, "already in use"))
            return serve_error(r, 409, "already_exists", "%s", err.message);
        /* The image had to be pulled and could not be (BoxLite's image_pull_failed). */
        if (o.image && (err.code == COCOON_E_IO || err.code == COCOON_E_PROTOCOL ||
                        (err.code == COCOON_E_NOT_FOUND && !strstr(err.message, "kernel"))))
            return serve_error(r, 422, "image_pull_failed", "%s", err.message);
        return serve_cocoon_error(r, &err);
    }
    serve_count(&serve_counters.boxes_created);
    cocoon_box_info info;
    if (cocoon_box_inspect(box, &info, &err) == 0) {
        struct box_defaults d = {
            .env = json_object_get(b, "env"), .labels = labels, .working_dir = working_dir, .user = user};
        if (box_defaults_write(info.dir, &d, &err) < 0) {
            cocoon_box_remove(box, 1, NULL);
            cocoon_box_close(box);
            return serve_cocoon_error(r, &err);
        }
    }
    if (main_request_apply(r, box, &a->main) < 0 ||
        health_request_apply(r, box, &a->health) < 0) { /* answered: the box goes, nothing changed */
        cocoon_box_remove(box, 1, NULL);
        cocoon_box_close(box);
        return -1;
    }
    if (auto_start && cocoon_box_start_flags(box, COCOON_START_DETACHED, &err) < 0) {
        cocoon_box_close(box);
        return serve_cocoon_error(r, &err);
    }
    snprintf(r->location, sizeof(r->location), "/v1/boxes/%s", cocoon_box_id(box));
    int rc = serve_answer_box(r, box, 201);
    a->made = 1;
    snprintf(a->box_id, sizeof(a->box_id), "%s", cocoon_box_id(box));
    cocoon_box_close(box);
    return rc;
}

static int list_boxes(struct req *r, cocoon_runtime *rt)
{
    /* Without page_size every box comes in one answer: BoxLite's client never follows
     * next_page_token. */
    uint64_t page_size = UINT64_MAX, offset = 0;
    const char *ps = serve_query(r, "page_size"), *token = serve_query(r, "page_token");
    if (!ps)
        ps = serve_query(r, "pageSize"); /* BoxLite's spelling */
    if (!token)
        token = serve_query(r, "pageToken");
    const char *status = serve_query(r, "status");
    char *end;
    if (ps) {
        errno = 0;
        unsigned long long v = strtoull(ps, &end, 10);
        if (!isdigit((unsigned char)ps[0]) || *end || errno || v < 1 || v > PAGE_SIZE_MAX)
            return serve_error(r, 400, "invalid_argument", "page_size must be a number from 1 to %d", PAGE_SIZE_MAX);
        page_size = v;
    }
    if (token && *token) {
        errno = 0;
        unsigned long long v = strtoull(token, &end, 10);
        if (!isdigit((unsigned char)token[0]) || *end || errno || v > 1000000000ull)
            return serve_error(r, 400, "invalid_argument", "page_token is not one this server gave");
        offset = v;
    }
    static const char *const statuses[] = {"configured", "running", "stopping", "stopped",
                                           "paused",     "failed",  "unknown",  NULL};
    if (status) {
        int known = 0;
        for (size_t i = 0; statuses[i] && !known; i++)
            known = strcmp(statuses[i], status) == 0;
        if (!known)
            return serve_error(r, 400, "invalid_argument",
                               "status must be one of configured, running, stopping, stopped, paused, failed, unknown");
    }
    cocoon_box_info *list = NULL;
    size_t n = 0;
    cocoon_error err;
    if (cocoon_box_list(rt, &list, &n, &err) < 0)
        return serve_cocoon_error(r, &err);
    json_t *boxes = json_array();
    size_t matched = 0, i;
    for (i = 0; i < n; i++) {
        if (status && strcmp(box_status(&list[i]), status) != 0)
            continue;
        if (matched++ < offset)
            continue;
        if (json_array_size(boxes) == page_size)
            break;
        json_array_append_new(boxes, serve_box_json(&list[i]));
    }
    cocoon_box_list_free(list);
    json_t *body = json_pack("{s:o}", "boxes", boxes);
    if (i < n) {
        char next[32];
        snprintf(next, sizeof(next), "%llu", (unsigned long long)(offset + json_array_size(boxes)));
        json_object_set_new(body, "next_page_token", json_string(next));
    } else {
        json_object_set_new(body, "next_page_token", json_null());
    }
    return serve_json(r, 200, body);
}

int handle_boxes(struct req *r)
{
    cocoon_runtime *rt;
    if (serve_runtime(r, &rt) < 0)
        return -1;
    int rc;
    if (r->method == M_GET) {
        rc = list_boxes(r, rt);
    } else {
        struct create_args a = {0};
        const char *key = serve_header(r, "Idempotency-Key");
        char earlier[64];
        /* A key the table cannot hold is refused: ignored, each retry would make a box. */
        int too_long = key && strlen(key) > IDEMPOTENCY_KEY_MAX;
        int seen = too_long ? 0 : idempotency_claim(key, r->body, r->body_len, earlier, sizeof(earlier));
        if (too_long) {
            rc =
                serve_error(r, 400, "invalid_argument", "an Idempotency-Key has at most %d bytes", IDEMPOTENCY_KEY_MAX);
        } else if (seen < 0) {
            rc = serve_error(r, 422, "invalid_argument",
                             "Idempotency-Key \"%.100s\" was used before with a different request body", key);
        } else if (seen > 0) {
            cocoon_box *box;
            cocoon_error err;
            if (cocoon_box_open(rt, earlier, &box, &err) == 0) {
                snprintf(r->location, sizeof(r->location), "/v1/boxes/%s", cocoon_box_id(box));
                rc = serve_answer_box(r, box, 201);
                cocoon_box_close(box);
            } else {
                rc = serve_error(r, 409, "invalid_state",
                                 "the box created earlier with Idempotency-Key \"%.100s\" (%s) no longer exists", key,
                                 earlier);
            }
        } else {
            a.body = serve_body_object(r);
            rc = a.body ? create_box(r, &a, rt) : -1;
            idempotency_finish(key, a.made ? a.box_id : NULL);
        }
        create_args_free(&a);
    }
    cocoon_runtime_close(rt);
    return rc;
}

/* ---- one box ---- */

int handle_box(struct req *r)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    int rc;
    cocoon_error err;
    if (r->method == M_DELETE) {
        int force = serve_query_bool(r, "force");
        if (force < 0)
            rc = serve_error(r, 400, "invalid_argument", "force must be true or false");
        else if (!force && cocoon_box_is_running(box))
            rc = serve_error(r, 409, "invalid_state", "box %s is running: stop it first or delete with ?force=true",
                             cocoon_box_id(box));
        else {
            int was_running = cocoon_box_is_running(box);
            if (cocoon_box_remove(box, force, &err) < 0) {
                rc = serve_cocoon_error(r, &err);
            } else {
                if (was_running)
                    serve_count(&serve_counters.boxes_stopped);
                rc = serve_empty(r, 204);
            }
        }
    } else if (r->method == M_HEAD) {
        rc = serve_empty(r, 204);
    } else {
        rc = serve_answer_box(r, box, 200);
    }
    serve_close_runtime_box(rt, box);
    return rc;
}

int handle_box_start(struct req *r)
{
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    cocoon_error err;
    int rc;
    if (!cocoon_box_is_running(box) && cocoon_box_start_flags(box, COCOON_START_DETACHED, &err) < 0)
        rc = serve_cocoon_error(r, &err);
    else
        rc = serve_answer_box(r, box, 200);
    serve_close_runtime_box(rt, box);
    return rc;
}

int handle_box_stop(struct req *r)
{
    json_t *b = serve_body_object(r);
    if (!b)
        return -1;
    static const char *const keys[] = {"timeout_seconds", "timeout", "force", NULL};
    double timeout_s = 10;
    int force = 0;
    if (serve_only_keys(r, b, keys) < 0 || serve_get_seconds(r, b, "timeout_seconds", 3600, &timeout_s) < 0 ||
        serve_get_seconds(r, b, "timeout", 3600, &timeout_s) < 0 || serve_get_bool(r, b, "force", &force) < 0) {
        json_decref(b);
        return -1;
    }
    json_decref(b);
    const char *q = serve_query(r, "timeout");
    if (q) {
        char *end;
        double v = strtod(q, &end);
        if (!*q || *end || !(v >= 0 && v <= 3600))
            return serve_error(r, 400, "invalid_argument", "timeout must be a number of seconds up to 3600");
        timeout_s = v;
    }
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    cocoon_box_info info;
    cocoon_error err;
    int rc;
    int have_info = cocoon_box_inspect(box, &info, &err) == 0;
    unsigned ms = force ? 1 : (timeout_s > 0 ? (unsigned)(timeout_s * 1000.0) : 1);
    if (ms == 0)
        ms = 1;
    int was_running = cocoon_box_is_running(box);
    int stopped = cocoon_box_stop(box, ms, &err) == 0;
    if (stopped && was_running)
        serve_count(&serve_counters.boxes_stopped);
    if (!stopped) {
        rc = serve_cocoon_error(r, &err);
    } else if (have_info && info.ephemeral) {
        /* A stopped ephemeral box is gone: answer with what it was, now stopped. */
        snprintf(info.status, sizeof(info.status), "stopped");
        info.running = 0;
        info.pid = 0;
        json_t *j = serve_box_json(&info);
        json_object_set_new(j, "status", json_string("stopped"));
        rc = serve_json(r, 200, j);
    } else {
        rc = serve_answer_box(r, box, 200);
    }
    serve_close_runtime_box(rt, box);
    return rc;
}

/* ---- logs ---- */

struct log_job {
    char box[ROUTE_ID_MAX];
    int follow, network;
};

/* Runs in a worker thread: copies the log into the pipe the response reads. */
static void log_copy(void *arg, int fd)
{
    struct log_job *job = arg;
    cocoon_runtime *rt;
    cocoon_box *box;
    cocoon_error err;
    if (serve_runtime_open(&rt, &err) == 0) {
        if (cocoon_box_open(rt, job->box, &box, &err) == 0) {
            (job->network ? cocoon_box_net_logs : cocoon_box_logs)(box, fd, job->follow, &err);
            cocoon_box_close(box);
        }
        cocoon_runtime_close(rt);
    }
}

static int logs(struct req *r, int network)
{
    int follow = serve_query_bool(r, "follow");
    if (follow < 0)
        return serve_error(r, 400, "invalid_argument", "follow must be true or false");
    cocoon_runtime *rt;
    cocoon_box *box;
    if (serve_open_runtime_box(r, &rt, &box) < 0)
        return -1;
    serve_close_runtime_box(rt, box);
    struct log_job *job = calloc(1, sizeof(*job));
    if (!job)
        return serve_error(r, 503, "resource_exhausted", "out of memory");
    snprintf(job->box, sizeof(job->box), "%s", r->route.box);
    job->follow = follow;
    job->network = network;
    int fd = worker_pipe(log_copy, job, free);
    if (fd < 0)
        return serve_error(r, 503, "resource_exhausted", "cannot start the log reader: %s", strerror(errno));
    return serve_stream_fd(r, 200, "text/plain; charset=utf-8", fd);
}

int handle_net_logs(struct req *r) { return logs(r, 1); }
