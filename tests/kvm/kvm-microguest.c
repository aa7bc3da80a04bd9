/* Test entry for the kvm backend: runs one micro-guest (a flat binary built by
 * tests/kvm/run.sh) on /dev/kvm with the standard device set and prints the guest's
 * serial output, then one summary line the runner checks. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "kvm/machine.h"

#include <pthread.h>

/* The host end of the agent channel: echoes every byte back to the guest. */
static void *echo_thread(void *arg)
{
    int fd = *(int *)arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (write(fd, buf, (size_t)n) != n)
            break;
    return NULL;
}

/* The network link's far end, as the monitor runs it (monitor/net_glue.c): cocoon's
 * stack, fed the frames virtio-net writes ([4-byte big-endian length][frame]). */
struct link {
    int fd;
    struct net_stack *stack;
};

static int link_out(void *user, const uint8_t *frame, size_t len)
{
    struct link *l = user;
    uint8_t buf[4 + 65550];
    if (len > sizeof(buf) - 4)
        return -1;
    uint32_t be = htonl((uint32_t)len);
    memcpy(buf, &be, 4);
    memcpy(buf + 4, frame, len);
    return send(l->fd, buf, len + 4, MSG_NOSIGNAL) == (ssize_t)(len + 4) ? 0 : -1;
}

static void *link_thread(void *arg)
{
    struct link *l = arg;
    static uint8_t buf[1 << 18];
    size_t have = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = l->fd, .events = POLLIN}, {.fd = net_stack_fd(l->stack), .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (p[1].revents)
            net_stack_on_fd_ready(l->stack);
        if (!p[0].revents)
            continue;
        ssize_t n = recv(l->fd, buf + have, sizeof(buf) - have, 0);
        if (n <= 0)
            return NULL;
        have += (size_t)n;
        size_t off = 0;
        while (have - off >= 4) {
            uint32_t be;
            memcpy(&be, buf + off, 4);
            size_t len = ntohl(be);
            if (len > 65550)
                return NULL;
            if (have - off < 4 + len)
                break;
            net_stack_input_frame(l->stack, buf + off + 4, len);
            off += 4 + len;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        net_stack_flush(l->stack);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: kvm-microguest --mode real|long|linux [--initrd FILE] [--cmdline S] [--load ADDR] [--mem "
                    "MIB] [--cpus N] [--rng] [--net] [--ioeventfd] [--irqfd] [--seccomp]\n"
                    "         [--disk FILE --format raw|qcow2] [--agent] [--timeout MS] [--uart-cap BYTES]\n"
                    "         [--pause-cycles N] [--console FILE] GUEST.bin\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct kvm_machine_opts o = {
        .mem_bytes = 64ull << 20, .cpus = 1, .console_fd = 1, .agent_fd = -1, .control_fd = -1, .restore_fd = -1};
    const char *mode = "long", *console = NULL;
    int timeout_ms = 60000, pause_cycles = 0, agent = 0, seccomp = 0;
    long long uart_cap = -1;
    static struct net_config ncfg;
    net_config_defaults(&ncfg);
    uint64_t load = 0;
    int i, net = 0;
    o.net_fd = -1;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--rng"))
            o.rng = 1;
        else if (!strcmp(a, "--net"))
            net = 1;
        else if (!strcmp(a, "--ioeventfd"))
            o.ioeventfd = 1;
        else if (!strcmp(a, "--irqfd"))
            o.irqfd = 1;
        else if (!strcmp(a, "--seccomp"))
            seccomp = 1;
        else if (!strcmp(a, "--agent"))
            agent = 1;
        else if (!v)
            usage();
        else if (!strcmp(a, "--mode"))
            mode = v, i++;
        else if (!strcmp(a, "--initrd"))
            o.initrd = v, i++;
        else if (!strcmp(a, "--cmdline"))
            o.cmdline = v, i++;
        else if (!strcmp(a, "--load"))
            load = strtoull(v, NULL, 0), i++;
        else if (!strcmp(a, "--mem"))
            o.mem_bytes = strtoull(v, NULL, 0) << 20, i++;
        else if (!strcmp(a, "--cpus"))
            o.cpus = atoi(v), i++;
        else if (!strcmp(a, "--disk"))
            o.disk = v, i++;
        else if (!strcmp(a, "--format"))
            o.disk_format = v, i++;
        else if (!strcmp(a, "--timeout"))
            timeout_ms = atoi(v), i++;
        else if (!strcmp(a, "--uart-cap"))
            uart_cap = atoll(v), i++;
        else if (!strcmp(a, "--pause-cycles"))
            pause_cycles = atoi(v), i++;
        else if (!strcmp(a, "--console"))
            console = v, i++;
        else
            usage();
    }
    if (i + 1 != argc)
        usage();
    if (!strcmp(mode, "linux")) /* the kernel boot path: PVH ELF or bzImage 64-bit entry */
        o.kernel = argv[i];
    else
        o.flat = argv[i];
    o.flat_mode = !strcmp(mode, "real") ? BOOT_REAL : BOOT_LONG64;
    if (!load)
        load = o.flat_mode == BOOT_REAL ? 0x10000 : 0x100000;
    o.flat_gpa = load;
    if (console) {
        o.console_fd = open(console, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (o.console_fd < 0) {
            perror(console);
            return 2;
        }
    }
    int sp[2] = {-1, -1};
    if (agent) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
            return 2;
        o.agent_fd = sp[0];
        pthread_t t;
        if (pthread_create(&t, NULL, echo_thread, &sp[1]) == 0)
            pthread_detach(t);
    }
    char err[512];
    if (net) {
        static struct link l;
        int lp[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, lp) < 0)
            return 2;
        l.fd = lp[1];
        l.stack = net_stack_new(&ncfg, link_out, &l, err, sizeof(err));
        if (!l.stack) {
            fprintf(stderr, "kvm-microguest: %s\n", err);
            return 2;
        }
        o.net_fd = lp[0];
        memcpy(o.mac, ncfg.guest_mac, 6);
        pthread_t t;
        if (pthread_create(&t, NULL, link_thread, &l) == 0)
            pthread_detach(t);
    }
    struct kvm_machine *m = calloc(1, sizeof(*m));
    if (!m)
        return 2;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (kvm_machine__create(m, &o, err, sizeof(err)) < 0) {
        fprintf(stderr, "kvm-microguest: %s\n", err);
        kvm_machine__destroy(m);
        free(m);
        return 3;
    }
    if (uart_cap >= 0)
        m->uart.total_cap = (uint64_t)uart_cap;
    /* --seccomp: the kvm VMM's filters, as the box's kvm child installs them */
    if ((seccomp && kvm_machine__lock_down(m, 2, err, sizeof(err)) < 0) ||
        kvm_machine__start(m, err, sizeof(err)) < 0 ||
        (seccomp && kvm_machine__lock_roles(m, 2, err, sizeof(err)) < 0)) {
        fprintf(stderr, "kvm-microguest: %s\n", err);
        kvm_machine__destroy(m);
        free(m);
        return 3;
    }
    int cycles = 0;
    for (; cycles < pause_cycles && kvm_vm__stopped(&m->vm) == VM_RUNNING; cycles++) {
        kvm_vcpu__pause_all(&m->vm);
        kvm_vcpu__resume_all(&m->vm);
    }
    enum kvm_stop_reason why = kvm_machine__wait(m, timeout_ms);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    uint64_t exits = 0;
    for (int c = 0; c < m->vm.ncpus; c++)
        exits += m->vm.vcpus[c].exits;
    fflush(stdout);
    printf("\nSUMMARY stop=%s detail=\"%s\" ms=%lld exits=%llu uart_written=%llu uart_dropped=%llu "
           "rng_bytes=%llu con_rx=%llu con_tx=%llu blk_reqs=%llu blk_errors=%llu broken_rng=%llu broken_blk=%llu "
           "pause_cycles=%d "
           "net_tx=%llu net_rx=%llu net_tx_dropped=%llu net_rx_dropped=%llu broken_net=%llu ioeventfds=%d irqfds=%d\n",
           kvm_vm__stop_name(why), m->vm.stop_detail,
           (long long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000), (unsigned long long)exits,
           (unsigned long long)m->uart.written, (unsigned long long)m->uart.dropped, (unsigned long long)m->rng.bytes,
           (unsigned long long)m->con.rx_bytes, (unsigned long long)m->con.tx_bytes, (unsigned long long)m->blk.reqs,
           (unsigned long long)m->blk.errors, (unsigned long long)m->rng.t.broken_events,
           (unsigned long long)m->blk.t.broken_events, cycles, (unsigned long long)m->net.tx_frames,
           (unsigned long long)m->net.rx_frames, (unsigned long long)m->net.tx_dropped,
           (unsigned long long)m->net.rx_dropped, (unsigned long long)m->net.t.broken_events, m->ioeventfds, m->irqfds);
    kvm_machine__destroy(m);
    free(m);
    if (sp[1] >= 0 && !seccomp) /* the VMM's filter has no shutdown(2): exit ends the echo thread */
        shutdown(sp[1], SHUT_RDWR);
    return why == VM_STOP_RESET ? 0 : 1;
}
