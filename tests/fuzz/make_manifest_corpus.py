#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_manifest: valid OCI/Docker manifests, indexes and
configs, image references and WWW-Authenticate challenges, each prefixed by the byte
that selects its parser (0 manifest, 1 index, 2 config, 3 kind, 4 reference,
5 challenge), plus malformed variants (truncated, wrong types, duplicate keys, huge
numbers, deep nesting, bad digests, NULs). Run: python3 tests/fuzz/make_manifest_corpus.py"""
import json
import os
import shutil

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_manifest")
D = ["sha256:" + c * 64 for c in "0123456789abcdef"]
OCI_M = "application/vnd.oci.image.manifest.v1+json"
OCI_I = "application/vnd.oci.image.index.v1+json"
DOCKER_M = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_L = "application/vnd.docker.distribution.manifest.list.v2+json"
GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def desc(mt, d, size, **kw):
    return dict(mediaType=mt, digest=d, size=size, **kw)


def manifest(mt=OCI_M, nlayers=2, layer_mt=GZ):
    return {"schemaVersion": 2, "mediaType": mt,
            "config": desc("application/vnd.oci.image.config.v1+json", D[1], 1234),
            "layers": [desc(layer_mt, D[2 + i % 10], 1000 + i) for i in range(nlayers)]}


def index(mt=OCI_I, plats=(("linux", "amd64"), ("linux", "arm64"))):
    return {"schemaVersion": 2, "mediaType": mt,
            "manifests": [desc(OCI_M, D[3 + i], 500, platform={"os": o, "architecture": a})
                          for i, (o, a) in enumerate(plats)]}


CONFIG = {"architecture": "amd64", "os": "linux",
          "config": {"Env": ["PATH=/usr/bin", "LANG=C"], "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "echo"],
                     "WorkingDir": "/w", "User": "1000:1000"},
          "rootfs": {"type": "layers", "diff_ids": [D[5]]}}


def seeds():
    j = lambda o: json.dumps(o).encode()
    yield "m-oci", 0, j(manifest())
    yield "m-docker", 0, j(manifest(DOCKER_M, 1, "application/vnd.docker.image.rootfs.diff.tar.gzip"))
    yield "m-zstd", 0, j(manifest(layer_mt="application/vnd.oci.image.layer.v1.tar+zstd"))
    yield "m-nolayers", 0, j(manifest(nlayers=0))
    yield "m-many-layers", 0, j(manifest(nlayers=257))
    yield "bad-m-schema1", 0, b'{"schemaVersion":1,"fsLayers":[]}'
    yield "bad-m-truncated", 0, j(manifest())[:80]
    yield "bad-m-dupkey", 0, b'{"schemaVersion":2,"schemaVersion":2,"config":{},"layers":[]}'
    m = manifest(); m["config"]["size"] = 2 ** 63
    yield "bad-m-hugesize", 0, j(m)
    m = manifest(); m["config"]["size"] = -5
    yield "bad-m-negsize", 0, j(m)
    m = manifest(); m["layers"][0]["digest"] = "sha256:" + "G" * 64
    yield "bad-m-digest", 0, j(m)
    m = manifest(); m["layers"][0]["digest"] = "sha256:../../../etc/passwd"
    yield "bad-m-traversal-digest", 0, j(m)
    m = manifest(); m["layers"] = {"a": 1}
    yield "bad-m-layers-object", 0, j(m)
    m = manifest(); m["layers"][1] = None
    yield "bad-m-null-layer", 0, j(m)
    m = manifest(); m["layers"][0]["mediaType"] = "x" * 500
    yield "bad-m-long-mt", 0, j(m)
    yield "bad-m-deep", 0, b'{"schemaVersion":2,"config":' + b"[" * 5000 + b"]" * 5000 + b"}"
    yield "bad-m-nul", 0, b'{"schemaVersion":2,"mediaType":"a\\u0000b"}'
    yield "bad-m-notobject", 0, b'"just a string"'
    yield "bad-m-empty", 0, b""
    yield "i-oci", 1, j(index())
    yield "i-docker", 1, j(index(DOCKER_L))
    yield "i-variants", 1, j(index(plats=(("linux", "amd64"), ("linux", "amd64"), ("windows", "amd64"))))
    yield "i-noamd64", 1, j(index(plats=(("linux", "arm64"), ("linux", "s390x"), ("unknown", "unknown"))))
    yield "i-empty", 1, j({"schemaVersion": 2, "manifests": []})
    i = index(); i["manifests"][0]["platform"] = "linux/amd64"
    yield "bad-i-platform-string", 1, j(i)
    i = index(); i["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "x" * 2000}
    yield "bad-i-long-refname", 1, j(i)
    i = index(); i["manifests"] = [i["manifests"][0]] * 1100
    yield "bad-i-too-many", 1, j(i)
    yield "bad-i-manifests-null", 1, b'{"schemaVersion":2,"manifests":null}'
    yield "c-full", 2, j(CONFIG)
    yield "c-empty", 2, b"{}"
    c = json.loads(j(CONFIG)); c["config"]["Cmd"] = None; c["config"]["Entrypoint"] = None
    yield "c-nulls", 2, j(c)
    c = json.loads(j(CONFIG)); c["config"]["Env"] = ["NOEQ"]
    yield "bad-c-env", 2, j(c)
    c = json.loads(j(CONFIG)); c["config"]["Cmd"] = [1, 2]
    yield "bad-c-cmd-ints", 2, j(c)
    c = json.loads(j(CONFIG)); c["config"]["Env"] = ["A=" + "x" * 300000]
    yield "bad-c-long-env", 2, j(c)
    c = json.loads(j(CONFIG)); c["config"]["Env"] = ["A=1"] * 5000
    yield "bad-c-many-env", 2, j(c)
    c = json.loads(j(CONFIG)); c["architecture"] = "x" * 64
    yield "bad-c-long-arch", 2, j(c)
    yield "bad-c-config-array", 2, b'{"config":[]}'
    yield "k-index", 3, j(index())
    yield "k-manifest", 3, j(manifest())
    yield "k-schema1", 3, b'{"schemaVersion":1}'
    yield "k-shapeless", 3, b'{"schemaVersion":2}'
    for n, r in enumerate(["python", "python:3.12-slim", "user/x", "localhost:5000/a/b:c",
                           "ghcr.io/org/tool@" + D[7], "q.io/p:1@" + D[8], "[::1]:5000/x",
                           "Python", "x//y", "a" * 300, "python@sha256:abc", "x:" + "t" * 200,
                           "host:99999999/x", ":5000/x", "@" + D[1], "index.docker.io/library/x"]):
        yield f"r-{n:02d}", 4, r.encode()
    for n, c in enumerate(['Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                           'scope="repository:library/python:pull"',
                           'Basic realm="Registry"', 'Basic realm=x, Bearer realm=https://a/t,service=s',
                           'Bearer realm="unterminated', 'Bearer realm="a\\"b"', ",,, ,=,=\"", "Negotiate",
                           "Bearer " + "realm=" * 500]):
        yield f"ch-{n:02d}", 5, c.encode()


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for name, mode, body in seeds():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([mode]) + body)


if __name__ == "__main__":
    main()
