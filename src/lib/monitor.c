/* Running a box: spawn cocoon-vmm detached (double fork, only the ready/lifeline fds
 * open), wait for its one-line ready report, connect to its control socket, and stop
 * it with SHUTDOWN, falling back to SIGKILL of the process proven to hold the box's
 * monitor lock (monitor_lock.c) when it does not go. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "boxcfg/mainspec.h"
#include "util/util.h"

static uint64_t now_ms(void) { return util_now_ns(CLOCK_MONOTONIC) / 1000000u; }

void lib_console_tail(const cocoon_box *box, char *out, size_t cap)
{
    char path[LIB_PATH_MAX];
    out[0] = 0;
    if (lib_path(path, sizeof(path), "%s/console.log", box->dir) == 0)
        util_tail_lines(path, 5, " | ", out, cap);
}

void lib_stop_reason(const cocoon_box *box, char *out, size_t cap)
{
    static const char key[] = "stopping the box: ";
    char path[LIB_PATH_MAX], buf[16384];
    out[0] = 0;
    if (lib_path(path, sizeof(path), "%s/vmm.log", box->dir) < 0 || util_read_tail(path, buf, sizeof(buf)) <= 0)
        return;
    /* Only this run's lines: after the monitor's last start (vmm.log is appended). */
    const char *from = buf, *why = NULL;
    for (const char *p = buf; (p = strstr(p, " starting for ")) != NULL; p++)
        from = p;
    for (const char *p = from; (p = strstr(p, key)) != NULL; p += sizeof(key) - 1)
        why = p + sizeof(key) - 1;
    if (why)
        util_escape_text(out, cap, why, strcspn(why, "\n"));
}

static void file_tail(const cocoon_box *box, const char *name, char *out, size_t cap)
{
    char path[LIB_PATH_MAX];
    out[0] = 0;
    if (lib_path(path, sizeof(path), "%s/%s", box->dir, name) == 0)
        util_tail_lines(path, 5, " | ", out, cap);
}

/* Kills the box's monitor (QEMU dies with it through PDEATHSIG) when it is proven to
 * be one, and waits until its lock is free. -1 when a monitor still holds it. */
static int kill_monitor(cocoon_box *box)
{
    struct lib_monitor m;
    int state = lib_monitor_probe(box->dir, &m);
    if (state == LIB_MON_STARTING) {
        /* It has the lock but has not written its pid yet: give it a moment. */
        lib_monitor_done(&m);
        for (int i = 0; i < 100 && (state = lib_monitor_probe(box->dir, &m)) == LIB_MON_STARTING; i++) {
            lib_monitor_done(&m);
            lib_sleep_ms(20);
        }
    }
    int rc = state == LIB_MON_STOPPED ? 0 : lib_monitor_kill(box->dir, &m, 4000);
    lib_monitor_done(&m);
    return rc;
}

/* ---- control connection ---- */

static int read_frame_blocking(cocoon_box *box, uint64_t deadline, struct proto_header *h, const uint8_t **payload,
                               cocoon_error *err)
{
    for (;;) {
        int rc = proto_conn_next(&box->conn, h, payload);
        if (rc == PROTO_OK)
            return 0;
        if (rc != PROTO_NEED_MORE)
            return lib_err(err, COCOON_E_PROTOCOL, "box %s: bad frame from the monitor: %s", box->id,
                           proto_strerror(rc));
        uint64_t now = now_ms();
        if (now >= deadline)
            return lib_err(err, COCOON_E_VMM, "box %s: the monitor did not answer on its control socket", box->id);
        struct pollfd p = {box->ctl_fd, POLLIN, 0};
        if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
            return lib_err(err, COCOON_E_IO, "poll: %s", strerror(errno));
        long n = proto_conn_read(&box->conn);
        if (n == 0)
            return lib_err(err, COCOON_E_VMM, "box %s: the monitor closed its control socket", box->id);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return lib_err(err, COCOON_E_IO, "box %s: control socket: %s", box->id, strerror(errno));
    }
}

int lib_ctl_hello(cocoon_box *box, const struct proto_header *h, const uint8_t *p, struct proto_vmm_hello *hello,
                  cocoon_error *err)
{
    if (h->type == PROTO_ERROR && h->stream == 0) {
        struct proto_error_msg e;
        if (proto_decode_error(p, h->len, &e) != PROTO_OK)
            snprintf(e.message, sizeof(e.message), "a malformed ERROR");
        return lib_err(err, COCOON_E_VMM, "box %s: the monitor refused the connection: %s", box->id, e.message);
    }
    if (h->type != PROTO_VMM_HELLO || proto_decode_vmm_hello(p, h->len, hello) != PROTO_OK)
        return lib_err(err, COCOON_E_PROTOCOL, "box %s: the monitor sent %s instead of a valid VMM_HELLO", box->id,
                       proto_type_name(h->type));
    return 0;
}

int lib_ctl_socket(cocoon_box *box, cocoon_error *err)
{
    int dirfd = open(box->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 && errno == ENOENT)
        return lib_err(err, COCOON_E_NOT_FOUND, "box %s was removed (by another command)", box->id);
    if (dirfd < 0)
        return lib_err(err, COCOON_E_NOT_FOUND, "box %s: %s: %s", box->id, box->dir, strerror(errno));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = -1;
    if (util_unix_path(dirfd, "ctl.sock", sa.sun_path, sizeof(sa.sun_path)) == 0)
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = -1, e = 0;
    if (fd >= 0) {
        /* connect() on a non-blocking unix socket fails with EAGAIN only when the
         * backlog is full; retry briefly then. */
        for (int i = 0; i < 50; i++) {
            rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
            if (rc == 0 || errno != EAGAIN)
                break;
            lib_sleep_ms(20);
        }
        e = errno;
    }
    close(dirfd);
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        /* No monitor: say what to do. The lock held but no socket: a monitor before
         * it listens or once its stop began (or another command at work on the box). */
        if (!lib_box_running(box->dir, NULL))
            return lib_err(err, COCOON_E_STATE, "box %s is not running (start it with `cocoon start %s`)", box->id,
                           box->name[0] ? box->name : box->id);
        return lib_err(err, COCOON_E_STATE,
                       "box %s is starting or stopping (its monitor takes no connections now: %s): try again", box->id,
                       strerror(e));
    }
    return fd;
}

int lib_ctl_connect(cocoon_box *box, cocoon_error *err)
{
    if (box->conn_ready)
        return 0;
    int fd = lib_ctl_socket(box, err);
    if (fd < 0)
        return -1;
    if (proto_conn_init(&box->conn, fd, 0) < 0) {
        close(fd);
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    }
    box->ctl_fd = fd;
    box->conn_eof = 0;
    struct proto_header h;
    const uint8_t *payload;
    if (read_frame_blocking(box, now_ms() + 10000, &h, &payload, err) < 0)
        goto fail;
    if (lib_ctl_hello(box, &h, payload, &box->hello, err) < 0)
        goto fail;
    if (!box->ready_ms)
        box->ready_ms = (int)box->hello.ready_ms;
    box->conn_ready = 1;
    return 0;
fail:
    proto_conn_free(&box->conn);
    close(fd);
    box->ctl_fd = -1;
    return -1;
}

void lib_ctl_close(cocoon_box *box)
{
    if (!box->conn_ready)
        return;
    proto_conn_free(&box->conn);
    close(box->ctl_fd);
    box->ctl_fd = -1;
    box->conn_ready = 0;
}

int lib_ctl_send_locked(cocoon_box *box, const void *frame, size_t len, cocoon_error *err)
{
    if (!box->conn_ready || box->conn_eof)
        return lib_err(err, COCOON_E_VMM, "box %s: the monitor is gone (control connection closed)", box->id);
    if (len == 0)
        return lib_err(err, COCOON_E_INVALID, "message too large for one frame");
    if (proto_conn_send(&box->conn, frame, len) < 0)
        return lib_err(err, COCOON_E_VMM, "box %s: cannot send to the monitor: %s", box->id,
                       errno == ENOBUFS ? "too much unsent data queued" : strerror(errno));
    return 0;
}

int lib_ctl_send(cocoon_box *box, const void *frame, size_t len, cocoon_error *err)
{
    pthread_mutex_lock(&box->lock);
    int rc = lib_ctl_send_locked(box, frame, len, err);
    pthread_mutex_unlock(&box->lock);
    return rc;
}

/* ---- start ---- */

static void child_exec(const char *vmm, char *const argv[], char *const envp[], int ready_w, int life_r, int sec_r,
                       int devnull)
{
    /* Only async-signal-safe calls here: the caller may be multi-threaded. */
    if (setsid() < 0) {
        /* not fatal */
    }
    pid_t p = fork();
    if (p != 0)
        _exit(p < 0 ? 1 : 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &dfl, NULL);
    int a = fcntl(ready_w, F_DUPFD, 10);
    int b = life_r >= 0 ? fcntl(life_r, F_DUPFD, 10) : -1;
    int sr = sec_r >= 0 ? fcntl(sec_r, F_DUPFD, 10) : -1;
    int n = fcntl(devnull, F_DUPFD, 10);
    if (a < 0 || n < 0 || (life_r >= 0 && b < 0) || (sec_r >= 0 && sr < 0))
        _exit(126);
    dup2(n, 0);
    dup2(n, 1);
    dup2(n, 2);
    dup2(a, 3);
    dup2(b >= 0 ? b : n, 4);
    if (sr >= 0)
        dup2(sr, 5); /* the secrets' pipe: --secrets-fd 5 */
    unsigned first = sr >= 0 ? 6 : 5;
    if (syscall(SYS_close_range, first, ~0u, 0) < 0)
        for (int fd = (int)first; fd < 4096; fd++)
            close(fd);
    if (envp)
        execve(vmm, argv, envp); /* without the secrets' variables */
    else
        execv(vmm, argv);
    static const char msg[] = "error cannot execute cocoon-vmm\n";
    ssize_t w = write(3, msg, sizeof(msg) - 1);
    (void)w;
    _exit(127);
}

/* Reads the monitor's single ready line. 1 with the line, 0 at EOF without one, -1 on timeout. */
static int read_ready_line(int fd, uint64_t deadline, char *line, size_t cap)
{
    size_t len = 0;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int pr = poll(&p, 1, (int)(deadline - now));
        if (pr < 0 && errno != EINTR)
            return 0;
        if (pr <= 0)
            continue;
        ssize_t n = read(fd, line + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return len > 0 ? (line[len] = 0, 1) : 0;
        len += (size_t)n;
        line[len] = 0;
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = 0;
            return 1;
        }
        if (len + 1 >= cap)
            return 1;
    }
}

/* A box whose main process ended (a `true`, a command that is not there) stops on its
 * own, maybe before we connect: that start succeeded, and the main process's record
 * (written by this boot's monitor, which removed the last boot's) says how it ended. */
static int main_process_ended(cocoon_box *box)
{
    struct main_state st;
    char why[256];
    int dirfd = open(box->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return 0;
    int rc = main_state_read(dirfd, &st, why, sizeof(why));
    close(dirfd);
    return rc > 0 && !strcmp(st.state, "exited");
}

int cocoon_box_start(cocoon_box *box, cocoon_error *err) { return cocoon_box_start_flags(box, 0, err); }

int cocoon_box_start_flags(cocoon_box *box, unsigned flags, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_start: NULL box");
    if ((flags & COCOON_START_ATTACHED) && (flags & COCOON_START_DETACHED))
        return lib_err(err, COCOON_E_INVALID, "a box cannot be started both attached and detached");
    if (box->problem[0])
        return lib_err(err, COCOON_E_STATE, "box %s cannot start: %s; remove it (cocoon rm %s)", box->id, box->problem,
                       box->id);
    int attach = (flags & COCOON_START_ATTACHED) || (box->ephemeral && !(flags & COCOON_START_DETACHED));
    if (lib_box_running(box->dir, NULL))
        return lib_err(err, COCOON_E_STATE, "box %s is already running", box->id);
    if (access(box->vmm_path, X_OK) < 0)
        return lib_err(err, COCOON_E_NOT_FOUND,
                       "the box monitor cocoon-vmm is not at %s (%s): run `make` or set COCOON_VMM", box->vmm_path,
                       strerror(errno));
    lib_ctl_close(box);
    if (box->lifeline_fd >= 0) {
        close(box->lifeline_fd);
        box->lifeline_fd = -1;
    }

    int ready[2], life[2] = {-1, -1};
    if (pipe2(ready, O_CLOEXEC) < 0)
        return lib_err(err, COCOON_E_IO, "pipe: %s", strerror(errno));
    if (attach && pipe2(life, O_CLOEXEC) < 0) {
        close(ready[0]);
        close(ready[1]);
        return lib_err(err, COCOON_E_IO, "pipe: %s", strerror(errno));
    }
    int sec = -1;
    char **envp = NULL;
    if (lib_secrets_pipe(box, &sec, &envp, err) < 0) {
        close(ready[0]);
        close(ready[1]);
        if (life[0] >= 0) {
            close(life[0]);
            close(life[1]);
        }
        return -1;
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    char *argv[10] = {box->vmm_path, "--box-dir", box->dir, "--ready-fd", "3"};
    int argc = 5;
    if (attach) {
        argv[argc++] = "--lifeline-fd";
        argv[argc++] = "4";
    }
    if (sec >= 0) {
        argv[argc++] = "--secrets-fd";
        argv[argc++] = "5";
    }
    argv[argc] = NULL;
    pid_t pid = devnull >= 0 ? fork() : -1;
    if (pid == 0)
        child_exec(box->vmm_path, argv, envp, ready[1], life[0], sec, devnull);
    int fork_errno = errno;
    lib_secrets_env_free(envp);
    if (sec >= 0)
        close(sec);
    close(ready[1]);
    if (life[0] >= 0)
        close(life[0]);
    if (devnull >= 0)
        close(devnull);
    if (pid < 0) {
        close(ready[0]);
        if (life[1] >= 0)
            close(life[1]);
        return lib_err(err, COCOON_E_IO, "cannot start cocoon-vmm: %s", strerror(fork_errno));
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    util_test_point("START_SPAWNED");
    box->lifeline_fd = life[1]; /* CLOEXEC: no program we run keeps the box alive */

    char line[2048];
    uint64_t deadline = now_ms() + box->boot_timeout_ms + 15000;
    int got = read_ready_line(ready[0], deadline, line, sizeof(line));
    close(ready[0]);
    int rc = 0;
    if (got < 0) {
        kill_monitor(box);
        char tail[1024];
        lib_console_tail(box, tail, sizeof(tail));
        rc = lib_err(err, COCOON_E_BOOT, "box %s did not become ready within %u s (console: %s)", box->id,
                     box->boot_timeout_ms / 1000 + 15, tail[0] ? tail : "empty");
    } else if (got == 0) {
        char tail[1024];
        file_tail(box, "vmm.log", tail, sizeof(tail));
        rc = lib_err(err, COCOON_E_VMM, "box %s: cocoon-vmm exited before the box was ready (vmm.log: %s)", box->id,
                     tail[0] ? tail : "empty");
    } else if (!strncmp(line, "ok", 2)) {
        box->ready_ms = atoi(line + 2);
        util_test_point("START_READY");
        /* An rm killed between deleting the row and moving the directory aside lets a
         * monitor that waited for the box lock run a box nobody lists: it is stopped
         * here, and the directory left is garbage the collector takes. */
        cocoon_error row_err;
        if (state_box_get(box->rt->state, box->id, NULL, &row_err) < 0 && row_err.code == COCOON_E_NOT_FOUND) {
            kill_monitor(box);
            rc = lib_err(err, COCOON_E_NOT_FOUND, "box %s was removed (by another command) while it was starting",
                         box->id);
        }
    } else {
        const char *msg = !strncmp(line, "error ", 6) ? line + 6 : line;
        /* Another start won the race for the box lock: that monitor runs the box. */
        if (strstr(msg, "is already running"))
            rc = lib_err(err, COCOON_E_STATE, "box %s is already running (started by another caller)", box->id);
        else
            rc = lib_err(err, COCOON_E_BOOT, "box %s failed to boot: %s", box->id, msg);
    }
    cocoon_error why;
    if (rc == 0 && lib_ctl_connect(box, &why) < 0 && !main_process_ended(box)) {
        /* Once ready, a monitor takes connections until its stop begins. */
        if (why.code == COCOON_E_STATE || !lib_box_running(box->dir, NULL))
            rc = lib_err(err, COCOON_E_STATE,
                         "box %s started, but stopped again before it could be reached (stopped by another command, "
                         "or its monitor was killed)",
                         box->id);
        else
            rc = lib_err(err, COCOON_E_STATE, "box %s started, but cannot be reached: %s", box->id, why.message);
    }
    if (rc < 0 && !util_file_exists(box->dir))
        rc = lib_err(err, COCOON_E_NOT_FOUND, "box %s was removed (by another command) while it was starting", box->id);
    if (rc < 0 && box->lifeline_fd >= 0) {
        close(box->lifeline_fd);
        box->lifeline_fd = -1;
    }
    if (rc == 0)
        lib_autostart_mark(box);
    return rc;
}

int cocoon_box_is_running(cocoon_box *box)
{
    if (!box || !lib_box_running(box->dir, NULL))
        return 0;
    if (box->conn_ready && !box->conn_eof)
        return 1;
    int dirfd = open(box->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int ok = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && util_unix_path(dirfd, "ctl.sock", sa.sun_path, sizeof(sa.sun_path)) == 0)
        ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    close(dirfd);
    return ok;
}

/* ---- stop ---- */

/* Takes the right to read the control connection (see exec.c's pump). A thread waiting
 * for an exec gives the pump back every PUMP_POLL_MS and would take it again at once,
 * before this thread wakes: pump_wanted makes it step aside (a stop used to wait for
 * such a waiter's command to end). */
static void pump_acquire(cocoon_box *box)
{
    pthread_mutex_lock(&box->lock);
    box->pump_wanted++;
    while (box->pumping)
        pthread_cond_wait(&box->cond, &box->lock);
    box->pump_wanted--;
    box->pumping = 1;
    pthread_mutex_unlock(&box->lock);
}

static void pump_release(cocoon_box *box)
{
    pthread_mutex_lock(&box->lock);
    box->pumping = 0;
    pthread_cond_broadcast(&box->cond);
    pthread_mutex_unlock(&box->lock);
}

/* Reads and drops everything until the monitor closes the socket or the deadline. */
static int wait_eof(cocoon_box *box, uint64_t deadline)
{
    while (!box->conn_eof) {
        struct proto_header h;
        const uint8_t *payload;
        int rc;
        while ((rc = proto_conn_next(&box->conn, &h, &payload)) == PROTO_OK)
            ;
        if (rc != PROTO_NEED_MORE)
            return -1;
        uint64_t now = now_ms();
        if (now >= deadline)
            return -1;
        pthread_mutex_lock(&box->lock);
        short ev = POLLIN | (proto_conn_pending(&box->conn) ? POLLOUT : 0);
        pthread_mutex_unlock(&box->lock);
        struct pollfd p = {box->ctl_fd, ev, 0};
        int wait = (int)(deadline - now);
        if (poll(&p, 1, wait > 200 ? 200 : wait) < 0 && errno != EINTR)
            return -1;
        if (p.revents & POLLOUT) {
            pthread_mutex_lock(&box->lock);
            proto_conn_flush(&box->conn);
            pthread_mutex_unlock(&box->lock);
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            long n = proto_conn_read(&box->conn);
            if (n == 0)
                box->conn_eof = 1;
            else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                box->conn_eof = 1;
        }
    }
    return 0;
}

int cocoon_box_stop(cocoon_box *box, unsigned timeout_ms, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_stop: NULL box");
    if (lib_box_stop_only(box, timeout_ms, err) < 0)
        return -1;
    if (!box->ephemeral)
        return 0;
    return lib_box_destroy(box, err);
}

int cocoon_box_restart(cocoon_box *box, unsigned timeout_ms, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_restart: NULL box");
    if (lib_box_stop_only(box, timeout_ms, err) < 0)
        return -1;
    return cocoon_box_start(box, err);
}

int lib_box_stop_only(cocoon_box *box, unsigned timeout_ms, cocoon_error *err)
{
    lib_autostart_clear(box); /* stopped by a user: not started again when the host comes back */
    if (!timeout_ms)
        timeout_ms = 10000;
    if (lib_box_running(box->dir, NULL) && (box->conn_ready || lib_ctl_connect(box, NULL) == 0)) {
        pump_acquire(box);
        struct proto_writer *w = malloc(sizeof(*w));
        size_t n = w ? proto_encode_shutdown(w, 0, timeout_ms) : 0;
        int sent = n && lib_ctl_send(box, w->buf, n, NULL) == 0;
        free(w);
        if (sent) {
            util_test_point("STOP_SENT");
            wait_eof(box, now_ms() + timeout_ms + 5000);
        }
        pump_release(box);
        /* After EOF the monitor only removes its files and exits: give it a moment. */
        lib_monitor_wait_gone(box->dir, 2000);
    }
    int rc = kill_monitor(box);
    lib_ctl_close(box);
    if (box->lifeline_fd >= 0) {
        close(box->lifeline_fd);
        box->lifeline_fd = -1;
    }
    if (rc < 0)
        return lib_err(err, COCOON_E_VMM,
                       "box %s: a process holds its monitor lock (%s/vmm.pid) and did not stop; it was not killed "
                       "because it could not be proven to be this box's monitor",
                       box->id, box->dir);
    return 0;
}
