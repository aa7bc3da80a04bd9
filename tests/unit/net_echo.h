/* The host side of the TCP tests: a loopback echo server (a thread per connection),
 * the rule that lets the guest reach it, and the guest's half of a handshake. Included
 * by the test_net_*.c files that drive TCP (after cmocka.h). */
#ifndef COCOON_TEST_NET_ECHO_H
#define COCOON_TEST_NET_ECHO_H

#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_harness.h"

#define GW 0x0a000202u

static int echo_listen_fd;
static uint16_t echo_port;

static inline void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        ssize_t o = 0;
        while (o < n) {
            ssize_t w = write(fd, buf + o, (size_t)(n - o));
            if (w <= 0)
                goto out;
            o += w;
        }
    }
out:
    close(fd);
    return NULL;
}

static inline void *echo_main(void *arg)
{
    for (;;) {
        int fd = accept(echo_listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_t t;
        pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

static inline int listen_any(int type, uint16_t *port)
{
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t sl = sizeof(sa);
    *port = 0;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || (type == SOCK_STREAM && listen(fd, 64) < 0))
        return -1;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.sin_port);
    return fd;
}

static inline int group_setup(void **state)
{
    echo_listen_fd = listen_any(SOCK_STREAM, &echo_port);
    if (echo_listen_fd < 0)
        return -1;
    pthread_t t;
    pthread_create(&t, NULL, echo_main, NULL);
    pthread_detach(t);
    return 0;
}

static inline int group_teardown(void **state)
{
    shutdown(echo_listen_fd, SHUT_RDWR);
    close(echo_listen_fd);
    return 0;
}

static inline void allow_host(struct harness *h, uint16_t port)
{
    char err[128], rule[32];
    snprintf(rule, sizeof(rule), "host:%u", port);
    assert_int_equal(net_rule_parse(rule, 1, &h->cfg.rules[h->cfg.nrules++], err, sizeof(err)), 0);
}

/* Handshake to GW:port; returns our next seq and fills the stack's ISS+1 in *their. */
static inline int handshake(struct harness *h, uint16_t sport, uint16_t port, uint32_t *their)
{
    uint8_t f[2048];
    struct pkt_ip ip;
    struct pkt_tcp t;
    h_send_tcp(h, GW, sport, port, 1000, 0, TCPF_SYN, 65535, NULL, 0, 1);
    size_t n = h_wait(h, f, sizeof(f), 2000);
    if (!n || h_parse_tcp(f, n, &ip, &t) < 0)
        return -1;
    if ((t.flags & (TCPF_SYN | TCPF_ACK)) != (TCPF_SYN | TCPF_ACK))
        return -2;
    assert_int_equal(t.ack, 1001);
    assert_int_equal(t.mss, 1460);
    assert_int_equal(t.wscale, 3);
    *their = t.seq + 1;
    h_send_tcp(h, GW, sport, port, 1001, *their, TCPF_ACK, 65535 >> 7 ? 4096 : 0, NULL, 0, 0);
    return 0;
}

/* Sends len bytes from data (in window-limited segments) and reads back len echoed
 * bytes, acking them; verifies content. */
static inline void transfer(struct harness *h, uint16_t sport, uint16_t port, uint32_t *seq, uint32_t *their,
                            const uint8_t *data, size_t len, int drop_once)
{
    uint8_t f[2048];
    uint8_t *got = malloc(len);
    size_t sent = 0, recvd = 0;
    uint32_t acked = *seq, win = 65535;
    int spins = 0;
    while (recvd < len && spins < 20000) {
        while (sent < len && (*seq + 0) - acked < win) {
            size_t chunk = len - sent < 1460 ? len - sent : 1460;
            if (chunk > win - (*seq - acked))
                chunk = win - (*seq - acked);
            if (!chunk)
                break;
            h_send_tcp(h, GW, sport, port, *seq, *their, TCPF_ACK, 2048, data + sent, chunk, 0);
            sent += chunk;
            *seq += (uint32_t)chunk;
        }
        if (drop_once && recvd > len / 2) {
            h->drop_next = 1; /* lose one frame toward the guest: the stack must resend */
            drop_once = 0;
        }
        size_t n = h_wait(h, f, sizeof(f), 50);
        spins++;
        struct pkt_ip ip;
        struct pkt_tcp t;
        if (!n || h_parse_tcp(f, n, &ip, &t) < 0)
            continue;
        assert_false(t.flags & TCPF_RST);
        if (t.flags & TCPF_ACK) {
            if ((int32_t)(t.ack - acked) > 0)
                acked = t.ack;
            win = (uint32_t)t.win << 3;
        }
        if (t.len && t.seq == *their) {
            assert_true(recvd + t.len <= len);
            memcpy(got + recvd, t.data, t.len);
            recvd += t.len;
            *their += (uint32_t)t.len;
            h_send_tcp(h, GW, sport, port, *seq, *their, TCPF_ACK, 2048, NULL, 0, 0);
        } else if (t.len) {
            h_send_tcp(h, GW, sport, port, *seq, *their, TCPF_ACK, 2048, NULL, 0, 0); /* dup ack */
        }
    }
    assert_int_equal(recvd, len);
    assert_memory_equal(got, data, len);
    free(got);
}

#endif
