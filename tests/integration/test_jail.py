"""The jail of a box's host processes (src/jail, src/monitor/jail_setup.c).

From inside the monitor's context (`cocoon-vmm --jail-probe`, the same code a starting
monitor runs): host files cannot be opened, the box's own files can, no capability is
held, and exec, open_by_handle_at, unshare, netlink sockets and mount are stopped by the
seccomp filter with a line naming the call. Seen from outside, a running box's monitor and its VMM child are
in their own namespaces with no capabilities, no_new_privs and a filter; COCOON_JAIL=0
turns it off. And a box runs for a user who is not root."""
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import BIN_DIR, SHARE_DIR, decode

VMM = os.path.join(BIN_DIR, "cocoon-vmm")
SECCOMP_EXIT = 159  # JAIL_SECCOMP_EXIT


def probe(vm, box_dir, attack=None):
    argv = [VMM, "--jail-probe", box_dir] + ([attack] if attack else [])
    return subprocess.run(argv, capture_output=True, timeout=60, env=vm._env(None))


def created_box(vm):
    vm.run("create", "--name", "jailed", check=0)
    return os.path.join(vm.boxes_dir(), vm.box_dirs()[0])


def test_inside_the_jail_only_the_box(vm):
    d = created_box(vm)
    r = probe(vm, d)
    out = decode(r.stdout)
    assert r.returncode == 0, (out, decode(r.stderr))
    for look in ("namespaces", "pivoted-root", "no-capabilities", "no-new-privs", "host-files-hidden",
                 "box-files-reachable", "box-dir-writable", "system-dirs-read-only"):
        assert f"jail-probe {look}: ok" in out, out


@pytest.mark.parametrize("attack,call", [("exec", "execve"), ("open-by-handle", "open_by_handle_at"),
                                         ("unshare", "unshare"), ("netlink", "socket"), ("mount", "mount")])
def test_forbidden_calls_stop_the_monitor_and_are_named(vm, attack, call):
    d = created_box(vm)
    r = probe(vm, d, attack)
    out, err = decode(r.stdout), decode(r.stderr)
    assert r.returncode == SECCOMP_EXIT, (r.returncode, out, err)
    assert f"jail-probe attack {attack}: trying" in out, out
    assert "FAIL" not in out, out
    assert f"the monitor made a forbidden system call: {call} (" in out + err, out + err


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def box_pids(vm, box):
    d = os.path.join(vm.boxes_dir(), box)
    with open(os.path.join(d, "vmm.pid")) as f:
        monitor = int(f.read().strip())
    children = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == monitor:
                        children.append(int(p))
            except (OSError, IndexError, ValueError):
                pass
    return monitor, children


def test_a_running_box_is_jailed(vm):
    vm.run("create", "--name", "j", check=0)
    vm.run("start", "j", check=0)
    box = vm.box_dirs()[0]
    monitor, children = box_pids(vm, box)
    assert children, "the monitor has no VMM child"
    child = children[0]
    for pid, who in ((monitor, "monitor"), (child, "VMM child")):
        st = status(pid)
        assert st["NoNewPrivs"].strip() == "1", (who, st["NoNewPrivs"])
        assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0, (who, st["CapEff"], st["CapPrm"])
        assert st["Seccomp"].strip() == "2", (who, st["Seccomp"])  # QEMU's -sandbox, or our filter
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"), who
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"), who
    # the VMM child: its own PID namespace and an empty network namespace
    assert os.readlink(f"/proc/{child}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert os.readlink(f"/proc/{child}/ns/net") != os.readlink("/proc/self/ns/net")
    # and the box works through all of it
    assert decode(vm.run("exec", "j", "--", "echo", "inside", check=0).stdout) == "inside\n"
    vm.run("rm", "-f", "j", check=0)


def test_jail_off_is_explicit(vm):
    env = {"COCOON_JAIL": "0"}
    vm.run("create", "--name", "free", check=0, env=env)
    vm.run("start", "free", check=0, env=env)
    monitor, _ = box_pids(vm, vm.box_dirs()[0])
    assert status(monitor)["Seccomp"].strip() == "0"
    with open(os.path.join(vm.boxes_dir(), vm.box_dirs()[0], "vmm.log")) as f:
        assert "jail: off (COCOON_JAIL=0)" in f.read()
    vm.run("rm", "-f", "free", check=0, env=env)


def test_a_box_for_a_user_who_is_not_root(vm, tmp_path):
    """nobody runs a box with its own home: the jail's user namespace is unprivileged."""
    if os.geteuid() != 0:
        pytest.skip("skipped: the test switches to the user nobody, which needs root")
    setpriv = shutil.which("setpriv")
    busybox = shutil.which("busybox")
    if not setpriv or not busybox:
        pytest.skip("skipped: setpriv (util-linux) or busybox-static is not installed")
    nobody = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="cocoon-nobody-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        share = os.path.join(base, "share")
        os.makedirs(share)
        for name in ("vmlinux", "initramfs.cpio"):  # the build's are links into root's cache
            shutil.copy(os.path.realpath(os.path.join(SHARE_DIR, name)), os.path.join(share, name))
        root = os.path.join(base, "rootfs")
        os.makedirs(os.path.join(root, "bin"))
        shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
        for applet in ("sh", "echo", "id", "cat"):
            os.symlink("busybox", os.path.join(root, "bin", applet))
        home = os.path.join(base, "home")
        reports = os.path.join(base, "sanitizer")
        os.makedirs(reports)
        for p in (base, share, root, reports):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        env = {k: v for k, v in vm._env(None).items() if not k.startswith("COCOON_")}
        env.update(COCOON_HOME=home, COCOON_SHARE_DIR=share, COCOON_VMM=VMM, HOME=base)
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            if var in env:
                env[var] = env[var].split("log_path=")[0].rstrip(":") + ":log_path=" + reports + "/report"
        r = subprocess.run([setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                            os.path.join(BIN_DIR, "cocoon"), "run", "--rm", "--rootfs", root, "--", "/bin/sh", "-c",
                            "echo hello from the box of nobody"],
                           capture_output=True, timeout=240, env=env, cwd=base)
        assert r.returncode == 0, (r.returncode, decode(r.stderr))
        assert decode(r.stdout) == "hello from the box of nobody\n"
        left = [f for f in os.listdir(reports)]
        assert not left, [open(os.path.join(reports, f)).read()[-2000:] for f in left]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_mount_under_usr_is_bound_read_only(vm):
    """A caller whose mount namespace has a mount under /usr (locked in the jail's user
    namespace) still starts boxes: /usr is bound with its submounts, all read-only."""
    vm.run("create", "--name", "sub", check=0)
    target = "/usr/local/share/cocoon-jail-test"
    script = (f"mkdir -p {target} && mount -t tmpfs -o size=1m cocoon-jail-test {target} && "
              f"exec {os.path.join(BIN_DIR, 'cocoon')} start sub")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                       timeout=300, env=vm._env(None))
    try:
        assert r.returncode == 0, decode(r.stderr)
        monitor, _ = box_pids(vm, vm.box_dirs()[0])
        with open(f"/proc/{monitor}/mountinfo") as f:
            lines = [line.split() for line in f if f" {target} " in line]
        assert lines, "the submount is not in the jail"
        for fields in lines:
            assert "ro" in fields[5].split(","), fields
        assert decode(vm.run("exec", "sub", "--", "echo", "inside", check=0).stdout) == "inside\n"
    finally:
        vm.run("rm", "-f", "sub", check=0)
        if os.path.isdir(target):
            os.rmdir(target)
