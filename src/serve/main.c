/* cocoon-serve, the program behind `cocoon serve`: the HTTP API over libcocoon on a unix
 * socket ($COCOON_HOME/cocoon.sock, 0600) and, when asked, on TCP with a bearer token and
 * optional TLS. Boxes outlive it: they are libcocoon's, shared with the CLI. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "serve/e2b.h"
#include "serve/http.h"
#include "serve/listen.h"
#include "serve/serve.h"
#include "serve/xreg.h"
#include "util/util.h"

static const char usage[] = "usage: cocoon serve [OPTIONS]\n"
                            "\n"
                            "Serves the cocoon HTTP API (BoxLite's Box API v1 shape plus cocoon's extensions; the\n"
                            "OpenAPI document is at GET /v1/openapi.yaml). Boxes outlive the server.\n"
                            "\n"
                            "  --socket PATH         unix socket (default $COCOON_HOME/cocoon.sock, mode 0600;\n"
                            "                        no token needed on it); --socket none: no unix socket\n"
                            "  --listen HOST:PORT    also listen on TCP (e.g. 127.0.0.1:8100); requests need\n"
                            "                        'Authorization: Bearer TOKEN'\n"
                            "  --token-file FILE     the token (default $COCOON_HOME/serve.token, made once, 0600)\n"
                            "  --no-token            TCP without a token: only on a loopback address\n"
                            "  --tls-cert FILE       serve TCP over TLS with this certificate (PEM) ...\n"
                            "  --tls-key FILE        ... and key\n"
                            "  --log-file FILE       access log (time, method, path, status, duration) to FILE\n"
                            "                        instead of stderr; --log-file none: no access log\n"
                            "  --max-connections N   concurrent connections per listener (default 256)\n"
                            "  --max-upload SIZE     largest tar upload (files, image load; default 16G)\n"
                            "  --unread-output-timeout S  kill an execution whose held output (1 MiB) nobody\n"
                            "                        has read for S seconds (default 60; detached ones\n"
                            "                        drop their oldest output instead)\n"
                            "  -h, --help            this help\n";

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { stopping = sig; }

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cocoon serve: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static void autostart_report(void *user, const char *id, const char *name, int ok, const char *message)
{
    (void)user;
    if (ok)
        fprintf(stderr, "cocoon serve: the host restarted: started box %s again (its restart policy)\n",
                name[0] ? name : id);
    else
        fprintf(stderr, "cocoon serve: the host restarted: box %s did not start: %s\n", name[0] ? name : id, message);
}

/* $COCOON_HOME as libcocoon resolves it (the runtime creates it when missing). */
static int resolve_home(char *out, size_t cap)
{
    cocoon_runtime *rt;
    cocoon_error err;
    if (serve_runtime_open(&rt, &err) < 0)
        return fail("cannot open cocoon's state: %s", err.message);
    /* After a host reboot, the boxes that served come back as the server starts. */
    if (cocoon_autostart(rt, COCOON_AUTOSTART_IF_REBOOTED, autostart_report, NULL, &err) < 0)
        fprintf(stderr, "cocoon serve: warning: starting boxes after the host's restart: %s\n", err.message);
    cocoon_host_info info;
    int rc = cocoon_host_probe(rt, &info, &err);
    if (rc == 0)
        snprintf(out, cap, "%s", info.home);
    const char *warning = cocoon_runtime_warning(rt);
    if (warning[0])
        fprintf(stderr, "cocoon serve: warning: %s\n", warning);
    cocoon_runtime_close(rt);
    return rc < 0 ? fail("cannot find the state directory: %s", err.message) : 0;
}

/* Reads the token from path, or makes one there when it does not exist. */
static int load_token(const char *path, int create)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && create) {
        unsigned char rnd[32];
        char hex[sizeof(rnd) * 2 + 2];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
            return fail("cannot make a random token");
        for (size_t i = 0; i < sizeof(rnd); i++)
            snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        hex[sizeof(rnd) * 2] = '\n';
        hex[sizeof(rnd) * 2 + 1] = '\0';
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ssize_t n = write(fd, hex, strlen(hex));
            close(fd);
            if (n != (ssize_t)strlen(hex)) {
                unlink(path);
                return fail("cannot write the token file %s: %s", path, strerror(errno));
            }
            fprintf(stderr, "cocoon serve: made a new token in %s\n", path);
        }
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return fail("cannot read the token file %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        fprintf(stderr, "cocoon serve: warning: the token file %s is readable by others (chmod 600 %s)\n", path, path);
    char buf[SERVE_TOKEN_MAX + 2];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return fail("cannot read the token file %s: %s", path, strerror(errno));
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (strlen(buf) < 16 || strlen(buf) >= SERVE_TOKEN_MAX)
        return fail("the token in %s must be one line of 16 to 255 characters", path);
    for (const char *p = buf; *p; p++)
        if (*p <= ' ' || *p > '~')
            return fail("the token in %s must be printable ASCII without spaces", path);
    memcpy(serve_cfg.token, buf, strlen(buf) + 1); /* fits: checked above */
    return 0;
}

static char *read_pem(const char *path)
{
    char *data = util_read_file(path, 1 << 20, NULL);
    if (!data)
        fprintf(stderr, "cocoon serve: cannot read %s: %s\n", path, strerror(errno));
    return data;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"socket", required_argument, NULL, 's'},
                                       {"listen", required_argument, NULL, 'l'},
                                       {"token-file", required_argument, NULL, 't'},
                                       {"no-token", no_argument, NULL, 'n'},
                                       {"tls-cert", required_argument, NULL, 'c'},
                                       {"tls-key", required_argument, NULL, 'k'},
                                       {"log-file", required_argument, NULL, 'L'},
                                       {"max-connections", required_argument, NULL, 'm'},
                                       {"max-upload", required_argument, NULL, 'u'},
                                       {"unread-output-timeout", required_argument, NULL, 'U'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *socket_path = NULL, *listen_addr = NULL, *token_file = NULL, *cert = NULL, *key = NULL;
    const char *log_file = NULL;
    int no_token = 0, c;
    serve_cfg.max_connections = 256;
    serve_cfg.max_upload = 16ull << 30;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        uint64_t v;
        switch (c) {
        case 's': socket_path = optarg; break;
        case 'l': listen_addr = optarg; break;
        case 't': token_file = optarg; break;
        case 'n': no_token = 1; break;
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'L': log_file = optarg; break;
        case 'm':
            if (util_parse_count(optarg, 0, &v) < 0 || v < 1 || v > 65536)
                return fail("--max-connections takes a number from 1 to 65536, not \"%s\"", optarg);
            serve_cfg.max_connections = (unsigned)v;
            break;
        case 'u':
            if (util_parse_count(optarg, 1, &v) < 0 || v < 1)
                return fail("--max-upload takes a size such as 4G, not \"%s\"", optarg);
            serve_cfg.max_upload = v;
            break;
        case 'U':
            if (util_parse_count(optarg, 0, &v) < 0 || v < 1 || v > 86400)
                return fail("--unread-output-timeout takes seconds from 1 to 86400, not \"%s\"", optarg);
            xreg_unread_timeout_s = (unsigned)v;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fprintf(stderr, "cocoon serve: unknown option %s\n\n%s", argv[optind - 1], usage); return 2;
        }
    }
    if (optind < argc)
        return fail("unexpected argument \"%s\" (see cocoon serve --help)", argv[optind]);
    if (!!cert != !!key)
        return fail("--tls-cert and --tls-key go together");
    if (cert && !listen_addr)
        return fail("TLS is for the TCP listener: add --listen HOST:PORT");

    char home[COCOON_PATH_MAX];
    if (resolve_home(home, sizeof(home)))
        return 1;
    setenv("COCOON_HOME", home, 1);
    serve_cfg.home = home;

    FILE *log = stderr;
    if (log_file && strcmp(log_file, "none") == 0) {
        log = NULL;
    } else if (log_file) {
        log = fopen(log_file, "ae");
        if (!log)
            return fail("cannot open the log file %s: %s", log_file, strerror(errno));
    }
    serve_set_access_log(log);

    /* Static: they live as long as the process (their PEM buffers too, even on a failed start). */
    static struct listener tcp, unix_l;
    char default_socket[COCOON_PATH_MAX + 16];
    if (!socket_path) {
        snprintf(default_socket, sizeof(default_socket), "%s/cocoon.sock", home);
        socket_path = default_socket;
    }
    char errbuf[512];
    if (listen_addr) {
        if (listener_tcp(&tcp, listen_addr, errbuf, sizeof(errbuf)) < 0)
            return fail("%s", errbuf);
        if (no_token && !tcp.loopback)
            return fail("--no-token is refused on %s: it is not a loopback address, and anyone who can reach "
                        "it could run code in your boxes",
                        listen_addr);
        tcp.need_token = !no_token;
        serve_cfg.need_token = tcp.need_token;
        if (tcp.need_token) {
            char path[COCOON_PATH_MAX + 32];
            snprintf(path, sizeof(path), "%s/serve.token", home);
            if (load_token(token_file ? token_file : path, !token_file))
                return 1;
        }
        if (cert) {
            tcp.tls_cert = read_pem(cert);
            tcp.tls_key = read_pem(key);
            if (!tcp.tls_cert || !tcp.tls_key)
                return 1;
        }
    }
    if (strcmp(socket_path, "none") != 0 && listener_unix(&unix_l, socket_path, errbuf, sizeof(errbuf)) < 0)
        return fail("%s", errbuf);
    if (!unix_l.fd_valid && !tcp.fd_valid)
        return fail("nothing to listen on: give --listen or a --socket other than none");

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    serve_counters.started_ns = util_now_ns(CLOCK_MONOTONIC);
    xreg_init();

    if (unix_l.fd_valid && listener_start(&unix_l, errbuf, sizeof(errbuf)) < 0)
        return fail("%s", errbuf);
    if (tcp.fd_valid && listener_start(&tcp, errbuf, sizeof(errbuf)) < 0)
        return fail("%s", errbuf);
    if (unix_l.fd_valid)
        fprintf(stderr, "cocoon serve: listening on unix:%s\n", socket_path);
    if (tcp.fd_valid)
        fprintf(stderr, "cocoon serve: listening on %s://%s%s\n", cert ? "https" : "http", listen_addr,
                tcp.need_token ? " (bearer token required)" : " (no token: loopback only)");
    fflush(stderr);

    while (!stopping)
        pause();
    fprintf(stderr, "cocoon serve: stopping (signal %d); boxes keep running\n", (int)stopping);
    mcp_http_shutdown(); /* first: it kills MCP calls' execs, which connection threads wait for */
    listener_stop(&unix_l);
    listener_stop(&tcp);
    e2b_shutdown(); /* after the listeners: no request may start a sandbox any more */
    if (unix_l.fd_valid)
        unlink(socket_path);
    /* Executions started over the API end with the server (their client connection to
     * each box's monitor closes); boxes do not. */
    if (log && log != stderr)
        fclose(log);
    _exit(0);
}
