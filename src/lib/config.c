/* A box's contract seen from libcocoon: the caller's cocoon_box_options checked against
 * the box contract (src/boxcfg: names, bounds, network rules) into a struct box_config,
 * and config.json read and written through src/boxcfg with errors as cocoon_error. */
#include "lib/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int options_net(const cocoon_box_options *o, struct box_config *c, cocoon_error *err)
{
    char why[512];
    enum net_mode mode = NET_MODE_PUBLIC; /* the default on every backend */
    if (o->net && *o->net && box_net_mode_parse(o->net, &mode) < 0)
        return lib_err(err, COCOON_E_INVALID, "network mode \"%s\": use %s", o->net, box_net_mode_choices());
    c->net.mode = mode;
    for (size_t i = 0; o->net_rules && o->net_rules[i]; i++)
        if (box_config_add_rule(c, o->net_rules[i], why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_INVALID, "%s", why);
    for (size_t i = 0; o->net_ports && o->net_ports[i]; i++)
        if (box_config_add_port(c, o->net_ports[i], why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_INVALID, "%s", why);
    for (size_t i = 0; o->tls_intercept && o->tls_intercept[i]; i++)
        if (net_tls_host_add(&c->net, o->tls_intercept[i], why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_INVALID, "%s", why);
    for (size_t i = 0; o->tls_bypass && o->tls_bypass[i]; i++)
        if (net_tls_bypass_add(&c->net, o->tls_bypass[i], why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_INVALID, "%s", why);
    if (o->tls_ca && *o->tls_ca) {
        if (o->tls_ca[0] != '/' || strlen(o->tls_ca) >= sizeof(c->net.tls_extra_ca))
            return lib_err(err, COCOON_E_INVALID, "--tls-ca needs an absolute path (got \"%s\")", o->tls_ca);
        snprintf(c->net.tls_extra_ca, sizeof(c->net.tls_extra_ca), "%s", o->tls_ca);
    }
    for (size_t i = 0; o->secrets && o->secrets[i].name; i++) {
        const cocoon_secret *sc = &o->secrets[i];
        if (net_secret_add(&c->net, sc->name, sc->hosts, NULL, why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_INVALID, "%s", why);
        if (sc->value && !net_secret_value_ok(sc->value, strlen(sc->value), why, sizeof(why)))
            return lib_err(err, COCOON_E_INVALID, "secret %s: %s", sc->name, why);
        if (!sc->value && !sc->file && !getenv(sc->name))
            return lib_err(err, COCOON_E_INVALID,
                           "secret %s has no value: set %s in the environment (or give a file: --secret "
                           "%s=@file:PATH); values are never stored",
                           sc->name, sc->name, sc->name);
        if (sc->file && (sc->file[0] != '/' || strlen(sc->file) >= sizeof(c->net.secrets[0].file)))
            return lib_err(err, COCOON_E_INVALID, "secret %s: the file needs an absolute path", sc->name);
        if (sc->file)
            snprintf(c->net.secrets[c->net.nsecrets - 1].file, sizeof(c->net.secrets[0].file), "%s", sc->file);
        if (!c->net.secrets[c->net.nsecrets - 1].nhosts)
            return lib_err(err, COCOON_E_INVALID,
                           "secret %s has no host to go to: give one (--secret-host %s=api.example.com)", sc->name,
                           sc->name);
    }
    for (size_t i = 0; o->secret_in && o->secret_in[i]; i++)
        if (net_secret_in_set(&c->net, o->secret_in[i], why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_INVALID, "%s", why);
    if (o->secret_violation && *o->secret_violation &&
        net_secret_violation_parse(o->secret_violation, &c->net.secret_violation, why, sizeof(why)) < 0)
        return lib_err(err, COCOON_E_INVALID, "%s", why);
    for (size_t i = 0; o->header_rules && o->header_rules[i]; i++)
        if (net_header_rule_add(&c->net, o->header_rules[i], why, sizeof(why)) < 0)
            return lib_err(err, COCOON_E_INVALID, "%s", why);
    if (mode == NET_MODE_NONE && (c->net.nsecrets || c->net.nheader_rules))
        return lib_err(err, COCOON_E_INVALID, "secrets and header rules need --net public or --net open");
    if (mode == NET_MODE_NONE && c->net.ntls_intercept)
        return lib_err(err, COCOON_E_INVALID, "TLS interception needs --net public or --net open");
    if (mode == NET_MODE_NONE && (c->net.nrules || c->net.nports))
        return lib_err(err, COCOON_E_INVALID, "network rules and published ports need --net public or --net open");
    return 0;
}

int lib_config_from_options(const cocoon_box_options *o, struct box_config *c, cocoon_error *err)
{
    box_config_defaults(c);
    if (o->name && *o->name) {
        if (!box_name_valid(o->name))
            return lib_err(err, COCOON_E_INVALID, "invalid box name \"%s\": up to %u letters, digits, '.', '_' or '-'",
                           o->name, BOX_NAME_MAX);
        snprintf(c->name, sizeof(c->name), "%s", o->name);
    }
    if (o->rootfs && o->image)
        return lib_err(err, COCOON_E_INVALID, "give either an image or a rootfs directory, not both");
    if (o->cpus > BOX_CPUS_MAX)
        return lib_err(err, COCOON_E_INVALID, "cpus must be between %u and %u (got %u)", BOX_CPUS_MIN, BOX_CPUS_MAX,
                       o->cpus);
    if (o->memory_mib && (o->memory_mib < BOX_MEMORY_MIB_MIN || o->memory_mib > BOX_MEMORY_MIB_MAX))
        return lib_err(err, COCOON_E_INVALID, "memory must be between %u MiB and 1 TiB (got %u MiB)",
                       BOX_MEMORY_MIB_MIN, o->memory_mib);
    if (o->boot_timeout_ms &&
        (o->boot_timeout_ms < BOX_BOOT_TIMEOUT_MS_MIN || o->boot_timeout_ms > BOX_BOOT_TIMEOUT_MS_MAX))
        return lib_err(err, COCOON_E_INVALID, "boot timeout must be between %u and %u ms (got %u)",
                       BOX_BOOT_TIMEOUT_MS_MIN, BOX_BOOT_TIMEOUT_MS_MAX, o->boot_timeout_ms);
    if (o->disk_size > BOX_DISK_BYTES_MAX)
        return lib_err(err, COCOON_E_INVALID, "disk size %llu bytes is above the limit of 64 TiB",
                       (unsigned long long)o->disk_size);
    if (o->accel && *o->accel && box_accel_parse(o->accel, &c->accel) < 0)
        return lib_err(err, COCOON_E_INVALID, "unknown accelerator \"%s\": use %s", o->accel, box_accel_choices());
    if (o->vmm && *o->vmm && box_backend_parse(o->vmm, &c->backend) < 0)
        return lib_err(err, COCOON_E_INVALID, "unknown vmm \"%s\": use %s", o->vmm, box_backend_choices());
    if (o->cpus)
        c->cpus = o->cpus;
    if (o->memory_mib)
        c->memory_mib = o->memory_mib;
    if (o->boot_timeout_ms)
        c->boot_timeout_ms = o->boot_timeout_ms;
    c->ephemeral = o->ephemeral != 0;
    c->disk_size = o->disk_size;
    return options_net(o, c, err);
}

int lib_config_write(const char *box_dir, const struct box_config *c, cocoon_error *err)
{
    char why[LIB_PATH_MAX + 128];
    if (box_config_write(box_dir, c, why, sizeof(why)) < 0)
        return lib_err(err, errno == ENOMEM ? COCOON_E_NOMEM : COCOON_E_IO, "%s", why);
    return 0;
}

int lib_config_read(const char *box_dir, struct box_config *c, cocoon_error *err)
{
    char why[LIB_PATH_MAX + 1024];
    if (box_config_read(box_dir, c, why, sizeof(why)) < 0)
        return lib_err(err, errno == ENOENT ? COCOON_E_NOT_FOUND : COCOON_E_IO, "%s", why);
    return 0;
}
