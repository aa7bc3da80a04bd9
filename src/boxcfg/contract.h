/* The box contract's vocabulary: the backends, accelerators and network modes a box may
 * ask for (one table each, text <-> enum) and the bounds of a box's resources. libcocoon,
 * the CLI and cocoon-vmm take them from here, so a value means the same everywhere. */
#ifndef COCOON_BOXCFG_CONTRACT_H
#define COCOON_BOXCFG_CONTRACT_H

#include <stdint.h>

#include "net/net.h" /* enum net_mode: the stack's policy is defined by it */

/* Which VMM runs the box: "auto" is kvm where /dev/kvm can run a stock kernel, else qemu
 * (the monitor resolves it at each start). */
enum box_backend { BOX_BACKEND_AUTO, BOX_BACKEND_KVM, BOX_BACKEND_QEMU };
/* QEMU's accelerator: "auto" is kvm where usable, else tcg. */
enum box_accel { BOX_ACCEL_AUTO, BOX_ACCEL_KVM, BOX_ACCEL_TCG };

/* text -> value: 0, or -1 when text (NULL or "" included) names none of the choices. */
int box_backend_parse(const char *text, enum box_backend *out);
int box_accel_parse(const char *text, enum box_accel *out);
int box_net_mode_parse(const char *text, enum net_mode *out);
/* value -> text ("auto", "kvm", ...); an out-of-range value gives "?". */
const char *box_backend_name(enum box_backend b);
const char *box_accel_name(enum box_accel a);
const char *box_net_mode_name(enum net_mode m);
/* The choices for messages: "auto, kvm or qemu", "auto, kvm or tcg", "none, public or open". */
const char *box_backend_choices(void);
const char *box_accel_choices(void);
const char *box_net_mode_choices(void);

/* Resources of a box. A request outside [MIN, MAX] is refused wherever it is made
 * (option, config.json); 0 in an option means the DEFAULT. */
#define BOX_CPUS_MIN 1u
#define BOX_CPUS_MAX 64u
#define BOX_CPUS_DEFAULT 1u
#define BOX_MEMORY_MIB_MIN 64u
#define BOX_MEMORY_MIB_MAX (1024u * 1024) /* 1 TiB */
#define BOX_MEMORY_MIB_DEFAULT 512u
/* Virtual disk size; the minimum is the image's own size (checked at create). */
#define BOX_DISK_BYTES_MAX (64ull << 40) /* 64 TiB */
/* Monitor start to agent ready (TCG boots take seconds). */
#define BOX_BOOT_TIMEOUT_MS_MIN 100u
#define BOX_BOOT_TIMEOUT_MS_MAX (3600u * 1000)
#define BOX_BOOT_TIMEOUT_MS_DEFAULT 60000u
/* A clean shutdown before the guest is killed. */
#define BOX_STOP_TIMEOUT_MS_DEFAULT 10000u
/* A command's own timeout travels in milliseconds as 32 bits: about 49.7 days. */
#define BOX_EXEC_TIMEOUT_MS_MAX UINT32_MAX
/* Box names: letters, digits, '.', '_', '-', not starting with '.' or '-'. */
#define BOX_NAME_MAX 64u
#define BOX_NET_RULES_MAX NET_MAX_RULES
#define BOX_NET_PORTS_MAX NET_MAX_PORTS

/* 1 when name is a valid box name (see BOX_NAME_MAX). */
int box_name_valid(const char *name);

#endif
