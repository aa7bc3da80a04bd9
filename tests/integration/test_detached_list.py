"""Detached execs after the fact: `cocoon exec --ls BOX` and `inspect` show each one's
state and exit code (running, exited, killed, ended with the box), and its output
stays retrievable with `logs --exec ID` while the box is stopped."""
import json
import re

from conftest import decode
from test_mainproc import info, run_d, wait_for


def listed(vm, box):
    return {str(x["id"]): x for x in json.loads(decode(vm.run("exec", "--ls", "--json", box, check=0).stdout))}


def test_detached_execs_are_listed_with_their_state_and_exit_code(vm):
    box = run_d(vm)
    try:
        assert listed(vm, box) == {}
        ok = decode(vm.run("exec", "-d", box, "--", "sh", "-c", "echo out; exit 3", check=0).stdout).strip()
        killed = decode(vm.run("exec", "-d", box, "--", "sleep", "1000", check=0).stdout).strip()
        left = decode(vm.run("exec", "-d", box, "--", "sleep", "2000", check=0).stdout).strip()
        wait_for("the first to end", lambda: listed(vm, box)[ok]["state"] == "exited")
        vm.run("kill", "--exec", killed, "-s", "TERM", box, check=0)
        wait_for("the killed one to end", lambda: listed(vm, box)[killed]["state"] == "exited")
        got = listed(vm, box)
        assert got[ok]["exit_code"] == 3 and got[ok]["command"] == "sh -c echo out; exit 3", got[ok]
        assert got[killed]["exit_code"] == 143 and got[killed]["signal"] == 15, got[killed]
        assert got[left]["state"] == "running" and got[left]["exit_code"] is None, got[left]
        text = decode(vm.run("exec", "--ls", box, check=0).stdout)
        assert re.search(rf"^{ok}\s+exited \(3\) .*sh -c echo out; exit 3$", text, re.M), text
        assert re.search(rf"^{killed}\s+killed \(signal 15\)", text, re.M), text
        assert [x["id"] for x in info(vm, box)["detached_execs"]] == [int(ok), int(killed), int(left)]
        # the box stops: the one still running ends with it (killed by the guest's shutdown,
        # or recorded as stopped when its end did not come first); output stays
        vm.run("stop", box, check=0)
        got = listed(vm, box)
        assert got[left]["state"] in ("exited", "stopped") and got[ok]["state"] == "exited", got
        assert decode(vm.run("logs", "--exec", ok, box, check=0).stdout) == "out\n"
        r = vm.run("exec", "--ls", box, "extra")
        assert r.returncode == 125 and "usage: cocoon exec --ls" in decode(r.stderr), r
    finally:
        vm.run("rm", "-f", box)
