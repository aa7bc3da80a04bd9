/* `cocoon attach BOX`: our terminal on the box's main process, like `docker attach`:
 * its output from now on, our stdin when it was started with -i, our window size when
 * with -t. The detach keys (ctrl-p ctrl-q) leave it running. Without a terminal,
 * ctrl-c detaches too (docker instead forwards it with --sig-proxy, its default; here
 * that is --sig-proxy, off by default, so a ctrl-c never stops a service by surprise). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char attach_help[] =
    "usage: cocoon attach [OPTIONS] BOX\n"
    "\n"
    "Connects this terminal to BOX's main process (`cocoon run -d [-i] [-t] IMAGE CMD`): its output\n"
    "from now on; with -i our stdin goes to it, with -t our window size too. Ends when the main\n"
    "process ends (with its exit code), or on the detach keys (the main process keeps running).\n"
    "\n"
    "  --detach-keys KEYS  the keys that detach (default ctrl-p,ctrl-q; \"\": none); a key is a\n"
    "                      character or ctrl- and a letter or one of @[\\]^_, keys separated by commas\n"
    "  --no-stdin          do not forward our stdin\n"
    "  --sig-proxy         send SIGINT, SIGTERM and SIGHUP we get to the main process instead of\n"
    "                      detaching (without -t a ctrl-c detaches by default)\n"
    "\n"
    "At most 8 attachments per box; one whose terminal does not keep up has output skipped (a\n"
    "notice says how much; `cocoon logs` has all of it).\n";

enum { OPT_DETACH_KEYS = 256, OPT_NO_STDIN, OPT_SIG_PROXY, OPT_HELP };

struct attach_args {
    const char *keys;
    int no_stdin, sig_proxy;
};

static int attach_to(cocoon_box *box, int i, void *arg)
{
    (void)i;
    const struct attach_args *g = arg;
    cocoon_attach_options o;
    cocoon_attach_options_init(&o);
    o.stdin_fd = g->no_stdin ? -1 : 0;
    o.stdout_fd = 1;
    o.stderr_fd = 2;
    o.notice_fd = 2;
    o.detach_keys = g->keys;
    cli_window_size(&o.rows, &o.cols);
    cocoon_error err;
    cocoon_attach *a;
    if (cocoon_attach_start(box, &o, &a, &err) < 0)
        return cli_fail(&err);
    if (cocoon_attach_tty(a) && cocoon_attach_stdin(a) && isatty(0))
        cli_tty_raw();
    cli_signals_set_attach(a, g->sig_proxy);
    if (cli_signals_interrupted()) /* a Ctrl-C while we connected: as if it came now */
        g->sig_proxy ? cocoon_attach_signal(a, cli_signals_interrupted()) : cocoon_attach_detach(a);
    cocoon_attach_result res;
    int rc = cocoon_attach_wait(a, &res, &err);
    cli_signals_set_attach(NULL, 0);
    cli_tty_restore();
    cocoon_attach_free(a);
    if (rc < 0)
        return cli_fail(&err);
    const char *name = cocoon_box_name(box)[0] ? cocoon_box_name(box) : cocoon_box_id(box);
    if (res.detached) {
        fprintf(stderr, "\r\ncocoon: detached from %s (its main process keeps running)\r\n", name);
        return 0;
    }
    if (res.signal)
        fprintf(stderr, "cocoon: the main process of %s was killed by signal %d\n", name, res.signal);
    else
        fprintf(stderr, "cocoon: the main process of %s exited with code %d\n", name, res.exit_code);
    return res.exit_code & 0xff;
}

int cmd_attach(int argc, char **argv)
{
    static const struct option longs[] = {
        {"detach-keys", required_argument, NULL, OPT_DETACH_KEYS},
        {"no-stdin", no_argument, NULL, OPT_NO_STDIN},
        {"sig-proxy", no_argument, NULL, OPT_SIG_PROXY},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct attach_args g = {0};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case OPT_HELP: fputs(attach_help, stdout); return 0;
        case OPT_DETACH_KEYS: g.keys = optarg; break;
        case OPT_NO_STDIN: g.no_stdin = 1; break;
        case OPT_SIG_PROXY: g.sig_proxy = 1; break;
        default: return cli_usage_error("attach", "unknown or incomplete option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("attach", optind >= argc ? "which box?" : "one box at a time");
    cli_signals_init();
    return cli_each_box(argv + optind, 1, attach_to, &g);
}
