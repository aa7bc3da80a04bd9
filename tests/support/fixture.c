/* One fixture around every test of a cmocka table (fixture.h). */
#include "support/fixture.h"

#include <stdlib.h>
#include <string.h>

int test_run_with_fixture(const char *group, const struct CMUnitTest *tests, size_t n, CMFixtureFunction setup,
                          CMFixtureFunction teardown)
{
    struct CMUnitTest *each = calloc(n ? n : 1, sizeof(*each));
    if (!each)
        return -1;
    memcpy(each, tests, n * sizeof(*each));
    for (size_t i = 0; i < n; i++) {
        if (!each[i].setup_func)
            each[i].setup_func = setup;
        if (!each[i].teardown_func)
            each[i].teardown_func = teardown;
    }
    int failed = _cmocka_run_group_tests(group, each, n, NULL, NULL);
    free(each);
    return failed;
}
