"""Tar archives streamed into and out of real boxes with `cocoon cp -` (the library's
cocoon_tar_to_box / cocoon_tar_from_box, which the REST server's /files route uses):
a round trip of a tree with modes, symlinks, a hard link and a 1 GiB sparse file
through archives of GNU tar and of Python's tarfile; hostile archives from the caller
(absolute names, "..", a symlink then a file through it, a 1 TiB size header, cut
archives, a compressed one), each refused with a clear message and nothing outside
the target directory changed; --no-overwrite; a missing path answered before any
byte reaches stdout."""
import io
import os
import subprocess
import tarfile

from conftest import decode, sh

GIB = 1 << 30


def make_tree(root):
    os.makedirs(os.path.join(root, "sub", "deep"))
    with open(os.path.join(root, "a.txt"), "wb") as f:
        f.write(b"hello\n")
    with open(os.path.join(root, "run.sh"), "wb") as f:
        f.write(b"#!/bin/sh\necho ran\n")
    os.chmod(os.path.join(root, "run.sh"), 0o4750)
    with open(os.path.join(root, "sub", "ünïcødé ✓.txt"), "wb") as f:
        f.write(bytes(range(256)) * 10)
    os.chmod(os.path.join(root, "sub", "ünïcødé ✓.txt"), 0o600)
    with open(os.path.join(root, "sub", "deep", "n" * 150), "wb") as f:
        f.write(b"long name\n")
    os.link(os.path.join(root, "a.txt"), os.path.join(root, "hard"))
    os.symlink("a.txt", os.path.join(root, "link"))
    os.symlink("../a.txt", os.path.join(root, "sub", "up"))
    os.symlink("/etc/passwd", os.path.join(root, "abs-link"))
    with open(os.path.join(root, "sparse.img"), "wb") as f:
        f.truncate(GIB)
        for off in (0, GIB // 2 + 4096, GIB - 4096):
            f.seek(off)
            f.write(b"S" * 4096)
    os.chmod(os.path.join(root, "sub"), 0o751)
    os.utime(os.path.join(root, "a.txt"), ns=(981173106_123456789, 981173106_123456789))


def gnu_tar(src_parent, name):
    """The tree as GNU tar writes it by default (GNU format: long-name entries, old
    GNU sparse headers)."""
    return subprocess.run(["tar", "--sparse", "-C", src_parent, "-cf", "-", name], check=True,
                          stdout=subprocess.PIPE).stdout


def test_stream_round_trip(vm, boxes, tmp_path):
    box = boxes("ts", "--disk", "3G")
    src = tmp_path / "src"
    make_tree(str(src / "tree"))
    sh(vm, box, "mkdir -p /root/in /root/in2")
    r = vm.run("cp", "-", f"{box}:/root/in", input=gnu_tar(str(src), "tree"), check=0, timeout=300)
    err = decode(r.stderr)
    assert "tree/abs-link: symlink to \"/etc/passwd\" skipped: it points outside the destination" in err, err
    r = sh(vm, box, "cd /root/in/tree && cat a.txt && stat -c '%a' run.sh sub 'sub/ünïcødé ✓.txt' && "
                    "readlink link sub/up && ! test -L abs-link && echo no-abs-link && stat -c %y a.txt && "
                    "[ $(stat -c %i hard) = $(stat -c %i a.txt) ] && echo hardlinked && "
                    "stat -c '%s %b %B' sparse.img && sha256sum sparse.img | cut -c1-16")
    lines = decode(r.stdout).splitlines()
    assert lines[:4] == ["hello", "4750", "751", "600"], lines
    assert lines[4:7] == ["a.txt", "../a.txt", "no-abs-link"], lines
    assert lines[7].startswith("2001-02-03 04:05:06"), lines  # GNU tar's own format keeps whole seconds
    assert lines[8] == "hardlinked", lines
    size, blocks, bsize = (int(v) for v in lines[9].split())
    assert size == GIB and blocks * bsize < 1 << 20, "the sparse file was expanded in the guest"
    with open(src / "tree" / "sparse.img", "rb") as f:
        import hashlib
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    assert lines[10] == h.hexdigest()[:16], lines

    # An archive from Python's tarfile (pax): names made of "./", a symlink out of the
    # destination skipped with a warning.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.add(str(src / "tree" / "a.txt"), arcname="./x/a.txt")
        ti = tarfile.TarInfo("x/out")
        ti.type, ti.linkname = tarfile.SYMTYPE, "../../etc"
        t.addfile(ti)
    r = vm.run("cp", "-", f"{box}:/root/in2", input=buf.getvalue(), check=0)
    assert "x/out: symlink to \"../../etc\" skipped: it points outside the destination" in decode(r.stderr)
    assert decode(sh(vm, box, "cat /root/in2/x/a.txt; ls /root/in2/x").stdout) == "hello\na.txt\n"

    # Out again: the archive on stdout, extracted by the host's tar. A symlink out of
    # the tree, made in the guest, is skipped with a warning.
    sh(vm, box, "ln -s /etc/passwd /root/in/tree/abs-link")
    out = tmp_path / "out"
    out.mkdir()
    with open(tmp_path / "tree.tar", "wb") as f:
        r = vm.run("cp", f"{box}:/root/in/tree", "-", check=0, timeout=300)
        f.write(r.stdout)
    assert len(r.stdout) < 1 << 20, "the sparse file crossed as data"
    err = decode(r.stderr)
    assert "tree/abs-link: symlink to \"/etc/passwd\" skipped: it points outside the copied tree" in err, err
    subprocess.run(["tar", "-C", str(out), "-xf", str(tmp_path / "tree.tar")], check=True)
    t = out / "tree"
    assert (t / "a.txt").read_bytes() == b"hello\n"
    assert os.stat(t / "run.sh").st_mode & 0o7777 == 0o750  # no setuid bit for whoever extracts it
    assert os.readlink(t / "link") == "a.txt" and os.readlink(t / "sub" / "up") == "../a.txt"
    assert not os.path.lexists(t / "abs-link")
    assert (t / "hard").read_bytes() == b"hello\n"  # a copy: the agent sends hard links as files
    st = os.stat(t / "sparse.img")
    assert st.st_size == GIB and st.st_blocks * 512 < 1 << 20
    assert (t / "sub" / "ünïcødé ✓.txt").read_bytes() == bytes(range(256)) * 10
    assert (t / "sub" / "deep" / ("n" * 150)).read_bytes() == b"long name\n"

    # -L: a symlink named by the path means what it points to, under the link's name.
    r = vm.run("cp", "-L", f"{box}:/root/in/tree/link", "-", check=0)
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        names = tf.getnames()
        assert names == ["link"] and tf.extractfile("link").read() == b"hello\n", names
    r = vm.run("cp", f"{box}:/root/in/tree/link", "-")
    assert r.returncode == 125 and r.stdout == b"" and "it is a symlink (to \"a.txt\")" in decode(r.stderr)


def hostile(kind):
    """A caller's archive: ok.txt, then the attack."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def add(name, data=b"", kind=tarfile.REGTYPE, link=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = kind, link
            ti.size = len(data) if kind == tarfile.REGTYPE else 0
            t.addfile(ti, io.BytesIO(data) if ti.size else None)
        add("ok.txt", b"fine")
        if kind == "absolute":
            add("/etc/cocoon-evil", b"evil")
        elif kind == "dotdot":
            add("sub/../../cocoon-evil", b"evil")
        elif kind == "through-abs":
            add("etc", kind=tarfile.SYMTYPE, link="/etc")
            add("etc/cocoon-evil", b"evil")
        elif kind == "through-inner":
            add("sub/", kind=tarfile.DIRTYPE)
            add("l", kind=tarfile.SYMTYPE, link="sub")
            add("l/cocoon-evil", b"evil")
        elif kind == "hardlink-out":
            add("h", kind=tarfile.LNKTYPE, link="/etc/passwd")
    data = buf.getvalue()
    if kind == "huge":
        ti = tarfile.TarInfo("big")
        ti.size = 1 << 40
        data = data[:1024] + ti.tobuf(format=tarfile.GNU_FORMAT) + b"x" * 65536
    elif kind == "cut-data":
        data = data[:700]
    elif kind == "cut-entry":
        data = data[:1024]  # ok.txt whole, no end-of-archive block
    elif kind == "gzip":
        import gzip
        data = gzip.compress(data)
    return data


HOSTILE = {
    "absolute": "the archive holds the name \"/etc/cocoon-evil\", which is absolute",
    "dotdot": "the archive holds the name \"sub/../../cocoon-evil\", which climbs out with \"..\"",
    "through-abs": "\"etc/cocoon-evil\" lies under \"etc\", a symlink of the archive",
    "through-inner": "\"l/cocoon-evil\" lies under \"l\", a symlink of the archive",
    "hardlink-out": "the hard link \"h\" points to \"/etc/passwd\", which is not a file earlier in the archive",
    "huge": "\"big\" (1099511627776 bytes) takes the archive above 17179869184 bytes, the limit",
    "cut-data": "\"ok.txt\": the archive is damaged or truncated",
    "cut-entry": "the archive ends without its end-of-archive block (truncated?)",
    "gzip": "the archive is gzip-compressed: send a plain (uncompressed) tar archive",
}


def test_stream_hostile_input(vm, boxes):
    box = boxes("th")
    # what must not change: no evil file anywhere, /etc/passwd, the rest of /root
    guard = "find / -xdev -name 'cocoon-evil*'; sha256sum /etc/passwd; ls -A /root"
    sh(vm, box, "mkdir -p /root/t")
    before = decode(sh(vm, box, guard).stdout)
    for kind, says in HOSTILE.items():
        r = vm.run("cp", "-", f"{box}:/root/t", input=hostile(kind), timeout=120)
        err = decode(r.stderr)
        assert r.returncode == 125 and f"cocoon: copy to {box}:/root/t: {says}" in err, (kind, err)
        assert decode(sh(vm, box, guard).stdout) == before, kind
        # in the target at most what came before the attack
        assert decode(sh(vm, box, "ls -A /root/t").stdout) in ("", "ok.txt\n"), kind
        sh(vm, box, "rm -rf /root/t && mkdir /root/t")
    # sanitised, not refused: devices skipped, the rest extracted
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        ti = tarfile.TarInfo("null")
        ti.type = tarfile.CHRTYPE
        t.addfile(ti)
        ti = tarfile.TarInfo("f")
        ti.size = 2
        t.addfile(ti, io.BytesIO(b"ok"))
    r = vm.run("cp", "-", f"{box}:/root/t", input=buf.getvalue(), check=0)
    assert "null: device, FIFO or socket skipped" in decode(r.stderr)
    assert decode(sh(vm, box, "ls -A /root/t").stdout) == "f\n"


def test_stream_no_overwrite(vm, boxes):
    box = boxes("tn")
    sh(vm, box, "mkdir -p /root/t/d && echo old > /root/t/f && chmod 700 /root/t/d")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in (("d/new", b"new file in an existing directory\n"), ("f", b"new\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    archive = buf.getvalue()
    r = vm.run("cp", "--no-overwrite", "-", f"{box}:/root/t", input=archive)
    assert r.returncode == 125, decode(r.stderr)
    assert f"cocoon: copy to {box}:/root/t: f: exists and may not be replaced (overwriting is off)" in \
        decode(r.stderr), decode(r.stderr)
    assert decode(sh(vm, box, "cat /root/t/f; stat -c %a /root/t/d").stdout) == "old\n700\n"
    # without it, the file is replaced and the directory merged into
    vm.run("cp", "-", f"{box}:/root/t", input=archive, check=0)
    assert decode(sh(vm, box, "cat /root/t/f /root/t/d/new").stdout) == "new\nnew file in an existing directory\n"


def test_stream_missing_paths(vm, boxes):
    box = boxes("tm")
    r = vm.run("cp", f"{box}:/root/nope", "-")
    assert r.returncode == 125 and r.stdout == b"", r.stdout[:200]
    assert decode(r.stderr).strip() == f"cocoon: copy from {box}:/root/nope: nope: No such file or directory"
    r = vm.run("cp", "-", f"{box}:/root/nodir", input=hostile("none"))
    assert r.returncode == 125 and "/root/nodir/: no such directory" in decode(r.stderr), decode(r.stderr)
    sh(vm, box, "echo x > /root/file")
    r = vm.run("cp", "-", f"{box}:/root/file", input=hostile("none"))
    assert r.returncode == 125 and "/root/file/: not a directory" in decode(r.stderr), decode(r.stderr)
    # usage errors need no box
    r = vm.run("cp", "--no-overwrite", f"{box}:/root/file", "-")
    assert r.returncode == 2 and "--no-overwrite works with" in decode(r.stderr)
