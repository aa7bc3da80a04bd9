/* Fuzz target for the split-virtqueue walker: the input is a queue configuration
 * (size, indirect flag, ring addresses) followed by a guest memory image; every chain
 * the walker accepts is read, written and returned, and nothing may touch memory
 * outside the fake guest RAM (ASan checks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvm/dev/virtq.h"

#define LOW 0x10000u
#define HIGH 0x1000u
#define HIGH_GPA 0x100000000ull
#define HDR 28

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR)
        return 0;
    /* exact-size allocations so ASan sees any access past guest RAM */
    uint8_t *low = calloc(1, LOW), *high = calloc(1, HIGH);
    if (!low || !high) {
        free(low);
        free(high);
        return 0;
    }
    struct guest_mem m = {.n = 2};
    m.r[0] = (struct guest_region){0, LOW, low};
    m.r[1] = (struct guest_region){HIGH_GPA, HIGH, high};
    struct virtq q;
    memset(&q, 0, sizeof(q));
    q.size = (uint16_t)(1u << (data[0] % 10)); /* 1..512: 512 must be refused */
    q.indirect_ok = data[1] & 1;
    q.last_avail = (uint16_t)(data[2] | data[3] << 8);
    memcpy(&q.desc_gpa, data + 4, 8);
    memcpy(&q.avail_gpa, data + 12, 8);
    memcpy(&q.used_gpa, data + 20, 8);
    if (data[1] & 2) { /* keep the rings in RAM most of the time */
        q.desc_gpa %= LOW;
        q.avail_gpa %= LOW;
        q.used_gpa %= LOW;
    }
    size_t img = size - HDR < LOW ? size - HDR : LOW;
    memcpy(low, data + HDR, img);
    if (size - HDR > LOW)
        memcpy(high, data + HDR + LOW, size - HDR - LOW < HIGH ? size - HDR - LOW : HIGH);
    struct virtq_chain *c = malloc(sizeof(*c));
    if (c && virtq__enable(&q, &m) == 0) {
        q.last_avail = (uint16_t)(data[2] | data[3] << 8);
        for (int i = 0; i < 64 && virtq__pop(&q, &m, c) == 1; i++) {
            uint8_t buf[64];
            size_t n = virtq_chain__read(c, c->rlen > 8 ? c->rlen - 8 : 0, buf, sizeof(buf));
            virtq_chain__write(c, c->wlen > 8 ? c->wlen - 8 : 0, buf, n);
            virtq__push(&q, c, (uint32_t)n);
        }
        (void)virtq__has_avail(&q);
    }
    free(c);
    free(low);
    free(high);
    return 0;
}
