"""Forks of running boxes, either backend (`cocoon fork`, src/lib/fork.c,
src/monitor/livesnap.c): one capture of a running box's disk and memory, N new boxes
that go on from it. A Python process in the parent holds state in memory (a counter and
an open file), started with `exec -d` and driven through a FIFO; each child continues
from that state on its own. One cold boot in the whole file (the parent); children are
restores.

FORK_N children, 20 as the issue asks (COCOON_TEST_FORK_N changes it): on this host (2
cores, TCG, 24 GiB) the 20 restores take about 15 s in all, one after another.
"""
import base64
import json
import os
import signal
import subprocess


import state_invariants as inv
from conftest import decode, sh
from openapi_check import check_response
from serve_client import ServeServer

KILLED = -signal.SIGKILL
FORK_N = int(os.environ.get("COCOON_TEST_FORK_N", "20"))

COUNTER = r'''
import os
log = open("/root/log", "a")  # an open file the children inherit
n = 0
while True:
    with open("/tmp/ctl") as ctl:
        for line in ctl:
            if line.strip() == "inc":
                n += 1
                log.write("%d\n" % n)
                log.flush()
            with open("/tmp/state.new", "w") as s:
                s.write(str(n))
            os.rename("/tmp/state.new", "/tmp/state")
            open("/tmp/ack", "w").close()
'''

# one command to the counter, then its state once it answered
DRIVE = ("rm -f /tmp/ack; echo {cmd} > /tmp/ctl; "
         "for i in $(seq 200); do [ -e /tmp/ack ] && break; sleep 0.05; done; cat /tmp/state")


def out(r):
    return decode(r.stdout).strip()


def drive(vm, box, cmd="inc"):
    return out(sh(vm, box, DRIVE.format(cmd=cmd)))


def boxes(vm):
    return {b["name"]: b for b in json.loads(out(vm.run("ls", "-a", "--json", check=0)))}


def test_fork_children_go_on_from_the_parents_memory(vm):
    vm.run("create", "--name", "par", check=0)
    vm.run("start", "par", check=0)
    script = base64.b64encode(COUNTER.encode()).decode()
    sh(vm, "par", f"echo {script} | base64 -d > /root/counter.py && mkfifo /tmp/ctl")
    vm.run("exec", "-d", "par", "--", "python3", "/root/counter.py", check=0)
    for want in ("1", "2", "3"):
        assert drive(vm, "par") == want

    r = vm.run("fork", "-n", str(FORK_N), "--name", "kid", "par", timeout=60 + 20 * FORK_N)
    assert r.returncode == 0, decode(r.stderr)
    ids = out(r).split()
    assert len(ids) == FORK_N and len(set(ids)) == FORK_N
    listed = boxes(vm)
    names = [f"kid-{i}" for i in range(1, FORK_N + 1)] if FORK_N > 1 else ["kid"]
    for name, bid in zip(names, ids):
        assert listed[name]["id"] == bid and listed[name]["status"] == "running", listed[name]

    # each child goes on from 3, on its own; the parent too
    assert drive(vm, names[0]) == "4"
    assert drive(vm, names[0]) == "5"
    if FORK_N > 1:
        assert drive(vm, names[1]) == "4"  # not 6: the first child's increments are its own
        assert drive(vm, names[-1], "show") == "3"
    assert drive(vm, "par") == "4"
    # the open file went on in each: lines 1-3 from before the fork, then its own
    assert out(sh(vm, names[0], "cat /root/log")).split() == ["1", "2", "3", "4", "5"]
    assert out(sh(vm, "par", "cat /root/log")).split() == ["1", "2", "3", "4"]
    # a new box: its own hostname, a clock set from the host, a reseeded RNG
    host0 = out(sh(vm, names[0], "hostname"))
    assert host0 == f"cocoon-{ids[0][:6]}" and host0 != out(sh(vm, "par", "hostname"))
    assert abs(int(out(sh(vm, names[0], "date +%s"))) - int(out(subprocess.run(
        ["date", "+%s"], capture_output=True)))) < 30
    if FORK_N > 1:
        rnd = [out(sh(vm, n, "head -c 16 /dev/urandom | od -An -tx1")) for n in names[:2]]
        assert rnd[0] != rnd[1]
    # the parent's exec session is not the child's: `kill --list` of a child shows none
    assert "counter.py" not in out(vm.run("kill", "--list", names[0], check=None))

    # over REST: POST /v1/boxes/{id}/fork (a child forks too), checked against docs/openapi.yaml
    if FORK_N > 1:
        with ServeServer(vm) as server:
            api = server.client(check=check_response)
            r = api.request("POST", f"/v1/boxes/{names[1]}/fork", json={"name": "viarest", "count": 1})
            assert r.status == 201, r.json
            assert [b["name"] for b in r.json["boxes"]] == ["viarest"] and r.json["snapshot"]
            assert r.json["boxes"][0]["status"] == "running"
            r = api.request("POST", f"/v1/boxes/cold-never/fork", json={"count": 1})
            assert r.status == 404, r.json
        assert drive(vm, "viarest", "show") == "4"  # names[1] was at 4 when it was forked

    # refusals: a stopped box
    vm.run("create", "--name", "cold", check=0)
    r = vm.run("fork", "cold")
    assert r.returncode != 0 and "not running" in decode(r.stderr), decode(r.stderr)

    # kill -9 of the CLI after the capture, before any child: the source runs on, the
    # capture is a whole snapshot, no child exists (a fork of a child, which may fork)
    before = set(boxes(vm))
    r = vm.run("fork", "-n", "2", names[0], env={"COCOON_TEST_CRASH_AT": "FORK_CAPTURED"})
    assert r.returncode == KILLED, decode(r.stderr)
    assert set(boxes(vm)) == before
    assert drive(vm, names[0], "show") == "5"
    inv.assert_consistent(vm.home, "fork killed after the capture")
    # ... and after the first child was made, before it started: a whole, stopped box
    r = vm.run("fork", "-n", "2", "--name", "half", names[-1], env={"COCOON_TEST_CRASH_AT": "FORK_CHILD"})
    assert r.returncode == KILLED, decode(r.stderr)
    made = set(boxes(vm)) - before
    assert made == {"half-1", "half-2"}, made  # both made (clone is all or none), neither started
    assert all(boxes(vm)[n]["status"] == "stopped" for n in made)
    inv.assert_consistent(vm.home, "fork killed before its children started")

    # a second fork of the same run, and one after a live disk snapshot: each layer keeps
    # a file name of its own while QEMU runs (livesnap.h), so they work as the first did.
    # (Last: QEMU then holds the layers it added read-write, so `qemu-img check` of them
    # needs -U while these boxes run, which the state checks above do not pass.)
    assert out(vm.run("fork", "--name", "again", "par", check=0))
    assert drive(vm, "again", "show") == "4" and drive(vm, "par") == "5"
    if FORK_N > 2:
        vm.run("snapshot", "create", names[2], check=0)
        assert drive(vm, names[2]) == "4"
        vm.run("fork", "--name", "after-snap", names[2], check=0)
        assert drive(vm, "after-snap", "show") == "4" and drive(vm, names[2], "show") == "4"
    for n in list(boxes(vm)):
        vm.run("rm", "-f", n, check=0)
    inv.doctor_fix(vm)
    inv.assert_clean(vm.home, "after the forks were removed")


def test_fork_monitor_killed_during_the_capture(vm):
    """The monitor killed while QEMU writes the memory (one boot): the box is gone, its
    disk the old layer and whole, no snapshot and no child is visible; doctor --fix
    leaves nothing behind."""
    vm.run("create", "--name", "mk", check=0)
    vm.run("start", "mk", check=0, env={"COCOON_TEST_CRASH_AT": "LIVESNAP_MEMORY"})
    sh(vm, "mk", "echo kept > /root/kept")
    r = vm.run("fork", "-n", "2", "mk")
    assert r.returncode != 0, decode(r.stdout)
    assert set(boxes(vm)) == {"mk"} and boxes(vm)["mk"]["status"] != "running"
    assert json.loads(out(vm.run("snapshot", "ls", "--json", check=0))) == []
    inv.assert_consistent(vm.home, "fork with its monitor killed during the capture")
    inv.doctor_fix(vm)
    inv.assert_clean(vm.home, "fork with its monitor killed, then doctor --fix")
