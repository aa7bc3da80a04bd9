/* Running one command in a box with the CLI's stdio: output goes straight to fds 1
 * and 2 as it is produced, stdin is forwarded when it is not a terminal (or with -i),
 * and the exit code follows the shell: code, 128+signal, 124 on --timeout. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

static struct termios saved_tio;
static int raw_on;

static void raw_mode(int on)
{
    if (on && !raw_on && tcgetattr(0, &saved_tio) == 0) {
        struct termios t = saved_tio;
        cfmakeraw(&t);
        if (tcsetattr(0, TCSANOW, &t) == 0)
            raw_on = 1;
    } else if (!on && raw_on) {
        tcsetattr(0, TCSANOW, &saved_tio);
        raw_on = 0;
    }
}

int cli_exec_in_box(cocoon_box *box, const struct cli_cmd *c)
{
    cocoon_exec_options o;
    cocoon_exec_options_init(&o);
    o.argv = c->argv;
    o.env = c->env;
    o.cwd = c->workdir;
    o.user = c->user;
    o.timeout_ms = c->timeout_ms;
    o.tty = c->tty;
    o.stdin_fd = c->interactive || !isatty(0) ? 0 : COCOON_STDIN_NONE;
    o.stdout_fd = 1;
    o.stderr_fd = 2;
    if (c->tty) {
        struct winsize ws;
        if (ioctl(1, TIOCGWINSZ, &ws) == 0 || ioctl(0, TIOCGWINSZ, &ws) == 0) {
            o.rows = ws.ws_row;
            o.cols = ws.ws_col;
        }
    }
    cocoon_error err;
    cocoon_exec *ex;
    if (cocoon_exec_start(box, &o, &ex, &err) < 0)
        return cli_fail(&err);
    if (c->tty && o.stdin_fd == 0 && isatty(0))
        raw_mode(1);
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
