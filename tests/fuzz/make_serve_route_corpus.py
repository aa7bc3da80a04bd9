#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_serve_route: one method byte (0 GET, 1 HEAD, 2 POST,
3 PUT, 4 DELETE, 5 PATCH, 6 lower-case get, 7 empty), a path, '\\n', a JSON body. Good
requests of every route, then bad ones: dot segments, empty segments, overlong ids and
references, too many segments, a NUL in the path, characters ids may not hold; bodies
that are not JSON, not objects, with duplicate keys, NULs in strings, wrong types,
numbers out of range (1e300 in an integer field), bad env names, bad base64, deep
nesting, invalid UTF-8 (also where an error message quotes it).
Run: python3 tests/fuzz/make_serve_route_corpus.py"""
import hashlib
import os
import shutil

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_serve_route")
GET, HEAD, POST, PUT, DELETE, PATCH = 0, 1, 2, 3, 4, 5

GOOD = [
    (GET, "/v1/config"), (GET, "/v1/me"), (HEAD, "/v1/openapi.yaml"), (GET, "/v1/health"),
    (GET, "/v1/metrics"), (POST, "/v1/boxes"), (GET, "/v1/boxes/"), (DELETE, "/v1/boxes/dev"),
    (POST, "/v1/boxes/01e1551d8d61/start"), (POST, "/v1/boxes/dev/stop"), (POST, "/v1/boxes/dev/exec"),
    (POST, "/v1/boxes/dev/run"), (GET, "/v1/boxes/dev/executions"),
    (DELETE, "/v1/boxes/dev/executions/exec_0123456789abcdef01234567"),
    (POST, "/v1/boxes/dev/executions/e1/signal"), (POST, "/v1/boxes/dev/executions/e1/resize"),
    (POST, "/v1/boxes/dev/executions/e1/stdin"), (GET, "/v1/boxes/dev/executions/e1/attach"),
    (GET, "/v1/boxes/dev/executions/e1/output"), (PUT, "/v1/boxes/dev/files"), (GET, "/v1/boxes/dev/metrics"),
    (GET, "/v1/boxes/dev/logs"), (GET, "/v1/boxes/dev/network/logs"), (GET, "/v1/boxes/dev/network/stats"),
    (GET, "/v1/images"), (POST, "/v1/images/pull"), (POST, "/v1/images/load"),
    (GET, "/v1/images/docker.io/library/alpine:3.19"), (DELETE, "/v1/images/sha256:" + "ab" * 32),
    (GET, "/v1/tenant/boxes/dev"), (GET, "/v1/tenant/metrics"), (GET, "/v1/tenant/images"),
    (POST, "/v1/boxes/dev/detached"), (GET, "/v1/boxes/dev/detached/31"), (DELETE, "/v1/boxes/dev/detached/31"),
    (GET, "/v1/boxes/dev/detached/31/logs"),
    (POST, "/mcp"), (DELETE, "/mcp"), (GET, "/mcp"),
    (GET, "/v1/boxes/dev/snapshots"), (DELETE, "/v1/boxes/dev/snapshots/before-1.0"),
    (POST, "/v1/boxes/dev/snapshots/s1/restore"), (POST, "/v1/boxes/dev/wait"),
    (POST, "/v1/boxes/dev/code"), (GET, "/v1/boxes/dev/code/contexts"),
    (DELETE, "/v1/boxes/dev/code/contexts/python"), (POST, "/v1/boxes/dev/code/contexts/c1/restart"),
    (GET, "/v1/boxes/dev/attach"),
    # found by fuzz-smoke: the main process's attach under a tenant prefix, a route the
    # target's table of which routes name a box did not know yet
    (GET, "/v1/nant/boxes/decutione1/attach"),
]

BAD_PATHS = [
    (GET, ""), (GET, "/"), (GET, "/v1"), (GET, "/v1/"), (GET, "v1/boxes"), (GET, "/v2/boxes"),
    (GET, "/v1//boxes"), (GET, "/v1/boxes//"), (GET, "/v1/boxes/."), (GET, "/v1/boxes/.."),
    (GET, "/v1/boxes/../../etc/passwd"), (GET, "/v1/boxes/%2e%2e"), (GET, "/v1/boxes/a b"),
    (GET, "/v1/boxes/a\x00b"), (GET, "/v1/boxes/" + "a" * 127), (GET, "/v1/boxes/" + "a" * 128),
    (GET, "/v1/boxes/dev/executions/" + "e" * 200 + "/output"), (GET, "/v1/boxes/dev/executions/e1/output/more"),
    (GET, "/v1/boxes/dev/network"), (GET, "/v1/boxes/dev/network/logs/x"), (GET, "/v1/boxes/dev/nope"),
    (GET, "/v1/a/b/c/d/e/f/g/h/i/j"), (GET, "/v1/images/../x"), (GET, "/v1/images/a/../b"),
    (GET, "/v1/images/a//b"), (GET, "/v1/images/" + "r" * 1100), (GET, "/v1/images/a\x7fb"),
    (GET, "/v1/images/\xff\xfe"), (GET, "/v1/../boxes"), (GET, "/v1/.../boxes/dev"), (GET, "/v1/me/x"),
    (PATCH, "/v1/boxes"), (PUT, "/v1/boxes"), (POST, "/v1/config"), (DELETE, "/v1/images/pull"),
    (7, "/v1/boxes"), (6, "/v1/boxes"),
]

BODIES = [
    "", " ", "{}", "[]", "[1]", '"x"', "null", "{", '{"name":', "\x00{}", '{"name":"a"}\x00',
    '{"name":"a","name":"b"}', '{"name":"a\\u0000b"}', '{"name":"' + "n" * 65 + '"}',
    '{"name":5}', '{"cpus":"2"}', '{"cpus":0}', '{"cpus":65}', '{"cpus":1.0}', '{"cpus":1.5}',
    '{"cpus":-1}', '{"cpus":1e300}', '{"memory_mib":-1e300}', '{"memory_mib":1e19}',
    '{"cpus":9007199254740993}', '{"memory_mib":18446744073709551615}', '{"cpus":-0.0}',
    '{"image":1e300}', '{"image":70368744177665}', '{"detach":"true"}', '{"detach":1}', '{"detach":true}',
    '{"args":"ls"}', '{"args":["a",1]}', '{"args":["a\\u0000"]}', '{"args":[' + ",".join(['"x"'] * 300) + "]}",
    '{"env":[]}', '{"env":{"":"x"}}', '{"env":{"A=B":"x"}}', '{"env":{"A":1}}', '{"env":{"A":"\\u0000"}}',
    '{"env":{"A":"1","B":"2"}}', '{"stdin_base64":"!!!!"}', '{"stdin_base64":"QUJD"}', '{"stdin_base64":"QQ="}',
    '{"stdin_base64":"QQ=="}', '{"stdin_base64":""}', '{"user":"key-1"}', '{"user":"key-1","cpus":2}',
    '{"user":""}', '{"user":"' + "k" * 256 + '"}', '{"zzz":1}', '{"network":{"outbound":{"mode":1}}}',
    "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000, '{"name":"\xff\xfe"}', '{"name":"\xc3"}',
    '{"command":"sh","args":["-c","echo hi"],"env":{"X":"y"},"user":"nobody","detach":false,"tty":true}',
    # Error messages that quote bytes which are not UTF-8: jansson's "near '...'" of an
    # invalid escape, and an unknown field name cut at 200 bytes inside a character.
    '{"env":{"B&\\\xef\xb7\xb3\x92\xf3P\x90":"2"}}', '{"a\\\xff":1}',
    '{"a' + "\xc3\xa9" * 150 + '":1}',
]


def seed(method, path, body=None):
    b = bytes([method]) + path.encode("latin-1")
    if body is not None:
        b += b"\n" + body.encode("latin-1")
    return b


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    seeds = [seed(m, p) for m, p in GOOD + BAD_PATHS]
    seeds += [seed(POST, "/v1/boxes", body) for body in BODIES]
    seeds += [seed(POST, "/v1/boxes/dev/run", body) for body in BODIES[:8]]
    for s in seeds:
        with open(os.path.join(OUT, hashlib.sha1(s).hexdigest()), "wb") as f:
            f.write(s)
    print(f"{len(seeds)} seeds in {OUT}")


if __name__ == "__main__":
    main()
