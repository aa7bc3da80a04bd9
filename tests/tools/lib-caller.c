/* A library caller for the crash suite (tests/integration/test_crash.py): a process
 * that embeds libcocoon, holds one attached box and works in it from two threads,
 * until it is killed. It prints "ready" once the box runs, then one line per step
 * that completed: "synced N" after a command wrote and synced N to /root/counter,
 * "wrote N" after cocoon_file_write put N in /root/written.
 * Usage: lib-caller NAME ephemeral|kept   (uses $COCOON_HOME). Built by the test. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cocoon.h"

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *what, unsigned n)
{
    pthread_mutex_lock(&out_lock);
    printf("%s %u\n", what, n);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static void *execs(void *arg)
{
    cocoon_box *box = arg;
    for (unsigned n = 1;; n++) {
        char script[128];
        snprintf(script, sizeof(script),
                 "echo %u > /root/counter.tmp && sync && mv /root/counter.tmp /root/counter && sync", n);
        const char *argv[] = {"sh", "-c", script, NULL};
        cocoon_exec_options o;
        cocoon_exec_options_init(&o);
        o.argv = argv;
        cocoon_exit_status st;
        cocoon_error err;
        if (cocoon_box_run(box, &o, &st, &err) < 0 || cocoon_exit_status_code(&st) != 0) {
            fprintf(stderr, "lib-caller: exec %u: %s\n", n, err.message);
            return NULL;
        }
        say("synced", n);
    }
}

static void *files(void *arg)
{
    cocoon_box *box = arg;
    for (unsigned n = 1;; n++) {
        char data[64 << 10];
        memset(data, 'x', sizeof(data));
        int len = snprintf(data, 32, "%u\n", n);
        data[len] = 'x';
        cocoon_error err;
        if (cocoon_file_write(box, "/root/written", data, sizeof(data), 0644, &err) < 0) {
            fprintf(stderr, "lib-caller: file write %u: %s\n", n, err.message);
            return NULL;
        }
        say("wrote", n);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "ephemeral") && strcmp(argv[2], "kept"))) {
        fprintf(stderr, "usage: lib-caller NAME ephemeral|kept\n");
        return 2;
    }
    cocoon_error err;
    cocoon_runtime *rt;
    if (cocoon_runtime_open(NULL, &rt, &err) < 0) {
        fprintf(stderr, "lib-caller: %s\n", err.message);
        return 1;
    }
    cocoon_box_options bo;
    cocoon_box_options_init(&bo);
    bo.name = argv[1];
    bo.ephemeral = !strcmp(argv[2], "ephemeral");
    bo.memory_mib = 256;
    cocoon_box *box = NULL;
    if (cocoon_box_create(rt, &bo, &box, &err) < 0 || cocoon_box_start_flags(box, COCOON_START_ATTACHED, &err) < 0) {
        fprintf(stderr, "lib-caller: %s\n", err.message);
        cocoon_box_close(box);
        cocoon_runtime_close(rt);
        return 1;
    }
    say("ready", 0);
    pthread_t a, b;
    pthread_create(&a, NULL, execs, box);
    pthread_create(&b, NULL, files, box);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 1; /* only a failure gets here: the test kills this process */
}
