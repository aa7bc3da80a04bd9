"""Layer merge into an ext4 base (image_unpack_ext4), end to end on the host.

Layers are written with Python's tarfile as an image author (or an attacker) would;
blobs go into a store laid out as <store>/blobs/sha256/<hex>. They are merged through
tests/tools/unpack-tool.c, compiled here against the build's libcocoon.a, and the result
is read back with debugfs (tree, owners, modes, links, devices, xattrs, contents) and
checked with `e2fsck -fn`. Booting the image in a box is covered elsewhere."""
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tarfile

import pytest

from layers import MTIME, D, DEV, F, H, L, tar_bytes, ti  # noqa: F401

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.dirname(os.path.abspath(os.environ["COCOON_BIN_DIR"])) if os.environ.get("COCOON_BIN_DIR") \
    else os.path.join(ROOT, "build")
DEBUGFS = shutil.which("debugfs") or "/usr/sbin/debugfs"
E2FSCK = shutil.which("e2fsck") or "/usr/sbin/e2fsck"
BUSYBOX = "/bin/busybox"

pytestmark = pytest.mark.skipif(not os.path.exists(DEBUGFS) or not os.path.exists(E2FSCK),
                                reason="e2fsprogs (debugfs, e2fsck) not installed")


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    lib = os.path.join(BUILD, "lib", "libcocoon.a")
    if not os.path.exists(lib):
        pytest.fail(f"{lib} is not built (make host)")
    out = str(tmp_path_factory.mktemp("unpacktool") / "unpack-tool")
    libs = subprocess.run(["pkg-config", "--libs", "jansson", "sqlite3"], capture_output=True, text=True, check=True).stdout.split()
    base = ["gcc", "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
            "-I" + os.path.join(ROOT, "include"), "-I" + os.path.join(ROOT, "src"),
            "-o", out, os.path.join(ROOT, "tests/tools/unpack-tool.c"), lib] + libs + ["-lpthread", "-ldl"]
    p = subprocess.run(base, capture_output=True, text=True)
    if p.returncode != 0:  # a sanitizer build of the library needs the runtime too
        p = subprocess.run(base + ["-fsanitize=address,undefined"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return out


# ---- building layers: tests/integration/layers.py ----


class Store:
    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)

    def put(self, blob):
        h = hashlib.sha256(blob).hexdigest()
        with open(os.path.join(self.path, "blobs", "sha256", h), "wb") as f:
            f.write(blob)
        return "sha256:" + h

    def layer(self, members, compress=True):
        raw = tar_bytes(members)
        return self.put(gzip.compress(raw, mtime=0) if compress else raw)


def unpack(tool, store, out, digests, env=None):
    return subprocess.run([tool, store.path, str(out)] + list(digests), capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


# ---- reading the result ----

def debugfs(img, *cmds):
    p = subprocess.run([DEBUGFS, "-f", "-", str(img)], input="\n".join(cmds) + "\n",
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


LS_LINE = re.compile(r"^\s*(\d+)\s+(\d+)\s+\((\d+)\)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\S+\s+(.+)$")


def tree(img):
    """{path: (mode octal string, uid, gid, size, inode)} of everything but lost+found's contents."""
    found, queue = {}, ["/"]
    while queue:
        out = debugfs(img, *[f'ls -l "{d}"' for d in queue])
        sections = re.split(r"^debugfs: ls -l \"(.*)\"$", out, flags=re.M)[1:]
        queue = []
        for d, body in zip(sections[0::2], sections[1::2]):
            for line in body.splitlines():
                m = LS_LINE.match(line)
                if not m or m.group(7) in (".", ".."):
                    continue
                ino, mode, _, uid, gid, size, name = m.groups()
                path = d.rstrip("/") + "/" + name
                found[path] = (mode, int(uid), int(gid), int(size), int(ino))
                if mode.startswith("40") and path != "/lost+found":
                    queue.append(path)
    return found


def fsck_clean(img):
    p = subprocess.run([E2FSCK, "-fn", str(img)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


# ---- the image ----

PASSWD1 = b"root:x:0:0:root:/root:/bin/sh\n"
PASSWD3 = PASSWD1 + b"user:x:1234:5678::/home/user:/bin/sh\n"
CAP = bytes([1, 0, 0, 2, 0, 0x20, 0, 0] + [0] * 12)  # cap_net_raw+ep


def busybox_image(store):
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    l1 = store.layer([
        D("./"), D("bin"), F("bin/busybox", bb, mode=0o755), L("bin/sh", "busybox"), L("bin/ls", "busybox"),
        L("bin/cat", "busybox"), D("sbin"), L("sbin/init", "../bin/busybox"),
        D("etc"), F("etc/passwd", PASSWD1), F("etc/group", b"root:x:0:\n"), F("etc/motd", b"welcome\n"),
        D("root", mode=0o700), D("tmp", mode=0o1777),
        D("var"), D("var/cache"), D("var/cache/apt"), F("var/cache/apt/pkgcache.bin", b"\0" * 10000 + b"end"),
        F("var/cache/old", b"stale"),
        D("opt"), D("opt/app"), F("opt/app/run", b"#!/bin/sh\n", mode=0o755),
        D("home"), D("home/user", mode=0o750, uid=1234, gid=5678),
        F("home/user/notes", b"mine", mode=0o600, uid=1234, gid=5678),
        D("dev"), DEV("dev/null", tarfile.CHRTYPE, 0o666, 1, 3), DEV("dev/tty", tarfile.CHRTYPE, 0o666, 5, 0),
        DEV("dev/sda", tarfile.BLKTYPE, 0o660, 8, 0, gid=6), DEV("dev/initctl", tarfile.FIFOTYPE, 0o600, 0, 0),
    ])
    l2 = store.layer([
        F("etc/.wh.motd"),
        F("var/cache/.wh..wh..opq"), F("var/cache/fresh", b"new"),
        D("usr"), D("usr/bin"), H("usr/bin/busybox-hl", "bin/busybox"),
        F("usr/bin/su", b"setuid", mode=0o4755), F("usr/bin/wall", b"setgid", mode=0o2755, gid=5),
        D("usr/local"), D("usr/local/bin"), L("usr/local/bin/a", "b"), L("usr/local/bin/b", "c"),
        L("usr/local/bin/c", "/bin/busybox"),
    ], compress=False)
    l3 = store.layer([
        F("etc/passwd", PASSWD3),
        F("opt/.wh.app"),
        F("bin/ping", b"ping", mode=0o755, pax={"SCHILY.xattr.security.capability": CAP.decode("latin-1")}),
        D("usr/lib", mode=0o750, uid=1234),
        H("bin/ls", "bin/busybox"),  # a symlink in layer 1, now a third name of busybox
    ])
    return [l1, l2, l3], bb


EXPECTED = {
    # path: (mode, uid, gid)
    "/lost+found": ("40700", 0, 0),
    "/bin": ("40755", 0, 0), "/bin/busybox": ("100755", 0, 0), "/bin/sh": ("120777", 0, 0),
    "/bin/ls": ("100755", 0, 0), "/bin/cat": ("120777", 0, 0), "/bin/ping": ("100755", 0, 0),
    "/sbin": ("40755", 0, 0), "/sbin/init": ("120777", 0, 0),
    "/etc": ("40755", 0, 0), "/etc/passwd": ("100644", 0, 0), "/etc/group": ("100644", 0, 0),
    "/root": ("40700", 0, 0), "/tmp": ("41777", 0, 0),
    "/var": ("40755", 0, 0), "/var/cache": ("40755", 0, 0), "/var/cache/fresh": ("100644", 0, 0),
    "/opt": ("40755", 0, 0),
    "/home": ("40755", 0, 0), "/home/user": ("40750", 1234, 5678), "/home/user/notes": ("100600", 1234, 5678),
    "/dev": ("40755", 0, 0), "/dev/null": ("20666", 0, 0), "/dev/tty": ("20666", 0, 0),
    "/dev/sda": ("60660", 0, 6), "/dev/initctl": ("10600", 0, 0),
    "/usr": ("40755", 0, 0), "/usr/bin": ("40755", 0, 0), "/usr/bin/busybox-hl": ("100755", 0, 0),
    "/usr/bin/su": ("104755", 0, 0), "/usr/bin/wall": ("102755", 0, 5),
    "/usr/local": ("40755", 0, 0), "/usr/local/bin": ("40755", 0, 0), "/usr/local/bin/a": ("120777", 0, 0),
    "/usr/local/bin/b": ("120777", 0, 0), "/usr/local/bin/c": ("120777", 0, 0),
    "/usr/lib": ("40750", 1234, 0),
}


def test_busybox_image_three_layers(tool, tmp_path):
    store = Store(str(tmp_path / "store"))
    layers, bb = busybox_image(store)
    out = tmp_path / "base.ext4"
    p = unpack(tool, store, out, layers)
    assert p.returncode == 0, p.stderr
    fsck_clean(out)
    assert not [n for n in os.listdir(tmp_path) if ".tmp." in n]

    t = tree(out)
    assert {k: v[:3] for k, v in t.items()} == EXPECTED
    # hard links: one inode, three names, link count 3
    assert t["/bin/busybox"][4] == t["/bin/ls"][4] == t["/usr/bin/busybox-hl"][4]
    assert t["/bin/busybox"][3] == len(bb)
    st = debugfs(out, "stat /bin/busybox")
    assert re.search(r"Links: 3\b", st), st
    # contents
    dumped = tmp_path / "bb"
    debugfs(out, f"dump /bin/busybox {dumped}")
    assert dumped.read_bytes() == bb
    assert debugfs(out, "cat /etc/passwd").split("\n", 1)[1].encode() == PASSWD3
    assert debugfs(out, "cat /var/cache/fresh").endswith("new")
    # symlink chain and targets
    for path, target in [("/usr/local/bin/a", "b"), ("/usr/local/bin/b", "c"),
                         ("/usr/local/bin/c", "/bin/busybox"), ("/bin/sh", "busybox"), ("/sbin/init", "../bin/busybox")]:
        st = debugfs(out, f"stat {path}")
        assert f'Fast link dest: "{target}"' in st, st
    # devices
    assert "Device major/minor number: 01:03" in debugfs(out, "stat /dev/null")
    assert "Device major/minor number: 08:00" in debugfs(out, "stat /dev/sda")
    # xattrs
    ea = debugfs(out, "ea_list /bin/ping")
    assert "security.capability (20) = 01 00 00 02 00 20 00 00" in ea, ea
    # mtimes kept
    assert "mtime: 0x%08x" % MTIME in debugfs(out, "stat /etc/passwd")


def test_sized_with_headroom(tool, tmp_path):
    store = Store(str(tmp_path / "store"))
    big = os.urandom(3 << 20)
    d = store.layer([F("big", big)])
    out = tmp_path / "base.ext4"
    assert unpack(tool, store, out, [d]).returncode == 0
    fsck_clean(out)
    stats = debugfs(out, "stats")
    bs = int(re.search(r"Block size:\s+(\d+)", stats).group(1))
    free = int(re.search(r"Free blocks:\s+(\d+)", stats).group(1))
    assert free * bs >= 256 << 20
    assert os.stat(out).st_blocks * 512 < os.stat(out).st_size  # sparse


# ---- hostile layers ----

def truncated_gzip(store):
    blob = gzip.compress(tar_bytes([F("data", os.urandom(200000))]), mtime=0)
    return [store.put(blob[: len(blob) // 2])]


def size_lie(store):
    raw = tar_bytes([F("claims", b"z" * (1 << 20))])
    return [store.put(raw[:20000])]


def claims_100g(store):
    """A compressed layer whose member claims 100 GiB (its data is not there)."""
    head = ti("huge")
    head.size = 100 << 30
    return [store.put(gzip.compress(head.tobuf(format=tarfile.GNU_FORMAT) + b"z" * 512, mtime=0))]


HOSTILE = {
    "dotdot": (lambda s: [s.layer([F("ok", b"fine"), F("../evil", b"evil")])], '"../evil": path escapes the root'),
    "absolute": (lambda s: [s.layer([F("/etc/evil", b"evil")])], '"/etc/evil": absolute path refused'),
    "nested_dotdot": (lambda s: [s.layer([F("a/../../evil", b"evil")])], "path escapes the root"),
    "symlink_then_write": (lambda s: [s.layer([L("x", "../..")]), s.layer([F("x/evil", b"evil")])],
                           'refused: parent "x" is a symlink'),
    "symlink_root": (lambda s: [s.layer([L("etc", "/")]), s.layer([F("etc/evil", b"evil")], compress=False)],
                     'refused: parent "etc" is a symlink'),
    "hardlink_escape": (lambda s: [s.layer([H("passwd", "../../etc/passwd")])],
                        'hard link target "../../etc/passwd"'),
    "hardlink_dangling": (lambda s: [s.layer([H("passwd", "etc/passwd")])], "does not exist"),
    "truncated_gzip": (truncated_gzip, "corrupt or truncated layer"),
    "size_lie": (size_lie, '"claims": claims more bytes than the layer blob holds'),
    "claims_100g": (claims_100g, '"huge": the layers hold more than 68719476736 bytes of file data, the limit'),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_refused(tool, tmp_path, case):
    make, needle = HOSTILE[case]
    work = tmp_path / "work"
    work.mkdir()
    store = Store(str(tmp_path / "store"))
    digests = make(store)
    out = work / "base.ext4"
    p = unpack(tool, store, out, digests)
    assert p.returncode == 1, p.stdout + p.stderr
    assert needle in p.stderr, p.stderr
    assert digests[-1] in p.stderr or case.startswith("symlink") and any(d in p.stderr for d in digests), p.stderr
    assert os.listdir(work) == []  # no output, no temp file
    # nothing written outside either
    for escaped in [tmp_path / "evil", tmp_path.parent / "evil", work.parent / "x" / "evil"]:
        assert not escaped.exists()


# ---- per-pull budgets, lowered through the environment ----

BUDGETS = {
    "entries": ({"COCOON_UNPACK_MAX_ENTRIES": "50"},
                lambda s: [s.layer([F(f"f{i}", b"x") for i in range(30)]), s.layer([F(f"g{i}", b"y") for i in range(30)])],
                "the image's layers hold more than 50 members, the limit (raise it with COCOON_UNPACK_MAX_ENTRIES"),
    "file_data": ({"COCOON_UNPACK_MAX_BYTES": "1M"},
                  lambda s: [s.layer([F("a", b"a" * 600000)]), s.layer([F("b", b"b" * 600000)])],
                  "the layers hold more than 1048576 bytes of file data, the limit (raise it with "
                  "COCOON_UNPACK_MAX_BYTES"),
    "xattrs": ({"COCOON_UNPACK_MAX_META": "1M"},
               lambda s: [s.layer([F(f"x{i}", b"", pax={"SCHILY.xattr.user.big": "v" * 3000}) for i in range(400)])],
               "needs more than 1048576 bytes of memory, the limit (raise it with COCOON_UNPACK_MAX_META"),
    "link_targets": ({"COCOON_UNPACK_MAX_META": "1M"},
                     lambda s: [s.layer([L(f"l{i}", "t" * 4000) for i in range(400)])],
                     "needs more than 1048576 bytes of memory"),
}


@pytest.mark.parametrize("case", sorted(BUDGETS))
def test_budget_refused(tool, tmp_path, case):
    env, make, needle = BUDGETS[case]
    work = tmp_path / "work"
    work.mkdir()
    store = Store(str(tmp_path / "store"))
    digests = make(store)
    p = unpack(tool, store, work / "base.ext4", digests, env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    assert needle in p.stderr, p.stderr
    assert os.listdir(work) == []
    # the same layers pass under the defaults
    p = unpack(tool, store, work / "base.ext4", digests)
    assert p.returncode == 0, p.stderr
