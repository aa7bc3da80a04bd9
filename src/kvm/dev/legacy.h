/* The legacy PC devices of the kvm backend: the 8250 UART on COM1 (console output,
 * rate-limited) and the reset paths (i8042 command 0xfe on port 0x64, port 0xcf9). */
#ifndef COCOON_KVM_DEV_LEGACY_H
#define COCOON_KVM_DEV_LEGACY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm/dev/host.h"

#define UART_COM1_PORT 0x3f8
#define UART_COM1_IRQ 4

/* Output budget: a token bucket (burst, then bytes per second) and a hard cap on
 * the total; bytes over budget are counted and dropped. */
#define UART_BURST_BYTES (256u * 1024)
#define UART_RATE_BYTES_PER_S (64u * 1024)
#define UART_TOTAL_CAP_BYTES (64ull * 1024 * 1024)

struct uart {
    struct dev_host *host;
    pthread_mutex_t lock;
    int out_fd; /* console file; -1 discards */
    uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
    int thre_pending; /* "transmitter empty" interrupt not yet read from IIR */
    int irq_level;
    uint64_t budget, last_refill_ns;
    uint64_t written, dropped;
    uint64_t burst, rate, total_cap; /* tunables, tests lower them */
};

/* Places COM1 on host's port bus; bytes the guest writes go to out_fd (-1: dropped)
 * within the budget above. -1 when the ports are taken. */
int uart__init(struct uart *u, struct dev_host *host, int out_fd);

/* Saved state (kvm/snap.h): the registers; load into a device freshly initialised. -1
 * with err set (a state out of range is refused). */
struct snap_w;
struct snap_r;
int uart__save(struct uart *u, struct snap_w *w, char *err, size_t errcap);
int uart__load(struct uart *u, struct snap_r *r, char *err, size_t errcap);

struct reset_dev {
    struct dev_host *host;
    uint8_t cf9;
};
/* Places the i8042 and 0xcf9 reset ports; a reset asks host->ops->reset. */
int reset__init(struct reset_dev *r, struct dev_host *host);
int reset__save(struct reset_dev *r, struct snap_w *w, char *err, size_t errcap);
int reset__load(struct reset_dev *r, struct snap_r *sr, char *err, size_t errcap);

#endif
