/* 8250/16550 UART on COM1, transmit side: what the guest writes to THR goes to the
 * console file through a token bucket, so a guest printing in a loop costs the host a
 * bounded number of bytes. No receive path (the agent channel is virtio-console). */
#include "kvm/dev/legacy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvm/snap.h"

enum { THR = 0, IER = 1, IIR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };
#define LCR_DLAB 0x80
#define IER_THRI 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_FIFO 0xc0
#define MCR_LOOP 0x10

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void update_irq(struct uart *u)
{
    int level = (u->ier & IER_THRI) && u->thre_pending;
    if (level != u->irq_level) {
        u->irq_level = level;
        u->host->ops->irq_line(u->host, UART_COM1_IRQ, level);
    }
}

static int may_write(struct uart *u)
{
    if (u->written >= u->total_cap)
        return 0;
    uint64_t t = now_ns();
    uint64_t add = (t - u->last_refill_ns) / 1000 * u->rate / 1000000;
    if (add) {
        u->budget = u->budget + add > u->burst ? u->burst : u->budget + add;
        u->last_refill_ns = t;
    }
    if (!u->budget)
        return 0;
    u->budget--;
    return 1;
}

static void transmit(struct uart *u, uint8_t ch)
{
    if (u->mcr & MCR_LOOP)
        return;
    if (u->out_fd < 0 || !may_write(u)) {
        u->dropped++;
        return;
    }
    ssize_t n;
    do
        n = write(u->out_fd, &ch, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1)
        u->written++;
    else
        u->dropped++;
}

static uint8_t reg_read(struct uart *u, uint64_t off)
{
    switch (off) {
    case THR: return (u->lcr & LCR_DLAB) ? u->dll : 0;
    case IER: return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
    case IIR: {
        uint8_t iir = (u->fcr & 1) ? IIR_FIFO : 0;
        if ((u->ier & IER_THRI) && u->thre_pending) {
            u->thre_pending = 0; /* reading IIR acknowledges the THRE interrupt */
            update_irq(u);
            return iir | IIR_THRI;
        }
        return iir | IIR_NONE;
    }
    case LCR: return u->lcr;
    case MCR: return u->mcr;
    case LSR: return LSR_THRE | LSR_TEMT;
    case MSR: return (u->mcr & MCR_LOOP) ? (uint8_t)((u->mcr & 0x0c) << 4 | (u->mcr & 0x03) << 4) : 0xb0;
    case SCR: return u->scr;
    }
    return 0xff;
}

static void reg_write(struct uart *u, uint64_t off, uint8_t v)
{
    switch (off) {
    case THR:
        if (u->lcr & LCR_DLAB) {
            u->dll = v;
            return;
        }
        transmit(u, v);
        u->thre_pending = 1; /* sent at once: the holding register is empty again */
        break;
    case IER:
        if (u->lcr & LCR_DLAB) {
            u->dlm = v;
            return;
        }
        u->ier = v & 0x0f;
        if (u->ier & IER_THRI)
            u->thre_pending = 1;
        break;
    case IIR: u->fcr = v; break;
    case LCR: u->lcr = v; break;
    case MCR: u->mcr = v & 0x1f; break;
    case SCR: u->scr = v; break;
    default: break;
    }
    update_irq(u);
}

static void uart_access(void *dev, uint64_t off, uint8_t *data, uint32_t len, int is_write)
{
    struct uart *u = dev;
    pthread_mutex_lock(&u->lock);
    for (uint32_t i = 0; i < len && off + i < 8; i++) {
        if (is_write)
            reg_write(u, off + i, data[i]);
        else
            data[i] = reg_read(u, off + i);
    }
    pthread_mutex_unlock(&u->lock);
}

int uart__init(struct uart *u, struct dev_host *host, int out_fd)
{
    memset(u, 0, sizeof(*u));
    u->host = host;
    u->out_fd = out_fd;
    u->burst = UART_BURST_BYTES;
    u->rate = UART_RATE_BYTES_PER_S;
    u->total_cap = UART_TOTAL_CAP_BYTES;
    u->budget = u->burst;
    u->last_refill_ns = now_ns();
    pthread_mutex_init(&u->lock, NULL);
    return host->ops->map_pio(host, UART_COM1_PORT, 8, uart_access, u);
}

/* Saved state: the registers. The output budget starts afresh in the new process. */
int uart__save(struct uart *u, struct snap_w *w, char *err, size_t errcap)
{
    pthread_mutex_lock(&u->lock);
    uint8_t regs[] = {u->ier,
                      u->lcr,
                      u->mcr,
                      u->scr,
                      u->dll,
                      u->dlm,
                      u->fcr,
                      (uint8_t)(u->thre_pending != 0),
                      (uint8_t)(u->irq_level != 0)};
    pthread_mutex_unlock(&u->lock);
    snap_w__bytes(w, regs, sizeof(regs));
    if (w->oom) {
        snprintf(err, errcap, "uart: the saved state is out of room");
        return -1;
    }
    return 0;
}

int uart__load(struct uart *u, struct snap_r *r, char *err, size_t errcap)
{
    uint8_t regs[9];
    if (snap_r__bytes(r, regs, sizeof(regs)) < 0) {
        snprintf(err, errcap, "uart: %s", r->why);
        return -1;
    }
    if ((regs[0] & ~0x0fu) || (regs[2] & ~0x1fu) || regs[7] > 1 || regs[8] > 1) {
        snprintf(err, errcap, "uart: a saved register is out of range");
        return -1;
    }
    pthread_mutex_lock(&u->lock);
    u->ier = regs[0];
    u->lcr = regs[1];
    u->mcr = regs[2];
    u->scr = regs[3];
    u->dll = regs[4];
    u->dlm = regs[5];
    u->fcr = regs[6];
    u->thre_pending = regs[7];
    /* the line follows the registers; the new process's line starts low */
    u->irq_level = 0;
    update_irq(u);
    pthread_mutex_unlock(&u->lock);
    return 0;
}
