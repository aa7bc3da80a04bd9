/* libcocoon: microVM sandboxes as a library. Open a runtime, create a box from an
 * image or a root directory, start it, run commands in it with streamed output,
 * stop and remove it. Every call reports failure through a cocoon_error. */
#ifndef COCOON_H
#define COCOON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define COCOON_ERROR_MAX 2048
#define COCOON_PATH_MAX 4096

/* Error codes: a category a program can branch on; the message is for people. */
enum cocoon_error_code {
    COCOON_OK = 0,
    COCOON_E_INVALID = 1,     /* a bad argument or option */
    COCOON_E_NOT_FOUND = 2,   /* box, image, kernel or file missing */
    COCOON_E_IO = 3,          /* a host file or socket operation failed */
    COCOON_E_BOOT = 4,        /* the guest did not come up */
    COCOON_E_VMM = 5,         /* the monitor or hypervisor failed or died */
    COCOON_E_PROTOCOL = 6,    /* the peer sent something malformed */
    COCOON_E_STATE = 7,       /* wrong state: box not running, exec finished... */
    COCOON_E_UNSUPPORTED = 8, /* not possible on this host */
    COCOON_E_NOMEM = 9,
    COCOON_E_EXEC = 10 /* the command could not be started in the guest */
};

typedef struct cocoon_error {
    int code;
    char message[COCOON_ERROR_MAX];
} cocoon_error;

typedef struct cocoon_runtime cocoon_runtime;
typedef struct cocoon_box cocoon_box;
typedef struct cocoon_exec cocoon_exec;

const char *cocoon_version(void);

/* Options structs (cocoon_*_options) start with a size field: fill one with its
 * cocoon_*_options_init() (which sets the size and every default), then set what you
 * need. The library reads only the fields that fit in the size your program was built
 * with, so a program built against an older header keeps working with a newer library
 * (new fields take their defaults); a program that sets fields this library does not
 * know fails with COCOON_E_UNSUPPORTED instead of having them ignored. A size of 0 (a
 * struct never initialised) is refused with COCOON_E_INVALID. Fields are only ever
 * appended, each one after the previous version's whole struct. */

/* ---- runtime ---- */
typedef struct cocoon_runtime_options {
    size_t size;           /* sizeof(cocoon_runtime_options): set by cocoon_runtime_options_init */
    const char *home;      /* state directory; NULL: $COCOON_HOME or ~/.local/share/cocoon */
    const char *share_dir; /* kernel, initramfs, images; NULL: $COCOON_SHARE_DIR, else <dir>/../share/cocoon
                              where <dir> holds libcocoon.so (or the program linking libcocoon.a) */
    const char *vmm;       /* the cocoon-vmm boxes are started with; NULL: $COCOON_VMM, else
                              <dir>/../bin/cocoon-vmm */
} cocoon_runtime_options;
void cocoon_runtime_options_init(cocoon_runtime_options *opts);

/* opts may be NULL (every default). */

int cocoon_runtime_open(const cocoon_runtime_options *opts, cocoon_runtime **out, cocoon_error *err);
void cocoon_runtime_close(cocoon_runtime *rt);
/* A warning about the state directory found by cocoon_runtime_open (group- or
 * world-accessible, with the chmod that fixes it), or "" when there is none. */
const char *cocoon_runtime_warning(const cocoon_runtime *rt);
/* Called (from the calling thread) with one-line notices while a call waits on
 * something slow, e.g. "waiting for the image store lock held by pid N (cocoon load)". */
typedef void (*cocoon_notice_fn)(void *user, const char *message);
void cocoon_runtime_set_notice(cocoon_runtime *rt, cocoon_notice_fn fn, void *user);

/* What this host offers, as `cocoon doctor` prints it. */
typedef struct cocoon_host_info {
    int kvm_device; /* /dev/kvm exists and opens */
    int kvm_usable; /* KVM can run a stock kernel (hardware VMX/SVM) */
    char kvm_reason[256];
    char backend[16]; /* backend a box with --vmm auto gets: "kvm" or "qemu" */
    char accel[16];   /* "kvm" or "tcg" */
    char accel_reason[256];
    char qemu_path[512];
    char qemu_version[128]; /* empty when QEMU is missing */
    char kernel_path[512];
    int kernel_present;
    char initrd_path[512];
    int initrd_present;
    char default_image_path[512];
    int default_image_present;
    char home[512];
    char vmm_path[512]; /* the cocoon-vmm boxes are started with */
    int vmm_present;
    char backend_reason[256]; /* why `backend` */
    /* The jail of box processes (on unless COCOON_JAIL=0): what this host allows. */
    int jail_on;           /* COCOON_JAIL is not 0 */
    int jail_userns;       /* unprivileged user namespaces (or root) */
    int jail_mountns;      /* a mount namespace: the empty root */
    int jail_pidns;        /* a PID namespace for the VMM child */
    int jail_netns;        /* an empty network namespace for the VMM child */
    int jail_seccomp;      /* system call filters */
    int jail_cgroup2;      /* a delegated cgroup v2 for per-box memory and pids limits */
    char jail_detail[512]; /* what is not available, in words */
} cocoon_host_info;
int cocoon_host_probe(cocoon_runtime *rt, cocoon_host_info *info, cocoon_error *err);

/* The state check behind `cocoon doctor [--fix]`: box rows against box directories,
 * what killed or interrupted commands left (temporary directories and files, rows
 * whose files are gone, files no row needs), image rows against their bases, stopped
 * boxes' disks, the database itself. Each finding goes to fn. With COCOON_CHECK_FIX
 * garbage is removed; data a person may want (a damaged box, an image without its
 * base) never is: its finding says which command removes it. Returns the number of
 * findings left to act on (0: the state is sound), or -1 with err. */
#define COCOON_CHECK_FIX 1u
enum {
    COCOON_CHECK_INFO = 0,    /* nothing to do (e.g. leaked disk clusters, which only take space) */
    COCOON_CHECK_GARBAGE = 1, /* collectable; fixed says whether it was collected */
    COCOON_CHECK_PROBLEM = 2  /* a person must act: action says how */
};
typedef struct cocoon_check_finding {
    int kind; /* COCOON_CHECK_INFO, _GARBAGE or _PROBLEM */
    int fixed;
    const char *what;   /* one line: what was found, where */
    const char *action; /* what was done ("removed") or what to do */
} cocoon_check_finding;
typedef void (*cocoon_check_fn)(void *user, const cocoon_check_finding *finding);
int cocoon_state_check(cocoon_runtime *rt, unsigned flags, cocoon_check_fn fn, void *user, cocoon_error *err);

/* ---- images ----
 * OCI images from any registry (`python:3.12`, `ghcr.io/org/tool@sha256:...`), `docker
 * save` tarballs and OCI layouts. Each image becomes one read-only ext4 base in
 * $COCOON_HOME/images/bases, shared by every box of that image. NAME_OR_ID below is a
 * reference as pulled ("python:3.12" or its canonical form), a built-in image name
 * ("default"), an image id ("sha256:<hex>") or a unique prefix of its hex digits. */
typedef void (*cocoon_pull_progress_fn)(void *user_data, const char *layer_digest, uint64_t done, uint64_t total);

typedef struct cocoon_pull_options {
    size_t size;                      /* sizeof(cocoon_pull_options): set by cocoon_pull_options_init */
    int insecure;                     /* allow plain HTTP to the registry; also set for hosts listed in
                                         $COCOON_INSECURE_REGISTRIES (comma-separated, "host" or "host:port") */
    int quiet;                        /* no progress callbacks */
    const char *auth_file;            /* docker config.json-style credentials; NULL: $COCOON_HOME/auth.json */
    cocoon_pull_progress_fn progress; /* per layer: bytes done of total; called on the calling thread */
    void *user_data;
} cocoon_pull_options;
void cocoon_pull_options_init(cocoon_pull_options *opts);

typedef struct cocoon_image_info {
    char id[512];          /* manifest digest "sha256:<hex>", or "local:NAME" for a built-in image */
    char name[1024];       /* canonical reference ("docker.io/library/python:3.12"); "" when untagged */
    char repository[1024]; /* name split for display: "docker.io/library/python" ... */
    char tag[256];         /* ... and "3.12" (or "@sha256:..." / "" ) */
    char config_digest[128];
    char base_path[COCOON_PATH_MAX];
    uint64_t size;     /* virtual size of the ext4 base in bytes */
    long long created; /* unix time it was pulled or loaded */
    unsigned boxes;    /* boxes created from it */
    int pulled;        /* 1 for pulled or loaded images; 0 for built-in ones */
} cocoon_image_info;

/* Fetches REF (only layers not already stored), verifies every digest, and merges the
 * layers into the image's ext4 base unless a base for that manifest exists. Concurrent
 * pulls of one image in several processes are safe. opts may be NULL (the defaults). */
int cocoon_image_pull(cocoon_runtime *rt, const char *ref, const cocoon_pull_options *opts, cocoon_image_info *out,
                      cocoon_error *err);
/* `docker save` tarball, OCI layout directory or tarball: every image in it. Free *out
 * with cocoon_image_list_free. */
int cocoon_image_load(cocoon_runtime *rt, const char *path, cocoon_image_info **out, size_t *count, cocoon_error *err);
/* Every known image (pulled, loaded, and built-in ones used so far), oldest first. */
int cocoon_image_list(cocoon_runtime *rt, cocoon_image_info **out, size_t *count, cocoon_error *err);
void cocoon_image_list_free(cocoon_image_info *list);
/* Details of one image; *config_json (may be NULL) receives the OCI image config
 * (malloc'd, free() it; NULL when the image has none, e.g. a built-in one). */
int cocoon_image_inspect(cocoon_runtime *rt, const char *name_or_id, cocoon_image_info *info, char **config_json,
                         cocoon_error *err);
/* Forgets an image and deletes its base and the blobs no other image needs. Refused
 * with COCOON_E_STATE, naming the box, while a box uses it. */
int cocoon_image_remove(cocoon_runtime *rt, const char *name_or_id, cocoon_error *err);
/* Removes every image no box uses, then every base and blob no remaining image needs.
 * removed / freed_bytes (either may be NULL) say how much went. */
int cocoon_image_prune(cocoon_runtime *rt, size_t *removed, uint64_t *freed_bytes, cocoon_error *err);

/* The parts of an image config a box honours (docker semantics). Arrays are
 * NULL-terminated and NULL when the image does not set them. */
typedef struct cocoon_image_config {
    char **env; /* "K=V" */
    char **entrypoint;
    char **cmd;
    char *working_dir; /* NULL: / */
    char *user;        /* NULL: root; "name", "uid", "uid:gid", "name:group" */
} cocoon_image_config;
/* The config of an image (an empty one for built-in images). Free with cocoon_image_config_free. */
int cocoon_image_config_get(cocoon_runtime *rt, const char *name_or_id, cocoon_image_config *out, cocoon_error *err);
void cocoon_image_config_free(cocoon_image_config *cfg);

/* What runs in a box, by docker's rules for an image config and a caller's request:
 * - argv: the caller's command replaces the image's Cmd, behind the image's Entrypoint.
 *   An entrypoint in the request replaces the image's Entrypoint and drops its Cmd (the
 *   caller's argv, if any, follows it); entrypoint "" means none: the command runs as
 *   given (what `cocoon exec`, like `docker exec`, does). No command from either side:
 *   /bin/sh.
 * - env: the image's Env without the keys the request sets, then the request's entries.
 * - cwd and user: the request's, else the image's WorkingDir and User, else NULL (/ and
 *   root). */
typedef struct cocoon_command_options {
    size_t size;             /* sizeof(cocoon_command_options): set by cocoon_command_options_init */
    const char *const *argv; /* NULL-terminated; NULL or empty: the image's Cmd */
    const char *entrypoint;  /* NULL: the image's Entrypoint; "": none; else the program to run */
    const char *const *env;  /* NULL-terminated "K=V" entries */
    const char *cwd;         /* NULL: the image's WorkingDir */
    const char *user;        /* NULL: the image's User */
} cocoon_command_options;
void cocoon_command_options_init(cocoon_command_options *opts);

/* The resolved command: every string is the command's own copy (free with
 * cocoon_command_free). Its fields go straight into a cocoon_exec_options. */
typedef struct cocoon_command {
    char **argv; /* NULL-terminated, at least one entry */
    char **env;  /* NULL-terminated, maybe empty */
    char *cwd;   /* NULL: / */
    char *user;  /* NULL: root */
} cocoon_command;
/* image may be NULL (no image config: a built-in image or a root directory). */
int cocoon_image_command(const cocoon_image_config *image, const cocoon_command_options *opts, cocoon_command *out,
                         cocoon_error *err);
/* The same with the config of the image the box was created from. */
int cocoon_box_command(cocoon_box *box, const cocoon_command_options *opts, cocoon_command *out, cocoon_error *err);
void cocoon_command_free(cocoon_command *cmd);

/* ---- boxes ---- */
/* A secret (docs/security.md "Secrets"): inside the box the variable `name` holds a
 * placeholder ("cocoon-secret-NAME-<32 hex digits>", random per box); cocoon's network
 * stack puts the value in its place only in request headers (Basic credentials
 * included) of HTTPS requests to one of `hosts` whose address came from the box's own
 * DNS lookup. The value is never written anywhere: it is handed to the box's monitor
 * in memory at each start, from `value` (kept by the box handle that created the box)
 * or else from the environment variable `name` of the process that starts the box. */
typedef struct cocoon_secret {
    const char *name;  /* an environment variable name */
    const char *hosts; /* "api.example.com,*.example.com" */
    const char *value; /* NULL: read at each start from the environment, else from file */
    const char *file;  /* an absolute path holding the value (one trailing line end dropped), or NULL */
} cocoon_secret;

typedef struct cocoon_box_options {
    size_t size;                  /* sizeof(cocoon_box_options): set by cocoon_box_options_init */
    const char *name;             /* optional: up to 64 letters, digits, '.', '_' or '-' */
    const char *image;            /* image name or reference; NULL and no rootfs: "default". An image
                                     not present locally is pulled (see cocoon_image_pull). */
    const char *rootfs;           /* a host directory to use as the root instead of an image */
    unsigned cpus;                /* 0: 1; at most 64 */
    unsigned memory_mib;          /* 0: 512; 64 to 1048576 (1 TiB) */
    const char *accel;            /* NULL/"auto", "kvm", "tcg" */
    int ephemeral;                /* remove the box when it stops or when its creator exits */
    unsigned boot_timeout_ms;     /* 0: 60000 (TCG boots take seconds); 100 to 3600000 */
    const char *kernel;           /* override the guest kernel (tests) */
    const char *initrd;           /* override the initramfs (tests) */
    uint64_t disk_size;           /* virtual disk size in bytes; 0: the image's size (the minimum);
                                     at most 64 TiB. The guest grows its root file system to fill it
                                     at boot. */
    const char *vmm;              /* NULL/"auto" (kvm where KVM has hardware virtualization, else
                                     qemu), "kvm" (our own VMM) or "qemu" */
    const char *net;              /* NULL/"public": public internet only (through cocoon's filtering
                                     stack); "none": no network device; "open": everything, private
                                     ranges included (unsafe) */
    const char *const *net_rules; /* NULL-terminated, first match wins: "allow api.example.com",
                                 "allow *.example.org", "allow 10.1.2.0/24:5432/tcp", "deny 1.2.3.4",
                                 "allow host:8080" (the host's loopback as host.cocoon.internal) */
    const char *const *net_ports; /* NULL-terminated published ports: "8080:80", "127.0.0.1:5353:53/udp" */
    /* TLS interception, secrets and header rules (docs/security.md "Secrets") */
    const char *const *tls_intercept; /* NULL-terminated hosts ("api.example.com", "*.example.org") whose TLS
                                         is ended by cocoon with the box CA's certificate (trusted inside the
                                         box) and re-originated, verified, to the real host */
    const char *tls_ca;               /* a PEM file of CAs trusted for intercepted upstreams besides the
                                         host's store (NULL: none) */
    const char *const *tls_bypass;    /* NULL-terminated hosts a box with secrets does not intercept (every
                                         other host's TLS is, so that no placeholder leaves unseen) */
    const cocoon_secret *secrets;     /* ended by an entry whose name is NULL (NULL: none) */
    const char *const *header_rules;  /* NULL-terminated "HOST:Name=Value": the header set (added or replaced)
                                         on HTTPS requests to HOST; {{NAME}} in Value stands for secret NAME's
                                         value, under that secret's conditions */
    const char *secret_violation;     /* what a placeholder going where it may not does (the connection is
                                         always refused and closed): "block" (counted only), NULL or
                                         "block-and-log" (also a net.log line), "block-and-stop-box" (the
                                         box's monitor also stops the box) */
    const char *const *secret_in;     /* NULL-terminated "NAME=headers,query,body": where secret NAME's value
                                         may go besides headers (always): "query" (the request target's query,
                                         percent-encoded), "body" (the request body, its length rewritten) */
} cocoon_box_options;
/* Fills the defaults: the default image, 1 CPU, 512 MiB, backend and accel auto, network public. */
void cocoon_box_options_init(cocoon_box_options *opts);

/* Boxes live in the runtime's state ($COCOON_HOME/cocoon.db plus one directory per box)
 * until removed: a box that is not ephemeral keeps its disk across stop and start.
 * A box handle must be closed before the runtime it came from. opts may be NULL (the
 * defaults). */
int cocoon_box_create(cocoon_runtime *rt, const cocoon_box_options *opts, cocoon_box **out, cocoon_error *err);
/* Opens an existing box by id, name or unique id prefix. */
int cocoon_box_open(cocoon_runtime *rt, const char *id_or_name, cocoon_box **out, cocoon_error *err);
const char *cocoon_box_id(const cocoon_box *box);
const char *cocoon_box_name(const cocoon_box *box); /* "" when unnamed */
/* Boots the box and waits until its agent is ready (or the boot fails or times out).
 * An ephemeral box is attached (see below), any other is detached. */
int cocoon_box_start(cocoon_box *box, cocoon_error *err);
#define COCOON_START_ATTACHED 1 /* the box stops when this handle's process exits, even when killed */
#define COCOON_START_DETACHED 2 /* the box keeps running until stopped, even when ephemeral */
int cocoon_box_start_flags(cocoon_box *box, unsigned flags, cocoon_error *err);
int cocoon_box_is_running(cocoon_box *box);
/* Boot timing of the running box, in milliseconds: monitor start to agent ready. */
int cocoon_box_ready_ms(const cocoon_box *box);
/* Why this box cannot start ("" when it can): its files are missing or damaged, as
 * after an interrupted create by an older cocoon. cocoon_box_remove still removes it. */
const char *cocoon_box_problem(const cocoon_box *box);
/* Shuts the guest down cleanly, killing it after timeout_ms (0: 10000). A stopped
 * ephemeral box is removed. Stopping a stopped box is not an error. */
int cocoon_box_stop(cocoon_box *box, unsigned timeout_ms, cocoon_error *err);
/* stop (when running) + start, keeping the attachment rules of cocoon_box_start. */
int cocoon_box_restart(cocoon_box *box, unsigned timeout_ms, cocoon_error *err);
/* Deletes the box and its disk. A running box is refused (COCOON_E_STATE) unless force
 * is set, then it is stopped first. */
int cocoon_box_remove(cocoon_box *box, int force, cocoon_error *err);
/* Releases the handle (a running box keeps running unless it is attached). */
void cocoon_box_close(cocoon_box *box);

/* What `cocoon ls` and `cocoon inspect` show. The status comes from the monitor process
 * really being alive: a box whose monitor died is "stopped" (its stale files are removed). */
typedef struct cocoon_box_info {
    char id[16];
    char name[128];     /* "" when unnamed */
    char image[512];    /* as given at create ("default", "python:3.12"); "" with a rootfs */
    char image_id[512]; /* "local:default", "sha256:..."; "" with a rootfs */
    char rootfs[COCOON_PATH_MAX];
    char status[16]; /* "running" or "stopped" */
    int running;
    int pid;           /* cocoon-vmm's pid while running, else 0 */
    long long created; /* unix time */
    int ephemeral;
    unsigned cpus, memory_mib;
    char accel[16]; /* as asked: auto, kvm, tcg */
    char dir[COCOON_PATH_MAX];
    char kernel[COCOON_PATH_MAX], initrd[COCOON_PATH_MAX];
    char disk_path[COCOON_PATH_MAX];
    char disk_format[16];       /* qcow2 or raw */
    uint64_t disk_size;         /* virtual size in bytes */
    uint64_t disk_used;         /* bytes the disk file takes on the host */
    int ready_ms;               /* while running (inspect only): monitor start to agent ready; else -1 */
    long long boot_ms, init_ms; /* while running (inspect only): guest kernel boot, agent init; else -1 */
} cocoon_box_info;
int cocoon_box_inspect(cocoon_box *box, cocoon_box_info *info, cocoon_error *err);
/* Every box of the runtime, oldest first. Free with cocoon_box_list_free. */
int cocoon_box_list(cocoon_runtime *rt, cocoon_box_info **out, size_t *count, cocoon_error *err);
void cocoon_box_list_free(cocoon_box_info *list);
/* ---- the main process ----
 * A box may have a main process: started detached by the box's monitor each time the
 * box boots, its stdout/stderr kept on the host (DIR/main.log, rotated above 4 MiB:
 * at most about 8 MiB per box). When it ends, its exit code and time are recorded and
 * the box stops, unless its restart policy runs it again: "no" (the default),
 * "on-failure" or "on-failure:N" (at most N restarts), "always", "unless-stopped".
 * Restarts wait 1 s, doubling to at most 60 s while the process keeps ending within
 * 10 s of its start. A box stopped by the user is not restarted. */
/* Sets (cmd, usually from cocoon_box_command) or, with cmd NULL, removes the box's
 * main process; it takes effect at the box's next start. */
int cocoon_box_set_main(cocoon_box *box, const cocoon_command *cmd, const char *restart, cocoon_error *err);
typedef struct cocoon_main_status {
    size_t size;               /* sizeof(cocoon_main_status): set by cocoon_main_status_init */
    int present;               /* the box has a main process (the rest is empty without one) */
    char command[256];         /* argv joined by spaces, clipped */
    char restart[32];          /* the policy: "no", "on-failure:3", "always", "unless-stopped" */
    char state[16];            /* "" (never started), starting, running, restarting, exited, stopped */
    int pid;                   /* in the guest, while running */
    int exit_code;             /* of the last run: its code, 128+N for signal N, -1 unknown */
    int signal;                /* the signal that ended the last run, else 0 */
    char error[256];           /* why the last run could not start ("" when it did) */
    long long started_at;      /* unix time of the last start, 0 never */
    long long finished_at;     /* unix time of the last end, 0 while running */
    long long next_restart_ms; /* while restarting: unix time in ms of the next try */
    unsigned restarts;         /* restarts in the current or last boot */
} cocoon_main_status;
void cocoon_main_status_init(cocoon_main_status *st);
/* The main process's output, kept in DIR/main.log with the time of each line. */
typedef struct cocoon_logs_options {
    size_t size;        /* sizeof(cocoon_logs_options): set by cocoon_logs_options_init */
    int follow;         /* keep copying what comes until the box stops */
    long long tail;     /* only the last N lines; -1 (the default): all that is kept */
    int timestamps;     /* each line starts with its time (RFC 3339, UTC, microseconds) and a space */
    long long since_us; /* only lines written at or after this unix time in microseconds; 0: all
                           (cocoon_parse_since reads "10m", "2026-12-03T14:00:00Z"...). With tail:
                           the last N of those. */
    /* Set: each line goes to on_line instead of the fds: is_stderr, its time as recorded
     * ("2026-12-03T14:36:54.705420Z", "" when unreadable) and its text without the
     * newline. A non-zero return stops the copy. stdout_fd is still watched (may be -1):
     * a follower stops when it is a pipe or socket whose reader went away. */
    int (*on_line)(void *user_data, int is_stderr, const char *time, const char *text, size_t len);
    void *user_data;
} cocoon_logs_options;
/* A time or duration as `cocoon logs --since` takes it: "2026-12-03T14:00:00Z" (RFC 3339),
 * "2026-12-03", a unix time in seconds, or a duration back from now ("90s", "10m", "1h30m",
 * "2d"). 0 with *unix_us, or COCOON_E_INVALID saying what is accepted. */
int cocoon_parse_since(const char *text, long long *unix_us, cocoon_error *err);
void cocoon_logs_options_init(cocoon_logs_options *opts);
/* Its stdout lines go to stdout_fd, its stderr lines to stderr_fd (may be the same fd);
 * a box without a main process has no such output (nothing is copied). */
int cocoon_box_main_logs(cocoon_box *box, int stdout_fd, int stderr_fd, const cocoon_logs_options *opts,
                         cocoon_error *err);

int cocoon_box_main_status(cocoon_box *box, cocoon_main_status *st, cocoon_error *err);

/* ---- health checks ----
 * A box may have a health check, with or without a main process: its monitor runs the
 * command in the guest (as an exec) every interval once the box runs, after the start
 * period; a run longer than the timeout is killed and counts as failed. The box is
 * "starting" until a run passes, "healthy" after one passes, "unhealthy" after
 * `retries` failures in a row (failures in the start period do not count until the
 * first pass). Being unhealthy changes nothing by itself (docker's way), unless
 * on_failure says "restart" (the main process is killed; its restart policy decides)
 * or "stop" (the box stops). */
typedef struct cocoon_health_options {
    size_t size;              /* sizeof(cocoon_health_options): set by cocoon_health_options_init */
    const char *const *test;  /* the check's argv, run as is; or NULL and: */
    const char *cmd;          /* shell text, run with /bin/sh -c */
    unsigned interval_ms;     /* between the end of a run and the next (default 30000, at least 1000) */
    unsigned timeout_ms;      /* a run longer than this is killed and fails (default 30000, at least 1000) */
    unsigned start_period_ms; /* failures in this time after the start do not count (default 0) */
    unsigned retries;         /* failures in a row that make the box unhealthy (default 3) */
    const char *on_failure;   /* "none" (default), "restart" or "stop" */
} cocoon_health_options;
void cocoon_health_options_init(cocoon_health_options *opts);
/* Sets or, with opts NULL, removes the box's health check; it takes effect at the
 * box's next start. Durations are at most 24 h. */
int cocoon_box_set_health(cocoon_box *box, const cocoon_health_options *opts, cocoon_error *err);
typedef struct cocoon_health_result {
    int exit_code;      /* the check's exit code; -1 when it timed out or could not start */
    long long start_ms; /* unix time in ms */
    long long end_ms;
    char output[512]; /* its output, clipped (health.state.json keeps 4 KiB of it) */
} cocoon_health_result;
typedef struct cocoon_health_status {
    size_t size;    /* sizeof(cocoon_health_status): set by cocoon_health_status_init */
    int present;    /* the box has a health check (the rest is empty without one) */
    char test[256]; /* the check's argv joined by spaces, clipped */
    unsigned interval_ms, timeout_ms, start_period_ms, retries;
    char on_failure[16];
    char status[16];         /* "" (not checked since the box started), starting, healthy, unhealthy */
    unsigned failing_streak; /* failures in a row */
    unsigned nlog;           /* results in log, oldest first (at most 5) */
    cocoon_health_result log[5];
} cocoon_health_status;
void cocoon_health_status_init(cocoon_health_status *st);
/* The check and, while the box runs, its state ("" when the box is stopped). */
int cocoon_box_health_status(cocoon_box *box, cocoon_health_status *st, cocoon_error *err);

/* What cocoon_box_wait waits for. */
typedef enum cocoon_wait_condition {
    COCOON_WAIT_EXITED = 0,  /* the box stopped (as it does when its main process ends for good) */
    COCOON_WAIT_HEALTHY = 1, /* the health check passed (the box must have one and run) */
    COCOON_WAIT_RUNNING = 2  /* the box runs */
} cocoon_wait_condition;
/* Waits (without polling: inotify on the box directory) until the condition holds: 0.
 * 1 when timeout_ms passed first (-1: no timeout). With COCOON_WAIT_EXITED, *exit_code
 * (may be NULL) gets the main process's exit code (128+N for signal N: 143 when the
 * box's stop ended it), 137 when the box stopped without its end being seen (its
 * monitor was killed), or 0 for a box without one. COCOON_WAIT_HEALTHY fails
 * with COCOON_E_STATE when the box is or becomes stopped first, and with
 * COCOON_E_INVALID when it has no health check. */
int cocoon_box_wait(cocoon_box *box, cocoon_wait_condition condition, int timeout_ms, int *exit_code,
                    cocoon_error *err);
/* Copies the box's console log (kernel and agent lines of the current or last boot) to
 * fd. With follow, keeps copying until the box stops. */
int cocoon_box_logs(cocoon_box *box, int fd, int follow, cocoon_error *err);

/* ---- autostart after a host reboot ----
 * A box whose main process has the restart policy "always" or "unless-stopped", and
 * that was running when the host went down (not stopped by a user), is started again
 * by cocoon_autostart. With COCOON_AUTOSTART_IF_REBOOTED it does so only when the host's
 * boot id (/proc/sys/kernel/random/boot_id, or the file $COCOON_BOOT_ID_FILE names)
 * differs from the one it recorded last in COCOON_HOME, and costs two small reads
 * otherwise: `cocoon` runs it that way before every command, `cocoon serve` at start.
 * A box that fails to boot is tried 3 times, 1 s then 2 s apart. report (may be NULL)
 * gets one call per box tried: ok 1 started, 0 failed with message. */
#define COCOON_AUTOSTART_IF_REBOOTED 1u
typedef void (*cocoon_autostart_fn)(void *user, const char *box_id, const char *box_name, int ok, const char *message);
int cocoon_autostart(cocoon_runtime *rt, unsigned flags, cocoon_autostart_fn report, void *user, cocoon_error *err);

/* ---- attaching to the main process ----
 * cocoon_box_set_main_stdio: the main process runs on a terminal (tty) and/or keeps its
 * stdin open for attachers (open_stdin), like `docker run -d -t -i`; it takes effect at
 * the box's next start (call it after cocoon_box_set_main, which resets both).
 *
 * An attachment (`cocoon attach`) is a private connection to the box's monitor that
 * receives the main process's output from the moment it attached, forwards stdin_fd to
 * it when it was started with open stdin, and forwards resizes and signals. At most 8
 * attachments per box; one that reads too slowly has output skipped (never the main
 * process or its log held back) and is told how many bytes (notice_fd, result.dropped).
 * It ends when the main process ends (result.ended, its exit code), when the detach
 * keys are typed on stdin_fd, or on cocoon_attach_detach. */
int cocoon_box_set_main_stdio(cocoon_box *box, int tty, int open_stdin, cocoon_error *err);
typedef struct cocoon_attach cocoon_attach;
typedef struct cocoon_attach_options {
    size_t size;             /* sizeof(cocoon_attach_options): set by cocoon_attach_options_init */
    int stdin_fd;            /* read and forwarded when the main process has open stdin; -1 (default): none */
    int stdout_fd;           /* its stdout (everything, with a terminal); -1: dropped */
    int stderr_fd;           /* its stderr; -1: dropped */
    int notice_fd;           /* one line when output was skipped for us; -1 (default): none */
    const char *detach_keys; /* NULL: "ctrl-p,ctrl-q"; "": none; docker's format ("ctrl-a,d") */
    unsigned rows, cols;     /* our terminal's size, given to a main process on a terminal; 0: unchanged */
} cocoon_attach_options;
void cocoon_attach_options_init(cocoon_attach_options *opts);
/* Attaches: fails with COCOON_E_STATE (and why) when the box or its main process is not
 * running, COCOON_E_VMM when 8 clients are attached already. */
int cocoon_attach_start(cocoon_box *box, const cocoon_attach_options *opts, cocoon_attach **out, cocoon_error *err);
int cocoon_attach_tty(const cocoon_attach *a);   /* the main process has a terminal */
int cocoon_attach_stdin(const cocoon_attach *a); /* stdin_fd is forwarded */
int cocoon_attach_pid(const cocoon_attach *a);   /* the main process's pid in the guest */
typedef struct cocoon_attach_result {
    int ended; /* the main process ended: exit_code is its code, 128+N for signal N */
    int exit_code;
    int signal;       /* the signal that ended it, else 0 */
    int detached;     /* the detach keys were typed, or cocoon_attach_detach was called */
    uint64_t dropped; /* bytes of output skipped because we read too slowly */
} cocoon_attach_result;
/* Copies output (and stdin) until the attachment ends. -1 with err when the box stops
 * or the connection breaks. */
int cocoon_attach_wait(cocoon_attach *a, cocoon_attach_result *res, cocoon_error *err);
/* From any thread, while cocoon_attach_wait runs: */
void cocoon_attach_resize(cocoon_attach *a, unsigned rows, unsigned cols);
void cocoon_attach_signal(cocoon_attach *a, int signo); /* to the main process */
void cocoon_attach_detach(cocoon_attach *a);
void cocoon_attach_free(cocoon_attach *a);

/* ---- exec ----
 * Many execs may run at once on one box handle, each with its own streams.
 *
 * Threading model. A box handle has no thread of its own: the channel to the box is
 * read by whichever thread currently needs it (one at a time: the "pump"), which
 * routes each output frame into its exec's queue. An exec's output is delivered
 * (written to stdout_fd/stderr_fd, or passed to on_stdout/on_stderr) by the thread
 * that calls cocoon_exec_wait for that exec, in order, never under a library lock;
 * only after delivery is the guest credited, so at most one window (256 KiB) of
 * output per exec is buffered, and a slow or blocked consumer of one exec stalls that
 * exec only. If no thread waits for an exec while cocoon_exec_write blocks for stdin
 * credit, cocoon_exec_write delivers that exec's output (so `cat` cannot deadlock).
 * Output of an exec nobody waits for yet stays queued (one window), then the
 * command blocks on its output until someone waits.
 *
 * Safe from any thread, concurrently: cocoon_exec_start, cocoon_exec_wait (one
 * thread per exec), cocoon_exec_write, cocoon_exec_close_stdin, cocoon_exec_signal,
 * cocoon_exec_resize, cocoon_exec_id, cocoon_box_run. Not concurrently with anything
 * else on the same handle: cocoon_exec_free of that exec (after its waiter returned),
 * cocoon_box_close, cocoon_box_stop/remove. Callbacks must not call
 * cocoon_exec_wait or cocoon_exec_free of their own exec. Different box handles
 * (even of the same box) are independent. */
typedef void (*cocoon_output_fn)(void *user_data, const char *data, size_t len);

#define COCOON_STDIN_NONE (-1) /* the command sees EOF on stdin at once */
#define COCOON_STDIN_API (-2)  /* the caller feeds stdin with cocoon_exec_write */

typedef struct cocoon_exec_options {
    size_t size;             /* sizeof(cocoon_exec_options): set by cocoon_exec_options_init */
    const char *const *argv; /* NULL-terminated; argv[0] is looked up in PATH */
    const char *const *env;  /* NULL-terminated "K=V" entries added to the default env */
    const char *cwd;         /* NULL: / */
    const char *user;        /* NULL: root; "name", "uid" or "uid:gid" */
    int tty;
    unsigned timeout_ms; /* 0: none; on expiry the whole process group is killed (at most ~49.7 days) */
    int stdin_fd;        /* a host fd read until EOF, COCOON_STDIN_NONE or COCOON_STDIN_API */
    int stdout_fd;       /* a host fd to write output to, or -1 to use the callback */
    int stderr_fd;
    cocoon_output_fn on_stdout;
    cocoon_output_fn on_stderr;
    void *user_data;
    unsigned rows, cols; /* terminal size when tty is set; 0: 24x80 */
} cocoon_exec_options;

/* Fills the size and the defaults: no stdin, output to callbacks (none set: discarded). */
void cocoon_exec_options_init(cocoon_exec_options *opts);

typedef struct cocoon_exit_status {
    int exit_code; /* valid when signal == 0 */
    int signal;    /* the signal that killed it, or 0 */
    int timed_out; /* killed because timeout_ms passed */
} cocoon_exit_status;

int cocoon_exec_start(cocoon_box *box, const cocoon_exec_options *opts, cocoon_exec **out, cocoon_error *err);
/* A detached exec: the box's monitor runs argv (with env, cwd, user and timeout_ms of
 * opts; stdin closed, no terminal) and keeps its output, so it outlives the caller. *id
 * is its id, its pid in the guest (cocoon_box_signal_exec, cocoon_box_list_execs).
 * Its output (rotated above 1 MiB: at most about 2 MiB kept) and its end stay until the
 * box's next start, for the newest 32; at most 64 run at once. */
int cocoon_exec_detached(cocoon_box *box, const cocoon_exec_options *opts, int *id, cocoon_error *err);
int cocoon_box_exec_logs(cocoon_box *box, int id, int stdout_fd, int stderr_fd, const cocoon_logs_options *opts,
                         cocoon_error *err);
/* What became of detached exec id, in the main process's terms: state "running",
 * "exited" or "stopped" (the box stopped under it), pid, exit_code, signal, started_at,
 * finished_at, error (present set, command "" and restart "no"). COCOON_E_NOT_FOUND for
 * an id with no record (never started detached, or gone with the box's next start). */
int cocoon_box_exec_status(cocoon_box *box, int id, cocoon_main_status *st, cocoon_error *err);
/* The detached execs of the box's current or last boot, running and finished (the newest
 * 32 finished ones are kept), oldest first. Free with free(). */
typedef struct cocoon_detached_info {
    int id;                /* its pid in the guest */
    char command[256];     /* argv joined by spaces, clipped */
    char state[16];        /* starting, running, exited, stopped (the box stopped under it) */
    int exit_code;         /* exited: its code, 128+N for signal N; else -1 */
    int signal;            /* the signal that ended it, else 0 */
    long long started_at;  /* unix time */
    long long finished_at; /* unix time, 0 while running */
} cocoon_detached_info;
int cocoon_box_detached_execs(cocoon_box *box, cocoon_detached_info **out, size_t *count, cocoon_error *err);
int cocoon_exec_write(cocoon_exec *ex, const void *data, size_t len, cocoon_error *err);
int cocoon_exec_close_stdin(cocoon_exec *ex, cocoon_error *err);
/* Sends signal signo (1..64) to the command's whole process group in the guest. */
int cocoon_exec_signal(cocoon_exec *ex, int signo, cocoon_error *err);
/* Changes the terminal size of an exec started with tty (the guest gets SIGWINCH). */
int cocoon_exec_resize(cocoon_exec *ex, unsigned rows, unsigned cols, cocoon_error *err);
/* The exec's id: its process id in the guest, which is also its process group and
 * session id (what cocoon_box_signal_exec and `cocoon kill --exec` take). 0 until the
 * guest reported the command started (any cocoon_exec_wait/write round sees that). */
int cocoon_exec_id(cocoon_exec *ex);
/* Runs until the command ends and all its output was delivered. */
int cocoon_exec_wait(cocoon_exec *ex, cocoon_exit_status *status, cocoon_error *err);
void cocoon_exec_free(cocoon_exec *ex);
/* start + wait */
int cocoon_box_run(cocoon_box *box, const cocoon_exec_options *opts, cocoon_exit_status *status, cocoon_error *err);
/* The shell convention: exit code, 128+signal when killed. */
int cocoon_exit_status_code(const cocoon_exit_status *status);

/* The commands running in a box, started by any client (`cocoon exec` processes,
 * other handles): the processes the guest agent started for an exec. */
typedef struct cocoon_exec_info {
    int id;             /* guest pid = process group id (cocoon_exec_id) */
    char command[1024]; /* its command line, arguments separated by spaces */
} cocoon_exec_info;
/* Lists them (free with free()), as the box's monitor knows them: every exec any
 * client started that is still running. */
int cocoon_box_list_execs(cocoon_box *box, cocoon_exec_info **out, size_t *count, cocoon_error *err);
/* Sends signo to the process group of exec id (cocoon_exec_id, or an id from
 * cocoon_box_list_execs), or to every running exec when id is 0. An id that is not a
 * running exec gives COCOON_E_NOT_FOUND. *signalled (may be NULL) counts the execs hit. */
int cocoon_box_signal_exec(cocoon_box *box, int id, int signo, size_t *signalled, cocoon_error *err);

/* ---- registry credentials ----
 * Stored in $COCOON_HOME/auth.json (docker's config.json "auths" format, mode 0600) and
 * used by cocoon_image_pull for that registry's token or basic authentication. The
 * credentials are not checked here: a wrong password shows at the next pull. */
int cocoon_registry_login(cocoon_runtime *rt, const char *registry, const char *user, const char *password,
                          cocoon_error *err);
int cocoon_registry_logout(cocoon_runtime *rt, const char *registry, cocoon_error *err);

/* ---- files ----
 * Copies between the host and a running box, streamed as tar over the box's control
 * socket (each call opens its own connection: safe from any thread, beside execs).
 * Modes, mtimes and symlinks are kept; sparse files stay sparse (only data regions
 * travel); files are owned by root in the guest and by the caller on the host.
 * Guest paths resolve inside the guest root (symlinks cannot lead out of it).
 *
 * Like `docker cp`: when the destination is an existing directory the source is
 * put inside it under its own name, otherwise it is created as the destination
 * (whose parent must exist). On success err->message may hold warnings (skipped
 * special files...) with err->code COCOON_OK.
 *
 * A copy from a box trusts nothing the guest sends: every entry must lie under the one
 * name asked for (the last component of box_path), or the copy is refused; symlinks are
 * never followed, and one pointing outside the copied tree (absolute, or climbing above
 * its top with "..") is skipped with a warning; hard links may only join files of the
 * same copy; devices and FIFOs are skipped; setuid, setgid and sticky bits are dropped
 * and the caller's umask applies (directories keep u+rwx). The tree is assembled in a
 * hidden directory DEST/.cocoon-cp-XXXXXX and renamed into place only when the whole
 * archive arrived and passed: a refused, stalled or broken copy leaves nothing behind
 * (an existing file of that name is replaced by rename, an existing directory receives
 * the new entries the same way). Bounds, each failing with a message that names it:
 * total size of the files (a sparse file counts its full size), number of entries, and
 * the time the guest may send nothing (also for copies into the box, cocoon_file_read
 * and cocoon_file_write). */
typedef struct cocoon_copy_options {
    size_t size;              /* sizeof(cocoon_copy_options): set by cocoon_copy_options_init */
    uint64_t max_bytes;       /* from the box, archive streams; 0: $COCOON_CP_MAX_BYTES, else 16 GiB */
    uint64_t max_entries;     /* from the box, archive streams; 0: $COCOON_CP_MAX_ENTRIES, else 1000000 */
    unsigned idle_timeout_ms; /* 0: $COCOON_CP_IDLE_TIMEOUT (seconds), else 60 s without data from the guest */
    unsigned timeout_ms;      /* the whole copy; 0: no limit */
} cocoon_copy_options;
void cocoon_copy_options_init(cocoon_copy_options *opts);
/* opts may be NULL (the defaults, as the calls without _opts use). */
int cocoon_copy_to_box_opts(cocoon_box *box, const char *host_path, const char *box_path,
                            const cocoon_copy_options *opts, cocoon_error *err);
int cocoon_copy_from_box_opts(cocoon_box *box, const char *box_path, const char *host_path,
                              const cocoon_copy_options *opts, cocoon_error *err);
int cocoon_copy_to_box(cocoon_box *box, const char *host_path, const char *box_path, cocoon_error *err);
int cocoon_copy_from_box(cocoon_box *box, const char *box_path, const char *host_path, cocoon_error *err);
/* Creates or replaces the file at path (never "into" a directory) with len bytes of
 * data and the permission bits mode (0: 0644). */
int cocoon_file_write(cocoon_box *box, const char *path, const void *data, size_t len, unsigned mode,
                      cocoon_error *err);
/* Reads the regular file at path (a symlink is followed inside the guest) into a
 * malloc'd buffer (NUL-terminated for convenience; free with free()). A file larger
 * than max bytes is refused with COCOON_E_INVALID. */
int cocoon_file_read(cocoon_box *box, const char *path, void **data, size_t *len, size_t max, cocoon_error *err);

/* ---- file operations on a running box ----
 * Paths are absolute guest paths. Errors: COCOON_E_NOT_FOUND (ENOENT/ENOTDIR in the
 * guest), COCOON_E_INVALID (a relative path, an existing name, a non-empty directory, a
 * bound...), COCOON_E_PROTOCOL (the guest broke the protocol), COCOON_E_IO otherwise; the
 * message names the path and the guest's reason ("/x: No such file or directory"). */
enum cocoon_file_type {
    COCOON_FILE_REGULAR = 1,
    COCOON_FILE_DIRECTORY = 2,
    COCOON_FILE_SYMLINK = 3,
    COCOON_FILE_OTHER = 4
};
typedef struct cocoon_file_info {
    char name[256];         /* the entry's name (list) or the last component of the path (stat) */
    char link_target[1024]; /* symlinks: where it points, cut to 1023 bytes ("" otherwise) */
    int type;               /* enum cocoon_file_type */
    unsigned mode;          /* permission bits (07777) */
    unsigned uid, gid;
    uint64_t size;
    long long mtime; /* unix seconds */
    long mtime_nsec;
} cocoon_file_info;
/* stat does not follow a final symlink (lstat). */
int cocoon_file_stat(cocoon_box *box, const char *path, cocoon_file_info *out, cocoon_error *err);
/* The entries of a directory ("." and ".." left out), sorted by name (bytewise). At
 * most 100000 entries and 64 MiB of answer (more: COCOON_E_INVALID naming the bound).
 * Free with cocoon_file_list_free. */
int cocoon_file_list(cocoon_box *box, const char *path, cocoon_file_info **out, size_t *count, cocoon_error *err);
void cocoon_file_list_free(cocoon_file_info *list);
#define COCOON_MKDIR_PARENTS 1u /* like mkdir -p: existing directories are fine */
/* mode: permission bits, 0 for 0755 (missing parents get 0755). */
int cocoon_file_mkdir(cocoon_box *box, const char *path, unsigned mode, unsigned flags, cocoon_error *err);
#define COCOON_REMOVE_RECURSIVE 1u /* like rm -r; without it a non-empty directory is refused */
/* A symlink is removed itself, never what it points to; rm -r does not follow symlinks,
 * stays on one file system and goes at most 256 directory levels deep. */
int cocoon_file_remove(cocoon_box *box, const char *path, unsigned flags, cocoon_error *err);
/* rename(2) inside the box; COCOON_MOVE_NO_REPLACE refuses an existing destination. */
#define COCOON_MOVE_NO_REPLACE 1u
int cocoon_file_move(cocoon_box *box, const char *from, const char *to, unsigned flags, cocoon_error *err);

/* ---- disk snapshots, export and import ----
 * A snapshot freezes a stopped box's disk: its current top qcow2 layer becomes the
 * snapshot's read-only layer and the box goes on in a new layer over it. A box can be
 * restored (stopped) to one of its snapshots; a snapshot a box or another snapshot
 * stands on cannot be removed. Records live in $COCOON_HOME/snapshots/<id>/. */
#define COCOON_SNAPSHOT_DEPTH_MAX 14 /* snapshot layers under one box's disk */
typedef struct cocoon_snapshot_options {
    size_t size;      /* sizeof(cocoon_snapshot_options): set by cocoon_snapshot_options_init */
    const char *name; /* unique among snapshots: letters, digits, '_', '.', '-'; NULL: "<box>-<n>" */
} cocoon_snapshot_options;
void cocoon_snapshot_options_init(cocoon_snapshot_options *opts);

typedef struct cocoon_snapshot_info {
    char id[16]; /* 12 hex digits */
    char name[64];
    char box_id[16]; /* the box it was taken of (it may have been removed since) */
    char box_name[128];
    char parent[16]; /* the snapshot it stands on, "" when it stands on the image */
    char image[512];
    long long created;     /* unix time */
    uint64_t size;         /* bytes its layer takes on the host */
    uint64_t virtual_size; /* bytes of the disk */
    unsigned depth;        /* snapshots under it, itself included */
    unsigned users;        /* boxes and snapshots standing on it */
} cocoon_snapshot_info;

/* Snapshots a box's disk. A running box is snapshotted live, on either backend: the
 * guest's root file system is synced and frozen (the agent thaws it by itself within
 * 30 s should the host go away), the VMM paused and switched to a new top layer, then
 * the box goes on. */
int cocoon_snapshot_create(cocoon_box *box, const cocoon_snapshot_options *opts, cocoon_snapshot_info *out,
                           cocoon_error *err);
/* Every snapshot (of the box named by box, or all when NULL), oldest first. Free with
 * cocoon_snapshot_list_free. */
int cocoon_snapshot_list(cocoon_runtime *rt, const char *box, cocoon_snapshot_info **out, size_t *count,
                         cocoon_error *err);
void cocoon_snapshot_list_free(cocoon_snapshot_info *list);
/* A snapshot by id, name or unique id prefix. */
int cocoon_snapshot_inspect(cocoon_runtime *rt, const char *id_or_name, cocoon_snapshot_info *out, cocoon_error *err);
/* Refused (COCOON_E_STATE, naming them) while boxes or snapshots stand on it. */
int cocoon_snapshot_remove(cocoon_runtime *rt, const char *id_or_name, cocoon_error *err);
/* Replaces a stopped box's disk by a fresh layer over one of its snapshots: what the
 * box wrote since is gone. */
int cocoon_snapshot_restore(cocoon_box *box, const char *id_or_name, cocoon_error *err);

/* Compacting: a stopped box's disk chain (its top layer and the snapshot layers under
 * it) rewritten as one layer over its image (or imported base), with the same contents.
 * The snapshots stay; the box no longer stands on them, so they can be removed. */
typedef struct cocoon_compact_options {
    size_t size; /* sizeof(cocoon_compact_options): set by cocoon_compact_options_init */
} cocoon_compact_options;
void cocoon_compact_options_init(cocoon_compact_options *opts);

typedef struct cocoon_compact_info {
    unsigned layers_before;                       /* qcow2 layers over the base: the top and its snapshots */
    unsigned layers_after;                        /* 1 */
    uint64_t bytes_before;                        /* host bytes those layers took */
    uint64_t bytes_after;                         /* host bytes of the new layer */
    uint64_t data_clusters;                       /* clusters written with data */
    uint64_t zero_clusters;                       /* clusters written as zeros (hiding data in the base) */
    char released[COCOON_SNAPSHOT_DEPTH_MAX][16]; /* ids of the snapshots it no longer stands on */
    unsigned nreleased;
} cocoon_compact_info;
/* Atomic: a kill at any point leaves the box's disk as it was or compacted. A box
 * standing on no snapshot is left alone (layers_before == layers_after == 1). Refused
 * for a running box (COCOON_E_STATE) and a raw disk (COCOON_E_UNSUPPORTED). */
int cocoon_box_compact(cocoon_box *box, const cocoon_compact_options *opts, cocoon_compact_info *out,
                       cocoon_error *err);

/* Clones: new boxes whose disks are copy-on-write layers over a snapshot's read-only
 * layer. Cloning a stopped box freezes its disk into a snapshot first (as
 * cocoon_snapshot_create, named "<box>-<n>"), or reuses the snapshot its disk stands on
 * when nothing was written since; a running box is refused. Each clone is a new box
 * (new id, name and hostname; the source's config, health check and main process
 * copied), stopped; the source is untouched and its snapshot counts as in use while a
 * clone stands on it. All or nothing on failure: no clone is left (a process killed
 * midway leaves the clones finished before, each whole, and none half made). */
#define COCOON_CLONE_MAX 256 /* clones made by one call */
typedef struct cocoon_clone_options {
    size_t size;      /* sizeof(cocoon_clone_options): set by cocoon_clone_options_init */
    const char *name; /* the new box's name (NAME-1..NAME-N when count > 1); NULL: "<source>-clone-<k>", the
                         smallest free k */
    unsigned count;   /* boxes to make, 1..COCOON_CLONE_MAX; 0 means 1 */
} cocoon_clone_options;
void cocoon_clone_options_init(cocoon_clone_options *opts);
/* Clones the box or snapshot named by source (box first, as cocoon_export). ids (may be
 * NULL) receives the new boxes' ids, count entries; snapshot (may be NULL) the id of
 * the snapshot they stand on. */
int cocoon_box_clone(cocoon_runtime *rt, const char *source, const cocoon_clone_options *opts, char (*ids)[16],
                     char snapshot[16], cocoon_error *err);

/* Forks (either backend): one capture of a running box, N new boxes that go on from it.
 * The box is quiesced (its file system synced and frozen), paused, its disk snapshotted
 * live and its memory and device state saved into the snapshot (snapshots/<id>/
 * memory.state, the guest's RAM size), then it goes on. Each child is a new box (id,
 * name, hostname, MAC in its config; the guest-visible MAC of the migrated network
 * device stays the parent's, harmless as each box has its own network stack) with its
 * own disk layer over the snapshot; it starts from the saved state (QEMU -incoming, or
 * the kvm VMM mapping the saved RAM privately, shared by the children until written):
 * its clock is stepped, its RNG reseeded, its root file system thawed, and the parent's
 * exec streams forgotten (their processes run on, their output is dropped). Open
 * network connections are not carried over. A later start of a child is a cold boot. */
#define COCOON_FORK_MAX 64 /* children of one fork */
typedef struct cocoon_fork_options {
    size_t size;      /* sizeof(cocoon_fork_options): set by cocoon_fork_options_init */
    const char *name; /* children's names: NAME-1..NAME-N (NAME when count is 1); NULL: "<snapshot>-fork" */
    unsigned count;   /* children, 1..COCOON_FORK_MAX; 0 means 1 */
} cocoon_fork_options;
void cocoon_fork_options_init(cocoon_fork_options *opts);
/* Forks the running box. ids (may be NULL) receives the children's ids, count entries;
 * snapshot (may be NULL) the capture's snapshot id. Children that were made but could
 * not start stay as stopped boxes (a start is then a cold boot); the error names them. */
int cocoon_box_fork(cocoon_box *box, const cocoon_fork_options *opts, char (*ids)[16], char snapshot[16],
                    cocoon_error *err);

/* Writes a stopped box, or a snapshot, to one file (zstd-compressed tar: the config,
 * the disk flattened and sparse, a manifest with each member's sha256). */
int cocoon_export(cocoon_runtime *rt, const char *box_or_snapshot, const char *path, cocoon_error *err);
typedef struct cocoon_import_options {
    size_t size;      /* sizeof(cocoon_import_options): set by cocoon_import_options_init */
    const char *name; /* the new box's name; NULL: none */
} cocoon_import_options;
void cocoon_import_options_init(cocoon_import_options *opts);
/* Makes a new (stopped) box from an export. Everything is verified before the box
 * appears; a refused archive leaves nothing behind. */
int cocoon_import(cocoon_runtime *rt, const char *path, const cocoon_import_options *opts, cocoon_box **out,
                  cocoon_error *err);

/* ---- code interpreter ----
 * Stateful contexts inside a running box: a context keeps variables, imports and its
 * working directory across runs. Languages: "python" (the default), "javascript"
 * (Node) and "bash". Each language has a default context, made on first use; more are
 * made with cocoon_code_context_create. What a run produces comes to on_event as it is
 * produced, one JSON object per call (the shapes E2B's code interpreter streams):
 *   {"type":"stdout","text":"..."}            {"type":"stderr","text":"..."}
 *   {"type":"result","is_main_result":true,"text":"3","html":"...","png":"<base64>",
 *    "json":{...}, ...}                       (only the forms the value has)
 *   {"type":"error","name":"ZeroDivisionError","value":"division by zero","traceback":"..."}
 *   {"type":"number_of_executions","execution_count":4}   (always last)
 * A run whose code raised still returns 0 (the error is an event); the call fails only
 * when the run could not happen: COCOON_E_NOT_FOUND (no such context),
 * COCOON_E_INVALID (a bad language or option), COCOON_E_UNSUPPORTED (the box's image
 * has no interpreter for the language: the message names what to install or the
 * code-interpreter image), COCOON_E_STATE (box not running), COCOON_E_PROTOCOL. */
typedef int (*cocoon_code_event_fn)(const char *json, size_t len, void *ctx); /* nonzero: interrupt the run */
typedef struct cocoon_code_options {
    size_t size;            /* sizeof(cocoon_code_options): set by cocoon_code_options_init */
    const char *language;   /* NULL: "python"; ignored when context names one */
    const char *context;    /* a context id; NULL: the language's default context */
    const char *const *env; /* NULL-terminated "K=V" entries set for this run only */
    uint32_t
        timeout_ms; /* 0: none; on expiry the run is interrupted (Python: KeyboardInterrupt) and the context kept */
    cocoon_code_event_fn on_event;
    void *ctx;
} cocoon_code_options;
void cocoon_code_options_init(cocoon_code_options *opts);
int cocoon_code_run(cocoon_box *box, const char *code, const cocoon_code_options *opts, cocoon_error *err);
/* Contexts. *json_out (malloc'd, free with free()) is {"id","language","cwd"} for
 * create and an array of those for list. cwd NULL: the box's working directory. */
int cocoon_code_context_create(cocoon_box *box, const char *language, const char *cwd, char **json_out,
                               cocoon_error *err);
int cocoon_code_context_list(cocoon_box *box, char **json_out, cocoon_error *err);
/* Restart: the context's interpreter starts afresh (state lost), same id. */
int cocoon_code_context_restart(cocoon_box *box, const char *id, cocoon_error *err);
int cocoon_code_context_remove(cocoon_box *box, const char *id, cocoon_error *err);

/* ---- archive streams ----
 * A tar archive streamed into or out of a running box through callbacks, without
 * temporary files (what `cocoon cp -` and the REST server's /files use). Neither side
 * is trusted: the caller's archive is read on the host and sent on only as a clean
 * archive cocoon writes, and the guest's archive is checked as cocoon_copy_from_box
 * checks it before a clean archive is written to the caller. The callbacks run on the
 * calling thread and may block; a call that fails (-1 from a callback included) closes
 * its connection to the box and cancels the guest's side. */

/* Fills buf with up to cap bytes (cap is at most 64 KiB): their count, 0 at the end of
 * the archive, -1 to abort the call. */
typedef long (*cocoon_read_fn)(void *user, void *buf, size_t cap);
/* Takes len bytes of the archive: 0, or -1 to abort the call. */
typedef int (*cocoon_write_fn)(void *user, const void *data, size_t len);

/* flags: each call takes its own (any other bit is refused with COCOON_E_INVALID) */
#define COCOON_TAR_NO_OVERWRITE 1u /* to the box: an entry whose name exists fails the call (COCOON_E_STATE) */
#define COCOON_TAR_FOLLOW 2u       /* from the box: box_path naming a symlink means what it points to */

/* Extracts the tar archive read from `read` into the directory box_dir of the box,
 * which must exist (else COCOON_E_NOT_FOUND; a file there: COCOON_E_INVALID), like
 * `docker cp - BOX:DIR`. The archive is a plain tar (ustar, pax or GNU; compressed ones
 * are refused by name) and every entry is checked before any of it goes on: names
 * must be relative without ".." (entries "." and "./" are dropped), a hard link must
 * name a file that came earlier in the archive, no entry may lie under a symlink of the
 * archive; any of these refuses the archive with COCOON_E_INVALID. A symlink pointing
 * outside box_dir (absolute, or climbing above it with "..") and devices, FIFOs and
 * sockets are skipped with a warning; the archive must end with its end-of-archive
 * block (up to 1 MiB after it is read and dropped). Files get the entries' permission
 * bits (07777) and mtimes and belong to root; existing directories are merged into.
 * An existing file, symlink or other non-directory of an entry's name is replaced,
 * unless flags has COCOON_TAR_NO_OVERWRITE: then it fails the call with COCOON_E_STATE
 * ("... exists and may not be replaced") and existing directories keep their mode and
 * mtime. A directory is never replaced by a non-directory. opts bound the archive as
 * they bound a copy from a box (max_bytes of file data, a sparse file counting its
 * full size; max_entries; idle_timeout_ms: the time the guest may take to accept data;
 * timeout_ms); the entries are checked as they stream, so a refusal or a failure in the
 * middle leaves in box_dir the entries before it (they replaced nothing when
 * COCOON_TAR_NO_OVERWRITE was given), never anything outside box_dir; an archive
 * refused within its first 64 KiB leaves nothing. Errors: COCOON_E_INVALID (the
 * archive, a bound), COCOON_E_NOT_FOUND, COCOON_E_STATE (a name exists, or the box is
 * not running), COCOON_E_IO (the read callback gave up, the guest failed or stalled),
 * COCOON_E_VMM (the box stopped meanwhile). On success err->message may hold
 * warnings with err->code COCOON_OK. */
int cocoon_tar_to_box(cocoon_box *box, const char *box_dir, cocoon_read_fn read, void *user, unsigned flags,
                      const cocoon_copy_options *opts, cocoon_error *err);
/* Writes a tar archive (pax) of box_path to `write`, its top entry named after
 * box_path's last component (with COCOON_TAR_FOLLOW, a symlink there is followed
 * inside the guest and its target sent under that name), like `docker cp BOX:PATH -`.
 * Nothing is written before the guest has sent the top entry: a missing path fails
 * with COCOON_E_NOT_FOUND before any byte went to `write`. What the guest sends is held
 * to cocoon_copy_from_box's rules (every entry under the one name asked for,
 * depth-first, each once, hard links only to files already sent; symlinks pointing
 * outside the tree and devices or FIFOs skipped with a warning, a top-level symlink
 * refused; the bounds of opts), and what is written carries no setuid, setgid or
 * sticky bit, owner 0, directories with u+rwx. The end-of-archive blocks are written
 * only after the guest reported success: an archive cut short by a failure (after
 * bytes went out) does not end cleanly (a lenient reader may still miss that: the
 * call's result says it). Errors: COCOON_E_NOT_FOUND, COCOON_E_INVALID (box_path names
 * the root, "." or "..", a top-level symlink, a bound), COCOON_E_PROTOCOL (the guest
 * broke a rule), COCOON_E_IO (the write callback gave up, the guest failed or
 * stalled), COCOON_E_STATE (the box is not running), COCOON_E_VMM (it stopped
 * meanwhile). */
int cocoon_tar_from_box(cocoon_box *box, const char *box_path, cocoon_write_fn write, void *user, unsigned flags,
                        const cocoon_copy_options *opts, cocoon_error *err);

/* ---- stats ---- */
typedef struct cocoon_stats {
    unsigned cpus;
    double cpu_seconds;                                    /* CPU time spent busy since boot, summed over all CPUs */
    uint64_t mem_total, mem_used, mem_available, mem_free; /* bytes; used = total - available */
    uint64_t disk_total, disk_used, disk_available;        /* bytes of the root file system */
    unsigned processes;
    double uptime_seconds;
    double load1, load5, load15;
} cocoon_stats;
/* A snapshot taken by the guest agent of a running box. */
int cocoon_box_stats(cocoon_box *box, cocoon_stats *out, cocoon_error *err);

/* Counters of the box's network stack (its current or last boot), from the file the
 * monitor rewrites (DIR/net.stats.json, at most about once a second). */
typedef struct cocoon_net_stats {
    int present;           /* 0: the box has no network device, or its stack never started */
    uint64_t denied_total; /* the sum of the five below */
    uint64_t denied_tcp, denied_udp, denied_icmp, denied_dns, denied_tls;
    uint64_t tcp_connections, udp_flows, dns_queries, dns_stripped;
    uint64_t frames_in, frames_out, bytes_in, bytes_out; /* in: from the guest */
    uint64_t dropped_malformed;
    uint64_t dns_truncated;    /* UDP answers replaced by a TC reply (the guest retries over TCP) */
    uint64_t log_rotations;    /* times net.log was rotated to net.log.1 */
    uint64_t reassembled;      /* datagrams the guest sent in IP fragments, put back together */
    uint64_t dropped_fragment; /* fragments dropped (overlapping, too big, malformed) */
} cocoon_net_stats;
int cocoon_box_net_stats(cocoon_box *box, cocoon_net_stats *out, cocoon_error *err);
/* Copies the box's network log (every denied connection or DNS query, with the rule
 * that denied it; the latest ~2 MiB: the monitor rotates net.log to net.log.1) to fd,
 * oldest first. With follow, keeps copying, across rotations, until the box stops. */
int cocoon_box_net_logs(cocoon_box *box, int fd, int follow, cocoon_error *err);
/* The box's TLS interception as JSON: {"tls_intercept": [HOST...], "secrets": [{"name",
 * "hosts": [...], "placeholder"}...], "header_rules": ["HOST:Name=Value"...]}: names,
 * hosts and placeholders only (values are never stored). Free with cocoon_free. */
int cocoon_box_tls_json(cocoon_box *box, char **json_out, cocoon_error *err);

/* ---- config files ----
 * cocoon.yaml describes boxes (docs/config.md): image or rootfs, cpus, memory, disk,
 * env, workdir, user, ephemeral, network (mode, allow, deny, ports) and named scripts.
 * cocoon_config_load reads and checks FILE strictly (unknown keys, wrong types,
 * duplicate keys, anchors, aliases and tags are refused with "FILE:LINE:COL: message";
 * only ${NAME} and ${NAME:-default} are substituted, from the environment) and gives
 * the normalized JSON every front end uses:
 *   {"file": "/abs/path/cocoon.yaml", "boxes": [{"name", "image", "rootfs", "cpus",
 *    "memory_mib", "disk_bytes", "env", "workdir", "user", "ephemeral", "network":
 *    {"mode", "rules", "ports"}, "scripts": {NAME: [argv...]}, "digest"}, ...]}
 * in the file's order. Absent values are null (cpus, memory_mib, disk_bytes: 0, the
 * default; ephemeral: false); network rules list the allow entries, then the deny ones,
 * in cocoon_box_options.net_rules form; digest ("sha256:...") hashes the box's spec
 * without its name and scripts. libyaml (libyaml-0.so.2) is loaded on first use: a host
 * without it gets an error naming the package. Free *json_out with cocoon_free. */
int cocoon_config_load(const char *path, char **json_out, cocoon_error *err);
/* Frees memory libcocoon handed out as a plain pointer (cocoon_config_load's text). */
void cocoon_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
