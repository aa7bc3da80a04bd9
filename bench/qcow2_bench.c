/* Throughput of our qcow2 code (src/disk/qcow2*.c) against `qemu-img bench` on a
 * 1 GiB image: sequential 64 KiB / 4 KiB writes (allocating) and reads, random 4 KiB
 * and 64 KiB writes and reads on the allocated image; the write passes end with a
 * flush on both sides. qemu-img is timed by its own report (no process start-up). Page cache on both sides
 * (qemu-img bench -t writeback, depth 1 like our synchronous calls).
 *
 * Run:  gcc -O2 -Iinclude -Isrc -D_GNU_SOURCE bench/qcow2_bench.c src/disk/qcow2*.c \
 *           -lpthread -o /tmp/qcow2_bench && /tmp/qcow2_bench [SEQ_MIB] [RAND_OPS]
 * SEQ_MIB (default 128) bounds the bytes moved by the sequential passes; RAND_OPS
 * (default 10000) the random passes. qemu-img bench has no random mode: those rows
 * show n/a on its side. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "disk/qcow2.h"

#define VSIZE (1ull << 30)

static char err[512];
static char dir[] = "/tmp/qcow2-bench-XXXXXX";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "qcow2_bench: %s: %s\n", what, err);
    exit(1);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* MiB/s of one pass of ours: seq when ops == 0 (bytes/bs ops), else random. */
static double ours(const char *img, int write, size_t bs, uint64_t bytes, uint64_t ops)
{
    struct qcow2 *q = qcow2_open(img, write, err, sizeof(err));
    if (!q)
        die("open");
    uint8_t *buf = malloc(bs);
    memset(buf, 0x5a, bs);
    uint64_t seed = 88172645463325252ull, n = ops ? ops : bytes / bs;
    double t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = ops ? (rnd(&seed) % (VSIZE / bs)) * bs : i * bs;
        int rc = write ? qcow2_write(q, off, buf, bs, err, sizeof(err)) : qcow2_read(q, off, buf, bs, err, sizeof(err));
        if (rc < 0)
            die(write ? "write" : "read");
    }
    if (write && qcow2_flush(q, err, sizeof(err)) < 0)
        die("flush");
    double dt = now() - t0;
    qcow2_close(q, NULL, 0);
    free(buf);
    return (double)n * bs / dt / (1 << 20);
}

/* MiB/s of `qemu-img bench` doing the same sequential pass; -1 if it failed. */
static double qemu(const char *img, int write, size_t bs, uint64_t bytes)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "qemu-img bench -q -f qcow2 -t writeback -d 1 -c %" PRIu64 " -s %zu %s %s", bytes / bs,
             bs, write ? "-w" : "", img);
    /* its own "Run completed in X seconds", so process start-up is not counted */
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char line[256];
    double secs = -1;
    while (fgets(line, sizeof(line), f))
        sscanf(line, "Run completed in %lf seconds", &secs);
    int st = pclose(f);
    return st == 0 && secs > 0 ? (double)bytes / secs / (1 << 20) : -1;
}

static void fresh(const char *img, int qemu_side)
{
    unlink(img);
    if (qemu_side) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 %s 1G", img);
        if (system(cmd) != 0) {
            snprintf(err, sizeof(err), "qemu-img create failed");
            die("create");
        }
    } else if (qcow2_create(img, VSIZE, NULL, NULL, 0, err, sizeof(err)) < 0) {
        die("create");
    }
}

static void row(const char *name, double a, double b)
{
    char bs[32] = "n/a", rs[32] = "n/a";
    if (b > 0)
        snprintf(bs, sizeof(bs), "%.0f", b);
    if (a > 0 && b > 0)
        snprintf(rs, sizeof(rs), "%.2f", a / b);
    printf("| %-26s | %10.0f | %10s | %6s |\n", name, a, bs, rs);
}

int main(int argc, char **argv)
{
    uint64_t seq = (argc > 1 ? strtoull(argv[1], NULL, 0) : 128) << 20;
    uint64_t rops = argc > 2 ? strtoull(argv[2], NULL, 0) : 10000;
    if (seq > VSIZE)
        seq = VSIZE;
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char a[256], b[256];
    snprintf(a, sizeof(a), "%s/ours.qcow2", dir);
    snprintf(b, sizeof(b), "%s/qemu.qcow2", dir);
    int have_qemu = system("qemu-img --version >/dev/null 2>&1") == 0;

    printf("qcow2 throughput, 1 GiB image, 64 KiB clusters, %" PRIu64 " MiB sequential, %" PRIu64
           " random ops (MiB/s)\n\n",
           seq >> 20, rops);
    printf("| %-26s | %10s | %10s | %6s |\n", "test", "ours", "qemu-img", "ratio");
    printf("|%s|%s|%s|%s|\n", "----------------------------", "------------", "------------", "--------");
    size_t sizes[2] = {65536, 4096};
    for (int k = 0; k < 2; k++) {
        size_t bs = sizes[k];
        char name[64];
        fresh(a, 0);
        double wo = ours(a, 1, bs, seq, 0);
        double wq = -1, rq = -1;
        if (have_qemu) {
            fresh(b, 1);
            wq = qemu(b, 1, bs, seq);
        }
        snprintf(name, sizeof(name), "seq write %zuK (alloc)", bs >> 10);
        row(name, wo, wq);
        double ro = ours(a, 0, bs, seq, 0);
        if (have_qemu)
            rq = qemu(b, 0, bs, seq);
        snprintf(name, sizeof(name), "seq read %zuK", bs >> 10);
        row(name, ro, rq);
    }
    /* random passes on a fully allocated image (ours) */
    fresh(a, 0);
    ours(a, 1, 1 << 20, VSIZE, 0);
    for (int k = 0; k < 2; k++) {
        size_t bs = sizes[k];
        char name[64];
        snprintf(name, sizeof(name), "rand write %zuK", bs >> 10);
        row(name, ours(a, 1, bs, 0, rops), -1);
        snprintf(name, sizeof(name), "rand read %zuK", bs >> 10);
        row(name, ours(a, 0, bs, 0, rops), -1);
    }
    /* random allocating writes on a fresh image (copy of nothing: zero-fill path) */
    fresh(a, 0);
    row("rand write 4K (alloc)", ours(a, 1, 4096, 0, rops), -1);
    unlink(a);
    unlink(b);
    rmdir(dir);
    return 0;
}
