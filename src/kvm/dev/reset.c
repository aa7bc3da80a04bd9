/* The ways a PC guest asks for a reset, all mapped to "the VM stops": the i8042
 * keyboard controller's pulse-reset command (0xfe to port 0x64) and the reset control
 * register at 0xcf9. The monitor treats a reset as the guest shutting down. */
#include "kvm/dev/legacy.h"

#include <stdio.h>

#include "kvm/snap.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define I8042_CMD_RESET 0xfe
#define RST_CTRL 0xcf9

static void i8042_access(void *dev, uint64_t off, uint8_t *data, uint32_t len, int is_write)
{
    struct reset_dev *r = dev;
    if (!is_write) {
        /* status: input and output buffers empty; data port reads 0 */
        for (uint32_t i = 0; i < len; i++)
            data[i] = 0;
        return;
    }
    if (off == I8042_CMD - I8042_DATA && data[0] == I8042_CMD_RESET)
        r->host->ops->reset(r->host, "i8042 reset");
}

static void cf9_access(void *dev, uint64_t off, uint8_t *data, uint32_t len, int is_write)
{
    struct reset_dev *r = dev;
    if (!is_write) {
        data[0] = r->cf9;
        return;
    }
    /* bit 2 starts the reset; bit 1 chooses hard vs soft: both end the VM */
    if (data[0] & 0x04)
        r->host->ops->reset(r->host, "port 0xcf9 reset");
    r->cf9 = data[0] & 0x0a;
}

int reset__init(struct reset_dev *r, struct dev_host *host)
{
    r->host = host;
    r->cf9 = 0;
    if (host->ops->map_pio(host, I8042_DATA, 5, i8042_access, r) < 0)
        return -1;
    return host->ops->map_pio(host, RST_CTRL, 1, cf9_access, r);
}

/* Saved state: the 0xcf9 register (its reset-type bits). */
int reset__save(struct reset_dev *r, struct snap_w *w, char *err, size_t errcap)
{
    snap_w__u8(w, r->cf9);
    if (w->oom) {
        snprintf(err, errcap, "reset: the saved state is out of room");
        return -1;
    }
    return 0;
}

int reset__load(struct reset_dev *r, struct snap_r *sr, char *err, size_t errcap)
{
    uint8_t cf9 = snap_r__u8(sr);
    if (sr->bad) {
        snprintf(err, errcap, "reset: %s", sr->why);
        return -1;
    }
    if (cf9 & ~0x0au) {
        snprintf(err, errcap, "reset: saved port 0xcf9 value 0x%x out of range", cf9);
        return -1;
    }
    r->cf9 = cf9;
    return 0;
}
