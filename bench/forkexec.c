/* forkexec: the bare cost of starting a program inside a guest, the yardstick of
 * bench/exec_overhead.py. Forks and execs PROG (searched in PATH like execvp) RUNS
 * times, one after the other, waiting for each; prints every time and their median,
 * quartiles and extremes (ms) as one JSON line.
 * Built static (like the agent) so it runs in any image: cc -static -O2.
 *   forkexec [-g GAP_US] RUNS PROG [ARG...]
 * -g sleeps GAP_US microseconds between runs (not timed): the guest then idles between
 * starts as it does between the execs of a host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 100000
#define WARMUP 3

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One fork+exec+wait; the time it took (ms), or a negative value on failure. */
static double one_run(char **argv)
{
    double t = now_ms();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return now_ms() - t;
}

int main(int argc, char **argv)
{
    long gap_us = 0;
    if (argc > 2 && !strcmp(argv[1], "-g")) {
        gap_us = atol(argv[2]);
        argc -= 2;
        argv += 2;
    }
    int runs = argc > 2 ? atoi(argv[1]) : 0;
    if (runs < 1 || runs > MAX_RUNS || gap_us < 0 || gap_us > 10000000) {
        fprintf(stderr, "usage: forkexec [-g GAP_US] RUNS PROG [ARG...]   (RUNS 1..%d, GAP_US up to 10 s)\n", MAX_RUNS);
        return 2;
    }
    double *t = calloc((size_t)runs, sizeof(*t));
    if (!t)
        return 1;
    for (int i = -WARMUP; i < runs; i++) {
        double ms = one_run(argv + 2);
        if (ms < 0) {
            fprintf(stderr, "forkexec: %s did not run and exit 0\n", argv[2]);
            return 1;
        }
        if (i >= 0)
            t[i] = ms;
        if (gap_us)
            usleep((useconds_t)gap_us);
    }
    printf("{\"runs\": %d, \"samples_ms\": [", runs);
    for (int i = 0; i < runs; i++)
        printf("%s%.3f", i ? ", " : "", t[i]);
    qsort(t, (size_t)runs, sizeof(*t), cmp_double);
    printf("], \"median_ms\": %.3f, \"p25_ms\": %.3f, \"p75_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f}\n",
           t[runs / 2], t[runs / 4], t[(runs * 3) / 4], t[0], t[runs - 1]);
    free(t);
    return 0;
}
