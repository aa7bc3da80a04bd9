/* The box's config.json as cocoon-vmm needs it (written by libcocoon at create; the
 * schema is in docs/internals.md). Every field is checked here so a bad box fails
 * with one clear sentence instead of a confusing QEMU error later. */
#ifndef COCOON_BOXCFG_CONFIG_H
#define COCOON_BOXCFG_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

struct vmm_config {
    char id[64];
    char kernel[PATH_MAX];
    char initrd[PATH_MAX]; /* "" when the box boots without one */
    char disk[PATH_MAX];
    char disk_format[8]; /* "qcow2" or "raw" */
    char accel[8];       /* "auto", "kvm" or "tcg" */
    char backend[8];     /* "auto", "qemu" or "kvm" (backend_kvm.c resolves "auto") */
    char hostname[64];
    int cpus;
    int memory_mib;
    int ephemeral;
    uint32_t boot_timeout_ms;
    struct net_config net; /* "net" of config.json; mode none when absent */
};

/* Loads and validates dir/config.json. On failure returns -1 with a message in err. */
int vmm_config_load(const char *dir, struct vmm_config *cfg, char *err, size_t errcap);

#endif
