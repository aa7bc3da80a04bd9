#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_tar (tests/fuzz/corpus/fuzz_tar/): layer blobs as a
hostile image author would make them with Python's tarfile (path traversal, absolute
paths, writes through planted symlinks, escaping or dangling hard links, lying sizes,
truncated gzip, over-long names, members claiming 100 GiB, xattrs and link targets that
add up) plus a few well-formed layers with whiteouts, opaque
dirs, links, devices and xattrs so the fuzzer also starts from the success path.
Deterministic: the same bytes on every run. Usage: make_tar_corpus.py [OUTDIR]"""
import gzip
import io
import os
import sys
import tarfile

MTIME = 1600000000


def info(name, kind=tarfile.REGTYPE, size=0, mode=0o644, linkname="", uid=0, gid=0, pax=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size
    ti.mode = mode
    ti.linkname = linkname
    ti.uid, ti.gid = uid, gid
    ti.mtime = MTIME
    if pax:
        ti.pax_headers = dict(pax)
    return ti


def tar(members, fmt=tarfile.PAX_FORMAT):
    """members: list of (TarInfo, bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def f(name, data=b"x", **kw):
    return (info(name, **kw), data)


def d(name, mode=0o755, **kw):
    return (info(name, tarfile.DIRTYPE, mode=mode, **kw), None)


def sym(name, target):
    return (info(name, tarfile.SYMTYPE, mode=0o777, linkname=target), None)


def hard(name, target):
    return (info(name, tarfile.LNKTYPE, linkname=target), None)


def corpus():
    c = {}
    c["dotdot.tar"] = tar([f("ok", b"fine"), f("../evil", b"evil")])
    c["dotdot_nested.tar.gz"] = gz(tar([f("a/../../b", b"evil")]))
    c["absolute.tar"] = tar([f("/etc/passwd", b"root::0:0::/:/bin/sh")])
    c["symlink_then_write.tar"] = tar([sym("x", "../.."), f("x/foo", b"evil")])
    c["symlink_root_etc.tar.gz"] = gz(tar([sym("etc", "/"), d("etc/cron.d"), f("etc/cron.d/evil", b"* * * * * id")]))
    c["symlink_whiteout.tar"] = tar([sym("s", "/etc"), f("s/.wh.passwd", b"")])
    c["hardlink_escape.tar"] = tar([hard("passwd", "../../etc/passwd")])
    c["hardlink_abs.tar"] = tar([hard("passwd", "/etc/passwd")])
    c["hardlink_dangling_and_dir.tar"] = tar([d("dir"), hard("dl", "dir"), hard("nl", "nothing")])
    c["hardlink_through_symlink.tar"] = tar([sym("s", "/etc"), hard("p", "s/passwd")])
    body = bytes((i * 7919) % 251 for i in range(200000))
    whole = gz(tar([f("blob", body)]))
    c["truncated.tar.gz"] = whole[: len(whole) // 2]
    # a plain tar whose member claims 1 MiB, cut after its header and 10 KiB
    big = tar([f("claims-a-lot", b"z" * (1 << 20))], fmt=tarfile.USTAR_FORMAT)
    c["size_lie.tar"] = big[:10752]
    # pax size header far beyond anything the blob holds
    lie = tar([f("huge", b"tiny", pax={"size": "99999999999999"})])
    c["pax_size_lie.tar"] = lie
    c["long_component.tar"] = tar([f("n" * 300, b"x")])
    c["long_path.tar"] = tar([f("/".join(["d" * 200] * 22), b"x")])
    c["garbage.bin"] = b"this is not a tar archive, not even close." * 20
    c["empty_archive.tar"] = b"\0" * 1024
    # well-formed layers: the success path
    cap = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\0" * 12
    c["good_mixed.tar.gz"] = gz(tar([
        d("./"), d("bin"), f("bin/busybox", b"\x7fELF" + b"\0" * 5000 + b"tail", mode=0o755),
        hard("bin/ls", "bin/busybox"), sym("bin/sh", "busybox"), sym("sbin", "bin"),
        f("usr/bin/passwd", b"suid", mode=0o4755), f("home/u/file", b"mine", uid=1234, gid=5678),
        d("tmp", mode=0o1777),
        (info("dev/null", tarfile.CHRTYPE, mode=0o666), None),
        (info("dev/sda", tarfile.BLKTYPE, mode=0o660), None),
        (info("run/fifo", tarfile.FIFOTYPE, mode=0o600), None),
        f("bin/ping", b"ping", mode=0o755, pax={"SCHILY.xattr.security.capability": cap.decode("latin-1"),
                                                "SCHILY.xattr.user.note": "hello"}),
        sym("slow", "t" * 200),
    ]))
    c["good_whiteouts.tar"] = tar([
        f("etc/.wh.gone", b""), d("opq"), f("opq/.wh..wh..opq", b""), f("opq/new", b"n"),
        f(".wh.nothing-here", b""), f("lib/.wh..wh.plnk", b""), f("x/y/z", b"deep"),
        f("x", b"file replaces dir"), d("x"), f("x/again", b"a"),
    ])
    c["dev_major_minor.tar"] = tar([(info("dev/odd", tarfile.CHRTYPE, mode=0o600), None)])
    # per-pull budgets: a member claiming 100 GiB (refused at its header, before any
    # decompression), xattrs on many members, long link targets
    huge = info("huge", size=100 << 30).tobuf(format=tarfile.GNU_FORMAT) + b"z" * 512
    c["claims_100g.tar.gz"] = gz(huge)
    big_xattr = "v" * 30000
    c["xattr_heavy.tar.gz"] = gz(tar([f(f"x{i}", b"", pax={"SCHILY.xattr.user.big": big_xattr})
                                      for i in range(40)]))
    c["long_link_targets.tar.gz"] = gz(tar([sym(f"l{i}", "t" * 4000) for i in range(300)]))
    return c


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                              "corpus", "fuzz_tar")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(corpus().items()):
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)
    print(f"wrote {len(corpus())} files to {out}")


if __name__ == "__main__":
    main()
