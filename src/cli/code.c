/* `cocoon code`: runs code in a stateful context of a running box (Python, JavaScript or
 * bash; cocoon_code_run) and prints what it produces as it comes, and `cocoon code
 * context ls|create|restart|rm` manages the box's contexts. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "util/util.h"

#define CODE_STDIN_MAX (16u * 1024u * 1024u)

static const char code_usage[] =
    "usage: cocoon code [OPTIONS] BOX CODE|-\n"
    "       cocoon code context ls BOX [--json]\n"
    "       cocoon code context create [--language L] [--cwd DIR] BOX\n"
    "       cocoon code context restart|rm BOX ID\n"
    "\n"
    "Runs CODE (- : read from stdin) in a stateful context of a running box: variables,\n"
    "imports and the working directory stay for the next run. Output is printed as it is\n"
    "produced, then the value of the last expression. Each language has a default context;\n"
    "`code context create` makes more (prints the new context as JSON).\n"
    "Python contexts need python3 in the image (numpy, pandas and matplotlib in the\n"
    "code-interpreter image: `cocoon run -d code-interpreter`), JavaScript ones node.\n"
    "\n"
    "options:\n"
    "  -l, --language L     python (default), javascript or bash\n"
    "  -c, --context ID     run in that context (from `code context create`)\n"
    "  -e, --env K=V        set for this run only (repeatable)\n"
    "  --timeout SECONDS    interrupt the run then (Python: KeyboardInterrupt); the context stays\n"
    "  --json               print the events (one JSON object per line) instead\n"
    "  --save-dir DIR       save PNG results (matplotlib figures) there as result-N.png\n"
    "\n"
    "Exit status: 0, 1 when the code raised an error, 125 when the run could not happen.\n";

struct code_print {
    int json;
    const char *save_dir;
    unsigned pngs, unsaved;
    int failed;
};

static void save_png(struct code_print *p, const char *b64)
{
    p->pngs++;
    if (!p->save_dir) {
        p->unsaved++;
        return;
    }
    size_t n = strlen(b64);
    unsigned char *bin = malloc(n / 4 * 3 + 4);
    size_t len = 0;
    char path[4096];
    snprintf(path, sizeof(path), "%s/result-%u.png", p->save_dir, p->pngs);
    FILE *f = NULL;
    if (bin && util_base64_decode(b64, n, bin, n / 4 * 3 + 4, &len) == 0 && (f = fopen(path, "wb")) &&
        fwrite(bin, 1, len, f) == len && fclose(f) == 0) {
        fprintf(stderr, "saved %s\n", path);
    } else {
        if (f)
            fclose(f);
        cli_error("could not save %s: %s", path, strerror(errno));
    }
    free(bin);
}

static int print_event(const char *text, size_t len, void *arg)
{
    struct code_print *p = arg;
    json_t *ev = json_loadb(text, len, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (type && strcmp(type, "error") == 0)
        p->failed = 1;
    if (p->json) {
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    } else if (type && (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0)) {
        FILE *to = type[3] == 'o' ? stdout : stderr;
        json_t *t = json_object_get(ev, "text");
        fwrite(json_string_value(t), 1, json_string_length(t), to);
        fflush(to);
    } else if (type && strcmp(type, "result") == 0) {
        const char *png = json_string_value(json_object_get(ev, "png"));
        if (png)
            save_png(p, png);
        json_t *t = json_object_get(ev, "text");
        if (t && json_is_true(json_object_get(ev, "is_main_result"))) {
            fwrite(json_string_value(t), 1, json_string_length(t), stdout);
            fputc('\n', stdout);
        }
        fflush(stdout);
    } else if (type && strcmp(type, "error") == 0) {
        const char *tb = json_string_value(json_object_get(ev, "traceback"));
        if (tb && *tb)
            fprintf(stderr, "%s%s", tb, tb[strlen(tb) - 1] == '\n' ? "" : "\n");
        else
            fprintf(stderr, "%s: %s\n", json_string_value(json_object_get(ev, "name")),
                    json_string_value(json_object_get(ev, "value")));
    }
    json_decref(ev);
    return 0;
}

static char *read_stdin(void)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            if (cap >= CODE_STDIN_MAX) {
                cli_error("code: more than %u bytes of code on stdin", CODE_STDIN_MAX);
                free(buf);
                return NULL;
            }
            char *p = realloc(buf, cap * 2);
            if (!p)
                break;
            buf = p;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - 1 - len, stdin);
        len += n;
        if (n == 0) {
            buf[len] = 0;
            return buf;
        }
    }
    free(buf);
    cli_error("code: out of memory");
    return NULL;
}

/* ---- code context ... ---- */

static int context_cmd(int argc, char **argv)
{
    static const struct option lo[] = {{"language", required_argument, NULL, 'l'},
                                       {"cwd", required_argument, NULL, 'w'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *language = NULL, *cwd = NULL;
    int json = 0, c;
    if (argc < 2)
        return cli_usage_error("code", "code context: ls, create, restart or rm");
    const char *op = argv[1];
    optind = 1;
    opterr = 0;
    argc--, argv++;
    while ((c = getopt_long(argc, argv, "l:jh", lo, NULL)) != -1) {
        if (c == 'l')
            language = optarg;
        else if (c == 'w')
            cwd = optarg;
        else if (c == 'j')
            json = 1;
        else if (c == 'h')
            return fputs(code_usage, stdout), 0;
        else
            return cli_usage_error("code", "code context: unknown option");
    }
    int want = strcmp(op, "ls") == 0 || strcmp(op, "create") == 0 ? 1 : 2;
    if (argc - optind != want)
        return cli_usage_error("code", strcmp(op, "ls") && strcmp(op, "create") ? "code context restart|rm BOX ID"
                                                                                : "code context ls|create BOX");
    cocoon_runtime *rt;
    int rc = cli_open_runtime(&rt);
    if (rc)
        return rc;
    cocoon_error err;
    cocoon_box *box;
    if (cocoon_box_open(rt, argv[optind], &box, &err) < 0) {
        rc = cli_fail(&err);
        cocoon_runtime_close(rt);
        return rc;
    }
    char *out = NULL;
    if (strcmp(op, "ls") == 0) {
        rc = cocoon_code_context_list(box, &out, &err);
        if (rc == 0 && json) {
            printf("%s\n", out);
        } else if (rc == 0) {
            json_t *list = json_loads(out, 0, NULL);
            size_t i;
            json_t *ctx;
            printf("%-38s %-11s %s\n", "ID", "LANGUAGE", "CWD");
            json_array_foreach(list, i, ctx) printf("%-38s %-11s %s\n", json_string_value(json_object_get(ctx, "id")),
                                                    json_string_value(json_object_get(ctx, "language")),
                                                    json_string_value(json_object_get(ctx, "cwd")));
            json_decref(list);
        }
    } else if (strcmp(op, "create") == 0) {
        rc = cocoon_code_context_create(box, language, cwd, &out, &err);
        if (rc == 0)
            printf("%s\n", out);
    } else if (strcmp(op, "restart") == 0) {
        rc = cocoon_code_context_restart(box, argv[optind + 1], &err);
    } else if (strcmp(op, "rm") == 0) {
        rc = cocoon_code_context_remove(box, argv[optind + 1], &err);
    } else {
        cli_error("code context: unknown operation \"%s\" (ls, create, restart or rm)", op);
        rc = 2;
    }
    free(out);
    if (rc < 0)
        rc = cli_fail(&err);
    cocoon_box_close(box);
    cocoon_runtime_close(rt);
    return rc;
}

int cmd_code(int argc, char **argv)
{
    static const struct option lo[] = {
        {"language", required_argument, NULL, 'l'}, {"context", required_argument, NULL, 'c'},
        {"env", required_argument, NULL, 'e'},      {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},           {"save-dir", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    if (argc >= 2 && strcmp(argv[1], "context") == 0)
        return context_cmd(argc - 1, argv + 1);
    cocoon_code_options o;
    cocoon_code_options_init(&o);
    struct code_print p = {0};
    const char **env = calloc((size_t)argc + 1, sizeof(*env));
    size_t envc = 0;
    int c;
    optind = 1;
    opterr = 0;
    if (!env)
        return cli_error("code: out of memory"), CLI_EXIT_RUNTIME;
    while ((c = getopt_long(argc, argv, "+l:c:e:h", lo, NULL)) != -1) {
        if (c == 'l') {
            o.language = optarg;
        } else if (c == 'c') {
            o.context = optarg;
        } else if (c == 'e') {
            env[envc++] = optarg;
        } else if (c == 't') {
            if (cli_parse_seconds(optarg, &o.timeout_ms) < 0)
                return free(env), 2;
        } else if (c == 'j') {
            p.json = 1;
        } else if (c == 's') {
            p.save_dir = optarg;
        } else if (c == 'h') {
            fputs(code_usage, stdout);
            return free(env), 0;
        } else {
            free(env);
            return cli_usage_error("code", "code: unknown option");
        }
    }
    if (argc - optind != 2) {
        free(env);
        fputs(code_usage, stderr);
        return 2;
    }
    struct stat st;
    if (p.save_dir && (stat(p.save_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        free(env);
        cli_error("code: --save-dir %s is not a directory", p.save_dir);
        return 2;
    }
    char *code = strcmp(argv[optind + 1], "-") == 0 ? read_stdin() : strdup(argv[optind + 1]);
    if (!code)
        return free(env), CLI_EXIT_RUNTIME;
    o.env = envc ? env : NULL;
    o.on_event = print_event;
    o.ctx = &p;
    cocoon_runtime *rt;
    int rc = cli_open_runtime(&rt);
    if (rc == 0) {
        cocoon_error err;
        cocoon_box *box;
        if (cocoon_box_open(rt, argv[optind], &box, &err) < 0) {
            rc = cli_fail(&err);
        } else {
            if (cocoon_code_run(box, code, &o, &err) < 0)
                rc = cli_fail(&err);
            else
                rc = p.failed ? 1 : 0;
            cocoon_box_close(box);
        }
        cocoon_runtime_close(rt);
    }
    if (!p.json && p.unsaved)
        fprintf(stderr, "(%u PNG result%s not shown: --save-dir DIR saves them)\n", p.unsaved,
                p.unsaved == 1 ? "" : "s");
    free(code);
    free(env);
    return rc;
}
