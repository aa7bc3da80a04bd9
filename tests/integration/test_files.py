"""`cocoon cp` and the file C API on real boxes: round trips of a tree with symlinks,
empty files, unicode names, modes and mtimes; a 3 GiB sparse file; the symlink and
".." escape cases on both sides; hostile trees a guest makes itself (symlinks out of
the copy, FIFOs, device nodes, setuid files, world-writable directories, a 10 GB sparse
file, 100k entries, escape sequences in names, a guest that stops answering), each
checked on the host afterwards; cocoon_file_write/cocoon_file_read through a small C
program linked against libcocoon.a; errors on a stopped or missing box."""
import hashlib
import os
import signal
import stat
import subprocess

import pytest

from conftest import BIN_DIR, REPO, decode, sh

GIB = 1 << 30


def make_tree(root):
    os.makedirs(os.path.join(root, "sub", "deep"))
    with open(os.path.join(root, "a.txt"), "wb") as f:
        f.write(b"hello\n")
    open(os.path.join(root, "empty"), "wb").close()
    with open(os.path.join(root, "sub", "ünïcødé ✓.txt"), "wb") as f:
        f.write(bytes(range(256)) * 10)
    with open(os.path.join(root, "sub", "deep", "n" * 150), "wb") as f:
        f.write(b"long name\n")
    with open(os.path.join(root, "run.sh"), "wb") as f:
        f.write(b"#!/bin/sh\necho ran\n")
    os.chmod(os.path.join(root, "run.sh"), 0o750)
    os.chmod(os.path.join(root, "sub", "ünïcødé ✓.txt"), 0o600)
    os.symlink("a.txt", os.path.join(root, "link"))
    os.symlink("/etc/passwd", os.path.join(root, "abs-link"))
    os.symlink("missing", os.path.join(root, "dangling"))
    os.chmod(os.path.join(root, "sub"), 0o751)
    os.utime(os.path.join(root, "a.txt"), ns=(981173106_123456789, 981173106_123456789))
    os.utime(os.path.join(root, "sub", "deep"), (1000000000, 1000000000))


def snapshot(root):
    """{relpath: (type, mode, mtime_s, content-or-link)} of a tree, symlinks not followed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("l", None, None, os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d", st.st_mode & 0o7777, int(st.st_mtime), None)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", st.st_mode & 0o7777, int(st.st_mtime), f.read())
    return out


def test_tree_round_trip(vm, boxes, tmp_path):
    box = boxes("f")
    src = str(tmp_path / "tree")
    make_tree(src)
    vm.run("cp", src, f"{box}:/root/", check=0)
    r = sh(vm, box, "cd /root/tree && cat a.txt && ./run.sh && readlink link abs-link dangling && "
                    "stat -c '%a %Y' sub sub/ünïcødé\\ ✓.txt run.sh && stat -c %y a.txt && "
                    "wc -c < empty && ls sub/deep | wc -c")
    lines = decode(r.stdout).splitlines()
    assert lines[:5] == ["hello", "ran", "a.txt", "/etc/passwd", "missing"], lines
    assert lines[5].startswith("751 ") and lines[6].startswith("600 ") and lines[7].startswith("750 "), lines
    assert lines[8].startswith("2001-02-03 04:05:06.123456789"), lines  # mtime with nanoseconds
    assert lines[9:] == ["0", "151"], lines
    # Back out under a new name, and compare everything but the link to /etc/passwd,
    # which would point outside the copy: skipped, with a warning.
    out = str(tmp_path / "back")
    r = vm.run("cp", f"{box}:/root/tree", out, check=0)
    assert "back/abs-link: symlink to \"/etc/passwd\" skipped" in decode(r.stderr), decode(r.stderr)
    want = snapshot(src)
    del want["abs-link"]
    assert snapshot(out) == want
    # Into an existing directory: lands inside it under its own name.
    into = tmp_path / "into"
    into.mkdir()
    vm.run("cp", f"{box}:/root/tree/sub", str(into), check=0)
    assert snapshot(str(into / "sub")) == snapshot(os.path.join(src, "sub"))
    # A single file to a new name in the guest. A symlink alone would point outside
    # its copy on the host: refused, nothing written.
    vm.run("cp", os.path.join(src, "a.txt"), f"{box}:/tmp/renamed.txt", check=0)
    r = vm.run("cp", f"{box}:/root/tree/link", str(tmp_path / "link-out"))
    assert r.returncode != 0 and "it is a symlink (to \"a.txt\")" in decode(r.stderr), decode(r.stderr)
    assert not os.path.lexists(tmp_path / "link-out")
    assert decode(sh(vm, box, "cat /tmp/renamed.txt").stdout) == "hello\n"


def _hash_regions(path, offsets, size=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for off in offsets:
            f.seek(off)
            h.update(f.read(size))
    return h.hexdigest()


def test_sparse_3gib(vm, boxes, tmp_path):
    box = boxes("sp", "--disk", "4G")
    src = str(tmp_path / "sparse.img")
    offsets = [0, GIB, 2 * GIB + 12345, 3 * GIB - (1 << 20)]
    with open(src, "wb") as f:
        f.truncate(3 * GIB)
        for i, off in enumerate(offsets):
            f.seek(off)
            f.write(os.urandom(1 << 20) if i % 2 else bytes([i + 1]) * (1 << 20))
    want = _hash_regions(src, offsets)
    vm.run("cp", src, f"{box}:/root/sparse.img", check=0, timeout=600)
    script = ("stat -c '%s %b %B' /root/sparse.img; for o in " + " ".join(str(o) for o in offsets) +
              "; do dd if=/root/sparse.img bs=1M count=1 iflag=skip_bytes skip=$o status=none; done | sha256sum")
    size, blocks, bsize, digest = decode(sh(vm, box, script).stdout).replace("\n", " ").split()[:4]
    assert int(size) == 3 * GIB
    assert int(blocks) * int(bsize) < 64 << 20, "the sparse file was expanded in the guest"
    assert digest == want
    back = str(tmp_path / "back.img")
    vm.run("cp", f"{box}:/root/sparse.img", back, check=0, timeout=600)
    st = os.stat(back)
    assert st.st_size == 3 * GIB
    assert st.st_blocks * 512 < 64 << 20, "the sparse file was expanded on the host"
    assert _hash_regions(back, offsets) == want


def test_guest_symlink_cannot_write_outside_target(vm, boxes, tmp_path):
    box = boxes("f")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    sh(vm, box, f"mkdir -p /x && ln -s /etc/passwd /x/evil && ln -s {victim} /x/evil2 && "
                "mkdir -p /x/d && ln -s /etc /x/d/etc && ln -s file /x/d/ok && echo data > /x/d/file")
    out = tmp_path / "out"
    out.mkdir()
    # A symlink asked for by name would point outside the copy: refused.
    r = vm.run("cp", f"{box}:/x/evil", str(out))
    assert r.returncode != 0 and "it is a symlink (to \"/etc/passwd\")" in decode(r.stderr), decode(r.stderr)
    # The user's own symlink at the destination name is left alone, never written through.
    (out / "evil2").symlink_to(victim)
    r = vm.run("cp", f"{box}:/x/evil2", str(out))
    assert r.returncode != 0
    assert os.readlink(out / "evil2") == str(victim)
    assert victim.read_text() == "precious\n"
    # A directory holding a symlink to /etc: copied without that link, /etc untouched;
    # a link that stays inside the copy is kept.
    r = vm.run("cp", f"{box}:/x/d", str(out), check=0)
    assert "d/etc: symlink to \"/etc\" skipped" in decode(r.stderr), decode(r.stderr)
    assert not os.path.lexists(out / "d" / "etc")
    assert os.readlink(out / "d" / "ok") == "file"
    assert (out / "d" / "file").read_text() == "data\n"
    assert sorted(os.listdir(out)) == ["d", "evil2"]


def _only(path, names):
    """path holds exactly names: nothing else, no staging directory left."""
    assert sorted(os.listdir(path)) == sorted(names), os.listdir(path)


def test_hostile_tree_from_guest(vm, boxes, tmp_path):
    """The guest (root) makes what it likes; the host copy keeps none of the danger."""
    box = boxes("f")
    sh(vm, box, "mkdir -p /h/ww /h/sub && cd /h && ln -s /etc/passwd passwd && ln -s ../../x up && "
                "ln -s sub/../.. sneaky && ln -s sub inner && mkfifo fifo && mknod null c 1 3 && "
                "mknod sda b 8 0 && echo s > suid && chmod 6755 suid && chmod 1777 ww && "
                "echo w > ww/open && chmod 666 ww/open && echo ok > sub/f")
    vm.run("exec", box, "--", "python3", "-c", "import os; open('/h/e\x1b]0;pwned\x07\x1b[2J', 'w').write('e'); "
           "os.mkfifo('/h/\x1b[31mred')", check=0)
    out = tmp_path / "out"
    out.mkdir()
    old = os.umask(0o022)
    try:
        r = vm.run("cp", f"{box}:/h", str(out), check=0)
    finally:
        os.umask(old)
    err = decode(r.stderr)
    _only(out, ["h"])
    h = out / "h"
    names = set(os.listdir(h))
    for gone in ("passwd", "up", "sneaky", "fifo", "null", "sda"):
        assert gone not in names, (gone, names)
    assert os.readlink(h / "inner") == "sub"
    assert stat.S_IMODE(os.lstat(h / "suid").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(h / "ww").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(h / "ww" / "open").st_mode) == 0o644
    assert os.lstat(h / "suid").st_uid == os.getuid()
    for warned in ("h/passwd: symlink", "h/up: symlink", "h/sneaky: symlink"):
        assert warned in err, err
    # Names with escape sequences arrive as they are, but nothing raw reaches the terminal.
    assert "e\x1b]0;pwned\x07\x1b[2J" in names
    assert "\x1b" not in err and "\\x1b[31mred" in err, err


def test_sparse_10g_from_guest(vm, boxes, tmp_path):
    box = boxes("f")
    sh(vm, box, "truncate -s 10G /big && printf tail >> /big")
    out = tmp_path / "out"
    out.mkdir()
    r = vm.run("cp", f"{box}:/big", str(out), env={"COCOON_CP_MAX_BYTES": "1G"})
    assert r.returncode != 0, decode(r.stderr)
    assert "above 1073741824 bytes, the limit (raise it with COCOON_CP_MAX_BYTES" in decode(r.stderr), decode(r.stderr)
    _only(out, [])
    # Under the default bound (16 GiB) it comes over, and stays sparse on the host.
    vm.run("cp", f"{box}:/big", str(out), check=0, timeout=600)
    st = os.stat(out / "big")
    assert st.st_size == 10 * GIB + 4
    assert st.st_blocks * 512 < 16 << 20, "the sparse file was expanded on the host"
    with open(out / "big", "rb") as f:
        f.seek(10 * GIB)
        assert f.read() == b"tail"


def test_many_entries_from_guest(vm, boxes, tmp_path):
    box = boxes("f", "--disk", "4G")  # inodes for 100k files
    sh(vm, box, "mkdir -p /many && cd /many && python3 -c \"import os\nfor i in range(100000): "
                "open('f%d' % i, 'w').close()\"")
    out = tmp_path / "out"
    out.mkdir()
    r = vm.run("cp", f"{box}:/many", str(out), env={"COCOON_CP_MAX_ENTRIES": "1000"}, timeout=600)
    assert r.returncode != 0
    assert "more than 1000 entries, the limit (raise it with COCOON_CP_MAX_ENTRIES" in decode(r.stderr)
    _only(out, [])
    vm.run("cp", f"{box}:/many", str(out), check=0, timeout=900)
    assert len(os.listdir(out / "many")) == 100000


def _qemu_of(vm, name):
    """The pid of the QEMU process running box `name` (a child of its cocoon-vmm)."""
    for d in vm.box_dirs():
        pidfile = os.path.join(vm.boxes_dir(), d, "vmm.pid")
        if not os.path.exists(pidfile):
            continue
        vmm = int(open(pidfile).read().split()[0])
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == vmm:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        if b"qemu" in f.read():
                            return int(entry)
    return None


def test_guest_that_stops_answering(vm, boxes, tmp_path):
    """A frozen guest: the copy gives up after the idle limit with a clear error."""
    if vm.backend != "qemu":
        pytest.skip("skipped: freezing the guest is done by stopping its QEMU process")
    box = boxes("f")
    sh(vm, box, "head -c 1000000 /dev/urandom > /data")
    qemu = _qemu_of(vm, box)
    assert qemu, "no QEMU process found for the box"
    out = tmp_path / "out"
    out.mkdir()
    os.kill(qemu, signal.SIGSTOP)
    try:
        r = vm.run("cp", f"{box}:/data", str(out), env={"COCOON_CP_IDLE_TIMEOUT": "3"}, timeout=120)
        r2 = vm.run("cp", str(tmp_path / "out"), f"{box}:/tmp/", env={"COCOON_CP_IDLE_TIMEOUT": "3"}, timeout=120)
    finally:
        os.kill(qemu, signal.SIGCONT)
    assert r.returncode != 0
    assert "the transfer stalled: the guest sent nothing for 3 s" in decode(r.stderr), decode(r.stderr)
    assert r2.returncode != 0 and "stalled" in decode(r2.stderr), decode(r2.stderr)
    _only(out, [])
    # The box still serves once it runs again.
    assert decode(sh(vm, box, "echo alive").stdout) == "alive\n"


def test_guest_paths_stay_in_the_guest_root(vm, boxes, tmp_path):
    box = boxes("f")
    f = tmp_path / "f.txt"
    f.write_text("in the box\n")
    # ".." above the root and a symlink to an absolute path both resolve inside the guest.
    vm.run("cp", str(f), f"{box}:/../../../tmp/", check=0)
    sh(vm, box, "ln -s / /tmp/rootlink")
    vm.run("cp", str(f), f"{box}:/tmp/rootlink/../../root/f2.txt", check=0)
    r = sh(vm, box, "cat /tmp/f.txt /root/f2.txt")
    assert decode(r.stdout) == "in the box\nin the box\n"
    # Reading the same way stays inside too: /etc/hostname of the guest, not the host's.
    vm.run("cp", f"{box}:/../../etc/hostname", str(tmp_path / "hn"), check=0)
    assert (tmp_path / "hn").read_text().strip() == decode(sh(vm, box, "cat /etc/hostname").stdout).strip()


def test_cp_errors(vm, boxes, tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    r = vm.run("cp", str(f), "nosuchbox:/tmp/")
    assert r.returncode != 0 and "nosuchbox" in decode(r.stderr)
    vm.run("create", "--name", "stopped", check=0)
    try:
        _cp_errors_on(vm, f, tmp_path)
    finally:
        vm.run("rm", "-f", "stopped")


def _cp_errors_on(vm, f, tmp_path):
    r = vm.run("cp", str(f), "stopped:/tmp/")
    assert r.returncode != 0 and "not running" in decode(r.stderr), decode(r.stderr)
    r = vm.run("cp", "stopped:/etc/hostname", str(tmp_path))
    assert r.returncode != 0 and "not running" in decode(r.stderr), decode(r.stderr)
    vm.run("start", "stopped", check=0)
    r = vm.run("cp", "stopped:/no/such/file", str(tmp_path))
    assert r.returncode != 0 and "No such file" in decode(r.stderr), decode(r.stderr)
    r = vm.run("cp", str(f), "stopped:/no/such/dir/")
    assert r.returncode != 0, decode(r.stderr)
    r = vm.run("cp", str(tmp_path / "missing"), "stopped:/tmp/")
    assert r.returncode != 0 and "missing" in decode(r.stderr)
    # The box still serves after the failures.
    assert decode(sh(vm, "stopped", "echo ok").stdout) == "ok\n"


C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cocoon.h"
int main(int argc, char **argv)
{
    cocoon_runtime *rt; cocoon_box *box; cocoon_error err;
    if (cocoon_runtime_open(NULL, &rt, &err) < 0 || cocoon_box_open(rt, argv[1], &box, &err) < 0) {
        fprintf(stderr, "open: %s\n", err.message); return 1;
    }
    static char data[300000];
    for (size_t i = 0; i < sizeof(data); i++) data[i] = (char)(i * 7);
    if (cocoon_file_write(box, "/tmp/api.bin", data, sizeof(data), 0640, &err) < 0) {
        fprintf(stderr, "write: %s\n", err.message); return 1;
    }
    void *back; size_t len;
    if (cocoon_file_read(box, "/tmp/api.bin", &back, &len, 1 << 20, &err) < 0) {
        fprintf(stderr, "read: %s\n", err.message); return 1;
    }
    if (len != sizeof(data) || memcmp(back, data, len)) { fprintf(stderr, "mismatch\n"); return 1; }
    free(back);
    if (cocoon_file_read(box, "/tmp/api.bin", &back, &len, 1000, &err) == 0 || err.code != COCOON_E_INVALID) {
        fprintf(stderr, "max not enforced\n"); return 1;
    }
    if (cocoon_file_read(box, "/tmp", &back, &len, 1000, &err) == 0) { fprintf(stderr, "dir read\n"); return 1; }
    if (cocoon_file_write(box, "/tmp", "x", 1, 0, &err) == 0) { fprintf(stderr, "dir overwritten\n"); return 1; }
    if (cocoon_file_read(box, "/nope", &back, &len, 1000, &err) == 0 || err.code != COCOON_E_NOT_FOUND) {
        fprintf(stderr, "missing file: %d %s\n", err.code, err.message); return 1;
    }
    cocoon_stats st;
    if (cocoon_box_stats(box, &st, &err) < 0 || st.mem_total == 0) { fprintf(stderr, "stats: %s\n", err.message); return 1; }
    printf("ok\n");
    cocoon_box_close(box);
    cocoon_runtime_close(rt);
    return 0;
}
"""


def test_c_api_file_read_write(vm, boxes, tmp_path):
    lib = os.path.join(os.path.dirname(BIN_DIR), "lib", "libcocoon.a")
    if not os.path.exists(lib):
        pytest.skip(f"skipped: {lib} not built")
    src = tmp_path / "api.c"
    src.write_text(C_PROGRAM)
    exe = str(tmp_path / "api")
    # libarchive is not linked: cocoon_file_write/read load it on first use (dlopen)
    libs = subprocess.run(["pkg-config", "--libs", "jansson", "sqlite3"], capture_output=True, text=True,
                          check=True).stdout.split()
    # The library may be a sanitizer build: link the runtimes it needs.
    san = ["-fsanitize=address,undefined"] if "asan" in lib else []
    subprocess.run(["cc", "-std=gnu11", *san, "-I", os.path.join(REPO, "include"), "-o", exe, str(src), lib,
                    *libs, "-lpthread", "-ldl"], check=True, capture_output=True)
    box = boxes("f")
    p = subprocess.run([exe, box], capture_output=True, env=vm.env, timeout=120)
    assert p.returncode == 0 and p.stdout == b"ok\n", decode(p.stderr)
    r = sh(vm, box, "stat -c %a /tmp/api.bin")
    assert decode(r.stdout).strip() == "640"
