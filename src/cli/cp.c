/* `cocoon cp SRC DEST`: copies files and directories between the host and a running
 * box, one side written BOX:PATH (like `docker cp`), or streams a tar archive in from
 * stdin (`-` as SRC) or out to stdout (`-` as DEST). A thin layer over
 * cocoon_copy_to_box / cocoon_copy_from_box and cocoon_tar_to_box / cocoon_tar_from_box. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char cp_usage[] = "usage: cocoon cp HOST_PATH BOX:PATH\n"
                               "       cocoon cp BOX:PATH HOST_PATH\n"
                               "       cocoon cp [--no-overwrite] - BOX:DIR    (a tar archive from stdin)\n"
                               "       cocoon cp [-L] BOX:PATH -                (a tar archive to stdout)\n"
                               "\n"
                               "Copies a file or directory tree between the host and a running box, keeping\n"
                               "modes, modification times and symlinks (symlinks are copied, not followed).\n"
                               "When the destination is an existing directory the source goes inside it;\n"
                               "otherwise it is created under the destination's name. Guest paths stay inside\n"
                               "the guest's root; files arrive owned by root in the box and by you on the host.\n"
                               "\n"
                               "From a box, everything must come under the name asked for, or nothing is\n"
                               "written; symlinks pointing outside the copy, devices and FIFOs are skipped;\n"
                               "setuid/setgid bits are dropped and your umask applies. The copy is built in a\n"
                               "hidden .cocoon-cp-* directory and moved into place only when complete.\n"
                               "\n"
                               "With -, a tar archive streams through: from stdin it is extracted into the box's\n"
                               "existing directory DIR (a plain tar; names relative without \"..\", nothing through\n"
                               "a symlink of the archive, hard links only to its own files; symlinks out of DIR,\n"
                               "devices and FIFOs skipped); to stdout it holds PATH under its last component,\n"
                               "checked as a copy from a box is.\n"
                               "  --no-overwrite   refuse, rather than replace, a file that exists in the box\n"
                               "  -L, --follow-link  PATH naming a symlink means what it points to\n"
                               "\n"
                               "Bounds (environment): COCOON_CP_MAX_BYTES (default 16G), COCOON_CP_MAX_ENTRIES\n"
                               "(1000000), COCOON_CP_IDLE_TIMEOUT (seconds the box may send nothing, 60).\n";

/* "BOX:PATH" -> box and path; a host path with a '/' before any ':' is not a box. */
static int split_box(char *arg, char **box, char **path)
{
    char *colon = strchr(arg, ':');
    char *slash = strchr(arg, '/');
    if (!colon || colon == arg || (slash && slash < colon))
        return 0;
    *colon = 0;
    *box = arg;
    *path = colon + 1;
    return 1;
}

struct copy {
    int from_box;                 /* else to the box */
    int stream;                   /* the host side is "-": a tar archive on stdin or stdout */
    unsigned flags;               /* COCOON_TAR_* */
    const char *src, *dst, *path; /* path: the box side's */
};

static long read_stdin(void *user, void *buf, size_t cap)
{
    for (;;) {
        ssize_t n = read(0, buf, cap);
        if (n >= 0 || errno != EINTR)
            return n < 0 ? -1 : (long)n;
    }
}

static int write_stdout(void *user, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(1, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int copy_with(cocoon_box *box, int i, void *arg)
{
    const struct copy *c = arg;
    cocoon_error err;
    int rc;
    if (c->stream)
        rc = c->from_box ? cocoon_tar_from_box(box, c->path, write_stdout, NULL, c->flags, NULL, &err)
                         : cocoon_tar_to_box(box, c->path, read_stdin, NULL, c->flags, NULL, &err);
    else
        rc = c->from_box ? cocoon_copy_from_box(box, c->path, c->dst, &err)
                         : cocoon_copy_to_box(box, c->src, c->path, &err);
    if (rc < 0)
        return cli_fail(&err);
    if (err.message[0])
        fprintf(stderr, "cocoon: warning: %s\n", err.message);
    return 0;
}

int cmd_cp(int argc, char **argv)
{
    enum { OPT_NO_OVERWRITE = 256 };
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"follow-link", no_argument, NULL, 'L'},
                                       {"no-overwrite", no_argument, NULL, OPT_NO_OVERWRITE},
                                       {NULL, 0, NULL, 0}};
    optind = 1;
    opterr = 0;
    int c;
    unsigned flags = 0;
    while ((c = getopt_long(argc, argv, "+hL", lo, NULL)) != -1) {
        if (c == 'h') {
            fputs(cp_usage, stdout);
            return 0;
        }
        if (c == 'L') {
            flags |= COCOON_TAR_FOLLOW;
            continue;
        }
        if (c == OPT_NO_OVERWRITE) {
            flags |= COCOON_TAR_NO_OVERWRITE;
            continue;
        }
        cli_error("cp: unknown option %s (see `cocoon cp --help`)", argv[optind - 1]);
        return 2;
    }
    if (argc - optind != 2) {
        fputs(cp_usage, stderr);
        return 2;
    }
    char *src = argv[optind], *dst = argv[optind + 1];
    char *sbox = NULL, *spath = NULL, *dbox = NULL, *dpath = NULL;
    int from = split_box(src, &sbox, &spath);
    int to = split_box(dst, &dbox, &dpath);
    if (from == to) {
        cli_error("cp: exactly one of SRC and DEST must be BOX:PATH (box to box is not supported)");
        return 2;
    }
    if ((from && !spath[0]) || (to && !dpath[0])) {
        cli_error("cp: BOX:PATH needs a path after the colon");
        return 2;
    }
    int stream = !strcmp(from ? dst : src, "-");
    if ((flags & COCOON_TAR_FOLLOW) && !(stream && from)) {
        cli_error("cp: -L works with `cocoon cp -L BOX:PATH -` only");
        return 2;
    }
    if ((flags & COCOON_TAR_NO_OVERWRITE) && !(stream && to)) {
        cli_error("cp: --no-overwrite works with `cocoon cp --no-overwrite - BOX:DIR` only");
        return 2;
    }
    if (stream && to && isatty(0)) {
        cli_error("cp: refusing to read a tar archive from a terminal; give it on stdin (tar -cf - DIR | cocoon cp - "
                  "%s:%s)",
                  dbox, dpath);
        return 2;
    }
    if (stream && from && isatty(1)) {
        cli_error("cp: refusing to write a tar archive to a terminal; redirect stdout (cocoon cp %s:%s - > out.tar)",
                  sbox, spath);
        return 2;
    }
    struct copy job = {from, stream, flags, src, dst, from ? spath : dpath};
    char *name = from ? sbox : dbox;
    return cli_each_box(&name, 1, copy_with, &job);
}
