/* Unit tests of the API's routing table (src/serve/route.c): every route with its
 * parameters, the optional routing prefix, 404 against 405 (with the Allow list), and
 * paths whose ids or references break the rules; and of the Idempotency-Key table
 * (src/serve/idempotency.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "serve/idempotency.h"
#include "serve/route.h"

static void expect_route(enum route_method m, const char *path, enum route_id id, const char *box, const char *exec,
                         const char *image)
{
    struct route r;
    if (route_match(m, path, &r) != 0)
        fail_msg("%s: no route (id %d)", path, r.id);
    assert_int_equal(r.id, id);
    assert_string_equal(r.box, box ? box : "");
    assert_string_equal(r.exec, exec ? exec : "");
    assert_string_equal(r.image, image ? image : "");
}

static void test_routes(void **state)
{
    expect_route(M_GET, "/v1/config", R_CONFIG, NULL, NULL, NULL);
    expect_route(M_GET, "/v1/openapi.yaml", R_OPENAPI, NULL, NULL, NULL);
    expect_route(M_POST, "/v1/boxes", R_BOXES, NULL, NULL, NULL);
    expect_route(M_GET, "/v1/boxes/", R_BOXES, NULL, NULL, NULL);
    expect_route(M_DELETE, "/v1/boxes/web-1", R_BOX, "web-1", NULL, NULL);
    expect_route(M_HEAD, "/v1/boxes/abc123", R_BOX, "abc123", NULL, NULL);
    expect_route(M_POST, "/v1/boxes/b/start", R_BOX_START, "b", NULL, NULL);
    expect_route(M_POST, "/v1/boxes/b/exec", R_BOX_EXEC, "b", NULL, NULL);
    expect_route(M_POST, "/v1/boxes/b/run", R_BOX_RUN, "b", NULL, NULL);
    expect_route(M_GET, "/v1/boxes/b/executions", R_BOX_EXECS, "b", NULL, NULL);
    expect_route(M_GET, "/v1/boxes/b/executions/exec_1", R_EXEC, "b", "exec_1", NULL);
    expect_route(M_DELETE, "/v1/boxes/b/executions/exec_1", R_EXEC, "b", "exec_1", NULL);
    expect_route(M_GET, "/v1/boxes/b/executions/e/attach", R_EXEC_ATTACH, "b", "e", NULL);
    expect_route(M_POST, "/v1/boxes/b/executions/e/signal", R_EXEC_SIGNAL, "b", "e", NULL);
    expect_route(M_GET, "/v1/boxes/b/executions/e/output", R_EXEC_OUTPUT, "b", "e", NULL);
    expect_route(M_PUT, "/v1/boxes/b/files", R_FILES, "b", NULL, NULL);
    expect_route(M_GET, "/v1/boxes/b/network/logs", R_NET_LOGS, "b", NULL, NULL);
    expect_route(M_GET, "/v1/boxes/b/fs/stat", R_FS_STAT, "b", NULL, NULL);
    expect_route(M_GET, "/v1/boxes/b/fs/list", R_FS_LIST, "b", NULL, NULL);
    expect_route(M_POST, "/v1/boxes/b/fs/mkdir", R_FS_MKDIR, "b", NULL, NULL);
    expect_route(M_POST, "/v1/boxes/b/fs/remove", R_FS_REMOVE, "b", NULL, NULL);
    expect_route(M_POST, "/v1/acme/boxes/b/fs/move", R_FS_MOVE, "b", NULL, NULL);
    expect_route(M_POST, "/v1/boxes/b/detached", R_DETACH_NEW, "b", NULL, NULL);
    expect_route(M_GET, "/v1/boxes/b/detached/31", R_DETACH, "b", "31", NULL);
    expect_route(M_DELETE, "/v1/acme/boxes/b/detached/31", R_DETACH, "b", "31", NULL);
    expect_route(M_GET, "/v1/boxes/b/detached/31/logs", R_DETACH_LOGS, "b", "31", NULL);
    expect_route(M_GET, "/v1/metrics", R_METRICS, NULL, NULL, NULL);
    expect_route(M_POST, "/v1/boxes/b/snapshots", R_SNAPSHOTS, "b", NULL, NULL);
    expect_route(M_GET, "/v1/boxes/b/snapshots/s-1", R_SNAPSHOT, "b", NULL, NULL);
    expect_route(M_POST, "/v1/boxes/b/snapshots/s-1/restore", R_SNAPSHOT_RESTORE, "b", NULL, NULL);
    struct route snap;
    assert_int_equal(route_match(M_DELETE, "/v1/boxes/b/snapshots/s-1", &snap), 0);
    assert_string_equal(snap.snapshot, "s-1");
    assert_int_equal(route_match(M_GET, "/v1/boxes/b/snapshots/..", &snap), -1);
    assert_int_equal(route_match(M_GET, "/v1/boxes/b/snapshots/s/restore", &snap), -1); /* POST only */
    assert_int_equal(snap.id, R_SNAPSHOT_RESTORE);
    expect_route(M_POST, "/v1/boxes/b/clone", R_BOX_CLONE, "b", NULL, NULL);
    expect_route(M_POST, "/v1/acme/boxes/b/export/", R_BOX_EXPORT, "b", NULL, NULL);
    expect_route(M_POST, "/v1/boxes/import", R_BOX_IMPORT, NULL, NULL, NULL);
    expect_route(M_POST, "/v1/acme/boxes/import/", R_BOX_IMPORT, NULL, NULL, NULL);
    expect_route(M_POST, "/v1/boxes/import/clone", R_BOX_CLONE, "import", NULL, NULL); /* a box named import */
    struct route copy;
    assert_int_equal(route_match(M_GET, "/v1/boxes/b/export", &copy), -1); /* POST only: 405 */
    assert_int_equal(copy.id, R_BOX_EXPORT);
    assert_int_equal(route_match(M_GET, "/v1/boxes/import", &copy), -1);
    assert_int_equal(copy.id, R_BOX_IMPORT);
    assert_int_equal(copy.allowed, M_POST);
    expect_route(M_POST, "/v1/images/pull", R_IMAGE_PULL, NULL, NULL, NULL);
    expect_route(M_GET, "/v1/images/docker.io/library/python:3.12", R_IMAGE, NULL, NULL,
                 "docker.io/library/python:3.12");
    expect_route(M_DELETE, "/v1/images/sha256:abcd", R_IMAGE, NULL, NULL, "sha256:abcd");
    /* a tenant prefix is accepted and ignored */
    expect_route(M_GET, "/v1/acme/boxes", R_BOXES, NULL, NULL, NULL);
    expect_route(M_POST, "/v1/acme/boxes/b/exec", R_BOX_EXEC, "b", NULL, NULL);
    expect_route(M_GET, "/v1/acme/metrics", R_METRICS, NULL, NULL, NULL);
    /* the MCP server, outside /v1 */
    expect_route(M_POST, "/mcp", R_MCP, NULL, NULL, NULL);
    expect_route(M_DELETE, "/mcp/", R_MCP, NULL, NULL, NULL);
}

static void expect_none(enum route_method m, const char *path)
{
    struct route r;
    assert_int_equal(route_match(m, path, &r), -1);
    assert_int_equal(r.id, R_NONE);
}

static void test_not_found(void **state)
{
    expect_none(M_GET, "");
    expect_none(M_GET, "/");
    expect_none(M_GET, "/v2/boxes");
    expect_none(M_GET, "v1/boxes");
    expect_none(M_GET, "/v1//boxes");
    expect_none(M_GET, "/v1/boxes/..");
    expect_none(M_GET, "/v1/boxes/a b");
    expect_none(M_GET, "/v1/boxes/a%2Fb");
    expect_none(M_GET, "/v1/boxes/b/unknown");
    expect_none(M_GET, "/v1/boxes/b/fs");
    expect_none(M_GET, "/v1/boxes/b/fs/chmod");
    expect_none(M_GET, "/v1/boxes/b/fs/list/more");
    expect_none(M_GET, "/v1/boxes/b/executions/e/unknown");
    expect_none(M_GET, "/v1/boxes/b/executions/e/attach/more");
    expect_none(M_GET, "/v1/images/a//b");
    expect_none(M_GET, "/v1/images/../etc");
    expect_none(M_GET, "/v1/a/b/boxes"); /* one prefix segment only */
    expect_none(M_POST, "/mcp/x");
    expect_none(M_POST, "/v1/mcp");
    char longid[300];
    memset(longid, 'a', sizeof(longid));
    memcpy(longid, "/v1/boxes/", 10);
    longid[sizeof(longid) - 1] = '\0';
    expect_none(M_GET, longid);
    expect_none(M_GET, "/v1/a/b/c/d/e/f/g/h/i/j");
}

static void test_method_not_allowed(void **state)
{
    struct route r;
    assert_int_equal(route_match(M_PUT, "/v1/boxes/b", &r), -1);
    assert_int_equal(r.id, R_BOX);
    char allow[64];
    route_allow_text(r.allowed, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, DELETE");
    assert_int_equal(route_match(M_GET, "/v1/boxes/b/exec", &r), -1);
    assert_int_equal(r.id, R_BOX_EXEC);
    assert_int_equal(route_match(M_GET, "/v1/boxes/b/detached", &r), -1); /* POST only */
    assert_int_equal(r.allowed, M_POST);
    assert_int_equal(route_match(M_GET, "/v1/boxes/b/detached/31/logs/x", &r), -1);
    assert_int_equal(r.id, R_NONE);
    assert_int_equal(route_match(M_GET, "/v1/boxes/b/detached/../logs", &r), -1);
    assert_int_equal(r.id, R_NONE);
    assert_int_equal(route_match(M_OTHER, "/v1/config", &r), -1);
    assert_int_equal(route_match(M_GET, "/mcp", &r), -1); /* no server-sent stream */
    assert_int_equal(r.id, R_MCP);
    route_allow_text(r.allowed, allow, sizeof(allow));
    assert_string_equal(allow, "POST, DELETE");
    assert_int_equal(route_method("PATCH"), M_OTHER);
    assert_int_equal(route_method("get"), M_OTHER);
}

static void test_idempotency(void **state)
{
    char box[64];
    assert_int_equal(idempotency_claim(NULL, "{}", 2, box, sizeof(box)), 0);
    assert_int_equal(idempotency_claim("k1", "{\"a\":1}", 7, box, sizeof(box)), 0);
    idempotency_finish("k1", "box111");
    assert_int_equal(idempotency_claim("k1", "{\"a\":1}", 7, box, sizeof(box)), 1);
    assert_string_equal(box, "box111");
    assert_int_equal(idempotency_claim("k1", "{\"a\":2}", 7, box, sizeof(box)), -1);
    /* a failed create frees its key */
    assert_int_equal(idempotency_claim("k2", "{}", 2, box, sizeof(box)), 0);
    idempotency_finish("k2", NULL);
    assert_int_equal(idempotency_claim("k2", "{}", 2, box, sizeof(box)), 0);
    idempotency_finish("k2", "box222");
    /* more keys than the table holds: the oldest make room, nothing breaks */
    for (int i = 0; i < IDEMPOTENCY_KEYS_MAX + 10; i++) {
        char key[32];
        snprintf(key, sizeof(key), "many-%d", i);
        assert_int_equal(idempotency_claim(key, "{}", 2, box, sizeof(box)), 0);
        idempotency_finish(key, "boxmany");
    }
    char key[IDEMPOTENCY_KEY_MAX + 2];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    assert_int_equal(idempotency_claim(key, "{}", 2, box, sizeof(box)), 0); /* too long: not remembered */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_idempotency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
