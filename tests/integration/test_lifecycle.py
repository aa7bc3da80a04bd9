"""Box lifecycle through the CLI: timeouts, parallel boxes, the lifeline (a box never
outlives `cocoon run`), persistent boxes (create/start/stop/restart/rm, files kept
across stop/start), `ls`/`inspect`/`logs`, a monitor killed under the box (state
shown as stopped, the qcow2 disk still consistent), concurrent creates with one
name, `--disk` growing the guest's root file system, the SQLite state index, liveness
by the monitor's lock (other spellings of COCOON_HOME, a lock holder that has not
written its pid, a recycled pid), and creates that are interrupted."""
import json
import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import decode, find_box_processes, sh


def test_timeout(vm):
    r = vm.run("run", "--timeout", "2", "--", "sleep", "30", timeout=120)
    assert r.returncode == 124, (r.returncode, decode(r.stderr))
    assert "timed out" in decode(r.stderr).lower()
    # Boot (a few seconds under TCG) + 2 s, far below the 30 s of sleep.
    assert r.elapsed < 25, f"took {r.elapsed:.1f} s"


def test_two_boxes_in_parallel(vm):
    procs = [vm.popen("run", "--", "sh", "-c", f"echo box-{n}; cat /proc/sys/kernel/random/boot_id")
             for n in ("a", "b")]
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        results.append((p.returncode, decode(out), decode(err)))
    for (rc, out, err), n in zip(results, ("a", "b")):
        assert rc == 0, err
        assert out.startswith(f"box-{n}\n"), out
    # Two different guests, not one shared.
    assert results[0][1].split("\n")[1] != results[1][1].split("\n")[1]


def kill_run_once_started(vm, *run_args, while_running=None):
    """Starts `cocoon run RUN_ARGS -- sh -c 'echo started; sleep 60'`, SIGKILLs it once the
    command is running (after while_running(), when given) and reaps it."""
    p = vm.popen("run", *run_args, "--", "sh", "-c", "echo started; sleep 60")
    try:
        line = p.stdout.readline()
        assert line == b"started\n", (line, p.poll())
        if while_running:
            while_running()
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_until(done, secs=15):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline and not done():
        time.sleep(0.25)


def test_killing_the_cli_removes_the_box(vm):
    def one_box_running():
        boxes = vm.box_dirs()
        assert len(boxes) == 1, boxes
        assert find_box_processes(vm.home), "no monitor/qemu found for a running box"

    kill_run_once_started(vm, "--rm", while_running=one_box_running)
    wait_until(lambda: not find_box_processes(vm.home) and not vm.box_dirs())
    left = find_box_processes(vm.home)
    assert not left, f"still running 15 s after the CLI died: {left}"
    assert vm.box_dirs() == [], f"box directory left behind: {vm.box_dirs()}"
    # The monitor removed the directory; the state row of a box without a directory is
    # dropped by the next reader (the monitor does not write the database).
    assert ls(vm) == []
    assert db_box_ids(vm) == [], "state row left behind"


# ---- helpers ----

def db_box_ids(c):
    """Box ids in the state database (read-only, as a second client would)."""
    path = os.path.join(c.home, "cocoon.db")
    if not os.path.exists(path):
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return sorted(r[0] for r in db.execute("SELECT id FROM boxes"))
    finally:
        db.close()


def ls(c, all_=True):
    r = c.run("ls", *(["-a"] if all_ else []), "--json", check=0)
    return json.loads(decode(r.stdout))


def status_of(c, box):
    for b in ls(c):
        if b["id"] == box or b["name"] == box:
            return b["status"]
    return None


def create(c, *args):
    r = c.run("create", *args, check=0)
    box = decode(r.stdout).strip()
    assert re.fullmatch(r"[0-9a-f]{12}", box), r.stdout
    return box


def sh(c, box, script, check=0, **kw):
    return c.run("exec", box, "--", "sh", "-c", script, check=check, **kw)


def vmm_pid(c, box_id):
    try:
        with open(os.path.join(c.boxes_dir(), box_id, "vmm.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def wait_gone(pid, timeout=10):
    """Until pid is gone or a zombie (this machine's PID 1 does not reap orphans)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


# ---- persistent boxes ----

def test_create_start_stop_keeps_files(vm):
    box = create(vm, "--name", "keeper")
    assert status_of(vm, box) == "stopped"
    assert db_box_ids(vm) == [box]
    # BOX may be a name, an id or a unique id prefix.
    vm.run("start", "keeper", check=0)
    assert status_of(vm, box) == "running"
    sh(vm, box[:5], "echo precious > /root/data.txt && "
       "printf '#!/bin/sh\\necho installed-tool-works\\n' > /usr/local/bin/mytool && "
       "chmod +x /usr/local/bin/mytool && sync")
    r = vm.run("stop", box, check=0)
    assert decode(r.stdout).strip() == box
    assert status_of(vm, box) == "stopped"
    assert not find_box_processes(vm.home)
    vm.run("start", box, check=0)
    r = sh(vm, "keeper", "cat /root/data.txt; mytool")
    assert decode(r.stdout) == "precious\ninstalled-tool-works\n"
    # restart keeps them too, and the box comes back running
    vm.run("restart", "keeper", check=0)
    assert status_of(vm, box) == "running"
    assert decode(sh(vm, "keeper", "cat /root/data.txt").stdout) == "precious\n"
    vm.run("stop", "--timeout", "5", "keeper", check=0)
    vm.run("rm", "keeper", check=0)
    assert vm.box_dirs() == [] and db_box_ids(vm) == [] and ls(vm) == []
    r = vm.run("start", "keeper")
    assert r.returncode == 125 and "no box" in decode(r.stderr), decode(r.stderr)


def test_run_rm_leaves_nothing(vm):
    r = vm.run("run", "--rm", "--", "sh", "-c", "echo hi; exit 3")
    assert r.returncode == 3 and decode(r.stdout) == "hi\n", decode(r.stderr)
    assert vm.box_dirs() == [], vm.box_dirs()
    assert db_box_ids(vm) == []
    assert ls(vm) == []


def test_run_keeps_a_stopped_box(vm):
    r = vm.run("run", "--name", "kept", "--", "sh", "-c", "echo from-run > /root/kept.txt", check=0)
    boxes = ls(vm)
    assert len(boxes) == 1 and boxes[0]["name"] == "kept" and boxes[0]["status"] == "stopped", boxes
    assert ls(vm, all_=False) == []
    assert not find_box_processes(vm.home)
    vm.run("start", "kept", check=0)
    assert decode(sh(vm, "kept", "cat /root/kept.txt").stdout) == "from-run\n"
    vm.run("rm", "-f", "kept", check=0)
    # A second `run --name kept` after rm works: the name is free again.
    vm.run("run", "--rm", "--name", "kept", "--", "true", check=0)
    assert ls(vm) == []


def test_killing_the_cli_stops_a_kept_box(vm):
    kill_run_once_started(vm, "--name", "k")
    wait_until(lambda: not find_box_processes(vm.home))
    assert not find_box_processes(vm.home), "box still running after its `cocoon run` died"
    assert status_of(vm, "k") == "stopped"
    assert len(vm.box_dirs()) == 1
    vm.run("rm", "k", check=0)


# ---- ls, inspect, logs ----

def test_ls_inspect_logs(vm):
    a = create(vm, "--name", "alpha", "--memory", "384M")
    b = vm.run("run", "-d", "--name", "beta", check=0)
    b = decode(b.stdout).strip()
    assert re.fullmatch(r"[0-9a-f]{12}", b)
    running = ls(vm, all_=False)
    assert [x["id"] for x in running] == [b]
    everything = {x["id"]: x for x in ls(vm)}
    assert everything[a]["status"] == "stopped" and everything[a]["name"] == "alpha"
    assert everything[b]["status"] == "running" and everything[b]["pid"] > 0
    assert everything[a]["image"] == "default"
    table = decode(vm.run("ls", "-a", check=0).stdout).splitlines()
    assert table[0].split() == ["ID", "NAME", "IMAGE", "STATUS", "CREATED"]
    assert any(line.startswith(b) and "running" in line and "beta" in line for line in table[1:])
    assert any(line.startswith(a) and "stopped" in line for line in table[1:])

    info = json.loads(decode(vm.run("inspect", "--json", "beta", check=0).stdout))
    assert info["id"] == b and info["status"] == "running" and info["pid"] > 0
    assert info["disk"]["format"] == "qcow2" and os.path.exists(info["disk"]["path"])
    assert info["disk"]["virtual_size"] >= 1 << 30
    assert info["boot"]["ready_ms"] > 0
    assert info["config"]["cpus"] == 1 and info["config"]["memory_mib"] == 512
    info = json.loads(decode(vm.run("inspect", "--json", a, check=0).stdout))
    assert info["status"] == "stopped" and info["pid"] is None and info["config"]["memory_mib"] == 384
    text = decode(vm.run("inspect", "beta", check=0).stdout)
    assert "status:      running" in text and "ready in" in text

    logs = decode(vm.run("logs", "beta", check=0).stdout)
    assert "cocoon-agent: ready" in logs, logs[-2000:]  # the console (the kernel itself is quiet)

    r = vm.run("inspect", "nonexistent")
    assert r.returncode == 125 and 'no box with id or name "nonexistent"' in decode(r.stderr)
    vm.run("rm", "-f", a, b, check=0)
    assert ls(vm) == [] and vm.box_dirs() == []


# ---- a monitor killed under the box ----

def test_killed_monitor_shows_stopped_and_restarts(vm):
    box = create(vm)
    vm.run("start", box, check=0)
    pid = vmm_pid(vm, box)
    assert pid > 0
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and find_box_processes(vm.home):
        time.sleep(0.1)
    # The dead monitor's vmm.pid and ctl.sock may stay: nothing holds the lock, so the
    # box is stopped, and the next monitor takes the files over under the lock.
    assert status_of(vm, box) == "stopped"
    r = vm.run("exec", box, "--", "true")
    assert r.returncode == 125 and "not running" in decode(r.stderr), decode(r.stderr)
    vm.run("start", box, check=0)
    assert decode(sh(vm, box, "echo alive").stdout) == "alive\n"
    vm.run("rm", "-f", box, check=0)


def test_monitor_killed_mid_write_disk_stays_consistent(vm, record_property):
    box = create(vm, "--name", "crash")
    vm.run("start", box, check=0)
    writer = vm.popen("exec", box, "--", "sh", "-c",
                      "echo go; i=0; while true; do "
                      "dd if=/dev/urandom of=/root/f$((i % 20)) bs=64k count=8 2>/dev/null; "
                      "i=$((i+1)); [ $((i % 4)) = 0 ] && sync; done")
    try:
        assert writer.stdout.readline() == b"go\n"
        time.sleep(3)
        pid = vmm_pid(vm, box)
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode != 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and find_box_processes(vm.home):
        time.sleep(0.1)
    disk = os.path.join(vm.boxes_dir(), box, "disk.qcow2")
    chk = subprocess.run(["qemu-img", "check", "--output=json", disk], capture_output=True, timeout=60)
    # 0: clean; 3: only leaked clusters (allowed: space, not data); anything else is corruption.
    report = json.loads(chk.stdout.decode() or "{}")
    record_property("qemu_img_check", f"rc={chk.returncode} {report}")
    print(f"qemu-img check after SIGKILL: rc={chk.returncode} "
          f"leaks={report.get('leaks', 0)} corruptions={report.get('corruptions', 0)}")
    assert chk.returncode in (0, 3), (chk.returncode, chk.stdout, chk.stderr)
    assert report.get("corruptions", 0) == 0 and report.get("check-errors", 0) == 0, report
    assert status_of(vm, box) == "stopped"
    vm.run("start", box, check=0)
    r = sh(vm, box, "ls /root | grep -c '^f'")
    assert int(decode(r.stdout)) >= 1
    vm.run("rm", "-f", box, check=0)


# ---- concurrency ----

def test_parallel_create_same_name(vm):
    procs = [vm.popen("create", "--name", "same") for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        results.append((p.returncode, decode(out), decode(err)))
    ok = [r for r in results if r[0] == 0]
    failed = [r for r in results if r[0] != 0]
    assert len(ok) == 1 and len(failed) == 1, results
    assert failed[0][0] == 125 and "already in use" in failed[0][2], failed
    assert "locked" not in failed[0][2]
    boxes = ls(vm)
    assert len(boxes) == 1 and boxes[0]["id"] == ok[0][1].strip()
    assert vm.box_dirs() == [ok[0][1].strip()]
    assert db_box_ids(vm) == [ok[0][1].strip()]
    vm.run("rm", "same", check=0)


# ---- disk size ----

def test_disk_size_grows_root(vm):
    r = vm.run("create", "--disk", "100M")
    assert r.returncode == 125 and "smaller than image" in decode(r.stderr), decode(r.stderr)
    assert vm.box_dirs() == [] and db_box_ids(vm) == []
    box = create(vm, "--disk", "3G")
    vm.run("start", box, check=0)
    r = sh(vm, box, "df -h / | tail -1; df -B1 / | tail -1")
    human, exact = decode(r.stdout).splitlines()
    print("df in the guest:", human)
    size = int(exact.split()[1])
    assert 2.7 * 2**30 < size <= 3 * 2**30, exact
    assert re.search(r"\b(2\.9|3\.0)G\b", human), human
    assert "grew the root file system" in decode(vm.run("logs", box, check=0).stdout)
    info = json.loads(decode(vm.run("inspect", "--json", box, check=0).stdout))
    assert info["disk"]["virtual_size"] == 3 * 2**30
    vm.run("rm", "-f", box, check=0)


# ---- removal ----

def test_rm_running_box(vm):
    box = decode(vm.run("run", "-d", check=0).stdout).strip()
    assert status_of(vm, box) == "running"
    r = vm.run("rm", box)
    assert r.returncode == 125, decode(r.stderr)
    assert "is running" in decode(r.stderr) and "rm -f" in decode(r.stderr), decode(r.stderr)
    assert status_of(vm, box) == "running"
    r = vm.run("rm", "-f", box, check=0)
    assert decode(r.stdout).strip() == box
    assert vm.box_dirs() == [] and db_box_ids(vm) == [] and ls(vm) == []
    assert not find_box_processes(vm.home)


def test_boot_reads_a_wall_clock_at_once(vm, boxes):
    """The guest kernel finds a wall clock when it starts: no RTC poll that times out
    (it waits up to 1 s and prints this line), no failed TSC calibration under TCG (a
    jiffies clocksource: ~250 ms of delay-loop calibration). And the guest's clock is
    the host's once the box is up."""
    box = boxes("clock")
    before = time.time()
    out = decode(sh(vm, box, "date +%s; cat /sys/devices/system/clocksource/clocksource0/current_clocksource")
                 .stdout).split()
    after = time.time()
    guest, clocksource = int(out[0]), out[1]
    assert int(before) - 1 <= guest <= int(after) + 1, (before, guest, after)
    consoles = ""
    for d in vm.box_dirs():
        with open(os.path.join(vm.boxes_dir(), d, "console.log"), errors="replace") as f:
            consoles += f.read()
    assert "Unable to read current time from RTC" not in consoles, consoles[-2000:]
    with open("/proc/cpuinfo") as f:
        flags = next((line.split() for line in f if line.startswith("flags")), [])
    if "constant_tsc" in flags and "nonstop_tsc" in flags:  # cocoon-vmm then gives the guest the TSC's rate
        assert "jiffies" not in clocksource, f"the guest could not calibrate its TSC (clocksource {clocksource})"
# ---- liveness is the monitor's lock ----

def test_other_spellings_of_home_see_the_running_box(vm, tmp_path):
    box = create(vm, "--name", "spelled")
    vm.run("start", box, check=0)
    pid = vmm_pid(vm, box)
    link = str(tmp_path / "home-link")
    os.symlink(vm.home, link)
    for home in (vm.home + "/", link, vm.home + "/./"):
        r = vm.run("ls", "-a", "--json", env={"COCOON_HOME": home}, check=0)
        got = {b["id"]: b for b in json.loads(decode(r.stdout))}
        assert got[box]["status"] == "running", (home, got)
        assert os.path.exists(os.path.join(vm.boxes_dir(), box, "ctl.sock")), f"ls under {home} cut the box off"
    assert status_of(vm, box) == "running"
    assert decode(sh(vm, box, "echo still-reachable").stdout) == "still-reachable\n"
    # stop under another spelling really stops it
    vm.run("stop", box, env={"COCOON_HOME": link}, check=0)
    assert wait_gone(pid)
    assert status_of(vm, box) == "stopped"
    vm.run("rm", box, check=0)
    assert not find_box_processes(vm.home)


def _hold_lock(path, pid_text):
    """A process holding an exclusive flock on path (as a monitor does), having
    written pid_text there; it prints 'locked' and waits for stdin to close."""
    code = ("import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.ftruncate(fd, 0); os.write(fd, sys.argv[2].encode())\n"
            "print('locked', flush=True); sys.stdin.read()\n")
    p = subprocess.Popen(["python3", "-c", code, path, pid_text], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"locked\n"
    return p


def test_lock_held_before_the_pid_is_written_counts_as_running(vm):
    """A monitor between creating vmm.pid and writing its pid (emulated: the lock is
    held, the file is empty): ls must not delete its files, rm must not remove the box
    under it, and nothing is killed without proof of who holds the lock."""
    box = create(vm, "--name", "starting")
    d = os.path.join(vm.boxes_dir(), box)
    holder = _hold_lock(os.path.join(d, "vmm.pid"), "")
    try:
        assert status_of(vm, box) == "running"
        assert os.path.exists(os.path.join(d, "vmm.pid")), "ls deleted the vmm.pid of a lock holder"
        r = vm.run("rm", box)
        assert r.returncode == 125 and "is running" in decode(r.stderr), decode(r.stderr)
        r = vm.run("rm", "-f", box, timeout=60)
        assert r.returncode == 125 and "not killed" in decode(r.stderr), decode(r.stderr)
        assert holder.poll() is None, "the lock holder was killed without proof that it is the monitor"
        assert os.path.isdir(d)
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert status_of(vm, box) == "stopped"
    vm.run("rm", box, check=0)
    assert vm.box_dirs() == [] and db_box_ids(vm) == []


def test_recycled_pid_naming_the_box_is_not_killed(vm):
    """vmm.pid names a live process whose command line mentions the box directory but
    which holds no lock (a dead monitor's pid, recycled): the box is stopped, and
    neither stop nor rm -f kills that process."""
    box = create(vm, "--name", "recycled")
    d = os.path.join(vm.boxes_dir(), box)
    bystander = subprocess.Popen(["python3", "-c", "import sys; sys.stdin.read()", "--box-dir", d],
                                 stdin=subprocess.PIPE)
    try:
        with open(os.path.join(d, "vmm.pid"), "w") as f:
            f.write(f"{bystander.pid}\n")
        assert status_of(vm, box) == "stopped"
        vm.run("stop", box, check=0)
        vm.run("rm", "-f", box, check=0)
        time.sleep(0.2)
        assert bystander.poll() is None, "a process that only named the box was SIGKILLed"
        assert vm.box_dirs() == [] and db_box_ids(vm) == []
    finally:
        bystander.stdin.close()
        bystander.wait(timeout=10)


def test_two_starts_at_once_one_monitor(vm):
    box = create(vm, "--name", "twice")
    procs = [vm.popen("start", box) for _ in range(2)]
    results = [(p.wait(timeout=180), decode(p.stderr.read())) for p in procs]
    assert any(rc == 0 for rc, _ in results), results
    for rc, err in results:
        assert rc == 0 or "already running" in err, results
    assert status_of(vm, box) == "running"
    monitors = [pid for pid, (name, _) in find_box_processes(vm.home).items() if "cocoon-vmm" in name]
    assert len(monitors) == 1, find_box_processes(vm.home)
    assert decode(sh(vm, box, "echo one").stdout) == "one\n"
    vm.run("rm", "-f", box, check=0)
    assert vm.box_dirs() == [] and not find_box_processes(vm.home)


# ---- interrupted creates ----

def test_box_with_missing_files_can_be_removed(vm):
    """A row whose directory lacks config.json (an older cocoon interrupted between its
    row and its files): start says what is wrong, rm -f removes it, the name is free."""
    box = create(vm, "--name", "broken")
    d = os.path.join(vm.boxes_dir(), box)
    os.unlink(os.path.join(d, "config.json"))
    with open(os.path.join(d, "disk.qcow2"), "r+b") as f:
        f.truncate(4096)  # partial
    r = vm.run("start", "broken")
    assert r.returncode == 125 and "config.json" in decode(r.stderr) and "cocoon rm" in decode(r.stderr), \
        decode(r.stderr)
    assert [b["name"] for b in ls(vm)] == ["broken"]
    info = json.loads(decode(vm.run("inspect", "--json", "broken", check=0).stdout))
    assert info["id"] == box and info["status"] == "stopped"
    r = vm.run("rm", "-f", "broken", check=0)
    assert decode(r.stdout).strip() == box
    assert "removed damaged box" in decode(r.stderr) and "config.json" in decode(r.stderr), decode(r.stderr)
    assert vm.box_dirs() == [] and db_box_ids(vm) == [] and ls(vm) == []
    create(vm, "--name", "broken")
    vm.run("rm", "broken", check=0)


@pytest.mark.parametrize("point", ["CREATE_BUILD", "CREATE_PUBLISH"])
def test_killed_create_leaves_nothing(vm, point):
    """A create killed while it builds the box (or between its rename and its row) is
    invisible, keeps no name and no image pinned, and its files are collected by the
    next ls or create once they are a minute old."""
    p = vm.popen("create", "--name", "interrupted", env={f"COCOON_TEST_DELAY_{point}": "30000"})
    boxes = vm.boxes_dir()
    deadline = time.monotonic() + 60
    def building():
        names = os.listdir(boxes) if os.path.isdir(boxes) else []
        if point == "CREATE_BUILD":
            return [n for n in names if n.startswith(".creating-")]
        return [n for n in names if re.fullmatch(r"[0-9a-f]{12}", n)
                and os.path.exists(os.path.join(boxes, n, "config.json"))]
    while time.monotonic() < deadline and not building() and p.poll() is None:
        time.sleep(0.05)
    assert building(), f"the create never reached {point} (exit {p.poll()})"
    assert ls(vm) == [], "a box being created is visible"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert ls(vm) == [] and db_box_ids(vm) == []
    # what it left is collected once it is a minute old (a younger one may be a create
    # that has not taken its lock yet)
    old = time.time() - 120
    for n in os.listdir(boxes):
        os.utime(os.path.join(boxes, n), (old, old))
    box = create(vm, "--name", "interrupted")
    assert vm.box_dirs() == [box], vm.box_dirs()
    vm.run("rm", "interrupted", check=0)
    assert vm.box_dirs() == [] and db_box_ids(vm) == []
