/* The names of the box contract's choices (backend, accelerator, network mode): one
 * table per choice, read both ways, so the CLI, libcocoon and the monitor cannot
 * disagree on a spelling. */
#include "boxcfg/contract.h"

#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Indexed by the enum's values. */
static const char *const backend_names[] = {"auto", "kvm", "qemu"};
static const char *const accel_names[] = {"auto", "kvm", "tcg"};
static const char *const net_mode_names[] = {
    [NET_MODE_NONE] = "none", [NET_MODE_PUBLIC] = "public", [NET_MODE_OPEN] = "open"};

static int lookup(const char *text, const char *const *names, size_t n)
{
    for (size_t i = 0; text && i < n; i++)
        if (!strcmp(text, names[i]))
            return (int)i;
    return -1;
}

static const char *name_of(int v, const char *const *names, size_t n)
{
    return v >= 0 && (size_t)v < n ? names[v] : "?";
}

int box_backend_parse(const char *text, enum box_backend *out)
{
    int v = lookup(text, backend_names, COUNT(backend_names));
    if (v >= 0)
        *out = (enum box_backend)v;
    return v < 0 ? -1 : 0;
}

int box_accel_parse(const char *text, enum box_accel *out)
{
    int v = lookup(text, accel_names, COUNT(accel_names));
    if (v >= 0)
        *out = (enum box_accel)v;
    return v < 0 ? -1 : 0;
}

int box_net_mode_parse(const char *text, enum net_mode *out)
{
    int v = lookup(text, net_mode_names, COUNT(net_mode_names));
    if (v >= 0)
        *out = (enum net_mode)v;
    return v < 0 ? -1 : 0;
}

const char *box_backend_name(enum box_backend b) { return name_of((int)b, backend_names, COUNT(backend_names)); }
const char *box_accel_name(enum box_accel a) { return name_of((int)a, accel_names, COUNT(accel_names)); }
const char *box_net_mode_name(enum net_mode m) { return name_of((int)m, net_mode_names, COUNT(net_mode_names)); }

const char *box_backend_choices(void) { return "auto, kvm or qemu"; }
const char *box_accel_choices(void) { return "auto, kvm or tcg"; }
const char *box_net_mode_choices(void) { return "none, public or open"; }

int box_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > BOX_NAME_MAX || s[0] == '-' || s[0] == '.')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}
