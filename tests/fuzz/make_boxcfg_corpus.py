#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_boxcfg: a config.json as libcocoon writes it, one with
every network field, and malformed ones (out-of-range numbers, duplicate keys, NULs,
overlong strings, too many rules, bad ports and upstreams, deep nesting, empty input).
Run: python3 tests/fuzz/make_boxcfg_corpus.py"""
import hashlib
import os
import shutil

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_boxcfg")
BASE = '"id": "a", "kernel": "/k", "disk": "/d"'

SEEDS = [
    '{"id": "3fa2c9e01b7d", "name": "", "created": 1764190000, "image": "default", "kernel": "/abs/vmlinux", '
    '"initrd": "/abs/initramfs.cpio", "disk": "/abs/box/disk.qcow2", "disk_format": "qcow2", "cpus": 1, '
    '"memory_mib": 512, "accel": "auto", "backend": "qemu", "ephemeral": true, "boot_timeout_ms": 60000, '
    '"hostname": "cocoon-3fa2c9", "image_id": "local:default", "disk_size": 0}',
    '{' + BASE + ', "net": {"mode": "public", "rules": ["allow *.pypi.org", "deny 10.1.2.0/24:5432/tcp", '
    '"allow host:8080"], "ports": ["8080:80", "127.0.0.1:5353:53/udp"], "dns_upstream": ["127.0.0.1:5353"], '
    '"dns_refuse": "nxdomain"}}',
    '{' + BASE + ', "cpus": 65}',
    '{' + BASE + ', "memory_mib": -1, "cpus": 1e400}',
    '{"id": "a", "id": "b", "kernel": "/k", "disk": "/d"}',
    '{"id": "a\\u0000b", "kernel": "/k", "disk": "/d"}',
    '{' + BASE + ', "accel": "kvmkvmkvmkvmkvmkvmkvm", "backend": 7}',
    '{' + BASE + ', "net": {"mode": "open", "rules": ["allow ' + 'a.' * 200 + 'org"]}}',
    '{' + BASE + ', "net": {"mode": "public", "ports": ["' + '9' * 100 + '"]}}',
    '{' + BASE + ', "net": {"mode": "public", "rules": [' + ','.join(['"deny 1.2.3.4"'] * 70) + ']}}',
    '{' + BASE + ', "net": {"mode": "public", "dns_upstream": ["1.2.3.4:99999", "x", 5]}}',
    '{' + BASE + ', "hostname": "' + 'h' * 70 + '"}',
    '{' + BASE + ', "disk_size": 18446744073709551615, "created": -5}',
    '[' * 40 + ']' * 40,
    '',
    '{' + BASE + ', "ephemeral": "yes", "net": null}',
]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for s in SEEDS:
        b = s.encode()
        with open(os.path.join(OUT, hashlib.sha1(b).hexdigest()), "wb") as f:
            f.write(b)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
