#!/usr/bin/python3
"""CLI start-up benchmark (issue 16): how long short `cocoon` commands take, for two
builds in the same run (before and after a change), interleaved so machine load hits
both alike.

Each command is spawned with posix_spawn (stdin, stdout and stderr on /dev/null) and
timed from spawn to exit, the builds taking turns in A B, B A order (see turns()):
  spawn floor      /bin/true: what starting any dynamically linked program costs here
  version, help    no state touched
  ls (empty)       a fresh COCOON_HOME
  ls -a (21)       a home with 20 created boxes and one running box
  inspect, images, logs   on that home (inspect and logs of the running box)
  cp (1 KiB)       `cocoon cp FILE BOX:/tmp/f` (a file transfer: libarchive is needed)
and, on the running box, `cocoon exec BOX -- true` against the same exec through the
C API (examples/exec_many latency: cocoon_box_run on one open handle, so without
process start, state lookup or connect), its samples taken in chunks between the CLI's.
The guest's fork+exec of `true` under TCG varies by tens of ms from one exec to the
next, far more than the host side, so the same pair is also run against an instant
monitor: this script holds a created box's lock and control socket and answers each
EXEC at once with the frames a real box sent for `true` (STARTED ... EXIT). There the
difference CLI - C API is the CLI's own cost (start, state, connect, exit), nothing else.

Usage: bench/cli_start.py [--before DIR] [--after DIR] [--runs 200] [--exec-runs 100]
                          [--results bench/RESULTS.md]
DIR is a build directory (bin/cocoon in it), e.g. one made from main with
`make BUILD=/tmp/cocoon-before host`. --results replaces the "CLI start-up" section.
"""
import argparse
import fcntl
import json
import os
import platform
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "## CLI start-up (short commands, exec through the CLI vs the C API)"
GOAL_MS = 5.0
BOXES = 20
CHUNK = 5


HDR = struct.Struct("<IIHBB")
EXEC, STARTED, EXIT, VMM_HELLO, PT_BOX_ID = 16, 17, 22, 32, 28


def frame(stream, ftype, payload=b""):
    return HDR.pack(len(payload), stream, ftype, 1, 0) + payload


class Frames:
    """Frames off a unix socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def read(self):
        while True:
            if len(self.buf) >= HDR.size:
                n, stream, ftype, _, _ = HDR.unpack_from(self.buf)
                if len(self.buf) >= HDR.size + n:
                    payload, self.buf = self.buf[HDR.size:HDR.size + n], self.buf[HDR.size + n:]
                    return stream, ftype, payload
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self.buf += chunk


def record_true(box_dir):
    """The real monitor's VMM_HELLO and every frame of an exec of `true` (through EXIT)."""
    dirfd = os.open(box_dir, os.O_PATH | os.O_DIRECTORY)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(f"/proc/self/fd/{dirfd}/ctl.sock")
    f = Frames(s)
    _, ftype, hello = f.read()
    assert ftype == VMM_HELLO, ftype
    argv = struct.pack("<HI", 14, 4) + b"true"
    s.sendall(frame(1, EXEC, argv) + frame(1, 19))
    reply = []
    while True:
        stream, ftype, payload = f.read()
        if stream == 1:
            reply.append((ftype, payload))
            if ftype == EXIT:
                break
    s.close()
    os.close(dirfd)
    return hello, reply


def with_box_id(hello, box_id):
    """hello's TLVs with BOX_ID set to box_id (the client checks it names its box)."""
    out, i = b"", 0
    while i < len(hello):
        tag, n = struct.unpack_from("<HI", hello, i)
        value = hello[i + 6:i + 6 + n]
        out += struct.pack("<HI", tag, len(box_id) if tag == PT_BOX_ID else n) + \
            (box_id.encode() if tag == PT_BOX_ID else value)
        i += 6 + n
    return out


class InstantMonitor:
    """Plays a running box's monitor for a created box: holds its vmm.pid lock (which is
    what makes a box count as running), and on its ctl.sock answers every EXEC at once
    with the recorded frames of `true`."""

    def __init__(self, box_dir, box_id, hello, reply):
        self.hello, self.reply = with_box_id(hello, box_id), reply
        self.pidfd = os.open(os.path.join(box_dir, "vmm.pid"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.pidfd, fcntl.LOCK_EX)
        os.write(self.pidfd, f"{os.getpid()}\n".encode())
        self.dirfd = os.open(box_dir, os.O_PATH | os.O_DIRECTORY)
        self.path = os.path.join(box_dir, "ctl.sock")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(f"/proc/self/fd/{self.dirfd}/ctl.sock")
        self.srv.listen(64)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        with c:
            c.sendall(frame(0, VMM_HELLO, self.hello))
            f = Frames(c)
            while True:
                got = f.read()
                if got is None:
                    return
                stream, ftype, _ = got
                if ftype == EXEC:
                    c.sendall(b"".join(frame(stream, t, p) for t, p in self.reply))

    def close(self):
        self.srv.close()
        os.unlink(self.path)
        os.close(self.dirfd)
        os.close(self.pidfd)


CPU = {}  # key -> CPU times (user + system, ms) of the runs whose wall times are in `times`


def spawn_ms(argv, env, key=None):
    """Wall time of one run of argv, spawn to exit, its output discarded; its CPU time
    (user + system, from wait4) goes to CPU[key]: the part of the wall time it worked."""
    fa = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
          (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
          (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    t = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
    _, status, usage = os.wait4(pid, 0)
    ms = (time.perf_counter() - t) * 1e3
    if key is not None:
        CPU.setdefault(key, []).append((usage.ru_utime + usage.ru_stime) * 1e3)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (status {status})")
    return ms


def turns(keys, i):
    """keys in order on even rounds, reversed on odd ones (A B, B A, ...): the guest is
    still busy for a while after a command that reached it, which slows the next one,
    so each build must follow each other as often."""
    keys = list(keys)
    return keys if i % 2 == 0 else keys[::-1]


def summary(xs):
    s = sorted(xs)

    def pct(p):
        return s[min(len(s) - 1, int(len(s) * p))]
    return {"median": statistics.median(s), "min": s[0], "p10": pct(0.10), "p90": pct(0.90), "max": s[-1],
            "n": len(s)}


def home_dir(root, name):
    d = os.path.join(root, name)
    os.mkdir(d, 0o700)
    return d


def shared_libs(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if "=>" in line or line.strip().startswith("/"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", help="build directory of the old binary (optional)")
    ap.add_argument("--after", default=os.path.join(REPO, "build"))
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--exec-runs", type=int, default=100)
    ap.add_argument("--results")
    a = ap.parse_args()
    builds = {}
    if a.before:
        builds["before"] = os.path.abspath(a.before)
    builds["after"] = os.path.abspath(a.after)
    cocoon = {k: os.path.join(v, "bin", "cocoon") for k, v in builds.items()}
    for k, path in cocoon.items():
        if not os.access(path, os.X_OK):
            sys.exit(f"cli_start: {path} ({k}) is not built")
    after = builds["after"]
    root = tempfile.mkdtemp(prefix="cocoon-cli-start-")
    empty, busy = home_dir(root, "empty"), home_dir(root, "busy")
    base_env = dict(os.environ,
                    COCOON_SHARE_DIR=os.environ.get("COCOON_SHARE_DIR", os.path.join(REPO, "build", "share", "cocoon")),
                    COCOON_VMM=os.environ.get("COCOON_VMM", os.path.join(after, "bin", "cocoon-vmm")))
    env_empty = dict(base_env, COCOON_HOME=empty)
    env_busy = dict(base_env, COCOON_HOME=busy)
    ex_dir = os.path.join(root, "examples")
    subprocess.run(["make", "-s", "-C", os.path.join(REPO, "examples"), f"BUILD={after}", f"OUT={ex_dir}"], check=True)
    small = os.path.join(root, "small.txt")
    with open(small, "wb") as f:
        f.write(os.urandom(1024))
    load_before = os.getloadavg()[0]

    def cli(*args):
        return subprocess.run([cocoon["after"], *args], env=env_busy, check=True, capture_output=True,
                              stdin=subprocess.DEVNULL)

    times = {}
    capi, capi_instant = [], []
    monitor = None
    try:
        for i in range(BOXES):
            cli("create", "--name", f"idle{i}")
        bench_id = cli("create", "--name", "bench", "--memory", "1G").stdout.decode().strip()
        cli("start", "bench")
        commands = [  # (label, argv after `cocoon`, env)
            ("version", ["version"], env_empty),
            ("help", ["help"], env_empty),
            ("ls (empty home)", ["ls"], env_empty),
            (f"ls -a ({BOXES + 1} boxes)", ["ls", "-a"], env_busy),
            ("inspect BOX", ["inspect", "bench"], env_busy),
            ("images", ["images"], env_busy),
            ("logs BOX", ["logs", "bench"], env_busy),
            ("cp 1 KiB file to BOX", ["cp", small, "bench:/tmp/f"], env_busy),
        ]
        floor = []
        for k in cocoon:  # warm the page cache
            for label, args, env in commands:
                spawn_ms([cocoon[k], *args], env)
        for i in range(a.runs):
            floor.append(spawn_ms(["/bin/true"], env_empty, "floor"))
            for label, args, env in commands:
                for k in turns(cocoon, i):
                    times.setdefault((label, k), []).append(spawn_ms([cocoon[k], *args], env, (label, k)))
        # exec: the CLI of each build and the C API in turn, CHUNK execs each (the guest's
        # fork+exec of `true` under TCG varies far more than the host side does)
        exec_many = os.path.join(ex_dir, "exec_many")

        def exec_turns(box, label, runs, capi_samples):
            for i in range(0, runs, CHUNK):
                for k in turns([*cocoon, "capi"], i // CHUNK):
                    if k == "capi":
                        r = subprocess.run([exec_many, box, "latency", str(CHUNK)], env=env_busy, check=True,
                                           capture_output=True)
                        capi_samples += json.loads(r.stdout)["samples_ms"]
                        continue
                    for _ in range(CHUNK):
                        times.setdefault((label, k), []).append(
                            spawn_ms([cocoon[k], "exec", box, "--", "true"], env_busy, (label, k)))
        exec_turns("bench", "exec BOX -- true", a.exec_runs, capi)
        # the same against the instant monitor: the host side alone
        instant_id = cli("create", "--name", "instant").stdout.decode().strip()
        hello, reply = record_true(os.path.join(busy, "boxes", bench_id))
        monitor = InstantMonitor(os.path.join(busy, "boxes", instant_id), instant_id, hello, reply)
        exec_turns("instant", "exec INSTANT -- true", a.runs, capi_instant)
    finally:
        if monitor:
            monitor.close()
        subprocess.run([cocoon["after"], "rm", "-f", "bench", "instant"], env=env_busy, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()[0]

    text = report(a, builds, cocoon, commands, times, summary(floor), summary(capi), summary(capi_instant),
                  load_before, load_after)
    print(text)
    if a.results:
        replace_section(a.results, SECTION, text.split("\n", 1)[1])


def breakdown(times, commands, floor):
    def med(label):
        return summary(times[(label, "after")])["median"]
    version, empty, busy = med("version"), med("ls (empty home)"), med(commands[3][0])
    return (f"starting the program (`version`) {version:.2f} ms, of which any program's start (`/bin/true`) "
            f"{floor['median']:.2f}; opening the state database and a first query (`ls` on an empty home − "
            f"`version`) {empty - version:.2f}; each box listed ((`ls -a` − `ls` on an empty home) / {BOXES + 1}) "
            f"{(busy - empty) / (BOXES + 1):.3f}; an exec once started (`exec INSTANT` − `version`: the state "
            f"database, the box's row and config, connect, frames, exit) {med('exec INSTANT -- true') - version:.2f}")


def fmt(s):
    return f"{s['median']:.2f} ({s['min']:.2f} / {s['p10']:.2f} / {s['p90']:.2f} / {s['max']:.2f})"


def report(a, builds, cocoon, commands, times, floor, capi, capi_instant, lb, la):
    keys = list(builds)
    ratio = "before" in builds
    head = "| command | " + " | ".join(f"{k}: wall median (min / p10 / p90 / max) ms" for k in keys)
    head += " | after / before |" if ratio else " |"
    head += "".join(f" {k}: CPU median ms |" for k in keys)
    lines = [SECTION, "",
             f"Short commands run {a.runs} times per build, interleaved (builds in A B, B A order, see turns()); "
             "wall time from posix_spawn to exit, output to /dev/null, and the command's CPU time (user + system, "
             "from wait4: when it is close to the wall time the command waited for nothing, and what other jobs "
             f"cost it was through shared cores and caches). Goal (issue 16): ≤ {GOAL_MS:g} ms for "
             "commands that do not pull or load images; exec through the CLI ≤ the C API + 5 ms. "
             f"exec: {a.exec_runs} on the running box, {a.runs} on the instant monitor (see below), per build and "
             f"through the C API, in turns of {CHUNK}.", "",
             head, "|---|" + "---|" * (2 * len(keys) + ratio)]
    labels = [c[0] for c in commands] + ["exec BOX -- true", "exec INSTANT -- true"]
    for label in labels:
        s = {k: summary(times[(label, k)]) for k in keys}
        row = f"| `cocoon {label}` | " + " | ".join(fmt(s[k]) for k in keys)
        row += f" | {s['after']['median'] / s['before']['median']:.2f} |" if ratio else " |"
        row += "".join(f" {statistics.median(CPU[(label, k)]):.2f} |" for k in keys)
        lines.append(row)
    rest = " |" * (len(keys) - 1 + ratio)  # the other wall columns and the ratio, empty
    lines.append(f"| C API: exec `true` on the running box (exec_many, one open handle) | {fmt(capi)} |{rest}" +
                 " |" * len(keys))
    lines.append(f"| C API: exec `true` on the instant monitor | {fmt(capi_instant)} |{rest}" + " |" * len(keys))
    lines.append(f"| spawn floor: `/bin/true` | {fmt(floor)} |{rest} {statistics.median(CPU['floor']):.2f} |" +
                 " |" * (len(keys) - 1))
    lines.append("")

    def over(label, base):
        return ", ".join(f"{k} **{summary(times[(label, k)])['median'] - base['median']:+.2f} ms**" for k in keys)
    lines += [
        "exec through the CLI minus the C API, medians: on the instant monitor (the CLI's own cost) " +
        over("exec INSTANT -- true", capi_instant) + "; on the running box " + over("exec BOX -- true", capi) +
        " (there the guest's fork+exec of `true` under TCG, "
        f"p10–p90 {capi['p10']:.0f}–{capi['p90']:.0f} ms, swamps the difference).",
        "Shared libraries loaded at start: " + ", ".join(f"{k} {shared_libs(cocoon[k])}" for k in keys) + " (ldd).",
        "Where the after build's time goes (differences of this run's medians): " + breakdown(times, commands, floor)
        + ".",
        "",
        "- INSTANT is a created box whose monitor this script plays: it holds the box's `vmm.pid` lock and "
        "answers each EXEC on `ctl.sock` at once with the frames a real box sent for `true`.",
        "- `cp` loads libarchive (dlopen) in the after build: its time includes that, and the transfer into "
        "the guest.",
        ""]
    cmd = "bench/cli_start.py" + (f" --before {builds['before']}" if ratio else "") + \
        f" --after {os.path.relpath(builds['after'], REPO)} --runs {a.runs} --exec-runs {a.exec_runs}" + \
        (f" --results {os.path.relpath(a.results, REPO)}" if a.results else "")
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()
    lines.append(f"Command: `{cmd}`" + (" (before: `make BUILD=... host` of main before the change)" if ratio
                                         else "") + f". Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    lines.append(f"Machine: {os.cpu_count()} cores, Linux {platform.release()}, {qemu[0] if qemu else 'no qemu'}, "
                 f"accel tcg; load average {lb:.2f} before, {la:.2f} after (shared machine: absolute numbers "
                 "are noisy).")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
