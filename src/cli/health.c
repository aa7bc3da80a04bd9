/* Health checks on the command line: the --health-* options of `run` and `create`, and
 * `cocoon wait`, which blocks until a box's main process ends (printing its exit code,
 * as `docker wait` does) or until the box is healthy or running. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "boxcfg/healthspec.h"
#include "cli/cli.h"

int cli_health_option(struct cli_health *h, const char *name, const char *arg)
{
    if (!h->given && !h->none)
        cocoon_health_options_init(&h->o);
    char why[256], what[64];
    snprintf(what, sizeof(what), "--%s", name);
    int rc = 0;
    if (!strcmp(name, "no-healthcheck")) {
        h->none = 1;
        return 0;
    }
    h->given = 1;
    if (!strcmp(name, "health-cmd")) {
        h->o.cmd = arg;
    } else if (!strcmp(name, "health-retries")) {
        return cli_parse_uint(arg, what, 1, HEALTH_RETRIES_MAX, &h->o.retries);
    } else if (!strcmp(name, "health-on-failure")) {
        enum health_on_failure f;
        rc = health_on_failure_parse(arg, &f, why, sizeof(why));
        h->o.on_failure = arg;
    } else {
        uint32_t ms = 0;
        rc = health_duration_parse(arg, what, &ms, why, sizeof(why));
        if (rc == 0 && strcmp(name, "health-start-period") && ms < HEALTH_DURATION_MIN_MS) {
            snprintf(why, sizeof(why), "%s %s: at least 1s (a shorter one would keep the guest busy)", what, arg);
            rc = -1;
        }
        unsigned *field = !strcmp(name, "health-interval")  ? &h->o.interval_ms
                          : !strcmp(name, "health-timeout") ? &h->o.timeout_ms
                                                            : &h->o.start_period_ms;
        *field = ms;
    }
    if (rc < 0)
        cli_error("%s", why);
    return rc;
}

int cli_health_apply(cocoon_box *box, const struct cli_health *h)
{
    if (h->none && h->given) {
        cli_error("--no-healthcheck and --health-* options contradict each other");
        return -1;
    }
    if (!h->given && !h->none)
        return 0;
    if (h->given && !h->o.cmd) {
        cli_error("--health-interval, --health-timeout, --health-retries and --health-start-period need "
                  "--health-cmd CMD");
        return -1;
    }
    cocoon_error err;
    if (cocoon_box_set_health(box, h->none ? NULL : &h->o, &err) < 0) {
        cli_fail(&err);
        return -1;
    }
    return 0;
}

int cli_health_from_spec(cocoon_box *box, json_t *spec_box)
{
    json_t *hc = json_object_get(spec_box, "healthcheck");
    json_t *argv = json_object_get(hc, "argv");
    if (!json_is_array(argv))
        return 0;
    size_t n = json_array_size(argv);
    const char **test = calloc(n + 1, sizeof(*test));
    if (!test) {
        cli_error("out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        test[i] = json_string_value(json_array_get(argv, i));
    cocoon_health_options o;
    cocoon_health_options_init(&o);
    o.test = test;
    o.interval_ms = (unsigned)json_integer_value(json_object_get(hc, "interval_ms"));
    o.timeout_ms = (unsigned)json_integer_value(json_object_get(hc, "timeout_ms"));
    o.start_period_ms = (unsigned)json_integer_value(json_object_get(hc, "start_period_ms"));
    o.retries = (unsigned)json_integer_value(json_object_get(hc, "retries"));
    o.on_failure = json_string_value(json_object_get(hc, "on_failure"));
    cocoon_error err;
    int rc = cocoon_box_set_health(box, &o, &err);
    free(test);
    if (rc < 0)
        cli_fail(&err);
    return rc;
}

static const char wait_help[] =
    "usage: cocoon wait [--condition exited|healthy|running] [--timeout DUR] BOX...\n"
    "\n"
    "Blocks until each box's condition holds:\n"
    "  exited (default)  its main process ended for good, or the box stopped; prints the\n"
    "                    exit code (128+N for signal N: 143 when the box's stop ended it; 137\n"
    "                    when its end went unseen; 0 without a main process), one per box\n"
    "  healthy           its health check passed; fails when the box is stopped first\n"
    "  running           the box runs\n"
    "  --timeout DUR     give up after DUR (30s, 2m...): exit 124\n";

struct wait_args {
    cocoon_wait_condition cond;
    int timeout_ms;
};

static int wait_one(cocoon_box *box, int i, void *arg)
{
    (void)i;
    struct wait_args *a = arg;
    cocoon_error err;
    int code = 0;
    int rc = cocoon_box_wait(box, a->cond, a->timeout_ms, &code, &err);
    if (rc < 0)
        return cli_fail(&err);
    if (rc == 1) {
        cli_error("box %s: timed out", cocoon_box_id(box));
        return CLI_EXIT_TIMEOUT;
    }
    if (a->cond == COCOON_WAIT_EXITED)
        printf("%d\n", code);
    fflush(stdout);
    return 0;
}

int cmd_wait(int argc, char **argv)
{
    static const struct option longs[] = {{"condition", required_argument, NULL, 'c'},
                                          {"timeout", required_argument, NULL, 'T'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    struct wait_args a = {.cond = COCOON_WAIT_EXITED, .timeout_ms = -1};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        if (c == 'h') {
            fputs(wait_help, stdout);
            return 0;
        }
        if (c == 'c') {
            if (!strcmp(optarg, "exited") || !strcmp(optarg, "not-running"))
                a.cond = COCOON_WAIT_EXITED;
            else if (!strcmp(optarg, "healthy"))
                a.cond = COCOON_WAIT_HEALTHY;
            else if (!strcmp(optarg, "running"))
                a.cond = COCOON_WAIT_RUNNING;
            else
                return cli_usage_error("wait", "--condition: use exited, healthy or running");
        } else if (c == 'T') {
            uint32_t ms;
            char why[256];
            if (health_duration_parse(optarg, "--timeout", &ms, why, sizeof(why)) < 0)
                return cli_usage_error("wait", why);
            a.timeout_ms = (int)ms;
        } else {
            return cli_usage_error("wait", "unknown or incomplete option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("wait", "which box? usage: cocoon wait [--condition C] BOX...");
    return cli_each_box(argv + optind, argc - optind, wait_one, &a);
}
