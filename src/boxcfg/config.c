/* Parses and validates config.json with jansson. Unknown keys are ignored so newer
 * libcocoon versions can add fields; known keys must have the right type and range. */
#include "boxcfg/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_BOOT_TIMEOUT_MS 60000

/* Copies an optional string member; -1 with a message when present but invalid. */
static int get_str(json_t *root, const char *key, int required, char *out, size_t cap, char *err, size_t errcap)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(err, errcap, "\"%s\" is missing", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        snprintf(err, errcap, "\"%s\" must be a string", key);
        return -1;
    }
    const char *s = json_string_value(v);
    if (strlen(s) >= cap || strlen(s) != json_string_length(v)) {
        snprintf(err, errcap, "\"%s\" is too long or contains a NUL byte", key);
        return -1;
    }
    if (required && !*s) {
        snprintf(err, errcap, "\"%s\" is empty", key);
        return -1;
    }
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static int get_int(json_t *root, const char *key, long long lo, long long hi, long long dflt, long long *out, char *err,
                   size_t errcap)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v)) {
        snprintf(err, errcap, "\"%s\" must be an integer", key);
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        snprintf(err, errcap, "\"%s\" is %lld, it must be between %lld and %lld", key, x, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* A file QEMU must be able to read: exists, regular, readable by us. */
static int check_file(const char *what, const char *path, char *err, size_t errcap)
{
    struct stat st;
    if (path[0] != '/') {
        snprintf(err, errcap, "%s path \"%s\" is not absolute", what, path);
        return -1;
    }
    if (stat(path, &st) < 0) {
        snprintf(err, errcap, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        snprintf(err, errcap, "%s %s is not a regular file", what, path);
        return -1;
    }
    if (access(path, R_OK) < 0) {
        snprintf(err, errcap, "%s %s is not readable: %s", what, path, strerror(errno));
        return -1;
    }
    return 0;
}

static int valid_hostname(const char *s)
{
    if (!*s || strlen(s) > 63 || *s == '-')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.')
            return 0;
    return 1;
}

/* "net": {"mode": "none|public|open", "rules": ["allow api.example.com", "deny 1.2.3.4"],
 * "ports": ["8080:80", "127.0.0.1:5353:53/udp"], "dns_upstream": ["127.0.0.1:5353"],
 * "dns_refuse": "refused|nxdomain"}. Absent: no network device. */
static int parse_net(json_t *root, struct net_config *n, char *err, size_t errcap)
{
    net_config_defaults(n);
    n->mode = NET_MODE_NONE;
    json_t *o = json_object_get(root, "net");
    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o)) {
        snprintf(err, errcap, "\"net\" must be an object");
        return -1;
    }
    json_t *m = json_object_get(o, "mode");
    if (m && (!json_is_string(m) || net_mode_parse(json_string_value(m), &n->mode) < 0)) {
        snprintf(err, errcap, "\"net.mode\" must be \"none\", \"public\" or \"open\"");
        return -1;
    }
    json_t *a = json_object_get(o, "rules"), *x;
    size_t i;
    if (a && !json_is_array(a)) {
        snprintf(err, errcap, "\"net.rules\" must be an array of strings");
        return -1;
    }
    json_array_foreach(a, i, x)
    {
        const char *s = json_string_value(x);
        int allow = s && !strncmp(s, "allow ", 6);
        if (!s || (!allow && strncmp(s, "deny ", 5) != 0) || n->nrules >= NET_MAX_RULES) {
            snprintf(err, errcap, "\"net.rules\" entries are \"allow RULE\" or \"deny RULE\" (at most %d)",
                     NET_MAX_RULES);
            return -1;
        }
        if (net_rule_parse(s + (allow ? 6 : 5), allow, &n->rules[n->nrules++], err, errcap) < 0)
            return -1;
    }
    a = json_object_get(o, "ports");
    if (a && !json_is_array(a)) {
        snprintf(err, errcap, "\"net.ports\" must be an array of strings");
        return -1;
    }
    json_array_foreach(a, i, x)
    {
        if (!json_is_string(x) || n->nports >= NET_MAX_PORTS) {
            snprintf(err, errcap, "\"net.ports\" entries are strings like \"8080:80\" (at most %d)", NET_MAX_PORTS);
            return -1;
        }
        if (net_port_parse(json_string_value(x), &n->ports[n->nports++], err, errcap) < 0)
            return -1;
    }
    a = json_object_get(o, "dns_upstream");
    json_array_foreach(a, i, x)
    {
        char host[64];
        unsigned port = 53;
        struct in_addr ia;
        const char *s = json_string_value(x);
        if (!s || sscanf(s, "%63[0-9.]:%u", host, &port) < 1 || inet_pton(AF_INET, host, &ia) != 1 || !port ||
            port > 65535 || n->nupstreams >= NET_MAX_UPSTREAMS) {
            snprintf(err, errcap, "\"net.dns_upstream\" entries are \"IPv4[:PORT]\"");
            return -1;
        }
        n->upstreams[n->nupstreams].ip = ntohl(ia.s_addr);
        n->upstreams[n->nupstreams++].port = (uint16_t)port;
    }
    json_t *r = json_object_get(o, "dns_refuse");
    n->refuse_nxdomain = json_is_string(r) && !strcmp(json_string_value(r), "nxdomain");
    return 0;
}

static int validate(json_t *root, struct vmm_config *cfg, char *err, size_t errcap)
{
    long long v;
    if (!json_is_object(root)) {
        snprintf(err, errcap, "the top level is not a JSON object");
        return -1;
    }
    if (get_str(root, "id", 1, cfg->id, sizeof(cfg->id), err, errcap) < 0 ||
        get_str(root, "kernel", 1, cfg->kernel, sizeof(cfg->kernel), err, errcap) < 0 ||
        get_str(root, "initrd", 0, cfg->initrd, sizeof(cfg->initrd), err, errcap) < 0 ||
        get_str(root, "disk", 1, cfg->disk, sizeof(cfg->disk), err, errcap) < 0 ||
        get_str(root, "disk_format", 0, cfg->disk_format, sizeof(cfg->disk_format), err, errcap) < 0 ||
        get_str(root, "accel", 0, cfg->accel, sizeof(cfg->accel), err, errcap) < 0 ||
        get_str(root, "backend", 0, cfg->backend, sizeof(cfg->backend), err, errcap) < 0 ||
        get_str(root, "hostname", 0, cfg->hostname, sizeof(cfg->hostname), err, errcap) < 0)
        return -1;
    for (const char *p = cfg->id; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            snprintf(err, errcap, "\"id\" \"%s\" may only hold letters, digits, '-' and '_'", cfg->id);
            return -1;
        }
    }
    if (strcmp(cfg->disk_format, "qcow2") != 0 && strcmp(cfg->disk_format, "raw") != 0) {
        snprintf(err, errcap, "\"disk_format\" is \"%s\", expected \"qcow2\" or \"raw\"", cfg->disk_format);
        return -1;
    }
    if (strcmp(cfg->accel, "auto") != 0 && strcmp(cfg->accel, "kvm") != 0 && strcmp(cfg->accel, "tcg") != 0) {
        snprintf(err, errcap, "\"accel\" is \"%s\", expected \"auto\", \"kvm\" or \"tcg\"", cfg->accel);
        return -1;
    }
    if (strcmp(cfg->backend, "qemu") != 0 && strcmp(cfg->backend, "auto") != 0 && strcmp(cfg->backend, "kvm") != 0) {
        snprintf(err, errcap, "\"backend\" is \"%s\", expected \"auto\", \"qemu\" or \"kvm\"", cfg->backend);
        return -1;
    }
    if (get_int(root, "cpus", 1, 64, 1, &v, err, errcap) < 0)
        return -1;
    cfg->cpus = (int)v;
    if (get_int(root, "memory_mib", 64, 1024 * 1024, 512, &v, err, errcap) < 0)
        return -1;
    cfg->memory_mib = (int)v;
    if (get_int(root, "boot_timeout_ms", 100, 3600 * 1000, DEFAULT_BOOT_TIMEOUT_MS, &v, err, errcap) < 0)
        return -1;
    cfg->boot_timeout_ms = (uint32_t)v;
    json_t *eph = json_object_get(root, "ephemeral");
    if (eph && !json_is_null(eph) && !json_is_boolean(eph)) {
        snprintf(err, errcap, "\"ephemeral\" must be true or false");
        return -1;
    }
    cfg->ephemeral = eph && json_is_true(eph);
    if (!cfg->hostname[0])
        snprintf(cfg->hostname, sizeof(cfg->hostname), "cocoon-%.6s", cfg->id);
    if (!valid_hostname(cfg->hostname)) {
        snprintf(err, errcap, "\"hostname\" \"%s\" is not a valid host name (letters, digits, '-', '.')",
                 cfg->hostname);
        return -1;
    }
    if (parse_net(root, &cfg->net, err, errcap) < 0)
        return -1;
    if (check_file("kernel", cfg->kernel, err, errcap) < 0 ||
        (cfg->initrd[0] && check_file("initrd", cfg->initrd, err, errcap) < 0) ||
        check_file("disk", cfg->disk, err, errcap) < 0)
        return -1;
    return 0;
}

int vmm_config_load(const char *dir, struct vmm_config *cfg, char *err, size_t errcap)
{
    char path[PATH_MAX + 16], why[1024] = "";
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->disk_format, sizeof(cfg->disk_format), "qcow2");
    snprintf(cfg->accel, sizeof(cfg->accel), "auto");
    snprintf(cfg->backend, sizeof(cfg->backend), "qemu"); /* boxes made before the kvm backend existed */
    snprintf(path, sizeof(path), "%s/config.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errcap, "cannot read box config %s: %s (line %d)", path, jerr.text, jerr.line);
        return -1;
    }
    int rc = validate(root, cfg, why, sizeof(why));
    json_decref(root);
    if (rc < 0)
        snprintf(err, errcap, "bad box config %s: %s", path, why);
    return rc;
}
