/* The main process of a box, seen from libcocoon: main.json written for the monitor
 * (cocoon_box_set_main) and main.state.json read back (cocoon_box_main_status); the
 * monitor's side is src/monitor/mainproc.c, the files' format src/boxcfg/mainspec.c. */
#include "lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "boxcfg/mainspec.h"
#include "util/util.h"

/* The monitor sends the command as one EXEC: checked here, so that a start never fails
 * on it. */
static int fits_one_exec(const cocoon_command *cmd, cocoon_error *err)
{
    cocoon_exec_options o;
    cocoon_exec_options_init(&o);
    o.argv = (const char **)cmd->argv;
    o.env = (const char **)cmd->env;
    o.cwd = cmd->cwd;
    o.user = cmd->user;
    size_t argc, envc;
    if (lib_exec_validate(&o, &argc, &envc, err) < 0)
        return -1;
    struct proto_exec ex = {.argv = cmd->argv, .argc = argc, .env = cmd->env, .envc = envc};
    snprintf(ex.cwd, sizeof(ex.cwd), "%s", cmd->cwd ? cmd->cwd : "");
    snprintf(ex.user, sizeof(ex.user), "%s", cmd->user ? cmd->user : "");
    struct proto_writer *w = malloc(sizeof(*w));
    if (!w)
        return lib_err(err, COCOON_E_NOMEM, "out of memory");
    size_t len = proto_encode_exec(w, 1, &ex);
    free(w);
    if (!len)
        return lib_err(err, COCOON_E_INVALID,
                       "the main process's arguments and environment are larger than one "
                       "message allows (%u bytes)",
                       (unsigned)PROTO_MAX_PAYLOAD);
    return 0;
}

int cocoon_box_set_main(cocoon_box *box, const cocoon_command *cmd, const char *restart, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_set_main: NULL box");
    struct main_spec spec = {0};
    char why[512];
    if (main_restart_parse(restart, &spec.restart, &spec.max_retries, why, sizeof(why)) < 0)
        return lib_err(err, COCOON_E_INVALID, "%s", why);
    if (cmd && (!cmd->argv || !cmd->argv[0]))
        return lib_err(err, COCOON_E_INVALID, "the main process needs a command");
    if (!cmd && spec.restart != MAIN_RESTART_NO)
        return lib_err(err, COCOON_E_INVALID, "a restart policy needs a main process");
    size_t argc = 0, envc = 0;
    while (cmd && cmd->argv[argc])
        argc++;
    while (cmd && cmd->env && cmd->env[envc])
        envc++;
    if (argc > MAIN_ARGV_MAX || envc > MAIN_ENV_MAX)
        return lib_err(err, COCOON_E_INVALID, "the main process has more than %u arguments or variables",
                       MAIN_ARGV_MAX);
    if (cmd && ((cmd->cwd && strlen(cmd->cwd) >= sizeof(spec.workdir)) ||
                (cmd->user && strlen(cmd->user) >= sizeof(spec.user))))
        return lib_err(err, COCOON_E_INVALID, "the main process's working directory or user is too long");
    if (cmd && fits_one_exec(cmd, err) < 0)
        return -1;
    int dirfd = lib_box_dirfd(box, err);
    if (dirfd < 0)
        return -1;
    int rc = 0;
    if (!cmd) {
        if (unlinkat(dirfd, "main.json", 0) < 0 && errno != ENOENT)
            rc = lib_err(err, COCOON_E_IO, "cannot remove %s/main.json: %s", box->dir, strerror(errno));
    } else {
        static char *no_env[] = {NULL};
        spec.argv = cmd->argv;
        spec.env = cmd->env ? cmd->env : no_env;
        snprintf(spec.workdir, sizeof(spec.workdir), "%s", cmd->cwd ? cmd->cwd : "");
        snprintf(spec.user, sizeof(spec.user), "%s", cmd->user ? cmd->user : "");
        if (main_spec_write(dirfd, &spec, why, sizeof(why)) < 0)
            rc = lib_err(err, COCOON_E_IO, "box %s: %s", box->id, why);
    }
    close(dirfd);
    return rc;
}

void cocoon_main_status_init(cocoon_main_status *st)
{
    memset(st, 0, sizeof(*st));
    st->size = sizeof(*st);
    st->exit_code = -1;
}

static void copy_state(const struct main_state *st, cocoon_main_status *out)
{
    snprintf(out->state, sizeof(out->state), "%s", st->state);
    snprintf(out->error, sizeof(out->error), "%s", st->error);
    out->pid = st->pid;
    out->exit_code = st->exit_code;
    out->signal = st->signal;
    out->started_at = st->started_at;
    out->finished_at = st->finished_at;
    out->next_restart_ms = st->next_restart_ms;
    out->restarts = st->restarts;
}

/* What the monitor recorded, made true for a monitor that is gone: a run it did not
 * see end (the monitor was killed) counts as stopped. */
static int fill(cocoon_box *box, int dirfd, cocoon_main_status *out, cocoon_error *err)
{
    struct main_spec spec;
    char why[512];
    int rc = main_spec_read(dirfd, &spec, why, sizeof(why));
    if (rc <= 0)
        return rc < 0 ? lib_err(err, COCOON_E_IO, "box %s: %s", box->id, why) : 0;
    out->present = 1;
    main_restart_format(spec.restart, spec.max_retries, out->restart, sizeof(out->restart));
    util_join_words(out->command, sizeof(out->command), spec.argv, MAIN_ARGV_MAX);
    main_spec_free(&spec);
    struct main_state st;
    rc = main_state_read(dirfd, &st, why, sizeof(why));
    if (rc < 0)
        return lib_err(err, COCOON_E_IO, "box %s: %s", box->id, why);
    if (rc == 0)
        return 0;
    main_state_settle(&st, lib_box_running(box->dir, NULL));
    copy_state(&st, out);
    return 0;
}

/* Hands full to a caller's struct of st->size bytes (an older caller's is smaller). */
static void give(cocoon_main_status *st, cocoon_main_status *full)
{
    size_t n = st->size < sizeof(*full) ? st->size : sizeof(*full);
    full->size = st->size;
    memcpy(st, full, n);
}

static int fill_main(cocoon_box *box, int dirfd, void *full, cocoon_error *err)
{
    cocoon_main_status_init(full);
    return fill(box, dirfd, full, err);
}

int cocoon_box_main_status(cocoon_box *box, cocoon_main_status *st, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !st)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_main_status: NULL argument");
    return lib_status_get(st, sizeof(*st), "cocoon_main_status", fill_main, box, err);
}

int cocoon_box_exec_status(cocoon_box *box, int id, cocoon_main_status *st, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box || !st)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_exec_status: NULL argument");
    if (st->size == 0 || st->size > LIB_OPTIONS_MAX_SIZE)
        return lib_err(err, COCOON_E_INVALID, "cocoon_main_status: set its size with cocoon_main_status_init");
    char name[48], why[512];
    snprintf(name, sizeof(name), "execs/%d.json", id);
    int dirfd = lib_box_dirfd(box, err);
    if (dirfd < 0)
        return -1;
    struct main_state rec;
    int rc = id > 0 ? main_state_read_as(dirfd, name, &rec, why, sizeof(why)) : 0;
    close(dirfd);
    if (rc < 0)
        return lib_err(err, COCOON_E_IO, "box %s: %s", box->id, why);
    if (rc == 0)
        return lib_err(err, COCOON_E_NOT_FOUND,
                       "box %s: no detached exec %d (their records are kept until the box's next start)", box->id, id);
    cocoon_main_status full;
    cocoon_main_status_init(&full);
    full.present = 1;
    snprintf(full.restart, sizeof(full.restart), "no");
    main_state_settle(&rec, lib_box_running(box->dir, NULL));
    copy_state(&rec, &full);
    give(st, &full);
    return 0;
}

int cocoon_box_set_main_stdio(cocoon_box *box, int tty, int open_stdin, cocoon_error *err)
{
    lib_err_clear(err);
    if (!box)
        return lib_err(err, COCOON_E_INVALID, "cocoon_box_set_main_stdio: NULL box");
    int dirfd = lib_box_dirfd(box, err);
    if (dirfd < 0)
        return -1;
    struct main_spec spec;
    char why[512];
    int rc = main_spec_read(dirfd, &spec, why, sizeof(why));
    if (rc <= 0) {
        close(dirfd);
        return rc < 0 ? lib_err(err, COCOON_E_IO, "box %s: %s", box->id, why)
                      : lib_err(err, COCOON_E_STATE, "box %s has no main process to give a terminal or stdin", box->id);
    }
    spec.tty = tty != 0;
    spec.open_stdin = open_stdin != 0;
    rc =
        main_spec_write(dirfd, &spec, why, sizeof(why)) < 0 ? lib_err(err, COCOON_E_IO, "box %s: %s", box->id, why) : 0;
    main_spec_free(&spec);
    close(dirfd);
    return rc;
}
