"""The crash-consistency suite: kill -9 of the CLI, a library caller, the monitor and
QEMU at injected points inside create, start, stop, rm, pull, load, prune and cp
(COCOON_TEST_CRASH_AT=<POINT> makes the process SIGKILL itself there; the points are
listed in docs/internals.md), and at random moments of guest writes. After each kill
the invariants of state_invariants.py hold (rows and files, processes, disks);
`cocoon doctor --fix` collects what the kill left, after which the home is clean;
no name is stuck; the box starts again; data the guest synced before the kill is there.

Kills at random moments use a seeded generator; the seed is printed in the failure
message (COCOON_CRASH_SEED=N replays it)."""
import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest

import registry_fixture as rf
import small_images
import state_invariants as inv
from conftest import decode, find_box_processes, sh

SEED = int(os.environ.get("COCOON_CRASH_SEED", random.randrange(1 << 30)))
KILLED = -signal.SIGKILL


def crash(c, point, *args, killed=True, env=None, timeout=180):
    """Runs `cocoon ARGS` with COCOON_TEST_CRASH_AT=point; when killed, asserts the CLI
    itself died there (else the point belongs to the monitor, which inherits it)."""
    r = c.run(*args, env=dict(env or {}, COCOON_TEST_CRASH_AT=point), timeout=timeout)
    if killed:
        assert r.returncode == KILLED, \
            f"cocoon {' '.join(args)} never reached {point} (exit {r.returncode}): {decode(r.stderr)[-1500:]}"
    return r


def recovers(c, what, names=(), image=None):
    """After a kill: consistent at once, clean after `cocoon doctor --fix`, names free."""
    inv.assert_consistent(c.home, what)
    inv.doctor_fix(c)
    inv.assert_clean(c.home, f"{what}, then doctor --fix")
    inv.names_reusable(c, names, image)


def box_id(c, name):
    r = c.run("inspect", "--json", name, check=0)
    import json
    return json.loads(decode(r.stdout))["id"]


def status(c, name):
    import json
    r = c.run("inspect", "--json", name)
    return json.loads(decode(r.stdout))["status"] if r.returncode == 0 else None


def write_synced(c, box, tag):
    """A file the guest wrote and synced: it must survive any later kill."""
    sh(c, box, f"echo {tag} > /root/{tag} && sync")


def assert_synced(c, box, tags):
    out = decode(sh(c, box, "cat " + " ".join(f"/root/{t}" for t in tags)).stdout).split()
    assert out == list(tags), out


# ---- create ----

@pytest.mark.parametrize("point", ["CREATE_BUILD", "CREATE_DISK", "CREATE_PUBLISH", "STATE_COMMIT:1", "STATE_COMMIT:2",
                                   "STATE_COMMIT:3", "CREATE_ROW"])
def test_kill_create(vm, point):
    """Killed anywhere inside create (in a new home, STATE_COMMIT:1 is inside the
    transaction that makes the schema, :2 in the one that records the built-in
    image, :3 in the one that inserts the box's row, each before COMMIT), the
    box either exists whole (killed after its row) or not at all, and its name is free
    either way."""
    crash(vm, point, "create", "--name", "c1")
    inv.assert_consistent(vm.home, f"create killed at {point}")
    if point == "CREATE_ROW":  # the row is the commit point: the box is there, whole
        vm.run("start", "c1", check=0)
        write_synced(vm, "c1", "created")
        vm.run("stop", "c1", check=0)
    else:
        assert decode(vm.run("ls", "-a", "-q", check=0).stdout).split() == []
    recovers(vm, f"create killed at {point}", ["c1"])


# ---- start ----

def test_kill_start(vm):
    """The CLI killed after spawning the monitor (the detached box boots anyway), the
    monitor killed after taking its lock, after starting QEMU, and right after
    reporting ready: each time QEMU goes with the monitor, nothing is left half
    running, and the box starts again with what it synced."""
    vm.run("create", "--name", "s1", check=0)
    vm.run("start", "s1", check=0)
    write_synced(vm, "s1", "before")
    vm.run("stop", "s1", check=0)
    crash(vm, "START_SPAWNED", "start", "s1")
    deadline = time.monotonic() + 120
    while status(vm, "s1") != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert decode(sh(vm, "s1", "cat /root/before").stdout) == "before\n"
    inv.assert_consistent(vm.home, "start: CLI killed after spawning the monitor")
    vm.run("stop", "s1", check=0)
    for point in ("MONITOR_LOCKED", "MONITOR_CHILD", "MONITOR_READY"):
        r = crash(vm, point, "start", "s1", killed=False)
        assert r.returncode != 0, f"start with the monitor killed at {point} succeeded"
        inv.assert_consistent(vm.home, f"start: monitor killed at {point}")
        assert status(vm, "s1") == "stopped", point
    recovers(vm, "start kills")
    vm.run("start", "s1", check=0)
    assert_synced(vm, "s1", ["before"])
    vm.run("rm", "-f", "s1", check=0)


def test_monitor_killed_before_its_child_is_armed(vm):
    """The monitor killed right after starting its VMM child, while the child has not
    yet armed its death signal (held there by a test delay; in the jail it is in a PID
    namespace, where getppid() cannot tell that its parent died): the child sees the
    monitor is gone and exits. Never a QEMU without a monitor."""
    vm.run("create", "--name", "o1", check=0)
    r = crash(vm, "MONITOR_CHILD", "start", "o1", killed=False, env={"COCOON_TEST_DELAY_CHILD_ARM": "1500"})
    assert r.returncode != 0, "start with the monitor killed at MONITOR_CHILD succeeded"
    time.sleep(4)  # past the child's delay: it has armed (or exec'd QEMU) by now
    inv.assert_consistent(vm.home, "monitor killed before its child armed its death signal")
    assert status(vm, "o1") == "stopped"
    vm.run("start", "o1", check=0)
    vm.run("rm", "-f", "o1", check=0)


# ---- stop ----

def test_kill_stop(vm):
    """The CLI killed once it sent SHUTDOWN (the monitor finishes the stop), the
    monitor killed after forwarding SHUTDOWN to the guest, and after the guest is gone
    but before it removed its files: the box is stopped, starts again, data kept."""
    vm.run("create", "--name", "t1", check=0)
    tags = []
    for point, cli_dies in (("STOP_SENT", True), ("MONITOR_STOPPING", False), ("MONITOR_EXIT", False)):
        vm.run("start", "t1", check=0, env={"COCOON_TEST_CRASH_AT": point})
        tags.append(point.lower())
        write_synced(vm, "t1", tags[-1])
        crash(vm, point, "stop", "t1", killed=cli_dies)
        deadline = time.monotonic() + 30
        while status(vm, "t1") != "stopped" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status(vm, "t1") == "stopped", point
        inv.assert_consistent(vm.home, f"stop killed at {point}")
    recovers(vm, "stop kills")
    vm.run("start", "t1", check=0)
    assert_synced(vm, "t1", tags)
    vm.run("rm", "-f", "t1", check=0)


# ---- rm ----

@pytest.mark.parametrize("point", ["RM_LOCKED", "RM_UNLISTED", "RM_RENAMED"])
def test_kill_rm(vm, point):
    """rm killed after locking the box, after dropping its row, after moving its
    directory aside: the box is whole or gone, never half removed; its name is free
    once it is gone, and what is left is collected."""
    box = decode(vm.run("create", "--name", "r1", check=0).stdout).strip()
    crash(vm, point, "rm", "r1")
    inv.assert_consistent(vm.home, f"rm killed at {point}")
    if point == "RM_LOCKED":
        assert status(vm, "r1") == "stopped"
    else:
        assert status(vm, "r1") is None and box not in decode(vm.run("ls", "-a", "-q").stdout)
    recovers(vm, f"rm killed at {point}", ["r1"])


def test_kill_rm_force_of_running_box(vm):
    vm.run("create", "--name", "r2", check=0)
    vm.run("start", "r2", check=0)
    crash(vm, "STOP_SENT", "rm", "-f", "r2")
    inv.assert_consistent(vm.home, "rm -f of a running box killed after SHUTDOWN")
    vm.run("rm", "-f", "r2", check=0)
    recovers(vm, "rm -f of a running box killed", ["r2"])


# ---- images ----

@pytest.fixture
def fake_registry(vm):
    if not small_images.available():
        pytest.skip("skipped: busybox-static is needed (scripts/setup installs it)")
    s = rf.FakeRegistry()
    vm.env["COCOON_INSECURE_REGISTRIES"] = s.host
    yield s
    s.stop()


PULL_POINTS = ["BLOB_WRITE", "BLOB_WRITE:3", "PULL_FETCHED", "BASE_PUBLISH", "IMAGE_RECORD"]


def test_kill_pull(vm, fake_registry):
    """A pull killed while writing a blob, once all blobs are in, before its base is
    published, before its row: no image or half an image is visible, the next pull
    completes it, and its boxes boot."""
    ref = small_images.serve(fake_registry, "crash/pull", "1", big=256 << 10)
    for point in PULL_POINTS:
        crash(vm, point, "pull", ref)
        inv.assert_consistent(vm.home, f"pull killed at {point}")
        assert "crash/pull" not in decode(vm.run("images", check=0).stdout), point
    recovers(vm, "pull kills")
    vm.run("pull", ref, check=0)
    inv.assert_clean(vm.home, "pull after the kills")
    vm.run("run", "--rm", ref, check=0)


def test_kill_load(vm, tmp_path):
    if not small_images.available():
        pytest.skip("skipped: busybox-static is needed (scripts/setup installs it)")
    tar = small_images.save_tarball(str(tmp_path / "img.tar"), "crash/load:1", big=256 << 10)
    for point in ["BLOB_WRITE:2", "LOAD_IMPORTED", "BASE_PUBLISH", "IMAGE_RECORD"]:
        crash(vm, point, "load", "-i", tar)
        inv.assert_consistent(vm.home, f"load killed at {point}")
    recovers(vm, "load kills")
    vm.run("load", "-i", tar, check=0)
    inv.assert_clean(vm.home, "load after the kills")
    r = vm.run("run", "--rm", "crash/load:1", check=0)
    assert decode(r.stdout) == "docker.io/crash/load:1\n" or "crash/load" in decode(r.stdout), decode(r.stdout)


def test_kill_prune(vm, fake_registry, tmp_path):
    """prune killed after dropping the unused images' rows and in the middle of its
    file sweep: used images and their files stay, the rest is collected."""
    ref = small_images.serve(fake_registry, "crash/prune", "1")
    kept = small_images.serve(fake_registry, "crash/kept", "1")
    for point in ["PRUNE_UNLISTED", "SWEEP:2"]:
        vm.run("pull", ref, check=0)
        vm.run("pull", kept, check=0)
        vm.run("create", "--name", "user", kept, check=0)
        crash(vm, point, "image", "prune")
        inv.assert_consistent(vm.home, f"prune killed at {point}")
        vm.run("rm", "user", check=0)
    recovers(vm, "prune kills")
    vm.run("run", "--rm", ref, check=0)


# ---- cp ----

def test_kill_cp(vm, tmp_path):
    """cp into a box killed mid-stream, cp out of a box killed while staging and while
    moving entries into place: the box keeps working and the state is consistent; the
    host destination never holds part of a file under the copied name, and the staging
    directories the killed copies left are removed by the next copy there."""
    vm.run("create", "--name", "p1", check=0)
    vm.run("start", "p1", check=0)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 << 20))
    crash(vm, "CP_IN_SENT:3", "cp", str(big), "p1:/root/big")
    sh(vm, "p1", "mkdir -p /root/tree/sub && seq 1 20000 > /root/tree/a && echo b > /root/tree/sub/b && sync")
    dest = tmp_path / "dest"
    dest.mkdir()
    crash(vm, "CP_OUT_STAGED:2", "cp", "p1:/root/tree", str(dest))
    left = os.listdir(dest)
    assert len(left) == 1 and left[0].startswith(".cocoon-cp-"), left  # nothing under the copied name
    (dest / "tree").mkdir()
    crash(vm, "CP_OUT_INSTALL:1", "cp", "p1:/root/tree", str(dest))
    inv.assert_consistent(vm.home, "cp kills")
    assert decode(sh(vm, "p1", "echo alive").stdout) == "alive\n"
    vm.run("cp", "p1:/root/tree", str(dest), check=0)
    assert sorted(os.listdir(dest)) == ["tree"], os.listdir(dest)
    assert sorted(os.listdir(dest / "tree")) == ["a", "sub"]
    assert (dest / "tree" / "a").read_text() == "".join(f"{i}\n" for i in range(1, 20001))
    vm.run("cp", str(big), "p1:/root/big", check=0)
    assert decode(sh(vm, "p1", "sha256sum < /root/big").stdout).split()[0] == __import__("hashlib").sha256(
        big.read_bytes()).hexdigest()
    recovers(vm, "cp kills")
    vm.run("rm", "-f", "p1", check=0)


# ---- random kills during guest writes ----

WRITER = ("i=0; while true; do i=$((i+1)); dd if=/dev/urandom of=/root/w.$((i%8)) bs=64k count=4 2>/dev/null; "
          "echo $i > /root/n.tmp && sync /root/n.tmp && mv /root/n.tmp /root/n && sync && echo $i; done")


def _writer(c, box):
    """Starts the guest writer; returns (process, read_synced) where read_synced() is
    the last counter the guest reported as synced."""
    p = c.popen("exec", box, "--", "sh", "-c", WRITER, stdout=subprocess.PIPE)
    return p


def _wait_count(p, n, timeout=60):
    """Reads counter lines until n were synced; returns the lines read."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        got.append(int(line))
    return got


def _vmm_child_pid(c):
    """QEMU, or the kvm backend's VMM child (cocoon-vmm --kvm-run)."""
    for pid, (name, cmd) in find_box_processes(c.home).items():
        if "qemu" in name or "--kvm-run" in cmd:
            return pid
    return None


def _monitor_pid(c):
    for pid, (name, cmd) in find_box_processes(c.home).items():
        if "cocoon-vmm" in name and "--kvm-run" not in cmd:
            return pid
    return None


@pytest.mark.parametrize("victim", ["vmm", "monitor", "cli"])
def test_random_kill_during_writes(vm, victim):
    """A guest writes and syncs in a loop; kill -9 of QEMU (or the kvm VMM child), the
    monitor, or the CLI
    running that exec, at seeded random moments. The disk passes `qemu-img check`,
    the state is consistent, the box starts again and holds every counter value the
    guest reported as synced."""
    rng = random.Random(SEED)
    vm.run("create", "--name", "w1", check=0)
    for round_ in range(2):
        if status(vm, "w1") != "running":
            vm.run("start", "w1", check=0)
        p = _writer(vm, "w1")
        got = _wait_count(p, 2)
        assert got, f"seed {SEED}: the guest writer reported nothing: {decode(p.stderr.read())[-500:]}"
        time.sleep(rng.uniform(0.0, 1.5))
        pid = {"vmm": _vmm_child_pid, "monitor": _monitor_pid, "cli": lambda c: p.pid}[victim](vm)
        assert pid, f"seed {SEED}: no {victim} process"
        os.kill(pid, signal.SIGKILL)
        out, _ = p.communicate(timeout=60)
        synced = max(got + [int(x) for x in out.split()]) if out.split() or got else 0
        inv.assert_consistent(vm.home, f"seed {SEED}: {victim} killed during writes (round {round_})")
        if victim != "cli":
            deadline = time.monotonic() + 30
            while status(vm, "w1") != "stopped" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert status(vm, "w1") == "stopped", f"seed {SEED}: the box did not stop after its {victim} died"
            vm.run("start", "w1", check=0)
        n = int(decode(sh(vm, "w1", "cat /root/n").stdout))
        assert n >= synced, f"seed {SEED}: the guest synced counter {synced}, the disk says {n}"
    vm.run("stop", "w1", check=0)
    recovers(vm, f"seed {SEED}: {victim} kills during writes", ["w1"])


# ---- a library caller: a process embedding libcocoon, killed while it works ----

@pytest.fixture(scope="module")
def lib_caller(tmp_path_factory):
    return rf.build_image_tool(str(tmp_path_factory.mktemp("lib-caller")), "lib-caller")


@pytest.mark.parametrize("mode", ["ephemeral", "kept"])
def test_kill_library_caller(vm, lib_caller, mode):
    """A program holding an attached box, running commands and file writes in it from
    two threads, is killed at a seeded random moment, and at an injected point in
    the middle of a file write. Its box stops with it (an ephemeral one is removed,
    its row collected); a kept box starts again with every counter the program saw
    synced."""
    rng = random.Random(SEED)
    for kill in ("random", "CP_IN_SENT:2"):
        env = vm._env({"COCOON_TEST_CRASH_AT": kill} if kill != "random" else {})
        p = subprocess.Popen([lib_caller, "lc", mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert p.stdout.readline() == b"ready 0\n", f"seed {SEED}: {decode(p.stderr.read())[-1000:]}"
        seen = {"synced": 0, "wrote": 0}
        deadline = time.monotonic() + (rng.uniform(0.5, 3.0) if kill == "random" else 60)
        while time.monotonic() < deadline and p.poll() is None:
            line = p.stdout.readline().split()
            if len(line) == 2:
                seen[line[0].decode()] = int(line[1])
        if kill == "random":
            p.kill()
        p.wait(timeout=60)
        for line in p.stdout.read().splitlines():
            if len(line.split()) == 2:
                seen[line.split()[0].decode()] = int(line.split()[1])
        assert p.returncode == KILLED, f"seed {SEED}: {kill}: exit {p.returncode}: {decode(p.stderr.read())[-1000:]}"
        deadline = time.monotonic() + 30
        while status(vm, "lc") not in ("stopped", None) and time.monotonic() < deadline:
            time.sleep(0.2)
        inv.assert_consistent(vm.home, f"seed {SEED}: library caller ({mode}) killed ({kill})")
        if mode == "ephemeral":
            assert status(vm, "lc") is None, f"seed {SEED}: the ephemeral box outlived its caller"
            continue
        assert status(vm, "lc") == "stopped", f"seed {SEED}: the attached box outlived its caller"
        vm.run("start", "lc", check=0)
        n = int(decode(sh(vm, "lc", "cat /root/counter 2>/dev/null || echo 0").stdout))
        assert n >= seen["synced"], f"seed {SEED}: the caller saw {seen['synced']} synced, the disk has {n}"
        if seen["wrote"]:  # a write killed midway leaves its file partial (copies into a box are not atomic)
            head = decode(sh(vm, "lc", "head -c 16 /root/written").stdout).split("x")[0].strip()
            assert not head or int(head) >= seen["wrote"], (head, seen)
        vm.run("rm", "-f", "lc", check=0)
    recovers(vm, f"seed {SEED}: library caller ({mode}) kills", ["lc"])


# ---- faults: a full disk under the home, a busy database ----

@pytest.fixture
def small_home(vm, tmp_path, monkeypatch):
    """vm's home on a 96 MiB tmpfs, mounted in a private mount namespace that a holder
    process keeps: every cocoon command enters it (nsenter), and this process reads
    its files through /proc/HOLDER/root. Yields that prefix."""
    import conftest
    if not shutil.which("unshare") or not shutil.which("nsenter") or os.geteuid() != 0:
        pytest.skip("skipped: needs root, unshare and nsenter to mount a small file system")
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                               f"mount -t tmpfs -o size=96m,mode=0700 cocoon-test {vm.home} && echo mounted && "
                               "exec sleep 100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = holder.stdout.readline()
    if line != b"mounted\n":
        holder.kill()
        pytest.skip(f"skipped: cannot mount a tmpfs here: {decode(holder.stderr.read())[-300:]}")
    wrapper = tmp_path / "cocoon-in-namespace"
    wrapper.write_text(f"#!/bin/sh\nexec nsenter -t {holder.pid} -m -- {conftest.COCOON} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, "COCOON", str(wrapper))
    try:
        yield f"/proc/{holder.pid}/root"
    finally:
        for name in ("full", "other"):
            vm.run("rm", "-f", name)
        holder.kill()
        holder.wait()


def fill(path, leave):
    """A ballast file that leaves `leave` bytes free on path's file system."""
    st = os.statvfs(path)
    size = st.f_bavail * st.f_frsize - leave
    ballast = os.path.join(path, "ballast")
    with open(ballast, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(size, 1))
    return ballast


def test_disk_full_under_the_home(vm, small_home, fake_registry):
    """The home's file system fills up while the guest writes: the guest gets I/O
    errors at once (its VM is not paused, so its commands end), the qcow2 stays
    clean, create and pull fail with clear messages and leave nothing; once space is
    back the box stops, starts again and holds what it synced before."""
    root, home = small_home, vm.home
    vm.run("create", "--name", "full", "--disk", "2G", check=0)
    vm.run("start", "full", check=0)
    write_synced(vm, "full", "before")
    ballast = fill(root + home, 8 << 20)
    r = vm.run("exec", "full", "--", "sh", "-c",
               "dd if=/dev/urandom of=/root/big bs=1M count=48 conv=fsync 2>&1; echo dd=$?", timeout=120)
    out = decode(r.stdout)
    assert "dd=0" not in out and ("Input/output error" in out or "No space" in out or "Read-only" in out), out
    ref = small_images.serve(fake_registry, "crash/full", "1", big=16 << 20)
    for args in (("create", "--name", "other"), ("pull", ref)):
        r = vm.run(*args, timeout=120)
        err = decode(r.stderr)
        assert r.returncode == 125 and ("No space left on device" in err or "disk is full" in err), \
            f"{args}: {r.returncode} {err}"
    inv.assert_consistent(home, "a full disk", root=root)
    os.unlink(ballast)
    vm.run("stop", "full", check=0)
    inv.assert_consistent(home, "a full disk, box stopped", root=root)
    vm.run("start", "full", check=0)
    assert_synced(vm, "full", ["before"])
    write_synced(vm, "full", "after")
    vm.run("stop", "full", check=0)
    vm.run("doctor", "--fix", timeout=120)
    inv.assert_clean(home, "a full disk, after doctor --fix", root=root)
    vm.run("pull", ref, check=0)
    inv.names_reusable(vm, ["other"])


def test_sqlite_busy(vm):
    """A transaction held on cocoon.db by someone else: a command waits for it, and when
    it is held past the busy timeout (10 s), fails with a message that says so,
    changing nothing; the database is never damaged."""
    import sqlite3
    vm.run("create", "--name", "b1", check=0)
    db = sqlite3.connect(os.path.join(vm.home, "cocoon.db"), timeout=1, isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        waiter = vm.popen("create", "--name", "b2")
        time.sleep(2)
        assert waiter.poll() is None, "create did not wait for the database"
        db.execute("COMMIT")
        assert waiter.wait(timeout=60) == 0, decode(waiter.stderr.read())
        db.execute("BEGIN EXCLUSIVE")
        procs = {args: vm.popen(*args) for args in (("rm", "b1"), ("create", "--name", "b3"), ("rm", "b2"))}
        results = {args: (p.wait(timeout=120), decode(p.stderr.read())) for args, p in procs.items()}
        assert decode(vm.run("ls", "-a", "-q", check=0).stdout).count("\n") == 2  # readers are not blocked
        db.execute("ROLLBACK")
    finally:
        db.close()
    for args, (rc, err) in results.items():
        assert rc == 125 and "still locked by another cocoon process after 10 s" in err, (args, rc, err)
    inv.assert_clean(vm.home, "commands that met a busy database")
    assert status(vm, "b1") == "stopped" and status(vm, "b2") == "stopped" and status(vm, "b3") is None
    vm.run("start", "b1", check=0)
    vm.run("rm", "-f", "b1", check=0)
    vm.run("rm", "b2", check=0)
    inv.names_reusable(vm, ["b3"])


# ---- the kvm VMM's disk writes: our qcow2 code killed mid-write-back, on a full disk ----
# (tests/tools/qcow2-tool drives src/disk/qcow2*.c, the code the kvm backend's VMM
# child writes disks with; the qemu backend's writes are QEMU's, killed above)

from test_qcow2_interop import QEMU_IMG, QEMU_IO, tool  # noqa: E402,F401  (the qcow2-tool fixture)


def _qemu_img_clean(img):
    """qemu-img check finds no corruption (leaked clusters, which only take space, are
    what a kill between a refcount update and the table that uses it leaves)."""
    import json
    p = subprocess.run([QEMU_IMG, "check", "-f", "qcow2", "--output=json", str(img)], capture_output=True, text=True)
    assert p.returncode in (0, 3), p.stdout + p.stderr
    r = json.loads(p.stdout)
    assert r.get("corruptions", 0) == 0 and r.get("check-errors", 0) == 0, r
    return r.get("leaks", 0)


def _pattern(img, byte, off, length):
    p = subprocess.run([QEMU_IO, "-f", "qcow2", "-c", f"read -P {byte} {off} {length}", str(img)],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "Pattern verification failed" not in p.stdout, p.stdout + p.stderr


@pytest.mark.skipif(not QEMU_IMG or not QEMU_IO, reason="qemu-img/qemu-io not installed (apt-get install qemu-utils)")
@pytest.mark.parametrize("point", ["QCOW2_REFCOUNTS:1", "QCOW2_REFCOUNTS:40", "QCOW2_L2:1", "QCOW2_L2:25"])
def test_kill_qcow2_write_back(tool, tmp_path, point):
    """Killed after its refcounts are durable but before a table uses the new clusters,
    or after new L2 tables are written but before the L1 table points to them: the
    image has at most leaked clusters, what was flushed before reads back, and it
    takes writes again."""
    img = tmp_path / "k.qcow2"
    subprocess.run([tool, "create", str(img), str(256 << 20), "", "", "9"], check=True)  # small clusters: many evictions
    subprocess.run([tool, "fill", str(img), "0", str(1 << 20), "0x11"], check=True)  # flushed at close
    p = subprocess.run([tool, "fill", str(img), str(4 << 20), str(96 << 20), "0x22"],
                       env=dict(os.environ, COCOON_TEST_CRASH_AT=point), capture_output=True)
    assert p.returncode == KILLED, f"the writer never reached {point}: {p.returncode} {p.stderr[-500:]}"
    _qemu_img_clean(img)
    r = subprocess.run([tool, "check", str(img)], capture_output=True, text=True)
    assert r.returncode in (0, 3) and "corruptions=0" in r.stdout, r.stdout + r.stderr
    _pattern(img, "0x11", 0, 1 << 20)
    subprocess.run([tool, "fill", str(img), str(200 << 20), str(1 << 20), "0x33"], check=True)
    _pattern(img, "0x33", 200 << 20, 1 << 20)
    _pattern(img, "0x11", 0, 1 << 20)
    _qemu_img_clean(img)


@pytest.mark.skipif(not QEMU_IMG or not QEMU_IO, reason="qemu-img/qemu-io not installed (apt-get install qemu-utils)")
def test_qcow2_write_on_a_full_disk(tool, tmp_path):
    """Our qcow2 code writing past the end of a small file system: the write fails with
    ENOSPC, the image stays clean (leaks at most), what was written before is there,
    and once space is back writes succeed."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("skipped: needs root and unshare to mount a small file system")
    d = tmp_path / "small"
    d.mkdir()
    script = f"""
set -u
mount -t tmpfs -o size=6m cocoon-test {d} || exit 99
{tool} create {d}/f.qcow2 {256 << 20} "" "" 16
{tool} fill {d}/f.qcow2 0 {1 << 20} 0x11
fallocate -l 3M {d}/ballast
{tool} fill {d}/f.qcow2 {8 << 20} {16 << 20} 0x22; echo "fill=$?"
cp {d}/f.qcow2 {tmp_path}/after-enospc.qcow2
rm {d}/ballast
{tool} fill {d}/f.qcow2 {40 << 20} {1 << 20} 0x33; echo "refill=$?"
cp {d}/f.qcow2 {tmp_path}/after-refill.qcow2
"""
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                       text=True, timeout=120)
    if p.returncode == 99:
        pytest.skip(f"skipped: cannot mount a tmpfs here: {p.stderr[-300:]}")
    assert "fill=1" in p.stdout and "No space left on device" in p.stderr, p.stdout + p.stderr
    assert "refill=0" in p.stdout, p.stdout + p.stderr
    for img in (tmp_path / "after-enospc.qcow2", tmp_path / "after-refill.qcow2"):
        _qemu_img_clean(img)
        _pattern(img, "0x11", 0, 1 << 20)
    _pattern(tmp_path / "after-refill.qcow2", "0x33", 40 << 20, 1 << 20)
