#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_fsops (tests/fuzz/corpus/fuzz_fsops/): a guest's
answers to FILE_OP, honest and lying, built here from docs/protocol.md ("File
operations"). The first byte of each seed picks what was asked (0 remove, 1 stat,
2 list; its bits above the lowest two, the chunk size) and the rest is the STDOUT.
Run: /usr/bin/python3 tests/fuzz/make_fsops_corpus.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ERROR, FILE_ENTRIES, STDOUT = 7, 45, 20
T_MODE, T_CODE, T_MESSAGE, T_PATH, T_FLAGS = 10, 12, 13, 40, 41
T_NAME, T_FILE_TYPE, T_UID, T_GID, T_SIZE, T_MTIME_SEC, T_MTIME_NSEC = 57, 58, 59, 60, 61, 62, 63
T_ENTRY = 66
END = 1
REMOVE, STAT, LIST = 0, 1, 2


def field(tag, value, length=None):
    return struct.pack("<HI", tag, len(value) if length is None else length) + value


def u32(tag, v):
    return field(tag, struct.pack("<I", v))


def u64(tag, v):
    return field(tag, struct.pack("<Q", v & (2**64 - 1)))


def frame(payload, mtype=FILE_ENTRIES, stream=1, length=None):
    return struct.pack("<IIHBB", len(payload) if length is None else length, stream, mtype, 1, 0) + payload


def entry(name=b"f", ftype=1, mode=0o644, target=None, nsec=0, extra=b""):
    body = (field(T_NAME, name) if name is not None else b"") + u32(T_FILE_TYPE, ftype) + u32(T_MODE, mode)
    body += u32(T_UID, 0) + u32(T_GID, 0) + u64(T_SIZE, 3) + u64(T_MTIME_SEC, -1) + u32(T_MTIME_NSEC, nsec)
    if target is not None:
        body += field(T_PATH, target)
    return field(T_ENTRY, body + extra)


def entries(*es, flags=END):
    return frame(b"".join(es) + u32(T_FLAGS, flags))


SEEDS = {
    "ok-list": bytes([LIST]) + entries(entry(b"b"), entry(b"a", 3, 0o777, b"/etc")),
    "ok-list-two-frames": bytes([LIST | 4]) + entries(entry(b"x"), flags=0) + entries(entry(b"y")),
    "ok-stat": bytes([STAT]) + entries(entry(None, 2, 0o755)),
    "ok-remove": bytes([REMOVE]) + entries(),
    "ok-error": bytes([STAT]) + frame(u32(T_CODE, 2) + field(T_MESSAGE, b"No such file or directory"), ERROR),
    "bad-slash-name": bytes([LIST]) + entries(entry(b"../etc")),
    "bad-dot-name": bytes([LIST]) + entries(entry(b"..")),
    "bad-long-name": bytes([LIST]) + entries(entry(b"n" * 256)),
    "bad-nul-name": bytes([LIST]) + entries(entry(b"a\0b")),
    "bad-long-target": bytes([LIST]) + entries(entry(b"l", 3, target=b"t" * 1024)),
    "bad-target-on-file": bytes([LIST]) + entries(entry(b"f", 1, target=b"/x")),
    "bad-type": bytes([LIST]) + entries(entry(b"f", 9)),
    "bad-mode": bytes([LIST]) + entries(entry(b"f", 1, 0o17777)),
    "bad-nsec": bytes([LIST]) + entries(entry(b"f", nsec=10**9)),
    "bad-dup-field": bytes([LIST]) + entries(entry(b"f", extra=u32(T_FILE_TYPE, 2))),
    "bad-entry-len-wraps": bytes([LIST]) + frame(field(T_ENTRY, b"", 0xFFFFFFF0) + u32(T_FLAGS, END)),
    "bad-nameless-in-list": bytes([LIST]) + entries(entry(None)),
    "bad-named-in-stat": bytes([STAT]) + entries(entry(b"x")),
    "bad-two-in-stat": bytes([STAT]) + entries(entry(None), entry(None)),
    "bad-entry-in-remove": bytes([REMOVE]) + entries(entry(None)),
    "bad-same-name-twice": bytes([LIST]) + entries(entry(b"a"), entry(b"a")),
    "bad-after-end": bytes([LIST]) + entries(entry(b"a")) + entries(entry(b"b")),
    "bad-after-error": bytes([LIST]) + frame(u32(T_CODE, 5), ERROR) + entries(),
    "bad-cut-frame": bytes([LIST]) + entries(entry(b"a"))[:-3],
    "bad-oversize-header": bytes([LIST]) + frame(b"", length=65537),
    "bad-stdout-inside": bytes([LIST]) + frame(b"xx", STDOUT),
    "bad-stream": bytes([LIST]) + frame(u32(T_FLAGS, END), stream=7),
    "bad-flags": bytes([LIST]) + entries(flags=6),
}


def main():
    out = os.path.join(HERE, "corpus", "fuzz_fsops")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
