/* The parts of the kvm backend's full snapshots that run without /dev/kvm: the
 * saved-state stream (snap.c) read back and cut short at every length, the snapshot
 * file's header checks (snapfile.c: a damaged, truncated, foreign or mismatched file is
 * refused with a message before any of it reaches KVM), and the control channel's QMP
 * subset (control.c) answering what the monitor's client (monitor/qmp.c) expects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>
#include <pthread.h>

#include "disk/qcow2.h"
#include "kvm/control.h"
#include "kvm/machine.h"
#include "kvm/snap.h"
#include "kvm/snapfile.h"
#include "monitor/qmp.h"
#include "util/util.h"

static char err[512];

static void test_stream_round_trip(void **state)
{
    (void)state;
    struct snap_w w;
    snap_w__init(&w);
    size_t outer = snap_w__begin(&w, SNAP_TAG('O', 'U', 'T', 'R'));
    snap_w__u8(&w, 0xab);
    snap_w__u16(&w, 0x1234);
    size_t inner = snap_w__begin(&w, SNAP_TAG('I', 'N', 'N', 'R'));
    snap_w__u32(&w, 0xdeadbeef);
    snap_w__end(&w, inner);
    snap_w__u64(&w, 0x0102030405060708ull);
    snap_w__bytes(&w, "xyz", 3);
    snap_w__end(&w, outer);
    size_t other = snap_w__begin(&w, SNAP_TAG('O', 'T', 'H', 'R'));
    snap_w__end(&w, other);
    assert_false(w.oom);

    struct snap_r r, o, in;
    snap_r__init(&r, w.buf, w.len);
    assert_int_equal(snap_r__section(&r, SNAP_TAG('O', 'T', 'H', 'R'), &o), 0);
    assert_int_equal(o.len, 0);
    assert_int_equal(snap_r__section(&r, SNAP_TAG('N', 'O', 'N', 'E'), &o), -1);
    assert_int_equal(snap_r__section(&r, SNAP_TAG('O', 'U', 'T', 'R'), &o), 0);
    assert_int_equal(snap_r__u8(&o), 0xab);
    assert_int_equal(snap_r__u16(&o), 0x1234);
    uint32_t tag;
    assert_int_equal(snap_r__next(&o, &tag, &in), 1);
    assert_int_equal(tag, SNAP_TAG('I', 'N', 'N', 'R'));
    assert_int_equal(snap_r__u32(&in), 0xdeadbeef);
    assert_int_equal(snap_r__u64(&o), 0x0102030405060708ull);
    char b[3];
    assert_int_equal(snap_r__bytes(&o, b, 3), 0);
    assert_memory_equal(b, "xyz", 3);
    assert_false(o.bad);
    assert_int_equal(snap_r__u8(&o), 0); /* past the end */
    assert_true(o.bad);
    assert_non_null(strstr(o.why, "ends early"));

    /* every prefix: reading the whole shape either succeeds or fails cleanly */
    for (size_t cut = 0; cut < w.len; cut++) {
        snap_r__init(&r, w.buf, cut);
        int found = snap_r__section(&r, SNAP_TAG('O', 'U', 'T', 'R'), &o);
        if (found == 0) {
            snap_r__u8(&o);
            snap_r__u16(&o);
            snap_r__next(&o, &tag, &in);
            snap_r__u64(&o);
            snap_r__bytes(&o, b, 3);
        }
        assert_true(found < 0 || !o.bad || o.why[0]);
    }
    snap_w__free(&w);
}

static void test_stream_limit(void **state)
{
    (void)state;
    struct snap_w w;
    snap_w__init(&w);
    static uint8_t chunk[1 << 20];
    for (int i = 0; i < 17; i++)
        snap_w__bytes(&w, chunk, sizeof(chunk));
    assert_true(w.oom); /* SNAP_MAX_BYTES is 16 MiB */
    snap_w__free(&w);
}

/* A snapshot file of a 1-vCPU box with mem bytes of RAM and the given state. */
static int make_file(uint32_t version, uint32_t ncpus, uint64_t mem, const void *st, size_t st_len, uint64_t hash,
                     uint64_t ram_off, uint64_t size)
{
    int fd = memfd_create("snap", MFD_CLOEXEC);
    assert_true(fd >= 0);
    struct snap_w h;
    snap_w__init(&h);
    snap_w__bytes(&h, SNAPFILE_MAGIC, 16);
    snap_w__u32(&h, version);
    snap_w__u32(&h, ncpus);
    snap_w__u64(&h, mem);
    snap_w__u64(&h, SNAPFILE_HEADER_BYTES);
    snap_w__u64(&h, st_len);
    snap_w__u64(&h, hash);
    snap_w__u64(&h, ram_off);
    assert_int_equal(pwrite(fd, h.buf, h.len, 0), (ssize_t)h.len);
    snap_w__free(&h);
    if (st_len)
        assert_int_equal(pwrite(fd, st, st_len, SNAPFILE_HEADER_BYTES), (ssize_t)st_len);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    return fd;
}

static int open_file(int fd, uint32_t ncpus, uint64_t mem)
{
    struct snapfile_info info;
    uint8_t *st = NULL;
    int rc = kvm_snapfile__open(fd, ncpus, mem, &info, &st, err, sizeof(err));
    if (rc == 0) {
        assert_non_null(st);
        assert_int_equal(info.ram_off, SNAPFILE_RAM_ALIGN);
    } else {
        assert_null(st);
        assert_true(err[0]);
    }
    free(st);
    close(fd);
    return rc;
}

static void test_snapfile_checks(void **state)
{
    (void)state;
    static const uint8_t key[16] = "cocoon-kvm-state";
    const char st[] = "state bytes";
    uint64_t h = util_siphash(key, st, sizeof(st));
    const uint64_t mem = 1 << 20, A = SNAPFILE_RAM_ALIGN;
    assert_int_equal(open_file(make_file(1, 1, mem, st, sizeof(st), h, A, A + mem), 1, mem), 0);
    /* a box of another shape */
    assert_int_equal(open_file(make_file(1, 1, mem, st, sizeof(st), h, A, A + mem), 2, mem), -1);
    assert_non_null(strstr(err, "vCPUs"));
    assert_int_equal(open_file(make_file(1, 1, mem, st, sizeof(st), h, A, A + mem), 1, 2 * mem), -1);
    /* another version, a flipped state byte, RAM cut short or grown, a misplaced RAM */
    assert_int_equal(open_file(make_file(2, 1, mem, st, sizeof(st), h, A, A + mem), 1, mem), -1);
    assert_non_null(strstr(err, "version"));
    assert_int_equal(open_file(make_file(1, 1, mem, st, sizeof(st), h ^ 1, A, A + mem), 1, mem), -1);
    assert_non_null(strstr(err, "checksum"));
    assert_int_equal(open_file(make_file(1, 1, mem, st, sizeof(st), h, A, A + mem - 4096), 1, mem), -1);
    assert_non_null(strstr(err, "cut short"));
    assert_int_equal(open_file(make_file(1, 1, mem, st, sizeof(st), h, A, A + mem + 4096), 1, mem), -1);
    assert_int_equal(open_file(make_file(1, 1, mem, st, sizeof(st), h, A + 4096, A + 4096 + mem), 1, mem), -1);
    assert_int_equal(open_file(make_file(1, 1, mem, st, 0, h, A, A + mem), 1, mem), -1);
    assert_int_equal(open_file(make_file(1, 1, mem, st, sizeof(st), h, 0, mem), 1, mem), -1);
    /* a state that claims more than the file holds */
    int fd = make_file(1, 1, mem, st, sizeof(st), h, A, A + mem);
    struct snap_w big;
    snap_w__init(&big);
    snap_w__u64(&big, SNAP_MAX_BYTES + 1ull);
    assert_int_equal(pwrite(fd, big.buf, 8, 16 + 4 + 4 + 8 + 8), 8);
    snap_w__free(&big);
    assert_int_equal(open_file(fd, 1, mem), -1);
    /* not a snapshot at all: empty, a QEMU stream, a directory-less pipe */
    fd = memfd_create("empty", MFD_CLOEXEC);
    assert_int_equal(open_file(fd, 1, mem), -1);
    assert_non_null(strstr(err, "bad header"));
    fd = memfd_create("qemu", MFD_CLOEXEC);
    assert_int_equal(write(fd, "QEVM\0\0\0\3", 8), 8);
    assert_int_equal(open_file(fd, 1, mem), -1);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[1]);
    assert_int_equal(open_file(p[0], 1, mem), -1);
    assert_non_null(strstr(err, "regular file"));
}

/* ---- the control channel ---- */

static struct kvm_machine m;
static struct kvm_control c;
static int peer;

static void control_setup(void)
{
    memset(&m, 0, sizeof(m));
    pthread_mutex_init(&m.vm.lock, NULL);
    pthread_cond_init(&m.vm.cond, NULL);
    memset(&c, 0, sizeof(c));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    c.m = &m;
    c.fd = sv[0];
    c.pending_fd = -1;
    for (int i = 0; i < CONTROL_MAX_FDS; i++)
        c.named_fd[i] = -1;
    snprintf(c.migrate_status, sizeof(c.migrate_status), "none");
    peer = sv[1];
}

/* One line in, the answer parsed the way the monitor parses it. */
static enum qmp_kind ask(const char *line, json_t **ret, char *msg, size_t cap)
{
    kvm_control__command(&c, line, strlen(line));
    static char buf[4096];
    ssize_t n = read(peer, buf, sizeof(buf) - 1);
    assert_true(n > 0 && buf[n - 1] == '\n');
    long long id;
    return qmp_parse_line(buf, (size_t)n - 1, ret, &id, msg, cap);
}

static void expect_error(const char *line, const char *want)
{
    char msg[256] = "";
    assert_int_equal(ask(line, NULL, msg, sizeof(msg)), QMP_ERROR);
    if (!strstr(msg, want))
        fail_msg("%s: answered '%s', want '%s'", line, msg, want);
}

static const char *status(void)
{
    json_t *ret = NULL;
    char msg[64];
    assert_int_equal(ask("{\"execute\": \"query-status\"}", &ret, msg, sizeof(msg)), QMP_RETURN);
    static char s[16];
    snprintf(s, sizeof(s), "%s", json_string_value(json_object_get(ret, "status")));
    json_decref(ret);
    return s;
}

static void test_control_commands(void **state)
{
    (void)state;
    control_setup();
    json_t *ret = NULL;
    char msg[64];
    assert_int_equal(ask("{\"execute\": \"qmp_capabilities\", \"id\": 1}", &ret, msg, sizeof(msg)), QMP_RETURN);
    json_decref(ret);
    assert_string_equal(status(), "running");
    assert_int_equal(ask("{\"execute\": \"stop\"}", NULL, msg, sizeof(msg)), QMP_RETURN);
    assert_string_equal(status(), "paused");
    assert_int_equal(ask("{\"execute\": \"cont\"}", NULL, msg, sizeof(msg)), QMP_RETURN);
    assert_string_equal(status(), "running");

    expect_error("not json", "not a QMP command");
    expect_error("{\"execute\": 5}", "not a QMP command");
    expect_error("{\"execute\": \"stop\", \"arguments\": []}", "not a QMP command");
    expect_error("{\"execute\": \"quit\"}", "CommandNotFound");
    expect_error("{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"x\"}}", "no file descriptor came");
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:1.2.3.4:5\"}}", "only fd:");
    expect_error("{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"fd:nothere\"}}", "getfd first");

    /* an fd that comes with getfd is kept under its name; with anything else it is closed */
    c.pending_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    int kept = c.pending_fd;
    assert_int_equal(ask("{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"disk\"}}", NULL, msg, sizeof(msg)),
                     QMP_RETURN);
    assert_true(fcntl(kept, F_GETFD) >= 0);
    c.pending_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    int stray = c.pending_fd;
    assert_string_equal(status(), "running");
    assert_true(fcntl(stray, F_GETFD) < 0 && errno == EBADF);
    c.pending_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    expect_error("{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"a-name-far-too-long-to-be-kept-here\"}}",
                 "too long");

    /* the layer switch: only paused, only with a disk, only with a named fd */
    expect_error("{\"execute\": \"x-cocoon-disk-overlay\", \"arguments\": {\"fdname\": \"disk\"}}", "stop the VM");
    assert_int_equal(ask("{\"execute\": \"stop\"}", NULL, msg, sizeof(msg)), QMP_RETURN);
    expect_error("{\"execute\": \"x-cocoon-disk-overlay\", \"arguments\": {\"fdname\": \"disk\"}}", "no disk");
    m.has_blk = 1; /* a raw disk: refused, and the fd is closed */
    m.blk.raw_fd = -1;
    assert_true(fcntl(kept, F_GETFD) >= 0);
    expect_error("{\"execute\": \"x-cocoon-disk-overlay\", \"arguments\": {\"fdname\": \"disk\"}}",
                 "need a writable qcow2");
    assert_true(fcntl(kept, F_GETFD) < 0);
    expect_error("{\"execute\": \"x-cocoon-disk-overlay\", \"arguments\": {\"fdname\": \"disk\"}}", "getfd first");

    /* query-migrate before any migration */
    assert_int_equal(ask("{\"execute\": \"query-migrate\"}", &ret, msg, sizeof(msg)), QMP_RETURN);
    assert_string_equal(json_string_value(json_object_get(ret, "status")), "none");
    json_decref(ret);
    kvm_control__close(&c);
    close(peer);
}

/* ---- the channel end to end: the monitor's QMP client against the server on a thread
 * standing in for the I/O thread, fds passed with SCM_RIGHTS, a real qcow2 disk ---- */

static struct dev_io_entry *watched;
static int watch_fd = -1;
static int fake_watch(struct dev_host *h, int fd, uint32_t ev, struct dev_io_entry *e)
{
    (void)h, (void)ev;
    watched = e;
    watch_fd = fd;
    return 0;
}
static void fake_unwatch(struct dev_host *h, int fd)
{
    (void)h, (void)fd;
    watched = NULL;
}
static const struct dev_host_ops fake_ops = {.watch = fake_watch, .unwatch = fake_unwatch};
static volatile int io_stop;

static void *io_loop(void *arg)
{
    (void)arg;
    while (!io_stop) {
        struct pollfd p = {.fd = watch_fd, .events = POLLIN};
        if (watched && poll(&p, 1, 20) > 0 && watched)
            watched->fn(watched->ctx, POLLIN);
    }
    return NULL;
}

static void test_control_channel(void **state)
{
    (void)state;
    char dir[] = "/tmp/cocoon-ctl-XXXXXX", low[64], next[64];
    assert_non_null(mkdtemp(dir));
    snprintf(low, sizeof(low), "%s/low.qcow2", dir);
    snprintf(next, sizeof(next), "%s/next.qcow2", dir);
    assert_int_equal(qcow2_create(low, 1 << 20, NULL, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(qcow2_create(next, 0, low, "qcow2", 0, err, sizeof(err)), 0);
    memset(&m, 0, sizeof(m));
    pthread_mutex_init(&m.vm.lock, NULL);
    pthread_cond_init(&m.vm.cond, NULL);
    m.vm.host.ops = &fake_ops;
    m.has_blk = 1;
    m.blk.raw_fd = -1;
    pthread_mutex_init(&m.blk.t.lock, NULL);
    m.blk.qcow = qcow2_open(low, 1, err, sizeof(err));
    assert_non_null(m.blk.qcow);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(kvm_control__start(&c, &m, sv[0], err, sizeof(err)), 0);
    io_stop = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, io_loop, NULL), 0);

    struct qmp q;
    qmp_init(&q, sv[1]);
    json_t *ret = NULL;
    assert_int_equal(qmp_command(&q, "query-status", NULL, -1, &ret, 5000, err, sizeof(err)), 0);
    assert_string_equal(json_string_value(json_object_get(ret, "status")), "running");
    json_decref(ret);
    assert_int_equal(qmp_command(&q, "stop", NULL, -1, NULL, 5000, err, sizeof(err)), 0);
    int fd = open(next, O_RDWR | O_CLOEXEC);
    assert_int_equal(
        qmp_command(&q, "getfd", json_pack("{s:s}", "fdname", "cocoondisk"), fd, NULL, 5000, err, sizeof(err)), 0);
    close(fd);
    assert_int_equal(qmp_command(&q, "x-cocoon-disk-overlay", json_pack("{s:s}", "fdname", "cocoondisk"), -1, NULL,
                                 5000, err, sizeof(err)),
                     0);
    assert_int_equal(qmp_command(&q, "cont", NULL, -1, NULL, 5000, err, sizeof(err)), 0);
    uint8_t b[4096];
    memset(b, 0x5a, sizeof(b));
    assert_int_equal(qcow2_write(m.blk.qcow, 0, b, sizeof(b), err, sizeof(err)), 0);
    /* the fd went with getfd and was used once: a second overlay has none */
    assert_int_equal(qmp_command(&q, "stop", NULL, -1, NULL, 5000, err, sizeof(err)), 0);
    assert_int_equal(qmp_command(&q, "x-cocoon-disk-overlay", json_pack("{s:s}", "fdname", "cocoondisk"), -1, NULL,
                                 5000, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "getfd first"));
    io_stop = 1;
    pthread_join(t, NULL);
    qmp_close(&q);
    kvm_control__close(&c);
    assert_int_equal(qcow2_close(m.blk.qcow, err, sizeof(err)), 0);
    /* the write is in the new layer, the old one never saw it */
    struct qcow2 *l = qcow2_open(low, 0, err, sizeof(err)), *n = qcow2_open(next, 0, err, sizeof(err));
    uint8_t r[4096];
    assert_int_equal(qcow2_read(n, 0, r, sizeof(r), err, sizeof(err)), 0);
    assert_memory_equal(r, b, sizeof(r));
    assert_int_equal(qcow2_read(l, 0, r, sizeof(r), err, sizeof(err)), 0);
    assert_int_equal(r[0], 0);
    qcow2_close(l, NULL, 0);
    qcow2_close(n, NULL, 0);
    unlink(low);
    unlink(next);
    rmdir(dir);
}

/* A restored machine's capture: pages the guest or a device wrote are saved, the source
 * file's data too, holes never touched are not even read (they stay unmapped: a capture
 * of a restored box does not map its whole RAM); with swap on the host, all are read. */
static void test_write_ram_of_a_restored_machine(void **state)
{
    (void)state;
    enum { PAGES = 16 };
    const size_t P = 4096;
    for (int swap = 0; swap < 2; swap++) {
        int src = memfd_create("src", MFD_CLOEXEC), dst = memfd_create("dst", MFD_CLOEXEC);
        assert_int_equal(ftruncate(src, PAGES * P), 0);
        static uint8_t page[4096];
        memset(page, 0xaa, sizeof(page));
        for (int i = 0; i < 4; i++) /* data in pages 0-3, holes after */
            assert_int_equal(pwrite(src, page, P, (off_t)(i * P)), (ssize_t)P);
        uint8_t *ram = mmap(NULL, PAGES * P, PROT_READ | PROT_WRITE, MAP_PRIVATE, src, 0);
        assert_true(ram != MAP_FAILED);
        ram[1 * P] = 0x11; /* a write over data, and one in a hole */
        ram[6 * P + 7] = 0x66;
        struct kvm_vm vm;
        memset(&vm, 0, sizeof(vm));
        vm.mem.n = 1;
        vm.mem.r[0] = (struct guest_region){.gpa = 0, .size = PAGES * P, .hva = ram};
        vm.snap_src_fd = src;
        vm.host_swap = swap;
        uint64_t written = 0;
        assert_int_equal(kvm_snapfile__write_ram(&vm, dst, 0, &written, err, sizeof(err)), 0);
        assert_int_equal(written, 5 * P);
        uint8_t got[4096];
        for (int i = 0; i < PAGES; i++) {
            memset(got, 0, sizeof(got));
            ssize_t n = pread(dst, got, P, (off_t)(i * P));
            uint8_t want = i == 1 ? 0x11 : i < 4 ? 0xaa : i == 6 ? 0x66 : 0;
            size_t at = i == 6 ? 7 : i == 1 ? 0 : 9;
            assert_true(n == (ssize_t)P || (n == 0 && want == 0) || (n >= 0 && want == 0));
            if (n == (ssize_t)P)
                assert_int_equal(got[at], want);
        }
        unsigned char vec[PAGES];
        assert_int_equal(mincore(ram, PAGES * P, vec), 0);
        assert_int_equal(vec[12] & 1, swap ? 1 : 0); /* an untouched hole: read only with swap */
        munmap(ram, PAGES * P);
        close(src);
        close(dst);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_round_trip), cmocka_unit_test(test_stream_limit),
        cmocka_unit_test(test_snapfile_checks),   cmocka_unit_test(test_control_commands),
        cmocka_unit_test(test_control_channel),   cmocka_unit_test(test_write_ram_of_a_restored_machine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
