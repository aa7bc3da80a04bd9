/* Unit tests of image reference parsing (src/image/reference.c): Docker Hub
 * normalisation, hosts with ports, tags and digests, canonical formatting, and the
 * rejection of malformed references with a readable message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "image/image.h"
#include "image/image_int.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct good {
    const char *in, *registry, *repository, *tag, *digest, *canonical;
};

static const struct good GOOD[] = {
    {"python", "docker.io", "library/python", "latest", "", "docker.io/library/python:latest"},
    {"python:3.12-slim", "docker.io", "library/python", "3.12-slim", "", "docker.io/library/python:3.12-slim"},
    {"user/x", "docker.io", "user/x", "latest", "", "docker.io/user/x:latest"},
    {"docker.io/python", "docker.io", "library/python", "latest", "", "docker.io/library/python:latest"},
    {"index.docker.io/library/python:3", "docker.io", "library/python", "3", "", "docker.io/library/python:3"},
    {"ghcr.io/org/tool:v1.2", "ghcr.io", "org/tool", "v1.2", "", "ghcr.io/org/tool:v1.2"},
    {"localhost/x", "localhost", "x", "latest", "", "localhost/x:latest"},
    {"localhost:5000/a/b/c:tag_1", "localhost:5000", "a/b/c", "tag_1", "", "localhost:5000/a/b/c:tag_1"},
    {"127.0.0.1:5000/test/hello", "127.0.0.1:5000", "test/hello", "latest", "", "127.0.0.1:5000/test/hello:latest"},
    {"Registry.Example.COM/x", "Registry.Example.COM", "x", "latest", "", "Registry.Example.COM/x:latest"},
    {"a.b-c.d/foo.bar/baz__q-x:T", "a.b-c.d", "foo.bar/baz__q-x", "T", "", "a.b-c.d/foo.bar/baz__q-x:T"},
    {"python@sha256:" HEX64, "docker.io", "library/python", "", "sha256:" HEX64,
     "docker.io/library/python@sha256:" HEX64},
    {"q.io/p:1@sha256:" HEX64, "q.io", "p", "1", "sha256:" HEX64, "q.io/p:1@sha256:" HEX64},
    {"[::1]:5000/x", "[::1]:5000", "x", "latest", "", "[::1]:5000/x:latest"},
    {"localhost:5000", "docker.io", "library/localhost", "5000", "", "docker.io/library/localhost:5000"},
};

static void test_good(void **state)
{
    for (size_t i = 0; i < sizeof(GOOD) / sizeof(GOOD[0]); i++) {
        const struct good *g = &GOOD[i];
        struct image_ref r;
        char err[512] = "", canon[1200];
        int rc = image_ref_parse(g->in, &r, err, sizeof(err));
        if (rc != 0)
            fail_msg("'%s' rejected: %s", g->in, err);
        assert_string_equal(r.registry, g->registry);
        assert_string_equal(r.repository, g->repository);
        assert_string_equal(r.tag, g->tag);
        assert_string_equal(r.digest, g->digest);
        image_ref_format(&r, canon, sizeof(canon));
        assert_string_equal(canon, g->canonical);
        /* the canonical form parses back to the same reference */
        struct image_ref again;
        assert_int_equal(image_ref_parse(canon, &again, err, sizeof(err)), 0);
        assert_memory_equal(&again, &r, sizeof(r));
    }
}

struct bad {
    const char *in, *msg;
};

static const struct bad BAD[] = {
    {"", "empty"},
    {"Python", "lowercase"},
    {"user/Repo", "lowercase"},
    {"python@sha256:abc", "64 lowercase hex"},
    {"python@sha256:"
     "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
     "64 lowercase hex"},
    {"python@md5:" HEX64, "only sha256"},
    {"python@sha256:" HEX64 "00", "64 lowercase hex"},
    {"python:", "invalid tag"},
    {"python:-x", "invalid tag"},
    {"python:a b", "invalid tag"},
    {"py thon", "invalid repository"},
    {"x//y", "invalid repository"},
    {"/x", "invalid repository"},
    {"x/", "invalid repository"},
    {"-x", "invalid repository"},
    {"x_", "invalid repository"},
    {"x___y", "invalid repository"},
    {"ex-.com/x", "invalid registry"},
    {"host:99999999/x", "invalid registry"},
    {":5000/x", "invalid"},
    {"@sha256:" HEX64, "no repository"},
};

static void test_bad(void **state)
{
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        struct image_ref r;
        char err[512] = "";
        if (image_ref_parse(BAD[i].in, &r, err, sizeof(err)) == 0)
            fail_msg("'%s' accepted", BAD[i].in);
        if (!strstr(err, BAD[i].msg))
            fail_msg("'%s': message '%s' lacks '%s'", BAD[i].in, err, BAD[i].msg);
    }
}

static void test_lengths(void **state)
{
    char buf[2000], err[256];
    struct image_ref r;
    /* a tag of 127 characters fits, 128 does not (the field is 128 bytes) */
    snprintf(buf, sizeof(buf), "x:%0127d", 0);
    assert_int_equal(image_ref_parse(buf, &r, err, sizeof(err)), 0);
    snprintf(buf, sizeof(buf), "x:%0128d", 0);
    assert_int_equal(image_ref_parse(buf, &r, err, sizeof(err)), -1);
    /* a name over 255 characters */
    memset(buf, 'a', 300);
    buf[300] = 0;
    assert_int_equal(image_ref_parse(buf, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too long"));
    /* a whole reference over 1024 characters */
    memset(buf, 'a', 1500);
    buf[1500] = 0;
    assert_int_equal(image_ref_parse(buf, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too long"));
    /* NULL text and a tiny error buffer do not crash */
    assert_int_equal(image_ref_parse(NULL, &r, err, 1), -1);
    assert_int_equal(image_ref_parse("UP", &r, NULL, 0), -1);
}

static void test_digest_valid(void **state)
{
    assert_true(img_digest_valid("sha256:" HEX64));
    assert_false(img_digest_valid("sha256:" HEX64 "0"));
    assert_false(img_digest_valid("sha256:"));
    assert_false(img_digest_valid("sha512:" HEX64));
    assert_false(img_digest_valid("sha256:../../../../etc/passwd"));
}

static void test_sha256(void **state)
{
    char d[IMAGE_DIGEST_MAX];
    sha256_digest_of("", 0, d);
    assert_string_equal(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_digest_of("abc", 3, d);
    assert_string_equal(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* streaming in odd pieces gives the same result as one call */
    static char big[100000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    char one[IMAGE_DIGEST_MAX], pieces[IMAGE_DIGEST_MAX];
    sha256_digest_of(big, sizeof(big), one);
    struct sha256 s;
    uint8_t raw[32];
    sha256_init(&s);
    for (size_t off = 0, step = 1; off < sizeof(big); off += step, step = step * 3 % 997 + 1)
        sha256_update(&s, big + off, off + step > sizeof(big) ? sizeof(big) - off : step);
    sha256_final(&s, raw);
    sha256_digest_str(raw, pieces);
    assert_string_equal(one, pieces);
    sha256_digest_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d);
    assert_string_equal(d, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),         cmocka_unit_test(test_bad),    cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_digest_valid), cmocka_unit_test(test_sha256),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
