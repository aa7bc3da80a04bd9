"""`cocoon attach`: a terminal on a box's main process (`run -d -i -t`): output from the
moment of attaching, stdin forwarded, window size with -t, detach keys that leave it
running, several attachers at once, the exit code when it ends, and a slow attacher
that has output skipped while the main process and main.log go on."""
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time

import pytest

from conftest import decode
from test_mainproc import info, run_d, stopped, wait_for

DETACH = b"\x10\x11"  # ctrl-p ctrl-q


def read_until(fd, needle, timeout=60):
    """Reads fd (raw) until needle was seen; everything read so far."""
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {needle!r} after {timeout} s; got {got[-500:]!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pty whose other side closed
                chunk = b""
            if not chunk:
                pytest.fail(f"EOF before {needle!r}; got {got[-500:]!r}")
            got += chunk
    return got


def attach(vm, box, *opts, **kw):
    kw.setdefault("stdin", subprocess.PIPE)
    return vm.popen("attach", *opts, box, **kw)


def test_attach_forwards_stdin_to_two_attachers_and_detach_keys_leave_it_running(vm):
    box = run_d(vm, "-i", "--name", "cat", "--", "sh", "-c", "echo before-attach; exec cat")
    a = b = None
    try:
        wait_for("the main process", lambda: info(vm, box)["main"]["state"] == "running")
        wait_for("its first line", lambda: "before-attach" in decode(vm.run("logs", "cat", check=0).stdout))
        vmm_log = os.path.join(info(vm, box)["dir"], "vmm.log")

        def attached():
            with open(vmm_log) as f:
                return f.read().count("attached to the main process")
        a = attach(vm, "cat")
        b = attach(vm, "cat", "--no-stdin")
        wait_for("both to be attached", lambda: attached() >= 2)
        a.stdin.write(b"one\n")
        a.stdin.flush()
        seen_a = read_until(a.stdout.fileno(), b"one\n")
        read_until(b.stdout.fileno(), b"one\n")
        assert b"before-attach" not in seen_a  # output from now on, not the past
        # ctrl-p ctrl-q detaches a; the main process runs on and b still sees it
        a.stdin.write(b"two\n" + DETACH)
        a.stdin.flush()
        assert a.wait(timeout=60) == 0
        assert "detached from cat" in decode(a.stderr.read())
        read_until(b.stdout.fileno(), b"two\n")
        assert info(vm, box)["main"]["state"] == "running"
        # without a terminal, a Ctrl-C (SIGINT) detaches too: the main process runs on
        before = attached()
        c = attach(vm, "cat", "--no-stdin")
        d = attach(vm, "cat")
        try:
            wait_for("c and d to be attached", lambda: attached() - before >= 2)
            d.stdin.write(b"three\n" + DETACH)
            d.stdin.flush()
            assert d.wait(timeout=60) == 0
            read_until(c.stdout.fileno(), b"three\n")
            c.send_signal(signal.SIGINT)
            assert c.wait(timeout=60) == 0
            assert "detached from cat" in decode(c.stderr.read())
        finally:
            for p in (c, d):
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert info(vm, box)["main"]["state"] == "running"
        # at most 8 at once: b and 7 more, then a 9th is refused
        before = attached()
        more = [attach(vm, "cat", "--no-stdin") for _ in range(7)]
        try:
            wait_for("7 more attachers", lambda: attached() - before >= 7)
            r = vm.run("attach", "--no-stdin", "cat")
            assert r.returncode == 125 and "8 clients are already attached" in decode(r.stderr), r
        finally:
            for p in more:
                p.kill()
                p.wait()
        # the main process ends: b prints how, and exits with its code
        vm.run("kill", "-s", "TERM", "cat", check=0)
        assert b.wait(timeout=60) == 128 + signal.SIGTERM
        assert "killed by signal 15" in decode(b.stderr.read())
        # attaching after the end says why it cannot
        stopped(vm, box)
        r = vm.run("attach", "cat")
        assert r.returncode == 125 and "is not running" in decode(r.stderr), r
        assert decode(vm.run("logs", "cat", check=0).stdout) == "before-attach\none\ntwo\nthree\n"
    finally:
        for p in (a, b):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        vm.run("rm", "-f", box)


def test_attach_without_a_main_process_or_with_bad_keys_fails_clearly(vm):
    box = run_d(vm)  # the default image, no command: no main process
    try:
        r = vm.run("attach", box)
        assert r.returncode == 125 and "has no main process" in decode(r.stderr), r
        r = vm.run("attach", "--detach-keys", "ctrl-", box)
        assert r.returncode == 125 and "is not a key" in decode(r.stderr), r
        r = vm.run("run", "-d", "-t")
        assert r.returncode == 125 and "-t with -d needs a main process" in decode(r.stderr), r
    finally:
        vm.run("rm", "-f", box)


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_attach_to_a_terminal_follows_the_window_size(vm):
    box = run_d(vm, "-it", "--", "sh")
    master, slave = pty.openpty()
    p = None
    try:
        wait_for("the main process", lambda: info(vm, box)["main"]["state"] == "running")
        set_size(slave, 31, 97)
        p = attach(vm, box, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        slave = None
        os.write(master, b"stty size\n")
        read_until(master, b"31 97")
        set_size(master, 42, 120)
        p.send_signal(signal.SIGWINCH)
        os.write(master, b"stty size\n")
        read_until(master, b"42 120")
        # in raw mode ctrl-c is a key for the box's terminal, not a detach
        os.write(master, b"sleep 1000\n\x03echo after-interrupt\n")
        read_until(master, b"after-interrupt")
        assert p.poll() is None
        os.write(master, DETACH)
        assert p.wait(timeout=60) == 0
        assert info(vm, box)["main"]["state"] == "running"
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
        if p and p.poll() is None:
            p.kill()
            p.wait()
        vm.run("rm", "-f", box)


def test_a_paused_attacher_never_holds_back_the_main_process_or_its_log(vm):
    lines = 200000
    script = (f"read go; yes 'flood line of output' | head -n {lines}; echo flood-done; "
              "read again; echo after-flood; exec sleep 1000")
    box = run_d(vm, "-i", "--", "sh", "-c", script, env={"COCOON_MAIN_LOG_MAX": str(64 << 20)})
    p = None
    try:
        wait_for("the main process", lambda: info(vm, box)["main"]["state"] == "running")
        p = attach(vm, box)
        p.stdin.write(b"go\n")  # the flood starts once we are attached, and we read none of it
        p.stdin.flush()
        wait_for("the flood to end in main.log",
                 lambda: "flood-done" in decode(vm.run("logs", "--tail", "1", box, check=0).stdout))
        got = {"out": b""}

        def drain():
            while True:
                chunk = p.stdout.read1(65536)
                if not chunk:
                    return
                got["out"] += chunk
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        # once we read again, the monitor says how much it skipped, with no more output to wait for
        err = read_until(p.stderr.fileno(), b"did not keep up")
        assert re.search(rb"\[cocoon: \d+ bytes of output skipped here", err), err
        p.stdin.write(b"again\n")  # and what comes next reaches us
        p.stdin.flush()
        wait_for("the output after the flood", lambda: b"after-flood\n" in got["out"])
        p.stdin.write(DETACH)
        p.stdin.flush()
        assert p.wait(timeout=60) == 0
        t.join(timeout=10)
        total = lines * len("flood line of output\n")
        assert len(got["out"]) < total  # some was skipped for us...
        out = decode(vm.run("logs", box, check=0).stdout)
        assert out.count("flood line of output\n") == lines  # ...none in the log
        assert out.endswith("flood-done\nafter-flood\n"), out[-100:]
    finally:
        if p and p.poll() is None:
            p.kill()
            p.wait()
        vm.run("rm", "-f", box)
