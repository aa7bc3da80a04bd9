/* Running one command in a box with the CLI's stdio: output goes straight to fds 1
 * and 2 as it is produced, stdin is forwarded when it is not a terminal (or with -i),
 * and the exit code follows the shell: code, 128+signal, 124 on --timeout. With -t
 * the local terminal is raw while the command runs (restored on every way out). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

static pthread_mutex_t tty_lock = PTHREAD_MUTEX_INITIALIZER;
static struct termios saved_tio;
static int raw_on, atexit_done;

void cli_tty_restore(void)
{
    pthread_mutex_lock(&tty_lock);
    if (raw_on) {
        tcsetattr(0, TCSANOW, &saved_tio);
        raw_on = 0;
    }
    pthread_mutex_unlock(&tty_lock);
}

static void raw_mode(int on)
{
    if (!on) {
        cli_tty_restore();
        return;
    }
    pthread_mutex_lock(&tty_lock);
    if (!atexit_done) {
        atexit(cli_tty_restore); /* exit() from anywhere still gives the terminal back */
        atexit_done = 1;
    }
    if (!raw_on && tcgetattr(0, &saved_tio) == 0) {
        struct termios t = saved_tio;
        /* Every key goes to the guest as a byte: Ctrl-C is the guest terminal's
         * interrupt character, not a signal to us. */
        cfmakeraw(&t);
        if (tcsetattr(0, TCSANOW, &t) == 0)
            raw_on = 1;
    }
    pthread_mutex_unlock(&tty_lock);
}

void cli_tty_raw(void) { raw_mode(1); }

int cli_window_size(unsigned *rows, unsigned *cols)
{
    struct winsize ws;
    if ((ioctl(0, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0) && ws.ws_row && ws.ws_col) {
        *rows = ws.ws_row;
        *cols = ws.ws_col;
        return 0;
    }
    return -1;
}

void cli_exec_options(const struct cli_cmd *c, cocoon_exec_options *o)
{
    cocoon_exec_options_init(o);
    o->argv = c->argv;
    o->env = c->env;
    o->cwd = c->workdir;
    o->user = c->user;
    o->timeout_ms = c->timeout_ms;
}

int cli_exec_in_box(cocoon_box *box, const struct cli_cmd *c)
{
    cocoon_exec_options o;
    cli_exec_options(c, &o);
    o.tty = c->tty;
    int in_tty = isatty(0);
    if (c->tty && c->interactive && !in_tty) {
        cli_error("the input device is not a TTY: -it needs a terminal on stdin (drop -t to pipe data in)");
        return CLI_EXIT_RUNTIME;
    }
    /* A terminal is forwarded with -i only (docker's rule); anything else always. */
    o.stdin_fd = c->interactive || !in_tty ? 0 : COCOON_STDIN_NONE;
    o.stdout_fd = 1;
    o.stderr_fd = 2;
    if (c->tty)
        cli_window_size(&o.rows, &o.cols);
    cocoon_error err;
    cocoon_exec *ex;
    if (cocoon_exec_start(box, &o, &ex, &err) < 0)
        return cli_fail(&err);
    if (c->tty && o.stdin_fd == 0 && in_tty)
        raw_mode(1);
    cli_signals_set_tty(c->tty);
    cli_signals_set_exec(ex);
    cocoon_exit_status st;
    int rc = cocoon_exec_wait(ex, &st, &err);
    cli_signals_set_exec(NULL);
    raw_mode(0);
    cocoon_exec_free(ex);
    if (rc < 0) {
        if (err.code == COCOON_E_EXEC) {
            cli_error("%s", err.message);
            /* like a shell (and docker): 127 not found, 126 found but not runnable */
            return strstr(err.message, "No such file") ? 127 : 126;
        }
        return cli_fail(&err);
    }
    if (st.timed_out) {
        cli_error("command timed out after %s s (killed)", c->timeout_text ? c->timeout_text : "?");
        return CLI_EXIT_TIMEOUT;
    }
    return cocoon_exit_status_code(&st) & 0xff;
}
