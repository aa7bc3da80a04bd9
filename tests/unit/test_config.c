/* Unit tests of the config file (src/config): every refusal of the YAML reader and of
 * the schema, checked by its whole "FILE:LINE:COL: message" text; the normalized JSON
 * of the reference example and of the peers' spelling; ${NAME} substitution; the
 * digest (what `cocoon up` compares), the differences in words, and spec.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cocoon.h"
#include "config/config.h"
#include "config/subst.h"

/* A generated file, built with a bound (big files for the bounds' tests). */
struct gen {
    char *buf;
    size_t len, cap;
};

static void gen_add(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void gen_add(struct gen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g->buf + g->len, g->cap - g->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < g->cap - g->len);
    g->len += (size_t)n;
}

static json_t *load(const char *yaml, char *err, size_t errlen)
{
    return config_load_text(yaml, strlen(yaml), "c.yaml", "/p/c.yaml", err, errlen);
}

/* yaml is refused with exactly message. */
static void refused(const char *yaml, const char *message)
{
    char err[2048] = "";
    json_t *cfg = load(yaml, err, sizeof(err));
    if (cfg || strcmp(err, message)) {
        print_error("yaml:\n%s\nexpected: %s\ngot:      %s\n", yaml, message, cfg ? "(accepted)" : err);
        json_decref(cfg);
        fail();
    }
}

static json_t *accepted(const char *yaml)
{
    char err[2048] = "";
    json_t *cfg = load(yaml, err, sizeof(err));
    if (!cfg) {
        print_error("yaml:\n%s\nrefused: %s\n", yaml, err);
        fail();
    }
    return cfg;
}

static json_t *first_box(json_t *cfg) { return json_array_get(json_object_get(cfg, "boxes"), 0); }

static const char example[] = "boxes:\n"
                              "  web:\n"
                              "    image: python:3.12-slim\n"
                              "    cpus: 2\n"
                              "    memory: 512M\n"
                              "    disk: 4G\n"
                              "    env: {DEBUG: \"1\"}\n"
                              "    workdir: /app\n"
                              "    user: app\n"
                              "    ephemeral: false\n"
                              "    network:\n"
                              "      mode: public\n"
                              "      allow: [\"api.openai.com\", \"*.pypi.org\", \"10.0.0.0/8:5432/tcp\"]\n"
                              "      deny: [\"169.254.169.254/32\"]\n"
                              "      ports: [\"8080:80\"]\n"
                              "    scripts:\n"
                              "      test: pytest -q\n"
                              "      build: [make, -j2]\n";

static void test_reference_example(void **state)
{
    json_t *cfg = accepted(example);
    json_t *want = json_loads(
        "{\"file\": \"/p/c.yaml\", \"boxes\": [{\"name\": \"web\", \"image\": \"python:3.12-slim\", \"rootfs\": null, "
        "\"cpus\": 2, \"memory_mib\": 512, \"disk_bytes\": 4294967296, \"env\": {\"DEBUG\": \"1\"}, \"workdir\": "
        "\"/app\", \"user\": \"app\", \"ephemeral\": false, \"network\": {\"mode\": \"public\", \"rules\": [\"allow "
        "api.openai.com\", \"allow *.pypi.org\", \"allow 10.0.0.0/8:5432/tcp\", \"deny 169.254.169.254/32\"], "
        "\"ports\": [\"8080:80\"]}, \"scripts\": {\"test\": [\"/bin/sh\", \"-c\", \"pytest -q\"], \"build\": "
        "[\"make\", \"-j2\"]}, \"command\": null, \"restart\": null, \"healthcheck\": null}]}",
        0, NULL);
    assert_non_null(want);
    const char *digest = json_string_value(json_object_get(first_box(cfg), "digest"));
    assert_non_null(digest);
    assert_int_equal(strlen(digest), 7 + 64);
    assert_memory_equal(digest, "sha256:", 7);
    json_object_del(first_box(cfg), "digest");
    assert_true(json_equal(cfg, want));
    /* the keys in the documented order */
    char *text = json_dumps(first_box(cfg), JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_memory_equal(text, "{\"name\":\"web\",\"image\":", 22);
    free(text);
    json_decref(want);
    json_decref(cfg);
}

static void test_defaults_are_null(void **state)
{
    json_t *cfg = accepted("boxes:\n  a:\n  b: {}\n");
    assert_int_equal(json_array_size(json_object_get(cfg, "boxes")), 2);
    json_t *a = first_box(cfg);
    assert_string_equal(json_string_value(json_object_get(a, "name")), "a");
    assert_true(json_is_null(json_object_get(a, "image")));
    assert_true(json_is_null(json_object_get(a, "env")));
    assert_true(json_is_null(json_object_get(a, "network")));
    assert_true(json_is_null(json_object_get(a, "scripts")));
    assert_int_equal(json_integer_value(json_object_get(a, "cpus")), 0);
    assert_true(json_is_false(json_object_get(a, "ephemeral")));
    /* same spec, other name: same digest */
    assert_true(json_equal(json_object_get(a, "digest"),
                           json_object_get(json_array_get(json_object_get(cfg, "boxes"), 1), "digest")));
    json_decref(cfg);
}

static void test_peers_spelling(void **state)
{
    json_t *cfg = accepted("sandboxes:\n"
                           "  code-runner:\n"
                           "    image: python:3.12-slim\n"
                           "    env: [\"A=1\", \"B=x=y\"]\n"
                           "    network:\n"
                           "      allow: [\"api.openai.com\", \"pypi.org\"]\n"
                           "      block: [\"169.254.169.254/32\"]\n");
    json_t *box = first_box(cfg), *net = json_object_get(box, "network");
    assert_true(json_is_null(json_object_get(net, "mode")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(net, "rules"), 2)), "deny 169.254.169.254/32");
    assert_string_equal(json_string_value(json_object_get(json_object_get(box, "env"), "B")), "x=y");
    json_decref(cfg);
}

static void test_values(void **state)
{
    json_t *cfg = accepted("boxes:\n"
                           "  w:\n"
                           "    rootfs: ../tree\n"
                           "    memory: 2048\n"
                           "    disk: 3221225472\n"
                           "    ephemeral: True\n"
                           "    env: {N: 3, T: true, E: \"\"}\n"
                           "    scripts: {x: \"echo ${HOME:-}\"}\n");
    json_t *box = first_box(cfg);
    assert_string_equal(json_string_value(json_object_get(box, "rootfs")), "/p/../tree");
    assert_int_equal(json_integer_value(json_object_get(box, "memory_mib")), 2048);
    assert_int_equal(json_integer_value(json_object_get(box, "disk_bytes")), 3221225472LL);
    assert_true(json_is_true(json_object_get(box, "ephemeral")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(box, "env"), "N")), "3");
    assert_string_equal(json_string_value(json_object_get(json_object_get(box, "env"), "T")), "true");
    assert_string_equal(json_string_value(json_object_get(json_object_get(box, "env"), "E")), "");
    json_decref(cfg);
    cfg = accepted("boxes: {w: {memory: 1.5G, rootfs: /abs}}\n");
    assert_int_equal(json_integer_value(json_object_get(first_box(cfg), "memory_mib")), 1536);
    assert_string_equal(json_string_value(json_object_get(first_box(cfg), "rootfs")), "/abs");
    json_decref(cfg);
}

static void test_substitution(void **state)
{
    setenv("COCOON_T_IMG", "python:3.12", 1);
    setenv("COCOON_T_CPUS", "4", 1);
    unsetenv("COCOON_T_UNSET");
    json_t *cfg = accepted("boxes:\n"
                           "  w:\n"
                           "    image: ${COCOON_T_IMG}\n"
                           "    cpus: ${COCOON_T_CPUS}\n"
                           "    user: ${COCOON_T_UNSET:-nobody}\n"
                           "    env: {A: \"$$HOME and ${COCOON_T_UNSET:-} $HOME $\"}\n");
    json_t *box = first_box(cfg);
    assert_string_equal(json_string_value(json_object_get(box, "image")), "python:3.12");
    assert_int_equal(json_integer_value(json_object_get(box, "cpus")), 4);
    assert_string_equal(json_string_value(json_object_get(box, "user")), "nobody");
    assert_string_equal(json_string_value(json_object_get(json_object_get(box, "env"), "A")), "$HOME and  $HOME $");
    json_decref(cfg);
    refused("boxes: {w: {image: \"${COCOON_T_UNSET}\"}}\n",
            "c.yaml:1:20: image: ${COCOON_T_UNSET} is not set in the environment (set it, or write "
            "${COCOON_T_UNSET:-DEFAULT})");
    refused("boxes: {w: {image: \"${1X}\"}}\n", "c.yaml:1:20: image: \"${\" must be followed by a variable name "
                                                "(letters, digits, '_'; write $$ for a $)");
    refused("boxes: {w: {image: \"${X\"}}\n", "c.yaml:1:20: image: \"${X\" must end with \"}\" (only ${NAME} and "
                                              "${NAME:-default} are substituted)");
    refused("boxes: {w: {image: \"${X:-a\"}}\n", "c.yaml:1:20: image: \"${X:-\" has no closing \"}\"");
    refused("boxes: {w: {image: \"${X-a}\"}}\n", "c.yaml:1:20: image: \"${X\" must end with \"}\" (only ${NAME} and "
                                                 "${NAME:-default} are substituted)");
    refused("boxes: {w: {cpus: \"${COCOON_T_CPUS}\"}}\n",
            "c.yaml:1:19: cpus: expected a whole number from 1 to 64, got the quoted text \"4\" (write it without "
            "quotes)");
}

static void test_substitution_bounds(void **state)
{
    size_t big = CONFIG_VALUE_MAX / 2 + 1;
    char *value = malloc(big + 1);
    memset(value, 'v', big);
    value[big] = 0;
    setenv("COCOON_T_BIG", value, 1);
    free(value);
    refused("boxes: {w: {user: \"${COCOON_T_BIG}${COCOON_T_BIG}\"}}\n",
            "c.yaml:1:19: user: longer than 65536 bytes after substitution");
    /* many values of one variable: the whole file's budget */
    size_t n = CONFIG_EXPANDED_MAX / big + 2;
    struct gen g = {.buf = malloc(64 + n * 32), .cap = 64 + n * 32};
    gen_add(&g, "boxes:\n  w:\n    env:\n");
    for (size_t i = 0; i < n; i++)
        gen_add(&g, "      V%zu: ${COCOON_T_BIG}\n", i);
    char err[2048];
    json_t *cfg = load(g.buf, err, sizeof(err));
    assert_null(cfg);
    assert_non_null(strstr(err, ": env value: substitutions add more than 4194304 bytes to the file"));
    free(g.buf);
    unsetenv("COCOON_T_BIG");
}

static void test_yaml_refusals(void **state)
{
    refused("boxes:\n  web: [\n", "c.yaml:3:1: YAML syntax: while parsing a flow node did not find expected node "
                                  "content");
    refused("boxes:\n  web: &a {}\n  api: *a\n",
            "c.yaml:2:8: anchor &a: anchors and aliases are not accepted (write the value out)");
    refused("boxes:\n  web: {}\n  api: *a\n", "c.yaml:3:8: alias *a: anchors and aliases are not accepted (write the "
                                              "value out)");
    refused("boxes:\n  web: {image: &x default}\n",
            "c.yaml:2:16: anchor &x: anchors and aliases are not accepted (write the value out)");
    refused("boxes:\n  web: {cpus: !!int 2}\n",
            "c.yaml:2:15: tag tag:yaml.org,2002:int: tags are not accepted (write a plain value)");
    refused("boxes: !!map\n  web: {}\n",
            "c.yaml:1:8: tag tag:yaml.org,2002:map: tags are not accepted (write a plain value)");
    refused("boxes:\n  web:\n    env: !e [A=1]\n", "c.yaml:3:10: tag !e: tags are not accepted (write a plain value)");
    refused("%TAG !e! tag:example.com,2000:\n---\nboxes: {web: {}}\n", "c.yaml:1:1: %TAG directives are not accepted");
    refused("boxes: {web: {}}\n---\nboxes: {api: {}}\n", "c.yaml:2:1: a second document: a config file holds one");
    refused("boxes:\n  web: {}\n  ? [a]\n  : 1\n", "c.yaml:3:5: a key must be a plain name, not a list");
    refused("boxes:\n  web: {}\n  ? {a: 1}\n  : 1\n", "c.yaml:3:5: a key must be a plain name, not a mapping");
    refused("boxes:\n  web:\n    cpus: 1\n    image: x\n    cpus: 2\n",
            "c.yaml:5:5: duplicate key \"cpus\" (first at line 3, column 5)");
    refused("boxes:\n  web: {}\n  web: {}\n", "c.yaml:3:3: duplicate key \"web\" (first at line 2, column 3)");
    refused("boxes:\n  \"w\\0b\": {}\n", "c.yaml:2:3: a key holds a NUL character");
    refused("boxes: {w: {user: \"a\\0b\"}}\n", "c.yaml:1:19: user: holds a NUL character");
    char err[512];
    assert_null(config_load_text("boxes:\0", 7, "c.yaml", "/p/c.yaml", err, sizeof(err)));
    assert_string_equal(err, "c.yaml: holds a NUL byte: not a text file");
}

static void test_yaml_bounds(void **state)
{
    char err[512];
    /* depth */
    char deep[64];
    snprintf(deep, sizeof(deep), "boxes: {w: {env: %s", "[[[[[[[[[[[[[[[[[[[[");
    refused(deep, "c.yaml:1:31: nested more than 16 levels deep");
    /* size */
    size_t big = CONFIG_FILE_MAX + 1;
    struct gen g = {.buf = malloc(big + 1), .cap = big + 1};
    memset(g.buf, '#', big);
    assert_null(config_load_text(g.buf, big, "c.yaml", "/p/c.yaml", err, sizeof(err)));
    assert_string_equal(err, "c.yaml: 1048577 bytes: a config file may have at most 1048576 bytes");
    /* nodes: a list of 100001 values in under 1 MiB */
    gen_add(&g, "boxes: {w: {env: [");
    for (unsigned i = 0; i <= CONFIG_NODES_MAX; i++)
        gen_add(&g, "a,");
    gen_add(&g, "]}}\n");
    assert_null(config_load_text(g.buf, g.len, "c.yaml", "/p/c.yaml", err, sizeof(err)));
    assert_string_equal(err, "c.yaml:1:200005: more than 100000 values in the file");
    /* boxes */
    g.len = 0;
    gen_add(&g, "boxes:\n");
    for (unsigned i = 0; i <= CONFIG_BOXES_MAX; i++)
        gen_add(&g, "  b%u:\n", i);
    assert_null(config_load_text(g.buf, g.len, "c.yaml", "/p/c.yaml", err, sizeof(err)));
    assert_string_equal(err, "c.yaml:2:3: more than 256 boxes in one file");
    /* env entries, scripts */
    g.len = 0;
    gen_add(&g, "boxes:\n  w:\n    env:\n");
    for (unsigned i = 0; i <= CONFIG_ENV_MAX; i++)
        gen_add(&g, "      V%u: x\n", i);
    assert_null(config_load_text(g.buf, g.len, "c.yaml", "/p/c.yaml", err, sizeof(err)));
    assert_string_equal(err, "c.yaml:1028:7: env: more than 1024 variables");
    g.len = 0;
    gen_add(&g, "boxes:\n  w:\n    scripts:\n");
    for (unsigned i = 0; i <= CONFIG_SCRIPTS_MAX; i++)
        gen_add(&g, "      s%u: x\n", i);
    assert_null(config_load_text(g.buf, g.len, "c.yaml", "/p/c.yaml", err, sizeof(err)));
    assert_string_equal(err, "c.yaml:4:7: scripts: more than 128 scripts");
    free(g.buf);
}

static void test_top_level_refusals(void **state)
{
    refused("", "c.yaml: the file is empty: describe boxes under \"boxes:\" (see docs/config.md)");
    refused("# only a comment\n", "c.yaml: the file is empty: describe boxes under \"boxes:\" (see docs/config.md)");
    refused("- web\n", "c.yaml:1:1: expected a mapping with \"boxes:\", got a list");
    refused("{}\n", "c.yaml:1:1: no \"boxes:\" in the file");
    refused("boxs:\n  web: {}\n", "c.yaml:1:1: unknown key \"boxs\" at the top (did you mean \"boxes\"?)");
    refused("version: 3\nboxes: {}\n", "c.yaml:1:1: unknown key \"version\" at the top (known keys: boxes, sandboxes)");
    refused("boxes: {a: {}}\nsandboxes: {b: {}}\n",
            "c.yaml:2:1: boxes and sandboxes are the same list (first at line 1): use one");
    refused("boxes: {}\n", "c.yaml:1:8: boxes: expected a mapping of box names to their settings, got an empty one");
    refused("boxes:\n", "c.yaml:1:7: boxes: expected a mapping of box names to their settings, got no value");
    refused("sandboxes: [web]\n", "c.yaml:1:12: sandboxes: expected a mapping of box names to their settings, got a "
                                  "list");
}

static void test_secrets(void **state)
{
    (void)state;
    json_t *cfg = accepted("boxes:\n  a:\n    secrets: [K1]\n  b:\n    secrets:\n      K2: x.example.com\n"
                           "      K3: [y.example.com, \"*.z.example.com\"]\n      K4:\n");
    json_t *boxes = json_object_get(cfg, "boxes");
    char *a = json_dumps(json_object_get(json_array_get(boxes, 0), "secrets"), JSON_COMPACT);
    char *b = json_dumps(json_object_get(json_array_get(boxes, 1), "secrets"), JSON_COMPACT);
    assert_string_equal(a, "[{\"name\":\"K1\",\"hosts\":null}]");
    assert_string_equal(
        b, "[{\"name\":\"K2\",\"hosts\":[\"x.example.com\"]},{\"name\":\"K3\",\"hosts\":[\"y.example.com\","
           "\"*.z.example.com\"]},{\"name\":\"K4\",\"hosts\":null}]");
    free(a);
    free(b);
    json_decref(cfg);
    /* where else a value may go, and what a violation does */
    cfg = accepted("boxes:\n  a:\n    secret_violation: block-and-stop-box\n    secrets:\n"
                   "      K5: {hosts: x.example.com, in: [headers, query, body]}\n");
    json_t *box = json_array_get(json_object_get(cfg, "boxes"), 0);
    a = json_dumps(json_object_get(box, "secrets"), JSON_COMPACT);
    assert_string_equal(a, "[{\"name\":\"K5\",\"hosts\":[\"x.example.com\"],\"in\":[\"headers\",\"query\",\"body\"]}]");
    assert_string_equal(json_string_value(json_object_get(box, "secret_violation")), "block-and-stop-box");
    free(a);
    json_decref(cfg);
    refused("boxes:\n  web:\n    secrets: {K: {hosts: a.example.com, in: [cookie]}}\n",
            "c.yaml:3:46: secrets: K: in: expected headers, query or body");
    refused("boxes:\n  web:\n    secret_violation: stop\n",
            "c.yaml:3:23: secret_violation: secret violation action \"stop\": use block, block-and-log or "
            "block-and-stop-box");
}

static void test_box_refusals(void **state)
{
    refused("boxes:\n  -web: {}\n", "c.yaml:2:3: box name \"-web\": use up to 64 letters, digits, '.', '_' or '-', not "
                                    "starting with '.' or '-'");
    refused("boxes:\n  web: [a]\n", "c.yaml:2:8: box web: expected a mapping of its settings, got a list");
    refused("boxes:\n  web: 3\n", "c.yaml:2:8: box web: expected a mapping of its settings, got a single value");
    refused("boxes:\n  web:\n    memroy: 1G\n",
            "c.yaml:3:5: unknown key \"memroy\" in a box (did you mean \"memory\"?)");
    refused("boxes:\n  web:\n    cpu: 2\n", "c.yaml:3:5: unknown key \"cpu\" in a box (did you mean \"cpus\"?)");
    refused("boxes:\n  web:\n    comand: x\n",
            "c.yaml:3:5: unknown key \"comand\" in a box (did you mean \"command\"?)");
    refused(
        "boxes:\n  web:\n    entrypoint: x\n",
        "c.yaml:3:5: unknown key \"entrypoint\" in a box (known keys: image, rootfs, cpus, memory, disk, env, "
        "workdir, user, ephemeral, network, scripts, command, restart, healthcheck, ports, secrets, secret_violation)");
    refused("boxes:\n  web:\n    secrets: OPENAI_API_KEY\n",
            "c.yaml:3:14: secrets: expected a list of names or a mapping NAME: hosts, got a single value");
    refused("boxes:\n  web:\n    secrets: [1KEY]\n",
            "c.yaml:3:15: secrets: \"1KEY\" must be an environment variable name");
    refused("boxes:\n  web:\n    secrets: {KEY: \"*\"}\n", "c.yaml:3:20: secrets: a host is a host name or *.DOMAIN");
    refused("boxes:\n  web:\n    secrets: {KEY: {a: b}}\n", "c.yaml:3:21: secrets: KEY: unknown key \"a\" (hosts, in)");
    refused("boxes:\n  web:\n    volumes: [\"./a:/a\"]\n",
            "c.yaml:3:5: volumes are not supported yet (cocoon does not have them; remove the key)");
    refused("boxes:\n  web:\n    image: x\n    rootfs: /d\n",
            "c.yaml:4:5: box web: give either image or rootfs, not both");
    refused("boxes:\n  web:\n    image:\n", "c.yaml:3:11: image has no value (give one, or leave the key out)");
    refused("boxes:\n  web:\n    image: ~\n", "c.yaml:3:12: image has no value (give one, or leave the key out)");
    refused("boxes:\n  web:\n    image: \"\"\n", "c.yaml:3:12: image: empty");
    refused("boxes:\n  web:\n    image: [a]\n", "c.yaml:3:12: image: expected a single value, got a list");
    refused("boxes:\n  web:\n    user: {a: 1}\n", "c.yaml:3:11: user: expected a single value, got a mapping");
    refused("boxes:\n  web:\n    workdir: app\n", "c.yaml:3:14: workdir: \"app\" must be an absolute path in the box");
    refused("boxes:\n  web:\n    cpus: \"2\"\n", "c.yaml:3:11: cpus: expected a whole number from 1 to 64, got the "
                                                 "quoted text \"2\" (write it without quotes)");
    refused("boxes:\n  web:\n    cpus: 65\n", "c.yaml:3:11: cpus: expected a whole number from 1 to 64, got \"65\"");
    refused("boxes:\n  web:\n    cpus: 0\n", "c.yaml:3:11: cpus: expected a whole number from 1 to 64, got \"0\"");
    refused("boxes:\n  web:\n    cpus: two\n", "c.yaml:3:11: cpus: expected a whole number from 1 to 64, got \"two\"");
    refused("boxes:\n  web:\n    cpus: 99999999999999999999\n",
            "c.yaml:3:11: cpus: expected a whole number from 1 to 64, got \"99999999999999999999\"");
    refused("boxes:\n  web:\n    memory: lots\n",
            "c.yaml:3:13: memory: \"lots\" is not a size: use 512M, 2G or a number of MiB");
    refused("boxes:\n  web:\n    memory: 100000K\n", "c.yaml:3:13: memory: \"100000K\" is not a whole number of MiB");
    refused("boxes:\n  web:\n    memory: 32M\n",
            "c.yaml:3:13: memory: 32M is out of range: at least 64 MiB, at most 1T");
    refused("boxes:\n  web:\n    memory: 2T\n", "c.yaml:3:13: memory: 2T is out of range: at least 64 MiB, at most 1T");
    refused("boxes:\n  web:\n    memory: 512B\n",
            "c.yaml:3:13: memory: \"512B\" is not a size: use 512M, 2G or a number of MiB");
    refused("boxes:\n  web:\n    disk: big\n", "c.yaml:3:11: disk: \"big\" is not a size: use 4G, 512M or a number of "
                                               "bytes");
    refused("boxes:\n  web:\n    disk: 65T\n", "c.yaml:3:11: disk: 65T is out of range: at most 64T");
    refused("boxes:\n  web:\n    ephemeral: yes\n", "c.yaml:3:16: ephemeral: expected true or false, got \"yes\"");
    refused("boxes:\n  web:\n    ephemeral: \"true\"\n", "c.yaml:3:16: ephemeral: expected true or false, got the "
                                                         "quoted text \"true\" (write it without quotes)");
}

static void test_env_refusals(void **state)
{
    refused("boxes:\n  web:\n    env: A=1\n", "c.yaml:3:10: env: expected a mapping (KEY: value) or a list of "
                                              "\"KEY=value\", got a single value");
    refused("boxes:\n  web:\n    env:\n", "c.yaml:3:9: env: expected a mapping (KEY: value) or a list of "
                                          "\"KEY=value\", got no value");
    refused("boxes:\n  web:\n    env: {A: }\n", "c.yaml:3:14: env: A has no value (write A: \"\" for an empty one)");
    refused("boxes:\n  web:\n    env: {A: [1]}\n", "c.yaml:3:14: env: A: expected a single value, got a list");
    refused("boxes:\n  web:\n    env: [\"A\"]\n", "c.yaml:3:11: env: \"A\" is not KEY=value");
    refused("boxes:\n  web:\n    env: [\"=1\"]\n", "c.yaml:3:11: env: \"\" is not a variable name (not empty, no '=')");
    refused("boxes:\n  web:\n    env: {\"A=B\": 1}\n",
            "c.yaml:3:11: env: \"A=B\" is not a variable name (not empty, no '=')");
    refused("boxes:\n  web:\n    env: [\"A=1\", \"A=2\"]\n", "c.yaml:3:18: env: A is given twice");
    refused("boxes:\n  web:\n    env: [[A]]\n", "c.yaml:3:11: env entry: expected a single value, got a list");
}

static void test_network_refusals(void **state)
{
    refused("boxes:\n  web:\n    network: none\n",
            "c.yaml:3:14: network: expected a mapping (mode, allow, deny, ports), got a single value");
    refused("boxes:\n  web:\n    network: {mode: closed}\n",
            "c.yaml:3:21: network.mode: \"closed\" is not a mode: use none, public or open");
    refused("boxes:\n  web:\n    network: {allow: pypi.org}\n",
            "c.yaml:3:22: network.allow: expected a list of rules like [\"api.example.com\"], got a single value");
    refused("boxes:\n  web:\n    network: {deny: [\"not a rule!\"]}\n",
            "c.yaml:3:22: network.deny: rule \"not a rule!\": expected an IPv4 address or CIDR, a domain "
            "(api.example.com, *.example.org), or host, optionally followed by :PORT and /tcp or /udp");
    refused("boxes:\n  web:\n    network: {deny: [a.com], block: [b.com]}\n",
            "c.yaml:3:30: network: deny and block are the same list: use one");
    refused("boxes:\n  web:\n    network: {ports: \"8080:80\"}\n",
            "c.yaml:3:22: network.ports: expected a list like [\"8080:80\"], got a single value");
    refused("boxes:\n  web:\n    network: {ports: [\"80800:80\"]}\n",
            "c.yaml:3:23: network.ports: published port \"80800:80\": ports must be 1-65535");
    refused("boxes:\n  web:\n    network: {allwo: [a.com]}\n",
            "c.yaml:3:15: unknown key \"allwo\" in network (did you mean \"allow\"?)");
    refused("boxes:\n  web:\n    network: {mode: none, allow: [a.com]}\n",
            "c.yaml:3:21: network: mode none has no network: rules and ports need mode public or open");
}

static void test_script_refusals(void **state)
{
    refused("boxes:\n  web:\n    scripts: [a]\n",
            "c.yaml:3:14: scripts: expected a mapping (NAME: command), got a list");
    refused("boxes:\n  web:\n    scripts: {\"a b\": x}\n",
            "c.yaml:3:15: script name \"a b\": use up to 64 letters, digits, '.', '_' or '-'");
    refused("boxes:\n  web:\n    scripts: {t: []}\n",
            "c.yaml:3:18: script t: an empty list (give the program and its arguments)");
    refused("boxes:\n  web:\n    scripts: {t: \"\"}\n", "c.yaml:3:18: script t: an empty command");
    refused("boxes:\n  web:\n    scripts: {t: {a: 1}}\n", "c.yaml:3:18: script t: expected a command (text, run by "
                                                          "/bin/sh -c) or a list (an argv), got a mapping");
    refused("boxes:\n  web:\n    scripts: {t: [a, [b]]}\n",
            "c.yaml:3:22: script t: expected a single value, got a list");
}

/* compose's place for published ports: a box's own ports: joins network.ports */
static void test_box_ports(void **state)
{
    json_t *cfg =
        accepted("boxes:\n  web:\n    ports: [\"8080:80\"]\n    command: nginx\n"
                 "  api:\n    ports: [\"9000:9000\"]\n    network: {allow: [a.com], ports: [\"9001:9001\"]}\n");
    json_t *web = first_box(cfg), *api = json_array_get(json_object_get(cfg, "boxes"), 1);
    json_t *want = json_pack("[s]", "8080:80");
    assert_true(json_equal(json_object_get(json_object_get(web, "network"), "ports"), want));
    json_decref(want);
    assert_true(json_is_null(json_object_get(json_object_get(web, "network"), "mode")));
    want = json_pack("[ss]", "9001:9001", "9000:9000");
    assert_true(json_equal(json_object_get(json_object_get(api, "network"), "ports"), want));
    json_decref(want);
    /* the same box written with network.ports has the same spec */
    json_t *same = accepted("boxes:\n  web:\n    network: {ports: [\"8080:80\"]}\n    command: nginx\n");
    assert_true(json_equal(json_object_get(web, "digest"), json_object_get(first_box(same), "digest")));
    json_decref(same);
    json_decref(cfg);
    refused("boxes:\n  web:\n    ports: \"8080:80\"\n",
            "c.yaml:3:12: ports: expected a list like [\"8080:80\"], got a single value");
    refused("boxes:\n  web:\n    ports: [\"80800:80\"]\n",
            "c.yaml:3:13: ports: published port \"80800:80\": ports must be 1-65535");
    refused("boxes:\n  web:\n    network: {mode: none}\n    ports: [\"8080:80\"]\n",
            "c.yaml:4:12: ports: the box has network mode none: published ports need mode public or open");
    refused("boxes:\n  web:\n    prots: [\"8080:80\"]\n",
            "c.yaml:3:5: unknown key \"prots\" in a box (did you mean \"ports\"?)");
}

static void test_command_and_restart(void **state)
{
    json_t *cfg = accepted("boxes:\n  web:\n    command: python3 -m http.server\n    restart: on-failure:3\n"
                           "  api:\n    command: [uvicorn, app:app]\n");
    json_t *web = first_box(cfg), *api = json_array_get(json_object_get(cfg, "boxes"), 1);
    json_t *want = json_pack("[sss]", "/bin/sh", "-c", "python3 -m http.server");
    assert_true(json_equal(json_object_get(web, "command"), want));
    json_decref(want);
    assert_string_equal(json_string_value(json_object_get(web, "restart")), "on-failure:3");
    want = json_pack("[ss]", "uvicorn", "app:app");
    assert_true(json_equal(json_object_get(api, "command"), want));
    json_decref(want);
    assert_true(json_is_null(json_object_get(api, "restart")));
    /* a changed command or policy changes the spec, and says so */
    json_t *other = accepted("boxes:\n  web:\n    command: python3 -m http.server 9000\n    restart: always\n");
    char diff[256];
    config_box_diff(web, first_box(other), diff, sizeof(diff));
    assert_string_equal(diff, "command changed, restart on-failure:3 -> always");
    assert_false(json_equal(json_object_get(web, "digest"), json_object_get(first_box(other), "digest")));
    /* a box without them keeps the digest it had before these keys existed */
    json_t *plain = accepted("boxes:\n  p:\n    cpus: 2\n");
    json_t *box = json_deep_copy(first_box(plain));
    json_object_del(box, "command");
    json_object_del(box, "restart");
    char before[80];
    assert_int_equal(config_box_digest(box, before), 0);
    assert_string_equal(before, json_string_value(json_object_get(first_box(plain), "digest")));
    json_decref(box);
    json_decref(plain);
    json_decref(other);
    json_decref(cfg);
    refused("boxes:\n  web:\n    command: x\n    restart: sometimes\n",
            "c.yaml:4:14: unknown restart policy \"sometimes\": use no, on-failure[:N], always or unless-stopped");
    refused("boxes:\n  web:\n    restart: always\n",
            "c.yaml:3:5: box web: restart needs a command (the box's main process)");
    refused("boxes:\n  web:\n    command: []\n",
            "c.yaml:3:14: command: an empty list (give the program and its arguments)");
}

static void test_healthcheck(void **state)
{
    json_t *cfg = accepted("boxes:\n  web:\n    healthcheck:\n      test: curl -f localhost\n      interval: 1m30s\n"
                           "      retries: 5\n      on_failure: stop\n"
                           "  api:\n    healthcheck: {cmd: [pg_isready, -q], timeout: 2s}\n");
    json_t *want =
        json_pack("{s:[sss], s:i, s:i, s:i, s:i, s:s}", "argv", "/bin/sh", "-c", "curl -f localhost", "interval_ms",
                  90000, "timeout_ms", 30000, "start_period_ms", 0, "retries", 5, "on_failure", "stop");
    assert_true(json_equal(json_object_get(first_box(cfg), "healthcheck"), want));
    json_decref(want);
    json_decref(cfg);
    /* a bare number is seconds; a check changes the digest and the diff says so */
    json_t *a = accepted("boxes:\n  web:\n    healthcheck: {test: [true], timeout: 2}\n");
    json_t *b = accepted("boxes:\n  web:\n    healthcheck: {test: [true], timeout: 3}\n");
    json_t *plain = accepted("boxes:\n  web: {}\n");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(first_box(a), "healthcheck"), "timeout_ms")),
                     2000);
    char diff[256];
    config_box_diff(first_box(a), first_box(b), diff, sizeof(diff));
    assert_string_equal(diff, "healthcheck changed");
    assert_false(json_equal(json_object_get(first_box(a), "digest"), json_object_get(first_box(b), "digest")));
    /* a box without one keeps the digest it had before the key existed */
    json_t *box = json_deep_copy(first_box(plain));
    json_object_del(box, "healthcheck");
    char before[80];
    assert_int_equal(config_box_digest(box, before), 0);
    assert_string_equal(before, json_string_value(json_object_get(first_box(plain), "digest")));
    json_decref(box);
    json_decref(plain);
    json_decref(a);
    json_decref(b);
    refused("boxes:\n  web:\n    healthcheck: {interval: 1s}\n",
            "c.yaml:3:18: healthcheck: give the check's command as test (text, run by /bin/sh -c, or a list)");
    refused("boxes:\n  web:\n    healthcheck: {test: x, interval: 10ms}\n",
            "c.yaml:3:38: healthcheck.interval: at least 1s");
    refused("boxes:\n  web:\n    healthcheck: {test: x, cmd: y}\n",
            "c.yaml:3:28: healthcheck: test and cmd are the same command: give one");
    refused("boxes:\n  web:\n    healthcheck: true\n",
            "c.yaml:3:18: healthcheck: expected a mapping (test, interval, timeout, retries, start_period), got a "
            "single value");
}

static void test_digest_and_diff(void **state)
{
    json_t *a = accepted("boxes:\n  web:\n    memory: 512\n    env: {A: 1, B: 2}\n    scripts: {t: x}\n");
    json_t *b = accepted("boxes:\n  web:\n    memory: 512M\n    env: {B: 2, A: 1}\n    scripts: {t: y, u: z}\n");
    json_t *c = accepted("boxes:\n  web:\n    memory: 1G\n    cpus: 2\n    env: {A: 9, C: 3}\n"
                         "    network: {ports: [\"8080:80\"]}\n");
    json_t *ba = first_box(a), *bb = first_box(b), *bc = first_box(c);
    /* the env's order and the scripts are not part of the spec */
    assert_true(json_equal(json_object_get(ba, "digest"), json_object_get(bb, "digest")));
    assert_false(json_equal(json_object_get(ba, "digest"), json_object_get(bc, "digest")));
    char diff[512];
    config_box_diff(ba, bb, diff, sizeof(diff));
    assert_string_equal(diff, "");
    config_box_diff(ba, bc, diff, sizeof(diff));
    assert_string_equal(diff, "cpus default -> 2, memory 512 -> 1024 MiB, env A changed, env C added, env B removed, "
                              "network ports changed");
    config_box_diff(ba, bc, diff, 20); /* cut, never overrun */
    assert_int_equal(strlen(diff), 19);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void test_spec_record(void **state)
{
    char dir[] = "/tmp/cocoon-test-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int damaged;
    assert_null(config_spec_read(dir, &damaged));
    assert_int_equal(damaged, 0); /* no record: not made from a file */
    json_t *cfg = accepted(example);
    char err[512];
    assert_int_equal(config_spec_write(dir, CONFIG_ORIGIN_UP, "/p/c.yaml", first_box(cfg), err, sizeof(err)), 0);
    json_t *spec = config_spec_read(dir, &damaged);
    assert_non_null(spec);
    assert_string_equal(json_string_value(json_object_get(spec, "origin")), "up");
    assert_string_equal(json_string_value(json_object_get(spec, "file")), "/p/c.yaml");
    assert_true(json_equal(json_object_get(spec, "box"), first_box(cfg)));
    json_decref(spec);
    char path[128];
    snprintf(path, sizeof(path), "%s/spec.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"origin\": 1}", f);
    fclose(f);
    assert_null(config_spec_read(dir, &damaged));
    assert_int_equal(damaged, 1);
    unlink(path);
    rmdir(dir);
    json_decref(cfg);
}

static void test_load_file(void **state)
{
    char err[512];
    assert_null(config_load_file("/nonexistent/cocoon.yaml", err, sizeof(err)));
    assert_string_equal(err, "/nonexistent/cocoon.yaml: No such file or directory");
    assert_null(config_load_file("/tmp", err, sizeof(err)));
    assert_string_equal(err, "/tmp: not a regular file");
}

/* The public call: the normalized JSON as text, errors by category. */
static void test_public_api(void **state)
{
    char dir[] = "/tmp/cocoon-test-config-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/cocoon.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(example, f);
    fclose(f);
    char *json = NULL;
    cocoon_error err;
    assert_int_equal(cocoon_config_load(path, &json, &err), 0);
    json_t *cfg = json_loads(json, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(cfg, "file")), path);
    assert_int_equal(json_integer_value(json_object_get(first_box(cfg), "memory_mib")), 512);
    json_decref(cfg);
    cocoon_free(json);
    f = fopen(path, "w");
    fputs("boxes:\n  web:\n    cpus: [1]\n", f);
    fclose(f);
    assert_int_equal(cocoon_config_load(path, &json, &err), -1);
    assert_int_equal(err.code, COCOON_E_INVALID);
    char want[256];
    snprintf(want, sizeof(want), "%s:3:11: cpus: expected a single value, got a list", path);
    assert_string_equal(err.message, want);
    assert_null(json);
    unlink(path);
    assert_int_equal(cocoon_config_load(path, &json, &err), -1);
    assert_int_equal(err.code, COCOON_E_NOT_FOUND);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_example),
        cmocka_unit_test(test_defaults_are_null),
        cmocka_unit_test(test_peers_spelling),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_substitution),
        cmocka_unit_test(test_substitution_bounds),
        cmocka_unit_test(test_yaml_refusals),
        cmocka_unit_test(test_yaml_bounds),
        cmocka_unit_test(test_top_level_refusals),
        cmocka_unit_test(test_box_refusals),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_env_refusals),
        cmocka_unit_test(test_network_refusals),
        cmocka_unit_test(test_script_refusals),
        cmocka_unit_test(test_command_and_restart),
        cmocka_unit_test(test_healthcheck),
        cmocka_unit_test(test_digest_and_diff),
        cmocka_unit_test(test_spec_record),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_public_api),
        cmocka_unit_test(test_box_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
