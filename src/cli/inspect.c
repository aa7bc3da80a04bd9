/* `cocoon ls`, `cocoon inspect` and `cocoon logs`: looking at boxes. Tables and
 * key/value text for people, --json for programs (one object per box, the same keys
 * in ls and inspect). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "boxcfg/healthspec.h"
#include "cli/cli.h"

static const char *image_label(const cocoon_box_info *b) { return b->rootfs[0] ? "(rootfs)" : b->image; }

/* The box's main process as recorded; st->present 0 without one (or when it cannot be read). */
static void main_status_of(cocoon_runtime *rt, cocoon_box *box, const char *id, cocoon_main_status *st)
{
    cocoon_main_status_init(st);
    cocoon_error err;
    cocoon_box *own = NULL;
    if (!box && cocoon_box_open(rt, id, &own, &err) < 0)
        return;
    if (cocoon_box_main_status(box ? box : own, st, &err) < 0)
        st->present = 0;
    cocoon_box_close(own);
}

/* A box's main process and health check, as recorded. */
struct box_state {
    cocoon_main_status m;
    cocoon_health_status h;
};

static void state_of(cocoon_runtime *rt, cocoon_box *box, const char *id, struct box_state *s)
{
    main_status_of(rt, box, id, &s->m);
    cocoon_health_status_init(&s->h);
    cocoon_error err;
    cocoon_box *own = NULL;
    if (!box && cocoon_box_open(rt, id, &own, &err) < 0)
        return;
    if (cocoon_box_health_status(box ? box : own, &s->h, &err) < 0)
        s->h.present = 0;
    cocoon_box_close(own);
}

/* What STATUS says: "exited (3) 2 minutes ago", "restarting (2, next in 4 s)",
 * "running (healthy)". */
static void status_text(const cocoon_box_info *b, const struct box_state *s, char *out, size_t cap)
{
    const cocoon_main_status *m = &s->m;
    snprintf(out, cap, "%s", b->status);
    if (b->running && s->h.present && s->h.status[0])
        snprintf(out, cap, "%s (%s)", b->status, s->h.status);
    if (!m->present)
        return;
    if (b->running && !strcmp(m->state, "restarting")) {
        long long now_ms = (long long)time(NULL) * 1000;
        long long in = m->next_restart_ms > now_ms ? (m->next_restart_ms - now_ms + 999) / 1000 : 0;
        snprintf(out, cap, "restarting (%u, next in %lld s)", m->restarts + 1, in);
    } else if (!b->running && !strcmp(m->state, "exited") && m->finished_at) {
        char when[64];
        cli_ago(m->finished_at, when, sizeof(when));
        snprintf(out, cap, "exited (%d) %s", m->exit_code, when);
    }
}

static json_t *main_json(const cocoon_main_status *m)
{
    if (!m->present)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "command", json_string(m->command));
    json_object_set_new(o, "restart", json_string(m->restart));
    json_object_set_new(o, "state", json_string(m->state));
    json_object_set_new(o, "pid", m->pid ? json_integer(m->pid) : json_null());
    json_object_set_new(o, "exit_code", m->exit_code >= 0 ? json_integer(m->exit_code) : json_null());
    json_object_set_new(o, "signal", m->signal ? json_integer(m->signal) : json_null());
    json_object_set_new(o, "error", m->error[0] ? json_string(m->error) : json_null());
    json_object_set_new(o, "started_at", m->started_at ? json_integer(m->started_at) : json_null());
    json_object_set_new(o, "finished_at", m->finished_at ? json_integer(m->finished_at) : json_null());
    json_object_set_new(o, "restarts", json_integer(m->restarts));
    json_object_set_new(o, "next_restart_ms", m->next_restart_ms ? json_integer(m->next_restart_ms) : json_null());
    return o;
}

static json_t *health_json(const cocoon_health_status *h)
{
    if (!h->present)
        return json_null();
    json_t *log = json_array();
    for (unsigned i = 0; i < h->nlog && i < 5; i++)
        json_array_append_new(log, json_pack("{s:i, s:I, s:I, s:s}", "exit_code", h->log[i].exit_code, "start_ms",
                                             (json_int_t)h->log[i].start_ms, "end_ms", (json_int_t)h->log[i].end_ms,
                                             "output", h->log[i].output));
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:o, s:I, s:o}", "test", h->test, "interval_ms",
                     (json_int_t)h->interval_ms, "timeout_ms", (json_int_t)h->timeout_ms, "start_period_ms",
                     (json_int_t)h->start_period_ms, "retries", (json_int_t)h->retries, "on_failure", h->on_failure,
                     "status", h->status[0] ? json_string(h->status) : json_null(), "failing_streak",
                     (json_int_t)h->failing_streak, "log", log);
}

static json_t *info_json(const cocoon_box_info *b, const struct box_state *s, int detailed)
{
    const cocoon_main_status *m = &s->m;
    json_t *o = json_object();
    char status[128];
    status_text(b, s, status, sizeof(status));
    json_object_set_new(o, "id", json_string(b->id));
    json_object_set_new(o, "name", b->name[0] ? json_string(b->name) : json_null());
    json_object_set_new(o, "image", json_string(b->image));
    json_object_set_new(o, "image_id", json_string(b->image_id));
    json_object_set_new(o, "status", json_string(b->status));
    json_object_set_new(o, "running", json_boolean(b->running));
    json_object_set_new(o, "pid", b->pid ? json_integer(b->pid) : json_null());
    json_object_set_new(o, "created", json_integer(b->created));
    json_object_set_new(o, "ephemeral", json_boolean(b->ephemeral));
    json_object_set_new(o, "status_text", json_string(status));
    json_object_set_new(o, "main", main_json(m));
    json_object_set_new(o, "health", health_json(&s->h));
    if (!detailed)
        return o;
    json_t *cfg = json_object();
    json_object_set_new(cfg, "cpus", json_integer(b->cpus));
    json_object_set_new(cfg, "memory_mib", json_integer(b->memory_mib));
    json_object_set_new(cfg, "accel", json_string(b->accel));
    json_object_set_new(cfg, "kernel", json_string(b->kernel));
    json_object_set_new(cfg, "initrd", json_string(b->initrd));
    json_object_set_new(cfg, "rootfs", b->rootfs[0] ? json_string(b->rootfs) : json_null());
    json_object_set_new(o, "config", cfg);
    json_t *disk = json_object();
    json_object_set_new(disk, "path", json_string(b->disk_path));
    json_object_set_new(disk, "format", json_string(b->disk_format));
    json_object_set_new(disk, "virtual_size", json_integer((json_int_t)b->disk_size));
    json_object_set_new(disk, "allocated", json_integer((json_int_t)b->disk_used));
    json_object_set_new(o, "disk", disk);
    json_t *boot = json_object();
    json_object_set_new(boot, "ready_ms", b->ready_ms >= 0 ? json_integer(b->ready_ms) : json_null());
    json_object_set_new(boot, "kernel_boot_ms", b->boot_ms >= 0 ? json_integer(b->boot_ms) : json_null());
    json_object_set_new(boot, "agent_init_ms", b->init_ms >= 0 ? json_integer(b->init_ms) : json_null());
    json_object_set_new(o, "boot", boot);
    json_object_set_new(o, "dir", json_string(b->dir));
    return o;
}

int cmd_ls(int argc, char **argv)
{
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"all", no_argument, NULL, 'a'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {NULL, 0, NULL, 0}};
    int all = 0, json = 0, quiet = 0;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "haq", lo, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs("usage: cocoon ls [-a] [-q] [--json]\n\nLists running boxes. -a, --all: stopped ones too; "
                  "-q, --quiet: ids only; --json: a JSON array.\n",
                  stdout);
            return 0;
        case 'a': all = 1; break;
        case 'j': json = 1; break;
        case 'q': quiet = 1; break;
        default: return cli_usage_error("ls", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("ls", "unexpected argument");
    cocoon_runtime *rt;
    int rc = cli_open_runtime(&rt);
    if (rc)
        return rc;
    cocoon_error err;
    cocoon_box_info *list;
    size_t n;
    if (cocoon_box_list(rt, &list, &n, &err) < 0) {
        cocoon_runtime_close(rt);
        return cli_fail(&err);
    }
    struct box_state *mains = calloc(n ? n : 1, sizeof(*mains));
    if (!mains) {
        cocoon_box_list_free(list);
        cocoon_runtime_close(rt);
        return CLI_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < n; i++)
        if (all || list[i].running)
            state_of(rt, NULL, list[i].id, &mains[i]);
    cocoon_runtime_close(rt);
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            if (all || list[i].running)
                json_array_append_new(arr, info_json(&list[i], &mains[i], 0));
        cocoon_box_list_free(list);
        free(mains);
        return cli_print_json(arr);
    }
    int width = 8; /* the STATUS column fits its longest entry */
    for (size_t i = 0; i < n; i++) {
        char status[128];
        status_text(&list[i], &mains[i], status, sizeof(status));
        if ((all || list[i].running) && (int)strlen(status) > width)
            width = (int)strlen(status);
    }
    if (!quiet)
        printf("%-12s  %-20s  %-20s  %-*s  %s\n", "ID", "NAME", "IMAGE", width, "STATUS", "CREATED");
    for (size_t i = 0; i < n; i++) {
        const cocoon_box_info *b = &list[i];
        if (!all && !b->running)
            continue;
        if (quiet) {
            printf("%s\n", b->id);
            continue;
        }
        char when[64], status[128];
        cli_ago(b->created, when, sizeof(when));
        status_text(b, &mains[i], status, sizeof(status));
        printf("%-12s  %-20s  %-20s  %-*s  %s\n", b->id, b->name[0] ? b->name : "-", image_label(b), width, status,
               when);
    }
    free(mains);
    cocoon_box_list_free(list);
    return 0;
}

static void human(uint64_t v, char *out, size_t cap)
{
    if (v >= (1ull << 30))
        snprintf(out, cap, "%.2f GiB", (double)v / (1ull << 30));
    else
        snprintf(out, cap, "%.1f MiB", (double)v / (1ull << 20));
}

static void print_main(const cocoon_main_status *m)
{
    if (!m->present)
        return;
    printf("main:        %s (restart %s)\n", m->command, m->restart);
    printf("main state:  %s", m->state[0] ? m->state : "not started");
    if (m->pid)
        printf(", pid %d in the box", m->pid);
    if (m->finished_at && m->exit_code >= 0)
        printf(", exit code %d", m->exit_code);
    if (m->signal)
        printf(" (signal %d)", m->signal);
    if (m->restarts)
        printf(", %u restart%s", m->restarts, m->restarts == 1 ? "" : "s");
    if (m->next_restart_ms) {
        long long now_ms = (long long)time(NULL) * 1000;
        printf(", next try in %lld s", m->next_restart_ms > now_ms ? (m->next_restart_ms - now_ms + 999) / 1000 : 0);
    }
    putchar('\n');
    if (m->error[0])
        printf("main error:  %s\n", m->error);
    char when[64];
    if (m->started_at) {
        cli_ago(m->started_at, when, sizeof(when));
        printf("main start:  %s\n", when);
    }
    if (m->finished_at) {
        cli_ago(m->finished_at, when, sizeof(when));
        printf("main end:    %s\n", when);
    }
}

static void print_health(const cocoon_health_status *h)
{
    if (!h->present)
        return;
    char every[32], timeout[32], start[32];
    health_duration_format(h->interval_ms, every, sizeof(every));
    health_duration_format(h->timeout_ms, timeout, sizeof(timeout));
    health_duration_format(h->start_period_ms, start, sizeof(start));
    printf("health:      %s (every %s, timeout %s, %u retries, start period %s, on failure %s)\n", h->test, every,
           timeout, h->retries, start, h->on_failure);
    if (!h->status[0])
        return;
    printf("health now:  %s, %u failure%s in a row\n", h->status, h->failing_streak, h->failing_streak == 1 ? "" : "s");
    for (unsigned i = 0; i < h->nlog && i < 5; i++) {
        const cocoon_health_result *r = &h->log[i];
        char when[64], out[96];
        cli_ago(r->start_ms / 1000, when, sizeof(when));
        size_t k = 0;
        for (const char *c = r->output; *c && k + 1 < sizeof(out); c++)
            out[k++] = *c == '\n' || *c == '\t' ? ' ' : *c; /* one line per result */
        while (k > 0 && out[k - 1] == ' ')
            k--;
        out[k] = 0;
        printf("  check:     %s, exit %d, %lld ms%s%s\n", when, r->exit_code, r->end_ms - r->start_ms, k ? ": " : "",
               out);
    }
}

static void print_text(const cocoon_box_info *b, const struct box_state *s)
{
    const cocoon_main_status *m = &s->m;
    char status[128];
    status_text(b, s, status, sizeof(status));
    char when[64], vs[32], used[32];
    cli_ago(b->created, when, sizeof(when));
    human(b->disk_size, vs, sizeof(vs));
    human(b->disk_used, used, sizeof(used));
    printf("id:          %s\n", b->id);
    printf("name:        %s\n", b->name[0] ? b->name : "-");
    if (b->rootfs[0])
        printf("rootfs:      %s\n", b->rootfs);
    else
        printf("image:       %s (%s)\n", b->image, b->image_id);
    printf("status:      %s\n", status);
    print_main(m);
    print_health(&s->h);
    if (b->pid)
        printf("pid:         %d (cocoon-vmm)\n", b->pid);
    if (b->ready_ms >= 0)
        printf("boot:        ready in %d ms (kernel %lld ms, agent init %lld ms)\n", b->ready_ms, b->boot_ms,
               b->init_ms);
    printf("created:     %s\n", when);
    printf("ephemeral:   %s\n", b->ephemeral ? "yes" : "no");
    printf("cpus:        %u\n", b->cpus);
    printf("memory:      %u MiB\n", b->memory_mib);
    printf("accel:       %s\n", b->accel);
    printf("disk:        %s (%s, %s virtual, %s used)\n", b->disk_path, b->disk_format, vs, used);
    printf("directory:   %s\n", b->dir);
}

struct inspection {
    int json;
    json_t *arr;
};

/* TLS interception, secrets (names, hosts, placeholders: never values) and header
 * rules, as text lines; nothing when the box has none. */
static void print_tls(const json_t *t)
{
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(t, "tls_intercept"), i, x) printf("intercept:   %s\n", json_string_value(x));
    json_array_foreach(json_object_get(t, "tls_bypass"), i, x) printf("tls bypass:  %s\n", json_string_value(x));
    json_array_foreach(json_object_get(t, "secrets"), i, x)
    {
        printf("secret:      %s ->", json_string_value(json_object_get(x, "name")));
        size_t k;
        json_t *h;
        json_array_foreach(json_object_get(x, "hosts"), k, h) printf("%s %s", k ? "," : "", json_string_value(h));
        printf(" (in the box: %s)\n", json_string_value(json_object_get(x, "placeholder")));
    }
    json_array_foreach(json_object_get(t, "header_rules"), i, x) printf("header rule: %s\n", json_string_value(x));
}

static int inspect_one(cocoon_box *box, int i, void *arg)
{
    struct inspection *in = arg;
    cocoon_error err;
    cocoon_box_info *info = malloc(sizeof(*info));
    if (!info)
        return CLI_EXIT_RUNTIME;
    if (cocoon_box_inspect(box, info, &err) < 0) {
        free(info);
        return cli_fail(&err);
    }
    struct box_state *s = malloc(sizeof(*s));
    if (!s) {
        free(info);
        return CLI_EXIT_RUNTIME;
    }
    state_of(NULL, box, NULL, s);
    cocoon_detached_info *execs = NULL;
    size_t nexecs = 0;
    cocoon_box_detached_execs(box, &execs, &nexecs, &err); /* none when unreadable */
    char *tls_text = NULL;
    json_t *tls = cocoon_box_tls_json(box, &tls_text, &err) == 0 ? json_loads(tls_text, 0, NULL) : NULL;
    cocoon_free(tls_text);
    if (in->json) {
        json_t *o = info_json(info, s, 1);
        json_object_set_new(o, "detached_execs", cli_detached_json(execs, nexecs));
        if (tls)
            json_object_set(o, "tls", tls);
        json_array_append_new(in->arr, o);
    } else {
        if (i > 0)
            putchar('\n');
        print_text(info, s);
        if (tls)
            print_tls(tls);
        if (nexecs)
            printf("detached:    %zu exec%s (see `cocoon exec --ls %s`)\n", nexecs, nexecs == 1 ? "" : "s",
                   info->name[0] ? info->name : info->id);
    }
    json_decref(tls);
    free(execs);
    free(s);
    free(info);
    return 0;
}

int cmd_inspect(int argc, char **argv)
{
    int json;
    int rc = cli_simple_opts(argc, argv, "inspect",
                             "usage: cocoon inspect [--json] BOX...\n\nShows a box's configuration, state, disk "
                             "and boot timing. --json: one JSON object (an array for several boxes).\n",
                             "json", 0, &json);
    if (rc >= 0)
        return rc;
    if (optind >= argc)
        return cli_usage_error("inspect", "which box?");
    int many = argc - optind > 1;
    json_t *arr = json_array();
    struct inspection in = {json, arr};
    int code = cli_each_box(argv + optind, argc - optind, inspect_one, &in);
    if (json && (many || json_array_size(arr) == 1)) {
        json_t *v = many ? json_incref(arr) : json_incref(json_array_get(arr, 0));
        json_decref(arr);
        int prc = cli_print_json(v);
        return code ? code : prc;
    }
    json_decref(arr);
    return code;
}

struct logs_args {
    int net, console, follow, exec_id;
    cocoon_logs_options main;
};

static int print_logs(cocoon_box *box, int i, void *arg)
{
    (void)i;
    const struct logs_args *a = arg;
    cocoon_error err;
    fflush(stdout);
    cocoon_main_status m;
    main_status_of(NULL, box, NULL, &m);
    int rc;
    if (a->net)
        rc = cocoon_box_net_logs(box, 1, a->follow, &err);
    else if (a->exec_id)
        rc = cocoon_box_exec_logs(box, a->exec_id, 1, 2, &a->main, &err);
    else if (!a->console && m.present)
        rc = cocoon_box_main_logs(box, 1, 2, &a->main, &err);
    else if (a->main.tail >= 0 || a->main.timestamps || a->main.since_us)
        return cli_usage_error("logs", m.present ? "--tail, --since and --timestamps apply to the main process's output"
                                                 : "this box has no main process: --tail, --since and --timestamps "
                                                   "apply to a main process's output");
    else
        rc = cocoon_box_logs(box, 1, a->follow, &err);
    return rc < 0 ? cli_fail(&err) : 0;
}

int cmd_logs(int argc, char **argv)
{
    enum { OPT_CONSOLE = 256, OPT_TAIL, OPT_TIMESTAMPS, OPT_NET, OPT_EXEC, OPT_SINCE };
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"follow", no_argument, NULL, 'f'},
                                       {"net", no_argument, NULL, OPT_NET},
                                       {"console", no_argument, NULL, OPT_CONSOLE},
                                       {"tail", required_argument, NULL, OPT_TAIL},
                                       {"timestamps", no_argument, NULL, OPT_TIMESTAMPS},
                                       {"exec", required_argument, NULL, OPT_EXEC},
                                       {"since", required_argument, NULL, OPT_SINCE},
                                       {NULL, 0, NULL, 0}};
    struct logs_args a = {0};
    cocoon_logs_options_init(&a.main);
    optind = 0;
    opterr = 0;
    int c;
    unsigned tail;
    while ((c = getopt_long(argc, argv, "hfn:t", lo, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs("usage: cocoon logs [-f] [--tail N] [--since TIME] [-t] [--console | --net] BOX\n\n"
                  "Prints what the box's main process (`cocoon run -d`) wrote, stdout to stdout and\n"
                  "stderr to stderr, across its restarts and the box's boots (kept on the host, the\n"
                  "newest 4 to 8 MiB). A box without a main process shows its console instead.\n"
                  "  -f, --follow      keep printing until the box stops\n"
                  "  -n, --tail N      only the last N lines\n"
                  "  --since TIME      only lines from TIME on: 2026-12-03T14:00:00Z, 2026-12-03, a unix\n"
                  "                    time, or a duration back from now (90s, 10m, 1h30m, 2d)\n"
                  "  -t, --timestamps  each line with its time (UTC)\n"
                  "  --console         the console: kernel messages and agent lines of the current or\n"
                  "                    last boot\n"
                  "  --net             the network log: every denied connection or DNS query, with the\n"
                  "                    rule that denied it\n"
                  "  --exec ID         the output of a detached exec (`cocoon exec -d`)\n",
                  stdout);
            return 0;
        case 'f': a.follow = a.main.follow = 1; break;
        case OPT_CONSOLE: a.console = 1; break;
        case 't':
        case OPT_TIMESTAMPS: a.main.timestamps = 1; break;
        case OPT_NET: a.net = 1; break;
        case OPT_EXEC:
            if (cli_parse_uint(optarg, "--exec", 2, 1u << 30, &tail) < 0)
                return CLI_EXIT_RUNTIME;
            a.exec_id = (int)tail;
            break;
        case OPT_SINCE: {
            cocoon_error err;
            if (cocoon_parse_since(optarg, &a.main.since_us, &err) < 0)
                return cli_usage_error("logs", err.message);
            if (!a.main.since_us)
                a.main.since_us = 1; /* the epoch itself: everything, but still "given" */
            break;
        }
        case 'n':
        case OPT_TAIL:
            if (cli_parse_uint(optarg, "--tail", 0, 1u << 30, &tail) < 0)
                return CLI_EXIT_RUNTIME;
            a.main.tail = tail;
            break;
        default: return cli_usage_error("logs", "unknown option");
        }
    }
    if (a.net + a.console + (a.exec_id > 0) > 1)
        return cli_usage_error("logs", "one of --console, --net and --exec");
    if (optind + 1 != argc)
        return cli_usage_error("logs", optind >= argc ? "which box?" : "one box at a time");
    return cli_each_box(argv + optind, 1, print_logs, &a);
}
