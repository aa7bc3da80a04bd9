/* ws-echo: a tiny WebSocket echo server over src/serve/ws*.c for the real-client test
 * (tests/integration/test_ws_client.py). It listens on 127.0.0.1 (prints "port N"),
 * answers the upgrade with ws_upgrade_check's verdict, then echoes every message. Text
 * commands: "close-me" (the server starts the closing handshake with 4000), "burst N
 * SIZE" (a second thread sends N binary messages of SIZE bytes while this one reads on).
 * Each connection's end goes to stderr as "closed CODE" or "error CODE: why".
 * Usage: ws-echo [CONNECTIONS (default 1)] [MAX_MESSAGE (default 1 MiB)] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/ws.h"

#define REQUEST_MAX 8192
#define READ_TIMEOUT_MS 30000

static int write_str(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t w = send(fd, s, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w, len -= (size_t)w;
    }
    return 0;
}

/* The value of header `name` in the request head (NUL-separated lines), trimmed. */
static const char *header(char *head, size_t head_len, const char *name)
{
    size_t nlen = strlen(name);
    for (char *line = head; line < head + head_len; line += strlen(line) + 1) {
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    }
    return NULL;
}

/* Reads the request head: its length in *head_len, all bytes read in *total. */
static int read_request(int fd, char *buf, size_t *head_len, size_t *total)
{
    size_t len = 0;
    for (;;) {
        if (len == REQUEST_MAX)
            return -1;
        ssize_t r = recv(fd, buf + len, REQUEST_MAX - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        len += (size_t)r;
        char *end = memmem(buf, len, "\r\n\r\n", 4);
        if (end) {
            *head_len = (size_t)(end - buf) + 4;
            *total = len;
            return 0;
        }
    }
}

struct burst {
    struct ws_conn *conn;
    long count, size;
};

static void *burst_main(void *arg)
{
    struct burst *b = arg;
    uint8_t *data = malloc((size_t)b->size);
    if (!data)
        return NULL;
    for (long i = 0; i < b->count; i++) {
        memset(data, (int)(i & 0xff), (size_t)b->size);
        if (ws_send_binary(b->conn, data, (size_t)b->size) < 0) {
            char err[160];
            ws_conn_error(b->conn, err, sizeof(err));
            fprintf(stderr, "burst: %s\n", err);
            break;
        }
    }
    free(data);
    return NULL;
}

static void serve(int fd, size_t max_message)
{
    char buf[REQUEST_MAX + 1];
    size_t head_len, total;
    if (read_request(fd, buf, &head_len, &total) < 0) {
        write_str(fd, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n");
        fprintf(stderr, "error 0: bad or oversized request\n");
        return;
    }
    /* Split the head into NUL-terminated lines: the request line, then headers. */
    for (size_t i = 0; i + 1 < head_len; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n')
            buf[i] = buf[i + 1] = 0;
    char *sp = strchr(buf, ' ');
    if (sp)
        *sp = 0;
    char *headers = buf + strlen(buf) + 1 + (sp ? strlen(sp + 1) + 1 : 0);
    size_t headers_len = head_len - (size_t)(headers - buf);
    struct ws_upgrade_request req = {
        .method = buf,
        .upgrade = header(headers, headers_len, "Upgrade"),
        .connection = header(headers, headers_len, "Connection"),
        .version = header(headers, headers_len, "Sec-WebSocket-Version"),
        .key = header(headers, headers_len, "Sec-WebSocket-Key"),
    };
    char accept[WS_ACCEPT_SIZE], answer[512];
    const char *why;
    int status = ws_upgrade_check(&req, accept, &why);
    if (status != 0) {
        snprintf(answer, sizeof(answer),
                 "HTTP/1.1 %d Refused\r\n%sContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s", status,
                 status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "", strlen(why), why);
        write_str(fd, answer);
        fprintf(stderr, "refused %d: %s\n", status, why);
        return;
    }
    snprintf(answer, sizeof(answer),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n",
             accept);
    if (write_str(fd, answer) < 0)
        return;

    struct ws_conn c;
    if (ws_conn_init(&c, fd, max_message, buf + head_len, total - head_len) < 0) {
        fprintf(stderr, "error 0: %s\n", c.error);
        return;
    }
    pthread_t burst_thread;
    int bursting = 0;
    struct burst b = {.conn = &c};
    for (;;) {
        struct ws_message m;
        enum ws_read_result r = ws_read_message(&c, READ_TIMEOUT_MS, &m);
        if (r == WS_READ_MESSAGE) {
            if (m.opcode == WS_OP_TEXT && m.len == 8 && memcmp(m.data, "close-me", 8) == 0) {
                ws_send_close(&c, 4000, "asked to");
                continue;
            }
            char cmd[64];
            if (m.opcode == WS_OP_TEXT && m.len < sizeof(cmd) && !bursting) {
                memcpy(cmd, m.data, m.len);
                cmd[m.len] = 0;
                if (sscanf(cmd, "burst %ld %ld", &b.count, &b.size) == 2 && b.count > 0 && b.size > 0 &&
                    b.size <= (1 << 20)) {
                    bursting = pthread_create(&burst_thread, NULL, burst_main, &b) == 0;
                    continue;
                }
            }
            if (ws_send(&c, m.opcode, &(struct iovec){(void *)m.data, m.len}, 1) < 0)
                break;
            continue;
        }
        char err[160];
        ws_conn_error(&c, err, sizeof(err));
        if (r == WS_READ_CLOSED)
            fprintf(stderr, "closed %u\n", c.close_code);
        else if (r == WS_READ_TIMEOUT)
            fprintf(stderr, "error 0: no message within %d ms\n", READ_TIMEOUT_MS);
        else
            fprintf(stderr, "error %u: %s\n", c.close_code, err);
        break;
    }
    if (bursting)
        pthread_join(burst_thread, NULL);
    ws_conn_destroy(&c);
}

int main(int argc, char **argv)
{
    long connections = argc > 1 ? atol(argv[1]) : 1;
    size_t max_message = argc > 2 ? (size_t)atol(argv[2]) : 0;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) < 0) {
        perror("ws-echo: listen");
        return 1;
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (long i = 0; i < connections; i++) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            perror("ws-echo: accept");
            return 1;
        }
        serve(fd, max_message);
        close(fd);
    }
    close(ls);
    return 0;
}
