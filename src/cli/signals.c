/* Terminal signals during `cocoon run`/`exec`: they are blocked in every thread and
 * taken by one helper thread with sigwait, which forwards them to the command in the
 * box. A second Ctrl-C within 2 s kills the command; before it runs we just remember.
 * With -t, SIGWINCH sends the new window size to the command's terminal. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cocoon_exec *current;
static int current_tty;
static int interrupted;
static uint64_t last_int_ns;
static cocoon_attach *attachment;
static int attach_sig_proxy;

/* `cocoon attach` takes the signal: 1 when it did. Called under lock. */
static int to_attachment(int sig)
{
    if (!attachment)
        return 0;
    unsigned rows, cols;
    if (sig == SIGWINCH) {
        if (cli_window_size(&rows, &cols) == 0)
            cocoon_attach_resize(attachment, rows, cols);
    } else if (attach_sig_proxy) {
        cocoon_attach_signal(attachment, sig);
    } else {
        cocoon_attach_detach(attachment);
    }
    return 1;
}

void cli_signals_set_attach(cocoon_attach *a, int sig_proxy)
{
    pthread_mutex_lock(&lock);
    attachment = a;
    attach_sig_proxy = sig_proxy;
    pthread_mutex_unlock(&lock);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fill(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGWINCH);
}

static void *forwarder(void *arg)
{
    sigset_t set;
    fill(&set);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        pthread_mutex_lock(&lock);
        if (to_attachment(sig)) {
            pthread_mutex_unlock(&lock);
            continue;
        }
        if (sig == SIGWINCH) {
            unsigned rows, cols;
            cocoon_error err;
            if (current && current_tty && cli_window_size(&rows, &cols) == 0)
                cocoon_exec_resize(current, rows, cols, &err);
            pthread_mutex_unlock(&lock);
            continue;
        }
        uint64_t now = now_ns();
        int again = sig == SIGINT && last_int_ns && now - last_int_ns < 2000000000ull;
        if (sig == SIGINT)
            last_int_ns = now;
        if (current) {
            cocoon_error err;
            cocoon_exec_signal(current, again ? SIGKILL : sig, &err);
        } else {
            if (again) {
                cli_tty_restore();
                _exit(130);
            } /* the lifeline makes the monitor clean up an ephemeral box */
            interrupted = sig;
        }
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

void cli_signals_init(void)
{
    sigset_t set;
    fill(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* An ignored signal is dropped, never pending: a shell starts background jobs with
     * SIGINT ignored, and we still want `kill -INT` to reach the command. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    /* A closed output pipe must not kill us before we clean the box up. */
    signal(SIGPIPE, SIG_IGN);
    pthread_t t;
    if (pthread_create(&t, NULL, forwarder, NULL) == 0)
        pthread_detach(t);
}

void cli_signals_set_exec(cocoon_exec *ex)
{
    pthread_mutex_lock(&lock);
    current = ex;
    pthread_mutex_unlock(&lock);
}

void cli_signals_set_tty(int tty)
{
    pthread_mutex_lock(&lock);
    current_tty = tty;
    pthread_mutex_unlock(&lock);
}

int cli_signals_interrupted(void)
{
    pthread_mutex_lock(&lock);
    int s = interrupted;
    pthread_mutex_unlock(&lock);
    return s;
}
