"""Live disk snapshots of running boxes, on either backend (src/monitor/livesnap.c,
src/lib/snapshot.c): the guest is quiesced, QEMU switched to a new top layer, the box
goes on. Two boots in the whole file: one box is snapshotted live, cloned, and has a
live snapshot killed in the CLI and in the monitor; then it is restored and booted
again. What other boxes hold is read on the host from their flattened disks.
"""
import json
import os
import shutil
import signal
import subprocess

import pytest

import state_invariants as inv
from conftest import decode, sh

KILLED = -signal.SIGKILL


def out(r):
    return decode(r.stdout).strip()


def snapshot_names(vm):
    return [s["name"] for s in json.loads(out(vm.run("snapshot", "ls", "--json", check=0)))]


def status(vm, name):
    return [b["status"] for b in json.loads(out(vm.run("ls", "-a", "--json", check=0))) if b["name"] == name][0]


def box_dir(vm, name):
    return os.path.join(vm.home, "boxes", json.loads(out(vm.run("inspect", "--json", name, check=0)))["id"])


def guest_file(vm, tmp_path, box, path):
    """A file of a box's disk, read on the host (None when it is not there)."""
    if not shutil.which("debugfs"):
        pytest.skip("skipped: debugfs (e2fsprogs) is not installed")
    raw = str(tmp_path / f"{box}.raw")
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", os.path.join(box_dir(vm, box), "disk.qcow2"), raw],
                   check=True)
    p = subprocess.run(["debugfs", "-R", f"cat {path}", raw], capture_output=True, text=True)
    os.unlink(raw)
    return p.stdout if p.stdout or "not found" not in p.stderr else None


def qemu_img_check(path):
    p = subprocess.run(["qemu-img", "check", "-U", path], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_live_snapshot_clone_kill_and_restore(vm, tmp_path):
    vm.run("create", "--name", "live", check=0)
    # the monitor kills itself in the second live snapshot, after QEMU switched layers and
    # before the rename that commits it
    vm.run("start", "live", check=0, env={"COCOON_TEST_CRASH_AT": "LIVESNAP_SWITCHED:2"})
    sh(vm, "live", "echo one > /root/first")
    r = vm.run("snapshot", "create", "--name", "s1", "live")
    assert r.returncode == 0 and out(r) == "s1", decode(r.stderr)
    sh(vm, "live", "echo two > /root/second && sync")
    assert out(sh(vm, "live", "cat /root/first /root/second")) == "one\ntwo"  # it went on, with both
    assert status(vm, "live") == "running"
    info = json.loads(out(vm.run("snapshot", "inspect", "--json", "s1", check=0)))
    assert info["box_name"] == "live" and info["users"] == 1 and info["depth"] == 1
    log = open(os.path.join(box_dir(vm, "live"), "vmm.log")).read()
    assert "file system quiesced" in log, log[-2000:]
    layer = os.path.join(vm.home, "snapshots", info["id"], "disk.qcow2")
    qemu_img_check(layer)
    qemu_img_check(os.path.join(box_dir(vm, "live"), "disk.qcow2"))

    # a clone of the live snapshot has the first file only (read on the host, no boot)
    made = out(vm.run("clone", "--name", "c1", "s1", check=0))
    assert made
    assert guest_file(vm, tmp_path, "c1", "/root/first") == "one\n"
    assert guest_file(vm, tmp_path, "c1", "/root/second") is None

    # refusals: a taken name (checked before the box is touched), and a clone of the
    # running box itself
    r = vm.run("snapshot", "create", "--name", "s1", "live")
    assert r.returncode != 0 and "already in use" in decode(r.stderr), decode(r.stderr)
    r = vm.run("clone", "live")
    assert r.returncode != 0 and "stop it before cloning it" in decode(r.stderr), decode(r.stderr)

    # the CLI killed after publishing the uncommitted snapshot and making the new layer:
    # the box runs on, nothing half is listed
    r = vm.run("snapshot", "create", "--name", "half", "live", env={"COCOON_TEST_CRASH_AT": "LIVESNAP_LINKED"})
    assert r.returncode == KILLED, decode(r.stderr)
    assert snapshot_names(vm) == ["s1"]
    assert out(sh(vm, "live", "cat /root/second")) == "two"
    inv.assert_consistent(vm.home, "live snapshot killed in the CLI")

    # the monitor killed between the switch and the commit: the box is gone, its disk is
    # the old layer with everything it wrote, no half snapshot is listed
    r = vm.run("snapshot", "create", "--name", "half2", "live")
    assert r.returncode != 0, decode(r.stdout)
    assert snapshot_names(vm) == ["s1"]
    inv.assert_consistent(vm.home, "live snapshot killed in the monitor")
    assert status(vm, "live") != "running"
    inv.doctor_fix(vm)
    inv.assert_clean(vm.home, "live snapshots killed, then doctor --fix")
    assert guest_file(vm, tmp_path, "live", "/root/second") == "two\n"
    qemu_img_check(os.path.join(box_dir(vm, "live"), "disk.qcow2"))

    # restore the live snapshot onto the stopped box: only the first file
    vm.run("snapshot", "restore", "live", "s1", check=0)
    vm.run("start", "live", check=0)
    assert out(sh(vm, "live", "cat /root/first")) == "one"
    assert sh(vm, "live", "test -e /root/second", check=None).returncode == 1
    vm.run("stop", "live", check=0)
    inv.assert_clean(vm.home, "after the restore")
