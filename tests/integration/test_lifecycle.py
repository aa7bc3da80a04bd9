"""Timeouts, parallel boxes, and the lifeline: a box never outlives `cocoon run`."""
import os
import signal
import subprocess
import time

from conftest import decode, find_box_processes


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


def test_killing_the_cli_removes_the_box(vm):
    p = vm.popen("run", "--", "sh", "-c", "echo started; sleep 60")
    try:
        line = p.stdout.readline()
        assert line == b"started\n", (line, p.poll())
        boxes = vm.box_dirs()
        assert len(boxes) == 1, boxes
        assert find_box_processes(vm.home), "no monitor/qemu found for a running box"
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (find_box_processes(vm.home) or vm.box_dirs()):
        time.sleep(0.25)
    left = find_box_processes(vm.home)
    assert not left, f"still running 15 s after the CLI died: {left}"
    assert vm.box_dirs() == [], f"box directory left behind: {vm.box_dirs()}"
