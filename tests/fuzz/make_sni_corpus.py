#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_sni (tests/fuzz/corpus/fuzz_sni/): ClientHellos as
clients send them, and hostile ones: lengths that run past their record, a hello that
spans two records, names with bad bytes, a trailing dot, an over-long name, several
names, a record above the TLS limit, extensions that overlap.
Run: /usr/bin/python3 tests/fuzz/make_sni_corpus.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_sni")


def ext(kind, body):
    return struct.pack("!HH", kind, len(body)) + body


def sni_ext(*names, name_type=0):
    entries = b"".join(struct.pack("!BH", name_type, len(n)) + n for n in names)
    return ext(0, struct.pack("!H", len(entries)) + entries)


def hello(extensions, session=b"", suites=b"\x13\x01\x13\x02", record_version=b"\x03\x01", hs_len_delta=0,
          rec_len_delta=0, ext_len_delta=0):
    body = b"\x03\x03" + bytes(range(32)) + bytes([len(session)]) + session
    body += struct.pack("!H", len(suites)) + suites + b"\x01\x00"
    body += struct.pack("!H", len(extensions) + ext_len_delta) + extensions
    hs = b"\x01" + struct.pack("!I", len(body) + hs_len_delta)[1:] + body
    return b"\x16" + record_version + struct.pack("!H", len(hs) + rec_len_delta) + hs


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    alpn = ext(16, struct.pack("!H", 9) + b"\x08http/1.1")
    seeds = {
        "plain": hello(sni_ext(b"api.example.com")),
        "upper-trailing-dot": hello(sni_ext(b"API.Example.COM.")),
        "alpn-then-sni": hello(alpn + sni_ext(b"api.example.com") + ext(43, b"\x02\x03\x04")),
        "session-id": hello(sni_ext(b"a.b"), session=bytes(32)),
        "no-sni": hello(alpn),
        "empty-name": hello(sni_ext(b"")),
        "space-in-name": hello(sni_ext(b"a b.com")),
        "nul-in-name": hello(sni_ext(b"a\0.com")),
        "high-byte": hello(sni_ext(b"\xffexample.com")),
        "long-name": hello(sni_ext(b"a" * 300)),
        "two-names": hello(sni_ext(b"first.example", b"second.example")),
        "other-name-type": hello(sni_ext(b"x.example", name_type=1)),
        "hs-longer-than-record": hello(sni_ext(b"a.example"), hs_len_delta=40),
        "record-too-big": hello(sni_ext(b"a.example"), rec_len_delta=20000),
        "ext-len-overflow": hello(sni_ext(b"a.example"), ext_len_delta=200),
        "sni-len-overflow": hello(ext(0, b"\x00\x40\x00\x00\x05abc")),
        "not-handshake": b"\x17\x03\x03\x00\x05hello",
        "ssl2ish": b"\x80\x2e\x01\x03\x01",
        "http": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "short": b"\x16\x03\x01\x00",
        "server-hello": b"\x16\x03\x03\x00\x06\x02\x00\x00\x02\x03\x03",
    }
    full = hello(sni_ext(b"api.example.com"))
    seeds["split-record"] = full[:5 + 10]  # only part of the record
    seeds["two-records"] = b"\x16\x03\x01\x00\x08" + full[5:13] + b"\x16\x03\x01" + struct.pack("!H", len(full) - 13) + full[13:]
    for name, data in seeds.items():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
