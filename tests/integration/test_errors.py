"""Broken inputs give clear errors and leave nothing running (the fixture checks)."""
import os
import shutil
import struct

import pytest

from conftest import decode


def newc_cpio(entries):
    """A newc cpio archive of (name, mode, data) entries."""
    out = b""
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], start=1):
        nb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        out += hdr + nb + b"\0" * (-(len(hdr) + len(nb)) % 4) + data + b"\0" * (-len(data) % 4)
    return out


def assert_clear_error(r, *words):
    err = decode(r.stderr)
    assert r.returncode != 0, "expected a failure"
    assert err.strip(), "no message on stderr"
    low = err.lower()
    assert any(w.lower() in low for w in words), f"stderr does not mention any of {words}: {err}"
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    return err


def test_missing_kernel(vm):
    r = vm.run("run", "--", "true", env={"COCOON_KERNEL": "/nonexistent/vmlinux"}, timeout=60)
    assert_clear_error(r, "/nonexistent/vmlinux")
    assert r.elapsed < 30


def test_corrupt_kernel(vm, tmp_path):
    bad = tmp_path / "vmlinux-garbage"
    bad.write_bytes(os.urandom(2 * 1024 * 1024))
    r = vm.run("run", "--", "true", env={"COCOON_KERNEL": str(bad)}, timeout=120)
    assert_clear_error(r, "kernel", "qemu", "boot")
    assert vm.box_dirs() == []


def test_guest_kernel_panic(vm, tmp_path):
    initrd = tmp_path / "no-init.cpio"
    initrd.write_bytes(newc_cpio([("dev", 0o40755, b""), ("root", 0o40700, b"")]))
    r = vm.run("run", "--", "true", env={"COCOON_INITRD": str(initrd)}, timeout=150)
    err = assert_clear_error(r, "panic", "console")
    print(err)
    assert vm.box_dirs() == []


def test_missing_rootfs(vm):
    r = vm.run("run", "--rootfs", "/nonexistent/rootfs", "--", "true", timeout=60)
    assert_clear_error(r, "/nonexistent/rootfs")


def test_missing_image(vm):
    r = vm.run("run", "--image", "nope", "--", "true", timeout=60)
    assert_clear_error(r, "nope")


def test_busybox_rootfs(vm, tmp_path):
    busybox = shutil.which("busybox")
    if not busybox:
        pytest.skip("skipped: busybox-static is not installed")
    with open(busybox, "rb") as f:
        head = f.read(4096)
    if b"ld-linux" in head or b"/lib64/ld" in head:
        pytest.skip("skipped: busybox here is dynamically linked (install busybox-static)")
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in ("sh", "echo", "cat"):
        os.symlink("busybox", root / "bin" / applet)
    r = vm.run("run", "--rootfs", str(root), "--", "/bin/sh", "-c", "echo ok", timeout=180)
    assert r.returncode == 0, decode(r.stderr)
    assert r.stdout == b"ok\n"


def test_timeout_beyond_32_bit_milliseconds_is_refused(cocoon):
    """A command's timeout travels in milliseconds as 32 bits: a longer --timeout is a
    usage error naming the bound, not a silently wrapped, much shorter timeout."""
    r = cocoon.run("run", "--timeout", "5000000", "--rootfs", "/nonexistent/rootfs", "--", "true", timeout=60)
    err = assert_clear_error(r, "invalid --timeout")
    assert r.returncode == 125 and "4294967" in err, err
    r = cocoon.run("exec", "--timeout", "4294968", "no-such-box", "--", "true", timeout=60)
    assert_clear_error(r, "invalid --timeout")


def test_bad_box_values_are_usage_errors(cocoon):
    """The CLI takes its choices and bounds from the box contract: the message lists
    the accepted values, before anything is created."""
    for args, words in ((("--accel", "hvf"), "auto, kvm or tcg"), (("--net", "closed"), "none, public or open"),
                        (("--cpus", "65"), "from 1 to 64"), (("--memory", "63M"), "at least 64")):
        r = cocoon.run("create", *args, timeout=60)
        err = assert_clear_error(r, words)
        assert args[0] in err, err
    assert cocoon.box_dirs() == []


def test_flags_may_follow_the_box_name(vm):
    """Docker habits: options after the box in commands that run no command (no boot)."""
    vm.run("create", "--name", "flagged")
    try:
        r = vm.run("snapshot", "create", "flagged", "--name", "after-the-box")
        assert r.returncode == 0 and decode(r.stdout).strip() == "after-the-box", decode(r.stderr)
        r = vm.run("snapshot", "ls", "flagged", "--json")
        assert r.returncode == 0 and '"after-the-box"' in decode(r.stdout), decode(r.stderr)
        r = vm.run("stop", "flagged", "-t", "1")
        assert r.returncode == 0, decode(r.stderr)
        r = vm.run("logs", "flagged", "--tail", "1")
        assert "no box" not in decode(r.stderr), decode(r.stderr)
        # exec keeps the command's own flags: `-t` after the box belongs to the command
        r = vm.run("exec", "flagged", "-t")
        assert r.returncode != 0 and "not running" in decode(r.stderr), decode(r.stderr)
    finally:
        r = vm.run("rm", "flagged", "-f")
        assert r.returncode == 0, decode(r.stderr)
        vm.run("snapshot", "rm", "after-the-box")
