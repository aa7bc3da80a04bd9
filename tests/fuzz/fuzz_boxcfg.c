/* Fuzz target: config.json as cocoon-vmm and libcocoon read it (box_config_parse). A
 * parse that succeeds must give a struct within the contract's bounds, and the writer's
 * text for it must read back to the same text. Any refusal is fine; a crash, a leak or a
 * sanitizer report is not. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boxcfg/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct box_config cfg, again;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    if (box_config_parse((const char *)data, size, &cfg, err, sizeof(err)) < 0)
        return 0;
    if (cfg.cpus < BOX_CPUS_MIN || cfg.cpus > BOX_CPUS_MAX || cfg.memory_mib < BOX_MEMORY_MIB_MIN ||
        cfg.memory_mib > BOX_MEMORY_MIB_MAX || cfg.boot_timeout_ms < BOX_BOOT_TIMEOUT_MS_MIN ||
        cfg.boot_timeout_ms > BOX_BOOT_TIMEOUT_MS_MAX || cfg.net.nrules > BOX_NET_RULES_MAX ||
        cfg.net.nports > BOX_NET_PORTS_MAX || !cfg.id[0] || !cfg.kernel[0] || !cfg.disk[0])
        abort();
    char *text = box_config_json(&cfg);
    if (!text)
        return 0;
    if (box_config_parse(text, strlen(text), &again, err, sizeof(err)) < 0)
        abort(); /* what we write, we read */
    char *text2 = box_config_json(&again);
    if (text2 && strcmp(text, text2) != 0)
        abort();
    free(text);
    free(text2);
    return 0;
}
