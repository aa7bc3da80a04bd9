/* hello: the smallest complete libcocoon program. Opens the runtime, creates an
 * ephemeral box, runs one command with output callbacks and a second one whose stdin
 * is fed from another thread with cocoon_exec_write, then removes the box.
 * Build: make -C examples; run: build/examples/hello (uses $COCOON_HOME). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cocoon.h"

static void on_stdout(void *user, const char *data, size_t len)
{
    printf("[%s stdout] %.*s", (const char *)user, (int)len, data);
    fflush(stdout);
}

static void on_stderr(void *user, const char *data, size_t len)
{
    printf("[%s stderr] %.*s", (const char *)user, (int)len, data);
    fflush(stdout);
}

/* Feeds the second command's stdin from its own thread, then closes it. */
static void *feeder(void *arg)
{
    cocoon_exec *ex = arg;
    cocoon_error err;
    for (int i = 1; i <= 3; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "line %d from the host\n", i);
        if (cocoon_exec_write(ex, line, (size_t)n, &err) < 0) {
            fprintf(stderr, "hello: write: %s\n", err.message);
            break;
        }
    }
    if (cocoon_exec_close_stdin(ex, &err) < 0)
        fprintf(stderr, "hello: close stdin: %s\n", err.message);
    return NULL;
}

static int fail(const char *what, const cocoon_error *err)
{
    fprintf(stderr, "hello: %s: %s\n", what, err->message);
    return 1;
}

int main(void)
{
    cocoon_error err;
    cocoon_runtime *rt;
    if (cocoon_runtime_open(NULL, &rt, &err) < 0)
        return fail("runtime", &err);

    cocoon_box_options bo;
    cocoon_box_options_init(&bo); /* the size and every default, then what we want */
    bo.ephemeral = 1;             /* removed when it stops or we exit */
    cocoon_box *box;
    if (cocoon_box_create(rt, &bo, &box, &err) < 0) {
        cocoon_runtime_close(rt);
        return fail("create", &err);
    }
    int rc = 1;
    if (cocoon_box_start(box, &err) < 0) {
        fail("start", &err);
        goto out;
    }
    printf("box %s is running (ready in %d ms)\n", cocoon_box_id(box), cocoon_box_ready_ms(box));

    /* 1: output through callbacks */
    const char *argv1[] = {"sh", "-c", "echo hello from $(uname -s); echo a warning >&2; exit 3", NULL};
    cocoon_exec_options o;
    cocoon_exec_options_init(&o);
    o.argv = argv1;
    o.on_stdout = on_stdout;
    o.on_stderr = on_stderr;
    o.user_data = "first";
    cocoon_exit_status st;
    if (cocoon_box_run(box, &o, &st, &err) < 0) {
        fail("first command", &err);
        goto out;
    }
    printf("first command exited with %d\n", cocoon_exit_status_code(&st));

    /* 2: stdin written from another thread while this one waits for the output */
    const char *argv2[] = {"tr", "a-z", "A-Z", NULL};
    cocoon_exec_options_init(&o);
    o.argv = argv2;
    o.stdin_fd = COCOON_STDIN_API;
    o.on_stdout = on_stdout;
    o.on_stderr = on_stderr;
    o.user_data = "second";
    cocoon_exec *ex;
    if (cocoon_exec_start(box, &o, &ex, &err) < 0) {
        fail("second command", &err);
        goto out;
    }
    pthread_t t;
    pthread_create(&t, NULL, feeder, ex);
    int wrc = cocoon_exec_wait(ex, &st, &err);
    pthread_join(t, NULL);
    cocoon_exec_free(ex);
    if (wrc < 0) {
        fail("second command", &err);
        goto out;
    }
    printf("second command exited with %d\n", cocoon_exit_status_code(&st));
    rc = 0;
out:
    if (cocoon_box_remove(box, 1, &err) < 0) {
        fail("remove", &err);
        rc = 1;
    } else {
        printf("box removed\n");
    }
    cocoon_box_close(box);
    cocoon_runtime_close(rt);
    return rc;
}
