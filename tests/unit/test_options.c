/* Unit tests of the ABI rule of the public options structs (src/lib/options.c): every
 * _init sets the size; a program built with an older, smaller struct has its later
 * fields read as their defaults; fields of a newer header than the library are refused
 * when set and ignored when zero; a struct never initialised (size 0) is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "lib/internal.h"

static void test_init_sets_size_and_defaults(void **unused)
{
    cocoon_runtime_options r;
    cocoon_pull_options p;
    cocoon_box_options b;
    cocoon_exec_options e;
    cocoon_copy_options c;
    cocoon_command_options m;
    memset(&e, 0x55, sizeof(e));
    cocoon_runtime_options_init(&r);
    cocoon_pull_options_init(&p);
    cocoon_box_options_init(&b);
    cocoon_exec_options_init(&e);
    cocoon_copy_options_init(&c);
    cocoon_command_options_init(&m);
    assert_int_equal(r.size, sizeof(r));
    assert_int_equal(p.size, sizeof(p));
    assert_int_equal(b.size, sizeof(b));
    assert_int_equal(e.size, sizeof(e));
    assert_int_equal(c.size, sizeof(c));
    assert_int_equal(m.size, sizeof(m));
    assert_true(e.stdin_fd == COCOON_STDIN_NONE && e.stdout_fd == -1 && e.stderr_fd == -1 && !e.argv);
}

/* The copy the library works on, as every public entry point makes it. */
static int load_exec(const cocoon_exec_options *caller, cocoon_exec_options *out, cocoon_error *err)
{
    return LIB_OPTIONS(cocoon_exec_options, *out, caller, err);
}

/* cocoon_attach_options: every fd defaults to -1 (none), never 0 (stdin). */
static void test_attach_options(void **unused)
{
    (void)unused;
    cocoon_attach_options caller, seen;
    cocoon_error err;
    memset(&caller, 0x55, sizeof(caller));
    cocoon_attach_options_init(&caller);
    assert_int_equal(caller.size, sizeof(caller));
    assert_true(caller.stdin_fd == -1 && caller.stdout_fd == -1 && caller.stderr_fd == -1 && caller.notice_fd == -1);
    assert_true(!caller.detach_keys && !caller.rows && !caller.cols);
    caller.stdin_fd = 0;
    caller.notice_fd = 2;
    caller.size = offsetof(cocoon_attach_options, notice_fd); /* a header from before notice_fd */
    cocoon_attach_options_init(&seen);
    assert_int_equal(LIB_OPTIONS(cocoon_attach_options, seen, &caller, &err), 0);
    assert_int_equal(seen.stdin_fd, 0);
    assert_int_equal(seen.notice_fd, -1);
}

static void test_older_caller_gets_defaults(void **unused)
{
    static const char *const argv[] = {"true", NULL};
    cocoon_exec_options caller, seen;
    cocoon_error err;
    cocoon_exec_options_init(&caller);
    caller.argv = argv;
    caller.stdin_fd = 7;
    caller.stdout_fd = 8;
    caller.rows = 50;
    caller.size = offsetof(cocoon_exec_options, stdin_fd); /* an older header ended before stdin_fd */
    assert_int_equal(load_exec(&caller, &seen, &err), 0);
    assert_ptr_equal(seen.argv, argv);
    assert_int_equal(seen.stdin_fd, COCOON_STDIN_NONE); /* not 7: the old program has no such field */
    assert_int_equal(seen.stdout_fd, -1);
    assert_int_equal(seen.rows, 0);
    assert_int_equal(seen.size, sizeof(seen));

    caller.size = sizeof(caller);
    assert_int_equal(load_exec(&caller, &seen, &err), 0);
    assert_true(seen.stdin_fd == 7 && seen.stdout_fd == 8 && seen.rows == 50);

    assert_int_equal(load_exec(NULL, &seen, &err), 0); /* NULL: the defaults */
    assert_true(seen.stdin_fd == COCOON_STDIN_NONE && !seen.argv);
}

/* A program built against a newer header: its struct is larger than ours. */
struct newer_exec_options {
    cocoon_exec_options known;
    uint64_t future_field;
};

static void test_newer_caller(void **unused)
{
    struct newer_exec_options caller;
    memset(&caller, 0, sizeof(caller));
    cocoon_exec_options_init(&caller.known);
    caller.known.size = sizeof(caller);
    caller.known.rows = 30;
    cocoon_exec_options seen;
    cocoon_error err;
    assert_int_equal(load_exec(&caller.known, &seen, &err), 0); /* unknown fields left zero: fine */
    assert_int_equal(seen.rows, 30);
    caller.future_field = 1;
    assert_int_equal(load_exec(&caller.known, &seen, &err), -1);
    assert_int_equal(err.code, COCOON_E_UNSUPPORTED);
    assert_non_null(strstr(err.message, "cocoon_exec_options fields this libcocoon"));
}

static void test_uninitialised_refused(void **unused)
{
    cocoon_box_options b = {0}; /* the mistake: fields set without cocoon_box_options_init */
    b.cpus = 2;
    cocoon_box_options seen;
    cocoon_error err;
    assert_int_equal(LIB_OPTIONS(cocoon_box_options, seen, &b, &err), -1);
    assert_int_equal(err.code, COCOON_E_INVALID);
    assert_non_null(strstr(err.message, "cocoon_box_options_init()"));
    b.size = 1u << 20; /* garbage */
    assert_int_equal(LIB_OPTIONS(cocoon_box_options, seen, &b, &err), -1);
    assert_int_equal(err.code, COCOON_E_INVALID);

    /* through the public calls too, before anything else happens */
    cocoon_runtime_options r = {0};
    cocoon_runtime *rt = NULL;
    assert_int_equal(cocoon_runtime_open(&r, &rt, &err), -1);
    assert_null(rt);
    assert_non_null(strstr(err.message, "cocoon_runtime_options_init()"));
    cocoon_copy_options c = {0};
    struct lib_copy_limits lim;
    assert_int_equal(lib_copy_limits(&c, &lim, &err), -1);
    assert_non_null(strstr(err.message, "cocoon_copy_options_init()"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_sets_size_and_defaults),
        cmocka_unit_test(test_older_caller_gets_defaults),
        cmocka_unit_test(test_attach_options),
        cmocka_unit_test(test_newer_caller),
        cmocka_unit_test(test_uninitialised_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
