/* Private state shared by the libcocoon source files: the runtime, box and exec
 * structures behind the opaque handles of cocoon.h, and small helpers (errors,
 * path building, child processes) that every file needs. */
#ifndef COCOON_LIB_INTERNAL_H
#define COCOON_LIB_INTERNAL_H

#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "boxcfg/config.h"
#include "cocoon.h"
#include "lib/state.h"
#include "proto/conn.h"

#define LIB_PATH_MAX 4096

struct cocoon_runtime {
    char home[LIB_PATH_MAX];
    char share_dir[LIB_PATH_MAX];
    char vmm_path[LIB_PATH_MAX];
    struct lib_state *state;              /* cocoon.db */
    char warning[2 * LIB_PATH_MAX + 256]; /* about the state directory's mode, or "" */
    cocoon_notice_fn notice;
    void *notice_user;
};
/* Sends a notice to the runtime's callback, if any. */
void lib_notice(cocoon_runtime *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One buffered output frame of an exec that is not the one being pumped for. */
struct lib_chunk {
    struct lib_chunk *next;
    uint16_t type;
    size_t len;
    char data[];
};

struct cocoon_exec {
    struct cocoon_exec *next; /* in box->execs */
    cocoon_box *box;          /* NULL once the box handle was closed */
    uint32_t stream;
    cocoon_exec_options opts;
    char argv0[256]; /* for messages */
    int started, finished, stdin_eof_sent, stdin_broken;
    int out_broken, err_broken; /* the output fd failed (EPIPE...): discard further output */
    uint64_t stdin_credit;      /* bytes we may still send (guarded by box->lock) */
    uint32_t credit_owed;       /* output bytes delivered but not yet credited back */
    struct lib_chunk *queue, *queue_tail;
    size_t queued;
    int err_code; /* set when the exec ended in error */
    char err_msg[COCOON_ERROR_MAX];
    cocoon_exit_status status;
    uint32_t pid;  /* the guest pid from STARTED (also its process group): the exec's id */
    int pump_refs; /* the pump is using this exec's stdin fd: cocoon_exec_free waits */
    int waiting;   /* threads in cocoon_exec_wait for this exec */
    /* CLOCK_MONOTONIC ns after which the guest's EXIT is no longer waited for: its
     * timeout or a SIGKILL, plus LIB_EXEC_GIVE_UP_MS (0: never). give_up_after_kill:
     * that deadline came from a SIGKILL, not the timeout. */
    uint64_t give_up_ns;
    int give_up_after_kill;
    int delivering; /* a thread is delivering this exec's queue (keeps output in order) */
};

struct cocoon_box {
    cocoon_runtime *rt; /* the runtime outlives its box handles */
    char id[16];
    char name[128];
    char dir[LIB_PATH_MAX];
    char vmm_path[LIB_PATH_MAX];
    int ephemeral;
    char problem[512]; /* why it cannot start (damaged or incomplete files), or "" */
    unsigned boot_timeout_ms;
    int lifeline_fd; /* write end: closing it tells an ephemeral box's monitor we are gone */
    int ready_ms;
    /* control connection (lazily opened) */
    int ctl_fd;
    struct proto_conn conn;
    int conn_ready;
    int conn_eof;
    struct proto_vmm_hello hello;
    pthread_mutex_t lock; /* send side of conn, credits, exec list, pumping flag */
    pthread_cond_t cond;
    int pumping;
    int pump_wanted; /* threads waiting to take the pump for good (a stop): waiters of execs
                      * yield it to them instead of taking it again */
    uint32_t next_stream;
    struct cocoon_exec *execs;
    int wake_fd, wake_open; /* eventfd that interrupts the pump's poll (exec.c) */
    char *secret_lines;     /* "NAME=VALUE\n" of the secrets given at create (secrets.c), or NULL */
    size_t secret_len;
};

/* errors */
int lib_err(cocoon_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void lib_err_clear(cocoon_error *err);
/* Appends a line to the warnings in w (cap bytes, NUL-terminated): once they are full,
 * "(more warnings)" ends them instead of a cut line. */
void lib_warning(char *w, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sleeps ms milliseconds, through signals. */
void lib_sleep_ms(unsigned ms);

/* paths */
int lib_path(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int lib_kernel_paths(cocoon_runtime *rt, const char *kernel_opt, const char *initrd_opt, char *kernel, char *initrd,
                     size_t cap);

/* child processes: runs argv (PATH lookup) with stdin on /dev/null, captures up to cap-1
 * bytes of stdout+stderr. Returns the wait status, or -1 with errno (ENOENT: not found). */
int lib_run(const char *const argv[], char *out, size_t cap);
/* Searches $PATH for an executable; 0 and the path in out when found. */
int lib_which(const char *name, char *out, size_t cap);

/* images: an image name (or id) to its row, registering built-in images (files NAME.ext4
 * in the share dir or $COCOON_HOME/images/bases) as "local:NAME" on first use. */
int lib_image_lookup(cocoon_runtime *rt, const char *name, struct state_image *out, cocoon_error *err);
/* 1 when a canonical name (docker.io/library/X:latest) stands for the built-in image X:
 * such names are not given to pulled or loaded images. */
int lib_image_shadows_builtin(cocoon_runtime *rt, const char *canonical);
/* lib_image_lookup, and when the name is not known locally but reads as a reference,
 * a quiet pull of it first (images.c). */
int lib_image_lookup_or_pull(cocoon_runtime *rt, const char *name, struct state_image *out, cocoon_error *err);

/* The image store's lock, images/.lock (images.c): pulls and loads hold it LOCK_SH,
 * prune and the sweep LOCK_EX (how may include LOCK_NB). The fd, or -1 with err. */
int lib_store_lock(cocoon_runtime *rt, int how, cocoon_error *err);
void lib_store_unlock(int fd);
/* With the store locked exclusively: the blobs and bases no image row needs, and
 * temporary files (no pull or load can be running), each reported to fn (may be NULL)
 * and deleted when remove is set. Built-in bases (NAME.ext4 with a name that is not a
 * digest) are never touched. Returns their bytes. */
uint64_t lib_image_sweep(cocoon_runtime *rt, int remove, void (*fn)(void *, const char *, uint64_t), void *arg);

/* config.json (config.c): the box contract of src/boxcfg, with libcocoon's errors. */
/* The options of a new box, checked, into c (everything but what depends on the
 * runtime: paths, image, disk). */
int lib_config_from_options(const cocoon_box_options *o, struct box_config *c, cocoon_error *err);
int lib_config_write(const char *box_dir, const struct box_config *c, cocoon_error *err);
int lib_config_read(const char *box_dir, struct box_config *c, cocoon_error *err);

/* secrets.c: the values of a box's secrets, in memory only. */
int lib_secrets_keep(cocoon_box *b, const cocoon_secret *s, cocoon_error *err);
void lib_secrets_forget(cocoon_box *b);
/* A pipe's read end holding the "NAME=VALUE" lines for the monitor, and the environment
 * for the monitor: ours without the secrets' variables (*fd_out -1, *env_out NULL: the
 * box has no secrets). -1 with err when a value is missing or bad. */
int lib_secrets_pipe(cocoon_box *b, int *fd_out, char ***env_out, cocoon_error *err);
void lib_secrets_env_free(char **env);

/* NULL-terminated string arrays (command.c): a malloc'd copy of a's entries then b's
 * (either may be NULL; the result is never NULL but when out of memory). */
char **lib_strv_join(const char *const *a, const char *const *b);
void lib_strv_free(char **v);
/* A box made from a config file (DIR/spec.json): the file's env (over the image's
 * variables of the same names), workdir and user laid over the image's config. 0 also
 * when the box has no such record. */
int lib_config_spec_layer(const cocoon_box *box, cocoon_image_config *cfg, cocoon_error *err);

/* Public options structs (options.c): dst holds the defaults (its type's _init); the
 * fields of src (NULL: none) that fit in src->size are copied over them. -1 with err
 * set for a size of 0 or beyond LIB_OPTIONS_MAX_SIZE, or for non-zero bytes past
 * dst_size (fields of a newer header than this library). */
#define LIB_OPTIONS_MAX_SIZE 4096u
int lib_options_copy(void *dst, size_t dst_size, const void *src, const char *type, cocoon_error *err);
/* A status struct the library fills (cocoon_main_status, cocoon_health_status): its
 * size checked, fill called on a zeroed struct of full_size (its own _init done by
 * fill) with the box directory open, and what fits the caller's size copied back. */
/* The box's directory as an O_PATH fd (for the *at calls on its files), or -1 with err set. */
int lib_box_dirfd(const cocoon_box *box, cocoon_error *err);
typedef int (*lib_status_fill_fn)(cocoon_box *box, int dirfd, void *full, cocoon_error *err);
int lib_status_get(void *st, size_t full_size, const char *type, lib_status_fill_fn fill, cocoon_box *box,
                   cocoon_error *err);
/* cocoon_box_options o; if (LIB_OPTIONS(cocoon_box_options, o, opts, err) < 0) ... */
#define LIB_OPTIONS(type, local, src, err)                                                                             \
    (type##_init(&(local)), lib_options_copy(&(local), sizeof(local), (src), #type, (err)))

/* A box's monitor, known by the exclusive flock it holds on DIR/vmm.pid for its whole
 * life (monitor_lock.c). Files of a live monitor are never deleted; stale vmm.pid and
 * ctl.sock files are harmless (a new monitor takes them over under the lock). */
#define LIB_MON_STOPPED 0
#define LIB_MON_STARTING 1 /* the lock is held, its holder not (yet) known */
#define LIB_MON_RUNNING 2  /* pid holds the lock; pidfd names that very process */
struct lib_monitor {
    int state;
    pid_t pid;
    int pidfd;
};
/* Fills m and returns its state. Release with lib_monitor_done. */
int lib_monitor_probe(const char *dir, struct lib_monitor *m);
void lib_monitor_done(struct lib_monitor *m);
/* 1 when a monitor holds the box's lock (pid, when known, in *pid), else 0. */
int lib_box_running(const char *dir, pid_t *pid);
/* SIGKILLs a RUNNING monitor through its pidfd and waits up to ms for the lock to
 * be free: 0 when it is, -1 otherwise (nothing is killed without proof). */
int lib_monitor_kill(const char *dir, struct lib_monitor *m, unsigned ms);
/* Waits up to ms until no monitor holds the lock: 0, or -1 when one still does. */
int lib_monitor_wait_gone(const char *dir, unsigned ms);
/* Takes the box lock itself (creating vmm.pid): while held, no monitor can start.
 * The fd, or -1 with errno (EWOULDBLOCK: a monitor holds it). */
int lib_box_lock(const char *dir);
/* Removes a box: its row, then its directory, under the box lock (box.c); refused
 * while a monitor or another command holds the lock. */
int lib_box_destroy(cocoon_box *box, cocoon_error *err);
/* A new box id and its building directory boxes/.creating-<id>, locked (box.c): the
 * lock's fd, or -1 with err. dir receives the final path boxes/<id> (both cap bytes). */
int lib_box_begin(cocoon_runtime *rt, char id[16], char *dir, char *tmp, size_t cap, cocoon_error *err);
/* The built box's config.json written into tmp, then tmp renamed to dir (never over
 * an existing one): the box's files are in place, its row not yet (box.c). */
int lib_box_publish(const char *tmp, const char *dir, const struct box_config *c, cocoon_error *err);
/* The row of a published box, from its config: the commit that makes it visible and
 * claims its name (box.c). */
int lib_box_insert_row(cocoon_runtime *rt, const struct box_config *c, cocoon_error *err);
/* $COCOON_HOME/.gc.lock (gc.c): creates hold it LOCK_SH from their mkdir until they hold the
 * new directory's box lock; the collector holds it LOCK_EX. The fd, or -1 (then the
 * caller goes on without it). how may include LOCK_NB. */
int lib_gc_lock(cocoon_runtime *rt, int how);
void lib_gc_unlock(int fd);
/* Removes what killed creates and removals left in boxes/ (gc.c): run by create and
 * list; skipped when another collector is at work. */
void lib_box_gc(cocoon_runtime *rt);
int lib_ctl_connect(cocoon_box *box, cocoon_error *err);
/* A connected (non-blocking) socket to the box's ctl.sock, nothing read yet. -1 with an
 * error saying the box is not running. */
int lib_ctl_socket(cocoon_box *box, cocoon_error *err);
/* The monitor's first frame on a control connection: 0 for a valid VMM_HELLO (into
 * *hello); otherwise -1 with its ERROR's message (it may refuse a connection, e.g.
 * when out of descriptors) or a protocol error. */
int lib_ctl_hello(cocoon_box *box, const struct proto_header *h, const uint8_t *p, struct proto_vmm_hello *hello,
                  cocoon_error *err);
/* autostart.c: a box whose main process's policy is always or unless-stopped is marked
 * when it starts (DIR/autostart) and unmarked when a user stops it: after a host
 * reboot, the marked ones are started again. */
void lib_autostart_mark(cocoon_box *box);
void lib_autostart_clear(cocoon_box *box);
/* cocoon_box_stop without removing an ephemeral box. */
int lib_box_stop_only(cocoon_box *box, unsigned timeout_ms, cocoon_error *err);
void lib_ctl_close(cocoon_box *box);
/* Queues a frame under box->lock; -1 with an error when the connection is gone. */
int lib_ctl_send_locked(cocoon_box *box, const void *frame, size_t len, cocoon_error *err);
int lib_ctl_send(cocoon_box *box, const void *frame, size_t len, cocoon_error *err);
void lib_console_tail(const cocoon_box *box, char *out, size_t cap);
/* Why the monitor stopped the box: its last "stopping the box: " line in vmm.log of
 * this run ("" when it gave none, e.g. it was killed). */
void lib_stop_reason(const cocoon_box *box, char *out, size_t cap);
/* A log rotated from path to old: old, then path, copied to out; then, while more(arg)
 * says so, what is appended to path, across rotations. 0 ok, 1 out went away, -1 error. */
int lib_rotating_copy(const char *path, const char *old, int out, int (*more)(void *), void *arg);
/* The same through a sink: put gets each piece read (non-zero: stop, the reader went
 * away); watch_fd is polled while following to notice a reader that left. */
struct lib_log_sink {
    int (*put)(void *arg, const char *buf, size_t n);
    void *arg;
    int watch_fd;
};
int lib_rotating_read(const char *path, const char *old, const struct lib_log_sink *sink, int (*more)(void *),
                      void *arg);
/* more() for a box's logs: 1 while the box runs (box is a cocoon_box *). */
int lib_box_running_cb(void *box);
/* An exec's options checked against the protocol's bounds; their counts. */
int lib_exec_validate(const cocoon_exec_options *o, size_t *argc, size_t *envc, cocoon_error *err);
/* The output of a command the monitor ran (main.log, execs/<id>.log: name relative to
 * the box directory), as cocoon_box_main_logs gives it. */
int lib_cmd_logs(cocoon_box *box, const char *name, int stdout_fd, int stderr_fd, const cocoon_logs_options *opts,
                 cocoon_error *err);
/* Writes all of n bytes: 0, or 1 when the fd no longer takes them. */
int lib_write_all(int fd, const void *data, size_t n);

/* A private control connection carrying one stream (files.c, stats.c): transfers and
 * stats do not share the box handle's pump, so they run beside execs on any thread. */
struct lib_xfer {
    cocoon_box *box;
    cocoon_error *err;
    int fd, conn_init;
    struct proto_conn conn;
    struct proto_writer *w; /* heap: 64 KiB */
    uint32_t stream, owed;
    uint64_t credit; /* STDIN we may send */
    int started, done, exited, failed, exit_code, errcode;
    int opened;             /* the stream was opened (FILE_PUT or FILE_GET sent) */
    int abandoned;          /* our side gave up: nothing more goes to the guest's STDIN (no end of archive) */
    uint64_t idle_limit_ns; /* fail after waiting this long for the guest without progress (0: never) */
    uint64_t deadline_ns;   /* CLOCK_MONOTONIC end of the whole transfer (0: none) */
    uint64_t idle_ns;       /* time spent waiting since the last progress */
    size_t errlen;
    char errtext[1024]; /* the guest's STDERR (diagnostics), raw: escape before showing */
    char errmsg[1024];  /* an ERROR message, raw */
};
/* Connects to the running box's monitor: a new transfer, or NULL with err set (an
 * error names a stopped box clearly). lib_xfer_close ends and frees it. The idle
 * timeout is $COCOON_CP_IDLE_TIMEOUT or LIB_XFER_IDLE_DEFAULT_MS. */
struct lib_xfer *lib_xfer_open(cocoon_box *box, cocoon_error *err);
/* The same over an already connected socket to a monitor (or a test's stand-in for
 * one): fd is owned by the transfer from here on. */
struct lib_xfer *lib_xfer_attach(cocoon_box *box, int fd, cocoon_error *err);
/* Sends what is still queued (up to 1 s), then closes the connection and frees x. */
void lib_xfer_close(struct lib_xfer *x);
/* idle_ms 0 keeps the current idle limit; timeout_ms 0: no limit on the whole transfer. */
void lib_xfer_set_timeouts(struct lib_xfer *x, unsigned idle_ms, unsigned timeout_ms);
/* The guest moved the transfer forward (data, credit, its verdict): the idle clock restarts. */
void lib_xfer_progress(struct lib_xfer *x);
/* Sends the frame built in x->w. */
int lib_xfer_send(struct lib_xfer *x, size_t len);
/* The next frame; fails (err set) when the monitor goes away, when the guest made no
 * progress for the idle limit, or at the deadline. */
int lib_xfer_next(struct lib_xfer *x, struct proto_header *h, const uint8_t **p, int any_stream);
/* Grants the guest bytes more output (CREDIT on x's stream). */
int lib_xfer_credit(struct lib_xfer *x, uint32_t bytes);
/* STARTED, CREDIT, STDERR, STDOUT (credited, dropped), ERROR, EXIT of x's stream. */
int lib_xfer_handle(struct lib_xfer *x, const struct proto_header *h, const uint8_t *p);

/* The guest's answer to a FILE_OP (fsops_reply.c): the bytes of its STDOUT, fed as they
 * come, checked frame by frame against what a real agent sends and the protocol's
 * bounds (entries, bytes, names, targets). */
enum lib_fsop_expect {
    FSOP_EXPECT_NONE = 0, /* REMOVE: no entry */
    FSOP_EXPECT_ONE = 1,  /* STAT, MKDIR, MOVE: one entry without a name */
    FSOP_EXPECT_LIST = 2  /* LIST: named entries, each name once */
};
struct lib_fsop_reply {
    int expect;
    uint8_t *buf; /* a frame not complete yet (PROTO_MAX_FRAME) */
    size_t len;
    uint64_t total; /* bytes fed */
    cocoon_file_info *entries;
    size_t count, cap;
    int ended;     /* the END frame came */
    int has_error; /* an ERROR came (error_code, error_msg: raw guest text) */
    uint32_t error_code;
    char error_msg[1024];
    char why[256]; /* what the guest did wrong, when feed or finish returned -1 */
};
int lib_fsop_reply_init(struct lib_fsop_reply *r, int expect);
/* 0, or -1 with r->why when the guest broke the protocol (the reply is dead then). */
int lib_fsop_reply_feed(struct lib_fsop_reply *r, const uint8_t *p, size_t n);
/* At the end of the stream: sorts a list by name; -1 with r->why for a partial frame or
 * a name twice. */
int lib_fsop_reply_finish(struct lib_fsop_reply *r);
void lib_fsop_reply_free(struct lib_fsop_reply *r);
/* One FILE_OP on x (fsops.c), its answer in r (initialised by the caller). shown names
 * the path(s) in messages. 0, or -1 with x's err set. */
int lib_fsop_xfer(struct lib_xfer *x, const struct proto_file_op *op, struct lib_fsop_reply *r, const char *shown);

/* The tar stream of a transfer and its outcome (xfer_tar.c). */
/* Opens x's stream: FILE_PUT or FILE_GET of path with PROTO_FILE_* flags. */
int lib_xfer_open_stream(struct lib_xfer *x, uint16_t type, const char *path, uint32_t flags);
/* Waits for the end of the stream, then the guest's verdict: 0 when it succeeded, else
 * -1 with err set to "WHAT BOX:PATH: what the guest said" (escaped). */
int lib_xfer_result(struct lib_xfer *x, const char *what, const char *path);
/* After a failure on our side while sending: the guest usually said why it stopped
 * reading (its verdict goes into err), else err gets ours (code, detail). */
void lib_xfer_fail_unless_guest_said(struct lib_xfer *x, const char *what, const char *path, int code,
                                     const char *detail);
/* After our reader or a check of what the guest sent failed: when the guest already
 * ended its stream with a failure, that is the cause (a missing file...); otherwise err
 * (ours, or the transfer's own failure) stands, prefixed with what was being done. */
void lib_xfer_explain_failure(struct lib_xfer *x, const char *what, const char *path);
/* Guest warnings of a successful transfer, then extra, into err->message with code 0. */
void lib_xfer_pass_warnings(struct lib_xfer *x, const char *extra);
/* libarchive is loaded on first use (util/dl_archive.h): 0 once it is, else -1 with
 * COCOON_E_UNSUPPORTED saying what to install. Every path that makes an archive object
 * calls this first. */
int lib_archive_ready(cocoon_error *err);
/* A pax writer (64 KiB blocks, the last one not padded) whose bytes go to the guest as
 * x's STDIN, each as soon as the guest credits it. NULL when out of memory. Once the
 * caller gives up, lib_xfer_abandon: freeing the writer then sends nothing more (a
 * writer closes its archive when freed, and the guest must not see it end). */
struct archive *lib_xfer_tar_writer(struct lib_xfer *x);
/* Sets e's path and its symlink or hard link target (NULL: none), bytes as they are. */
struct archive_entry;
void lib_tar_entry_names(struct archive_entry *e, const char *path, const char *symlink, const char *hardlink);
/* libarchive converts names between pax headers (UTF-8) and the thread's locale, which in
 * the C locale fails for anything not ASCII (a warning reading, hdrcharset=BINARY
 * writing, which GNU tar does not know). The archive streams run in C.UTF-8 on their
 * thread: enter returns the locale to give back to leave (with *utf8, NULL when C.UTF-8
 * is missing and nothing changed); names that are not UTF-8 still pass as bytes. */
locale_t lib_tar_locale_enter(locale_t *utf8);
void lib_tar_locale_leave(locale_t old, locale_t utf8);
/* archive_write_free that never leaks (libarchive 3.6 leaks a writer that failed in a
 * header): its archive is closed first, so its callback must refuse bytes by then. */
void lib_tar_writer_free(struct archive *w);
/* Our side failed: nothing more is sent on the stream (no end of archive, no STDIN_EOF)
 * and the guest's side is cancelled (SIGNAL SIGKILL; closing the connection, which
 * follows, makes the monitor kill it in any case). */
void lib_xfer_abandon(struct lib_xfer *x);
/* Copies the data of the entry just read from in to w, holes fed as zeros (which the
 * pax writer drops again for a sparse entry, so only data regions cross the channel):
 * LIB_DATA_SENT, or why not. */
enum { LIB_DATA_SENT = 0, LIB_DATA_SEND_FAILED = -1, LIB_DATA_READ_FAILED = -2, LIB_DATA_OUT_OF_PLACE = -3 };
struct archive;
int lib_tar_copy_data(struct archive *in, struct archive *w, int64_t size);
/* n zero bytes through the writer (the holes of a sparse entry: its writer drops them):
 * 0, or -1 when the writer failed. */
int lib_tar_write_zeros(struct archive *w, uint64_t n);
/* A tar_read_fn over x's STDOUT: credits the guest what the previous call took; 0 at the
 * end of the stream (EXIT, or ERROR before STARTED), -1 when the transfer failed. */
long lib_xfer_read_stdout(void *arg, void *buf, size_t cap);

/* Bounds of file transfers (files.c): the caller's options, else the environment
 * ($COCOON_CP_MAX_BYTES, $COCOON_CP_MAX_ENTRIES, $COCOON_CP_IDLE_TIMEOUT in seconds),
 * else the defaults below. */
#define LIB_CP_MAX_BYTES_DEFAULT (16ull << 30)
#define LIB_CP_MAX_ENTRIES_DEFAULT 1000000ull
#define LIB_XFER_IDLE_DEFAULT_MS 60000u
struct lib_copy_limits {
    uint64_t max_bytes, max_entries;
    unsigned idle_timeout_ms, timeout_ms;
};
int lib_copy_limits(const cocoon_copy_options *opts, struct lib_copy_limits *out, cocoon_error *err);
/* The name the guest gives the top of its archive of box_path: its last component
 * (trailing slashes dropped); refused for the root, "." and "..". */
int lib_guest_top(const char *box_path, char top[NAME_MAX + 1], cocoon_error *err);
/* The bodies of cocoon_copy_from_box_opts, cocoon_copy_to_box_opts and cocoon_file_read
 * on an open transfer (tests drive them with a stand-in monitor). */
int lib_copy_from_xfer(struct lib_xfer *x, const char *box_path, const char *host_path,
                       const struct lib_copy_limits *lim, cocoon_error *err);
int lib_copy_to_xfer(struct lib_xfer *x, const char *host_path, const char *box_path, cocoon_error *err);
int lib_file_read_xfer(struct lib_xfer *x, const char *path, void **data, size_t *len, size_t max, cocoon_error *err);
/* The bodies of cocoon_tar_to_box and cocoon_tar_from_box on an open transfer (tarstream.c). */
int lib_tar_to_xfer(struct lib_xfer *x, const char *box_dir, cocoon_read_fn read, void *user, unsigned flags,
                    const struct lib_copy_limits *lim, cocoon_error *err);
int lib_tar_from_xfer(struct lib_xfer *x, const char *box_path, cocoon_write_fn write, void *user, unsigned flags,
                      const struct lib_copy_limits *lim, cocoon_error *err);

/* exec internals used by box.c */
void lib_exec_detach_all(cocoon_box *box);
/* Opens a stream like cocoon_exec_start but with another opening frame (FILE_PUT...):
 * encode builds it for the given stream id (0 on overflow). Output, stdin, credits and
 * the end of the stream (EXIT, or ERROR before STARTED) work as for an exec. */
typedef size_t (*lib_open_fn)(struct proto_writer *w, uint32_t stream, void *arg);
int lib_stream_start(cocoon_box *box, const cocoon_exec_options *opts, lib_open_fn encode, void *arg, cocoon_exec **out,
                     cocoon_error *err);

/* health.c: the image's Healthcheck (its config JSON, may be NULL) as the new box's
 * health.json in dir; an image without one, or with Test ["NONE"], writes nothing. */
int lib_image_health_write(const char *dir, const char *config_json, cocoon_error *err);

#endif
