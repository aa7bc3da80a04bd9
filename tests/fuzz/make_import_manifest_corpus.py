#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_import_manifest: a manifest as `cocoon export` writes
it and hostile ones (unknown version, path traversal in member names, huge declared
sizes, bad digests, duplicate keys, wrong types), and disk streams (a good one, records
out of order, overlapping, outside the disk, truncated, trailing bytes). The first byte
of each seed picks the parser: 0 manifest, 1 disk stream (then the piece size).
Run: python3 tests/fuzz/make_import_manifest_corpus.py"""
import hashlib
import json
import os
import shutil
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_import_manifest")


def manifest(**over):
    m = {"format": "cocoon-export", "version": 1, "kind": "box", "name": "web", "source_id": "0123456789ab",
         "image": "default", "created": 1764190000, "virtual_size": 1 << 20,
         "files": [{"name": "config.json", "size": 500, "sha256": "a" * 64},
                   {"name": "disk.img", "size": 4096, "sha256": "b" * 64}]}
    m.update(over)
    return json.dumps(m).encode()


def files(name0="config.json", name1="disk.img", size0=500, size1=4096, sha="a" * 64):
    return [{"name": name0, "size": size0, "sha256": sha}, {"name": name1, "size": size1, "sha256": "b" * 64}]


MANIFESTS = [
    manifest(),
    manifest(version=2),
    manifest(version="1"),
    manifest(format="docker"),
    manifest(files=files(name0="../../etc/passwd")),
    manifest(files=files(name1="/abs/disk.img")),
    manifest(files=files(size0=1 << 40)),
    manifest(files=files(size1=1 << 62)),
    manifest(files=files(sha="../" * 21 + "a")),
    manifest(virtual_size=1 << 41),
    manifest(virtual_size=-512),
    manifest(files=files()[:1]),
    manifest(kind="snapshot", name="x" * 200),
    b'{"format": "cocoon-export", "version": 1, "version": 1}',
    b'[]',
    b'',
    b'{' * 5000,
]


def disk(records, vsize=1 << 16, end=True, trailing=b""):
    out = b"COCOONDK" + struct.pack(">QQQ", 1, vsize, 0)
    for off, ln in records:
        out += struct.pack(">QQ", off, ln) + b"\x5a" * min(ln, 4096)
    if end:
        out += struct.pack(">QQ", (1 << 64) - 1, 0)
    return out + trailing


DISKS = [
    disk([(0, 512), (4096, 100)]),
    disk([(4096, 512), (0, 512)]),
    disk([(0, 512), (256, 512)]),
    disk([(65530, 100)]),
    disk([(0, 0)]),
    disk([(0, 512)], end=False),
    disk([(0, 512)], trailing=b"x"),
    disk([], vsize=1 << 50),
    disk([(0, 1 << 30)]),
    b"COCOONDK",
]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    seeds = [b"\x00" + m for m in MANIFESTS]
    seeds += [b"\x01" + bytes([piece]) + d for d in DISKS for piece in (7, 255)]
    for s in seeds:
        with open(os.path.join(OUT, hashlib.sha1(s).hexdigest()), "wb") as f:
            f.write(s)


if __name__ == "__main__":
    main()
