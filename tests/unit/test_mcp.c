/* Unit tests of the MCP server's pure parts: JSON-RPC classification and answers
 * (src/mcp/jsonrpc.c), the session's lifecycle and dispatch without boxes (version
 * negotiation, methods before initialize, unknown methods), the schema check of tool
 * arguments (src/mcp/tools.c), the repair of text that is not UTF-8, and the host-path
 * allowlist of copies (src/mcp/hostpath.c) with symlink and ".." escapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcp/internal.h"
#include "mcp/jsonrpc.h"
#include "util/util.h"

static enum jrpc_kind parse(const char *text, struct jrpc_msg *m) { return jrpc_parse(text, strlen(text), m); }

static void expect_invalid(const char *text, int code, const char *why_part, int has_id)
{
    struct jrpc_msg m;
    if (parse(text, &m) != JRPC_INVALID)
        fail_msg("%s: not refused", text);
    assert_int_equal(m.code, code);
    if (!strstr(m.error, why_part))
        fail_msg("%s: \"%s\" lacks \"%s\"", text, m.error, why_part);
    assert_int_equal(m.id != NULL, has_id);
    jrpc_msg_free(&m);
}

static void test_classify(void **state)
{
    (void)state;
    struct jrpc_msg m;
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}", &m), JRPC_REQUEST);
    assert_string_equal(m.method, "ping");
    assert_int_equal(json_integer_value(m.id), 7);
    assert_null(m.params);
    jrpc_msg_free(&m);
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"x\",\"params\":{\"k\":1}}", &m),
                     JRPC_REQUEST);
    assert_true(json_is_object(m.params));
    jrpc_msg_free(&m);
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", &m), JRPC_NOTIFICATION);
    jrpc_msg_free(&m);
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", &m), JRPC_RESPONSE);
    jrpc_msg_free(&m);
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":1,\"message\":\"x\"}}", &m),
                     JRPC_RESPONSE);
    jrpc_msg_free(&m);
    /* params null is "absent" */
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":null}", &m), JRPC_REQUEST);
    assert_null(m.params);
    jrpc_msg_free(&m);
}

static void test_faults(void **state)
{
    (void)state;
    expect_invalid("{nope", JRPC_PARSE_ERROR, "parse error", 0);
    expect_invalid("", JRPC_PARSE_ERROR, "parse error", 0);
    expect_invalid("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", JRPC_INVALID_REQUEST, "batches", 0);
    expect_invalid("[]", JRPC_INVALID_REQUEST, "batches", 0);
    expect_invalid("42", JRPC_PARSE_ERROR, "expected", 0);
    expect_invalid("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", JRPC_INVALID_REQUEST, "\"2.0\"", 1);
    expect_invalid("{\"id\":1,\"method\":\"ping\"}", JRPC_INVALID_REQUEST, "\"2.0\"", 1);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", JRPC_INVALID_REQUEST, "not null", 0);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", JRPC_INVALID_REQUEST, "integer", 0);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}", JRPC_INVALID_REQUEST, "integer", 0);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":123456789012345678901234567890,\"method\":\"ping\"}", JRPC_PARSE_ERROR,
                   "too big integer", 0);
    char long_id[400];
    snprintf(long_id, sizeof(long_id), "{\"jsonrpc\":\"2.0\",\"id\":\"%0257d\",\"method\":\"ping\"}", 0);
    expect_invalid(long_id, JRPC_INVALID_REQUEST, "at most 256 bytes", 0);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", JRPC_INVALID_REQUEST, "method", 1);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}", JRPC_INVALID_REQUEST, "method", 1);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\\u0000b\"}", JRPC_PARSE_ERROR, "JSON_ALLOW_NUL", 0);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":[1]}", JRPC_INVALID_PARAMS, "params", 1);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":7}", JRPC_INVALID_REQUEST, "params", 0);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1}", JRPC_INVALID_REQUEST, "method", 1);
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"x\"}", JRPC_PARSE_ERROR, "duplicate", 0);
}

static void test_answers(void **state)
{
    (void)state;
    size_t len;
    json_t *id = json_string("a\nb");
    char *text = jrpc_dump(jrpc_error(id, JRPC_METHOD_NOT_FOUND, "line1\nline2"), &len);
    assert_non_null(text);
    assert_null(strchr(text, '\n')); /* one line: newline-delimited transports rely on it */
    assert_string_equal(text, "{\"jsonrpc\":\"2.0\",\"id\":\"a\\nb\",\"error\":{\"code\":-32601,\"message\":"
                              "\"line1\\nline2\"}}");
    free(text);
    text = jrpc_dump(jrpc_error(NULL, JRPC_PARSE_ERROR, "x"), &len);
    assert_string_equal(text, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\"}}");
    free(text);
    /* a message that is not UTF-8 still makes an answer */
    text = jrpc_dump(jrpc_error(NULL, JRPC_PARSE_ERROR, "bad \xff"), &len);
    assert_non_null(strstr(text, "not UTF-8"));
    free(text);
    json_decref(id);
}

/* HTTP answers in JSON keep the response and drop notifications: a result that holds
 * "method":"notifications/..." (a run_code JSON value) is still the response. */
static void test_notification_or_response(void **state)
{
    (void)state;
    size_t len;
    char *note = jrpc_dump(jrpc_notification("notifications/progress", json_pack("{s:i}", "progress", 1)), &len);
    assert_true(jrpc_is_notification(note, len));
    free(note);
    json_t *id = json_integer(4);
    char *resp = jrpc_dump(jrpc_result(id, json_pack("{s:{s:s}}", "json", "method", "notifications/x")), &len);
    assert_non_null(strstr(resp, "\"method\":\"notifications/x\""));
    assert_false(jrpc_is_notification(resp, len));
    free(resp);
    json_decref(id);
}

/* ---- a session, without boxes ---- */

static char *last;
static int emitted;
static void collect(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    free(last);
    last = strndup(text, len);
    emitted++;
}

static json_t *handle(struct mcp_session *s, const char *text)
{
    emitted = 0;
    free(last);
    last = NULL;
    mcp_session_handle(s, text, strlen(text), collect, NULL);
    return last ? json_loads(last, 0, NULL) : NULL;
}

static json_t *initialize(struct mcp_session *s, const char *version)
{
    char msg[256];
    snprintf(msg, sizeof(msg),
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"%s\"}}",
             version);
    return handle(s, msg);
}

static const char *protocol_of(json_t *answer)
{
    return json_string_value(json_object_get(json_object_get(answer, "result"), "protocolVersion"));
}

static void test_negotiation(void **state)
{
    (void)state;
    const char *cases[][2] = {{"2025-11-25", "2025-11-25"}, {"2025-06-18", "2025-06-18"}, {"2025-03-26", "2025-03-26"},
                              {"2024-11-05", "2024-11-05"}, {"2030-01-01", "2025-11-25"}, {"garbage", "2025-11-25"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mcp_session *s = mcp_session_new("/nonexistent", "stdio");
        json_t *a = initialize(s, cases[i][0]);
        assert_string_equal(protocol_of(a), cases[i][1]);
        assert_string_equal(mcp_session_protocol(s), cases[i][1]);
        json_decref(a);
        mcp_session_end(s, NULL);
    }
}

static int error_code(json_t *answer)
{
    return (int)json_integer_value(json_object_get(json_object_get(answer, "error"), "code"));
}

static void test_dispatch(void **state)
{
    (void)state;
    struct mcp_session *s = mcp_session_new("/nonexistent", "stdio");
    json_t *a = handle(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
    assert_int_equal(error_code(a), JRPC_INVALID_REQUEST); /* before initialize */
    json_decref(a);
    a = handle(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}"); /* ping is always fine */
    assert_true(json_is_object(json_object_get(a, "result")));
    json_decref(a);
    a = handle(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}");
    assert_int_equal(error_code(a), JRPC_INVALID_PARAMS);
    json_decref(a);
    json_decref(initialize(s, "2025-11-25"));
    a = handle(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\"}");
    json_t *tools = json_object_get(json_object_get(a, "result"), "tools");
    assert_int_equal(json_array_size(tools), mcp_tool_count);
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        json_t *schema = json_object_get(t, "inputSchema");
        assert_string_equal(json_string_value(json_object_get(schema, "type")), "object");
        assert_true(json_is_object(json_object_get(schema, "properties")));
    }
    json_decref(a);
    a = handle(s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"sampling/whatever\"}");
    assert_int_equal(error_code(a), JRPC_METHOD_NOT_FOUND);
    json_decref(a);
    a = handle(s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}");
    assert_int_equal(error_code(a), JRPC_INVALID_PARAMS);
    json_decref(a);
    a = handle(s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"box_list\","
                  "\"arguments\":[1]}}");
    assert_true(json_is_true(json_object_get(json_object_get(a, "result"), "isError")));
    json_decref(a);
    /* notifications and a client's responses get no answer */
    assert_null(handle(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
    assert_null(handle(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":9}}"));
    assert_null(handle(s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}"));
    assert_int_equal(emitted, 0);
    mcp_session_end(s, NULL);
}

static void test_message_bound(void **state)
{
    (void)state;
    struct mcp_session *s = mcp_session_new("/nonexistent", "stdio");
    size_t n = MCP_MESSAGE_MAX + 1;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[n] = '\0';
    emitted = 0;
    assert_int_equal(mcp_session_handle(s, big, n, collect, NULL), 1);
    assert_non_null(strstr(last, "larger than"));
    free(big);
    mcp_session_end(s, NULL);
}

/* ---- schemas ---- */

static void expect_args(const char *tool, const char *args_json, const char *why_part)
{
    const struct tool *t = mcp_tool_find(tool);
    assert_non_null(t);
    json_t *args = json_loads(args_json, 0, NULL);
    assert_non_null(args);
    char why[512] = "";
    int rc = mcp_check_args(t, args, why, sizeof(why));
    json_decref(args);
    if (!why_part) {
        if (rc != 0)
            fail_msg("%s %s refused: %s", tool, args_json, why);
        return;
    }
    if (rc == 0 || !strstr(why, why_part))
        fail_msg("%s %s: \"%s\" lacks \"%s\"", tool, args_json, why, why_part);
}

static void test_schemas(void **state)
{
    (void)state;
    for (size_t i = 0; i < mcp_tool_count; i++) {
        json_t *s = mcp_tool_schema(&mcp_tools[i]);
        if (!json_is_object(json_object_get(s, "properties")))
            fail_msg("%s: its schema does not load", mcp_tools[i].name);
        json_decref(s);
        json_t *out = mcp_tool_output_schema(&mcp_tools[i]);
        int want_output = strcmp(mcp_tools[i].name, "exec") == 0 || strcmp(mcp_tools[i].name, "exec_output") == 0;
        if (want_output != (out != NULL) || (out && !json_is_object(json_object_get(out, "properties"))))
            fail_msg("%s: its output schema is %s", mcp_tools[i].name, out ? "broken" : "missing");
        json_decref(out);
    }
    expect_args("exec", "{\"box\":\"b\",\"argv\":[\"ls\"],\"env\":{\"A\":\"1\"},\"timeout_s\":3}", NULL);
    expect_args("exec", "{\"argv\":[\"ls\"]}", "missing required argument \"box\"");
    expect_args("exec", "{\"box\":\"b\",\"argv\":\"ls\"}", "must be an array");
    expect_args("exec", "{\"box\":\"b\",\"argv\":[]}", "items");
    expect_args("exec", "{\"box\":\"b\",\"argv\":[1]}", "must be a string");
    expect_args("exec", "{\"box\":\"b\",\"env\":{\"A\":1}}", "\"A\" must be a string");
    expect_args("exec", "{\"box\":\"b\",\"timeout_s\":0}", "between 1 and 3600");
    expect_args("exec", "{\"box\":\"b\",\"timeout_s\":1.5}", "must be an integer, not number");
    expect_args("exec", "{\"box\":\"b\",\"nope\":1}", "unknown argument \"nope\"");
    expect_args("box_create", "{\"cpus\":65}", "between 1 and 64");
    expect_args("box_create", "{\"keep\":\"yes\"}", "must be a boolean");
    expect_args("exec_signal", "{\"id\":1,\"signal\":\"SEGV\"}", "one of");
    expect_args("file_read", "{\"box\":\"b\",\"path\":\"\"}", "must not be empty");
    char big[300];
    snprintf(big, sizeof(big), "{\"box\":\"%0100d\"}", 0);
    expect_args("box_inspect", big, "longer than 64 bytes");
}

static void test_text_repair(void **state)
{
    (void)state;
    json_t *s = mcp_text("ok\xff\xc3\xa9\xe2\x82", 7);
    assert_non_null(s);
    assert_string_equal(json_string_value(s), "ok\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(s);
    s = mcp_text("a\0b", 3); /* NUL is valid JSON text */
    assert_int_equal(json_string_length(s), 3);
    json_decref(s);
}

/* ---- host paths ---- */

static char root[PATH_MAX];

static int path_ok(const char *path, int for_write, char *out)
{
    char why[2048];
    char resolved[PATH_MAX + 256];
    int rc = mcp_host_path(path, for_write, out ? out : resolved, PATH_MAX + 256, why, sizeof(why));
    return rc;
}

static void test_host_paths(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/cocoon-mcp-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    assert_non_null(realpath(tmpl, root));
    char allowed[PATH_MAX + 16], outside[PATH_MAX + 16], p[PATH_MAX + 64], out[PATH_MAX + 256];
    snprintf(allowed, sizeof(allowed), "%s/in", root);
    snprintf(outside, sizeof(outside), "%s/out", root);
    assert_int_equal(util_mkdir_p(allowed, 0700), 0);
    assert_int_equal(util_mkdir_p(outside, 0700), 0);
    snprintf(p, sizeof(p), "%s/file", allowed);
    assert_int_equal(util_write_file_atomic(p, "x", 1), 0);
    snprintf(p, sizeof(p), "%s/secret", outside);
    assert_int_equal(util_write_file_atomic(p, "s", 1), 0);
    snprintf(p, sizeof(p), "%s/link", allowed);
    assert_int_equal(symlink(outside, p), 0);

    unsetenv("COCOON_MCP_HOST_PATHS");
    snprintf(p, sizeof(p), "%s/file", allowed);
    assert_int_equal(path_ok(p, 0, NULL), -1); /* none set: refused */
    char list[2 * PATH_MAX];
    snprintf(list, sizeof(list), "relative:%s:/nonexistent", allowed);
    setenv("COCOON_MCP_HOST_PATHS", list, 1);
    assert_int_equal(path_ok(p, 0, out), 0);
    assert_string_equal(out, p);
    snprintf(p, sizeof(p), "%s/new-file", allowed); /* a destination that does not exist yet */
    assert_int_equal(path_ok(p, 1, out), 0);
    assert_int_equal(path_ok(p, 0, NULL), -1); /* ... is no source */
    assert_int_equal(path_ok(allowed, 0, NULL), 0);
    snprintf(p, sizeof(p), "%s/secret", outside);
    assert_int_equal(path_ok(p, 0, NULL), -1);
    snprintf(p, sizeof(p), "%s/../out/secret", allowed);
    assert_int_equal(path_ok(p, 0, NULL), -1);
    snprintf(p, sizeof(p), "%s/link/secret", allowed); /* a symlink out */
    assert_int_equal(path_ok(p, 0, NULL), -1);
    snprintf(p, sizeof(p), "%s/link/new", allowed);
    assert_int_equal(path_ok(p, 1, NULL), -1);
    snprintf(p, sizeof(p), "%s/link", allowed);
    assert_int_equal(path_ok(p, 1, NULL), -1);
    snprintf(p, sizeof(p), "%s-sibling", allowed); /* a prefix that is not a parent */
    assert_int_equal(path_ok(p, 1, NULL), -1);
    assert_int_equal(path_ok("relative/x", 1, NULL), -1);
    snprintf(p, sizeof(p), "%s/..", allowed);
    assert_int_equal(path_ok(p, 1, NULL), -1);
    unsetenv("COCOON_MCP_HOST_PATHS");
    util_rm_rf(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),      cmocka_unit_test(test_faults),
        cmocka_unit_test(test_answers),       cmocka_unit_test(test_notification_or_response),
        cmocka_unit_test(test_negotiation),   cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_message_bound), cmocka_unit_test(test_schemas),
        cmocka_unit_test(test_text_repair),   cmocka_unit_test(test_host_paths),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(last);
    return rc;
}
