/* cocoon's user-space network stack: the public interface. One stack per box owns
 * every Ethernet frame the guest sends, terminates TCP, relays UDP and ICMP echo over
 * ordinary host sockets, intercepts DNS and applies the box's egress policy. It is
 * pure library code: the caller moves frames (net_stack_input_frame / the output
 * callback) and watches one fd (net_stack_fd) for the stack's own sockets and timers. */
#ifndef COCOON_NET_NET_H
#define COCOON_NET_NET_H

#include <stddef.h>
#include <stdint.h>

#define NET_MAX_RULES 64
#define NET_MAX_PORTS 32
#define NET_MAX_UPSTREAMS 4
#define NET_RULE_TEXT 256
#define NET_PORT_TEXT 64
#define NET_MAX_TLS_HOSTS 32
#define NET_TLS_CA_PATH 1024
#define NET_MAX_SECRETS 16
#define NET_SECRET_HOSTS 4
#define NET_SECRET_NAME 64
#define NET_SECRET_PLACEHOLDER 128
#define NET_SECRET_VALUE_MAX 4096
#define NET_MAX_HEADER_RULES 16
#define NET_HEADER_NAME 64
#define NET_HEADER_VALUE 512

/* A secret: the variable name the box sees, the hosts its value may go to, and the
 * placeholder the box holds instead (docs/security.md "Secrets"). The value itself is
 * never part of a config: net_stack_secret_value gives it to a running stack. */
struct net_secret {
    char name[NET_SECRET_NAME];
    char hosts[NET_SECRET_HOSTS][254]; /* "api.example.com", "*.example.com" */
    int nhosts;
    char placeholder[NET_SECRET_PLACEHOLDER];
    char file[512]; /* where its value is read at each start, when not in the environment ("": nowhere) */
    unsigned in;    /* NET_SECRET_IN_*: where else than headers the value may be put (--secret-in) */
};

/* Where a secret's placeholder becomes its value besides request headers (and Basic
 * credentials), which always may: the request target's query (percent-encoded) and
 * the request body (Content-Length rewritten, chunked bodies re-chunked). */
#define NET_SECRET_IN_QUERY 1u
#define NET_SECRET_IN_BODY 2u

/* A request header set (added, or replacing the guest's) toward host. */
struct net_header_rule {
    char host[254];
    char name[NET_HEADER_NAME];
    char value[NET_HEADER_VALUE];
    char text[254 + NET_HEADER_NAME + NET_HEADER_VALUE + 4]; /* as written */
};

enum net_mode { NET_MODE_NONE = 0, NET_MODE_PUBLIC = 1, NET_MODE_OPEN = 2 };
enum net_rule_kind { NET_RULE_CIDR, NET_RULE_DOMAIN, NET_RULE_HOST };
enum net_proto { NET_PROTO_ANY = 0, NET_PROTO_TCP = 6, NET_PROTO_UDP = 17 };

/* One parsed rule: "allow api.example.com", "deny 10.0.0.0/8:22/tcp", "allow host:8080". */
struct net_rule {
    int allow;
    enum net_rule_kind kind;
    uint32_t addr, mask;          /* CIDR, host byte order */
    char domain[254];             /* DOMAIN: "example.org", "*.example.org" or "*" */
    uint16_t port_lo, port_hi;    /* 0,0: any port */
    int proto;                    /* enum net_proto */
    char text[NET_RULE_TEXT + 8]; /* "allow "/"deny " + as written, for the log */
};

/* A published port: host listener (host_ip:host_port) forwarded to guest_port. */
struct net_port {
    uint32_t host_ip; /* host byte order */
    uint16_t host_port, guest_port;
    int proto;                /* NET_PROTO_TCP or NET_PROTO_UDP */
    char text[NET_PORT_TEXT]; /* as written ("8080:80"), for config.json and messages */
};

struct net_upstream {
    uint32_t ip; /* host byte order */
    uint16_t port;
};

struct net_config {
    int mode; /* enum net_mode */
    struct net_rule rules[NET_MAX_RULES];
    int nrules;
    struct net_port ports[NET_MAX_PORTS];
    int nports;
    struct net_upstream upstreams[NET_MAX_UPSTREAMS]; /* 0 of them: /etc/resolv.conf */
    int nupstreams;
    /* Addresses, host byte order. Defaults from net_config_defaults(). */
    uint32_t guest_ip, gateway_ip, dns_ip, host_alias_ip;
    int prefix;
    uint8_t guest_mac[6], gateway_mac[6];
    uint16_t mtu;
    int max_tcp;            /* connections per box (RST above it) */
    int max_half_open;      /* guest SYNs waiting for a host connect() */
    int max_udp;            /* UDP/ICMP flows */
    int max_dns;            /* DNS queries waiting for the upstream */
    uint64_t mem_budget;    /* bytes the stack may allocate in all (see NET_MEM_BUDGET_DEFAULT) */
    int fd_reserve;         /* descriptors the stack leaves to the rest of its process */
    int refuse_nxdomain;    /* denied names: 1 NXDOMAIN, 0 REFUSED */
    int log_fd;             /* denials are appended here (net.log); -1: nowhere */
    int log_dirfd;          /* the directory holding net.log, to rotate it; -1: never rotated */
    uint64_t log_max_bytes; /* net.log becomes net.log.1 above this; 0: NET_LOG_DEFAULT_BYTES */
    /* TLS interception (docs/network.md "TLS interception"): port 443 connections whose
     * ClientHello names one of these ("api.example.com", "*.example.org") end in the
     * monitor and are re-originated; tls_extra_ca: a PEM file of CAs trusted for the
     * upstreams besides the host's store ("": none). */
    char tls_intercept[NET_MAX_TLS_HOSTS][254];
    int ntls_intercept;
    char tls_bypass[NET_MAX_TLS_HOSTS][254]; /* a box with secrets intercepts every host but these */
    int ntls_bypass;
    char tls_extra_ca[NET_TLS_CA_PATH];
    struct net_secret secrets[NET_MAX_SECRETS];
    int nsecrets;
    struct net_header_rule header_rules[NET_MAX_HEADER_RULES];
    int nheader_rules;
    int secret_violation; /* enum net_secret_violation: what a placeholder going where it may not does */
};

/* What a secret's placeholder going where it may not go does (--secret-violation): the
 * connection is always refused and closed, and counted (denied_secret); LOG (the
 * default) also writes the net.log line; STOP also has the monitor stop the box. */
enum net_secret_violation { NET_SV_BLOCK_AND_LOG = 0, NET_SV_BLOCK = 1, NET_SV_BLOCK_AND_STOP = 2 };
/* "block", "block-and-log", "block-and-stop-box" into *out; -1 (err says the choices). */
int net_secret_violation_parse(const char *text, int *out, char *err, size_t errcap);
const char *net_secret_violation_name(int v);

#define NET_LOG_DEFAULT_BYTES (1024u * 1024) /* so at most about 2 MiB of log per box */
/* Per box, against a guest that opens all it can: the bytes of everything the stack
 * allocates (TCP rings grow within it), and the descriptors it leaves to the rest of
 * its process (256 control clients, logs, disks, the VMM's own). See budget.c. */
#define NET_MEM_BUDGET_DEFAULT (64ull << 20)
#define NET_FD_RESERVE_DEFAULT 320
#define NET_LOG_MIN_BYTES 1024u

/* Counters, also shown by stats. */
struct net_stats {
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
    uint64_t dropped_malformed, dropped_fragment, dropped_other, fragments_out, reassembled;
    uint64_t denied_tcp, denied_udp, denied_icmp, denied_dns, denied_sni;
    uint64_t tcp_opened, tcp_refused_limit, tcp_retransmits;
    uint64_t udp_flows, dns_queries, dns_stripped, dns_truncated, log_rotations;
    uint64_t denied_secret; /* intercepted requests stopped by the secrets filter */
};

/* Fills the defaults: mode public, 10.0.2.15/24, gateway 10.0.2.2 (also the host
 * alias host.cocoon.internal), DNS 10.0.2.3, MTU 1500, limits, log_fd and log_dirfd -1. */
void net_config_defaults(struct net_config *c);
/* The RLIMIT_NOFILE soft limit c's caps need: a descriptor per TCP connection, UDP or
 * ICMP flow and pending DNS query, the published ports, the stack's own two, plus
 * c->fd_reserve for the rest of the process. */
unsigned long net_config_fds_wanted(const struct net_config *c);
/* COCOON_DNS_UPSTREAM=IP[:PORT] replaces the upstream resolvers (tests point boxes at
 * their own DNS server this way); anything unparsable is ignored. */
void net_config_upstream_from_env(struct net_config *c);
/* Sets the denial log: log_fd appended to, dirfd the directory holding it (net.log,
 * rotated to net.log.1 there). COCOON_NET_LOG_MAX=BYTES changes the rotation size. */
void net_config_log(struct net_config *c, int log_fd, int dirfd);
/* "api.example.com", "*.example.org", "10.0.0.0/8:22/tcp", "host:8080"... (the text
 * after "allow"/"deny"; allow says which) into *r. 0, or -1 with a message in err. */
int net_rule_parse(const char *text, int allow, struct net_rule *r, char *err, size_t errcap);
/* "[host_ip:]host_port:guest_port[/udp|/tcp]" into *p. -1 with a message in err. The
 * text form of a mode (none, public, open) is the box contract's: src/boxcfg/contract.h. */
int net_port_parse(const char *text, struct net_port *p, char *err, size_t errcap);

struct net_stack;
/* Called with each frame for the guest. Returns 0 when taken, 1 when taken but the link
 * is now congested (the stack then stops reading host sockets until
 * net_stack_link_ready), -1 when dropped. */
typedef int (*net_output_fn)(void *user, const uint8_t *frame, size_t len);

/* A stack for one box: cfg is copied (upstreams from /etc/resolv.conf when it has none,
 * caps fitted under RLIMIT_NOFILE), its published ports are bound now, and frames for
 * the guest go to out(user, ...), from inside the calls below only. NULL with a
 * message in err when a port cannot be bound or without memory or descriptors. The
 * caller owns the stack and frees it with net_stack_free. */
struct net_stack *net_stack_new(const struct net_config *cfg, net_output_fn out, void *user, char *err, size_t errcap);
/* Closes every host socket of s (connections are aborted) and frees it; NULL is fine.
 * cfg->log_fd and log_dirfd stay open: they are the caller's. */
void net_stack_free(struct net_stack *s);
/* One Ethernet frame from the guest (no FCS; len bytes, read during the call only).
 * Never fails: bad frames are counted. */
void net_stack_input_frame(struct net_stack *s, const uint8_t *frame, size_t len);
/* Ends a batch of frames: writes the guest data it brought to the host sockets and
 * sends the ACKs held back. Call after each batch; until then that data waits. */
void net_stack_flush(struct net_stack *s);
/* The one fd (an epoll set of the stack's sockets and its timer) to watch for EPOLLIN. */
int net_stack_fd(const struct net_stack *s);
/* Handles whatever is ready (sockets, timers) without blocking. */
void net_stack_on_fd_ready(struct net_stack *s);
/* Milliseconds until the stack needs net_stack_tick (-1: none). The internal timer
 * already wakes net_stack_fd; this is for callers that poll. */
int net_stack_timeout(const struct net_stack *s);
/* Runs the timers that are due (retransmissions, delayed ACKs, idle flows, DNS
 * timeouts); harmless when none is. */
void net_stack_tick(struct net_stack *s);
/* Makes the stack's fd readable again at or before ms from now (callers with periodic
 * work of their own: net_stack_on_fd_ready then runs it at the next wake-up). */
void net_stack_wake_in(struct net_stack *s, unsigned ms);
/* The output path drained after a congested report. */
void net_stack_link_ready(struct net_stack *s);
/* The stack's counters, owned by s and updated in place. */
const struct net_stats *net_stack_stats(const struct net_stack *s);
/* Why the box must stop (a secret violation under NET_SV_BLOCK_AND_STOP), NULL while it
 * need not. Once set the stack drops every frame from the guest. */
const char *net_stack_stop_wanted(const struct net_stack *s);
/* The configuration in effect: the caps as fitted under RLIMIT_NOFILE (net_stack_new
 * lowers them, with a note in net.log, when the process may not open enough). */
const struct net_config *net_stack_config(const struct net_stack *s);

/* TLS interception: loads (creating it when absent) the box CA in dirfd and the host's
 * trust store, before any jail. Nothing to do (0) when cfg names no host to intercept.
 * -1 with a message in err. */
int net_stack_tls_setup(struct net_stack *s, int dirfd, const char *box_id, char *err, size_t cap);
/* The box CA's certificate (PEM) for the guest's trust store; NULL without interception. */
const char *net_stack_tls_ca_pem(const struct net_stack *s);
/* Frees what net_stack_tls_setup made (net_stack_free does it too). */
void net_stack_tls_free(struct net_stack *s);
/* "HOST" or "*.DOMAIN" for --tls-intercept, added to c; -1 with a message in err. */
int net_tls_host_add(struct net_config *c, const char *host, char *err, size_t errcap);
/* The same for --tls-bypass (a box with secrets intercepts TLS to every other host). */
int net_tls_bypass_add(struct net_config *c, const char *host, char *err, size_t errcap);
/* A secret NAME (an environment variable name) with its hosts ("a.example.com,*.b.org")
 * and placeholder (NULL: a new random one), added to c; -1 with a message in err. */
int net_secret_add(struct net_config *c, const char *name, const char *hosts, const char *placeholder, char *err,
                   size_t errcap);
/* A secret's name: an environment variable name (letters, digits, _; no leading digit). */
int net_secret_name_valid(const char *name);
/* "NAME=headers,query,body" (--secret-in): where secret NAME's value may go. */
int net_secret_in_set(struct net_config *c, const char *spec, char *err, size_t errcap);
/* One place ("query", "body", "headers") into *bit (0 for headers: always); -1 if unknown. */
int net_secret_in_word(const char *word, size_t len, unsigned *bit);
/* Adds hosts to the secret NAME of c ("NAME=host[,host...]", --secret-host). */
int net_secret_hosts_add(struct net_config *c, const char *spec, char *err, size_t errcap);
/* "HOST:Name=Value" (--header-rule) added to c; -1 with a message in err. */
int net_header_rule_add(struct net_config *c, const char *text, char *err, size_t errcap);
/* Whether value may be a secret's value: 1 to NET_SECRET_VALUE_MAX printable bytes
 * (no CR, LF or NUL). 0 with the reason in err. */
int net_secret_value_ok(const char *value, size_t len, char *err, size_t errcap);
/* Gives the running stack the value of its secret name (copied; wiped at free). */
int net_stack_secret_value(struct net_stack *s, const char *name, const char *value, size_t len);

/* 1 when ip (host byte order) is a public address, 0 for what the public mode refuses
 * (loopback, private ranges, CGNAT, link-local, multicast, reserved). */
int net_addr_is_public(uint32_t ip);

#endif
