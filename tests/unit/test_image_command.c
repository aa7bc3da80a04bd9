/* Unit tests of docker's rules for what runs in a box (src/lib/command.c,
 * cocoon_image_command): CMD replaced by the caller's arguments, ENTRYPOINT kept unless
 * overridden (and then the image's CMD dropped), Env merged with the caller's entries
 * winning, WorkingDir and User as defaults, /bin/sh when nobody names a command. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cocoon.h"

static char *IMG_ENV[] = {"PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8", "MODE=image", NULL};
static char *IMG_ENTRYPOINT[] = {"/entry.sh", "--flag", NULL};
static char *IMG_CMD[] = {"serve", "--port", "80", NULL};
static char IMG_WORKDIR[] = "/app";
static char IMG_USER[] = "1234:5678";

static cocoon_image_config image(int entrypoint, int cmd)
{
    cocoon_image_config c = {IMG_ENV, entrypoint ? IMG_ENTRYPOINT : NULL, cmd ? IMG_CMD : NULL, IMG_WORKDIR, IMG_USER};
    return c;
}

/* argv as one string, "a|b|c", for compact expectations. */
static void assert_argv(char **argv, const char *want)
{
    char got[1024] = "";
    size_t n = 0;
    for (size_t i = 0; argv[i]; i++)
        n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", i ? "|" : "", argv[i]);
    assert_string_equal(got, want);
}

static void resolve(const cocoon_image_config *img, const cocoon_command_options *o, cocoon_command *out)
{
    cocoon_error err;
    if (cocoon_image_command(img, o, out, &err) != 0)
        fail_msg("cocoon_image_command: %s", err.message);
}

static void test_cmd_replaced_entrypoint_kept(void **unused)
{
    cocoon_image_config img = image(1, 1);
    cocoon_command_options o;
    cocoon_command c;
    cocoon_command_options_init(&o);
    resolve(&img, &o, &c); /* nothing asked: ENTRYPOINT + CMD */
    assert_argv(c.argv, "/entry.sh|--flag|serve|--port|80");
    cocoon_command_free(&c);

    static const char *const args[] = {"migrate", "--dry-run", NULL};
    o.argv = args; /* arguments replace CMD, behind the ENTRYPOINT */
    resolve(&img, &o, &c);
    assert_argv(c.argv, "/entry.sh|--flag|migrate|--dry-run");
    cocoon_command_free(&c);

    static const char *const none[] = {NULL};
    o.argv = none; /* an empty list is no arguments */
    resolve(&img, &o, &c);
    assert_argv(c.argv, "/entry.sh|--flag|serve|--port|80");
    cocoon_command_free(&c);

    img = image(0, 1); /* no ENTRYPOINT: the arguments are the command */
    o.argv = args;
    resolve(&img, &o, &c);
    assert_argv(c.argv, "migrate|--dry-run");
    cocoon_command_free(&c);
    o.argv = NULL;
    resolve(&img, &o, &c);
    assert_argv(c.argv, "serve|--port|80");
    cocoon_command_free(&c);
}

static void test_entrypoint_override(void **unused)
{
    cocoon_image_config img = image(1, 1);
    cocoon_command_options o;
    cocoon_command c;
    cocoon_command_options_init(&o);
    o.entrypoint = "/bin/bash"; /* replaces ENTRYPOINT and drops the image's CMD */
    resolve(&img, &o, &c);
    assert_argv(c.argv, "/bin/bash");
    cocoon_command_free(&c);

    static const char *const args[] = {"-c", "echo hi", NULL};
    o.argv = args;
    resolve(&img, &o, &c);
    assert_argv(c.argv, "/bin/bash|-c|echo hi");
    cocoon_command_free(&c);

    o.entrypoint = ""; /* none at all: the arguments run as given (exec) */
    static const char *const ls[] = {"ls", "-l", NULL};
    o.argv = ls;
    resolve(&img, &o, &c);
    assert_argv(c.argv, "ls|-l");
    cocoon_command_free(&c);

    o.argv = NULL; /* no entrypoint, no arguments, the image's CMD dropped: the shell */
    resolve(&img, &o, &c);
    assert_argv(c.argv, "/bin/sh");
    cocoon_command_free(&c);
}

static void test_default_shell(void **unused)
{
    cocoon_command c;
    resolve(NULL, NULL, &c); /* no image config, nothing asked */
    assert_argv(c.argv, "/bin/sh");
    assert_non_null(c.env);
    assert_null(c.env[0]);
    assert_null(c.cwd);
    assert_null(c.user);
    cocoon_command_free(&c);
}

static void test_env_merge(void **unused)
{
    cocoon_image_config img = image(0, 1);
    cocoon_command_options o;
    cocoon_command c;
    cocoon_command_options_init(&o);
    resolve(&img, &o, &c);
    assert_argv(c.env, "PATH=/usr/local/bin:/usr/bin|LANG=C.UTF-8|MODE=image");
    cocoon_command_free(&c);

    /* the caller's entries win over the image's of the same name, and come last */
    static const char *const env[] = {"MODE=user", "EXTRA=1", "MOD=x", NULL};
    o.env = env;
    resolve(&img, &o, &c);
    assert_argv(c.env, "PATH=/usr/local/bin:/usr/bin|LANG=C.UTF-8|MODE=user|EXTRA=1|MOD=x");
    cocoon_command_free(&c);

    static const char *const empty_value[] = {"LANG=", NULL};
    o.env = empty_value; /* an empty value still overrides */
    resolve(&img, &o, &c);
    assert_argv(c.env, "PATH=/usr/local/bin:/usr/bin|MODE=image|LANG=");
    cocoon_command_free(&c);
}

static void test_workdir_and_user_defaults(void **unused)
{
    cocoon_image_config img = image(0, 1);
    cocoon_command_options o;
    cocoon_command c;
    cocoon_command_options_init(&o);
    resolve(&img, &o, &c);
    assert_string_equal(c.cwd, "/app");
    assert_string_equal(c.user, "1234:5678");
    cocoon_command_free(&c);

    o.cwd = "/tmp";
    o.user = "root";
    resolve(&img, &o, &c);
    assert_string_equal(c.cwd, "/tmp");
    assert_string_equal(c.user, "root");
    cocoon_command_free(&c);

    static char empty[] = "";
    img.working_dir = empty; /* an image's empty WorkingDir/User mean the defaults */
    img.user = empty;
    cocoon_command_options_init(&o);
    resolve(&img, &o, &c);
    assert_null(c.cwd);
    assert_null(c.user);
    cocoon_command_free(&c);
}

/* The result is a copy: nothing points into the image config or the request. */
static void test_result_owns_its_strings(void **unused)
{
    char env0[] = "A=1", ep0[] = "/e", wd[] = "/w";
    char *env[] = {env0, NULL}, *ep[] = {ep0, NULL};
    cocoon_image_config img = {env, ep, NULL, wd, NULL};
    char user[] = "u";
    cocoon_command_options o;
    cocoon_command_options_init(&o);
    o.user = user;
    cocoon_command c;
    resolve(&img, &o, &c);
    env0[0] = ep0[1] = wd[1] = user[0] = 'X';
    assert_string_equal(c.env[0], "A=1");
    assert_string_equal(c.argv[0], "/e");
    assert_string_equal(c.cwd, "/w");
    assert_string_equal(c.user, "u");
    cocoon_command_free(&c);
    cocoon_command_free(&c); /* freeing twice is harmless */

    cocoon_error err;
    o.size = 0; /* options never initialised */
    assert_int_equal(cocoon_image_command(&img, &o, &c, &err), -1);
    assert_int_equal(err.code, COCOON_E_INVALID);
    assert_null(c.argv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_replaced_entrypoint_kept),
        cmocka_unit_test(test_entrypoint_override),
        cmocka_unit_test(test_default_shell),
        cmocka_unit_test(test_env_merge),
        cmocka_unit_test(test_workdir_and_user_defaults),
        cmocka_unit_test(test_result_owns_its_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
