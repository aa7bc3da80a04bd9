#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_tarfilter (tests/fuzz/corpus/fuzz_tarfilter/). The
first byte of each seed picks the filter: 0 for a client's archive going into a box
(any tar dialect: ustar, pax, GNU long names and sparse files, v7; hostile names,
symlinks written through, hard links out, lying sizes, truncation, compression), 1
and 3 for a guest's archive going out (the agent's dialect; the seeds of
fuzz_cp_extract, with the top name "x" required (1) or taken from the stream (3)).
Deterministic: the same bytes on every run. Usage: make_tarfilter_corpus.py [OUTDIR]"""
import gzip
import io
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_cp_corpus as cp  # noqa: E402
import make_tar_corpus as tc  # noqa: E402


def client_seeds():
    f, d, sym, hard, special = cp.f, cp.d, cp.sym, cp.hard, cp.special
    good = [d("./"), d("proj/", 0o750), f("proj/run.sh", b"#!/bin/sh\n", mode=0o4755), sym("proj/latest", "run.sh"),
            sym("proj/up", "../proj/run.sh"), hard("proj/again", "proj/run.sh"), f("proj/" + "n" * 150, b"long"),
            f("proj/ünï", b"utf-8"), cp.sparse("proj/sparse", 60000, [(0, 100), (50000, 10), (60000, 0)])]
    c = {
        "good_pax.tar": cp.tar(good),
        "good_gnu.tar": tc.tar(good[:8], tarfile.GNU_FORMAT),
        "good_ustar.tar": tc.tar([d("a/"), f("a/b", b"b"), sym("a/l", "b")], tarfile.USTAR_FORMAT),
        "absolute.tar": cp.tar([f("ok", b"ok"), f("/etc/passwd", b"evil")]),
        "dotdot.tar": cp.tar([f("a/../../x", b"evil")]),
        "symlink_through.tar": cp.tar([sym("l", "/etc"), f("l/passwd", b"evil")]),
        "symlink_through_inner.tar": cp.tar([d("sub/"), sym("l", "sub"), f("l/f", b"evil")]),
        "symlink_out.tar": cp.tar([sym("abs", "/etc/passwd"), sym("up", "../x"), d("d/"), sym("d/up", "../in"),
                                   sym("d/mid", "x/../../out")]),
        "symlink_replaced_by_dir.tar": cp.tar([sym("r", "d"), d("r/"), f("r/f", b"fine")]),
        "hardlink_out.tar": cp.tar([hard("h", "/etc/passwd"), hard("g", "../x"), hard("k", "later"),
                                    f("later", b"l")]),
        "hardlink_to_dir.tar": cp.tar([d("d/"), hard("h", "d")]),
        "specials.tar": cp.tar([special("null", tarfile.CHRTYPE), special("fifo", tarfile.FIFOTYPE), f("f", b"f")]),
        "dot_entry.tar": cp.tar([f(".", b"evil")]),
        "huge_size.tar": cp.tar([f("ok", b"ok")])[:1024] + cp.tar([f("big", b"")])[512:1024],
        "pax_size_lie.tar": cp.tar([f("x", b"tiny", pax={"size": "99999999999999"})]),
        "sparse_overlap.tar": cp.tar([cp.sparse("s", 100, [(0, 10), (5, 10)])]),
        "sparse_many.tar": cp.tar([cp.sparse("s", 20000, [(2 * i, 1) for i in range(5000)])]),
        "too_big.tar": cp.tar([f("big", b"b" * (64 << 10)), f("more", b"m" * 10)]),
        "truncated_data.tar": cp.tar([f("a", b"a" * 5000)])[:1536],
        "truncated_at_entry.tar": cp.tar([f("a", b"aaaa")])[:1024],
        "one_end_block.tar": cp.tar([f("a", b"aaaa")])[:1536],
        "empty_archive.tar": b"\0" * 1024,
        "empty.bin": b"",
        "gzip.tar.gz": gzip.compress(cp.tar([f("a", b"a")]), mtime=0),
        "garbage.bin": b"not a tar archive at all " * 40,
        "trailing_garbage.tar": cp.tar([f("a", b"a")]) + b"garbage" * 100,
        "escapes_in_name.tar": cp.tar([f("\x1b]0;owned\x07\n\x1b[2Jcocoon: ok", b"evil")]),
    }
    # a 1 TiB size header and a base-256 one
    ti = tarfile.TarInfo("big")
    ti.size = 1 << 40
    c["huge_size.tar"] = ti.tobuf(format=tarfile.GNU_FORMAT) + b"x" * 512
    return c


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                              "corpus", "fuzz_tarfilter")
    os.makedirs(out, exist_ok=True)
    items = {}
    for name, data in client_seeds().items():
        items["in_" + name] = b"\0" + data
    for name, data in cp.corpus().items():
        items["out_" + name] = b"\1" + data
    items["out_follow_good_tree.tar"] = b"\3" + cp.corpus()["good_tree.tar"]
    for name, data in sorted(items.items()):
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)
    print(f"wrote {len(items)} files to {out}")


if __name__ == "__main__":
    main()
