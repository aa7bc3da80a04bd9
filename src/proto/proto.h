/* The cocoon wire protocol: framing and message fields shared by the guest agent,
 * cocoon-vmm and libcocoon. Everything that crosses the host/guest boundary is
 * decoded here with every length checked; see docs/protocol.md for the contract. */
#ifndef COCOON_PROTO_H
#define COCOON_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_VERSION_MIN 1
#define PROTO_HEADER_SIZE 12
#define PROTO_MAX_PAYLOAD (64u * 1024u)
#define PROTO_MAX_FRAME (PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD)
/* Bounds for decoded message contents (a hostile peer cannot make us allocate more). */
#define PROTO_MAX_STRING 4096u
#define PROTO_MAX_LIST 1024u
/* Default per-stream flow-control window (bytes of data in flight per direction). */
#define PROTO_DEFAULT_WINDOW (1024u * 1024u)

/* Stream 0 carries session messages; exec streams are opened by the host side. */
#define PROTO_STREAM_SESSION 0u

enum proto_type {
    /* session (stream 0) */
    PROTO_HELLO = 1,  /* guest->host: VERSION_MIN, VERSION_MAX, AGENT_VERSION, KERNEL, BOOT_NS */
    PROTO_CONFIG = 2, /* host->guest: VERSION, HOSTNAME, REALTIME_NS */
    PROTO_READY = 3,  /* guest->host: BOOT_NS (CLOCK_BOOTTIME at ready), INIT_NS (at agent start) */
    PROTO_PING = 4,   /* either way, any stream: raw payload, answered by PONG with the same bytes */
    PROTO_PONG = 5,
    PROTO_SHUTDOWN = 6, /* host->guest: MODE (0 poweroff, 1 reboot), TIMEOUT_MS */
    PROTO_ERROR = 7,    /* either way: CODE (errno-style), MESSAGE */
    /* exec streams */
    PROTO_EXEC = 16,      /* host->guest: ARGV*, ENV*, CWD, USER, TTY, ROWS, COLS, TIMEOUT_MS, WINDOW */
    PROTO_STARTED = 17,   /* guest->host: PID, WINDOW (initial stdin credit) */
    PROTO_STDIN = 18,     /* host->guest: raw bytes */
    PROTO_STDIN_EOF = 19, /* host->guest: empty */
    PROTO_STDOUT = 20,    /* guest->host: raw bytes */
    PROTO_STDERR = 21,    /* guest->host: raw bytes */
    PROTO_EXIT = 22,      /* guest->host: CODE, SIGNAL, TIMED_OUT; the last frame of a stream */
    PROTO_SIGNAL = 23,    /* host->guest: SIGNAL */
    PROTO_RESIZE = 24,    /* host->guest: ROWS, COLS */
    PROTO_CREDIT = 25,    /* either way: BYTES more the receiver of data may now be sent */
    /* control socket only (client <-> cocoon-vmm, never forwarded to the guest) */
    PROTO_VMM_HELLO =
        32, /* vmm->client on connect: VERSION, BACKEND, ACCEL, BOX_ID, BOOT_NS, INIT_NS, READY_MS, KERNEL */
    PROTO_VMM_LIST_EXECS = 33,    /* client->vmm: no fields; answered by VMM_EXECS */
    PROTO_VMM_EXECS = 34,         /* vmm->client: (EXEC_PID, EXEC_CMD)* pairs in order */
    PROTO_VMM_SIGNAL_EXEC = 35,   /* client->vmm: PID (0: every exec), SIGNAL; answered by VMM_EXECS of those hit */
    PROTO_VMM_EXEC_DETACHED = 36, /* client->vmm: EXEC's fields; the monitor runs it, keeping its output; answered
                                     by VMM_EXECS of it (its pid) once it started, or ERROR */
    /* file transfer and stats streams (opened like EXEC; docs/protocol.md "Files", "Stats") */
    PROTO_FILE_PUT = 40,     /* host->guest: PATH, WINDOW, FLAGS; then a tar stream as STDIN */
    PROTO_FILE_GET = 41,     /* host->guest: PATH, WINDOW, FLAGS; the guest answers a tar stream as STDOUT */
    PROTO_STATS = 42,        /* host->guest: no fields; answered by STATS_REPLY (or ERROR) */
    PROTO_STATS_REPLY = 43,  /* guest->host: the STATS_* fields; the last frame of its stream */
    PROTO_FILE_OP = 44,      /* host->guest: OP, PATH, PATH2, FLAGS, MODE, WINDOW; answered like FILE_GET, its STDOUT
                                a sequence of FILE_ENTRIES frames (or an ERROR) (docs/protocol.md "File operations") */
    PROTO_FILE_ENTRIES = 45, /* inside FILE_OP's STDOUT only: ENTRY* (nested), FLAGS (PROTO_FSOP_END on the last) */
    /* attaching to the box's main process (control socket only; docs/protocol.md "Attach") */
    PROTO_VMM_ATTACH = 46,   /* client->vmm, opens a stream: FLAGS (PROTO_ATTACH_*), ROWS, COLS; then the client
                                may send STDIN, STDIN_EOF, RESIZE, SIGNAL on it */
    PROTO_VMM_ATTACHED = 47, /* vmm->client on that stream: PID, TTY, FLAGS (PROTO_ATTACH_STDIN: stdin is open),
                                BYTES (output dropped for this client since the last one); then STDOUT/STDERR and
                                an EXIT when the main process ends */
    /* live snapshots (docs/protocol.md "Live snapshots") */
    PROTO_VMM_SNAPSHOT =
        52,              /* client->vmm: FLAGS, TIMEOUT_MS (how long the guest may stay frozen); the monitor
                            switches the box's disk to the new layer disk.next-<id>.qcow2 the client made and answers
                            VMM_SNAPSHOT: CODE (1: the guest was quiesced, 0: not), MESSAGE (why not); or ERROR */
    PROTO_FREEZE = 53,   /* host->guest: TIMEOUT_MS; > 0: sync and freeze the root file system, thawed by the
                            agent itself after that long at most; 0: thaw. Answered by FROZEN */
    PROTO_FROZEN = 54,   /* guest->host: MODE (1 frozen, 0 thawed), CODE (0 or an errno), MESSAGE */
    PROTO_RESTORED = 55, /* host->guest: REALTIME_NS*, SEED (4 x u64), HOSTNAME; the guest was restored from a memory
                            snapshot (a fork): it steps its clock, reseeds its RNG, thaws, forgets its exec
                            streams and answers READY */
    /* the box's TLS interception (docs/protocol.md "Box trust") */
    PROTO_BOX_TRUST = 56, /* host->guest, after CONFIG: TRUST_CA (PEM, the box CA to install), BOX_ENV* (set in
                             every command's environment unless the command sets the name itself) */
    PROTO_TYPE_MAX = 63
};

/* Field tags of the TLV payload of non-data messages. */
enum proto_tag {
    PT_VERSION = 1,
    PT_VERSION_MIN = 2,
    PT_VERSION_MAX = 3,
    PT_AGENT_VERSION = 4,
    PT_KERNEL = 5,
    PT_BOOT_NS = 6,
    PT_INIT_NS = 7,
    PT_HOSTNAME = 8,
    PT_REALTIME_NS = 9,
    PT_MODE = 10,
    PT_TIMEOUT_MS = 11,
    PT_CODE = 12,
    PT_MESSAGE = 13,
    PT_ARGV = 14, /* repeated, in order */
    PT_ENV = 15,  /* repeated, "KEY=VALUE" */
    PT_CWD = 16,
    PT_USER = 17,
    PT_TTY = 18,
    PT_ROWS = 19,
    PT_COLS = 20,
    PT_WINDOW = 21,
    PT_PID = 22,
    PT_SIGNAL = 23,
    PT_TIMED_OUT = 24,
    PT_BYTES = 25,
    PT_BACKEND = 26,
    PT_ACCEL = 27,
    PT_BOX_ID = 28,
    PT_READY_MS = 29,
    /* files and stats (40..) */
    PT_PATH = 40,           /* string: a guest path */
    PT_FLAGS = 41,          /* u32: PROTO_FILE_* bits */
    PT_CPU_NS = 42,         /* u64: CPU time spent busy (all CPUs, /proc/stat) */
    PT_CPUS = 43,           /* u32: online CPUs */
    PT_MEM_TOTAL = 44,      /* u64 bytes */
    PT_MEM_AVAILABLE = 45,  /* u64 bytes */
    PT_MEM_FREE = 46,       /* u64 bytes */
    PT_DISK_TOTAL = 47,     /* u64 bytes of the root file system */
    PT_DISK_USED = 48,      /* u64 bytes */
    PT_DISK_AVAILABLE = 49, /* u64 bytes */
    PT_PROCS = 50,          /* u32: processes */
    PT_UPTIME_NS = 51,      /* u64: CLOCK_BOOTTIME */
    PT_LOAD1 = 52,          /* u32: load average x 1000 */
    PT_LOAD5 = 53,
    PT_LOAD15 = 54,
    /* file operations (FILE_OP and the fields of one ENTRY) */
    PT_OP = 55,         /* u32: PROTO_FSOP_* */
    PT_PATH2 = 56,      /* string: MOVE's destination */
    PT_NAME = 57,       /* ENTRY: string, one directory entry's name (absent in the answer to a path) */
    PT_FILE_TYPE = 58,  /* ENTRY: u32, PROTO_FTYPE_* */
    PT_UID = 59,        /* ENTRY: u32 */
    PT_GID = 60,        /* ENTRY: u32 */
    PT_SIZE = 61,       /* ENTRY: u64 bytes */
    PT_MTIME_SEC = 62,  /* ENTRY: u64, an int64 of unix seconds */
    PT_MTIME_NSEC = 63, /* ENTRY: u32 < 10^9; ENTRY's MODE is PT_MODE (07777), its link target PT_PATH */
    PT_TAG_MAX = 63,
    /* Repeated fields use tags above PT_TAG_MAX (decoders do not track them as scalars). */
    PT_EXEC_PID = 64,
    PT_EXEC_CMD = 65,
    PT_ENTRY = 66,    /* FILE_ENTRIES: one entry, its fields a TLV payload of their own */
    PT_SEED = 67,     /* RESTORED: u64, four of them: 32 random bytes for the guest's RNG */
    PT_TRUST_CA = 70, /* BOX_TRUST: string, a PEM certificate */
    PT_BOX_ENV = 71   /* BOX_TRUST: repeated, "KEY=VALUE" */
};

struct proto_header {
    uint32_t len; /* payload bytes following the header */
    uint32_t stream;
    uint16_t type;
    uint8_t version;
    uint8_t flags; /* reserved, must be 0 */
};

enum proto_status {
    PROTO_OK = 0,
    PROTO_NEED_MORE = 1,    /* not an error: the buffer holds less than one frame */
    PROTO_E_VERSION = -1,   /* header version byte is not ours */
    PROTO_E_OVERSIZE = -2,  /* payload length above PROTO_MAX_PAYLOAD */
    PROTO_E_TYPE = -3,      /* unknown message type */
    PROTO_E_FLAGS = -4,     /* reserved flags set */
    PROTO_E_TRUNCATED = -5, /* a field runs past the end of its payload */
    PROTO_E_FIELD = -6,     /* a field has the wrong size, a bad value or is missing */
    PROTO_E_NOMEM = -7,
    PROTO_E_STREAM = -8 /* a message on a stream where it does not belong */
};

const char *proto_strerror(int status);
const char *proto_type_name(unsigned type);
int proto_type_known(unsigned type);

/* Encodes a header into out[PROTO_HEADER_SIZE]. */
void proto_header_encode(uint8_t *out, uint32_t len, uint32_t stream, uint16_t type);
/* Decodes and validates the header at buf. PROTO_NEED_MORE when len < header;
 * otherwise PROTO_OK or a PROTO_E_* status. Does not need the payload. */
int proto_header_decode(const uint8_t *buf, size_t len, struct proto_header *h);
/* Validates one complete frame at the start of buf. On PROTO_OK sets *frame_len to the
 * bytes it occupies and *payload to its body. PROTO_NEED_MORE if incomplete. */
int proto_frame_parse(const uint8_t *buf, size_t len, struct proto_header *h, const uint8_t **payload,
                      size_t *frame_len);

/* --- TLV payload writer: fixed capacity, sticky overflow flag. --- */
struct proto_writer {
    uint8_t buf[PROTO_MAX_FRAME];
    size_t len; /* bytes used including the header */
    int overflow;
};
void proto_writer_begin(struct proto_writer *w, uint32_t stream, uint16_t type);
void proto_put_u32(struct proto_writer *w, uint16_t tag, uint32_t v);
void proto_put_u64(struct proto_writer *w, uint16_t tag, uint64_t v);
void proto_put_i32(struct proto_writer *w, uint16_t tag, int32_t v);
void proto_put_str(struct proto_writer *w, uint16_t tag, const char *s);
void proto_put_raw(struct proto_writer *w, const void *data, size_t n); /* data frames */
/* Fills in the header length. Returns the frame size, or 0 on overflow. */
size_t proto_writer_finish(struct proto_writer *w);

/* --- TLV payload reader --- */
struct proto_field {
    uint16_t tag;
    uint32_t len;
    const uint8_t *value;
};
struct proto_reader {
    const uint8_t *p;
    size_t left;
};
void proto_reader_init(struct proto_reader *r, const uint8_t *payload, size_t len);
/* PROTO_OK with *f set, PROTO_NEED_MORE at the clean end, PROTO_E_TRUNCATED otherwise. */
int proto_next_field(struct proto_reader *r, struct proto_field *f);
int proto_field_u32(const struct proto_field *f, uint32_t *v);
int proto_field_u64(const struct proto_field *f, uint64_t *v);
int proto_field_i32(const struct proto_field *f, int32_t *v);
/* Copies a string field (no NUL bytes allowed, len < cap) into out, NUL-terminated. */
int proto_field_str(const struct proto_field *f, char *out, size_t cap);

/* --- Typed messages: decoders validate the whole payload (unknown tags are skipped
 * so newer peers can add fields; repeated scalar tags are an error). --- */
struct proto_hello {
    uint32_t version_min, version_max;
    char agent_version[64];
    char kernel[128];
    uint64_t boot_ns;
};
struct proto_config {
    uint32_t version;
    char hostname[64];
    uint64_t realtime_ns;
};
struct proto_ready {
    uint64_t boot_ns, init_ns;
};
struct proto_exec {
    char **argv; /* NULL-terminated, owned; argc >= 1 */
    size_t argc;
    char **env; /* NULL-terminated, owned */
    size_t envc;
    char cwd[PROTO_MAX_STRING];
    char user[256];
    uint32_t tty, rows, cols;
    uint64_t timeout_ms;  /* 0 = none */
    uint32_t window;      /* initial stdout+stderr credit granted to the guest */
    uint64_t realtime_ns; /* the host's clock when it sent the EXEC (0: not sent) */
};
struct proto_started {
    uint32_t pid, window;
};
struct proto_exit {
    int32_t code;    /* exit status when signal == 0 */
    uint32_t signal; /* terminating signal, 0 if it exited */
    uint32_t timed_out;
};
struct proto_error_msg {
    uint32_t code;
    char message[1024];
};
struct proto_vmm_hello {
    uint32_t version;
    char backend[32], accel[32], box_id[64], kernel[128];
    uint64_t boot_ns, init_ns;
    uint32_t ready_ms;
};

/* FILE_PUT / FILE_GET */
#define PROTO_FILE_EXACT 1u      /* PUT: PATH names the object itself, never a directory to put it into */
#define PROTO_FILE_FOLLOW 2u     /* GET: follow a symlink in the last component (still inside the guest root) */
#define PROTO_FILE_NO_REPLACE 4u /* PUT: an entry whose name exists (but a directory for a directory) fails it */
#define PROTO_FILE_FLAGS_ALL (PROTO_FILE_EXACT | PROTO_FILE_FOLLOW | PROTO_FILE_NO_REPLACE)
/* In the agent's diagnostic of a NO_REPLACE refusal, so the host can tell it apart. */
#define PROTO_FILE_EXISTS_TEXT "exists and may not be replaced"
struct proto_file {
    char path[PROTO_MAX_STRING]; /* non-empty */
    uint32_t window;             /* initial credit for the guest's STDOUT+STDERR; != 0 */
    uint32_t flags;
};
struct proto_stats {
    uint64_t cpu_ns, mem_total, mem_available, mem_free, disk_total, disk_used, disk_available, uptime_ns;
    uint32_t cpus, procs, load1, load5, load15;
};

/* FILE_OP (docs/protocol.md "File operations"). Bounds both sides hold to. */
enum proto_fsop {
    PROTO_FSOP_STAT = 1,
    PROTO_FSOP_LIST = 2,
    PROTO_FSOP_MKDIR = 3,
    PROTO_FSOP_REMOVE = 4,
    PROTO_FSOP_MOVE = 5
};
#define PROTO_FSOP_PARENTS 1u    /* MKDIR: like mkdir -p */
#define PROTO_FSOP_RECURSIVE 2u  /* REMOVE: like rm -r */
#define PROTO_FSOP_NO_REPLACE 4u /* MOVE: refuse an existing destination */
#define PROTO_FSOP_FLAGS_ALL (PROTO_FSOP_PARENTS | PROTO_FSOP_RECURSIVE | PROTO_FSOP_NO_REPLACE)
#define PROTO_FSOP_END 1u                /* FILE_ENTRIES' FLAGS: the last frame of a successful answer */
#define PROTO_FSOP_MAX_ENTRIES 100000u   /* entries of one LIST */
#define PROTO_FSOP_MAX_BYTES (64u << 20) /* bytes of one answer (all its frames) */
#define PROTO_FSOP_MAX_NAME 255u         /* bytes of an entry's name (NAME_MAX) */
#define PROTO_FSOP_MAX_TARGET 1023u      /* bytes of a symlink target sent (longer ones are cut) */
#define PROTO_FSOP_MAX_DEPTH 256u        /* directory levels REMOVE RECURSIVE goes down */
enum proto_ftype { PROTO_FTYPE_REGULAR = 1, PROTO_FTYPE_DIRECTORY = 2, PROTO_FTYPE_SYMLINK = 3, PROTO_FTYPE_OTHER = 4 };
struct proto_file_op {
    uint32_t op;                  /* enum proto_fsop */
    char path[PROTO_MAX_STRING];  /* absolute */
    char path2[PROTO_MAX_STRING]; /* MOVE only, absolute */
    uint32_t flags;               /* PROTO_FSOP_* bits */
    uint32_t mode;                /* MKDIR: permission bits (07777) */
    uint32_t window;              /* initial credit for the guest's STDOUT+STDERR; != 0 */
};
struct proto_file_entry {
    char name[PROTO_FSOP_MAX_NAME + 1];     /* "" in the answer about a path itself */
    char target[PROTO_FSOP_MAX_TARGET + 1]; /* symlinks */
    uint32_t type;                          /* enum proto_ftype */
    uint32_t mode;                          /* 07777 */
    uint32_t uid, gid;
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
};
int proto_decode_file_op(const uint8_t *p, size_t n, struct proto_file_op *m);
size_t proto_encode_file_op(struct proto_writer *w, uint32_t stream, const struct proto_file_op *m);
/* FILE_ENTRIES: begin a frame, add entries while they fit (0 when this one did not: the
 * frame is unchanged, finish it and begin another), finish with the END flag or not. */
void proto_entries_begin(struct proto_writer *w);
int proto_entries_add(struct proto_writer *w, const struct proto_file_entry *e);
size_t proto_entries_finish(struct proto_writer *w, uint32_t flags);
/* Decodes one FILE_ENTRIES payload, calling each() for every entry in order (a non-zero
 * return stops it and is returned); every entry is checked first (a name without '/',
 * not "." or "..", a known type, mode within 07777, nsec below 10^9). Returns PROTO_OK,
 * a PROTO_E_* status, or the first non-zero each() returned (the rest is still checked). */
int proto_decode_file_entries(const uint8_t *p, size_t n, int (*each)(void *user, const struct proto_file_entry *e),
                              void *user, uint32_t *flags);

int proto_decode_hello(const uint8_t *p, size_t n, struct proto_hello *m);
int proto_decode_config(const uint8_t *p, size_t n, struct proto_config *m);
int proto_decode_ready(const uint8_t *p, size_t n, struct proto_ready *m);
int proto_decode_exec(const uint8_t *p, size_t n, struct proto_exec *m); /* free with proto_exec_free */
void proto_exec_free(struct proto_exec *m);
int proto_decode_started(const uint8_t *p, size_t n, struct proto_started *m);
int proto_decode_exit(const uint8_t *p, size_t n, struct proto_exit *m);
int proto_decode_error(const uint8_t *p, size_t n, struct proto_error_msg *m);
int proto_decode_u32_field(const uint8_t *p, size_t n, uint16_t tag, uint32_t *v); /* SIGNAL, CREDIT... */
int proto_decode_shutdown(const uint8_t *p, size_t n, uint32_t *mode, uint32_t *timeout_ms);
int proto_decode_resize(const uint8_t *p, size_t n, uint32_t *rows, uint32_t *cols);
int proto_decode_vmm_hello(const uint8_t *p, size_t n, struct proto_vmm_hello *m);
int proto_decode_file(const uint8_t *p, size_t n, struct proto_file *m);
int proto_decode_stats(const uint8_t *p, size_t n); /* the request: fields are skipped */
int proto_decode_stats_reply(const uint8_t *p, size_t n, struct proto_stats *m);

/* Encoders build a complete frame in w; return the frame size or 0 on overflow. */
size_t proto_encode_hello(struct proto_writer *w, const struct proto_hello *m);
size_t proto_encode_config(struct proto_writer *w, const struct proto_config *m);
size_t proto_encode_ready(struct proto_writer *w, const struct proto_ready *m);
size_t proto_encode_exec(struct proto_writer *w, uint32_t stream, const struct proto_exec *m);
/* The same fields as a VMM_EXEC_DETACHED request (stream 0). */
size_t proto_encode_exec_detached(struct proto_writer *w, const struct proto_exec *m);
size_t proto_encode_started(struct proto_writer *w, uint32_t stream, const struct proto_started *m);
size_t proto_encode_exit(struct proto_writer *w, uint32_t stream, const struct proto_exit *m);
size_t proto_encode_error(struct proto_writer *w, uint32_t stream, uint32_t code, const char *message);
size_t proto_encode_data(struct proto_writer *w, uint32_t stream, uint16_t type, const void *data, size_t n);
size_t proto_encode_signal(struct proto_writer *w, uint32_t stream, uint32_t signal);
size_t proto_encode_credit(struct proto_writer *w, uint32_t stream, uint32_t bytes);
size_t proto_encode_shutdown(struct proto_writer *w, uint32_t mode, uint32_t timeout_ms);
size_t proto_encode_resize(struct proto_writer *w, uint32_t stream, uint32_t rows, uint32_t cols);
size_t proto_encode_vmm_hello(struct proto_writer *w, const struct proto_vmm_hello *m);
/* type is PROTO_FILE_PUT or PROTO_FILE_GET */
size_t proto_encode_file(struct proto_writer *w, uint32_t stream, uint16_t type, const struct proto_file *m);
size_t proto_encode_stats(struct proto_writer *w, uint32_t stream);
size_t proto_encode_stats_reply(struct proto_writer *w, uint32_t stream, const struct proto_stats *m);

/* Running execs as the monitor knows them (VMM_EXECS). */
struct proto_exec_entry {
    uint32_t pid;
    char cmd[256];
};
size_t proto_encode_vmm_execs(struct proto_writer *w, const struct proto_exec_entry *e, size_t n);
/* Decodes at most cap entries into e; *n is how many the message held (more than
 * cap is not an error: the caller sees the truncation). */
int proto_decode_vmm_execs(const uint8_t *p, size_t len, struct proto_exec_entry *e, size_t cap, size_t *n);
size_t proto_encode_signal_exec(struct proto_writer *w, uint32_t pid, uint32_t signal);
int proto_decode_signal_exec(const uint8_t *p, size_t n, uint32_t *pid, uint32_t *signal);

/* VMM_ATTACH / VMM_ATTACHED */
#define PROTO_ATTACH_STDIN 1u /* ATTACH: this client sends stdin; ATTACHED: the main process's stdin is open */
#define PROTO_ATTACH_FLAGS_ALL PROTO_ATTACH_STDIN
struct proto_attach {
    uint32_t flags;      /* PROTO_ATTACH_* */
    uint32_t rows, cols; /* the client's terminal (0: none), at most 65535 */
};
struct proto_attached {
    uint32_t pid, tty, flags;
    uint64_t dropped; /* bytes */
};
int proto_decode_attach(const uint8_t *p, size_t n, struct proto_attach *m);
size_t proto_encode_attach(struct proto_writer *w, uint32_t stream, const struct proto_attach *m);
int proto_decode_attached(const uint8_t *p, size_t n, struct proto_attached *m);
size_t proto_encode_attached(struct proto_writer *w, uint32_t stream, const struct proto_attached *m);

/* VMM_SNAPSHOT (both ways) and FROZEN; every field optional. */
#define PROTO_FREEZE_MAX_MS 60000u /* the longest a guest stays frozen */
#define PROTO_SNAPSHOT_MEMORY 1u   /* VMM_SNAPSHOT: also the memory and device state, to memory.next (a fork) */
#define PROTO_FREEZE_MUTE 1u       /* FREEZE: after FROZEN the agent sends nothing until THAW or RESTORED */
struct proto_snapshot {
    uint32_t flags;      /* request: PROTO_SNAPSHOT_* */
    uint32_t timeout_ms; /* request: freeze timeout; 0: the default */
    uint32_t code;       /* answer: 1 when the guest was quiesced */
    char message[256];   /* answer: why it was not */
    char path[64];       /* request: the new layer's file in the box directory (disk.next-<snapshot id>.qcow2) */
};
int proto_decode_vmm_snapshot(const uint8_t *p, size_t n, struct proto_snapshot *m);
size_t proto_encode_vmm_snapshot(struct proto_writer *w, const struct proto_snapshot *m);
struct proto_frozen {
    uint32_t mode; /* 1: frozen, 0: thawed */
    uint32_t code; /* 0, or the errno of a failure */
    char message[256];
};
int proto_decode_frozen(const uint8_t *p, size_t n, struct proto_frozen *m);
size_t proto_encode_frozen(struct proto_writer *w, const struct proto_frozen *m);
/* FREEZE: TIMEOUT_MS, required, at most PROTO_FREEZE_MAX_MS; FLAGS (PROTO_FREEZE_*). */
int proto_decode_freeze(const uint8_t *p, size_t n, uint32_t *timeout_ms, uint32_t *flags);
size_t proto_encode_freeze(struct proto_writer *w, uint32_t timeout_ms, uint32_t flags);
/* RESTORED */
struct proto_restored {
    uint64_t realtime_ns;
    uint64_t seed[4];
    char hostname[64]; /* the new box's, "" to keep */
};
int proto_decode_restored(const uint8_t *p, size_t n, struct proto_restored *m);
size_t proto_encode_restored(struct proto_writer *w, const struct proto_restored *m);

/* Which types may travel on which stream, and in which direction. */
int proto_type_is_session(unsigned type);
int proto_type_is_data(unsigned type); /* STDIN/STDOUT/STDERR/PING/PONG carry raw bytes */

#endif
