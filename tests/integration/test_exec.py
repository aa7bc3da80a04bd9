"""`cocoon exec` on a running box: many execs at once, binary-safe streams, a real
terminal (driven through tmux), signals, timeouts, `cocoon kill`, errors for boxes
that are stopped or missing, and the C API example programs built and run."""
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import BIN_DIR, REPO, decode, drain_hashed, sh


@contextlib.contextmanager
def running_box(vm, name="b"):
    vm.run("create", "--name", name, check=0)
    try:
        vm.run("start", name, check=0)
        yield name
    finally:
        vm.run("rm", "-f", name)


# A guest-side count of processes named `sleep` that needs only /bin/sh and /proc.
COUNT_SLEEPS = ('n=0; for p in /proc/[0-9]*; do { read -r c < "$p/comm"; } 2>/dev/null || continue; '
                '[ "$c" = sleep ] && n=$((n+1)); done; echo $n')


def test_exec_on_stopped_and_missing_box(vm):
    vm.run("create", "--name", "idle", check=0)
    r = vm.run("exec", "idle", "--", "true")
    assert r.returncode == 125, decode(r.stderr)
    # what to do about it, not which socket was missing
    assert "not running (start it with `cocoon start idle`)" in decode(r.stderr), decode(r.stderr)
    r = vm.run("exec", "no-such-box", "--", "true")
    assert r.returncode == 125
    err = decode(r.stderr).lower()
    assert "no-such-box" in err and ("no such box" in err or "not found" in err or "no box" in err), err
    r = vm.run("kill", "no-such-box")
    assert r.returncode == 125 and "no-such-box" in decode(r.stderr)
    vm.run("rm", "idle", check=0)


def tagged_script(k, lines=30):
    return (f'i=1; while [ $i -le {lines} ]; do echo "exec{k} out $i"; echo "exec{k} err $i" >&2; '
            f'i=$((i+1)); done; exit {k}')


def test_32_concurrent_execs_from_32_processes(vm):
    """Each exec prints its own tagged lines on stdout and stderr, interleaved; a flood
    nobody reads and a command that never reads its stdin run beside them."""
    with running_box(vm) as box:
        # A flood whose reader never reads (the CLI blocks on its stdout pipe).
        flood = vm.popen("exec", box, "--", "cat", "/dev/zero")
        # A command that never reads the stdin we keep pushing at it.
        stuck = vm.popen("exec", "-i", box, "--", "sleep", "60", stdin=subprocess.PIPE)

        def push():
            try:
                for _ in range(64):
                    stuck.stdin.write(b"x" * 65536)
                    stuck.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass
        pusher = threading.Thread(target=push, daemon=True)
        pusher.start()
        try:
            time.sleep(1)
            start = time.monotonic()
            procs = [vm.popen("exec", box, "--", "sh", "-c", tagged_script(k)) for k in range(1, 33)]
            results = [p.communicate(timeout=240) for p in procs]
            elapsed = time.monotonic() - start
            for k, (p, (out, err)) in enumerate(zip(procs, results), start=1):
                assert p.returncode == k, (k, p.returncode, decode(err)[-500:])
                assert decode(out) == "".join(f"exec{k} out {i}\n" for i in range(1, 31)), k
                assert decode(err) == "".join(f"exec{k} err {i}\n" for i in range(1, 31)), k
            assert flood.poll() is None and stuck.poll() is None, "the flood or the stuck exec ended early"
            print(f"32 concurrent execs beside a stalled flood: {elapsed:.1f} s")
        finally:
            for p in (flood, stuck):
                p.kill()
                p.wait()
            pusher.join(timeout=10)


def test_binary_safe_all_byte_values(vm):
    with running_box(vm) as box:
        data = bytes(range(256)) * 4
        r = vm.run("exec", box, "--", "cat", input=data, check=0)
        assert r.stdout == data
        # and produced in the guest (not an echo of stdin)
        r = vm.run("exec", box, "--", "python3", "-c",
                   "import sys; sys.stdout.buffer.write(bytes(range(256)))", check=0)
        assert r.stdout == bytes(range(256))


def test_100mb_through_cat(vm, tmp_path):
    size = 100 * 1024 * 1024
    src = tmp_path / "in.bin"
    h_in = hashlib.sha256()
    with open(src, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(100):
            b = block[i:] + block[:i]
            h_in.update(b)
            f.write(b)
    with running_box(vm) as box:
        start = time.monotonic()
        with open(src, "rb") as fin:
            p = vm.popen("exec", box, "--", "cat", stdin=fin)
            n, digest, err = drain_hashed(p, 1 << 20, 120)
        elapsed = time.monotonic() - start
        assert p.returncode == 0, decode(err)
        assert n == size
        assert digest == h_in.hexdigest()
        print(f"100 MB through `cat` both ways in {elapsed:.1f} s ({100 / elapsed:.1f} MB/s)")


# Writes of every size on both streams, the host reading slowly at first: each stream's
# bytes must arrive whole and in order, across frame boundaries and stalled credits.
MIXED_WRITER = r"""
import os, hashlib, sys
sizes = [1, 7, 4096, 5000, 8191, 8192, 8193, 65535, 65536, 65537, 70000, 262144, 300001, 3]
digests = {1: hashlib.sha256(), 2: hashlib.sha256()}
for rnd in range(6):
    for i, n in enumerate(sizes):
        fd = 2 if (i + rnd) % 5 == 0 else 1
        data = bytes((j * 31 + n + rnd) & 255 for j in range(n))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        digests[fd].update(data)
os.write(2, ("\n" + digests[1].hexdigest() + " " + digests[2].hexdigest() + "\n").encode())
"""


def test_output_of_mixed_write_sizes_arrives_whole(vm):
    with running_box(vm) as box:
        p = vm.popen("exec", box, "--", "python3", "-c", MIXED_WRITER)
        errs = []
        reader = threading.Thread(target=lambda: errs.append(p.stderr.read()))
        reader.start()
        out = hashlib.sha256()
        n = 0
        while True:
            data = p.stdout.read(65536)
            if not data:
                break
            if n < (1 << 20):
                time.sleep(0.05)  # a slow reader first: the credit window runs out
            out.update(data)
            n += len(data)
        reader.join(timeout=120)
        err = errs[0]
        assert p.wait(timeout=120) == 0, decode(err)
        # stderr ends with "\n" + the two digests (64 + 1 + 64 characters) + "\n"
        want_out, want_err = err[-130:-1].decode().split()
        stderr_body = err[:-131]
        assert out.hexdigest() == want_out
        assert hashlib.sha256(stderr_body).hexdigest() == want_err


def test_exec_options_env_workdir_user(vm):
    with running_box(vm) as box:
        r = vm.run("exec", "--env", "A=1", "--env", "B=two words", "--workdir", "/tmp", "--user", "nobody", box, "--",
                   "sh", "-c", 'echo "$A|$B|$(pwd)|$(id -un)"', check=0)
        assert decode(r.stdout) == "1|two words|/tmp|nobody\n"


def test_start_failures_and_what_each_exec_sees(vm):
    """Each way a command can fail to start says why, with 127 or 126; a failed start
    leaves the next exec intact; every exec sees its own environment only; a script
    without a #! line runs through /bin/sh (execvp's fallback, on the starting child's
    own stack)."""
    with running_box(vm) as box:
        cases = [
            (["--", "nosuchcmd"], 127, 'exec "nosuchcmd": No such file or directory'),
            (["--", "/etc"], 126, 'exec "/etc": Permission denied'),
            (["--workdir", "/nonexistent", "--", "true"], 127, 'chdir "/nonexistent": No such file or directory'),
            (["--user", "nosuchuser", "--", "true"], 126, 'no such user'),
        ]
        for args, code, msg in cases:
            opts, cmd = args[:args.index("--")], args[args.index("--"):]
            r = vm.run("exec", *opts, box, *cmd)
            assert r.returncode == code and msg in decode(r.stderr), (args, r.returncode, decode(r.stderr))
            assert decode(sh(vm, box, "echo ok").stdout) == "ok\n"
        r = vm.run("exec", "--env", "ONLY_HERE=1", box, "--", "sh", "-c", 'echo "[$ONLY_HERE]"', check=0)
        assert decode(r.stdout) == "[1]\n"
        assert decode(sh(vm, box, 'echo "[$ONLY_HERE]"; echo "$PATH"').stdout).splitlines() == [
            "[]", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        sh(vm, box, "printf 'echo from a script: $1\\n' > /usr/local/bin/noshebang && chmod +x /usr/local/bin/noshebang")
        r = vm.run("exec", box, "--", "noshebang", "arg1", check=0)
        assert decode(r.stdout) == "from a script: arg1\n", decode(r.stderr)


def test_agent_exec_trace(vm):
    """COCOON_AGENT_TRACE=1 in the monitor's environment makes the agent append the phases
    of every exec to /run/cocoon-agent-trace in the guest (bench/exec_overhead.py --trace
    reads them); without it, there is no such file."""
    vm.run("create", "--name", "traced", check=0)
    vm.run("create", "--name", "quiet", check=0)
    try:
        vm.run("start", "traced", check=0, env={"COCOON_AGENT_TRACE": "1"})
        vm.run("start", "quiet", check=0)
        for box in ("traced", "quiet"):
            vm.run("exec", box, "--", "true", check=0)
        trace = decode(sh(vm, "traced", "cat /run/cocoon-agent-trace").stdout)
        line = re.search(r"^exec \d+ true decode=\d+ .*fork=\d+ .*started=\d+ .*exit=\d+ released=\d+$", trace,
                         re.M)
        assert line, trace
        assert decode(sh(vm, "quiet", "ls /run/cocoon-agent-trace 2>&1 || true").stdout).count("No such file") == 1
    finally:
        vm.run("rm", "-f", "traced", "quiet")


def test_user_lookup_follows_passwd_and_group(vm):
    """The agent keeps what /etc/passwd and /etc/group said about a user while both files
    stay unchanged: every change (appended, rewritten in place at the same size, replaced
    by a rename) shows in the next exec."""
    with running_box(vm) as box:
        def as_user(script, user="cachet"):
            return vm.run("exec", "--user", user, box, "--", "sh", "-c", script)

        r = as_user("id -u")
        assert r.returncode != 0 and "no such user" in decode(r.stderr), decode(r.stderr)
        sh(vm, box, "echo cachet:x:1234:1234::/home/ct:/bin/sh >> /etc/passwd && "
                    "echo ctgrp:x:2345:cachet >> /etc/group")
        time.sleep(1.2)  # settled files: what the agent reads now, it keeps
        for _ in range(2):
            r = as_user("id -u; id -G; echo $HOME")
            assert decode(r.stdout).split() == ["1234", "1234", "2345", "/home/ct"], decode(r.stdout + r.stderr)
        # the same size, the same inode: only the file's times say it changed
        sh(vm, box, "sed s/:1234:1234:/:4321:1234:/ /etc/passwd > /tmp/p && cat /tmp/p > /etc/passwd")
        assert decode(as_user("id -u").stdout) == "4321\n"
        sh(vm, box, "sed s/:4321:1234:/:4322:1234:/ /etc/passwd > /tmp/p && cat /tmp/p > /etc/passwd")
        assert decode(as_user("id -u").stdout) == "4322\n"
        # replaced by a rename (what vipw, useradd and sed -i do)
        sh(vm, box, "sed s/:4322:1234:/:5555:1234:/ /etc/passwd > /etc/passwd.new && mv /etc/passwd.new /etc/passwd")
        assert decode(as_user("id -u").stdout) == "5555\n"
        time.sleep(1.2)
        assert decode(as_user("id -G").stdout).split() == ["1234", "2345"]
        sh(vm, box, "sed s/:cachet$/:/ /etc/group > /tmp/g && cat /tmp/g > /etc/group")
        assert decode(as_user("id -G").stdout).split() == ["1234"]
        r = as_user("id -u", user="cachet:ctgrp")
        assert decode(r.stdout) == "5555\n", decode(r.stderr)


def test_tty_rules(vm):
    with running_box(vm) as box:
        # -t alone: the command gets a terminal even though ours is a pipe
        r = vm.run("exec", "-t", box, "--", "sh", "-c", "tty; stty size", check=0)
        lines = decode(r.stdout).split("\r\n")
        assert lines[0].startswith("/dev/pts/"), r.stdout
        assert lines[1] == "24 80", r.stdout  # no local terminal: the default size
        # -it with stdin that is not a terminal: refused, like docker
        r = vm.run("exec", "-it", box, "--", "true", input=b"")
        assert r.returncode == 125
        assert "not a TTY" in decode(r.stderr), decode(r.stderr)


class Tmux:
    def __init__(self, vm, tmp_path):
        self.sock = str(tmp_path / "tmux.sock")
        self.vm = vm
        keep = ("COCOON_HOME", "COCOON_SHARE_DIR", "COCOON_VMM", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                "PATH")
        env = " ".join(f"{k}={shlex.quote(vm.env[k])}" for k in keep if k in vm.env)
        self.cmd(["new-session", "-d", "-s", "t", "-x", "100", "-y", "30",
                  f"env -i HOME=/tmp TERM=xterm {env} bash --norc --noprofile"])
        self.cmd(["set-option", "-g", "status", "off"])

    def cmd(self, args):
        return subprocess.run(["tmux", "-S", self.sock, *args], capture_output=True, timeout=30, check=True)

    def keys(self, *keys):
        self.cmd(["send-keys", "-t", "t", *keys])

    def pane(self):
        return decode(self.cmd(["capture-pane", "-p", "-t", "t", "-S", "-200"]).stdout)

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.pane()
            if re.search(pattern, text, re.M):
                return text
            time.sleep(0.2)
        pytest.fail(f"tmux pane never matched {pattern!r}:\n{self.pane()}")

    def size(self):
        out = decode(self.cmd(["display-message", "-p", "-t", "t", "#{pane_height} #{pane_width}"]).stdout)
        return out.strip()

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True, timeout=30)


def test_pty_session_through_tmux(vm, tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("skipped: tmux is not installed")
    cocoon = os.path.join(BIN_DIR, "cocoon")
    with running_box(vm) as box:
        t = Tmux(vm, tmp_path)
        try:
            t.keys(f"{cocoon} exec -it {box} sh", "Enter")
            t.wait_for(r"^# ?$")  # the guest shell's prompt (root)
            t.keys("echo $((6*7))", "Enter")
            t.wait_for(r"^42\r?$")
            # window size at start, then after a resize
            t.keys("stty size", "Enter")
            t.wait_for("^" + re.escape(t.size()) + "$")
            t.cmd(["resize-window", "-t", "t", "-x", "120", "-y", "40"])
            time.sleep(0.5)
            assert t.size() == "40 120", t.size()
            t.keys("clear; stty size", "Enter")
            t.wait_for(r"^40 120$")
            # Ctrl-C reaches the guest process as a byte through the pty; the shell survives
            t.keys("sleep 100", "Enter")
            time.sleep(1.5)
            start = time.monotonic()
            t.keys("C-c")
            t.keys("echo survived-$((1+1))", "Enter")
            t.wait_for(r"survived-2", timeout=30)
            assert time.monotonic() - start < 30
            # line editing: type, erase, retype
            t.keys("echo abX", "BSpace", "c", "Enter")
            t.wait_for(r"^abc$")
            # exit restores the host terminal
            t.keys("exit", "Enter")
            t.wait_for(r"^bash-[\d.]+[#$]\s*$")
            t.keys("stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo -e -icanon -e -echo | sort | "
                   "tr '\\n' ' '; echo \"E\"\"ND\"", "Enter")
            text = t.wait_for(r"END$")
            line = [x for x in text.splitlines() if x.endswith("END")][-1]
            assert line == "echo icanon END", text
        finally:
            t.close()


def test_timeout_kills_the_process_tree(vm):
    with running_box(vm) as box:
        start = time.monotonic()
        r = vm.run("exec", "--timeout", "2", box, "--", "sh", "-c", "sleep 100 & sleep 100 & wait")
        assert r.returncode == 124, decode(r.stderr)
        assert "timed out" in decode(r.stderr)
        assert time.monotonic() - start < 60
        deadline = time.monotonic() + 10
        while True:
            left = decode(vm.run("exec", box, "--", "sh", "-c", COUNT_SLEEPS, check=0).stdout).strip()
            if left == "0" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert left == "0", f"{left} sleep processes survived the timeout"


def test_sigterm_and_sigint_are_forwarded(vm):
    with running_box(vm) as box:
        script = 'trap "echo got-$1; exit 7" $1; echo ready; while :; do sleep 0.2; done'
        for sig, name in ((signal.SIGTERM, "TERM"), (signal.SIGINT, "INT")):
            p = vm.popen("exec", box, "--", "sh", "-c", script, "sh", name)
            try:
                assert p.stdout.readline() == b"ready\n"
                p.send_signal(sig)
                out, err = p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            assert out == f"got-{name}\n".encode(), (out, decode(err))
            assert p.returncode == 7, decode(err)


def test_kill_command(vm):
    with running_box(vm) as box:
        a = vm.popen("exec", box, "--", "sleep", "101")
        b = vm.popen("exec", box, "--", "sh", "-c", "sleep 102 & sleep 103; wait")
        try:
            deadline = time.monotonic() + 60
            while True:
                listing = decode(vm.run("kill", "--list", box, check=0).stdout)
                if "sleep 101" in listing and "sleep 102" in listing:
                    break
                assert time.monotonic() < deadline, listing
                time.sleep(0.5)
            assert listing.splitlines()[0].split() == ["ID", "COMMAND"]
            ids = {line.split(None, 1)[1]: int(line.split()[0]) for line in listing.splitlines()[1:]}
            assert "sleep 101" in ids, listing
            r = vm.run("kill", "--exec", "999999", "-s", "TERM", box)
            assert r.returncode == 125 and "999999" in decode(r.stderr)
            r = vm.run("kill", "-s", "bogus", box)
            assert r.returncode == 125 and "bogus" in decode(r.stderr)
            vm.run("kill", "--exec", str(ids["sleep 101"]), "--signal", "TERM", box, check=0)
            a.communicate(timeout=60)
            assert a.returncode == 143
            assert b.poll() is None
            vm.run("kill", box, check=0)  # all execs, SIGKILL
            b.communicate(timeout=60)
            assert b.returncode == 137
            left = decode(vm.run("exec", box, "--", "sh", "-c", COUNT_SLEEPS, check=0).stdout).strip()
            assert left == "0"
        finally:
            for p in (a, b):
                if p.poll() is None:
                    p.kill()
                    p.wait()


def _sanitized(lib):
    try:
        out = subprocess.run(["nm", "-A", lib], capture_output=True, timeout=60).stdout
    except OSError:
        return False
    return b"__asan_" in out


def test_example_programs(vm, tmp_path):
    build = os.path.dirname(BIN_DIR)
    lib = os.path.join(build, "lib", "libcocoon.a")
    assert os.path.exists(lib), f"{lib} is not built"
    out_dir = str(tmp_path / "examples")
    make = ["make", "-C", os.path.join(REPO, "examples"), f"BUILD={build}", f"OUT={out_dir}"]
    if _sanitized(lib):
        make.append("SANITIZE=1")
    r = subprocess.run(make, capture_output=True, timeout=300)
    assert r.returncode == 0, decode(r.stdout + r.stderr)[-3000:]

    env = vm._env(None)
    r = subprocess.run([os.path.join(out_dir, "hello")], capture_output=True, timeout=300, env=env)
    out = decode(r.stdout)
    assert r.returncode == 0, out + decode(r.stderr)
    assert "[first stdout] hello from Linux" in out, out
    assert "[first stderr] a warning" in out, out
    assert "first command exited with 3" in out, out
    assert "LINE 1 FROM THE HOST\nLINE 2 FROM THE HOST\nLINE 3 FROM THE HOST" in out, out
    assert "second command exited with 0" in out and "box removed" in out, out
    assert vm.box_dirs() == [], "hello left its ephemeral box behind"

    with running_box(vm) as box:
        r = subprocess.run([os.path.join(out_dir, "exec_many"), box, "concurrent", "32"], capture_output=True,
                           timeout=300, env=env)
        assert r.returncode == 0 and decode(r.stdout).strip().endswith("ok"), decode(r.stdout + r.stderr)
        print(decode(r.stdout).strip())
        r = subprocess.run([os.path.join(out_dir, "exec_many"), box, "latency", "20"], capture_output=True,
                           timeout=300, env=env)
        assert r.returncode == 0, decode(r.stderr)
        lat = json.loads(decode(r.stdout))
        assert lat["runs"] == 20 and lat["median_ms"] > 0
        print(f"C API exec round trip: median {lat['median_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms")
