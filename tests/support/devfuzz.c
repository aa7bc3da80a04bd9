/* The operation interpreter of the device fuzzers (devfuzz.h). Reads past the end of
 * the input read as zeros, so every input is a valid program. */
#include "support/devfuzz.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct in {
    const uint8_t *p;
    size_t n, off;
};

static uint8_t u8(struct in *in) { return in->off < in->n ? in->p[in->off++] : 0; }
static uint16_t u16(struct in *in) { return (uint16_t)(u8(in) | u8(in) << 8); }
static uint32_t u32(struct in *in) { return (uint32_t)u16(in) | (uint32_t)u16(in) << 16; }

int devfuzz_host(struct devfuzz *z)
{
    memset(z, 0, sizeof(*z));
    z->peer = -1;
    return host_fake_init(&z->f, DEVFUZZ_RAM);
}

/* Mostly addresses a driver would use, sometimes anywhere. */
static uint64_t pick_addr(struct in *in)
{
    uint8_t how = u8(in);
    switch (how % 8) {
    case 0: return DEVFUZZ_RAM - (u16(in) % 4096);             /* at the very end of RAM */
    case 1: return (uint64_t)u32(in) | (uint64_t)u8(in) << 32; /* anywhere */
    case 2: return DEVFUZZ_RINGS + u16(in);                    /* over the rings */
    default: return DEVFUZZ_DATA + (uint64_t)u16(in) * 16;     /* the data area */
    }
}

static void add_chain(struct devfuzz *z, struct in *in)
{
    int q = u8(in) % z->nq;
    int n = 1 + u8(in) % 4;
    struct vdrv_buf b[4];
    for (int i = 0; i < n; i++) {
        b[i].addr = pick_addr(in);
        uint16_t len = u16(in);
        b[i].len = len & 0x8000 ? (uint32_t)len << 8 : len; /* now and then a huge one */
        b[i].writable = u8(in) & 1;
    }
    if (z->d.q[q].size)
        vdrv_add(&z->d, q, b, n);
    vdrv_notify(&z->d, q);
}

void devfuzz_run(struct devfuzz *z, int nq, const uint8_t *data, size_t size)
{
    struct in in = {data, size, 0};
    z->nq = nq;
    uint16_t qsize = (uint16_t)(1u << (1 + u8(&in) % 8)); /* 2..256 */
    vdrv_init(&z->d, &z->f, DEVFUZZ_BASE, nq, qsize, DEVFUZZ_RINGS);
    uint8_t buf[256];
    for (int steps = 0; in.off < in.n && steps < 4096; steps++) {
        uint8_t op = u8(&in);
        switch (op % 11) {
        case 0: {
            uint32_t off = (u8(&in) % 64) * 4;
            vdrv_write(&z->d, off, u32(&in));
            break;
        }
        case 1: vdrv_read(&z->d, (u8(&in) % 64) * 4); break;
        case 2: add_chain(z, &in); break;
        case 3: { /* raw bytes over the rings and data */
            uint64_t gpa = DEVFUZZ_RINGS + (uint64_t)u16(&in) * 16;
            size_t len = u8(&in) % 32;
            void *p = vdrv_mem(&z->d, gpa, len);
            for (size_t i = 0; i < len; i++)
                buf[i] = u8(&in);
            if (p)
                memcpy(p, buf, len);
            break;
        }
        case 4: { /* the host writes to the device's fd */
            size_t len = u8(&in) % sizeof(buf);
            for (size_t i = 0; i < len; i++)
                buf[i] = u8(&in);
            if (z->peer >= 0 && len)
                (void)!send(z->peer, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
            host_fake_poll(&z->f);
            break;
        }
        case 5: /* the host reads what the device wrote */
            if (z->peer >= 0)
                while (recv(z->peer, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                    ;
            host_fake_poll(&z->f);
            break;
        case 6: vdrv_notify(&z->d, u8(&in) % (z->nq + 1)); break;
        case 7: { /* config space, any width */
            static const uint32_t widths[4] = {1, 2, 4, 8};
            uint32_t w = widths[u8(&in) % 4], off = u8(&in) % 24;
            uint64_t v = u32(&in);
            host_fake_access(&z->f, 0, DEVFUZZ_BASE + VR_CONFIG + off, &v, w, u8(&in) & 1);
            break;
        }
        case 8: host_fake_poll(&z->f); break;
        case 9: vdrv_init(&z->d, &z->f, DEVFUZZ_BASE, nq, (uint16_t)(1u << (1 + u8(&in) % 8)), DEVFUZZ_RINGS); break;
        case 10:
            if (z->peer >= 0 && (u8(&in) & 7) == 0) { /* the host side goes away */
                close(z->peer);
                z->peer = -1;
                host_fake_poll(&z->f);
            }
            break;
        }
    }
}

void devfuzz_free(struct devfuzz *z)
{
    if (z->peer >= 0)
        close(z->peer);
    host_fake_free(&z->f);
}
