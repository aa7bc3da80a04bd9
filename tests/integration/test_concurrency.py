"""The concurrency suite: several workers run random create/start/exec/stop/rm/pull/
load/prune commands (and a few cp, ls and run --rm) on a few shared box names and
images for a bounded time, some of them killed with SIGKILL at a random moment or at
one of the crash points they pass (COCOON_TEST_CRASH_AT; a monitor point kills the
monitor the command starts), others slowed down at one of their points
(COCOON_TEST_DELAY_<POINT>, a race window held open), then the invariants of
state_invariants.py must hold,
`cocoon doctor --fix` must leave the home clean, no name may be stuck and every box
must start.

Every command must end: with success, or with a clear one-line `cocoon:` message (a
race lost to another worker, e.g. "is already running", is such a message), never by a
signal it was not sent, never hang. Each worker's sequence of commands comes from a
generator seeded with COCOON_CONCURRENCY_SEED + worker number; the seed is in every
failure message. The interleaving is the machine's, so a replay repeats the commands,
not always their timing. COCOON_CONCURRENCY_SECONDS bounds the run (default 45)."""
import os
import random
import signal
import subprocess
import threading
import time

import pytest

import registry_fixture as rf
import small_images
import state_invariants as inv
from conftest import decode

SEED = int(os.environ.get("COCOON_CONCURRENCY_SEED", random.randrange(1 << 30)))
SECONDS = float(os.environ.get("COCOON_CONCURRENCY_SECONDS", "45"))
WORKERS = 4
NAMES = ["n1", "n2", "n3"]
OP_TIMEOUT = 150  # no command may take longer, whatever the others do
KILL_RATE = float(os.environ.get("COCOON_CONCURRENCY_KILL_RATE", "0.08"))  # share of commands SIGKILLed


class Run:
    """Shared by the workers: the log of every command, and what went wrong."""

    def __init__(self, c, images):
        self.c = c
        self.images = images
        self.lock = threading.Lock()
        self.log = []
        self.bad = []
        self.deadline = time.monotonic() + SECONDS

    def record(self, worker, argv, env, rc, elapsed, err, killed):
        last = err.strip().splitlines()[-1] if err.strip() else ""
        hooks = "".join(f"[{k}={v}] " for k, v in (env or {}).items())
        line = f"w{worker} {hooks}{' '.join(argv)[:110]} -> {rc}{' (killed)' if killed else ''} {elapsed:.1f}s " + \
            (err.strip().splitlines()[-1][:160] if err.strip() else "")
        with self.lock:
            self.log.append(line)
            if killed:
                return
            if rc < 0:
                self.bad.append(f"{line}: died of signal {-rc}")
            elif rc != 0 and (argv[0] != "exec" or rc == 125) and not last.startswith("cocoon: "):
                self.bad.append(f"{line}: failed without a `cocoon:` message: {err[-500:]!r}")
            elif rc != 0 and "AddressSanitizer" in err:
                self.bad.append(f"{line}: sanitizer report")


# The points of docs/internals.md each command passes (a monitor point is armed by
# the command that starts the monitor: it fires when that monitor gets there, maybe
# during another worker's stop). A point with a count (BLOB_WRITE:N) fires the Nth time.
BOX_START = ["START_SPAWNED", "START_READY", "MONITOR_OPENED", "MONITOR_LOCKED", "MONITOR_CHILD", "MONITOR_READY",
             "MONITOR_STOPPING", "MONITOR_EXIT"]
BOX_CREATE = ["CREATE_BUILD", "CREATE_DISK", "CREATE_PUBLISH", "CREATE_ROW", "STATE_COMMIT:1", "STATE_COMMIT:2"]
BOX_RM = ["RM_LOCKED", "RM_UNLISTED", "RM_RENAMED", "STATE_COMMIT:1"]
IMAGE_GET = ["BLOB_WRITE:1", "BLOB_WRITE:3", "BASE_PUBLISH", "IMAGE_RECORD", "STATE_COMMIT:1"]
POINTS = {
    "create": BOX_CREATE + IMAGE_GET,
    "start": BOX_START,
    "stop": ["STOP_SENT"],
    "rm": ["STOP_SENT"] + BOX_RM,
    "pull": IMAGE_GET + ["PULL_FETCHED"],
    "load": IMAGE_GET + ["LOAD_IMPORTED"],
    "image": ["PRUNE_UNLISTED", "SWEEP:1", "SWEEP:3", "STATE_COMMIT:1"],
    "cp-in": ["CP_IN_SENT:1", "CP_IN_SENT:2"],
    "cp-out": ["CP_OUT_STAGED:1", "CP_OUT_STAGED:20", "CP_OUT_INSTALL:1"],
    "run": BOX_CREATE + BOX_START + ["STOP_SENT"] + BOX_RM,
}
POINT_RATE = float(os.environ.get("COCOON_CONCURRENCY_POINT_RATE", "0.06"))  # share killed at a point
DELAY_RATE = 0.15  # share of commands slowed down at one of their points (a race window held open)
# Points a command passes many times (a copy of /etc stages hundreds of entries): a
# delay there is short, or one command would take minutes.
REPEATED = {"BLOB_WRITE", "SWEEP", "STATE_COMMIT", "CP_IN_SENT", "CP_OUT_STAGED", "CP_OUT_INSTALL"}


def pick_op(rng, run, worker):
    """(argv, kind): a random command, and its kind in POINTS (None: no points)."""
    name = rng.choice(NAMES)
    image = rng.choice(run.images["boxes"])
    ops = [
        (5, "create", ["create", "--name", name, "--memory", "192M"] + ([image] if image != "default" else [])),
        (6, "start", ["start", name]),
        (6, None, ["exec", name, "--", "sh", "-c", "echo $$ > /root/w && sync && cat /root/w"]),
        (4, "stop", ["stop", name]),
        (3, "rm", ["rm", "-f", name]),
        (1, "rm", ["rm", name]),
        (1, None, ["ls", "-a"]),
        (2, "pull", ["pull", run.images["pull"]]),
        (2, "load", ["load", run.images["load"]]),
        (2, "image", ["image", "prune"]),
        (1, "cp-in", ["cp", run.images["file"], f"{name}:/root/copied"]),
        (1, "cp-out", ["cp", f"{name}:/etc", os.path.join(run.images["out"], f"w{worker}")]),
        (1, "run", ["run", "--rm", "--memory", "128M", "--", "true"]),
    ]
    x = rng.uniform(0, sum(w for w, _, _ in ops))
    for w, kind, argv in ops:
        x -= w
        if x <= 0:
            return argv, kind
    return ops[-1][2], ops[-1][1]


def pick_env(rng, kind):
    """(env, point): a crash point of this command (POINT_RATE of the time), else maybe
    a delay at one of its points, else nothing."""
    if not kind:
        return None, None
    r = rng.random()
    point = rng.choice(POINTS[kind])
    if r < POINT_RATE:
        return {"COCOON_TEST_CRASH_AT": point}, point
    if r < POINT_RATE + DELAY_RATE:
        name = point.split(":")[0]
        ms = rng.randrange(2, 20) if name in REPEATED else rng.randrange(100, 1500)
        return {"COCOON_TEST_DELAY_" + name: str(ms)}, None
    return None, None


def worker(run, i):
    rng = random.Random(SEED + i)
    os.makedirs(os.path.join(run.images["out"], f"w{i}"), exist_ok=True)
    while time.monotonic() < run.deadline:
        argv, kind = pick_op(rng, run, i)
        env, point = pick_env(rng, kind)
        kill_at = rng.uniform(0.05, 2.0) if not point and rng.random() < KILL_RATE else None
        start = time.monotonic()
        p = run.c.popen(*argv, env=env)
        killed = False
        try:
            if kill_at is not None:
                try:
                    p.wait(timeout=kill_at)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
                    killed = True
            out, err = p.communicate(timeout=OP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            with run.lock:
                run.bad.append(f"w{i} {' '.join(argv)} {env or ''} still running after {OP_TIMEOUT} s (hang): "
                               f"{decode(err)[-500:]}")
            continue
        # a crash point that killed the command itself; a monitor point makes the
        # command fail (its message is checked like any other)
        killed = killed or (point is not None and p.returncode == -signal.SIGKILL)
        run.record(i, argv, env, p.returncode, time.monotonic() - start, decode(err), killed)


@pytest.fixture
def images(vm, tmp_path):
    if not small_images.available():
        pytest.skip("skipped: busybox-static is needed (scripts/setup installs it)")
    fake = rf.FakeRegistry()
    vm.env["COCOON_INSECURE_REGISTRIES"] = fake.host
    a = small_images.serve(fake, "conc/a", "1", big=128 << 10)
    b = small_images.serve(fake, "conc/b", "1", big=128 << 10)
    # the loaded image is also in the registry: a create after a prune pulls it from there
    loaded = small_images.serve(fake, "conc/l", "1", big=128 << 10)
    tar = small_images.save_tarball(str(tmp_path / "l.tar"), loaded, big=128 << 10)
    vm.run("pull", a, check=0)  # a stays pulled until a prune (create pulls it again then)
    small = tmp_path / "small.txt"
    small.write_text("copied\n" * 1000)
    out = tmp_path / "out"
    out.mkdir()
    yield {"boxes": ["default", a, loaded], "pull": b, "load": tar, "file": str(small), "out": str(out)}
    fake.stop()


def test_random_concurrent_commands(vm, images, tmp_path):
    try:
        random_commands(vm, images, tmp_path)
    finally:
        for name in NAMES:
            vm.run("rm", "-f", name)


def random_commands(vm, images, tmp_path):
    run = Run(vm, images)
    threads = [threading.Thread(target=worker, args=(run, i), daemon=True) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + OP_TIMEOUT + 60)
    with open(tmp_path / "commands.log", "w") as f:
        f.write("\n".join(run.log) + "\n")
    summary = f"seed {SEED} (COCOON_CONCURRENCY_SEED={SEED} replays the commands), {len(run.log)} commands; " \
              f"log: {tmp_path / 'commands.log'}; last ones:\n  " + "\n  ".join(run.log[-15:])
    print(summary)
    assert not any(t.is_alive() for t in threads), "a worker is stuck: " + summary
    assert not run.bad, "\n".join(run.bad[:20]) + "\n" + summary
    assert len(run.log) >= 4 * WORKERS, "too few commands ran: " + summary
    inv.assert_consistent(vm.home, f"seed {SEED}: after the workers")
    inv.doctor_fix(vm)
    inv.assert_clean(vm.home, f"seed {SEED}: after doctor --fix")
    for name in NAMES:  # every box there starts (and stops)
        if vm.run("inspect", name).returncode == 0:
            r = vm.run("start", name)
            assert r.returncode == 0 or "already running" in decode(r.stderr), \
                f"seed {SEED}: box {name} does not start: {decode(r.stderr)}"
            assert decode(vm.run("exec", name, "--", "echo", "ok", check=0).stdout) == "ok\n"
            vm.run("stop", name, check=0)
    inv.names_reusable(vm, NAMES)
    inv.assert_clean(vm.home, f"seed {SEED}: at the end")


# ---- races the suite found, each pinned down with a delay at its window ----

def test_prune_during_create_keeps_the_image(vm, images):
    """A prune while a create of a pulled image is between its image lookup and its row
    used to remove the image under it ("image sha256:... is not in the state
    database"). The create holds the image store's lock shared, so the prune waits,
    then keeps the image the new box uses."""
    ref = images["boxes"][1]
    create = vm.popen("create", "--name", "racer", ref, env={"COCOON_TEST_DELAY_CREATE_BUILD": "3000"})
    time.sleep(1.5)  # the create is in its window (it holds it for 3 s)
    prune = vm.run("image", "prune", check=0)
    out, err = create.communicate(timeout=120)
    assert create.returncode == 0, decode(err)
    assert "Deleted images: 0" in decode(prune.stdout) or "racer" not in decode(prune.stdout), decode(prune.stdout)
    inv.assert_clean(vm.home, "prune during create")
    vm.run("start", "racer", check=0)
    assert decode(vm.run("exec", "racer", "--", "cat", "/etc/image", check=0).stdout) == ref.split("/", 1)[1] + "\n" \
        or "conc/a" in decode(vm.run("exec", "racer", "--", "cat", "/etc/image", check=0).stdout)
    vm.run("rm", "-f", "racer", check=0)


def test_monitor_of_a_box_moved_away_gives_up(vm):
    """rm moves a box's directory aside (under the box lock) before deleting it. A
    monitor that opened the directory just before and takes the lock after must not
    run the box there: it would be a VM whose box is gone. Here the test moves the
    directory itself while the monitor waits between opening it and locking it."""
    box = decode(vm.run("create", "--name", "moved", check=0).stdout).strip()
    start = vm.popen("start", "moved", env={"COCOON_TEST_DELAY_MONITOR_OPENED": "2000"})
    d = os.path.join(vm.boxes_dir(), box)
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(d, "vmm.log")) and time.monotonic() < deadline:
        time.sleep(0.05)
    aside = os.path.join(vm.boxes_dir(), ".removing-" + box)
    os.rename(d, aside)
    out, err = start.communicate(timeout=120)
    assert start.returncode == 125 and "was removed" in decode(err), (start.returncode, decode(err))
    # The monitor reported and is exiting: on a loaded machine its last steps may come just
    # after `start` returned, so it gets a bounded while to be gone.
    deadline = time.monotonic() + 30
    while inv.find_box_processes(vm.home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p, (name, _) in inv.find_box_processes(vm.home).items()], inv.find_box_processes(vm.home)
    os.rename(aside, d)
    vm.run("rm", "moved", check=0)
    inv.assert_clean(vm.home, "a monitor whose directory moved")


def test_start_says_when_another_command_stopped_the_box(vm):
    """A stop between a monitor's ready report and the start's first connection used to
    make `start` say "box X is not running": it says the box started and was stopped."""
    vm.run("create", "--name", "brief", check=0)
    start = vm.popen("start", "brief", env={"COCOON_TEST_DELAY_START_READY": "3000"})
    deadline = time.monotonic() + 60
    while decode(vm.run("ls", "-q", check=0).stdout).strip() == "" and time.monotonic() < deadline:
        time.sleep(0.1)
    vm.run("stop", "brief", check=0)
    out, err = start.communicate(timeout=120)
    assert start.returncode == 125 and "started, but stopped again" in decode(err), decode(err)
    vm.run("rm", "brief", check=0)
    inv.assert_clean(vm.home, "a start whose box was stopped at once")


def test_start_stops_a_monitor_whose_row_an_rm_deleted(vm):
    """An rm killed between deleting a box's row and moving its directory aside let a
    start that waited for the box lock run the box with no row (a monitor nobody lists:
    seen once in the random suite). The start checks the row once the box is ready;
    here the row is deleted as that rm would have, while the start waits after ready."""
    import sqlite3
    box = decode(vm.run("create", "--name", "unlisted", check=0).stdout).strip()
    start = vm.popen("start", "unlisted", env={"COCOON_TEST_DELAY_START_READY": "3000"})
    deadline = time.monotonic() + 60
    while decode(vm.run("ls", "-q", check=0).stdout).strip() == "" and time.monotonic() < deadline:
        time.sleep(0.1)
    db = sqlite3.connect(os.path.join(vm.home, "cocoon.db"), timeout=30)
    with db:
        db.execute("DELETE FROM boxes WHERE id = ?", (box,))
    db.close()
    out, err = start.communicate(timeout=120)
    assert start.returncode == 125 and "was removed" in decode(err), (start.returncode, decode(err))
    assert not inv.find_box_processes(vm.home), inv.find_box_processes(vm.home)
    inv.doctor_fix(vm)
    inv.assert_clean(vm.home, "a start whose row an rm deleted")


def test_rm_during_rm_says_busy(vm):
    """A second rm while the first holds the box's lock used to be told only that the box
    "is running: stop it first"; it is told another command may be at work on it."""
    vm.run("create", "--name", "twice", check=0)
    first = vm.popen("rm", "twice", env={"COCOON_TEST_DELAY_RM_LOCKED": "3000"})
    time.sleep(1.5)  # the first rm holds the lock for 3 s
    second = vm.run("rm", "twice")
    assert first.wait(timeout=60) == 0, decode(first.stderr.read())
    err = decode(second.stderr)
    assert second.returncode == 125 and "busy" in err and "another cocoon command" in err, err
    inv.assert_clean(vm.home, "two rms of one box")
    inv.names_reusable(vm, ["twice"])


def test_copy_into_a_box_stopped_meanwhile_says_so(vm, tmp_path):
    """A stop while a copy into the box was under way used to end the copy with "the
    transfer failed in the guest": it says the box stopped (or its transfer was
    killed), and the box is stopped and whole."""
    vm.run("create", "--name", "cut", check=0)
    vm.run("start", "cut", check=0)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(2 << 20))
    cp = vm.popen("cp", str(big), "cut:/root/big", env={"COCOON_TEST_DELAY_CP_IN_SENT": "300"})
    time.sleep(1.5)  # a few frames are in, the copy is far from done
    vm.run("stop", "cut", check=0)
    out, err = cp.communicate(timeout=120)
    err = decode(err)
    assert cp.returncode == 125 and err.startswith("cocoon: ") and "stop" in err, (cp.returncode, err)
    inv.assert_clean(vm.home, "a copy cut by a stop")
    vm.run("rm", "cut", check=0)


def test_exec_while_the_box_starts_says_so(vm):
    """An exec while the box's monitor holds its lock but has no control socket yet used
    to fail with "not running (cannot connect to its control socket: No such file or
    directory)": it says the box is starting or stopping, and to try again."""
    vm.run("create", "--name", "early", check=0)
    start = vm.popen("start", "early", env={"COCOON_TEST_DELAY_MONITOR_LOCKED": "3000"})
    deadline = time.monotonic() + 30
    while status_running(vm, "early") is False and time.monotonic() < deadline:
        time.sleep(0.05)
    r = vm.run("exec", "early", "--", "true")
    err = decode(r.stderr)
    assert r.returncode == 125 and "is starting or stopping" in err and "try again" in err, (r.returncode, err)
    out, err = start.communicate(timeout=120)
    assert start.returncode == 0, decode(err)
    assert decode(vm.run("exec", "early", "--", "echo", "ok", check=0).stdout) == "ok\n"
    vm.run("rm", "-f", "early", check=0)
    inv.assert_clean(vm.home, "an exec while the box starts")


def status_running(c, name):
    """True once the box's lock is held (its monitor started), from inspect."""
    import json
    r = c.run("inspect", "--json", name)
    return r.returncode == 0 and json.loads(decode(r.stdout))["status"] != "stopped"
