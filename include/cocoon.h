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

/* ---- runtime ---- */
typedef struct cocoon_runtime_options {
    const char *home;      /* state directory; NULL: $COCOON_HOME or ~/.local/share/cocoon */
    const char *share_dir; /* kernel, initramfs, images; NULL: $COCOON_SHARE_DIR or next to the library */
} cocoon_runtime_options;

int cocoon_runtime_open(const cocoon_runtime_options *opts, cocoon_runtime **out, cocoon_error *err);
void cocoon_runtime_close(cocoon_runtime *rt);

/* What this host offers, as `cocoon doctor` prints it. */
typedef struct cocoon_host_info {
    int kvm_device; /* /dev/kvm exists and opens */
    int kvm_usable; /* KVM can run a stock kernel (hardware VMX/SVM) */
    char kvm_reason[256];
    char backend[16]; /* backend boxes use: "qemu" (the only one in this release) */
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
} cocoon_host_info;
int cocoon_host_probe(cocoon_runtime *rt, cocoon_host_info *info, cocoon_error *err);

/* ---- boxes ---- */
typedef struct cocoon_box_options {
    const char *name;         /* optional */
    const char *image;        /* image name; NULL and no rootfs: "default" */
    const char *rootfs;       /* a host directory to use as the root instead of an image */
    unsigned cpus;            /* 0: 1 */
    unsigned memory_mib;      /* 0: 512 */
    const char *accel;        /* NULL/"auto", "kvm", "tcg" */
    int ephemeral;            /* remove the box when it stops or when its creator exits */
    unsigned boot_timeout_ms; /* 0: 60000 (TCG boots take seconds) */
    const char *kernel;       /* override the guest kernel (tests) */
    const char *initrd;       /* override the initramfs (tests) */
    uint64_t disk_size;       /* virtual disk size in bytes; 0: the image's size (the minimum).
                                 The guest grows its root file system to fill it at boot. */
} cocoon_box_options;

/* Boxes live in the runtime's state ($COCOON_HOME/cocoon.db plus one directory per box)
 * until removed: a box that is not ephemeral keeps its disk across stop and start.
 * A box handle must be closed before the runtime it came from. */
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
/* Copies the box's console log (kernel and agent lines of the current or last boot) to
 * fd. With follow, keeps copying until the box stops. */
int cocoon_box_logs(cocoon_box *box, int fd, int follow, cocoon_error *err);

/* ---- exec ----
 * Threading: one thread drives a box handle's exec (cocoon_exec_wait pumps the
 * channel and runs the callbacks on that thread). cocoon_exec_signal,
 * cocoon_exec_write and cocoon_exec_close_stdin may be called from any thread. */
typedef void (*cocoon_output_fn)(void *user_data, const char *data, size_t len);

#define COCOON_STDIN_NONE (-1) /* the command sees EOF on stdin at once */
#define COCOON_STDIN_API (-2)  /* the caller feeds stdin with cocoon_exec_write */

typedef struct cocoon_exec_options {
    const char *const *argv; /* NULL-terminated; argv[0] is looked up in PATH */
    const char *const *env;  /* NULL-terminated "K=V" entries added to the default env */
    const char *cwd;         /* NULL: / */
    const char *user;        /* NULL: root; "name", "uid" or "uid:gid" */
    int tty;
    unsigned timeout_ms; /* 0: none; on expiry the whole process group is killed */
    int stdin_fd;        /* a host fd read until EOF, COCOON_STDIN_NONE or COCOON_STDIN_API */
    int stdout_fd;       /* a host fd to write output to, or -1 to use the callback */
    int stderr_fd;
    cocoon_output_fn on_stdout;
    cocoon_output_fn on_stderr;
    void *user_data;
    unsigned rows, cols; /* terminal size when tty is set; 0: 24x80 */
} cocoon_exec_options;

/* Fills defaults: no stdin, output to callbacks (none set: discarded). */
void cocoon_exec_options_init(cocoon_exec_options *opts);

typedef struct cocoon_exit_status {
    int exit_code; /* valid when signal == 0 */
    int signal;    /* the signal that killed it, or 0 */
    int timed_out; /* killed because timeout_ms passed */
} cocoon_exit_status;

int cocoon_exec_start(cocoon_box *box, const cocoon_exec_options *opts, cocoon_exec **out, cocoon_error *err);
int cocoon_exec_write(cocoon_exec *ex, const void *data, size_t len, cocoon_error *err);
int cocoon_exec_close_stdin(cocoon_exec *ex, cocoon_error *err);
int cocoon_exec_signal(cocoon_exec *ex, int signo, cocoon_error *err);
/* Runs until the command ends and all its output was delivered. */
int cocoon_exec_wait(cocoon_exec *ex, cocoon_exit_status *status, cocoon_error *err);
void cocoon_exec_free(cocoon_exec *ex);
/* start + wait */
int cocoon_box_run(cocoon_box *box, const cocoon_exec_options *opts, cocoon_exit_status *status, cocoon_error *err);
/* The shell convention: exit code, 128+signal when killed. */
int cocoon_exit_status_code(const cocoon_exit_status *status);

#ifdef __cplusplus
}
#endif
#endif
