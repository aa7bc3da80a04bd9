/* A thread that writes into a pipe whose read end a streamed response drains: for
 * libcocoon calls that write to an fd (logs, network logs) or produce output slowly. */
#ifndef COCOON_SERVE_WORKER_H
#define COCOON_SERVE_WORKER_H

/* Starts fn(arg, write_fd) on a detached thread; the write end is closed and
 * free_arg(arg) called when fn returns. Returns the read end, or -1 with errno. A reader
 * that closes its end makes fn's next write fail (EPIPE: SIGPIPE is ignored by the
 * server), which ends fn. */
int worker_pipe(void (*fn)(void *arg, int fd), void *arg, void (*free_arg)(void *arg));
/* Starts fn(arg) on a detached thread; -1 with errno when it could not. */
int worker_start(void (*fn)(void *arg), void *arg);

#endif
