/* Reads, checks and writes config.json with jansson. Unknown keys are ignored so newer
 * libcocoon versions can add fields; known keys must have the right type and range
 * (the bounds of contract.h). The reader and the writer live together so the file has
 * one schema. */
#include "boxcfg/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

void box_config_defaults(struct box_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->disk_format, sizeof(c->disk_format), "qcow2");
    c->cpus = BOX_CPUS_DEFAULT;
    c->memory_mib = BOX_MEMORY_MIB_DEFAULT;
    c->boot_timeout_ms = BOX_BOOT_TIMEOUT_MS_DEFAULT;
    c->accel = BOX_ACCEL_AUTO;
    c->backend = BOX_BACKEND_AUTO;
    net_config_defaults(&c->net);
    c->net.mode = NET_MODE_NONE;
}

int box_config_add_rule(struct box_config *c, const char *text, char *err, size_t errcap)
{
    int allow = !strncmp(text, "allow ", 6);
    if (!allow && strncmp(text, "deny ", 5) != 0) {
        snprintf(err, errcap, "network rule \"%s\" must start with \"allow \" or \"deny \"", text);
        return -1;
    }
    if (c->net.nrules >= BOX_NET_RULES_MAX) {
        snprintf(err, errcap, "too many network rules (at most %d)", BOX_NET_RULES_MAX);
        return -1;
    }
    if (net_rule_parse(text + (allow ? 6 : 5), allow, &c->net.rules[c->net.nrules], err, errcap) < 0)
        return -1;
    c->net.nrules++;
    return 0;
}

static int add_tls_host(struct box_config *c, const char *text, char *err, size_t errcap)
{
    return net_tls_host_add(&c->net, text, err, errcap);
}

static int add_tls_bypass(struct box_config *c, const char *text, char *err, size_t errcap)
{
    return net_tls_bypass_add(&c->net, text, err, errcap);
}

int box_config_add_port(struct box_config *c, const char *text, char *err, size_t errcap)
{
    if (c->net.nports >= BOX_NET_PORTS_MAX) {
        snprintf(err, errcap, "too many published ports (at most %d)", BOX_NET_PORTS_MAX);
        return -1;
    }
    if (net_port_parse(text, &c->net.ports[c->net.nports], err, errcap) < 0)
        return -1;
    c->net.nports++;
    return 0;
}

/* ---- reading ---- */

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

/* An optional integer member within [lo, hi]; *out keeps its value when absent. */
static int get_int(json_t *root, const char *key, long long lo, long long hi, long long *out, char *err, size_t errcap)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 0;
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

static int get_unsigned(json_t *root, const char *key, unsigned lo, unsigned hi, unsigned *out, char *err,
                        size_t errcap)
{
    long long v = *out;
    if (get_int(root, key, lo, hi, &v, err, errcap) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* A member naming one of a choice's values: parse is box_accel_parse or the like. */
static int get_choice(json_t *root, const char *key, int (*parse)(const char *, void *), const char *choices, void *out,
                      char *err, size_t errcap)
{
    char text[16] = "";
    if (get_str(root, key, 0, text, sizeof(text), err, errcap) < 0)
        return -1;
    if (json_object_get(root, key) && !json_is_null(json_object_get(root, key)) && parse(text, out) < 0) {
        snprintf(err, errcap, "\"%s\" is \"%s\", expected %s", key, text, choices);
        return -1;
    }
    return 0;
}

static int parse_accel(const char *s, void *out) { return box_accel_parse(s, out); }
static int parse_backend(const char *s, void *out) { return box_backend_parse(s, out); }

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
/* net.KEY, an optional array of strings, each handed to add. entries: what they must be. */
static int add_strings(struct box_config *c, json_t *net, const char *key, const char *entries,
                       int (*add)(struct box_config *c, const char *text, char *err, size_t errcap), char *err,
                       size_t errcap)
{
    json_t *a = json_object_get(net, key), *x;
    size_t i;
    if (a && !json_is_array(a)) {
        snprintf(err, errcap, "\"net.%s\" must be an array of strings", key);
        return -1;
    }
    json_array_foreach(a, i, x)
    {
        if (!json_is_string(x)) {
            snprintf(err, errcap, "\"net.%s\" entries are %s", key, entries);
            return -1;
        }
        if (add(c, json_string_value(x), err, errcap) < 0)
            return -1;
    }
    return 0;
}

static int add_header_rule(struct box_config *c, const char *text, char *err, size_t errcap)
{
    return net_header_rule_add(&c->net, text, err, errcap);
}

/* "secrets": [{"name": "OPENAI_API_KEY", "hosts": ["api.openai.com"], "placeholder": "cocoon-secret-..."}]:
 * names, hosts and placeholders only: values are never in config.json. */
static int parse_secrets(json_t *net, struct box_config *c, char *err, size_t errcap)
{
    json_t *a = json_object_get(net, "secrets"), *x;
    size_t i;
    if (a && !json_is_array(a)) {
        snprintf(err, errcap, "\"net.secrets\" must be an array");
        return -1;
    }
    json_array_foreach(a, i, x)
    {
        const char *name = json_string_value(json_object_get(x, "name"));
        const char *ph = json_string_value(json_object_get(x, "placeholder"));
        json_t *hosts = json_object_get(x, "hosts"), *h;
        if (!name || !ph || (hosts && !json_is_array(hosts))) {
            snprintf(err, errcap, "\"net.secrets\" entries have a name, a placeholder and hosts");
            return -1;
        }
        if (net_secret_add(&c->net, name, NULL, ph, err, errcap) < 0)
            return -1;
        const char *file = json_string_value(json_object_get(x, "file"));
        if (file && (file[0] != '/' || strlen(file) >= sizeof(c->net.secrets[0].file))) {
            snprintf(err, errcap, "\"net.secrets\": secret %s's file must be an absolute path", name);
            return -1;
        }
        if (file)
            snprintf(c->net.secrets[c->net.nsecrets - 1].file, sizeof(c->net.secrets[0].file), "%s", file);
        size_t k;
        json_array_foreach(hosts, k, h)
        {
            char spec[NET_SECRET_NAME + 260];
            if (!json_is_string(h) || strlen(json_string_value(h)) > 253) {
                snprintf(err, errcap, "\"net.secrets\" hosts are strings");
                return -1;
            }
            snprintf(spec, sizeof(spec), "%s=%s", name, json_string_value(h));
            if (net_secret_hosts_add(&c->net, spec, err, errcap) < 0)
                return -1;
        }
        json_t *in = json_object_get(x, "in");
        if (in && !json_is_array(in)) {
            snprintf(err, errcap, "\"net.secrets\": secret %s's \"in\" is a list of headers, query, body", name);
            return -1;
        }
        json_array_foreach(in, k, h)
        {
            unsigned bit;
            const char *w = json_string_value(h);
            if (!w || net_secret_in_word(w, strlen(w), &bit) < 0) {
                snprintf(err, errcap, "\"net.secrets\": secret %s's \"in\" is a list of headers, query, body", name);
                return -1;
            }
            c->net.secrets[c->net.nsecrets - 1].in |= bit;
        }
    }
    return 0;
}

static int parse_net(json_t *root, struct box_config *c, char *err, size_t errcap)
{
    struct net_config *n = &c->net;
    json_t *o = json_object_get(root, "net");
    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o)) {
        snprintf(err, errcap, "\"net\" must be an object");
        return -1;
    }
    json_t *m = json_object_get(o, "mode");
    enum net_mode mode = NET_MODE_NONE;
    if (m && (!json_is_string(m) || box_net_mode_parse(json_string_value(m), &mode) < 0)) {
        snprintf(err, errcap, "\"net.mode\" must be one of %s", box_net_mode_choices());
        return -1;
    }
    n->mode = mode;
    if (add_strings(c, o, "rules", "strings: \"allow RULE\" or \"deny RULE\"", box_config_add_rule, err, errcap) < 0 ||
        add_strings(c, o, "ports", "strings like \"8080:80\"", box_config_add_port, err, errcap) < 0 ||
        add_strings(c, o, "tls_intercept", "host names or *.DOMAIN", add_tls_host, err, errcap) < 0 ||
        add_strings(c, o, "tls_bypass", "host names or *.DOMAIN", add_tls_bypass, err, errcap) < 0 ||
        get_str(o, "tls_ca", 0, n->tls_extra_ca, sizeof(n->tls_extra_ca), err, errcap) < 0 ||
        add_strings(c, o, "header_rules", "strings: \"HOST:Name=Value\"", add_header_rule, err, errcap) < 0 ||
        parse_secrets(o, c, err, errcap) < 0)
        return -1;
    json_t *a = json_object_get(o, "dns_upstream"), *x;
    size_t i;
    json_array_foreach(a, i, x)
    {
        char host[64];
        unsigned port = 53;
        struct in_addr ia;
        const char *s = json_string_value(x);
        if (!s || sscanf(s, "%63[0-9.]:%u", host, &port) < 1 || inet_pton(AF_INET, host, &ia) != 1 || !port ||
            port > 65535 || n->nupstreams >= NET_MAX_UPSTREAMS) {
            snprintf(err, errcap, "\"net.dns_upstream\" entries are \"IPv4[:PORT]\" (at most %d)", NET_MAX_UPSTREAMS);
            return -1;
        }
        n->upstreams[n->nupstreams].ip = ntohl(ia.s_addr);
        n->upstreams[n->nupstreams++].port = (uint16_t)port;
    }
    json_t *r = json_object_get(o, "dns_refuse");
    n->refuse_nxdomain = json_is_string(r) && !strcmp(json_string_value(r), "nxdomain");
    json_t *sv = json_object_get(o, "secret_violation");
    char why[160];
    if (sv && (!json_is_string(sv) ||
               net_secret_violation_parse(json_string_value(sv), &n->secret_violation, why, sizeof(why)) < 0)) {
        snprintf(err, errcap, "\"net.secret_violation\" must be block, block-and-log or block-and-stop-box");
        return -1;
    }
    return 0;
}

static int parse_root(json_t *root, struct box_config *c, char *err, size_t errcap)
{
    if (!json_is_object(root)) {
        snprintf(err, errcap, "the top level is not a JSON object");
        return -1;
    }
    if (get_str(root, "id", 1, c->id, sizeof(c->id), err, errcap) < 0 ||
        get_str(root, "name", 0, c->name, sizeof(c->name), err, errcap) < 0 ||
        get_str(root, "image", 0, c->image, sizeof(c->image), err, errcap) < 0 ||
        get_str(root, "image_id", 0, c->image_id, sizeof(c->image_id), err, errcap) < 0 ||
        get_str(root, "rootfs", 0, c->rootfs, sizeof(c->rootfs), err, errcap) < 0 ||
        get_str(root, "kernel", 1, c->kernel, sizeof(c->kernel), err, errcap) < 0 ||
        get_str(root, "initrd", 0, c->initrd, sizeof(c->initrd), err, errcap) < 0 ||
        get_str(root, "disk", 1, c->disk, sizeof(c->disk), err, errcap) < 0 ||
        get_str(root, "disk_format", 0, c->disk_format, sizeof(c->disk_format), err, errcap) < 0 ||
        get_str(root, "hostname", 0, c->hostname, sizeof(c->hostname), err, errcap) < 0)
        return -1;
    for (const char *p = c->id; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            snprintf(err, errcap, "\"id\" \"%s\" may only hold letters, digits, '-' and '_'", c->id);
            return -1;
        }
    }
    if (strcmp(c->disk_format, "qcow2") != 0 && strcmp(c->disk_format, "raw") != 0) {
        snprintf(err, errcap, "\"disk_format\" is \"%s\", expected \"qcow2\" or \"raw\"", c->disk_format);
        return -1;
    }
    if (get_choice(root, "accel", parse_accel, box_accel_choices(), &c->accel, err, errcap) < 0 ||
        get_choice(root, "backend", parse_backend, box_backend_choices(), &c->backend, err, errcap) < 0)
        return -1;
    long long created = 0, disk_size = 0;
    if (get_unsigned(root, "cpus", BOX_CPUS_MIN, BOX_CPUS_MAX, &c->cpus, err, errcap) < 0 ||
        get_unsigned(root, "memory_mib", BOX_MEMORY_MIB_MIN, BOX_MEMORY_MIB_MAX, &c->memory_mib, err, errcap) < 0 ||
        get_unsigned(root, "boot_timeout_ms", BOX_BOOT_TIMEOUT_MS_MIN, BOX_BOOT_TIMEOUT_MS_MAX, &c->boot_timeout_ms,
                     err, errcap) < 0 ||
        get_int(root, "created", 0, INT64_MAX, &created, err, errcap) < 0 ||
        get_int(root, "disk_size", 0, (long long)BOX_DISK_BYTES_MAX, &disk_size, err, errcap) < 0)
        return -1;
    c->created = created;
    c->disk_size = (uint64_t)disk_size;
    json_t *eph = json_object_get(root, "ephemeral");
    if (eph && !json_is_null(eph) && !json_is_boolean(eph)) {
        snprintf(err, errcap, "\"ephemeral\" must be true or false");
        return -1;
    }
    c->ephemeral = eph && json_is_true(eph);
    if (!c->hostname[0])
        snprintf(c->hostname, sizeof(c->hostname), "cocoon-%.6s", c->id);
    if (!valid_hostname(c->hostname)) {
        snprintf(err, errcap, "\"hostname\" \"%s\" is not a valid host name (letters, digits, '-', '.')", c->hostname);
        return -1;
    }
    return parse_net(root, c, err, errcap);
}

int box_config_parse(const char *text, size_t len, struct box_config *c, char *err, size_t errcap)
{
    box_config_defaults(c);
    c->backend = BOX_BACKEND_QEMU; /* boxes made before the kvm backend existed name none */
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errcap, "not valid JSON: %s (line %d)", jerr.text, jerr.line);
        return -1;
    }
    int rc = parse_root(root, c, err, errcap);
    json_decref(root);
    return rc;
}

int box_config_read(const char *dir, struct box_config *c, char *err, size_t errcap)
{
    char path[PATH_MAX + 16], why[1024] = "";
    box_config_defaults(c);
    if ((size_t)snprintf(path, sizeof(path), "%s/config.json", dir) >= sizeof(path)) {
        snprintf(err, errcap, "box directory path too long: %s", dir);
        errno = ENAMETOOLONG;
        return -1;
    }
    size_t len;
    char *text = util_read_file(path, BOX_CONFIG_FILE_MAX, &len);
    if (!text) {
        int e = errno;
        snprintf(err, errcap, "cannot read box config %s: %s", path,
                 e == EFBIG ? "larger than 1 MiB: not a config of cocoon's" : strerror(e));
        errno = e;
        return -1;
    }
    int rc = box_config_parse(text, len, c, why, sizeof(why));
    free(text);
    if (rc < 0) {
        snprintf(err, errcap, "bad box config %s: %s", path, why);
        errno = EINVAL;
    }
    return rc;
}

int box_config_check_files(const struct box_config *c, char *err, size_t errcap)
{
    if (check_file("kernel", c->kernel, err, errcap) < 0 ||
        (c->initrd[0] && check_file("initrd", c->initrd, err, errcap) < 0) ||
        check_file("disk", c->disk, err, errcap) < 0)
        return -1;
    return 0;
}

int box_config_load(const char *dir, struct box_config *c, char *err, size_t errcap)
{
    char why[PATH_MAX + 256];
    if (box_config_read(dir, c, err, errcap) < 0)
        return -1;
    if (box_config_check_files(c, why, sizeof(why)) < 0) {
        snprintf(err, errcap, "bad box config %s/config.json: %s", dir, why);
        return -1;
    }
    return 0;
}

/* ---- writing ---- */

static json_t *net_json(const struct net_config *n)
{
    json_t *net = json_pack("{s:s, s:[], s:[]}", "mode", box_net_mode_name(n->mode), "rules", "ports");
    for (int i = 0; net && i < n->nrules; i++)
        json_array_append_new(json_object_get(net, "rules"), json_string(n->rules[i].text));
    for (int i = 0; net && i < n->nports; i++)
        json_array_append_new(json_object_get(net, "ports"), json_string(n->ports[i].text));
    if (net && n->nupstreams) {
        json_t *up = json_array();
        for (int i = 0; up && i < n->nupstreams; i++) {
            char s[32];
            snprintf(s, sizeof(s), "%u.%u.%u.%u:%u", n->upstreams[i].ip >> 24, (n->upstreams[i].ip >> 16) & 255,
                     (n->upstreams[i].ip >> 8) & 255, n->upstreams[i].ip & 255, n->upstreams[i].port);
            json_array_append_new(up, json_string(s));
        }
        json_object_set_new(net, "dns_upstream", up);
    }
    if (net && n->refuse_nxdomain)
        json_object_set_new(net, "dns_refuse", json_string("nxdomain"));
    if (net && n->ntls_intercept) {
        json_t *a = json_array();
        for (int i = 0; a && i < n->ntls_intercept; i++)
            json_array_append_new(a, json_string(n->tls_intercept[i]));
        json_object_set_new(net, "tls_intercept", a);
    }
    if (net && n->ntls_bypass) {
        json_t *a = json_array();
        for (int i = 0; a && i < n->ntls_bypass; i++)
            json_array_append_new(a, json_string(n->tls_bypass[i]));
        json_object_set_new(net, "tls_bypass", a);
    }
    if (net && n->secret_violation != NET_SV_BLOCK_AND_LOG)
        json_object_set_new(net, "secret_violation", json_string(net_secret_violation_name(n->secret_violation)));
    if (net && n->tls_extra_ca[0])
        json_object_set_new(net, "tls_ca", json_string(n->tls_extra_ca));
    if (net && n->nheader_rules) {
        json_t *a = json_array();
        for (int i = 0; a && i < n->nheader_rules; i++)
            json_array_append_new(a, json_string(n->header_rules[i].text));
        json_object_set_new(net, "header_rules", a);
    }
    if (net && n->nsecrets) {
        json_t *a = json_array();
        for (int i = 0; a && i < n->nsecrets; i++) {
            json_t *hosts = json_array();
            for (int k = 0; hosts && k < n->secrets[i].nhosts; k++)
                json_array_append_new(hosts, json_string(n->secrets[i].hosts[k]));
            json_t *o = json_pack("{s:s, s:o, s:s}", "name", n->secrets[i].name, "hosts", hosts, "placeholder",
                                  n->secrets[i].placeholder);
            if (o && n->secrets[i].file[0])
                json_object_set_new(o, "file", json_string(n->secrets[i].file)); /* where, never what */
            if (o && n->secrets[i].in) {
                json_t *in = json_array();
                json_array_append_new(in, json_string("headers"));
                if (n->secrets[i].in & NET_SECRET_IN_QUERY)
                    json_array_append_new(in, json_string("query"));
                if (n->secrets[i].in & NET_SECRET_IN_BODY)
                    json_array_append_new(in, json_string("body"));
                json_object_set_new(o, "in", in);
            }
            json_array_append_new(a, o);
        }
        json_object_set_new(net, "secrets", a);
    }
    return net;
}

char *box_config_json(const struct box_config *c)
{
    char hostname[sizeof(c->hostname)];
    if (c->hostname[0])
        memcpy(hostname, c->hostname, sizeof(hostname));
    else
        snprintf(hostname, sizeof(hostname), "cocoon-%.6s", c->id);
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:b, s:i, s:s}", "id", c->id, "name",
                  c->name, "created", (json_int_t)c->created, "image", c->image, "kernel", c->kernel, "initrd",
                  c->initrd, "disk", c->disk, "disk_format", c->disk_format, "cpus", (int)c->cpus, "memory_mib",
                  (int)c->memory_mib, "accel", box_accel_name(c->accel), "backend", box_backend_name(c->backend),
                  "ephemeral", c->ephemeral, "boot_timeout_ms", (int)c->boot_timeout_ms, "hostname", hostname);
    if (!o)
        return NULL;
    if (c->rootfs[0])
        json_object_set_new(o, "rootfs", json_string(c->rootfs));
    if (c->image_id[0])
        json_object_set_new(o, "image_id", json_string(c->image_id));
    if (c->disk_size)
        json_object_set_new(o, "disk_size", json_integer((json_int_t)c->disk_size));
    if (c->net.mode != NET_MODE_NONE)
        json_object_set_new(o, "net", net_json(&c->net));
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

int box_config_write(const char *dir, const struct box_config *c, char *err, size_t errcap)
{
    char path[PATH_MAX + 16];
    char *text = box_config_json(c);
    if (!text) {
        snprintf(err, errcap, "cannot build config.json: out of memory");
        return -1;
    }
    int rc = (size_t)snprintf(path, sizeof(path), "%s/config.json", dir) < sizeof(path)
                 ? util_write_file_atomic(path, text, strlen(text))
                 : (errno = ENAMETOOLONG, -1);
    int e = errno;
    free(text);
    if (rc < 0)
        snprintf(err, errcap, "cannot write %s/config.json: %s", dir, strerror(e));
    return rc;
}
