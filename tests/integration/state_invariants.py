"""The invariants a cocoon home keeps whatever was killed, and when: written once, used
by the crash suite (test_crash.py), the concurrency suite (test_concurrency.py) and
the fault tests.

check(home) returns two lists of strings:
  problems  what must never be, kill or no kill: a row without its files, a file the
            index does not know that nothing will collect, a monitor or QEMU whose box
            is gone or stopped, a disk `qemu-img check` finds corrupt, a damaged
            database;
  garbage   what a kill may leave and `cocoon doctor --fix` (or `cocoon image prune`
            for image files) collects: temporary files and directories of a command
            that died, a row-less box directory, a row whose directory its monitor
            removed, a base or blob no image needs.
After `cocoon doctor --fix` both lists must be empty (assert_clean).

The database is read with sqlite3 read-only (the schema is in src/lib/state.c);
liveness is the monitor's flock on DIR/vmm.pid, as libcocoon decides it.
"""
import errno
import fcntl
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time

from conftest import find_box_processes

QEMU_IMG = shutil.which("qemu-img")
BOX_ID = re.compile(r"[0-9a-f]{12}")
DIGEST_BASE = re.compile(r"[0-9a-f]{64}\.ext4")
# Files a box directory may hold besides its disk and config.json (docs/internals.md).
BOX_FILES = {"config.json", "disk.qcow2", "rootfs.ext4", "vmm.pid", "ctl.sock", "console.log", "vmm.log",
             "net.log", "net.log.1", "net.stats.json",
             # the main process and detached execs (src/monitor/mainproc.c, detached.c)
             "main.json", "main.json.tmp", "main.state.json", "main.state.json.tmp", "main.log", "main.log.1",
             "execs",
             # an imported box's flattened base under its disk (src/lib/import.c)
             "base.raw"}


def db_rows(home, root=""):
    """{"boxes": [...], "images": [...], "tags": [...], "integrity": str, "fk": [...]}
    from cocoon.db opened read-only (a missing database reads as empty)."""
    path = root + os.path.join(home, "cocoon.db")
    out = {"boxes": [], "images": [], "tags": [], "integrity": "ok", "fk": []}
    if not os.path.exists(path):
        return out
    if root:
        # SQLite resolves the /proc/PID/root symlink to this namespace's view, where
        # the file is not: read a copy (the database and its WAL) instead.
        copy = tempfile.mkdtemp(prefix="cocoon-db-")
        for suffix in ("", "-wal"):
            if os.path.exists(path + suffix):
                shutil.copyfile(path + suffix, os.path.join(copy, "cocoon.db" + suffix))
        path = os.path.join(copy, "cocoon.db")
    db = sqlite3.connect(f"file:{path}?mode=ro" if not root else path, uri=True, timeout=30)
    try:
        db.row_factory = sqlite3.Row
        out["integrity"] = db.execute("PRAGMA integrity_check").fetchone()[0]
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'boxes'").fetchone():
            return out  # a first command killed before its schema was committed: the next one makes it
        out["boxes"] = [dict(r) for r in db.execute("SELECT id, name, image_id, ephemeral, config_json FROM boxes")]
        out["images"] = [dict(r) for r in db.execute("SELECT id, base_path, config_digest FROM images")]
        out["tags"] = [dict(r) for r in db.execute("SELECT name, image_id FROM image_tags")]
        out["fk"] = [tuple(r) for r in db.execute("PRAGMA foreign_key_check")]
    finally:
        db.close()
        if root:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    return out


def lock_held(path):
    """True when some process holds an exclusive flock on path (a monitor on vmm.pid,
    or a command that locked a box directory or the image store)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)


def box_running(box_dir):
    return lock_held(os.path.join(box_dir, "vmm.pid"))


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _holds_flock(pid, path):
    """pid holds an exclusive flock on the file at path (through /proc/PID/fdinfo)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            s = os.stat(f"/proc/{pid}/fd/{fd}")
            if (s.st_dev, s.st_ino) != (st.st_dev, st.st_ino):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                if any(l.startswith("lock:") and " FLOCK " in l and " WRITE " in l for l in f):
                    return True
        except OSError:
            pass
    return False


def process_problems(home, rows, root=""):
    """Every cocoon-vmm of this home runs a box that has its row and directory and whose
    lock it holds; every QEMU is the child of such a monitor."""
    problems = []
    ids = {r["id"] for r in rows["boxes"]}
    procs = find_box_processes(home)
    monitors = {}
    for pid, (name, _) in procs.items():
        if "cocoon-vmm" not in name:
            continue
        argv = _cmdline(pid)
        if "--kvm-run" in argv:
            continue  # the kvm backend's VMM child: judged with QEMU below
        d = root + argv[argv.index("--box-dir") + 1] if "--box-dir" in argv else ""
        box = os.path.basename(d.rstrip("/"))
        monitors[pid] = box
        if box not in ids:
            problems.append(f"monitor pid {pid} runs box {box!r}, which has no row: {' '.join(argv)[:200]}")
        elif not os.path.isdir(d):
            problems.append(f"monitor pid {pid} runs box {box}, whose directory {d} is gone")
        elif not _holds_flock(pid, os.path.join(d, "vmm.pid")):
            problems.append(f"monitor pid {pid} of box {box} does not hold its lock (a second monitor?)")
    for pid, (name, cmd) in procs.items():
        if pid in monitors:
            continue
        parent = _ppid(pid)
        if parent not in monitors or _ppid(pid) == 0:
            problems.append(f"{name} pid {pid} outlives its monitor (parent {parent}): {cmd[:200]}")
    return problems


def qcow2_check(disk, running, settle_s=10.0):
    """(problem or None, leaks) from `qemu-img check`. A running box's image is read
    with -U while QEMU updates it, so one read may catch an allocation half done (a
    refcount block read before, its L2 table after): a running box counts as corrupt
    only when three checks in a row say so. A stopped box's image must not be locked
    by anyone: a QEMU killed a moment ago may hold it while its last threads end
    (one in a long fsync), so a lock counts only when it outlasts settle_s."""
    if not QEMU_IMG:
        return None, 0
    argv = [QEMU_IMG, "check", "--output=json", "-f", "qcow2"] + (["-U"] if running else []) + [disk]
    deadline = time.monotonic() + settle_s
    attempt = 0
    while attempt < (3 if running else 1):
        if attempt:
            time.sleep(0.5)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if not running and "Failed to get" in p.stderr and "lock" in p.stderr and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        attempt += 1
        try:
            r = json.loads(p.stdout)
        except ValueError:
            problem, leaks = f"qemu-img check {disk} failed ({p.returncode}): {p.stderr.strip()[-400:]}", 0
            continue
        if r.get("corruptions", 0) or r.get("check-errors", 0) or p.returncode not in (0, 3):
            problem, leaks = f"qemu-img check {disk}{' (box running)' if running else ''}: {r}", 0
            continue
        return None, r.get("leaks", 0)
    return problem, leaks


def box_problems(home, rows, disks=True, root=""):
    """(problems, garbage, leaks) of boxes/: rows against directories, and disks."""
    problems, garbage, leaks = [], [], {}
    boxes = root + os.path.join(home, "boxes")
    entries = sorted(os.listdir(boxes)) if os.path.isdir(boxes) else []
    by_id = {r["id"]: r for r in rows["boxes"]}
    names = [r["name"] for r in rows["boxes"] if r["name"]]
    if len(names) != len(set(names)):
        problems.append(f"a box name is held twice: {sorted(names)}")
    for r in rows["boxes"]:
        d = os.path.join(boxes, r["id"])
        if not os.path.isdir(d):
            # an ephemeral box's monitor removes its directory; the row goes at the
            # next ls/open or doctor --fix
            (garbage if r["ephemeral"] else problems).append(f"box {r['id']} ({r['name']}) has a row but no directory")
            continue
        try:
            with open(os.path.join(d, "config.json")) as f:
                cfg = json.load(f)
            if cfg.get("id") != r["id"]:
                problems.append(f"box {r['id']}: config.json says id {cfg.get('id')!r}")
        except (OSError, ValueError) as e:
            problems.append(f"box {r['id']} ({r['name']}): config.json unreadable: {e}")
            continue
        disk = root + cfg.get("disk", "")
        if os.path.dirname(disk) != d or not os.path.isfile(disk):
            problems.append(f"box {r['id']} ({r['name']}): disk {disk} missing")
            continue
        stray = sorted(set(os.listdir(d)) - BOX_FILES)
        if stray:
            garbage.append(f"box {r['id']}: unexpected files {stray}")
        if disks and disk.endswith(".qcow2"):
            problem, n = qcow2_check(disk, box_running(d))
            if problem:
                problems.append(problem)
            if n:
                leaks[disk] = n
    for e in entries:
        path = os.path.join(boxes, e)
        if BOX_ID.fullmatch(e) and os.path.isdir(path):
            if e not in by_id:
                garbage.append(f"box directory {e} has no row")
            continue
        if e.startswith(".creating-") or e.startswith(".removing-"):
            garbage.append(f"leftover {e} in boxes/")
            continue
        problems.append(f"unexpected entry boxes/{e}")
    return problems, garbage, leaks


def image_problems(home, rows, root=""):
    """(problems, garbage) of the image store: rows against bases and blobs."""
    problems, garbage = [], []
    store = root + os.path.join(home, "images")
    bases_dir = os.path.join(store, "bases")
    blobs_dir = os.path.join(store, "blobs", "sha256")
    ids = {r["id"] for r in rows["images"]}
    for t in rows["tags"]:
        if t["image_id"] not in ids:
            problems.append(f"image name {t['name']} names a missing image {t['image_id']}")
    for r in rows["boxes"]:
        if r["image_id"] and r["image_id"] not in ids:
            problems.append(f"box {r['id']} uses a missing image {r['image_id']}")
    needed = set()
    for r in rows["images"]:
        if not os.path.isfile(root + r["base_path"]):
            problems.append(f"image {r['id']}: its base {r['base_path']} is missing")
        if r["id"].startswith("sha256:"):
            if root + os.path.dirname(r["base_path"]) != bases_dir:
                problems.append(f"image {r['id']}: base {r['base_path']} outside {bases_dir}")
            for digest in (r["id"], r["config_digest"]):
                if not os.path.isfile(os.path.join(blobs_dir, digest[7:])):
                    problems.append(f"image {r['id']}: blob {digest} is missing")
            needed.add(r["id"][7:])
            needed.add(r["config_digest"][7:])
            try:
                with open(os.path.join(blobs_dir, r["id"][7:])) as f:
                    needed.update(l["digest"][7:] for l in json.load(f).get("layers", []))
            except (OSError, ValueError, KeyError):
                pass
    used_bases = {os.path.basename(r["base_path"]) for r in rows["images"]}
    for e in sorted(os.listdir(bases_dir)) if os.path.isdir(bases_dir) else []:
        if e.startswith(".tmp-"):
            garbage.append(f"temporary base {e}")
        elif DIGEST_BASE.fullmatch(e) and e not in used_bases:
            garbage.append(f"base {e} belongs to no image")
    for e in sorted(os.listdir(blobs_dir)) if os.path.isdir(blobs_dir) else []:
        if e.startswith(".tmp-"):
            garbage.append(f"temporary blob {e}")
        elif e not in needed:
            garbage.append(f"blob {e[:12]} belongs to no image")
    return problems, garbage


def snapshot_problems(home, disks=True, root=""):
    """(problems, garbage) of snapshots/ (src/lib/snapshot.c): a committed snapshot has
    its record and a layer with one link that `qemu-img check` passes; an uncommitted
    one (its layer still linked from the box), .creating-/.removing- directories and a
    top.new left by a killed snapshot or restore are garbage."""
    problems, garbage = [], []
    snaps = root + os.path.join(home, "snapshots")
    for e in sorted(os.listdir(snaps)) if os.path.isdir(snaps) else []:
        path = os.path.join(snaps, e)
        if e == ".lock":
            continue
        if e.startswith(".creating-") or e.startswith(".removing-"):
            garbage.append(f"leftover {e} in snapshots/")
            continue
        if not BOX_ID.fullmatch(e) or not os.path.isdir(path):
            problems.append(f"unexpected entry snapshots/{e}")
            continue
        layer = os.path.join(path, "disk.qcow2")
        if not os.path.isfile(layer) or os.stat(layer).st_nlink != 1:
            garbage.append(f"snapshot {e} was never committed")
            continue
        for f in ("snapshot.json", "config.json"):
            if not os.path.isfile(os.path.join(path, f)):
                problems.append(f"snapshot {e} has no {f}")
        if os.path.exists(os.path.join(path, "top.new")):
            garbage.append(f"snapshot {e}: a top.new left by a killed snapshot or restore")
        if disks:
            problem, _ = qcow2_check(layer, False)
            if problem:
                problems.append(problem)
    return problems, garbage


def check(home, disks=True, settle_s=10.0, root=""):
    """(problems, garbage) of a home once its processes settled: a QEMU whose monitor
    was just killed takes a moment to get its PDEATHSIG, so process problems are
    retried for up to settle_s before they count. root: where the home's mount
    namespace is seen from here (/proc/PID/root), "" for this one."""
    deadline = time.monotonic() + settle_s
    while True:
        rows = db_rows(home, root)
        procs = process_problems(home, rows, root)
        if not procs or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    problems = list(procs)
    if rows["integrity"] != "ok":
        problems.append(f"cocoon.db integrity_check: {rows['integrity']}")
    if rows["fk"]:
        problems.append(f"cocoon.db foreign_key_check: {rows['fk']}")
    p, g, leaks = box_problems(home, rows, disks, root)
    problems += p
    garbage = list(g)
    p, g = image_problems(home, rows, root)
    problems += p
    garbage += g
    p, g = snapshot_problems(home, disks, root)
    problems += p
    garbage += g
    return problems, garbage


def assert_consistent(home, what="", disks=True, root=""):
    """No problem (garbage allowed): what a kill may leave. Returns the garbage."""
    problems, garbage = check(home, disks, root=root)
    assert not problems, f"{what}: state invariants broken:\n  " + "\n  ".join(problems) + \
        ("\n(garbage: " + "; ".join(garbage) + ")" if garbage else "")
    return garbage


def assert_clean(home, what="", disks=True, root=""):
    """No problem and no garbage: what every command leaves, and doctor --fix after a kill."""
    problems, garbage = check(home, disks, root=root)
    assert not problems and not garbage, f"{what}: state not clean:\n  " + "\n  ".join(problems + garbage)


def doctor_fix(cocoon):
    """`cocoon doctor --fix`: collects what kills left; must succeed and leave it clean."""
    r = cocoon.run("doctor", "--fix", timeout=120)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert r.returncode in (0, 1), f"cocoon doctor --fix exited {r.returncode}: {out[-2000:]}"
    assert "state" in out, out[-2000:]
    return out


def names_reusable(cocoon, names, image=None):
    """No name is stuck: after `rm -f NAME` (whatever it held), NAME can be created
    again; the new box is removed."""
    for name in names:
        r = cocoon.run("rm", "-f", name, timeout=120)
        err = r.stderr.decode(errors="replace")
        assert r.returncode == 0 or "no box" in err, f"rm -f {name}: {r.returncode} {err}"
        r = cocoon.run("create", "--name", name, *([image] if image else []), timeout=120)
        assert r.returncode == 0, f"name {name} is stuck: create says {r.stderr.decode(errors='replace')}"
        cocoon.run("rm", name, check=0)
