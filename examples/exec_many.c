/* exec_many: many execs at once on ONE box handle, each with its own streams, plus a
 * command that floods stdout to a slow consumer and one that never reads its stdin;
 * checks that every exec gets exactly its own output and that neither of the two
 * stalls the others. Also measures exec round trips through the C API.
 *   exec_many BOX concurrent [N]   (default 32; exit 0 when every check passed)
 *   exec_many BOX latency [RUNS]   (`true` RUNS times: every time, median and p99 in ms) */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cocoon.h"

#define LINES 40

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct text {
    char *p;
    size_t len;
};

static void append(struct text *t, const char *data, size_t len)
{
    char *grown = realloc(t->p, t->len + len + 1);
    if (!grown)
        abort();
    t->p = grown;
    memcpy(t->p + t->len, data, len);
    t->len += len;
    t->p[t->len] = 0;
}

struct job {
    cocoon_box *box;
    int index;
    struct text out, err;
    cocoon_exit_status st;
    int rc;
    char msg[COCOON_ERROR_MAX];
    double done_ms;
};

static void on_out(void *u, const char *d, size_t n) { append(&((struct job *)u)->out, d, n); }
static void on_err(void *u, const char *d, size_t n) { append(&((struct job *)u)->err, d, n); }

static void *run_job(void *arg)
{
    struct job *j = arg;
    char script[256];
    snprintf(
        script, sizeof(script),
        "i=1; while [ $i -le %d ]; do echo \"exec%d out $i\"; echo \"exec%d err $i\" >&2; i=$((i+1)); done; exit %d",
        LINES, j->index, j->index, j->index % 100);
    const char *argv[] = {"sh", "-c", script, NULL};
    cocoon_exec_options o;
    cocoon_exec_options_init(&o);
    o.argv = argv;
    o.on_stdout = on_out;
    o.on_stderr = on_err;
    o.user_data = j;
    cocoon_error err;
    j->rc = cocoon_box_run(j->box, &o, &j->st, &err);
    if (j->rc < 0)
        snprintf(j->msg, sizeof(j->msg), "%s", err.message);
    j->done_ms = now_ms();
    return NULL;
}

static int check_job(const struct job *j)
{
    if (j->rc < 0) {
        fprintf(stderr, "exec %d failed: %s\n", j->index, j->msg);
        return -1;
    }
    struct text want_out = {0}, want_err = {0};
    for (int i = 1; i <= LINES; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "exec%d out %d\n", j->index, i);
        append(&want_out, line, (size_t)n);
        n = snprintf(line, sizeof(line), "exec%d err %d\n", j->index, i);
        append(&want_err, line, (size_t)n);
    }
    int ok = j->out.len == want_out.len && !memcmp(j->out.p, want_out.p, want_out.len) && j->err.len == want_err.len &&
             !memcmp(j->err.p, want_err.p, want_err.len) && cocoon_exit_status_code(&j->st) == j->index % 100;
    if (!ok)
        fprintf(stderr, "exec %d: wrong result (exit %d, %zu/%zu stdout bytes, %zu/%zu stderr bytes)\n", j->index,
                cocoon_exit_status_code(&j->st), j->out.len, want_out.len, j->err.len, want_err.len);
    free(want_out.p);
    free(want_err.p);
    return ok ? 0 : -1;
}

/* The flood: lots of output to a consumer that takes 5 ms per chunk. */
static size_t flood_bytes;
static void slow_sink(void *u, const char *d, size_t n)
{
    flood_bytes += n;
    usleep(5000);
}

struct writer {
    cocoon_exec *ex;
    int rc;
};

struct flood_wait {
    cocoon_exec *ex;
    cocoon_exit_status st;
    int rc;
};

/* The flood's own waiter delivers its output (slowly) on its own thread. */
static void *wait_flood(void *arg)
{
    struct flood_wait *fw = arg;
    cocoon_error err;
    fw->rc = cocoon_exec_wait(fw->ex, &fw->st, &err);
    return NULL;
}

/* Writes 4 MiB into a command that never reads: blocks until the command ends. */
static void *stuck_writer(void *arg)
{
    struct writer *w = arg;
    static char block[1 << 20];
    cocoon_error err;
    w->rc = 0;
    for (int i = 0; i < 4 && w->rc == 0; i++)
        w->rc = cocoon_exec_write(w->ex, block, sizeof(block), &err);
    return NULL;
}

/* Starts argv in box in the background, its stdout to on_stdout (NULL: discarded), its
 * stdin from stdin_fd; NULL after saying why, as what. */
static cocoon_exec *start(cocoon_box *box, const char **argv, cocoon_output_fn on_stdout, int stdin_fd,
                          const char *what)
{
    cocoon_exec_options o;
    cocoon_exec_options_init(&o);
    o.argv = argv;
    o.on_stdout = on_stdout;
    o.stdin_fd = stdin_fd;
    cocoon_exec *ex;
    cocoon_error err;
    if (cocoon_exec_start(box, &o, &ex, &err) < 0) {
        fprintf(stderr, "%s: %s\n", what, err.message);
        return NULL;
    }
    return ex;
}

static int concurrent(cocoon_box *box, int n)
{
    cocoon_error err;
    /* a flood nobody can keep up with */
    const char *fargv[] = {"sh", "-c", "cat /dev/zero", NULL};
    cocoon_exec *flood = start(box, fargv, slow_sink, COCOON_STDIN_NONE, "flood");
    /* a command that never reads its stdin, with a writer blocked on it */
    const char *sargv[] = {"sleep", "4", NULL};
    cocoon_exec *stuck = flood ? start(box, sargv, NULL, COCOON_STDIN_API, "stuck") : NULL;
    if (!stuck)
        return 1;
    struct writer w = {stuck, 0};
    pthread_t wt;
    pthread_create(&wt, NULL, stuck_writer, &w);

    struct flood_wait fw = {flood, {0}, 0};
    pthread_t ft;
    struct job *jobs = calloc((size_t)n, sizeof(*jobs));
    pthread_t *th = calloc((size_t)n, sizeof(*th));
    double t0 = now_ms();
    pthread_create(&ft, NULL, wait_flood, &fw);
    for (int i = 0; i < n; i++) {
        jobs[i].box = box;
        jobs[i].index = i + 1;
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    int bad = 0;
    double last = t0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        bad |= check_job(&jobs[i]) < 0;
        if (jobs[i].done_ms > last)
            last = jobs[i].done_ms;
        free(jobs[i].out.p);
        free(jobs[i].err.p);
    }
    size_t flood_at_end = flood_bytes;
    printf("%d concurrent execs done in %.0f ms while the flood delivered %zu bytes\n", n, last - t0, flood_at_end);
    /* the flood was still running: stop it; its waiter must see SIGKILL */
    if (cocoon_exec_signal(flood, SIGKILL, &err) < 0) {
        fprintf(stderr, "signal flood: %s\n", err.message);
        bad = 1;
    }
    pthread_join(ft, NULL);
    if (fw.rc < 0 || fw.st.signal != SIGKILL) {
        fprintf(stderr, "flood: expected SIGKILL, got rc %d signal %d exit %d\n", fw.rc, fw.st.signal, fw.st.exit_code);
        bad = 1;
    }
    cocoon_exit_status st;
    if (cocoon_exec_wait(stuck, &st, &err) < 0 || cocoon_exit_status_code(&st) != 0) {
        fprintf(stderr, "stuck: %s\n", err.message);
        bad = 1;
    }
    pthread_join(wt, NULL);
    if (w.rc == 0) {
        fprintf(stderr, "stuck writer: 4 MiB went into a command that never reads?\n");
        bad = 1;
    }
    cocoon_exec_free(flood);
    cocoon_exec_free(stuck);
    free(jobs);
    free(th);
    printf("%s\n", bad ? "FAILED" : "ok");
    return bad;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int latency(cocoon_box *box, int runs)
{
    const char *argv[] = {"true", NULL};
    cocoon_exec_options o;
    cocoon_exec_options_init(&o);
    o.argv = argv;
    double *t = calloc((size_t)runs, sizeof(*t));
    cocoon_error err;
    for (int i = 0; i < runs; i++) {
        cocoon_exit_status st;
        double a = now_ms();
        if (cocoon_box_run(box, &o, &st, &err) < 0 || st.exit_code != 0) {
            fprintf(stderr, "run %d: %s\n", i, err.message);
            free(t);
            return 1;
        }
        t[i] = now_ms() - a;
    }
    printf("{\"runs\": %d, \"samples_ms\": [", runs);
    for (int i = 0; i < runs; i++)
        printf("%s%.3f", i ? ", " : "", t[i]);
    qsort(t, (size_t)runs, sizeof(*t), cmp_double);
    int p99 = (runs * 99 + 99) / 100 - 1;
    printf("], \"median_ms\": %.3f, \"p99_ms\": %.3f, \"min_ms\": %.3f}\n", t[runs / 2], t[p99], t[0]);
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: exec_many BOX concurrent [N] | exec_many BOX latency [RUNS]\n");
        return 2;
    }
    cocoon_error err;
    cocoon_runtime *rt;
    if (cocoon_runtime_open(NULL, &rt, &err) < 0) {
        fprintf(stderr, "exec_many: %s\n", err.message);
        return 1;
    }
    cocoon_box *box;
    if (cocoon_box_open(rt, argv[1], &box, &err) < 0) {
        fprintf(stderr, "exec_many: %s\n", err.message);
        cocoon_runtime_close(rt);
        return 1;
    }
    int n = argc > 3 ? atoi(argv[3]) : 0;
    int rc = !strcmp(argv[2], "latency") ? latency(box, n > 0 ? n : 200) : concurrent(box, n > 0 ? n : 32);
    cocoon_box_close(box);
    cocoon_runtime_close(rt);
    return rc;
}
