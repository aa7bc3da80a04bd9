/* A box's config.json: one struct, written by libcocoon at create and read back by
 * libcocoon (open, inspect, ls) and by cocoon-vmm (the schema is in docs/internals.md).
 * The reader checks every field, so a bad box fails with one clear sentence instead of
 * a confusing QEMU error later; the writer's output reads back to the same struct. */
#ifndef COCOON_BOXCFG_CONFIG_H
#define COCOON_BOXCFG_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "boxcfg/contract.h"
#include "net/net.h"

/* config.json is written by libcocoon; anything larger is not one of ours. */
#define BOX_CONFIG_FILE_MAX (1u << 20)

struct box_config {
    char id[64];    /* letters, digits, '-', '_' (libcocoon: 12 hex digits) */
    char name[128]; /* "" when unnamed */
    long long created;
    char image[512];    /* as asked for ("default", a canonical reference); "" with a rootfs */
    char image_id[512]; /* "local:default", "sha256:..."; "" with a rootfs */
    char rootfs[PATH_MAX];
    char kernel[PATH_MAX];
    char initrd[PATH_MAX]; /* "" when the box boots without one */
    char disk[PATH_MAX];
    char disk_format[8]; /* "qcow2" or "raw" */
    uint64_t disk_size;  /* virtual size asked for at create; 0: the image's */
    unsigned cpus, memory_mib, boot_timeout_ms;
    enum box_accel accel;
    enum box_backend backend; /* the monitor resolves auto when it starts the box */
    int ephemeral;
    char hostname[64];     /* "" when writing: cocoon-<first 6 of id> */
    struct net_config net; /* mode none: no network device */
};

/* An empty config with every default: BOX_*_DEFAULT resources, qcow2, accel and backend
 * auto, network mode none (net_config_defaults otherwise). */
void box_config_defaults(struct box_config *c);
/* Network rules and published ports as written ("allow *.example.org", "8080:80"),
 * checked and added to c->net; -1 with a message in err. */
int box_config_add_rule(struct box_config *c, const char *text, char *err, size_t errcap);
int box_config_add_port(struct box_config *c, const char *text, char *err, size_t errcap);

/* Parses and checks config.json text (len bytes). -1 with a message in err. */
int box_config_parse(const char *text, size_t len, struct box_config *c, char *err, size_t errcap);
/* dir/config.json through box_config_parse; the message names the file. errno is ENOENT
 * when the file does not exist. */
int box_config_read(const char *dir, struct box_config *c, char *err, size_t errcap);
/* The files the VMM opens (kernel, initrd, disk) exist and are readable. */
int box_config_check_files(const struct box_config *c, char *err, size_t errcap);
/* What cocoon-vmm does before a start: box_config_read, then box_config_check_files. */
int box_config_load(const char *dir, struct box_config *c, char *err, size_t errcap);

/* The config.json text (malloc'd, ends with a newline); NULL when out of memory. */
char *box_config_json(const struct box_config *c);
/* Writes dir/config.json atomically (a temporary file renamed over it). */
int box_config_write(const char *dir, const struct box_config *c, char *err, size_t errcap);

#endif
