/* A small command-line front to src/disk/qcow2 for the interop tests and for poking
 * at images by hand: create, write, read, discard, check, dump. Built by the test
 * that uses it (gcc ... build/lib/libcocoon.a -lpthread). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk/qcow2.h"

static char err[512];

static int usage(void)
{
    fprintf(stderr, "usage: qcow2-tool create PATH SIZE [BACKING [FMT [CLUSTER_BITS]]]\n"
                    "       qcow2-tool write PATH OFFSET DATAFILE\n"
                    "       qcow2-tool fill PATH OFFSET LEN BYTE\n"
                    "       qcow2-tool read PATH OFFSET LEN OUTFILE\n"
                    "       qcow2-tool discard PATH OFFSET LEN\n"
                    "       qcow2-tool dump PATH OUTFILE      (whole virtual disk as raw)\n"
                    "       qcow2-tool check PATH\n"
                    "       qcow2-tool info PATH\n");
    return 2;
}

static uint64_t num(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 0);
    switch (*end) {
    case 'k':
    case 'K': v <<= 10; break;
    case 'm':
    case 'M': v <<= 20; break;
    case 'g':
    case 'G': v <<= 30; break;
    case 't':
    case 'T': v <<= 40; break;
    default: break;
    }
    return v;
}

static int fail(const char *what)
{
    fprintf(stderr, "qcow2-tool %s: %s\n", what, err);
    return 1;
}

static int finish(struct qcow2 *q, int rc, const char *what)
{
    if (rc < 0) {
        qcow2_close(q, NULL, 0);
        return fail(what);
    }
    if (qcow2_close(q, err, sizeof(err)) < 0)
        return fail("close");
    return 0;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int copy_out(struct qcow2 *q, uint64_t off, uint64_t len, const char *out)
{
    FILE *f = fopen(out, "wb");
    if (!f) {
        snprintf(err, sizeof(err), "%s: %s", out, strerror(errno));
        return -1;
    }
    size_t chunk = 4 << 20;
    unsigned char *b = malloc(chunk);
    int rc = b ? 0 : -1;
    while (rc == 0 && len) {
        size_t n = len < chunk ? (size_t)len : chunk;
        rc = qcow2_read(q, off, b, n, err, sizeof(err));
        if (rc == 0 && fwrite(b, 1, n, f) != n)
            rc = -1;
        off += n;
        len -= n;
    }
    free(b);
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *cmd = argv[1], *path = argv[2];
    if (!strcmp(cmd, "create") && argc >= 4) {
        const char *b = argc > 4 && argv[4][0] ? argv[4] : NULL, *fmt = argc > 5 && argv[5][0] ? argv[5] : NULL;
        int bits = argc > 6 ? atoi(argv[6]) : 0;
        if (qcow2_create(path, num(argv[3]), b, fmt, bits, err, sizeof(err)) < 0)
            return fail("create");
        return 0;
    }
    int writable = !strcmp(cmd, "write") || !strcmp(cmd, "fill") || !strcmp(cmd, "discard");
    struct qcow2 *q = qcow2_open(path, writable, err, sizeof(err));
    if (!q)
        return fail("open");
    if (!strcmp(cmd, "write") && argc == 5) {
        size_t len;
        unsigned char *d = slurp(argv[4], &len);
        if (!d) {
            snprintf(err, sizeof(err), "%s: cannot read", argv[4]);
            return finish(q, -1, cmd);
        }
        int rc = qcow2_write(q, num(argv[3]), d, len, err, sizeof(err));
        free(d);
        return finish(q, rc, cmd);
    }
    if (!strcmp(cmd, "fill") && argc == 6) {
        size_t len = (size_t)num(argv[4]);
        unsigned char *d = malloc(len ? len : 1);
        memset(d, (int)num(argv[5]), len);
        int rc = qcow2_write(q, num(argv[3]), d, len, err, sizeof(err));
        free(d);
        return finish(q, rc, cmd);
    }
    if (!strcmp(cmd, "discard") && argc == 5)
        return finish(q, qcow2_discard(q, num(argv[3]), num(argv[4]), err, sizeof(err)), cmd);
    if (!strcmp(cmd, "read") && argc == 6)
        return finish(q, copy_out(q, num(argv[3]), num(argv[4]), argv[5]), cmd);
    if (!strcmp(cmd, "dump") && argc == 4)
        return finish(q, copy_out(q, 0, qcow2_virtual_size(q), argv[3]), cmd);
    if (!strcmp(cmd, "info")) {
        printf("virtual_size=%" PRIu64 " cluster_size=%u chain_depth=%d\n", qcow2_virtual_size(q),
               qcow2_cluster_size(q), qcow2_chain_depth(q));
        return finish(q, 0, cmd);
    }
    if (!strcmp(cmd, "check")) {
        struct qcow2_check_result r;
        int rc = qcow2_check(q, &r, err, sizeof(err));
        if (rc == 0)
            printf("corruptions=%" PRIu64 " leaks=%" PRIu64 " allocated=%" PRIu64 "/%" PRIu64 " image_end=%" PRIu64
                   "%s\n",
                   r.corruptions, r.leaks, r.allocated, r.total_clusters, r.image_end,
                   r.skipped ? " (snapshots/bitmaps not walked)" : "");
        if (rc == 0 && (r.corruptions || r.leaks))
            fprintf(stderr, "%s\n", err);
        int bad = rc == 0 && (r.corruptions || r.leaks);
        finish(q, rc, cmd);
        return rc < 0 ? 1 : bad ? 3 : 0;
    }
    qcow2_close(q, NULL, 0);
    return usage();
}
