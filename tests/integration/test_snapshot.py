"""Disk snapshots, export and import end to end on real boxes: a snapshot taken of a
stopped box brings the box back to its files after later changes; a snapshot in use
cannot be removed; an export imported into a fresh COCOON_HOME boots with its files;
corrupt, truncated and hostile archives are refused and leave nothing; kill -9 inside
a snapshot or an import leaves the box intact, no half snapshot visible and every
layer clean under `qemu-img check`."""
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile

import pytest

import state_invariants as inv
from conftest import Cocoon, decode, sh

KILLED = -signal.SIGKILL


def out(r):
    return decode(r.stdout).strip()


def cat(vm, box, path):
    return out(sh(vm, box, f"cat {path}"))


def snapshot_names(vm, box=None):
    r = vm.run("snapshot", "ls", "--json", *([box] if box else []), check=0)
    return [s["name"] for s in json.loads(decode(r.stdout))]


def test_snapshot_restore_brings_files_back(vm):
    vm.run("create", "--name", "s1", check=0)
    vm.run("start", "s1", check=0)
    sh(vm, "s1", "echo before > /root/f && sync")
    vm.run("stop", "s1", check=0)
    assert out(vm.run("snapshot", "create", "--name", "snap1", "s1", check=0)) == "snap1"
    vm.run("start", "s1", check=0)
    assert cat(vm, "s1", "/root/f") == "before"  # the box goes on over its snapshot
    sh(vm, "s1", "echo after > /root/f && echo new > /root/g && sync")
    vm.run("stop", "s1", check=0)
    r = vm.run("snapshot", "restore", "s1", "snap1")
    assert r.returncode == 0, decode(r.stderr)
    vm.run("start", "s1", check=0)
    assert cat(vm, "s1", "/root/f") == "before"
    assert sh(vm, "s1", "test -e /root/g", check=None).returncode == 1
    info = json.loads(out(vm.run("snapshot", "inspect", "--json", "snap1", check=0)))
    assert info["box_name"] == "s1" and info["depth"] == 1 and info["users"] == 1 and info["parent"] is None
    vm.run("stop", "s1", check=0)
    inv.assert_clean(vm.home, "after snapshot and restore")


def test_snapshot_in_use_cannot_be_removed(vm):
    vm.run("create", "--name", "u1", check=0)
    vm.run("snapshot", "create", "--name", "a", "u1", check=0)
    vm.run("snapshot", "create", "--name", "b", "u1", check=0)  # b stands on a
    r = vm.run("snapshot", "rm", "a")
    err = decode(r.stderr)
    assert r.returncode != 0 and "in use" in err and "snapshot b" in err and "box" in err, err
    r = vm.run("snapshot", "rm", "b")
    assert r.returncode != 0 and "box" in decode(r.stderr), decode(r.stderr)
    assert sorted(snapshot_names(vm)) == ["a", "b"]
    vm.run("rm", "u1", check=0)
    vm.run("snapshot", "rm", "b", check=0)  # nothing stands on b now
    vm.run("snapshot", "rm", "a", check=0)
    assert snapshot_names(vm) == []
    inv.assert_clean(vm.home, "after removing the snapshots")


def test_restore_onto_another_box_is_refused(vm):
    vm.run("create", "--name", "x1", check=0)
    vm.run("create", "--name", "x2", check=0)
    vm.run("snapshot", "create", "--name", "sx", "x1", check=0)
    r = vm.run("snapshot", "restore", "x2", "sx")
    assert r.returncode != 0 and "taken of box" in decode(r.stderr)


def fresh_home(vm, tmp_path, name):
    other = Cocoon(str(tmp_path / name), tmp_path)
    other.backend = vm.backend
    return other


def test_export_import_into_a_fresh_home(vm, tmp_path):
    vm.run("create", "--name", "e1", check=0)
    vm.run("start", "e1", check=0)
    sh(vm, "e1", "mkdir -p /srv/data && head -c 3000000 /dev/urandom > /srv/data/blob && "
                 "sha256sum /srv/data/blob > /srv/sum && sync")
    want = cat(vm, "e1", "/srv/sum")
    vm.run("stop", "e1", check=0)
    archive = str(tmp_path / "e1.cocoon")
    vm.run("export", "e1", archive, check=0)
    assert not [f for f in os.listdir(tmp_path) if ".partial-" in f]
    other = fresh_home(vm, tmp_path, "home2")
    r = other.run("import", "--name", "copy", archive, check=0)
    assert len(out(r)) == 12
    other.run("start", "copy", check=0)
    assert out(sh(other, "copy", "sha256sum /srv/data/blob")) == want
    other.run("stop", "copy", check=0)
    inv.assert_clean(other.home, "after import")
    # an imported box can be snapshotted and restored like any other
    other.run("snapshot", "create", "--name", "of-copy", "copy", check=0)
    other.run("snapshot", "restore", "copy", "of-copy", check=0)
    # a snapshot exports too, with the files as they were when it was taken
    vm.run("snapshot", "create", "--name", "es", "e1", check=0)
    vm.run("export", "es", str(tmp_path / "es.cocoon"), check=0)
    other.run("import", "--name", "from-snap", str(tmp_path / "es.cocoon"), check=0)
    other.run("start", "from-snap", check=0)
    assert out(sh(other, "from-snap", "sha256sum /srv/data/blob")) == want
    other.run("stop", "from-snap", check=0)


def zstd_tar(path, members):
    """A zstd tar of (name, bytes) members, as a hostile archive would be made."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    subprocess.run(["zstd", "-q", "-f", "-o", path], input=raw.getvalue(), check=True)


def unpack(path):
    raw = subprocess.run(["zstd", "-q", "-d", "-c", path], stdout=subprocess.PIPE, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        return [(m.name, t.extractfile(m).read()) for m in t.getmembers()]


def assert_nothing_imported(c):
    assert decode(c.run("ls", "-a", "-q", check=0).stdout).split() == []
    assert [e for e in c.box_dirs() if not e.startswith(".")] == []
    inv.assert_consistent(c.home, "after a refused import")


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd (the CLI) is not installed")
def test_import_refuses_bad_archives(vm, tmp_path):
    vm.run("create", "--name", "g1", check=0)
    good = str(tmp_path / "good.cocoon")
    vm.run("export", "g1", good, check=0)
    data = open(good, "rb").read()
    members = unpack(good)
    assert [n for n, _ in members] == ["config.json", "disk.img", "manifest.json"]
    manifest = json.loads(members[2][1])
    other = fresh_home(vm, tmp_path, "victim")

    def refused(path, *expect):
        r = other.run("import", path)
        err = decode(r.stderr)
        assert r.returncode != 0, f"{path} was imported"
        assert any(e in err for e in expect), err
        assert_nothing_imported(other)

    cases = {}
    cases["truncated"] = data[: len(data) // 2]
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xff
    cases["corrupt"] = bytes(flipped)
    for name, blob in cases.items():
        with open(tmp_path / name, "wb") as f:
            f.write(blob)
    refused(str(tmp_path / "truncated"), "truncated", "not a cocoon export")
    refused(str(tmp_path / "corrupt"), "damaged", "not a cocoon export", "sha256")

    disk = members[1][1]
    bad_disk = bytearray(disk)
    bad_disk[len(disk) // 2] ^= 1
    zstd_tar(str(tmp_path / "bitflip"), [members[0], ("disk.img", bytes(bad_disk)), members[2]])
    refused(str(tmp_path / "bitflip"), "sha256")
    v2 = dict(manifest, version=2)
    zstd_tar(str(tmp_path / "v2"), [members[0], members[1], ("manifest.json", json.dumps(v2).encode())])
    refused(str(tmp_path / "v2"), "format version 2")
    zstd_tar(str(tmp_path / "traversal"), [("../../escape.json", members[0][1]), members[1], members[2]])
    refused(str(tmp_path / "traversal"), "expected config.json")
    assert not os.path.exists(tmp_path / "escape.json")
    huge = dict(manifest, virtual_size=1 << 50)
    zstd_tar(str(tmp_path / "huge"), [members[0], members[1], ("manifest.json", json.dumps(huge).encode())])
    refused(str(tmp_path / "huge"), "1 TiB")
    zstd_tar(str(tmp_path / "extra"), members + [("more", b"x")])
    refused(str(tmp_path / "extra"), "after its manifest")
    zstd_tar(str(tmp_path / "no-manifest"), members[:2])
    refused(str(tmp_path / "no-manifest"), "truncated")
    # and the good one still imports into that home
    other.run("import", good, check=0)


@pytest.mark.parametrize("point", ["SNAPSHOT_LINKED", "SNAPSHOT_LAYER", "SNAPSHOT_COMMITTED"])
def test_kill_snapshot(vm, point):
    vm.run("create", "--name", "k1", check=0)
    vm.run("start", "k1", check=0)
    sh(vm, "k1", "echo kept > /root/k && sync")
    vm.run("stop", "k1", check=0)
    r = vm.run("snapshot", "create", "--name", "ks", "k1", env={"COCOON_TEST_CRASH_AT": point})
    assert r.returncode == KILLED, decode(r.stderr)
    inv.assert_consistent(vm.home, f"snapshot killed at {point}")
    committed = point == "SNAPSHOT_COMMITTED"
    assert snapshot_names(vm) == (["ks"] if committed else [])  # never half there
    inv.doctor_fix(vm)
    inv.assert_clean(vm.home, f"snapshot killed at {point}, then doctor --fix")
    vm.run("start", "k1", check=0)
    assert cat(vm, "k1", "/root/k") == "kept"
    vm.run("stop", "k1", check=0)
    if not committed:  # the name is free again
        vm.run("snapshot", "create", "--name", "ks", "k1", check=0)
    inv.assert_clean(vm.home, "after the snapshot was taken again")


@pytest.mark.parametrize("point", ["IMPORT_DATA", "IMPORT_VERIFIED", "IMPORT_ROW"])
def test_kill_import(vm, tmp_path, point):
    vm.run("create", "--name", "i1", check=0)
    archive = str(tmp_path / "i1.cocoon")
    vm.run("export", "i1", archive, check=0)
    r = vm.run("import", "--name", "imp", archive, env={"COCOON_TEST_CRASH_AT": point})
    assert r.returncode == KILLED, decode(r.stderr)
    inv.assert_consistent(vm.home, f"import killed at {point}")
    listed = decode(vm.run("ls", "-a", "-q", check=0).stdout).split()
    assert len(listed) == (2 if point == "IMPORT_ROW" else 1), listed  # i1, and imp only once committed
    inv.doctor_fix(vm)
    inv.assert_clean(vm.home, f"import killed at {point}, then doctor --fix")
    if point == "IMPORT_ROW":  # the row is the commit: the box is there, whole
        vm.run("start", "imp", check=0)
        vm.run("stop", "imp", check=0)
    else:  # its name is free
        vm.run("import", "--name", "imp", archive, check=0)
    inv.assert_clean(vm.home, "after the import")


def test_kill_restore(vm):
    """Killed after making the new layer, before renaming it over the box's disk: the
    box keeps its current files; the stray layer is garbage doctor --fix removes."""
    vm.run("create", "--name", "kr", check=0)
    vm.run("snapshot", "create", "--name", "base", "kr", check=0)
    vm.run("start", "kr", check=0)
    sh(vm, "kr", "echo current > /root/r && sync")
    vm.run("stop", "kr", check=0)
    r = vm.run("snapshot", "restore", "kr", "base", env={"COCOON_TEST_CRASH_AT": "RESTORE_LAYER"})
    assert r.returncode == KILLED, decode(r.stderr)
    garbage = inv.assert_consistent(vm.home, "restore killed")
    assert any("top.new" in g for g in garbage), garbage
    inv.doctor_fix(vm)
    inv.assert_clean(vm.home, "restore killed, then doctor --fix")
    vm.run("start", "kr", check=0)
    assert cat(vm, "kr", "/root/r") == "current"
    vm.run("stop", "kr", check=0)
