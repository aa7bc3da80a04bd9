"""`cocoon snapshot compact BOX` (src/lib/compact.c over src/disk/qcow2_merge.c): a
stopped box's top layer and the snapshot layers under it become one layer over its
image with the same contents (`qemu-img compare` against the old chain), the snapshots
stay and become removable, a 14-deep box can take snapshots again, a kill at any point
leaves the box as it was or compacted (never broken, `qemu-img check` clean), and a
compacted box boots with its files. Layers are written on the host (qemu-io, debugfs),
so only one test boots a box."""
import hashlib
import json
import os
import shutil
import signal
import subprocess

import pytest

import state_invariants as inv
from conftest import decode, sh, vm_missing_reason

KILLED = -signal.SIGKILL
CLUSTER = 65536
DEPTH_MAX = 14  # COCOON_SNAPSHOT_DEPTH_MAX

pytestmark = pytest.mark.skipif(not shutil.which("qemu-io") or not shutil.which("qemu-img"),
                                reason="skipped: qemu-io and qemu-img are needed to write and compare layers")


@pytest.fixture
def home(cocoon):
    """A home for tests that make boxes but boot none: once, whatever the backends."""
    reason = vm_missing_reason()
    if reason:
        pytest.skip(f"skipped: {reason}")
    return cocoon


def out(r):
    return decode(r.stdout).strip()


def box_disk(c, name):
    for d in c.box_dirs():
        with open(os.path.join(c.boxes_dir(), d, "config.json")) as f:
            cfg = json.load(f)
        if cfg.get("name") == name:
            return cfg["disk"]
    raise AssertionError(f"no box {name}")


def qemu_io(disk, *cmds):
    args = ["qemu-io", "-f", "qcow2"]
    for c in cmds:
        args += ["-c", c]
    subprocess.run(args + [disk], check=True, capture_output=True)


def backing(disk):
    info = json.loads(subprocess.run(["qemu-img", "info", "--output", "json", disk], check=True,
                                     capture_output=True, text=True).stdout)
    return info.get("full-backing-filename") or info.get("backing-filename")


def same_contents(a, b):
    r = subprocess.run(["qemu-img", "compare", a, b], capture_output=True, text=True)
    assert r.returncode == 0, f"{a} and {b} differ: {r.stdout}{r.stderr}"


def check_clean(disk):
    r = subprocess.run(["qemu-img", "check", disk], capture_output=True, text=True)
    assert r.returncode == 0 and "No errors" in r.stdout, r.stdout + r.stderr


def frozen_copy(disk, tmp_path, name):
    """A copy of the box's top layer: it still reads the old chain (the snapshots stay)."""
    copy = str(tmp_path / name)
    shutil.copyfile(disk, copy)
    return copy


def snapshots(c):
    return {s["name"]: s for s in json.loads(out(c.run("snapshot", "ls", "--json", check=0)))}


def test_compact_fourteen_layers_without_boot(home, tmp_path):
    home.run("create", "--name", "deep", check=0)
    disk = box_disk(home, "deep")
    image = backing(disk)
    for i in range(DEPTH_MAX):
        off = (4 + i) * CLUSTER
        cmds = [f"write -P {0x20 + i} {off} {CLUSTER}", f"write -P {0x60 + i} {off + CLUSTER + 100} 300"]
        if i == 3:  # zeros over the image's data (the ext4 superblock): must stay zeros
            cmds.append(f"write -z 0 {CLUSTER}")
        if i == 6:  # data, then zeros over it two layers up
            cmds.append(f"write -P 0x77 {40 * CLUSTER} {CLUSTER}")
        if i == 8:
            cmds.append(f"write -z {40 * CLUSTER} {CLUSTER}")
        qemu_io(disk, *cmds)
        home.run("snapshot", "create", "--name", f"d{i}", "deep", check=0)
    qemu_io(disk, f"write -P 0x99 {2 * CLUSTER} 512")  # the top's own data
    r = home.run("snapshot", "create", "deep")
    assert r.returncode != 0 and "snapshot compact" in decode(r.stderr), decode(r.stderr)
    old = frozen_copy(disk, tmp_path, "old.qcow2")
    snaps = snapshots(home)  # each stands under the box and the snapshots above it
    assert [snaps[f"d{i}"]["users"] for i in range(DEPTH_MAX)] == [DEPTH_MAX - i for i in range(DEPTH_MAX)]
    r = home.run("snapshot", "compact", "deep", check=0)
    said = out(r)
    assert "15 layers" in said and "-> 1 layer over its image" in said, said
    assert "no longer stands on 14 snapshots" in said, said
    same_contents(old, disk)
    check_clean(disk)
    assert backing(disk) == image  # one layer, straight over the image
    snaps = snapshots(home)  # the box no longer counts
    assert [snaps[f"d{i}"]["users"] for i in range(DEPTH_MAX)] == [DEPTH_MAX - 1 - i for i in range(DEPTH_MAX)]
    assert out(home.run("snapshot", "compact", "deep", check=0)).endswith("nothing to do")
    # the box takes snapshots again, and the old ones go, newest first
    home.run("snapshot", "create", "--name", "again", "deep", check=0)
    for i in reversed(range(DEPTH_MAX)):
        home.run("snapshot", "rm", f"d{i}", check=0)
    assert sorted(snapshots(home)) == ["again"]
    inv.assert_clean(home.home, "after compact and removing the old snapshots")


def test_compact_refusals(home, tmp_path):
    r = home.run("snapshot", "compact", "nosuchbox")
    assert r.returncode != 0 and "no box" in decode(r.stderr), decode(r.stderr)
    r = home.run("snapshot", "compact")
    assert r.returncode != 0 and "give one box" in decode(r.stderr), decode(r.stderr)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    home.run("create", "--name", "raw", "--rootfs", str(root), check=0)
    r = home.run("snapshot", "compact", "raw")
    assert r.returncode != 0 and "raw disk" in decode(r.stderr), decode(r.stderr)


@pytest.mark.parametrize("point", ["QCOW2_MERGE:2", "COMPACT_BUILT", "COMPACT_RENAMED"])
def test_kill_compact(home, tmp_path, point):
    home.run("create", "--name", "kc", check=0)
    disk = box_disk(home, "kc")
    image = backing(disk)
    for i in range(3):
        qemu_io(disk, f"write -P {0x31 + i} {i * 3 * CLUSTER} {2 * CLUSTER}")
        home.run("snapshot", "create", "kc", check=0)
    qemu_io(disk, f"write -z {CLUSTER} 4096")
    old = frozen_copy(disk, tmp_path, "old.qcow2")
    r = home.run("snapshot", "compact", "kc", env={"COCOON_TEST_CRASH_AT": point})
    assert r.returncode == KILLED, decode(r.stderr)
    garbage = inv.assert_consistent(home.home, f"compact killed at {point}")
    same_contents(old, disk)  # as it was, or compacted: the same bytes either way
    check_clean(disk)
    compacted = point == "COMPACT_RENAMED"
    assert (backing(disk) == image) == compacted
    assert any("disk.compact" in g for g in garbage) == (not compacted), garbage
    inv.doctor_fix(home)
    inv.assert_clean(home.home, f"compact killed at {point}, then doctor --fix")
    said = out(home.run("snapshot", "compact", "kc", check=0))
    assert said.endswith("nothing to do") == compacted, said
    same_contents(old, disk)
    assert backing(disk) == image


def data_clusters(path):
    """{cluster index: digest} of the data regions of a sparse raw file."""
    found = {}
    with open(path, "rb") as f:
        fd, end, pos = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while pos < end:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            c = start // CLUSTER
            while c * CLUSTER < stop:
                found[c] = hashlib.sha256(os.pread(fd, CLUSTER, c * CLUSTER)).digest()
                c += 1
            pos = c * CLUSTER
    return found


def edit_fs(disk, tmp_path, script):
    """Runs debugfs commands on the box's filesystem, on the host: on a raw view of the
    chain, then the clusters they changed are written into the top layer."""
    view = str(tmp_path / "view.raw")
    if os.path.exists(view):
        os.unlink(view)
    subprocess.run(["qemu-img", "convert", "-O", "raw", disk, view], check=True)
    before = data_clusters(view)
    cmds = tmp_path / "debugfs.cmds"
    cmds.write_text(script)
    subprocess.run(["debugfs", "-w", "-f", str(cmds), view], check=True, capture_output=True)
    after = data_clusters(view)
    changed = sorted(c for c in set(before) | set(after) if before.get(c) != after.get(c))
    assert changed, "debugfs changed nothing"
    writes = []
    with open(view, "rb") as f:
        for c in changed:
            chunk = tmp_path / f"chunk-{c}"
            chunk.write_bytes(os.pread(f.fileno(), CLUSTER, c * CLUSTER).ljust(CLUSTER, b"\0"))
            writes.append(f"write -s {chunk} {c * CLUSTER} {CLUSTER}")
    qemu_io(disk, *writes)


@pytest.mark.skipif(not shutil.which("debugfs"), reason="skipped: debugfs (e2fsprogs) writes the files")
def test_compacted_box_boots_with_its_files(vm, tmp_path):
    """The one boot: files put in three layers (one removed again) are there after the
    compact, and compacting the running box is refused."""
    vm.run("create", "--name", "cb", check=0)
    disk = box_disk(vm, "cb")
    for name in ("one", "two"):
        (tmp_path / name).write_text(f"{name} was here\n")
    edit_fs(disk, tmp_path, f"cd /root\nwrite {tmp_path / 'one'} one\n")
    vm.run("snapshot", "create", "--name", "cb-a", "cb", check=0)
    edit_fs(disk, tmp_path, f"cd /root\nwrite {tmp_path / 'two'} two\nmkdir gone\n")
    vm.run("snapshot", "create", "--name", "cb-b", "cb", check=0)
    edit_fs(disk, tmp_path, "cd /root\nrmdir gone\n")
    old = frozen_copy(disk, tmp_path, "old.qcow2")
    said = out(vm.run("snapshot", "compact", "cb", check=0))
    assert "3 layers" in said, said
    same_contents(old, disk)
    vm.run("snapshot", "rm", "cb-b", check=0)
    vm.run("snapshot", "rm", "cb-a", check=0)
    vm.run("start", "cb", check=0)
    try:
        r = vm.run("snapshot", "compact", "cb")
        assert r.returncode != 0 and "stop it" in decode(r.stderr), decode(r.stderr)
        assert out(sh(vm, "cb", "cat /root/one /root/two; test -e /root/gone || echo no-gone")) == \
            "one was here\ntwo was here\nno-gone"
    finally:
        vm.run("stop", "cb", check=0)
    check_clean(disk)
    inv.assert_clean(vm.home, "after compact and a boot")
