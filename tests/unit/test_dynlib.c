/* Unit tests of the libraries loaded on first use (src/util/dynlib.c and the tables
 * dl_archive.c, dl_curl.c, dl_ext2fs.c, dl_yaml.c): a missing library or symbol gives an error
 * naming what to install, the outcome is kept, and the real tables resolve every
 * function cocoon calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/dl_archive.h"
#include "util/dl_curl.h"
#include "util/dl_ext2fs.h"
#include "util/dl_yaml.h"
#include "util/dynlib.h"

/* zlib is on every host cocoon builds on (libarchive, libcurl and sqlite need it). */
static const char *(*sym_zlibVersion)(void);
static int (*sym_deflateEnd)(void *);
static void *sym_missing;

static void test_missing_library_names_the_package(void **state)
{
    static const struct dynlib_symbol syms[] = {{"zlibVersion", &sym_zlibVersion}};
    static struct dynlib lib = DYNLIB_INIT("libcocoon-test-absent.so.7", "testing", "cocoon-test-pkg", syms);
    char err[512];
    assert_int_equal(dynlib_load(&lib, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "libcocoon-test-absent.so.7 is needed for testing"));
    assert_non_null(strstr(err, "install the package cocoon-test-pkg"));
    assert_null(sym_zlibVersion);
    char again[512];
    assert_int_equal(dynlib_load(&lib, again, sizeof(again)), -1); /* the outcome is kept */
    assert_string_equal(err, again);
}

static void test_missing_symbol_fails_the_load(void **state)
{
    static const struct dynlib_symbol syms[] = {{"deflateEnd", &sym_deflateEnd},
                                                {"cocoon_no_such_function", &sym_missing}};
    static struct dynlib lib = DYNLIB_INIT("libz.so.1", "testing", "zlib1g", syms);
    char err[512];
    assert_int_equal(dynlib_load(&lib, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "lacks cocoon_no_such_function"));
    assert_null(sym_deflateEnd); /* nothing half-filled is left to call */
    assert_null(sym_missing);
}

static void test_loaded_library_fills_the_slots(void **state)
{
    static const struct dynlib_symbol syms[] = {{"zlibVersion", &sym_zlibVersion}};
    static struct dynlib lib = DYNLIB_INIT("libz.so.1", "testing", "zlib1g", syms);
    char err[512] = "";
    assert_int_equal(dynlib_load(&lib, err, sizeof(err)), 0);
    assert_non_null(sym_zlibVersion);
    assert_int_equal(sym_zlibVersion()[0], '1'); /* zlib 1.x */
    assert_int_equal(dynlib_load(&lib, NULL, 0), 0);
}

static void test_test_hook_refuses_a_listed_library(void **state)
{
    static const struct dynlib_symbol syms[] = {{"zlibVersion", &sym_zlibVersion}};
    static struct dynlib lib = DYNLIB_INIT("libz.so.1", "testing", "zlib1g", syms);
    setenv("COCOON_TEST_DLOPEN_FAIL", "libfoo.so.1,libz.so.1", 1);
    char err[512];
    int rc = dynlib_load(&lib, err, sizeof(err));
    unsetenv("COCOON_TEST_DLOPEN_FAIL");
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "COCOON_TEST_DLOPEN_FAIL"));
}

/* The tables cocoon uses: every name resolves in the installed libraries, and the
 * functions work through the pointers. */
static void test_tables_resolve(void **state)
{
    char err[512] = "";
    assert_int_equal(dl_archive_load(err, sizeof(err)), 0);
    struct archive_entry *e = sym_archive_entry_new();
    assert_non_null(e);
    sym_archive_entry_set_pathname(e, "a/b");
    assert_string_equal(sym_archive_entry_pathname(e), "a/b");
    sym_archive_entry_free(e);
    assert_int_equal(dl_curl_load(err, sizeof(err)), 0);
    CURL *c = sym_curl_easy_init();
    assert_non_null(c);
    sym_curl_easy_cleanup(c);
    assert_int_equal(dl_ext2fs_load(err, sizeof(err)), 0);
    assert_non_null(*sym_unix_io_manager);                            /* a data symbol: the variable's address */
    assert_string_equal(sym_error_message(ENOENT), strerror(ENOENT)); /* from libcom_err, found through it */
    assert_int_equal(dl_yaml_load(err, sizeof(err)), 0);
    yaml_parser_t parser;
    assert_true(sym_yaml_parser_initialize(&parser));
    sym_yaml_parser_delete(&parser);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_library_names_the_package),
        cmocka_unit_test(test_missing_symbol_fails_the_load),
        cmocka_unit_test(test_loaded_library_fills_the_slots),
        cmocka_unit_test(test_test_hook_refuses_a_listed_library),
        cmocka_unit_test(test_tables_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
